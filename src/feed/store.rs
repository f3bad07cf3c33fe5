//! A bounded, deduplicating list of rows for one node.
//!
//! Rows are items or markers (retract, purge, delete, resync, evictions). Items with an id are
//! indexed so a re-published id replaces the row in place instead of adding a duplicate.
//! The feed keeps at most `cap` items (and at most `2 * cap` rows, markers included); past
//! that the oldest rows go, and the count of evicted rows is kept so the view can say so.

use std::collections::{HashMap, VecDeque};

use super::FeedItem;

/// What a row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKind {
    Item {
        item: FeedItem,
        retracted: bool,
    },
    /// A distinct feed entry that is not an item: a retraction, purge, delete or resync notice.
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
    /// Items the service no longer has.
    Lost,
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
    by_id: HashMap<String, u64>,
    cap: usize,
    evicted: u64,
    items: usize,
}

impl NodeFeed {
    /// A feed keeping at most `cap` items (at least 1).
    pub fn new(cap: usize) -> Self {
        Self {
            rows: VecDeque::new(),
            first: 0,
            by_id: HashMap::new(),
            cap: cap.max(1),
            evicted: 0,
            items: 0,
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

    pub fn row(&self, index: usize) -> Option<&Row> {
        self.rows.get(index)
    }

    /// The rows in `start..end` (clamped), for rendering only what is visible.
    pub fn rows(&self, start: usize, end: usize) -> impl Iterator<Item = &Row> {
        let end = end.min(self.rows.len());
        let start = start.min(end);
        self.rows.range(start..end)
    }

    /// Ids of the items currently held, oldest first.
    pub fn item_ids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().filter_map(|r| match &r.kind {
            RowKind::Item {
                item,
                retracted: false,
            } => item.id.as_deref(),
            _ => None,
        })
    }

    /// Add an item, or replace the row of an item with the same id.
    pub fn push_item(&mut self, item: FeedItem) -> PushOutcome {
        if let Some(id) = &item.id
            && let Some(&abs) = self.by_id.get(id)
            && let Some(row) = self.rows.get_mut(index_of(abs, self.first))
        {
            if let RowKind::Item {
                retracted: true, ..
            } = row.kind
            {
                self.items += 1;
            }
            row.kind = RowKind::Item {
                item,
                retracted: false,
            };
            return PushOutcome::Replaced;
        }
        if let Some(id) = &item.id {
            self.by_id
                .insert(id.clone(), self.first + self.rows.len() as u64);
        }
        self.items += 1;
        self.push_row(RowKind::Item {
            item,
            retracted: false,
        });
        PushOutcome::Added
    }

    pub fn push_marker(&mut self, kind: MarkerKind, text: impl Into<String>) {
        self.push_row(RowKind::Marker {
            kind,
            text: text.into(),
        });
    }

    /// Mark the item as retracted (it stays visible, dimmed) and add a marker row.
    pub fn retract(&mut self, id: &str) {
        if let Some(abs) = self.by_id.remove(id)
            && let Some(row) = self.rows.get_mut(index_of(abs, self.first))
            && let RowKind::Item { retracted, .. } = &mut row.kind
            && !*retracted
        {
            *retracted = true;
            self.items -= 1;
        }
        self.push_marker(MarkerKind::Retract, format!("item {id} retracted"));
    }

    /// Drop everything and leave one marker.
    pub fn clear_with_marker(&mut self, kind: MarkerKind, text: impl Into<String>) {
        self.first += self.rows.len() as u64;
        self.rows.clear();
        self.by_id.clear();
        self.items = 0;
        self.evicted = 0;
        self.push_marker(kind, text);
    }

    /// Replace the whole view with the service's set of items (a resync), deduplicated by id,
    /// followed by a marker saying so.
    pub fn replace_all(&mut self, items: impl IntoIterator<Item = FeedItem>, marker: String) {
        self.first += self.rows.len() as u64;
        self.rows.clear();
        self.by_id.clear();
        self.items = 0;
        self.evicted = 0;
        for item in items {
            self.push_item(item);
        }
        self.push_marker(MarkerKind::Resync, marker);
    }

    fn push_row(&mut self, kind: RowKind) {
        self.rows.push_back(Row { kind });
        while self.items > self.cap || self.rows.len() > 2 * self.cap {
            let Some(old) = self.rows.pop_front() else {
                break;
            };
            if let RowKind::Item { item, retracted } = &old.kind {
                if !retracted {
                    self.items -= 1;
                }
                if let Some(id) = &item.id
                    && self.by_id.get(id) == Some(&self.first)
                {
                    self.by_id.remove(id);
                }
            }
            self.first += 1;
            self.evicted += 1;
        }
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
        FeedItem {
            node: "n".into(),
            id: Some(id.into()),
            sender: None,
            time: None,
            seq: None,
            service_seq: None,
            text: text.into(),
            format: ItemFormat::Native,
        }
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
        assert_eq!(item.text, "1b");
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
