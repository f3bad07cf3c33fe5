//! Property tests: the gap detector and the feed store against simple reference models, over
//! random sequences of publish, drop (a notification that never arrives), redelivery,
//! publisher restarts, retract, purge, resync (disconnect) and eviction.

use std::collections::BTreeSet;

use proptest::prelude::*;
use pubsub_tui::feed::gap::{GapTracker, MAX_HOLES, Verdict};
use pubsub_tui::feed::{FeedItem, ItemFormat, ItemParts, ItemState, NodeFeed, RowKind, Seq};

#[derive(Debug, Clone)]
enum SeqOp {
    /// The publisher sends its next item; `delivered` says whether it reaches us.
    Publish { delivered: bool },
    /// An earlier number arrives (again, or late).
    Redeliver(u64),
    /// The publisher restarts with a new session.
    Restart,
}

fn seq_op() -> impl Strategy<Value = SeqOp> {
    prop_oneof![
        6 => any::<bool>().prop_map(|d| SeqOp::Publish { delivered: d }),
        2 => (1u64..60).prop_map(SeqOp::Redeliver),
        1 => Just(SeqOp::Restart),
    ]
}

/// The reference: what a perfect observer of one publisher would say.
#[derive(Default)]
struct RefPublisher {
    session: u32,
    sent: u64,
    seen: BTreeSet<u64>,
    /// Anything observed at all (in any session).
    ever_observed: bool,
    /// The first number observed in the current session: nothing below it is tracked.
    first: Option<u64>,
    /// Holes left in earlier sessions: they stay missing (the tracker keeps every session).
    past_holes: u64,
}

impl RefPublisher {
    fn holes(&self) -> u64 {
        let (Some(first), Some(&last)) = (self.first, self.seen.iter().next_back()) else {
            return 0;
        };
        (first..=last).filter(|k| !self.seen.contains(k)).count() as u64
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn gap_detector_matches_the_reference(ops in proptest::collection::vec(seq_op(), 1..100)) {
        let mut tracker = GapTracker::new();
        let mut r = RefPublisher::default();
        for op in ops {
            let n = match op {
                SeqOp::Publish { delivered } => {
                    r.sent += 1;
                    if !delivered { continue; }
                    r.sent
                }
                SeqOp::Redeliver(n) => {
                    if n > r.sent { continue; }
                    n
                }
                SeqOp::Restart => {
                    r.past_holes += r.holes();
                    r.session += 1;
                    r.sent = 0;
                    r.seen.clear();
                    r.first = None;
                    continue;
                }
            };
            let seq = Seq::new(format!("s{}", r.session), n);
            let verdict = tracker.observe(Some("alice"), Some(&seq));
            let max = r.seen.iter().next_back().copied();
            let expected = match max {
                None if r.ever_observed => Verdict::Restarted,
                None => Verdict::First,
                Some(m) if n == m + 1 => Verdict::InOrder,
                Some(m) if n > m + 1 => Verdict::Gap(m + 1..=n - 1),
                Some(_) if r.seen.contains(&n) => Verdict::Duplicate,
                Some(_) if n < r.first.unwrap_or(0) => Verdict::Duplicate,
                Some(_) => Verdict::OutOfOrder,
            };
            // A number below the first one seen in the session is not tracked as a hole.
            prop_assert_eq!(&verdict, &expected, "n={} seen={:?}", n, &r.seen);
            r.seen.insert(n);
            r.ever_observed = true;
            r.first.get_or_insert(n);
            let holes = r.holes();
            prop_assume!(holes < MAX_HOLES as u64);
            prop_assert_eq!(tracker.missing(), holes + r.past_holes);
        }
    }
}

// ---- the feed store ----

#[derive(Debug, Clone)]
enum StoreOp {
    Push(u8, u8),
    Retract(u8),
    Purge,
    /// A resync (after a disconnect): the service's set replaces the view.
    Resync(Vec<u8>),
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    prop_oneof![
        8 => (0u8..12, any::<u8>()).prop_map(|(i, t)| StoreOp::Push(i, t)),
        2 => (0u8..12).prop_map(StoreOp::Retract),
        1 => Just(StoreOp::Purge),
        1 => proptest::collection::vec(0u8..12, 0..8).prop_map(StoreOp::Resync),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum RefRow {
    Item { id: u8, text: u8, retracted: bool },
    Marker,
}

fn item(id: u8, text: u8) -> FeedItem {
    ItemParts {
        node: "n".into(),
        id: Some(format!("i{id}")),
        text: text.to_string(),
        format: ItemFormat::Native,
        ..ItemParts::default()
    }
    .into()
}

fn ref_push(rows: &mut Vec<RefRow>, evicted: &mut u64, cap: usize, row: RefRow) {
    rows.push(row);
    let live = |rows: &Vec<RefRow>| {
        rows.iter()
            .filter(|r| {
                matches!(
                    r,
                    RefRow::Item {
                        retracted: false,
                        ..
                    }
                )
            })
            .count()
    };
    while live(rows) > cap || rows.len() > 2 * cap {
        rows.remove(0);
        *evicted += 1;
    }
}

fn ref_push_item(rows: &mut Vec<RefRow>, evicted: &mut u64, cap: usize, id: u8, text: u8) {
    let live = rows
        .iter_mut()
        .find(|r| matches!(r, RefRow::Item { id: i, retracted: false, .. } if *i == id));
    if let Some(RefRow::Item { text: t, .. }) = live {
        *t = text;
    } else {
        ref_push(
            rows,
            evicted,
            cap,
            RefRow::Item {
                id,
                text,
                retracted: false,
            },
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn feed_store_matches_the_reference(cap in 1usize..10, ops in proptest::collection::vec(store_op(), 1..80)) {
        let mut feed = NodeFeed::new(cap);
        let mut rows: Vec<RefRow> = Vec::new();
        let mut evicted = 0u64;
        for op in ops {
            match op {
                StoreOp::Push(id, text) => {
                    feed.push_item(item(id, text));
                    ref_push_item(&mut rows, &mut evicted, cap, id, text);
                }
                StoreOp::Retract(id) => {
                    feed.retract(&format!("i{id}"));
                    if let Some(RefRow::Item { retracted, .. }) = rows.iter_mut().find(|r| matches!(r, RefRow::Item { id: i, retracted: false, .. } if *i == id)) {
                        *retracted = true;
                    }
                    ref_push(&mut rows, &mut evicted, cap, RefRow::Marker);
                }
                StoreOp::Purge => {
                    feed.clear_with_marker(pubsub_tui::feed::MarkerKind::Purge, "purged");
                    rows.clear();
                    evicted = 0;
                    ref_push(&mut rows, &mut evicted, cap, RefRow::Marker);
                }
                StoreOp::Resync(ids) => {
                    feed.replace_all(ids.iter().map(|&i| item(i, 0)), "resynced".into());
                    rows.clear();
                    evicted = 0;
                    for i in ids {
                        ref_push_item(&mut rows, &mut evicted, cap, i, 0);
                    }
                    ref_push(&mut rows, &mut evicted, cap, RefRow::Marker);
                }
            }
            let got: Vec<RefRow> = feed.rows(0, feed.len()).map(|r| match &r.kind {
                RowKind::Item { item, state } => RefRow::Item {
                    id: item.id().and_then(|s| s[1..].parse().ok()).unwrap_or(255),
                    text: item.text().parse().unwrap_or(0),
                    retracted: *state == ItemState::Retracted,
                },
                RowKind::Marker { .. } => RefRow::Marker,
            }).collect();
            prop_assert_eq!(&got, &rows);
            prop_assert_eq!(feed.evicted(), evicted);
            let live = rows.iter().filter(|r| matches!(r, RefRow::Item { retracted: false, .. })).count();
            prop_assert_eq!(feed.item_count(), live);
        }
    }
}
