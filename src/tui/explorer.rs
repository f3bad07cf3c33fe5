//! The service explorer's state: the nodes a service lists (disco#items), as a tree that is
//! listed further on demand, each node's meta-data (disco#info) as it arrives, a filter, and
//! the service's own identity and features for the capability view.
//!
//! Pure data and the few rules that shape it (which rows show, which requests go next); the
//! keys are in `update`, the drawing in `view::explorer`.

use std::collections::{BTreeSet, VecDeque};

use tui_input::Input;

use crate::xmpp::proto::disco;

/// Node meta-data requests in flight at once (more wait their turn).
pub const INFO_WINDOW: usize = 8;

/// What is known of a node's meta-data.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    Unknown,
    Loading,
    Known(Box<disco::Info>),
    /// The service would not say (the reason, in plain words).
    Refused(String),
}

/// One node the service listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub node: String,
    /// The name the listing gave (most services give the title).
    pub name: Option<String>,
    /// The collection it was listed under (`None`: the root).
    pub parent: Option<String>,
    pub depth: usize,
    pub meta: Meta,
    /// Its children are shown (a collection that was opened).
    pub expanded: bool,
    /// Its children were asked for (they are in `entries` once listed).
    pub listed: bool,
}

impl Entry {
    pub fn title(&self) -> Option<&str> {
        match &self.meta {
            Meta::Known(info) => info
                .meta
                .as_ref()
                .and_then(|m| m.title.as_deref())
                .or(self.name.as_deref()),
            _ => self.name.as_deref(),
        }
        .filter(|t| *t != self.node)
    }

    pub fn is_collection(&self) -> bool {
        matches!(&self.meta, Meta::Known(info) if info.is_collection())
    }

    /// Could it hold nodes? (A collection, or one whose meta-data is not in yet.)
    pub fn may_have_children(&self) -> bool {
        self.expanded || self.is_collection() || matches!(self.meta, Meta::Unknown | Meta::Loading)
    }

    /// Does the filter (lower case) match the name, title, type or description?
    fn matches(&self, filter: &str) -> bool {
        let has = |s: Option<&str>| s.is_some_and(|s| s.to_lowercase().contains(filter));
        let meta = match &self.meta {
            Meta::Known(info) => info.meta.as_ref(),
            _ => None,
        };
        has(Some(&self.node))
            || has(self.title())
            || has(meta.and_then(|m| m.payload_type.as_deref()))
            || has(meta.and_then(|m| m.description.as_deref()))
    }
}

/// What the explorer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Nodes,
    /// The service's identity and features against XEP-0060's list; rows scrolled.
    Capabilities {
        scroll: u16,
    },
}

/// A line of text being typed in the explorer.
#[derive(Debug, Clone)]
pub enum Typing {
    Filter,
    /// The name of a node to follow that is not listed.
    AddNode(Input),
}

/// The service's answer about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceInfo {
    Unknown,
    Loading,
    Known(Box<disco::Info>),
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct Explorer {
    /// Every listed node, in tree order (children right after their parent).
    pub entries: Vec<Entry>,
    /// The selected row among the visible ones.
    pub selected: usize,
    pub filter: Input,
    pub typing: Option<Typing>,
    pub view: View,
    /// Lists being fetched (by parent; `None` is the root).
    pub listing: BTreeSet<Option<String>>,
    /// Lists the service seems to have cut (ejabberd stops at 100 without RSM).
    pub cut: BTreeSet<Option<String>>,
    /// The root list was asked for (at first opening; `R` asks again).
    pub opened: bool,
    /// Why the root list could not be had.
    pub error: Option<String>,
    pub service: ServiceInfo,
    /// Nodes whose meta-data is still to ask for, and how many asks are in flight.
    pub info_queue: VecDeque<String>,
    pub info_in_flight: usize,
    /// Meta-data requests kept in flight at once ([`INFO_WINDOW`]; the bench varies it).
    pub info_window: usize,
    /// The node to select once it is listed (the one selected before a reload).
    pub select_when_listed: Option<String>,
    /// Say when the root list is in (the user asked for it again).
    pub announce: bool,
}

impl Default for Explorer {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            selected: 0,
            filter: Input::default(),
            typing: None,
            view: View::Nodes,
            listing: BTreeSet::new(),
            cut: BTreeSet::new(),
            opened: false,
            error: None,
            service: ServiceInfo::Unknown,
            info_queue: VecDeque::new(),
            info_in_flight: 0,
            info_window: INFO_WINDOW,
            select_when_listed: None,
            announce: false,
        }
    }
}

impl Explorer {
    /// Forget everything listed (before listing again).
    pub fn clear(&mut self) {
        let filter = std::mem::take(&mut self.filter);
        let info_window = self.info_window;
        *self = Self {
            filter,
            info_window,
            ..Self::default()
        };
    }

    fn index_of(&self, node: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.node == node)
    }

    /// The indices (into `entries`) of the rows shown: with a filter, every match; without,
    /// the tree with its opened collections.
    pub fn visible(&self) -> Vec<usize> {
        let filter = self.filter.value().trim().to_lowercase();
        if !filter.is_empty() {
            return (0..self.entries.len())
                .filter(|&i| self.entries[i].matches(&filter))
                .collect();
        }
        let mut out = Vec::new();
        // Depth of the shallowest closed collection above the current entry.
        let mut hidden_below: Option<usize> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(d) = hidden_below {
                if e.depth > d {
                    continue;
                }
                hidden_below = None;
            }
            out.push(i);
            if !e.expanded {
                hidden_below = Some(e.depth);
            }
        }
        out
    }

    /// The selected entry, if any row is shown.
    pub fn selected_entry(&self) -> Option<&Entry> {
        let rows = self.visible();
        rows.get(self.selected.min(rows.len().saturating_sub(1)))
            .map(|&i| &self.entries[i])
    }

    /// Select this node if it is shown (else the first row).
    pub fn select(&mut self, node: Option<&str>) {
        let rows = self.visible();
        self.selected = node
            .and_then(|n| rows.iter().position(|&i| self.entries[i].node == n))
            .unwrap_or(0);
    }

    /// A node that is gone (deleted): out of the list, with what was listed under it.
    pub fn forget(&mut self, node: &str) {
        let Some(i) = self.index_of(node) else {
            return;
        };
        let depth = self.entries[i].depth;
        let end = self.entries[i + 1..]
            .iter()
            .position(|e| e.depth <= depth)
            .map_or(self.entries.len(), |k| i + 1 + k);
        self.entries.drain(i..end);
        self.clamp();
    }

    pub fn clamp(&mut self) {
        let n = self.visible().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    /// One page of a list arrived: add its nodes under `parent` (each node once), and queue
    /// their meta-data. Returns how many entries `parent` has now.
    pub fn add_page(&mut self, parent: Option<&str>, page: &disco::Items) -> usize {
        let (at, depth) = match parent {
            None => (self.entries.len(), 0),
            Some(p) => match self.index_of(p) {
                Some(i) => {
                    // After the parent's subtree so far.
                    let d = self.entries[i].depth;
                    let end = self.entries[i + 1..]
                        .iter()
                        .position(|e| e.depth <= d)
                        .map_or(self.entries.len(), |k| i + 1 + k);
                    (end, d + 1)
                }
                None => return 0,
            },
        };
        let mut new = Vec::new();
        for item in &page.items {
            let Some(node) = &item.node else { continue };
            // A service that lists a node twice, or under itself, adds nothing.
            if self.index_of(node).is_some()
                || new.iter().any(|e: &Entry| &e.node == node)
                || parent == Some(node.as_str())
            {
                continue;
            }
            new.push(Entry {
                node: node.clone(),
                name: item.name.clone(),
                parent: parent.map(str::to_owned),
                depth,
                meta: Meta::Unknown,
                expanded: false,
                listed: false,
            });
        }
        self.info_queue.extend(new.iter().map(|e| e.node.clone()));
        self.entries.splice(at..at, new);
        if let Some(wanted) = self.select_when_listed.clone()
            && self.entries.iter().any(|e| e.node == wanted)
        {
            self.select(Some(&wanted));
            self.select_when_listed = None;
        }
        self.entries
            .iter()
            .filter(|e| e.parent.as_deref() == parent)
            .count()
    }

    /// Nodes whose meta-data to ask for now (keeping at most `info_window` in flight).
    pub fn next_infos(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.info_in_flight < self.info_window.max(1) {
            let Some(node) = self.info_queue.pop_front() else {
                break;
            };
            if let Some(i) = self.index_of(&node)
                && self.entries[i].meta == Meta::Unknown
            {
                self.entries[i].meta = Meta::Loading;
                self.info_in_flight += 1;
                out.push(node);
            }
        }
        out
    }

    /// A node's meta-data arrived (or was refused).
    pub fn set_meta(&mut self, node: &str, meta: Meta) {
        self.info_in_flight = self.info_in_flight.saturating_sub(1);
        if let Some(i) = self.index_of(node) {
            self.entries[i].meta = meta;
        }
    }

    /// Entries listed and their meta-data known, for the title line.
    pub fn counts(&self) -> (usize, usize) {
        let known = self
            .entries
            .iter()
            .filter(|e| matches!(e.meta, Meta::Known(_) | Meta::Refused(_)))
            .count();
        (self.entries.len(), known)
    }

    /// Open or close the selected collection. Returns the node to list when its children
    /// are not known yet.
    pub fn toggle_selected(&mut self) -> Option<String> {
        let rows = self.visible();
        let &i = rows.get(self.selected)?;
        let e = &mut self.entries[i];
        e.expanded = !e.expanded;
        if e.expanded && !e.listed {
            e.listed = true;
            return Some(e.node.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(nodes: &[&str]) -> disco::Items {
        disco::Items {
            node: None,
            items: nodes
                .iter()
                .map(|n| disco::Listed {
                    jid: "pubsub.x".into(),
                    node: Some((*n).into()),
                    name: None,
                })
                .collect(),
            page: None,
        }
    }

    fn names(x: &Explorer) -> Vec<String> {
        x.visible()
            .into_iter()
            .map(|i| format!("{}{}", "  ".repeat(x.entries[i].depth), x.entries[i].node))
            .collect()
    }

    #[test]
    fn a_tree_opens_on_demand_and_filters_flat() {
        let mut x = Explorer::default();
        assert_eq!(x.add_page(None, &page(&["a", "coll", "z", "a"])), 3);
        assert_eq!(names(&x), ["a", "coll", "z"], "each node once");
        x.selected = 1;
        assert_eq!(x.toggle_selected().as_deref(), Some("coll"));
        x.add_page(Some("coll"), &page(&["c1", "c2", "coll"]));
        assert_eq!(names(&x), ["a", "coll", "  c1", "  c2", "z"]);
        // Closing hides the children; opening again does not list again.
        assert_eq!(x.toggle_selected(), None);
        assert_eq!(names(&x), ["a", "coll", "z"]);
        assert_eq!(x.toggle_selected(), None);
        // A filter shows every match, inside closed collections too.
        x.entries[1].expanded = false;
        x.filter = Input::new("C2".into());
        assert_eq!(names(&x), ["  c2"]);
    }

    #[test]
    fn meta_data_is_asked_for_a_few_at_a_time() {
        let mut x = Explorer::default();
        let many: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        x.add_page(None, &page(&refs));
        let first = x.next_infos();
        assert_eq!(first.len(), INFO_WINDOW);
        assert!(x.next_infos().is_empty(), "the window is full");
        x.set_meta("n0", Meta::Refused("no".into()));
        assert_eq!(x.next_infos(), ["n8"]);
        assert_eq!(x.counts(), (20, 1));
    }
}
