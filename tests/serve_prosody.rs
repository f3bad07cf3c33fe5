//! `pubsub-tui serve` on a real Prosody, driven by our client core: items flow between
//! clients with the node-wide sequence number, unreachable subscribers are paused and come
//! back, and a `kill -9` of the service mid-stream loses nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::serve::{Serve, subscribed};
use common::{account, session_at, wait_for, wait_online};
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::session::SessionConfig;
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent, NetHandle};

/// A client of `serve`'s node "test" that does not auto-publish.
fn client_of(serve: &Serve) -> SessionConfig {
    session_at(&serve.jid, &["test"], false, Duration::from_secs(60))
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
    let mut bob = xmpp::spawn(bob_cfg, client_of(&serve));
    subscribed(&mut bob).await;
    let mut alice = xmpp::spawn(alice_cfg, client_of(&serve));
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
        got.iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect::<Vec<_>>(),
        ids,
        "bob sees alice's items, in order, under the ids she published"
    );
    assert_eq!(
        got.iter().map(|i| i.service_seq).collect::<Vec<_>>(),
        (1..=5).map(Some).collect::<Vec<_>>(),
        "each notification carries the node-wide number"
    );
    assert!(got.iter().all(|i| i.sender() == Some("alice@localhost/a")));
    assert_eq!(got[4].text(), "item 4", "the payload arrives verbatim");

    // Stored: a retrieve gives the same items back.
    let stored = common::manual_resync(&mut bob, "test").await;
    assert_eq!(
        stored
            .iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect::<Vec<_>>(),
        ids
    );
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = bob.commands.send(Command::Shutdown).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gone_subscriber_is_paused_not_forgotten() {
    // Without stream management, a client that vanishes is gone at once for the server (with
    // it, its session would hibernate for a while and answer nothing).
    let Some(server) = common::start_prosody(&Options {
        stream_management: false,
        ..Options::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(&server, "relay", dir.path(), &["--probe-interval", "0.5"]);
    let (alice_cfg, _) = account(&server, "alice", "a");
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(bob_cfg.clone(), client_of(&serve));
    subscribed(&mut bob).await;
    // Bob vanishes without unsubscribing (a crash, a lost laptop): his task is dropped.
    bob.task.abort();
    let _ = bob.task.await;
    drop(bob.commands);

    serve.wait_log("subscriber paused", 10).await;
    assert!(serve.log_text().contains("jid=bob@localhost/b"));

    // Items published while bob is away are kept for him.
    let mut alice = xmpp::spawn(alice_cfg, client_of(&serve));
    subscribed(&mut alice).await;
    let missed = common::publish_n(&mut alice, "test", 3).await;

    // Bob comes back: his subscription was kept; the retrieve brings what he missed.
    let mut bob = xmpp::spawn(bob_cfg, client_of(&serve));
    wait_online(&mut bob).await;
    let items = wait_for(&mut bob, 20, "bob's snapshot", |e| match e {
        NetEvent::Snapshot { items, .. } => Some(items.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        items
            .iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect::<Vec<_>>(),
        missed
    );
    serve.wait_log("subscriber resumed", 10).await;
    let next = common::publish_n(&mut alice, "test", 1).await;
    let live = wait_for(&mut bob, 10, "a live item after the pause", |e| match e {
        NetEvent::Item(i) => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(live.id(), next.first().map(String::as_str));
    assert_eq!(live.service_seq, Some(4));
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = bob.commands.send(Command::Shutdown).await;
}

/// Bob (subscriber, with a TUI model) and alice (auto-publishing) around a service that gets
/// killed, and everything they reported.
struct KillRun {
    bob: NetHandle,
    alice: NetHandle,
    model: pubsub_tui::tui::model::Model,
    /// Node-wide numbers of bob's live items, in arrival order.
    live_seqs: Vec<u64>,
    /// Gap ranges bob reported.
    gaps: Vec<(u64, u64)>,
    confirmed: BTreeSet<String>,
    failed: usize,
}

impl KillRun {
    /// Move events for `dur`: bob's into the model (and the record), alice's outcomes.
    async fn pump(&mut self, dur: Duration) {
        let end = tokio::time::Instant::now() + dur;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(end) => break,
                Some(ev) = self.bob.events.recv() => {
                    match &ev {
                        NetEvent::Item(i) => {
                            self.live_seqs.push(i.service_seq.expect("a seq on every notification"));
                        }
                        NetEvent::Gap { from, to, .. } => self.gaps.push((*from, *to)),
                        NetEvent::Connection(ConnState::Failed { error }) => panic!("bob failed: {error}"),
                        _ => {}
                    }
                    let _ = pubsub_tui::tui::update::update(
                        &mut self.model,
                        pubsub_tui::tui::update::Msg::Net(ev),
                    );
                }
                Some(ev) = self.alice.events.recv() => match ev {
                    NetEvent::Reply { result: Ok(pubsub_tui::xmpp::Answer::Published { id, .. }), .. } => {
                        self.confirmed.insert(id);
                    }
                    NetEvent::Reply { result: Err(_), .. } => self.failed += 1,
                    _ => {}
                },
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_serve_mid_stream_loses_nothing() {
    const KILLS: usize = 5;
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::start(&server, "relay", dir.path(), &[]);
    let (alice_cfg, _) = account(&server, "alice", "a");
    let (bob_cfg, bob_pw) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(bob_cfg, client_of(&serve));
    let mut model = common::model_for("test");
    common::run_until(&mut bob, &mut model, 20, "bob subscribed", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    // Alice auto-publishes every 100 ms through all of it.
    let mut alice = xmpp::spawn(
        alice_cfg,
        SessionConfig {
            iq_timeout: Duration::from_secs(3),
            ..session_at(&serve.jid, &["test"], true, Duration::from_millis(100))
        },
    );
    wait_online(&mut alice).await;
    let mut run = KillRun {
        bob,
        alice,
        model,
        live_seqs: Vec::new(),
        gaps: Vec::new(),
        confirmed: BTreeSet::new(),
        failed: 0,
    };
    for _ in 0..KILLS {
        run.pump(Duration::from_millis(1500)).await;
        serve.kill9();
        run.pump(Duration::from_millis(300)).await;
        serve.restart();
    }
    run.pump(Duration::from_millis(1500)).await;
    run.alice
        .commands
        .send(Command::SetAutoPublish {
            enabled: false,
            node: None,
        })
        .await
        .expect("send");
    // Let answers in flight (and their notifications) arrive.
    run.pump(Duration::from_secs(4)).await;

    let stored: Vec<String> = common::node_items_at(&server, "bob", &bob_pw, &serve.jid, "test")
        .await
        .into_iter()
        .filter_map(|i| i.id().map(str::to_owned))
        .collect();
    let stored_set: BTreeSet<String> = stored.iter().cloned().collect();
    assert!(
        run.confirmed.is_subset(&stored_set),
        "every confirmed publish is stored; missing: {:?}",
        run.confirmed.difference(&stored_set).collect::<Vec<_>>()
    );
    // The same items, each once. (The order may differ: a publish tried again after the
    // service came back arrives after later ones, and the feed shows arrival order.)
    let feed = common::feed_ids(&run.model);
    let feed_set: BTreeSet<String> = feed.iter().cloned().collect();
    assert_eq!(feed.len(), feed_set.len(), "no item twice in bob's feed");
    assert_eq!(feed_set, stored_set, "bob's feed has the service's items");
    // The numbering survived every kill: never reused.
    let mut sorted = run.live_seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        run.live_seqs.len(),
        "no number delivered twice"
    );
    // Exact gap detection: the reported ranges are exactly the numbers bob did not get live.
    let seen: BTreeSet<u64> = run.live_seqs.iter().copied().collect();
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let unseen: BTreeSet<u64> = (lo..=hi).filter(|n| !seen.contains(n)).collect();
    let reported: BTreeSet<u64> = run.gaps.iter().flat_map(|(a, b)| *a..=*b).collect();
    assert_eq!(
        reported, unseen,
        "gap reports match the missing numbers exactly"
    );
    eprintln!(
        "kill -9 x{KILLS}: {} confirmed, {} failed while the service was down, {} stored, \
         {} live at bob (seq {lo}..={hi}), {} gap(s) {:?}",
        run.confirmed.len(),
        run.failed,
        stored.len(),
        run.live_seqs.len(),
        run.gaps.len(),
        run.gaps
    );
    let _ = run.alice.commands.send(Command::Shutdown).await;
    let _ = run.bob.commands.send(Command::Shutdown).await;
}
