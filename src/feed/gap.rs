//! Gap detection from our items' sequence numbers, per node and publisher.
//!
//! A publisher is identified by its sender's bare JID and a session id, and numbers its items
//! 1, 2, 3, … per node. A session outlives one process when the publisher keeps it in its
//! local store (consecutive `publish` runs continue one sequence); without the store each run
//! is a new session. From that, [`GapTracker::observe`] tells apart: the next item, a jump (a
//! gap: items we never received), a late item that fills an earlier gap (out of order), an
//! item we already had (duplicate), and a new session of a sender seen before (numbering
//! starts again, which is not a gap). Each session is tracked on its own, so two processes of
//! one account publishing at once (each holds its own session) do not look like gaps.
//!
//! Missing numbers are kept as ranges, at most [`MAX_HOLES`] per publisher, so an absurd jump
//! (seq 1, then 10^12) costs one range, not memory per missing item.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::{FeedItem, SeqRef};

/// Open holes remembered per publisher; older ones are forgotten beyond this.
pub const MAX_HOLES: usize = 64;

/// What one observed item means for the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The first item seen from this publisher session.
    First,
    /// The next number.
    InOrder,
    /// Numbers in this range were skipped: items we have not received.
    Gap(RangeInclusive<u64>),
    /// A late item that fills (part of) an earlier gap.
    OutOfOrder,
    /// A number we already had.
    Duplicate,
    /// The sender started a new session (its numbering starts again); not a gap.
    Restarted,
    /// The item carries no sequence (another client's, or a Wokkel item): not checked.
    Unchecked,
}

/// Inclusive ranges of numbers, sorted, merged, and bounded in count (the oldest go first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

/// Ranges one [`Ranges`] keeps at most.
const MAX_RANGES: usize = 256;

impl Ranges {
    pub fn insert(&mut self, a: u64, b: u64) {
        let (mut a, mut b) = (a.min(b), a.max(b));
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &(x, y) in &self.0 {
            if y.saturating_add(1) < a {
                out.push((x, y));
            } else if b.saturating_add(1) < x {
                if !placed {
                    out.push((a, b));
                    placed = true;
                }
                out.push((x, y));
            } else {
                a = a.min(x);
                b = b.max(y);
            }
        }
        if !placed {
            out.push((a, b));
        }
        if out.len() > MAX_RANGES {
            out.drain(..out.len() - MAX_RANGES);
        }
        self.0 = out;
    }

    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn contains(&self, n: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= n && n <= b)
    }

    /// The parts of `a..=b` not in these ranges.
    pub fn subtract_from(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut from = a;
        for &(x, y) in &self.0 {
            if y < from || x > b {
                continue;
            }
            if x > from {
                out.push((from, x - 1));
            }
            match y.checked_add(1) {
                Some(next) => from = next,
                None => return out,
            }
            if from > b {
                return out;
            }
        }
        if from <= b {
            out.push((from, b));
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Publisher {
    /// Highest number seen.
    max: u64,
    /// Missing numbers below `max`, oldest first.
    holes: Vec<RangeInclusive<u64>>,
    /// Numbers the publisher says it never published (see [`Seq::void`]).
    void: Ranges,
}

impl Publisher {
    fn new(n: u64) -> Self {
        Self {
            max: n,
            holes: Vec::new(),
            void: Ranges::default(),
        }
    }

    /// Numbers the publisher never published are not holes.
    fn add_void(&mut self, a: u64, b: u64) {
        self.void.insert(a, b);
        let mut holes = Vec::with_capacity(self.holes.len());
        for h in self.holes.drain(..) {
            let mut rest = Ranges::default();
            rest.insert(a, b);
            for (x, y) in rest.subtract_from(*h.start(), *h.end()) {
                holes.push(x..=y);
            }
        }
        self.holes = holes;
    }

    fn observe(&mut self, n: u64) -> Verdict {
        if self.max.checked_add(1) == Some(n) {
            self.max = n;
            return Verdict::InOrder;
        }
        if n > self.max {
            let missing = self.void.subtract_from(self.max + 1, n - 1);
            self.max = n;
            let (Some(first), Some(last)) = (missing.first(), missing.last()) else {
                // Everything skipped was never published.
                return Verdict::InOrder;
            };
            let gap = first.0..=last.1;
            for (a, b) in missing {
                self.holes.push(a..=b);
            }
            if self.holes.len() > MAX_HOLES {
                let excess = self.holes.len() - MAX_HOLES;
                self.holes.drain(..excess);
            }
            return Verdict::Gap(gap);
        }
        // n <= max: either it fills a hole, or we had it.
        let Some(i) = self.holes.iter().position(|h| h.contains(&n)) else {
            return Verdict::Duplicate;
        };
        let hole = self.holes.remove(i);
        let (lo, hi) = (*hole.start(), *hole.end());
        if n < hi {
            self.holes.insert(i, n + 1..=hi);
        }
        if lo < n {
            self.holes.insert(i, lo..=n - 1);
        }
        Verdict::OutOfOrder
    }

    fn missing(&self) -> u64 {
        self.holes
            .iter()
            .map(|h| (h.end() - h.start()).saturating_add(1))
            .fold(0, u64::saturating_add)
    }
}

/// Publisher sessions whose seen numbers a tracker remembers at most.
const MAX_SEEN_SESSIONS: usize = 64;

/// A publisher: the bare JID of its sender, and its session id.
type PublisherKey = (String, String);

/// The bare JID of a sender's full JID (or of whatever it claims).
fn bare(sender: &str) -> &str {
    sender.split('/').next().unwrap_or(sender)
}

/// Sequence state of every publisher seen on one node.
#[derive(Debug, Clone, Default)]
pub struct GapTracker {
    /// By (bare sender, session); at most [`MAX_SEEN_SESSIONS`], the oldest forgotten first.
    by_session: HashMap<PublisherKey, Publisher>,
    by_session_order: Vec<PublisherKey>,
    /// The last session seen of each bare sender (a new one is a restart, not a gap).
    latest: HashMap<String, String>,
    /// The node-wide numbering of a `serve` relay, when its notifications carry one: it
    /// covers every publisher, so it replaces the per-publisher check.
    service: Option<Publisher>,
    /// Numbers received, per (bare sender, publisher session), kept across resyncs: an item
    /// that was received and later evicted by the service is not lost.
    seen: HashMap<PublisherKey, Ranges>,
    /// The order sessions were first seen in, to forget the oldest.
    seen_order: Vec<PublisherKey>,
    /// The publisher sessions this process holds: it knows what it published, so items
    /// claiming them (its own, or forgeries) are not checked.
    own_sessions: Vec<String>,
}

impl GapTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that leaves the items of the publisher session `own` unchecked.
    pub fn ignoring(own: &str) -> Self {
        let mut t = Self::default();
        t.ignore(own);
        t
    }

    /// Leave the items of publisher session `own` unchecked from now on (this process holds
    /// it).
    pub fn ignore(&mut self, own: &str) {
        if !self.own_sessions.iter().any(|s| s == own) {
            self.own_sessions.push(own.to_owned());
        }
    }

    /// Whether an item's own sequence counts: not for items whose claimed sender the service
    /// contradicts, nor for this run's own session.
    fn counts(&self, item: &FeedItem) -> bool {
        !item.is_forged()
            && item
                .seq()
                .is_none_or(|s| !self.own_sessions.iter().any(|o| o == s.session))
    }

    /// Observe an item: by the service's node-wide number when it has one, else by its
    /// publisher's sequence (when that counts).
    pub fn observe_item(&mut self, item: &FeedItem) -> (Verdict, Option<&'static str>) {
        if let Some(n) = item.service_seq {
            if self.counts(item) {
                // Still remember what this publisher sent, for the lost-item count later.
                self.observe(item.sender(), item.seq());
            }
            return (self.observe_service(n), Some("service"));
        }
        if !self.counts(item) {
            return (Verdict::Unchecked, None);
        }
        (self.observe(item.sender(), item.seq()), None)
    }

    fn remember(&mut self, sender: &str, seq: SeqRef<'_>) {
        self.account(sender, seq.session, seq.n, seq.n);
    }

    /// Numbers `a..=b` of a publisher session are accounted for: received, or already
    /// reported lost (in this run or an earlier one). They are not reported lost again.
    pub fn account(&mut self, sender: &str, session: &str, a: u64, b: u64) {
        let key = (bare(sender).to_owned(), session.to_owned());
        if !self.seen.contains_key(&key) {
            self.seen_order.push(key.clone());
            if self.seen_order.len() > MAX_SEEN_SESSIONS {
                let old = self.seen_order.remove(0);
                self.seen.remove(&old);
            }
        }
        self.seen.entry(key).or_default().insert(a, b);
    }

    /// What is accounted for, per (bare sender, session), to keep for the next run.
    pub fn accounted(&self) -> impl Iterator<Item = (&str, &str, &[(u64, u64)])> {
        self.seen_order.iter().filter_map(|k| {
            self.seen
                .get(k)
                .map(|r| (k.0.as_str(), k.1.as_str(), r.as_slice()))
        })
    }

    /// Remember that this number was received (in an earlier run: the local cache had it), so
    /// that it does not count as lost when the service no longer has it.
    pub fn mark_seen(&mut self, item: &FeedItem) {
        if let Some(seq) = item.seq()
            && self.counts(item)
        {
            self.remember(item.sender().unwrap_or(""), seq);
        }
    }

    /// Observe an item's sequence (with the sender that names the publisher).
    pub fn observe<'s>(
        &mut self,
        sender: Option<&str>,
        seq: Option<impl Into<SeqRef<'s>>>,
    ) -> Verdict {
        let Some(seq) = seq.map(Into::into) else {
            return Verdict::Unchecked;
        };
        let sender = bare(sender.unwrap_or(""));
        self.remember(sender, seq);
        let key = (sender.to_owned(), seq.session.to_owned());
        if self.latest.len() >= MAX_SEEN_SESSIONS && !self.latest.contains_key(sender) {
            // Bounded like the rest (a flood of made-up senders): only the restart verdict
            // is lost for those forgotten.
            self.latest.clear();
        }
        let restarted = self
            .latest
            .insert(sender.to_owned(), seq.session.to_owned())
            .is_some_and(|s| s != seq.session);
        let Some(p) = self.by_session.get_mut(&key) else {
            let mut p = Publisher::new(seq.n);
            for &(a, b) in seq.void {
                p.add_void(a, b);
            }
            self.by_session.insert(key.clone(), p);
            self.by_session_order.push(key);
            if self.by_session_order.len() > MAX_SEEN_SESSIONS {
                let old = self.by_session_order.remove(0);
                self.by_session.remove(&old);
            }
            return if restarted {
                Verdict::Restarted
            } else {
                Verdict::First
            };
        };
        for &(a, b) in seq.void {
            p.add_void(a, b);
        }
        p.observe(seq.n)
    }

    /// Observe the node-wide number a `serve` relay gave an item.
    pub fn observe_service(&mut self, n: u64) -> Verdict {
        if let Some(p) = &mut self.service {
            return p.observe(n);
        }
        self.service = Some(Publisher::new(n));
        Verdict::First
    }

    /// Start again from a service's full set of items (after a resync). `head` is the
    /// service's last node-wide number when it said (a `serve` relay does), so the next
    /// notification can be checked against it even if the newest items were retracted.
    /// What was seen before stays remembered.
    pub fn reset_from(&mut self, items: &[FeedItem], head: Option<u64>) {
        self.by_session.clear();
        self.by_session_order.clear();
        self.latest.clear();
        self.service = head.map(Publisher::new);
        for item in items {
            self.observe_item(item);
        }
    }

    /// The relay's last node-wide number seen, when it numbers this node.
    pub fn service_head(&self) -> Option<u64> {
        self.service.as_ref().map(|p| p.max)
    }

    /// Numbers currently missing, over all publishers.
    pub fn missing(&self) -> u64 {
        self.by_session
            .values()
            .chain(self.service.as_ref())
            .map(Publisher::missing)
            .fold(0, u64::saturating_add)
    }
}

/// A run of items a publisher sent that the service no longer has and that were never
/// received here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lost {
    pub sender: String,
    pub session: String,
    pub from: u64,
    pub to: u64,
}

impl Lost {
    /// How many numbers the range holds (at most `u64::MAX`: a peer can send any number).
    pub fn count(&self) -> u64 {
        self.to.saturating_sub(self.from).saturating_add(1)
    }

    /// The numbers all of `lost` holds, together (saturating, as [`Self::count`]).
    pub fn total(lost: &[Self]) -> u64 {
        lost.iter().map(Self::count).fold(0, u64::saturating_add)
    }
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.count();
        let items = if n == 1 { "item" } else { "items" };
        if self.from == self.to {
            write!(
                f,
                "{n} {items} from {} lost (seq {})",
                self.sender, self.from
            )
        } else {
            write!(
                f,
                "{n} {items} from {} lost (seq {}–{})",
                self.sender, self.from, self.to
            )
        }
    }
}

/// What a service's set of items is missing and this run never received: for each publisher
/// session in it, the numbers from 1 to its highest that are not there, were not seen by
/// `tracker`, and that the publisher does not declare never published. At most
/// [`MAX_HOLES`] ranges per publisher session.
pub fn lost_in(items: &[FeedItem], tracker: &GapTracker) -> Vec<Lost> {
    let mut by_session: HashMap<(&str, &str), (Ranges, u64)> = HashMap::new();
    for item in items.iter().filter(|i| tracker.counts(i)) {
        if let Some(seq) = item.seq() {
            let (known, max) = by_session
                .entry((bare(item.sender().unwrap_or("")), seq.session))
                .or_default();
            known.insert(seq.n, seq.n);
            *max = (*max).max(seq.n);
            for &(a, b) in seq.void {
                known.insert(a, b);
            }
        }
    }
    let mut out = Vec::new();
    let mut keys: Vec<_> = by_session.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let Some((known, max)) = by_session.get_mut(&key) else {
            continue;
        };
        if let Some(seen) = tracker.seen.get(&(key.0.to_owned(), key.1.to_owned())) {
            for &(a, b) in &seen.0 {
                known.insert(a, b);
            }
        }
        for (from, to) in known.subtract_from(1, *max).into_iter().take(MAX_HOLES) {
            out.push(Lost {
                sender: key.0.to_owned(),
                session: key.1.to_owned(),
                from,
                to,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Seq;

    fn seq(session: &str, n: u64) -> Seq {
        Seq::new(session, n)
    }

    #[test]
    fn tells_the_cases_apart() {
        let mut t = GapTracker::new();
        let a = Some("alice@x/y");
        assert_eq!(t.observe(a, Some(&seq("s1", 1))), Verdict::First);
        assert_eq!(t.observe(a, Some(&seq("s1", 2))), Verdict::InOrder);
        assert_eq!(t.observe(a, Some(&seq("s1", 6))), Verdict::Gap(3..=5));
        assert_eq!(t.missing(), 3);
        assert_eq!(t.observe(a, Some(&seq("s1", 4))), Verdict::OutOfOrder);
        assert_eq!(t.missing(), 2);
        assert_eq!(t.observe(a, Some(&seq("s1", 4))), Verdict::Duplicate);
        assert_eq!(t.observe(a, Some(&seq("s1", 2))), Verdict::Duplicate);
        assert_eq!(t.observe(a, Some(&seq("s2", 1))), Verdict::Restarted);
        assert_eq!(t.missing(), 2, "the old session's holes stay missing");
        // Two sessions of one account at once (two processes): each keeps its own numbering.
        assert_eq!(t.observe(a, Some(&seq("s2", 2))), Verdict::InOrder);
        let other = Some("alice@x/other");
        assert_eq!(t.observe(other, Some(&seq("s3", 7))), Verdict::Restarted);
        assert_eq!(t.observe(a, Some(&seq("s2", 3))), Verdict::InOrder);
        assert_eq!(t.observe(other, Some(&seq("s3", 9))), Verdict::Gap(8..=8));
        assert_eq!(t.observe(other, Some(&seq("s3", 8))), Verdict::OutOfOrder);
        assert_eq!(t.missing(), 2);
        assert_eq!(t.observe(a, None::<SeqRef>), Verdict::Unchecked);
        assert_eq!(
            t.observe(Some("bob@x/y"), Some(&seq("s9", 5))),
            Verdict::First
        );
    }

    #[test]
    fn service_numbering_after_a_resync_starts_at_the_head() {
        let mut t = GapTracker::new();
        assert_eq!(t.observe_service(4), Verdict::First);
        assert_eq!(t.observe_service(5), Verdict::InOrder);
        assert_eq!(t.observe_service(8), Verdict::Gap(6..=7));
        // The resync says the head is 10 (9 and 10 were retracted): 11 is next, not a gap.
        t.reset_from(&[], Some(10));
        assert_eq!(t.missing(), 0);
        assert_eq!(t.observe_service(11), Verdict::InOrder);
        assert_eq!(t.observe_service(11), Verdict::Duplicate);
        assert_eq!(t.observe_service(13), Verdict::Gap(12..=12));
    }

    #[test]
    fn numbers_near_the_top_are_counted_without_overflow() {
        let mut t = GapTracker::new();
        t.observe(Some("a"), Some(&seq("s", 1)));
        t.observe(Some("a"), Some(&seq("s", u64::MAX)));
        t.observe(Some("b"), Some(&seq("s", 1)));
        t.observe(Some("b"), Some(&seq("s", u64::MAX)));
        assert_eq!(t.missing(), u64::MAX, "two holes of nearly 2^64: saturated");
        let all = Lost {
            sender: "a".into(),
            session: "s".into(),
            from: 0,
            to: u64::MAX,
        };
        assert_eq!(all.count(), u64::MAX);
        assert_eq!(Lost::total(&[all.clone(), all]), u64::MAX);
        let small = |from, to| Lost {
            sender: "a".into(),
            session: "s".into(),
            from,
            to,
        };
        assert_eq!(Lost::total(&[small(1, 3), small(7, 7)]), 4, "control");
    }

    #[test]
    fn an_absurd_jump_is_one_range() {
        let mut t = GapTracker::new();
        t.observe(Some("a"), Some(&seq("s", 1)));
        assert_eq!(
            t.observe(Some("a"), Some(&seq("s", 1_000_000_000_000))),
            Verdict::Gap(2..=999_999_999_999)
        );
        assert_eq!(
            t.observe(Some("a"), Some(&seq("s", u64::MAX))),
            Verdict::Gap(1_000_000_000_001..=u64::MAX - 1)
        );
        assert_eq!(
            t.observe(Some("a"), Some(&seq("s", u64::MAX))),
            Verdict::Duplicate
        );
    }

    #[test]
    fn numbers_never_published_are_not_gaps() {
        let mut t = GapTracker::new();
        let a = Some("alice@x/y");
        assert_eq!(t.observe(a, Some(&seq("s1", 1))), Verdict::First);
        // 2 was refused by the service; 3 says so.
        let mut three = seq("s1", 3);
        three.void = vec![(2, 2)];
        assert_eq!(t.observe(a, Some(&three)), Verdict::InOrder);
        // 4 and 5 never arrived, 6 was refused: only 4-5 is a gap.
        let mut seven = seq("s1", 7);
        seven.void = vec![(2, 2), (6, 6)];
        assert_eq!(t.observe(a, Some(&seven)), Verdict::Gap(4..=5));
        assert_eq!(t.missing(), 2);
        // A void declaration that comes later closes a hole too.
        let mut eight = seq("s1", 8);
        eight.void = vec![(2, 2), (4, 4), (6, 6)];
        assert_eq!(t.observe(a, Some(&eight)), Verdict::InOrder);
        assert_eq!(t.missing(), 1);
    }

    #[test]
    fn ranges_merge_and_subtract() {
        let mut r = Ranges::default();
        r.insert(5, 7);
        r.insert(1, 2);
        r.insert(3, 4);
        r.insert(10, 10);
        assert_eq!(r.0, [(1, 7), (10, 10)]);
        assert_eq!(r.subtract_from(1, 12), [(8, 9), (11, 12)]);
        assert_eq!(r.subtract_from(2, 6), []);
        r.insert(0, u64::MAX);
        assert_eq!(r.subtract_from(5, 9), []);
    }
}
