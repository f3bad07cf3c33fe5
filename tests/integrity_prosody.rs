//! Integrity against a real private Prosody: a cut connection is followed by one automatic
//! resync with nothing lost or doubled; items the service evicted show as a "lost" marker;
//! retractions and purges made while we were offline take effect.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use pubsub_tui::feed::{ItemState, RowKind};
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::tui::model::Model;
use pubsub_tui::tui::update::{Msg, update};
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent, SnapshotReason};

fn markers(m: &Model) -> Vec<String> {
    let f = &m.nodes[0].feed;
    f.rows(0, f.len())
        .filter_map(|r| match &r.kind {
            RowKind::Marker { text, .. } => Some(text.clone()),
            RowKind::Item { .. } => None,
        })
        .collect()
}

/// (id, text) of every item in the feed, in order.
fn feed_payloads(m: &Model) -> Vec<(String, String)> {
    let f = &m.nodes[0].feed;
    f.rows(0, f.len())
        .filter_map(|r| match &r.kind {
            RowKind::Item {
                item,
                state: ItemState::Live,
            } => Some((item.id().map(str::to_owned)?, item.text().to_owned())),
            _ => None,
        })
        .collect()
}

/// The node's items (id, text) as the service holds them, from a fresh client.
async fn service_items(
    server: &prosody::Prosody,
    user: &str,
    pw: &str,
    node: &str,
) -> Vec<(String, String)> {
    node_items(server, user, pw, node)
        .await
        .into_iter()
        .filter_map(|i| Some((i.id()?.to_owned(), i.text().to_owned())))
        .collect()
}

/// Send an owner request and wait for the service's OK.
async fn request_ok(net: &mut xmpp::NetHandle, cmd: Command, what: &str) {
    net.commands.send(cmd).await.expect("send");
    wait_for(net, 10, what, |e| match e {
        NetEvent::Reply { result: Ok(_), .. } => Some(()),
        NetEvent::Reply {
            result: Err(error), ..
        } => panic!("{what}: {error}"),
        _ => None,
    })
    .await;
}

/// Bob logs in to node "off" (a fresh session), the model takes his snapshot, he logs out.
async fn bob_visits(server: &prosody::Prosody, password: &str, m: &mut Model) {
    let mut b = xmpp::spawn(
        connect_config(server, "bob", "b", password),
        session(&["off"], false, Duration::from_secs(3600)),
    );
    run_until(&mut b, m, 20, "snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    let _ = b.commands.send(Command::Shutdown).await;
    let _ = b.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resynced_with_nothing_lost_or_doubled() {
    // Without stream management the reconnect is a fresh session: notifications sent while
    // the subscriber was away are gone, and only a resync brings them back.
    let opts = Options {
        stream_management: false,
        ..Options::default()
    };
    let Some(server) = start_prosody(&opts) else {
        return;
    };
    create_nodes(&server, &["cut"]).await;
    let (a_cfg, _) = account(&server, "alice", "a");
    let (mut b_cfg, b_pw) = account(&server, "bob", "b");
    let relay = relay::Relay::start(server.port).await;
    b_cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    b_cfg.max_attempts = None;

    let mut a_session = session(&["cut"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    let mut b = xmpp::spawn(b_cfg, session(&["cut"], false, Duration::from_secs(3600)));
    let mut m = model_for("cut");
    run_until(&mut b, &mut m, 20, "initial snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    let mut published = publish_n(&mut a, "cut", 5).await;
    run_until(&mut b, &mut m, 10, "five live items", {
        let last = published[4].clone();
        move |e| matches!(e, NetEvent::Item(i) if i.id() == Some(last.as_str()))
    })
    .await;

    // Cut bob off, keep him off while alice publishes 30 items, then let him back.
    relay.set_accepting(false);
    relay.cut().await;
    run_until(&mut b, &mut m, 40, "bob noticing the cut", |e| {
        matches!(
            e,
            NetEvent::Connection(ConnState::Suspended | ConnState::Retrying { .. })
        )
    })
    .await;
    published.extend(publish_n(&mut a, "cut", 30).await);
    relay.set_accepting(true);

    run_until(
        &mut b,
        &mut m,
        40,
        "the automatic resync after reconnecting",
        |e| {
            matches!(
                e,
                NetEvent::Snapshot {
                    reason: SnapshotReason::Initial,
                    ..
                }
            )
        },
    )
    .await;
    let ids = feed_ids(&m);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    assert_eq!(ids, published, "feed == everything published, in order");
    assert_eq!(
        feed_payloads(&m),
        service_items(&server, "bob", &b_pw, "cut").await,
        "feed == the node's items, ids and payloads"
    );
    assert!(
        markers(&m).iter().all(|t| !t.contains("lost")),
        "{:?}",
        markers(&m)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_items_show_as_one_lost_marker() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes_with(&server, &["evict"], 20).await;
    let (a_cfg, _) = account(&server, "alice", "a");
    let (_, b_pw) = account(&server, "bob", "b");
    let mut a_session = session(&["evict"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    // Bob is offline while alice publishes 50 items into a node that keeps 20.
    let published = publish_n(&mut a, "evict", 50).await;
    let mut b = xmpp::spawn(
        connect_config(&server, "bob", "b", &b_pw),
        session(&["evict"], false, Duration::from_secs(3600)),
    );
    let mut m = model_for("evict");
    run_until(&mut b, &mut m, 20, "snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    assert_eq!(feed_ids(&m), published[30..].to_vec(), "the 20 newest");
    let lost: Vec<_> = markers(&m)
        .into_iter()
        .filter(|t| t.contains("lost"))
        .collect();
    assert_eq!(lost, ["30 items from alice@localhost lost (seq 1–30)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retractions_and_purges_while_offline_take_effect() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["off"]).await;
    let (a_cfg, _) = account(&server, "alice", "a");
    let (_, b_pw) = account(&server, "bob", "b");
    let admin_cfg = connect_config(&server, prosody::ADMIN, "owner", &server.admin_password);
    let mut a_session = session(&["off"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    let published = publish_n(&mut a, "off", 5).await;

    let mut m = model_for("off");
    bob_visits(&server, &b_pw, &mut m).await;
    assert_eq!(feed_ids(&m), published);

    // While bob is away the owner retracts one item.
    let mut owner_session = session(&[], false, Duration::from_secs(3600));
    owner_session.subscribe = false;
    let mut owner = xmpp::spawn(admin_cfg, owner_session);
    wait_online(&mut owner).await;
    let retract = Command::Retract {
        req: common::req(),
        node: owner.key("off"),
        id: published[2].clone(),
    };
    request_ok(&mut owner, retract, "retract").await;
    bob_visits(&server, &b_pw, &mut m).await;
    let mut expected = published.clone();
    expected.remove(2);
    assert_eq!(
        feed_ids(&m),
        expected,
        "the retracted item is gone after the resync"
    );

    // And purges the node.
    let purge = Command::Owner {
        req: common::req(),
        node: owner.key("off"),
        op: pubsub_tui::xmpp::OwnerOp::Purge,
    };
    request_ok(&mut owner, purge, "purge").await;
    bob_visits(&server, &b_pw, &mut m).await;
    assert!(feed_ids(&m).is_empty(), "empty after a purge");
    assert_eq!(
        markers(&m),
        ["no stored items on the service"],
        "with a marker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_gets_what_it_missed_without_a_resync() {
    // With XEP-0198 the server keeps the session and replays what was sent while we were gone.
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["resume"]).await;
    let (a_cfg, _) = account(&server, "alice", "a");
    let (mut b_cfg, _) = account(&server, "bob", "b");
    let relay = relay::Relay::start(server.port).await;
    b_cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    let mut a_session = session(&["resume"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    let mut b = xmpp::spawn(
        b_cfg,
        session(&["resume"], false, Duration::from_secs(3600)),
    );
    let mut m = model_for("resume");
    run_until(&mut b, &mut m, 20, "initial snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;

    relay.set_accepting(false);
    relay.cut().await;
    run_until(&mut b, &mut m, 40, "bob noticing the cut", |e| {
        matches!(
            e,
            NetEvent::Connection(ConnState::Suspended | ConnState::Retrying { .. })
        )
    })
    .await;
    let published = publish_n(&mut a, "resume", 10).await;
    relay.set_accepting(true);
    let mut resumed = None;
    let mut snapshots = 0;
    let last = published[9].clone();
    run_until(
        &mut b,
        &mut m,
        40,
        "the missed items",
        |e| matches!(e, NetEvent::Item(i) if i.id() == Some(last.as_str())),
    )
    .await;
    // Collect what else arrives shortly after.
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), b.events.recv()).await
    {
        if let NetEvent::Connection(ConnState::Online { resumed: r, .. }) = &ev {
            resumed = Some(*r);
        }
        if matches!(ev, NetEvent::Snapshot { .. }) {
            snapshots += 1;
        }
        let _ = update(&mut m, Msg::Net(ev));
    }
    let online = m.conn.clone();
    assert!(
        matches!(online, ConnState::Online { resumed: true, .. }),
        "{online:?} {resumed:?}"
    );
    assert_eq!(snapshots, 0, "no resync after a resumption");
    assert_eq!(
        feed_ids(&m),
        published,
        "everything sent during the cut arrived"
    );
}
