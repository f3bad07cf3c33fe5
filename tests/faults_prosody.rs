//! Connection faults against a real Prosody: the server is killed (SIGKILL) and restarted 20
//! times while items are being published. Each time the subscriber reconnects within 8 s and
//! runs exactly one resync; at the end its feed equals the node's items, with nothing lost and
//! nothing doubled, and every publish was either confirmed once or reported failed. And a
//! slow, sliced link (delay, throttle, 7-byte writes) followed by a TCP reset loses nothing.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::Options;
use pubsub_tui::tui::update::{Msg, update};
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent};

const RESTARTS: usize = 20;

/// Every publish outcome per item id (true: confirmed, false: failed), until the core ends.
type Outcomes = Arc<Mutex<HashMap<String, Vec<bool>>>>;

fn collect_publish_outcomes(mut net: xmpp::NetHandle) -> (Outcomes, tokio::task::JoinHandle<()>) {
    let results: Outcomes = Arc::default();
    let task = {
        let results = results.clone();
        tokio::spawn(async move {
            // A reply names its request; the item id comes with the request's PublishSent.
            let mut item_of = HashMap::new();
            while let Some(ev) = net.events.recv().await {
                let (id, ok) = match ev {
                    NetEvent::PublishSent {
                        req: Some(req), id, ..
                    } => {
                        item_of.insert(req, id);
                        continue;
                    }
                    NetEvent::Reply { req, result } => match item_of.get(&req) {
                        Some(id) => (id.clone(), result.is_ok()),
                        None => continue,
                    },
                    // Auto-published items are told by events of their own.
                    NetEvent::AutoPublished { id, .. } => (id, true),
                    NetEvent::AutoPublishFailed { id, .. } => (id, false),
                    _ => continue,
                };
                results
                    .lock()
                    .expect("lock")
                    .entry(id)
                    .or_default()
                    .push(ok);
            }
        })
    };
    (results, task)
}

/// Feed `b`'s events into the model until it is back online (a fresh session) and resynced.
/// Returns how long that took from `up`, to being online.
async fn until_resynced(
    b: &mut xmpp::NetHandle,
    m: &mut pubsub_tui::tui::model::Model,
    snapshots: &mut usize,
    what: &str,
    up: Instant,
) -> f64 {
    let mut online = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, b.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no resync within 20 s"))
            .expect("open");
        if let NetEvent::Connection(ConnState::Failed { error }) = &ev {
            panic!("{what}: {error}");
        }
        if matches!(ev, NetEvent::Connection(ConnState::Online { .. })) && online.is_none() {
            online = Some(up.elapsed().as_secs_f64());
        }
        let done = online.is_some() && matches!(ev, NetEvent::Snapshot { .. });
        apply(m, ev, snapshots);
        if let (true, Some(secs)) = (done, online) {
            return secs;
        }
    }
}

fn apply(m: &mut pubsub_tui::tui::model::Model, ev: NetEvent, snapshots: &mut usize) {
    if matches!(ev, NetEvent::Snapshot { .. }) {
        *snapshots += 1;
    }
    let _ = update(m, Msg::Net(ev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_server_restarts_while_publishing() {
    // File storage: items survive the kills.
    let opts = Options {
        memory_storage: false,
        ..Options::default()
    };
    let Some(mut server) = start_prosody(&opts) else {
        return;
    };
    create_nodes_with(&server, &["r"], 1000).await;
    // Keep trying (the test default gives up after 3 refused connections).
    let (mut a_cfg, _) = account(&server, "alice", "a");
    let (mut b_cfg, b_pw) = account(&server, "bob", "b");
    a_cfg.max_attempts = None;
    b_cfg.max_attempts = None;

    // Alice auto-publishes every 300 ms (only while online); her results are collected.
    let mut a_session = session(&["r"], true, Duration::from_millis(300));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    let commands = a.commands.clone();
    let (results, collector) = collect_publish_outcomes(a);

    let mut b = xmpp::spawn(b_cfg, session(&["r"], false, Duration::from_secs(3600)));
    let mut m = model_for("r");
    let mut snapshots = 0usize;
    let mut reconnect_secs = Vec::new();
    until_resynced(&mut b, &mut m, &mut snapshots, "start", Instant::now()).await;

    for round in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(600)).await;
        server.stop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart().expect("Prosody restarts");
        let up = Instant::now();
        let what = format!("restart {round}");
        reconnect_secs.push(until_resynced(&mut b, &mut m, &mut snapshots, &what, up).await);
    }

    // Stop publishing, let the last results and notifications arrive.
    commands
        .send(Command::SetAutoPublish {
            enabled: false,
            node: None,
        })
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), b.events.recv()).await
    {
        apply(&mut m, ev, &mut snapshots);
    }
    let _ = commands.send(Command::Shutdown).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), collector).await;

    let worst = reconnect_secs.iter().copied().fold(0.0, f64::max);
    println!("reconnect after restart: worst {worst:.2} s over {RESTARTS}; {snapshots} snapshots");
    assert!(worst < 8.0, "a reconnect took {worst:.2} s");
    assert_eq!(
        snapshots,
        RESTARTS + 1,
        "exactly one resync per restart (plus the first)"
    );

    let results = results.lock().expect("lock").clone();
    for (id, outcomes) in &results {
        assert_eq!(
            outcomes.len(),
            1,
            "{id}: confirmed once or failed once, not {outcomes:?}"
        );
    }
    let confirmed: HashSet<&String> = results
        .iter()
        .filter(|(_, o)| o.contains(&true))
        .map(|(id, _)| id)
        .collect();
    assert!(
        confirmed.len() > RESTARTS,
        "publishing went on: {} confirmed",
        confirmed.len()
    );

    let feed = feed_ids(&m);
    let unique: HashSet<&String> = feed.iter().collect();
    assert_eq!(unique.len(), feed.len(), "no duplicates in the feed");
    for id in &confirmed {
        assert!(
            unique.contains(id),
            "confirmed item {id} is missing from the feed"
        );
    }
    // The node's items, from a fresh client.
    let service = node_item_ids(&server, "bob", &b_pw, "r").await;
    assert_eq!(feed, service, "feed == the node's items");
    assert!(
        m.nodes[0].feed.rows(0, m.nodes[0].feed.len()).all(|r| !matches!(&r.kind, pubsub_tui::feed::RowKind::Marker { text, .. } if text.contains("lost"))),
        "nothing lost"
    );
}

/// Feed `b`'s events into the model until `done` holds for it.
async fn apply_until(
    b: &mut xmpp::NetHandle,
    m: &mut pubsub_tui::tui::model::Model,
    snapshots: &mut usize,
    what: &str,
    done: impl Fn(&pubsub_tui::tui::model::Model) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(m) {
        let ev = tokio::time::timeout_at(deadline, b.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: not within 30 s"))
            .expect("open");
        apply(m, ev, snapshots);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sliced_link_and_a_reset_lose_nothing() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["s"]).await;
    let (a_cfg, _) = account(&server, "alice", "a");
    let (mut b_cfg, b_pw) = account(&server, "bob", "b");
    let relay = relay::Relay::start(server.port).await;
    // Every chunk 30 ms late, 20 kB/s, written 7 bytes at a time, both ways.
    relay.set_shape(relay::Shape {
        delay: Duration::from_millis(30),
        bytes_per_sec: Some(20_000),
        slice: Some(7),
    });
    b_cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    b_cfg.max_attempts = None;

    let mut a_session = session(&["s"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    let mut b = xmpp::spawn(b_cfg, session(&["s"], false, Duration::from_secs(3600)));
    let mut m = model_for("s");
    let mut snapshots = 0;
    until_resynced(&mut b, &mut m, &mut snapshots, "start", Instant::now()).await;

    // Live items arrive whole, in order, over the shaped link.
    let mut ids = publish_n(&mut a, "s", 30).await;
    apply_until(&mut b, &mut m, &mut snapshots, "30 live items", |m| {
        feed_ids(m).len() == 30
    })
    .await;
    assert_eq!(feed_ids(&m), ids);
    assert_eq!(m.nodes[0].gaps, 0, "no gaps over a slow, sliced link");

    // A reset (RST both ways) while more is published: nothing lost, nothing doubled.
    relay.reset().await;
    apply_until(&mut b, &mut m, &mut snapshots, "the reset noticed", |m| {
        !m.conn.to_string().starts_with("online")
    })
    .await;
    ids.extend(publish_n(&mut a, "s", 10).await);
    apply_until(
        &mut b,
        &mut m,
        &mut snapshots,
        "all 40 after the reset",
        |m| feed_ids(m).len() == 40 && m.conn.to_string().starts_with("online"),
    )
    .await;
    assert_eq!(feed_ids(&m), ids, "feed == what was published, in order");

    let service = node_item_ids(&server, "bob", &b_pw, "s").await;
    assert_eq!(feed_ids(&m), service, "feed == the node's items");
}
