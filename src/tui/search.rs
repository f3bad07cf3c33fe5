//! Filtering and finding in the feed: `/` opens a line to type an expression
//! ([`crate::feed::filter`]); the feed follows as it is typed.
//!
//! - **Filter** (the default) shows only the matching items; with **all nodes** on, the
//!   matching items of every followed node, oldest first by when they were received, each
//!   with its node's name.
//! - **Find** shows every row, marks the matching ones, and `n` / `N` move the selection to
//!   the next match up (older) or down (newer).
//!
//! The matches are worked out again only when the expression, the scope or a feed changed
//! (each feed counts its changes), at the end of `update`, so drawing stays a pure read.

use std::fmt::Write as _;

use tui_input::Input;

use super::model::Model;
use crate::feed::RowKind;
use crate::feed::filter::Filter;

/// A matching item: its node (an index into the model's nodes) and its row number in that
/// node's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub node: usize,
    pub row: u64,
}

/// What the matches were worked out for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    source: String,
    all: bool,
    /// (node index, its feed's version).
    feeds: Vec<(usize, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Search {
    pub input: Input,
    /// The line has the keyboard.
    pub typing: bool,
    /// `false`: filter (only matches shown); `true`: find (all shown, matches marked).
    pub find: bool,
    /// Over every followed node (filter only).
    pub all: bool,
    /// The expression last typed that compiled.
    pub compiled: Option<Filter>,
    /// Why the expression as typed does not compile.
    pub error: Option<String>,
    /// The matches, oldest first.
    pub hits: Vec<Hit>,
    /// Items looked at.
    pub considered: usize,
    stamp: Option<Stamp>,
}

impl Search {
    /// Compile what is typed; keep the last good expression while it does not compile.
    pub fn retype(&mut self) {
        match Filter::parse(self.input.value()) {
            Ok(f) => {
                self.compiled = Some(f);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Rows are hidden (filter mode, with an expression).
    pub fn hides(&self) -> bool {
        !self.find && self.compiled.as_ref().is_some_and(|f| !f.is_empty())
    }

    /// Over every node (only when filtering).
    pub fn spans_nodes(&self) -> bool {
        self.all && !self.find
    }

    /// An expression with terms is in force.
    pub fn active(&self) -> bool {
        self.compiled.as_ref().is_some_and(|f| !f.is_empty())
    }

    /// `k of n match`.
    pub fn count_text(&self) -> String {
        format!("{} of {} match", self.hits.len(), self.considered)
    }
}

/// Work the matches out again if the expression, the scope or a feed changed.
pub fn refresh(m: &mut Model) {
    let Some(mut s) = m.search.take() else {
        return;
    };
    let nodes: Vec<usize> = if s.spans_nodes() {
        (0..m.nodes.len()).collect()
    } else {
        (m.selected < m.nodes.len())
            .then_some(m.selected)
            .into_iter()
            .collect()
    };
    let stamp = Stamp {
        source: s
            .compiled
            .as_ref()
            .map(|f| f.source().to_owned())
            .unwrap_or_default(),
        all: s.spans_nodes(),
        feeds: nodes
            .iter()
            .map(|&i| (i, m.nodes[i].feed.version()))
            .collect(),
    };
    if s.stamp.as_ref() != Some(&stamp) {
        // The selected match stays selected when the list changes under it.
        let selected = m
            .cursor
            .filter(|_| s.hides())
            .and_then(|c| s.hits.len().checked_sub(c + 1))
            .map(|i| s.hits[i]);
        s.hits.clear();
        s.considered = 0;
        if let Some(f) = s.compiled.as_ref().filter(|f| !f.is_empty()) {
            for &i in &nodes {
                let feed = &m.nodes[i].feed;
                let first = feed.first_number();
                for (k, row) in feed.rows(0, feed.len()).enumerate() {
                    if let RowKind::Item { item, .. } = &row.kind {
                        s.considered += 1;
                        if f.matches(item) {
                            s.hits.push(Hit {
                                node: i,
                                row: first + k as u64,
                            });
                        }
                    }
                }
            }
            if s.spans_nodes() {
                // Oldest first across nodes, by when they came.
                // By the time each shows: its own, else when it was received.
                s.hits.sort_by_cached_key(|h| {
                    let shown = m.hit_item(*h).and_then(|i| i.timestamp().or(i.received));
                    (shown, h.node, h.row)
                });
            }
        }
        s.stamp = Some(stamp);
        if let Some(sel) = selected {
            m.cursor = s
                .hits
                .iter()
                .position(|h| *h == sel)
                .map(|i| s.hits.len() - 1 - i);
        }
    }
    m.search = Some(s);
}

/// Open the line (or take it again to change the expression).
pub fn open(m: &mut Model) {
    let s = m.search.get_or_insert_with(Search::default);
    s.typing = true;
    m.focus = super::model::Focus::Feed;
}

/// A key while typing the expression.
pub fn typing_key(
    m: &mut Model,
    key: crossterm::event::KeyEvent,
    action: Option<super::keymap::Action>,
) -> Vec<super::update::Effect> {
    use super::keymap::Action;
    let Some(s) = m.search.as_mut() else {
        return Vec::new();
    };
    match action {
        Some(Action::Accept) => {
            s.typing = false;
            if s.input.value().trim().is_empty() {
                m.search = None;
            } else if let Some(e) = s.error.clone() {
                m.outcome(super::model::Level::Error, e);
            }
        }
        Some(Action::Cancel) => close(m),
        Some(Action::Toggle) => s.find = !s.find,
        Some(Action::AllNodes) => {
            // Every node's matches are a filter's list: finding goes back to filtering.
            s.all = !s.all;
            s.find = false;
        }
        Some(Action::Quit) => return super::update::on_quit(m),
        _ => {
            let before = s.input.value().to_owned();
            super::update::edit_line(&mut s.input, key);
            if s.input.value() != before {
                s.retype();
            }
        }
    }
    m.feed_offset = 0;
    m.cursor = None;
    Vec::new()
}

/// Drop the filter: the feed shows everything again.
pub fn close(m: &mut Model) {
    m.search = None;
    m.feed_offset = 0;
    m.cursor = None;
}

/// `n` (`up`: towards older items) or `N`: select the next match in the selected node.
pub fn jump(m: &mut Model, up: bool) {
    let Some(node) = m.selected_node() else {
        return;
    };
    let marker_rows = usize::from(node.feed.evicted() > 0);
    let total = node.feed.len() + marker_rows;
    let first = node.feed.first_number();
    // The selected row's number (none selected: just past the newest, so `n` finds the newest).
    let at: i128 = match m.cursor {
        Some(c) => i128::from(first) + total as i128 - 1 - c as i128 - marker_rows as i128,
        None => i128::from(first) + node.feed.len() as i128,
    };
    let Some(s) = &m.search else {
        return;
    };
    let mut mine = s.hits.iter().filter(|h| h.node == m.selected);
    let target = if up {
        mine.rfind(|h| i128::from(h.row) < at)
    } else {
        mine.find(|h| i128::from(h.row) > at)
    };
    // Past the last match, around to the first (as vim and less do), said so.
    let wrapped = target.is_none();
    let around = || {
        let mut mine = s.hits.iter().filter(|h| h.node == m.selected);
        if up { mine.next_back() } else { mine.next() }.copied()
    };
    let Some(hit) = target.copied().or_else(around) else {
        m.outcome(super::model::Level::Info, "no match in this node");
        return;
    };
    // Which match it is, counted from the newest (as `n` goes).
    let mine: Vec<u64> = s
        .hits
        .iter()
        .filter(|h| h.node == m.selected)
        .map(|h| h.row)
        .collect();
    let from_newest = mine.len() - mine.iter().position(|&r| r == hit.row).unwrap_or(0);
    let mut said = format!("match {from_newest} of {}", mine.len());
    if wrapped {
        let which = if up { "newest" } else { "oldest" };
        let _ = write!(said, " (no more that way: back to the {which})");
    }
    m.outcome(super::model::Level::Info, said);
    let index = usize::try_from(hit.row - first).unwrap_or(0) + marker_rows;
    m.cursor = Some(total - 1 - index);
    // Scroll so the selected row shows.
    let height = m.feed_height().max(1);
    let cursor = total - 1 - index;
    if cursor < m.feed_offset || cursor >= m.feed_offset + height {
        m.feed_offset = cursor.saturating_sub(height / 2);
    }
}
