//! A bounded, deduplicating list of rows for one node.
//!
//! Rows are items or markers (retract, purge, delete, resync, lost items, a new day). Items
//! with an id are indexed so a re-published id replaces the row in place instead of adding a
//! duplicate. The feed keeps at most `cap` items (and at most `2 * cap` rows, markers
//! included); past that the oldest rows go, and the count of evicted rows is kept so the view
//! can say so.
//!
//! A resync ([`NodeFeed::resync`]) makes the feed the service's set, except for items that
//! were received here and that the service has since evicted: those stay, marked
//! [`ItemState::Gone`]. The rule: an item the service no longer has is *evicted* when it is
//! older (earlier in this feed) than the oldest item the service still has, and *retracted*
//! (removed here too) when it is within the service's window. When the service has items but
//! none of those shown, all of them count as evicted (the service's are all newer); when it
//! has no items at all, nothing can have pushed them out: they were purged or retracted, and go.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{FixedOffset, NaiveDate};

use super::FeedItem;

/// What became of an item shown in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Live,
    /// Retracted by its publisher or the node's owner (shown struck through).
    Retracted,
    /// Received here, but the service no longer has it (evicted by its item limit).
    Gone,
}

/// What a row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "rows are mostly items; boxing each would cost an allocation per item"
)]
pub enum RowKind {
    Item {
        item: FeedItem,
        state: ItemState,
    },
    /// A distinct feed entry that is not an item: a retraction, purge, delete or resync
    /// notice, items lost, or the first item of a day.
    Marker {
        kind: MarkerKind,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Retract,
    Purge,
    Delete,
    Resync,
    /// Items the service no longer has and that were never received here.
    Lost,
    /// The items below are from this day.
    Day,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: RowKind,
}

/// What [`NodeFeed::push_item`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Added,
    /// An item with the same id was already there and was replaced in place.
    Replaced,
}

#[derive(Debug, Clone)]
pub struct NodeFeed {
    rows: VecDeque<Row>,
    /// Absolute number of `rows[0]` (rows are numbered from 0 since the feed was created).
    first: u64,
    by_id: IdIndex,
    cap: usize,
    evicted: u64,
    /// Items shown (live or gone; not retracted).
    items: usize,
    /// The time zone days are counted in.
    offset: FixedOffset,
    /// The day of the newest item with a time.
    last_day: Option<NaiveDate>,
    /// Counts changes, so a derived view (a filter's matches) knows when to look again.
    version: u64,
    /// The bytes the rows hold, roughly ([`FeedItem::weight`], markers by their text).
    bytes: usize,
}

fn row_weight(kind: &RowKind) -> usize {
    match kind {
        RowKind::Item { item, .. } => item.weight(),
        RowKind::Marker { text, .. } => std::mem::size_of::<Row>() + text.len(),
    }
}

impl NodeFeed {
    /// A feed keeping at most `cap` items (at least 1), in UTC days.
    pub fn new(cap: usize) -> Self {
        Self::with_offset(cap, chrono::Offset::fix(&chrono::Utc))
    }

    /// A feed keeping at most `cap` items, with day markers in the time zone `offset`.
    pub fn with_offset(cap: usize, offset: FixedOffset) -> Self {
        Self {
            rows: VecDeque::new(),
            first: 0,
            by_id: IdIndex::default(),
            cap: cap.max(1),
            evicted: 0,
            items: 0,
            offset,
            last_day: None,
            version: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Items currently shown (not retracted, not evicted).
    pub fn item_count(&self) -> usize {
        self.items
    }

    /// Rows dropped from the front because the feed was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The bytes the rows hold, roughly.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest item kept was received (for evicting across feeds, oldest first).
    pub fn oldest_received(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.rows.iter().find_map(|r| match &r.kind {
            RowKind::Item { item, .. } => item.received,
            RowKind::Marker { .. } => None,
        })
    }

    /// Evict the oldest row (the memory bound across feeds); `false` when there is none.
    pub fn evict_oldest(&mut self) -> bool {
        if self.rows.is_empty() {
            return false;
        }
        self.version += 1;
        self.pop_front();
        true
    }

    /// Changes so far (any change makes it larger).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The number of the first row kept (rows are numbered from 0 since the feed began; a row
    /// keeps its number until evicted).
    pub fn first_number(&self) -> u64 {
        self.first
    }

    /// The row numbered `n`, while it is kept.
    pub fn row_numbered(&self, n: u64) -> Option<&Row> {
        self.rows
            .get(usize::try_from(n.checked_sub(self.first)?).ok()?)
    }

    pub fn row(&self, index: usize) -> Option<&Row> {
        self.rows.get(index)
    }

    /// The rows in `start..end` (clamped), for rendering only what is visible.
    pub fn rows(&self, start: usize, end: usize) -> impl Iterator<Item = &Row> {
        let end = end.min(self.rows.len());
        let start = start.min(end);
        self.rows.range(start..end)
    }

    /// Ids of the items currently held (live or gone, not retracted), oldest first.
    pub fn item_ids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().filter_map(|r| match &r.kind {
            RowKind::Item { item, state } if *state != ItemState::Retracted => item.id(),
            _ => None,
        })
    }

    /// Ids of the items the service no longer has, oldest first.
    pub fn gone_ids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().filter_map(|r| match &r.kind {
            RowKind::Item {
                item,
                state: ItemState::Gone,
            } => item.id(),
            _ => None,
        })
    }

    /// Add an item, or replace the row of an item with the same id.
    pub fn push_item(&mut self, item: FeedItem) -> PushOutcome {
        self.push_item_as(item, ItemState::Live)
    }

    fn push_item_as(&mut self, item: FeedItem, state: ItemState) -> PushOutcome {
        self.version += 1;
        if let Some(id) = &item.id()
            && let Some(abs) = self.by_id.get(&self.rows, self.first, id)
            && let Some(row) = self.rows.get_mut(index_of(abs, self.first))
        {
            if let RowKind::Item {
                state: ItemState::Retracted,
                ..
            } = row.kind
            {
                self.items += 1;
            }
            let new = RowKind::Item { item, state };
            self.bytes = self.bytes + row_weight(&new) - row_weight(&row.kind).min(self.bytes);
            row.kind = new;
            return PushOutcome::Replaced;
        }
        // The day it shows under: its own time, else when it came.
        if let Some(day) = item
            .timestamp()
            .or(item.received)
            .map(|t| t.with_timezone(&self.offset).date_naive())
            && self.last_day != Some(day)
        {
            self.last_day = Some(day);
            self.push_marker(MarkerKind::Day, day.format("%A %-d %B %Y").to_string());
        }
        if let Some(id) = &item.id() {
            let abs = self.first + self.rows.len() as u64;
            self.by_id.insert(&self.rows, self.first, id, abs);
        }
        self.items += 1;
        self.push_row(RowKind::Item { item, state });
        PushOutcome::Added
    }

    pub fn push_marker(&mut self, kind: MarkerKind, text: impl Into<String>) {
        self.push_row(RowKind::Marker {
            kind,
            text: text.into(),
        });
    }

    /// Mark the item as retracted (it stays visible, dimmed) and add a marker row.
    /// Retract an item this feed holds (live), once: a retraction this run asked for, which
    /// the service may or may not tell again (`notify_retract`).
    pub fn retract_held(&mut self, id: &str) {
        self.version += 1;
        let live = self
            .by_id
            .get(&self.rows, self.first, id)
            .is_some_and(|abs| {
                self.rows.get(index_of(abs, self.first)).is_some_and(|r| {
                    matches!(
                        r.kind,
                        RowKind::Item {
                            state: ItemState::Live,
                            ..
                        }
                    )
                })
            });
        if live {
            self.retract(id);
        }
    }

    pub fn retract(&mut self, id: &str) {
        if let Some(abs) = self.by_id.remove(&self.rows, self.first, id)
            && let Some(row) = self.rows.get_mut(index_of(abs, self.first))
            && let RowKind::Item { state, .. } = &mut row.kind
            && *state != ItemState::Retracted
        {
            *state = ItemState::Retracted;
            self.items -= 1;
        }
        self.push_marker(MarkerKind::Retract, format!("item {id} retracted"));
    }

    fn clear(&mut self) {
        self.version += 1;
        self.first += self.rows.len() as u64;
        self.rows.clear();
        self.by_id.clear();
        self.items = 0;
        self.bytes = 0;
        self.evicted = 0;
        self.last_day = None;
    }

    /// Drop everything and leave one marker.
    pub fn clear_with_marker(&mut self, kind: MarkerKind, text: impl Into<String>) {
        self.clear();
        self.push_marker(kind, text);
    }

    /// Replace the whole view with the service's set of items, deduplicated by id, followed
    /// by a marker saying so. Nothing shown before is kept.
    pub fn replace_all(&mut self, items: impl IntoIterator<Item = FeedItem>, marker: String) {
        self.clear();
        for item in items {
            self.push_item(item);
        }
        self.push_marker(MarkerKind::Resync, marker);
    }

    /// A resync: the service's set of items, after the items received here that the service
    /// has since evicted (see the module doc), followed by a marker. Returns how many evicted
    /// items were kept.
    pub fn resync(&mut self, items: Vec<FeedItem>, marker: String) -> usize {
        let on_service: HashSet<&str> = items.iter().filter_map(|i| i.id()).collect();
        let mut kept = Vec::new();
        // An empty service evicted nothing: what it lacks was purged or retracted.
        let rows = if items.is_empty() { 0 } else { self.rows.len() };
        for row in self.rows.iter().take(rows) {
            let RowKind::Item { item, state } = &row.kind else {
                continue;
            };
            if item.id().is_some_and(|id| on_service.contains(id)) {
                // The oldest item the service still has: everything after it that it lacks
                // was retracted.
                break;
            }
            if *state != ItemState::Retracted {
                kept.push(item.clone());
            }
        }
        let gone = kept.len();
        // An item received before keeps the time it was first received.
        let received: HashMap<String, chrono::DateTime<chrono::Utc>> = self
            .rows
            .iter()
            .filter_map(|r| match &r.kind {
                RowKind::Item { item, .. } => Some((item.id().map(str::to_owned)?, item.received?)),
                RowKind::Marker { .. } => None,
            })
            .collect();
        self.clear();
        for item in kept {
            self.push_item_as(item, ItemState::Gone);
        }
        if gone > 0 {
            let what = if gone == 1 {
                "1 item above is".to_owned()
            } else {
                format!("{gone} items above are")
            };
            self.push_marker(
                MarkerKind::Resync,
                format!("{what} no longer on the service (evicted); kept here"),
            );
        }
        for mut item in items {
            if let Some(t) = item.id().and_then(|id| received.get(id)) {
                item.received = Some(*t);
            }
            self.push_item(item);
        }
        self.push_marker(MarkerKind::Resync, marker);
        gone
    }

    fn push_row(&mut self, kind: RowKind) {
        self.version += 1;
        self.bytes += row_weight(&kind);
        self.rows.push_back(Row { kind });
        while self.items > self.cap || self.rows.len() > 2 * self.cap {
            if !self.pop_front() {
                break;
            }
        }
    }

    /// Drop the oldest row, counted as evicted.
    fn pop_front(&mut self) -> bool {
        let Some(old) = self.rows.pop_front() else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(row_weight(&old.kind));
        if let RowKind::Item { item, state } = &old.kind {
            if *state != ItemState::Retracted {
                self.items -= 1;
            }
            if let Some(id) = &item.id() {
                self.by_id.forget(id, self.first);
            }
        }
        self.first += 1;
        self.evicted += 1;
        true
    }
}

/// The rows of items by id. An entry is the row's absolute number: the id is read from the row
/// itself, so the index costs about 9 bytes an item instead of a copy of each id.
#[derive(Debug, Clone, Default)]
struct IdIndex {
    table: hashbrown::HashTable<u64>,
    /// Ids come from peers: a keyed hash, so that none can choose ids that collide.
    hasher: std::hash::RandomState,
}

/// The id of the item in row `abs`, if that row is an item with one.
fn id_at(rows: &VecDeque<Row>, first: u64, abs: u64) -> Option<&str> {
    let i = usize::try_from(abs.checked_sub(first)?).ok()?;
    match &rows.get(i)?.kind {
        RowKind::Item { item, .. } => item.id(),
        RowKind::Marker { .. } => None,
    }
}

impl IdIndex {
    fn hash(&self, id: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, id)
    }

    fn get(&self, rows: &VecDeque<Row>, first: u64, id: &str) -> Option<u64> {
        self.table
            .find(self.hash(id), |&abs| id_at(rows, first, abs) == Some(id))
            .copied()
    }

    /// Point `id` at row `abs` (which may not be pushed yet).
    fn insert(&mut self, rows: &VecDeque<Row>, first: u64, id: &str, abs: u64) {
        let hash = self.hash(id);
        let hasher = &self.hasher;
        let rehash = |&a: &u64| {
            std::hash::BuildHasher::hash_one(hasher, id_at(rows, first, a).unwrap_or_default())
        };
        match self
            .table
            .entry(hash, |&a| id_at(rows, first, a) == Some(id), rehash)
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = abs,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(abs);
            }
        }
    }

    /// Take `id` out, with the row it pointed at.
    fn remove(&mut self, rows: &VecDeque<Row>, first: u64, id: &str) -> Option<u64> {
        let entry = self
            .table
            .find_entry(self.hash(id), |&abs| id_at(rows, first, abs) == Some(id))
            .ok()?;
        Some(entry.remove().0)
    }

    /// Take out the entry of row `abs`, whose item has id `id`, if it points there.
    fn forget(&mut self, id: &str, abs: u64) {
        if let Ok(entry) = self.table.find_entry(self.hash(id), |&a| a == abs) {
            entry.remove();
        }
    }

    fn clear(&mut self) {
        self.table.clear();
    }
}

fn index_of(abs: u64, first: u64) -> usize {
    usize::try_from(abs - first).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::ItemFormat;

    fn item(id: &str, text: &str) -> FeedItem {
        crate::feed::ItemParts {
            node: "n".into(),
            id: Some(id.into()),
            text: text.into(),
            format: ItemFormat::Native,
            ..Default::default()
        }
        .into()
    }

    fn ids(f: &NodeFeed) -> Vec<&str> {
        f.item_ids().collect()
    }

    #[test]
    fn a_resync_keeps_what_the_service_evicted_and_drops_what_it_retracted() {
        let mut f = NodeFeed::new(100);
        for id in ["a", "b", "c", "d", "e"] {
            f.push_item(item(id, id));
        }
        // The service evicted a and b, and d was retracted while we were away; f is new.
        let gone = f.resync(
            vec![item("c", "c"), item("e", "e"), item("f", "f")],
            "resynced".into(),
        );
        assert_eq!(gone, 2);
        assert_eq!(ids(&f), ["a", "b", "c", "e", "f"]);
        assert!(matches!(&f.row(2).expect("row").kind,
            RowKind::Marker { text, .. } if text.starts_with("2 items above are no longer")));
        assert_eq!(f.gone_ids().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.item_count(), 5);
        // A second resync keeps them (still older than the service's oldest).
        f.resync(vec![item("e", "e"), item("f", "f")], "again".into());
        assert_eq!(ids(&f), ["a", "b", "c", "e", "f"]);
        assert_eq!(f.gone_ids().collect::<Vec<_>>(), ["a", "b", "c"]);
        // The service has none of ours any more: all of them were evicted.
        f.resync(vec![item("z", "z")], "again".into());
        assert_eq!(ids(&f), ["a", "b", "c", "e", "f", "z"]);
        // The service has nothing at all (a purge): nothing was evicted, everything goes.
        f.resync(Vec::new(), "purged".into());
        assert_eq!(ids(&f), Vec::<&str>::new());
        // Control: replace_all keeps nothing of before.
        f.replace_all(vec![item("z", "z")], "replaced".into());
        assert_eq!(ids(&f), ["z"]);
    }

    #[test]
    fn a_day_marker_precedes_each_new_day() {
        let mut f = NodeFeed::new(100);
        let at = |id: &str, t: &str| -> FeedItem {
            crate::feed::ItemParts {
                time: Some(t.into()),
                ..item(id, id).to_parts()
            }
            .into()
        };
        f.push_item(at("a", "2020-01-02T03:04:05Z"));
        f.push_item(at("b", "2020-01-02T23:00:00Z"));
        f.push_item(item("no-time", "x"));
        f.push_item(at("c", "2026-11-29T08:00:00Z"));
        let markers: Vec<String> = (0..f.len())
            .filter_map(|i| match &f.row(i)?.kind {
                RowKind::Marker {
                    kind: MarkerKind::Day,
                    text,
                } => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            markers,
            ["Thursday 2 January 2020", "Sunday 29 November 2026"]
        );
    }

    #[test]
    fn dedupes_by_id_in_place() {
        let mut f = NodeFeed::new(10);
        assert_eq!(f.push_item(item("a", "1")), PushOutcome::Added);
        assert_eq!(f.push_item(item("b", "2")), PushOutcome::Added);
        assert_eq!(f.push_item(item("a", "1b")), PushOutcome::Replaced);
        assert_eq!(f.len(), 2);
        assert_eq!(f.item_count(), 2);
        let Some(Row {
            kind: RowKind::Item { item, .. },
        }) = f.row(0)
        else {
            panic!("row 0 should be an item");
        };
        assert_eq!(item.text(), "1b");
    }

    #[test]
    fn evicts_oldest_and_counts() {
        let mut f = NodeFeed::new(3);
        for i in 0..5 {
            f.push_item(item(&format!("i{i}"), "x"));
        }
        assert_eq!(f.len(), 3);
        assert_eq!(f.evicted(), 2);
        assert_eq!(f.item_ids().collect::<Vec<_>>(), ["i2", "i3", "i4"]);
        // An evicted id comes back as a new row, not a replacement of something else.
        assert_eq!(f.push_item(item("i0", "again")), PushOutcome::Added);
        assert_eq!(f.item_ids().collect::<Vec<_>>(), ["i3", "i4", "i0"]);
        // A surviving id still replaces in place after the shift.
        assert_eq!(f.push_item(item("i4", "new")), PushOutcome::Replaced);
        assert_eq!(f.item_count(), 3);
    }

    #[test]
    fn retract_marks_and_adds_marker() {
        let mut f = NodeFeed::new(10);
        f.push_item(item("a", "1"));
        f.retract("a");
        assert_eq!(f.item_count(), 0);
        assert_eq!(f.len(), 2);
        assert!(matches!(
            f.row(1),
            Some(Row {
                kind: RowKind::Marker {
                    kind: MarkerKind::Retract,
                    ..
                }
            })
        ));
        // Re-publishing the id after a retraction is a new item at the end.
        assert_eq!(f.push_item(item("a", "2")), PushOutcome::Added);
        assert_eq!(f.item_count(), 1);
    }

    #[test]
    fn replace_all_is_a_replacement_not_a_merge() {
        let mut f = NodeFeed::new(10);
        f.push_item(item("old", "gone on the service"));
        f.replace_all(
            vec![item("a", "1"), item("b", "2"), item("a", "1 again")],
            "resynced".into(),
        );
        assert_eq!(f.item_ids().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.item_count(), 2);
        assert_eq!(f.len(), 3, "two items and the resync marker");
    }

    #[test]
    fn purge_clears() {
        let mut f = NodeFeed::new(10);
        f.push_item(item("a", "1"));
        f.clear_with_marker(MarkerKind::Purge, "purged");
        assert_eq!(f.item_count(), 0);
        assert_eq!(f.len(), 1);
        f.push_item(item("a", "new"));
        assert_eq!(f.item_ids().collect::<Vec<_>>(), ["a"]);
    }
}
