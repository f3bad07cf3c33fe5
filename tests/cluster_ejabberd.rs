//! A two-node ejabberd cluster with pubsub on PostgreSQL (issue 18): a subscriber on node A and
//! a publisher on node B see each other's items, and when A dies the subscriber moves to B,
//! resyncs, and ends with every item, none twice.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::feed::{ItemState, MarkerKind, RowKind};
use pubsub_tui::tui::update::{Msg, update};
use pubsub_tui::xmpp::{self, Answer, Command, ConnState, NetEvent, OwnerOp, SnapshotReason};

/// One cluster at a time: each is four Erlang VMs' worth of work for two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_moves_to_the_other_node_when_its_node_dies_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let Some(mut cluster) = start_cluster() else {
        return;
    };
    let set_up = started.elapsed();
    // Accounts registered on one node are the cluster's.
    let alice_cfg = ejabberd_account(&cluster.a, "alice", "sub");
    let bob_cfg = ejabberd_account(&cluster.b, "bob", "pub");
    let (a_port, b_port) = (cluster.a.port, cluster.b.port);

    // Bob, on B, creates the node with its first item.
    let mut bob = publisher(bob_cfg, "n").await;
    let mut published = publish_n(&mut bob, "n", 1).await;

    // Alice, given both nodes, is on A.
    let (mut alice, mut m) = subscriber(alice_cfg, a_port, b_port, "n").await;

    // 100 items from B reach her on A, live.
    published.extend(publish_n(&mut bob, "n", 100).await);
    until_held(&mut alice, &mut m, published.len()).await;
    assert_eq!(feed_ids(&m), published, "across the cluster, live");

    // A dies; bob goes on publishing on B meanwhile (in a task of its own, so that alice's
    // events are read, and timed, as they come).
    let killed = Instant::now();
    cluster.a.kill();
    let publishing = tokio::spawn(async move {
        let ids = publish_n(&mut bob, "n", 100).await;
        (bob, ids)
    });
    let mut back = None;
    let mut resynced = None;
    // Each notification once (ejabberd re-sends a node's last item at subscribe and at
    // presence: the item last received live would come again).
    let mut notified: Vec<String> = Vec::new();
    run_until(&mut alice, &mut m, 60, "alice back, resynced", |e| {
        if let NetEvent::Item(i) = e {
            notified.extend(i.id().map(str::to_owned));
        }
        match e {
            NetEvent::Connection(ConnState::Online { server, .. }) => {
                back = Some((killed.elapsed(), server.clone()));
            }
            NetEvent::Snapshot {
                reason: SnapshotReason::Initial,
                ..
            } if back.is_some() => resynced = Some(killed.elapsed()),
            _ => {}
        }
        resynced.is_some()
    })
    .await;
    let (mut bob, more) = publishing.await.expect("bob's task");
    published.extend(more);
    let (failover, server) = back.expect("online again");
    assert_eq!(
        server,
        Some(format!("127.0.0.1:{b_port}")),
        "alice moved to B"
    );
    // The rest of bob's items, and late duplicates (items re-sent at login, a second
    // subscription), have their chance.
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(2), alice.events.recv()).await
    {
        if let NetEvent::Item(i) = &ev {
            notified.extend(i.id().map(str::to_owned));
        }
        let _ = update(&mut m, Msg::Net(ev));
    }
    // Control: items published now, with alice settled on B, come to her live.
    let after = publish_n(&mut bob, "n", 10).await;
    published.extend(after.iter().cloned());
    while !after.iter().all(|id| notified.contains(id)) {
        run_until(
            &mut alice,
            &mut m,
            30,
            "the last items live at alice",
            |e| {
                if let NetEvent::Item(i) = e {
                    notified.extend(i.id().map(str::to_owned));
                }
                matches!(e, NetEvent::Item(_))
            },
        )
        .await;
    }
    drop(bob);
    assert_each_once(&notified, &feed_ids(&m), &published);
    let stored = cluster.pg.psql(
        "ejabberd",
        "ejabberd",
        &["-c", "SELECT count(*) FROM pubsub_item"],
    );
    assert_eq!(
        stored.trim(),
        published.len().to_string(),
        "the items are in PostgreSQL"
    );
    let resync = resynced.expect("resynced").saturating_sub(failover);
    println!(
        "cluster: set up in {} ms; failover {} ms from the kill to online on B, resync {} ms \
         more; whole test {} ms",
        set_up.as_millis(),
        failover.as_millis(),
        resync.as_millis(),
        started.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_the_service_evicted_while_the_subscriber_moved_are_marked_lost_exactly() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut cluster) = start_cluster() else {
        return;
    };
    let alice_cfg = ejabberd_account(&cluster.a, "alice", "sub");
    let bob_cfg = ejabberd_account(&cluster.b, "bob", "pub");
    let (a_port, b_port) = (cluster.a.port, cluster.b.port);

    // Bob, on B, makes a node that keeps its newest 50 items.
    let mut bob = publisher(bob_cfg, "ev").await;
    create_node(&mut bob, "ev", 50).await;

    // Alice reaches B through a relay, which can hold her off B for a while.
    let to_b = relay::Relay::start(b_port).await;
    let (mut alice, mut m) = subscriber(alice_cfg, a_port, to_b.port, "ev").await;
    let seen = publish_n(&mut bob, "ev", 30).await;
    until_held(&mut alice, &mut m, seen.len()).await;

    // A dies, and B is out of alice's reach for now. Meanwhile bob publishes 100 more: the
    // node keeps the newest 50, so numbers 31 to 80 alice never received are gone from the
    // service. Then she reaches B.
    to_b.set_accepting(false);
    cluster.a.kill();
    run_until(&mut alice, &mut m, 30, "alice offline", |e| {
        matches!(e, NetEvent::Connection(ConnState::Retrying { .. }))
    })
    .await;
    let later = publish_n(&mut bob, "ev", 100).await;
    to_b.set_accepting(true);
    let mut lost = None;
    run_until(&mut alice, &mut m, 60, "alice resynced on B", |e| match e {
        NetEvent::Snapshot {
            reason: SnapshotReason::Initial,
            lost: l,
            ..
        } => {
            lost = Some(l.clone());
            true
        }
        _ => false,
    })
    .await;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(2), alice.events.recv()).await
    {
        let _ = update(&mut m, Msg::Net(ev));
    }
    let lost = lost.expect("a snapshot");
    let ranges: Vec<(u64, u64)> = lost.iter().map(|l| (l.from, l.to)).collect();
    assert_eq!(
        ranges,
        [(31, 80)],
        "exactly the evicted numbers alice never had"
    );

    // The feed: the 30 alice had (gone from the service, kept here), a lost marker, then the
    // 50 the service keeps; none twice.
    let mut expected = seen.clone();
    expected.extend(later[50..].iter().cloned());
    assert_feed_after_eviction(&m, &expected);
    drop(bob);
}

/// Each notification came once (ejabberd re-sends a node's last item at subscribe and at
/// presence), and the feed is `published`, in order, none twice.
fn assert_each_once(notified: &[String], feed: &[String], published: &[String]) {
    let distinct: HashSet<&String> = notified.iter().collect();
    assert_eq!(
        distinct.len(),
        notified.len(),
        "a notification twice: {notified:?}"
    );
    assert_eq!(
        feed.iter().collect::<HashSet<_>>().len(),
        feed.len(),
        "no duplicates"
    );
    assert_eq!(feed, published, "every item, in order");
}

/// Alice following `node`, given node A's port and then B's: online on A, with her first
/// snapshot.
async fn subscriber(
    mut cfg: pubsub_tui::xmpp::connect::ConnectConfig,
    a_port: u16,
    b_port: u16,
    node: &str,
) -> (xmpp::NetHandle, pubsub_tui::tui::model::Model) {
    cfg.servers = vec![("127.0.0.1".into(), a_port), ("127.0.0.1".into(), b_port)];
    cfg.max_attempts = None;
    let mut alice = xmpp::spawn(cfg, session(&[node], false, Duration::from_secs(3600)));
    let mut m = model_for(node);
    let mut on = None;
    run_until(&mut alice, &mut m, 30, "alice's first snapshot", |e| {
        if let NetEvent::Connection(ConnState::Online { server, .. }) = e {
            on.clone_from(server);
        }
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    assert_eq!(on, Some(format!("127.0.0.1:{a_port}")), "alice is on A");
    (alice, m)
}

/// Until alice's feed holds `count` items.
async fn until_held(
    alice: &mut xmpp::NetHandle,
    m: &mut pubsub_tui::tui::model::Model,
    count: usize,
) {
    while feed_ids(m).len() < count {
        run_until(alice, m, 30, "bob's items at alice", |e| {
            matches!(e, NetEvent::Item(_))
        })
        .await;
    }
}

/// A session that publishes to `node` without following it, online.
async fn publisher(cfg: pubsub_tui::xmpp::connect::ConnectConfig, node: &str) -> xmpp::NetHandle {
    let mut s = session(&[node], false, Duration::from_secs(3600));
    s.subscribe = false;
    let mut net = xmpp::spawn(cfg, s);
    wait_online(&mut net).await;
    net
}

/// Create `node`, open, keeping `max_items`.
async fn create_node(net: &mut xmpp::NetHandle, node: &str, max_items: u32) {
    net.commands
        .send(Command::Owner {
            req: req(),
            node: net.key(node),
            op: OwnerOp::open_node(max_items, None),
        })
        .await
        .expect("send");
    wait_for(net, 15, "the node created", |e| match e {
        NetEvent::Reply {
            result: Ok(Answer::Owner { .. }),
            ..
        } => Some(()),
        NetEvent::Reply { result: Err(e), .. } => panic!("create: {e}"),
        _ => None,
    })
    .await;
}

/// The feed holds `expected` in order, the first 30 gone from the service, and one marker of
/// 50 lost items.
fn assert_feed_after_eviction(m: &pubsub_tui::tui::model::Model, expected: &[String]) {
    assert_eq!(feed_ids(m), expected);
    let feed = &m.nodes[0].feed;
    let rows: Vec<&RowKind> = feed.rows(0, feed.len()).map(|r| &r.kind).collect();
    let gone = rows
        .iter()
        .filter(|k| {
            matches!(
                k,
                RowKind::Item {
                    state: ItemState::Gone,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        gone, 30,
        "what alice had, marked as no longer on the service"
    );
    let lost_markers: Vec<&String> = rows
        .iter()
        .filter_map(|k| match k {
            RowKind::Marker {
                kind: MarkerKind::Lost,
                text,
            } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(lost_markers.len(), 1, "{lost_markers:?}");
    assert!(lost_markers[0].contains("50"), "{lost_markers:?}");
}
