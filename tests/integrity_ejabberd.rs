//! Integrity against a real private ejabberd: RSM paging through more items than fit on one
//! page, the last item ejabberd re-sends at each login (no duplicate row, no false gap), and a
//! cut connection followed by one automatic resync with nothing lost or doubled.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::tui::model::Model;
use pubsub_tui::tui::update::{Msg, update};
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent, NetHandle, SnapshotReason};

#[derive(Default)]
struct Seen {
    gaps: usize,
    pages: usize,
    resync_started: Option<Instant>,
    resync_took: Option<Duration>,
}

impl Seen {
    fn observe(&mut self, ev: &NetEvent) {
        match ev {
            NetEvent::Gap { .. } => self.gaps += 1,
            NetEvent::ResyncProgress { .. } => self.pages += 1,
            NetEvent::ResyncStarted { .. } => self.resync_started = Some(Instant::now()),
            NetEvent::Snapshot { .. } => {
                self.resync_took = self.resync_started.map(|t| t.elapsed());
            }
            _ => {}
        }
    }
}

/// [`run_until`] that also counts gaps, pages and resync time in `seen`.
async fn run_counting(
    net: &mut NetHandle,
    m: &mut Model,
    seen: &mut Seen,
    secs: u64,
    what: &str,
    pred: impl Fn(&NetEvent) -> bool,
) {
    run_until(net, m, secs, what, |ev| {
        seen.observe(ev);
        pred(ev)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsm_paging_through_1000_items_and_the_last_item_at_login() {
    let Some(server) = start_ejabberd(true) else {
        return;
    };
    let a_cfg = ejabberd_account(&server, "alice", "a");
    let b_cfg = ejabberd_account(&server, "bob", "b");
    let mut a_session = session(&["big"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    // ejabberd creates the node on the first publish.
    let published = publish_n(&mut a, "big", 1000).await;

    let mut b = xmpp::spawn(
        b_cfg.clone(),
        session(&["big"], false, Duration::from_secs(3600)),
    );
    let mut m = model_for("big");
    let mut seen = Seen::default();
    run_counting(&mut b, &mut m, &mut seen, 60, "the paged snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    assert!(
        seen.pages >= 4,
        "1000 items in pages of 200: {} page events",
        seen.pages
    );
    assert_eq!(feed_ids(&m), published, "all 1000, in order");
    let feed = &m.nodes[0].feed;
    assert!(
        matches!(
            feed.row(feed.len() - 1).map(|r| &r.kind),
            Some(pubsub_tui::feed::RowKind::Marker { .. })
        ),
        "the resync marker comes last"
    );
    println!(
        "ejabberd: resync of 1000 items took {:?} ({} pages)",
        seen.resync_took.expect("timed"),
        seen.pages + 1
    );

    // Log in again: ejabberd re-sends the last item (at subscribe and at presence), while
    // the resync is in flight. It comes once, in the snapshot: no live copy, no duplicate
    // row, no false gap.
    let _ = b.commands.send(Command::Shutdown).await;
    let _ = b.task.await;
    let mut b = xmpp::spawn(b_cfg, session(&["big"], false, Duration::from_secs(3600)));
    let last = published[999].clone();
    let mut resent = 0;
    let mut gaps = 0;
    let mut in_snapshot = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = if in_snapshot.is_some() {
            // After the snapshot, a little while for anything late.
            tokio::time::Instant::now() + Duration::from_secs(2)
        } else {
            deadline
        };
        let Ok(ev) = tokio::time::timeout_at(wait, b.events.recv()).await else {
            assert!(in_snapshot.is_some(), "the snapshot in time");
            break;
        };
        let ev = ev.expect("open");
        match &ev {
            NetEvent::Item(i) if i.id() == Some(last.as_str()) => resent += 1,
            NetEvent::Gap { .. } => gaps += 1,
            NetEvent::Snapshot { items, .. } => {
                in_snapshot = Some(
                    items
                        .iter()
                        .filter(|i| i.id() == Some(last.as_str()))
                        .count(),
                );
            }
            _ => {}
        }
        let _ = update(&mut m, Msg::Net(ev));
    }
    println!("ejabberd's last item at login: {resent} live copies");
    assert_eq!(in_snapshot, Some(1), "the last item, once, in the snapshot");
    assert_eq!(resent, 0, "no live copy of an item the snapshot brings");
    assert_eq!(gaps, 0, "no false gap");
    let ids = feed_ids(&m);
    assert_eq!(ids.len(), 1000);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        1000,
        "no duplicate row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resynced_with_nothing_lost_or_doubled() {
    let Some(server) = start_ejabberd(false) else {
        return;
    };
    let a_cfg = ejabberd_account(&server, "alice", "a");
    let mut b_cfg = ejabberd_account(&server, "bob", "b");
    let relay = relay::Relay::start(server.port).await;
    b_cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    b_cfg.max_attempts = None;
    let mut a_session = session(&["cut"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;
    let mut published = publish_n(&mut a, "cut", 250).await;

    let mut b = xmpp::spawn(b_cfg, session(&["cut"], false, Duration::from_secs(3600)));
    let mut m = model_for("cut");
    let mut seen = Seen::default();
    run_counting(&mut b, &mut m, &mut seen, 60, "initial snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. })
    })
    .await;
    assert_eq!(feed_ids(&m), published);

    relay.set_accepting(false);
    relay.cut().await;
    run_counting(&mut b, &mut m, &mut seen, 40, "bob noticing the cut", |e| {
        matches!(
            e,
            NetEvent::Connection(ConnState::Suspended | ConnState::Retrying { .. })
        )
    })
    .await;
    published.extend(publish_n(&mut a, "cut", 30).await);
    relay.set_accepting(true);
    run_counting(&mut b, &mut m, &mut seen, 60, "the automatic resync", |e| {
        matches!(
            e,
            NetEvent::Snapshot {
                reason: SnapshotReason::Initial,
                ..
            }
        )
    })
    .await;
    // Let late duplicates (the re-sent last item, double subscriptions) arrive.
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(1), b.events.recv()).await {
        let _ = update(&mut m, Msg::Net(ev));
    }
    let ids = feed_ids(&m);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "no duplicates"
    );
    assert_eq!(ids, published, "nothing lost, in order");
}
