//! Everything the TUI shows, as plain data. Changed only by `update`, read only by `view`.
//!
//! The model keeps facts (times, states); the view formats them. Time comes in as
//! `Msg::Tick` (the shell sends one a second), so the model never reads a clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tui_input::Input;

use xmpp_parsers::jid::Jid;

use crate::feed::NodeFeed;
use crate::xmpp::proto::SubState;
use crate::xmpp::{ConnState, RequestId, RequestIds};

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

/// Whether a node is being fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Idle,
    /// A retrieve is running: items received so far and the service's total, when paging.
    Resyncing {
        progress: Option<(usize, Option<u64>)>,
    },
}

/// What quitting does to the items not yet confirmed by the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// They are lost (no store: `--no-cache`, or it failed).
    Lost,
    /// The store keeps them; the next start sends them.
    Kept,
}

/// One subscribed node.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub name: String,
    pub state: SubState,
    pub feed: NodeFeed,
    /// When the newest item was published (its own time) or, without one, received.
    pub last_activity: Option<DateTime<Utc>>,
    pub sync: SyncState,
    /// The feed shows what the local cache kept from earlier runs; the service has not
    /// confirmed it yet.
    pub cached: bool,
    /// The resync under way is incremental: (kept from the cache, fetched).
    pub incremental: Option<(usize, usize)>,
    /// Gaps detected in this node's sequences.
    pub gaps: u64,
    /// When the last resync finished.
    pub last_resync: Option<DateTime<Utc>>,
    /// Live figures: rate, last item, resyncs, latency.
    pub stats: super::stats::NodeStats,
}

impl NodeView {
    pub fn new(name: String, feed_limit: usize, offset: FixedOffset) -> Self {
        Self {
            name,
            state: SubState::Subscribing,
            feed: NodeFeed::with_offset(feed_limit, offset),
            last_activity: None,
            sync: SyncState::Idle,
            cached: false,
            incremental: None,
            gaps: 0,
            last_resync: None,
            stats: super::stats::NodeStats::default(),
        }
    }
}

/// A modal layer over the panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    /// The key list; rows scrolled down.
    Help {
        scroll: u16,
    },
    /// The message log; rows scrolled up from the newest.
    Messages {
        scroll: u16,
    },
    /// A question before something that loses data (its text is [`Model::confirm`]).
    Confirm,
    /// The service explorer (its state is [`Model::explorer`]).
    Explorer,
    /// The node configuration form ([`Model::form`]).
    Form,
    /// A node's affiliations or subscriptions ([`Model::panel`]).
    Panel,
    /// One item: its tree, rendered fields or XML ([`Model::item_view`]).
    Item,
    /// Each node's live figures; nodes scrolled down.
    Stats {
        scroll: u16,
    },
    /// A numeric field over time ([`Model::chart`]).
    Chart,
}

/// What the chart plots: a field of a node's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartView {
    pub node: String,
    pub field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// One line of the message log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: DateTime<Utc>,
    pub level: Level,
    pub text: String,
    /// Shown in the status bar for a while (else only in the log).
    pub flash: bool,
}

/// Entries the message log keeps; the oldest go first.
pub const LOG_LIMIT: usize = 500;
/// How long a background notice stays in the status bar.
pub const NOTICE_TTL: Duration = Duration::from_secs(10);
/// How long a background error stays in the status bar (the log keeps it).
pub const ERROR_TTL: Duration = Duration::from_secs(30);

/// A publish the service has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfirmed {
    pub node: String,
    /// Offline: waiting for the link.
    pub queued: bool,
}

/// A publish that failed for good; `P` sends it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub node: String,
    pub text: String,
}

/// What the TUI asked the network core, kept until the answer comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The user's publish; `id` once the core has given the item its id.
    Publish {
        node: String,
        text: String,
        id: Option<String>,
    },
    Resync {
        node: String,
    },
    Follow {
        node: String,
    },
    Unfollow {
        node: String,
    },
    /// A page of the nodes under `parent` (`None`: the root).
    ListNodes {
        parent: Option<String>,
    },
    NodeInfo {
        node: String,
    },
    ServiceInfo,
    /// An owner's request about `node`.
    Owner {
        node: String,
        what: super::owner::OwnerAsk,
    },
    Retract {
        node: String,
        id: String,
    },
    /// An edited item published again under its id.
    Republish {
        node: String,
        id: String,
        /// The file the edit is kept in until the service has it.
        kept: Option<std::path::PathBuf>,
    },
}

/// The whole screen's state.
#[derive(Debug)]
pub struct Model {
    pub nodes: Vec<NodeView>,
    pub selected: usize,
    pub focus: Focus,
    /// Rows scrolled up from the bottom of the feed; 0 means following the newest.
    pub feed_offset: usize,
    /// The selected row of the feed, in rows up from the newest (`None`: none selected).
    pub cursor: Option<usize>,
    pub compose: Input,
    pub conn: ConnState,
    /// How many servers the account was given (`--server`; 0: the domain's SRV records).
    /// With a choice of them, the status bar says which one the link is on.
    pub servers_given: usize,
    /// When `conn` last changed.
    pub conn_since: DateTime<Utc>,
    /// The network core has ended (after a final error or a shutdown).
    pub net_ended: bool,
    /// The pubsub service: where the nodes are, and for the words of errors.
    pub service: Jid,
    pub auto_publish: bool,
    pub interval: Duration,
    pub auto_node: Option<String>,
    /// The outcome of the user's last action (publish, resync, …): it stays until the next.
    pub outcome: Option<LogEntry>,
    /// Everything said, newest last; the status bar shows the newest for a while.
    pub log: VecDeque<LogEntry>,
    pub overlay: Overlay,
    /// The overlay to go back to when this one closes (help opened over the explorer).
    pub under: Option<Overlay>,
    pub dropped: u64,
    /// The user's publishes not yet confirmed, by item id.
    pub unconfirmed: BTreeMap<String, Unconfirmed>,
    pub failed: Vec<Failed>,
    /// Ids for requests to the network core.
    pub ids: RequestIds,
    /// Requests not answered yet.
    pub asked: BTreeMap<RequestId, Asked>,
    pub explorer: super::explorer::Explorer,
    /// The question asked (quit, purge, delete, retract).
    pub confirm: Option<super::owner::Confirm>,
    /// The node configuration form being edited.
    pub form: Option<super::form::FormEditor>,
    /// A node's affiliations or subscriptions.
    pub panel: Option<super::owner::Panel>,
    /// The field the chart plots.
    pub chart: Option<ChartView>,
    /// Reading Esc typed just before an arrow key.
    pub esc_seq: super::update::EscSeq,
    /// The feed's filter (or find), while there is one.
    pub search: Option<super::search::Search>,
    /// The item whose XML is shown.
    pub item_view: Option<super::itemview::ItemView>,
    /// Subscriptions the service asked this account (an owner) to approve, by node: the
    /// subscriptions list of their node shows them as pending until approved or denied.
    pub pending: Vec<(String, super::owner::PanelRow)>,
    /// Time zone for displayed times.
    pub offset: FixedOffset,
    /// Items each node's feed keeps.
    pub feed_limit: usize,
    /// Bytes all the feeds keep together, at most (`--feed-memory`).
    pub feed_memory: Option<usize>,
    /// What quitting does to the items not yet confirmed.
    pub unsent: Unsent,
    /// The time of the last tick.
    pub now: DateTime<Utc>,
    /// Terminal size, for page sizes.
    pub size: (u16, u16),
    pub quit: bool,
}

impl Model {
    pub fn new(
        service: &Jid,
        nodes: &[String],
        feed_limit: usize,
        auto_publish: bool,
        interval: Duration,
        offset: FixedOffset,
    ) -> Self {
        Self {
            nodes: nodes
                .iter()
                .map(|n| NodeView::new(n.clone(), feed_limit, offset))
                .collect(),
            feed_limit,
            feed_memory: None,
            unsent: Unsent::Lost,
            selected: 0,
            focus: Focus::Feed,
            feed_offset: 0,
            cursor: None,
            compose: Input::default(),
            conn: ConnState::Connecting {
                attempt: 1,
                server: None,
            },
            servers_given: 1,
            conn_since: DateTime::<Utc>::UNIX_EPOCH,
            net_ended: false,
            service: service.clone(),
            auto_publish,
            interval,
            auto_node: nodes.first().cloned(),
            outcome: None,
            log: VecDeque::new(),
            overlay: Overlay::None,
            under: None,
            dropped: 0,
            unconfirmed: BTreeMap::new(),
            failed: Vec::new(),
            ids: RequestIds::default(),
            asked: BTreeMap::new(),
            explorer: super::explorer::Explorer::default(),
            confirm: None,
            form: None,
            panel: None,
            item_view: None,
            search: None,
            chart: None,
            esc_seq: super::update::EscSeq::None,
            pending: Vec::new(),
            offset,
            now: DateTime::<Utc>::UNIX_EPOCH,
            size: (80, 24),
            quit: false,
        }
    }

    /// The model for a network session's nodes and auto-publish settings, in local time.
    pub fn for_session(session: &crate::xmpp::session::SessionConfig, feed_limit: usize) -> Self {
        let mut m = Self::new(
            &session.service,
            &session.nodes,
            feed_limit,
            session.auto_publish,
            session.interval,
            *chrono::Local::now().offset(),
        );
        m.now = Utc::now();
        m
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

    /// The key of a node of this session's service.
    pub fn key(&self, node: &str) -> crate::xmpp::NodeKey {
        crate::xmpp::NodeKey::new(&self.service, node)
    }

    /// Is this node followed (in the subscriptions pane)?
    pub fn follows(&self, name: &str) -> bool {
        self.node_index(name).is_some()
    }

    /// Add a node to the subscriptions pane (as subscribing), unless it is there.
    pub fn add_node(&mut self, name: &str) {
        if !self.follows(name) {
            let view = NodeView::new(name.to_owned(), self.feed_limit, self.offset);
            self.nodes.push(view);
        }
    }

    /// Take a node out of the subscriptions pane; the selection stays on the same node, or
    /// moves to the one before when it was this one.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.node_index(name) else {
            return;
        };
        self.nodes.remove(i);
        if self.selected > i || self.selected >= self.nodes.len() {
            self.selected = self.selected.saturating_sub(1);
        }
        if i == self.selected {
            self.feed_offset = 0;
            self.cursor = None;
        }
    }

    /// A request to the network core, remembered until its answer.
    pub fn ask(
        &mut self,
        asked: Asked,
        make: impl FnOnce(RequestId) -> crate::xmpp::Command,
    ) -> crate::xmpp::Command {
        let req = self.ids.fresh();
        self.asked.insert(req, asked);
        make(req)
    }

    /// Rows the feed pane shows at the current size (see `view::layout`).
    pub fn feed_height(&self) -> usize {
        usize::from(super::view::layout_for(self.size.0, self.size.1, self.nodes.len()).feed_rows)
    }

    /// Total rows of the selected node's feed, the eviction marker included.
    pub fn feed_total(&self) -> usize {
        if let Some(hits) = self.shown_hits() {
            return hits.len();
        }
        self.selected_node()
            .map_or(0, |n| n.feed.len() + usize::from(n.feed.evicted() > 0))
    }

    /// The matches the feed shows instead of its rows, while a filter hides the others.
    pub fn shown_hits(&self) -> Option<&[super::search::Hit]> {
        self.search
            .as_ref()
            .filter(|s| s.hides())
            .map(|s| s.hits.as_slice())
    }

    /// The item of a match.
    pub fn hit_item(&self, h: super::search::Hit) -> Option<&crate::feed::FeedItem> {
        match &self.nodes.get(h.node)?.feed.row_numbered(h.row)?.kind {
            crate::feed::RowKind::Item { item, .. } => Some(item),
            crate::feed::RowKind::Marker { .. } => None,
        }
    }

    pub fn following(&self) -> bool {
        self.feed_offset == 0 && self.cursor.is_none()
    }

    /// The item of the selected feed row, if it is an item.
    pub fn selected_item(&self) -> Option<&crate::feed::FeedItem> {
        if let Some(hits) = self.shown_hits() {
            let at = hits.len().checked_sub(1 + self.cursor?)?;
            return self.hit_item(hits[at]);
        }
        let node = self.selected_node()?;
        let marker_rows = usize::from(node.feed.evicted() > 0);
        let total = node.feed.len() + marker_rows;
        let row = total
            .checked_sub(1 + self.cursor?)?
            .checked_sub(marker_rows)?;
        match &node.feed.row(row)?.kind {
            crate::feed::RowKind::Item { item, .. } => Some(item),
            crate::feed::RowKind::Marker { .. } => None,
        }
    }

    /// The item the item keys act on: the selected one, else the newest.
    pub fn target_item(&self) -> Option<&crate::feed::FeedItem> {
        if self.cursor.is_some() {
            return self.selected_item();
        }
        if let Some(hits) = self.shown_hits() {
            return hits.last().and_then(|h| self.hit_item(*h));
        }
        let node = self.selected_node()?;
        (0..node.feed.len())
            .rev()
            .find_map(|i| match &node.feed.row(i)?.kind {
                crate::feed::RowKind::Item { item, .. } => Some(item),
                crate::feed::RowKind::Marker { .. } => None,
            })
    }

    /// The account's bare JID, once online.
    pub fn account_bare(&self) -> Option<String> {
        match &self.conn {
            ConnState::Online { jid, .. } => Some(jid.split('/').next().unwrap_or(jid).to_owned()),
            _ => None,
        }
    }

    pub fn is_online(&self) -> bool {
        matches!(self.conn, ConnState::Online { .. })
    }

    fn push_log(&mut self, level: Level, text: String, flash: bool) -> LogEntry {
        let entry = LogEntry {
            at: self.now,
            level,
            text,
            flash,
        };
        self.log.push_back(entry.clone());
        while self.log.len() > LOG_LIMIT {
            self.log.pop_front();
        }
        entry
    }

    /// Something happened in the background (a resync, a gap): the status bar shows it for
    /// a while, the log keeps it.
    pub fn info(&mut self, text: impl Into<String>) {
        self.push_log(Level::Info, text.into(), true);
    }

    /// Something failed in the background: the status bar shows it for a while.
    pub fn error(&mut self, text: impl Into<String>) {
        self.push_log(Level::Error, text.into(), true);
    }

    /// Only for the log (what the status bar shows otherwise, such as the connection).
    pub fn quiet(&mut self, level: Level, text: impl Into<String>) {
        self.push_log(level, text.into(), false);
    }

    /// The outcome of something the user did: it stays in the status bar until the next.
    pub fn outcome(&mut self, level: Level, text: impl Into<String>) {
        let entry = self.push_log(level, text.into(), false);
        self.outcome = Some(entry);
    }

    /// The newest background message, while it is recent enough to show.
    pub fn recent(&self) -> Option<&LogEntry> {
        let newest = self.log.iter().rev().find(|e| e.flash)?;
        let ttl = match newest.level {
            Level::Info => NOTICE_TTL,
            Level::Error => ERROR_TTL,
        };
        let age = self.now.signed_duration_since(newest.at);
        (age.to_std().unwrap_or_default() < ttl).then_some(newest)
    }

    /// User publishes not yet confirmed (those on their way to the network core, which has
    /// not said it has them yet, count too).
    pub fn waiting(&self) -> usize {
        let on_the_way = self
            .asked
            .values()
            .filter(|a| matches!(a, Asked::Publish { id: None, .. }))
            .count();
        self.unconfirmed.len() + on_the_way
    }

    /// Items waiting to be published that quitting would keep for the next start (the user
    /// is asked: keep or discard).
    pub fn unsent_to_keep(&self) -> usize {
        if self.unsent == Unsent::Kept && !self.net_ended {
            self.waiting()
        } else {
            0
        }
    }

    /// Quitting now would lose text the user wrote: items not yet published, failed ones,
    /// or a draft.
    pub fn would_lose_text(&self) -> bool {
        !self.net_ended && self.waiting() > 0 && self.unsent == Unsent::Lost
            || !self.failed.is_empty()
            || !self.compose.value().trim().is_empty()
            || self.form.as_ref().is_some_and(|f| !f.changed().is_empty())
    }
}
