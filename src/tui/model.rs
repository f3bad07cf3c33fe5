//! Everything the TUI shows, as plain data. Changed only by `update`, read only by `view`.

use std::time::Duration;

use chrono::FixedOffset;
use tui_input::Input;

use crate::feed::NodeFeed;
use crate::xmpp::ConnState;
use crate::xmpp::protocol::SubState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Subscriptions,
    Feed,
    Compose,
}

impl Focus {
    #[must_use]
    pub fn next(self) -> Self {
        match self {
            Self::Subscriptions => Self::Feed,
            Self::Feed => Self::Compose,
            Self::Compose => Self::Subscriptions,
        }
    }

    #[must_use]
    pub fn prev(self) -> Self {
        match self {
            Self::Subscriptions => Self::Compose,
            Self::Feed => Self::Subscriptions,
            Self::Compose => Self::Feed,
        }
    }
}

/// One subscribed node.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub name: String,
    pub state: SubState,
    pub feed: NodeFeed,
    /// Time of the newest item (as the item carried it, formatted for display).
    pub last_activity: Option<String>,
    pub resyncing: bool,
    /// Items received so far and the service's total, while a paged resync runs.
    pub progress: Option<(usize, Option<u64>)>,
    /// Gaps detected in this node's sequences.
    pub gaps: u64,
    /// When the last resync finished (display time).
    pub last_resync: Option<String>,
}

/// The whole screen's state.
#[derive(Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent UI flags, not a state machine"
)]
pub struct Model {
    pub nodes: Vec<NodeView>,
    pub selected: usize,
    pub focus: Focus,
    /// Rows scrolled up from the bottom of the feed; 0 means following the newest.
    pub feed_offset: usize,
    pub compose: Input,
    pub conn: ConnState,
    /// The network core has ended (after a final error or a shutdown).
    pub net_ended: bool,
    pub auto_publish: bool,
    pub interval: Duration,
    pub auto_node: Option<String>,
    pub last_error: Option<String>,
    /// The last informational message (published, resynced, …).
    pub notice: Option<String>,
    pub show_help: bool,
    /// Rows the help overlay is scrolled down.
    pub help_scroll: u16,
    pub dropped: u64,
    /// Ids of items published while offline, waiting for the link.
    pub waiting: std::collections::BTreeSet<String>,
    /// Time zone for displayed times.
    pub offset: FixedOffset,
    /// Terminal size, for page sizes.
    pub size: (u16, u16),
    pub quit: bool,
}

impl Model {
    pub fn new(
        nodes: &[String],
        feed_limit: usize,
        auto_publish: bool,
        interval: Duration,
        offset: FixedOffset,
    ) -> Self {
        Self {
            nodes: nodes
                .iter()
                .map(|n| NodeView {
                    name: n.clone(),
                    state: SubState::Subscribing,
                    feed: NodeFeed::new(feed_limit),
                    last_activity: None,
                    resyncing: false,
                    progress: None,
                    gaps: 0,
                    last_resync: None,
                })
                .collect(),
            selected: 0,
            focus: Focus::Feed,
            feed_offset: 0,
            compose: Input::default(),
            conn: ConnState::Connecting { attempt: 1 },
            net_ended: false,
            auto_publish,
            interval,
            auto_node: nodes.first().cloned(),
            last_error: None,
            notice: None,
            show_help: false,
            help_scroll: 0,
            dropped: 0,
            waiting: std::collections::BTreeSet::new(),
            offset,
            size: (80, 24),
            quit: false,
        }
    }

    /// The model for a network session's nodes and auto-publish settings, in local time.
    pub fn for_session(session: &crate::xmpp::session::SessionConfig, feed_limit: usize) -> Self {
        Self::new(
            &session.nodes,
            feed_limit,
            session.auto_publish,
            session.interval,
            *chrono::Local::now().offset(),
        )
    }

    pub fn selected_node(&self) -> Option<&NodeView> {
        self.nodes.get(self.selected)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeView> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Rows the feed pane shows at the current size (see `view::layout`).
    pub fn feed_height(&self) -> usize {
        usize::from(super::view::layout_for(self.size.0, self.size.1, self.nodes.len()).feed_rows)
    }

    /// Total rows of the selected node's feed, the eviction marker included.
    pub fn feed_total(&self) -> usize {
        self.selected_node()
            .map_or(0, |n| n.feed.len() + usize::from(n.feed.evicted() > 0))
    }

    pub fn following(&self) -> bool {
        self.feed_offset == 0
    }
}
