//! The pubsub client as a pure state machine.
//!
//! [`Session::handle`] takes one [`Input`] (a stanza, a connection change, a command from a
//! front end, a timer tick) plus the current time, and returns what to do: stanzas to send and
//! [`NetEvent`]s for the front ends. It does no I/O and reads no clock, so every behaviour
//! here (subscribe on a fresh session, IQ timeouts, forged events, retries after a reset) is
//! tested by feeding inputs and reading outputs. The async shell around it is `xmpp::task`.
//!
//! IQ tracking is ours, not tokio-xmpp's (see STACK-NOTES: its `Client` loses wake-ups under
//! concurrent IQs): every request gets an id from a counter and an entry in `pending`, and a
//! reply is accepted only from the JID the request went to.
//!
//! The nodes the session follows are one list ([`Followed`]), each with the state of its
//! subscription. Temporary failures (the service is not online, no answer in time) are tried
//! again with a growing delay ([`RetryPolicy`]); items arriving for a node show that it is live,
//! whatever the last answer said.
//!
//! Subscriptions are by full JID, one per run. A clean end (`Command::Shutdown`) unsubscribes
//! them; a run that crashed leaves its subscriptions behind, and the next fresh session of the
//! account removes those whose resource is one of ours (see [`RESOURCE_PREFIX`]) and no longer
//! answers a ping, and those of its own full JID for nodes it does not follow.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::message::Message;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::rsm::SetQuery;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::error::{Condition, RequestError};
use super::events::{
    Answer, Command, ConnState, NetEvent, NodeKey, OwnerDone, OwnerOp, RequestId, SnapshotReason,
};
use super::proto::event::{self, EventPart};
use super::proto::form::Form;
use super::proto::{self, OutgoingItem, SubState, disco, owner, pubsub, seq};
use crate::cache::{Persist, Volatile};
use crate::feed::gap::{GapTracker, Verdict, lost_in};
use crate::feed::{FeedItem, Seq};
use crate::sanitize;

/// The id tokio-xmpp gives the iq it sends to keep the stream alive (its answer is no reply
/// to any request of ours).
const LIVENESS_PROBE_ID: &str = "xmpp-rs-stanzastream-liveness-probe-";
/// Typed text waiting for a connection is kept up to this many items; more are refused.
pub const OUTBOX_LIMIT: usize = 1000;
/// The "sender" of a gap found in a relay's node-wide numbering.
pub const SERVICE_NUMBERING: &str = "all publishers";
/// Items asked for per RSM page.
pub const RSM_PAGE: usize = 200;
/// Nodes asked for per disco#items page (services without RSM send them all).
pub const DISCO_PAGE: usize = 500;
/// Pages one resync may take (a bound against a service that never stops paging).
pub const MAX_PAGES: u32 = 500;
/// Item ids asked for per page when listing a node's ids (disco#items on the node).
pub const ID_PAGE: usize = 1000;
/// Items fetched by id per request in an incremental resync.
pub const FETCH_BATCH: usize = 100;
/// Resources of this program start with this; only subscriptions of such resources are
/// cleaned up when they are left behind (other clients of the account are not ours to touch).
pub const RESOURCE_PREFIX: &str = "pubsub-tui";
/// How long a shutdown waits for the unsubscribe answers.
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(1500);

/// How temporary failures are tried again: `first`, doubling up to `max`, and at most
/// `attempts` tries in all before the failure is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl RetryPolicy {
    /// 2, 4, 8, 16, 32, 60, 60 s: eight tries over about three minutes.
    pub const DEFAULT: Self = Self {
        first: Duration::from_secs(2),
        max: Duration::from_secs(60),
        attempts: 8,
    };

    /// The wait after failed try number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the session needs to know, fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The pubsub service: a component (`pubsub.example.org`) or a relay's full JID.
    pub service: Jid,
    /// Nodes to subscribe to (and accept events for). Repeats are ignored.
    pub nodes: Vec<String>,
    /// Subscribe and retrieve on every fresh session (off for the one-shot `publish`).
    pub subscribe: bool,
    pub auto_publish: bool,
    pub interval: Duration,
    pub iq_timeout: Duration,
    /// Automatic resyncs of one node start at most this often.
    pub resync_min_interval: Duration,
    /// Random id of this publisher run; with the per-node counter it forms the item ids.
    pub publisher_session: String,
    /// Temporary failures of subscribes, initial retrieves and publishes.
    pub retry: RetryPolicy,
    /// Publishes still unconfirmed when the session ends (a final connection failure, a
    /// shutdown) stay in the store's outbox for a later run (the TUI, `publish --queue`);
    /// otherwise they fail, and their numbers are declared never published.
    pub keep_unsent: bool,
}

/// The time, given to the state machine rather than read by it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: DateTime<Utc>,
}

impl Now {
    pub fn system() -> Self {
        Self {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// Everything that can happen to a state machine driven by [`crate::xmpp::task`]; `C` is what
/// its front end can ask (the client's [`Command`] by default).
#[derive(Debug)]
pub enum Input<C = Command> {
    /// A fresh stream (not a resumption) is bound to this JID.
    Online {
        bound: Jid,
        /// The server it is on (`HOST:PORT`), when the connector knows it.
        server: Option<String>,
    },
    /// The stream was resumed (XEP-0198), on this server: nothing was lost.
    Resumed {
        server: Option<String>,
    },
    /// The connection dropped; the stream is trying to resume or reconnect.
    Suspended,
    /// News from the connector (attempts, retries, a final failure).
    Connection(ConnState),
    Stanza(Box<Stanza>),
    Command(C),
    /// Periodic check of timeouts and retries.
    Tick,
    /// The auto-publish timer fired.
    AutoPublishTick,
    /// The stream ended for good.
    Closed,
}

/// What a state machine wants done; `E` is what it tells its front end.
#[derive(Debug)]
pub enum Output<E = NetEvent> {
    Send(Box<Stanza>),
    Event(E),
    /// Close the stream and end the task.
    Stop,
}

/// How a one-shot request reads its answer (the reply's payload, or the error).
type Read =
    Box<dyn FnOnce(Result<Option<&Element>, RequestError>) -> Result<Answer, RequestError> + Send>;

struct Reader(Read);

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// A reader that turns the payload into the answer; errors stay errors.
    fn ok(
        f: impl FnOnce(Option<&Element>) -> Result<Answer, RequestError> + Send + 'static,
    ) -> Self {
        Self(Box::new(move |r| r.and_then(f)))
    }
}

/// Who waits for an unsubscribe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsub {
    /// This run's own subscription, at shutdown.
    Shutdown,
    /// A node the user stopped following (answered to this request).
    Unfollow(RequestId),
    /// A left-behind subscription being cleaned up (not one of this run's own).
    Stale,
}

#[derive(Debug)]
enum Request {
    /// This run's subscription of a followed node.
    Subscribe { node: String },
    Retrieve {
        node: String,
        reason: SnapshotReason,
        /// Items of the pages received so far.
        items: Vec<FeedItem>,
        pages: u32,
        /// The service's node-wide head number, if it says (a `serve` relay does).
        head: Option<u64>,
    },
    /// A page of a followed node's item ids (disco#items on the node), the first step of an
    /// incremental resync.
    ListIds {
        node: String,
        reason: SnapshotReason,
        ids: Vec<String>,
        pages: u32,
    },
    /// A batch of the items an incremental resync lacks, by id (`run`: which resync).
    FetchIds { node: String, run: u64 },
    /// Which of the items an earlier run left unsent the service has already (it may have
    /// taken them just before that run ended): those are not sent again.
    CheckLeftovers {
        node: String,
        items: Vec<OutgoingItem>,
    },
    /// Items of a node for a front end, without following it.
    Items {
        req: RequestId,
        to: Jid,
        node: String,
        max: Option<u64>,
        items: Vec<FeedItem>,
        pages: u32,
    },
    Publish {
        item: OutgoingItem,
        /// `None`: auto-publish.
        req: Option<RequestId>,
        /// Tries so far, this one included.
        attempts: u32,
    },
    Unsubscribe {
        node: String,
        jid: String,
        why: Unsub,
    },
    /// The account's subscriptions at the service, to clean up left-behind ones.
    Cleanup,
    /// A front end's request that is one IQ and its answer, read by `read` (which gets the
    /// error too, for the requests where an error is what was wanted).
    OneShot {
        req: RequestId,
        to: Jid,
        get: bool,
        read: Reader,
    },
    /// A ping to another resource of the account: does it still exist?
    Probe { jid: String, subs: NodeSubs },
}

impl Request {
    /// The front end's request this answers, if any.
    fn req(&self) -> Option<RequestId> {
        match self {
            Self::Items { req, .. }
            | Self::OneShot { req, .. }
            | Self::Unsubscribe {
                why: Unsub::Unfollow(req),
                ..
            } => Some(*req),
            Self::Publish { req, .. } => *req,
            Self::Subscribe { .. }
            | Self::Retrieve { .. }
            | Self::ListIds { .. }
            | Self::FetchIds { .. }
            | Self::CheckLeftovers { .. }
            | Self::Unsubscribe { .. }
            | Self::Cleanup
            | Self::Probe { .. } => None,
        }
    }

    fn is_get(&self) -> bool {
        matches!(
            self,
            Self::Retrieve { .. }
                | Self::ListIds { .. }
                | Self::FetchIds { .. }
                | Self::CheckLeftovers { .. }
                | Self::Items { .. }
                | Self::Cleanup
                | Self::OneShot { get: true, .. }
                | Self::Probe { .. }
        )
    }
}

/// Subscriptions of one JID: (node, subscription id).
type NodeSubs = Vec<(String, Option<String>)>;

#[derive(Debug)]
struct Pending {
    request: Request,
    to: Jid,
    sent: Instant,
}

/// One followed node.
#[derive(Debug, Clone)]
struct Followed {
    name: String,
    state: SubState,
    /// The service confirmed our subscription in this session (we unsubscribe on exit).
    subscribed: bool,
    /// The initial retrieve of this session has not succeeded yet.
    need_retrieve: bool,
    /// Failed tries in a row, and when the next one is due.
    attempts: u32,
    next_attempt: Option<Instant>,
    /// Follow requests waiting for the first answer to this node's subscribe.
    follow_reqs: Vec<RequestId>,
}

impl Followed {
    fn new(name: String) -> Self {
        Self {
            name,
            state: SubState::Subscribing,
            subscribed: false,
            need_retrieve: false,
            attempts: 0,
            next_attempt: None,
            follow_reqs: Vec::new(),
        }
    }

    fn is_down(&self) -> bool {
        matches!(self.state, SubState::Retrying { .. } | SubState::Failed(_))
    }
}

/// The live items of a node that arrived while its retrieve was in flight. The snapshot
/// brings them. After a subscribe (the initial retrieve of a session) they wait for it, so
/// they come once: ejabberd re-sends a node's last item at subscribe and at presence, which
/// would otherwise come out two or three times. They wait only so long ([`HOLD`]): after that
/// (a slow service) they are delivered as they come, an exact repeat once. During other
/// resyncs (a gap, the user's) they are delivered at once.
#[derive(Debug, Default)]
struct Held {
    items: Vec<FeedItem>,
    /// While holding: until when.
    until: Option<Instant>,
    /// A digest (id and payload) of each item with an id taken so far.
    seen: HashSet<u64>,
}

fn digest(item: &FeedItem) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let id = item.id()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (id, item.tree()).hash(&mut h);
    Some(h.finish())
}

/// How long live items wait for the snapshot of a resync in flight.
const HOLD: Duration = Duration::from_secs(3);

impl Held {
    fn new(now: Now, hold: bool) -> Self {
        Self {
            items: Vec::new(),
            until: hold.then(|| now.mono + HOLD),
            seen: HashSet::new(),
        }
    }

    /// Take `item`: whether to deliver it now.
    fn take(&mut self, item: &FeedItem) -> bool {
        let first = digest(item).is_none_or(|d| self.seen.insert(d));
        self.items.push(item.clone());
        self.until.is_none() && first
    }

    /// Stop holding: the items held so far, each once.
    fn release(&mut self) -> Vec<FeedItem> {
        if self.until.take().is_none() {
            return Vec::new();
        }
        let mut once = HashSet::new();
        self.items
            .iter()
            .filter(|i| digest(i).is_none_or(|d| once.insert(d)))
            .cloned()
            .collect()
    }
}

/// A publish waiting for its next try.
#[derive(Debug, Clone)]
struct Delayed {
    due: Instant,
    item: OutgoingItem,
    req: Option<RequestId>,
    attempts: u32,
}

/// An incremental resync fetching the items it lacks.
#[derive(Debug)]
struct Incremental {
    run: u64,
    reason: SnapshotReason,
    /// The ids the service listed.
    listed: Vec<String>,
    got: Vec<FeedItem>,
    /// Items kept when the ids were listed.
    had: usize,
    /// The ids asked for, and batches not yet answered.
    asked: Vec<String>,
    outstanding: usize,
    head: Option<u64>,
}

#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    nodes: Vec<Followed>,
    conn: ConnState,
    bound: Option<Jid>,
    /// The server the stream is on (`HOST:PORT`), when the connector knows it.
    server: Option<String>,
    next_id: u64,
    pending: HashMap<String, Pending>,
    /// Publisher numbering, the outbox and the kept items (in memory only, or a database).
    store: Box<dyn Persist>,
    /// Incremental resyncs fetching items, by node.
    incremental: HashMap<String, Incremental>,
    /// Resyncs started so far (tells a stale batch's answer from the current one's).
    runs: u64,
    /// Nodes whose item ids the service would not list: resynced in full.
    no_id_list: HashSet<String>,
    /// Items earlier runs left unsent, to check with the service once online.
    unchecked: Vec<OutgoingItem>,
    /// The kept items shown at start, per node, until the node's first resync (which then
    /// need not read and parse them again).
    shown: HashMap<String, Vec<FeedItem>>,
    /// Nodes whose numbers accounted for changed since they were last kept.
    accounted_dirty: HashSet<String>,
    /// Ids of leftovers the user discarded while their check was in flight: never sent.
    discarded: HashSet<String>,
    /// Ids of items kept in the store when the session ends unconfirmed, whatever
    /// `keep_unsent` says (those an earlier run left: this run's settings do not drop them).
    keep_ids: HashSet<String>,
    /// Publishes waiting for the link, with their request (`None`: auto-publish).
    outbox: VecDeque<(OutgoingItem, Option<RequestId>)>,
    delayed: Vec<Delayed>,
    /// Live items that arrived while a retrieve of their node was in flight.
    resyncing: HashMap<String, Held>,
    /// Resync requests waiting for the retrieve of their node.
    resync_reqs: HashMap<String, Vec<RequestId>>,
    /// Nodes the account itself (its bare JID) is subscribed to, as the service listed them
    /// at the start of this session.
    account_subs: HashSet<String>,
    /// Sequence state per node.
    trackers: HashMap<String, GapTracker>,
    /// When the last retrieve of each node started (for the rate limit).
    last_resync: HashMap<String, Instant>,
    /// Nodes with an automatic resync waiting for the rate limit.
    resync_wanted: HashSet<String>,
    auto_publish: bool,
    auto_node: Option<String>,
    /// Auto-published items so far (their own numbering, for their text).
    auto_count: u64,
    /// A shutdown waits for its unsubscribes until this time.
    closing: Option<Instant>,
    dropped: u64,
}

impl Session {
    /// A session that keeps nothing between runs (a new publisher session each run).
    pub fn new(cfg: SessionConfig) -> Self {
        let store = Box::new(Volatile::new(cfg.publisher_session.clone()));
        Self::with_store(cfg, store)
    }

    /// A session with a store: numbers continue, unsent items survive, items are kept.
    pub fn with_store(cfg: SessionConfig, store: Box<dyn Persist>) -> Self {
        let mut nodes: Vec<Followed> = Vec::new();
        for n in &cfg.nodes {
            if !nodes.iter().any(|f| &f.name == n) {
                nodes.push(Followed::new(n.clone()));
            }
        }
        Self {
            auto_publish: cfg.auto_publish,
            auto_node: nodes.first().map(|n| n.name.clone()),
            nodes,
            cfg,
            conn: ConnState::Connecting {
                attempt: 1,
                server: None,
            },
            bound: None,
            server: None,
            next_id: 0,
            pending: HashMap::new(),
            store,
            incremental: HashMap::new(),
            runs: 0,
            no_id_list: HashSet::new(),
            unchecked: Vec::new(),
            accounted_dirty: HashSet::new(),
            shown: HashMap::new(),
            keep_ids: HashSet::new(),
            discarded: HashSet::new(),
            outbox: VecDeque::new(),
            delayed: Vec::new(),
            resyncing: HashMap::new(),
            resync_reqs: HashMap::new(),
            account_subs: HashSet::new(),
            trackers: HashMap::new(),
            last_resync: HashMap::new(),
            resync_wanted: HashSet::new(),
            auto_count: 0,
            closing: None,
            dropped: 0,
        }
    }

    pub fn is_online(&self) -> bool {
        matches!(self.conn, ConnState::Online { .. })
    }

    /// The auto-publish period.
    pub fn interval(&self) -> Duration {
        self.cfg.interval
    }

    pub fn auto_publish(&self) -> bool {
        self.auto_publish
    }

    /// Requests sent and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The followed nodes and their subscription states, in order.
    pub fn node_states(&self) -> Vec<(String, SubState)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.state.clone()))
            .collect()
    }

    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Online { bound, server } => {
                self.server = server;
                self.on_online(&bound, now, &mut out);
            }
            Input::Resumed { server } => {
                self.server = server;
                // Requests in flight were kept (and are re-sent) by stream management: their
                // answers can come now, so their time starts again.
                for p in self.pending.values_mut() {
                    p.sent = now.mono;
                }
                self.set_conn(
                    ConnState::Online {
                        jid: self
                            .bound
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        resumed: true,
                        server: self.server.clone(),
                    },
                    &mut out,
                );
                self.flush_outbox(now, &mut out);
                self.check_leftovers(now, &mut out);
            }
            Input::Suspended => self.set_conn(ConnState::Suspended, &mut out),
            // The connector reports from its own task: its "connecting" can arrive after the
            // stream it made is already up (the network task takes whichever is ready
            // first). Online, that report is stale; a real loss comes as Suspended first.
            Input::Connection(ConnState::Connecting { .. } | ConnState::Retrying { .. })
                if self.is_online() => {}
            Input::Connection(state) => {
                if let ConnState::Failed { error } = &state {
                    let reason = format!("connection failed: {error}");
                    self.fail_all_pending(&reason, &mut out);
                }
                self.set_conn(state, &mut out);
            }
            Input::Stanza(stanza) => self.on_stanza(*stanza, now, &mut out),
            Input::Command(cmd) => self.on_command(cmd, now, &mut out),
            Input::Tick => {
                if self.closing.is_some_and(|t| now.mono >= t) {
                    self.stop(&mut out);
                    return out;
                }
                self.expire(now, &mut out);
                // Live items held too long for a slow snapshot go out as they are.
                for node in self.held_nodes() {
                    if let Some(held) = self.resyncing.get_mut(&node)
                        && held.until.is_some_and(|t| now.mono >= t)
                    {
                        for item in held.release() {
                            out.push(Output::Event(NetEvent::Item(item)));
                        }
                    }
                }
                self.start_due_resyncs(now, &mut out);
                self.start_due_retries(now, &mut out);
                for node in std::mem::take(&mut self.accounted_dirty) {
                    self.keep_accounted(&node);
                }
                self.store.flush();
            }
            Input::AutoPublishTick => {
                if self.auto_publish
                    && self.is_online()
                    && self.closing.is_none()
                    && let Some(node) = self.auto_node.clone()
                {
                    self.auto_count += 1;
                    let text = format!("auto-publish #{}", self.auto_count);
                    self.publish(node, &text, None, now, &mut out);
                }
            }
            Input::Closed => {
                if !matches!(self.conn, ConnState::Failed { .. }) {
                    self.fail_all_pending("the connection was closed", &mut out);
                    self.set_conn(ConnState::Closed, &mut out);
                }
            }
        }
        if let Some(problem) = self.store.take_problem() {
            out.push(Output::Event(NetEvent::Store(problem)));
        }
        out
    }

    /// Before the first input: what the store kept of each followed node, shown at once as
    /// [`SnapshotReason::Cached`] (the first retrieve confirms it). Items kept are items this
    /// account received: they do not count as lost when the service no longer has them.
    pub fn start(&mut self, now: Now) -> Vec<Output> {
        let mut out = Vec::new();
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for node in names {
            self.show_cached(&node, now, &mut out);
        }
        if let Some(problem) = self.store.take_problem() {
            out.push(Output::Event(NetEvent::Store(problem)));
        }
        out
    }

    fn show_cached(&mut self, node: &str, now: Now, out: &mut Vec<Output>) {
        if !self.cfg.subscribe || !self.store.keeps_items() {
            return;
        }
        // What earlier runs received or reported lost is not reported lost again.
        for a in self.store.accounted(node) {
            let tracker = self.tracker(node);
            for &(x, y) in &a.ranges {
                tracker.account(&a.sender, &a.session, x, y);
            }
        }
        let mut items = self.store.cached(node);
        if items.is_empty() {
            return;
        }
        let tracker = self.tracker(node);
        for item in &items {
            tracker.mark_seen(item);
        }
        sort_by_time_and_seq(&mut items);
        self.shown.insert(node.to_owned(), items.clone());
        out.push(Output::Event(NetEvent::Snapshot {
            node: node.to_owned(),
            items,
            reason: SnapshotReason::Cached,
            lost: Vec::new(),
            at: now.wall,
        }));
    }

    fn set_conn(&mut self, state: ConnState, out: &mut Vec<Output>) {
        self.conn = state.clone();
        out.push(Output::Event(NetEvent::Connection(state)));
    }

    fn node(&self, name: &str) -> Option<&Followed> {
        self.nodes.iter().find(|n| n.name == name)
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut Followed> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    fn bound_string(&self) -> String {
        self.bound
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Set a followed node's state, and answer the follow requests waiting for it once the
    /// service has answered (a retry planned counts: the node stays followed, and the request
    /// learns why it is not subscribed yet).
    fn set_state(&mut self, node: &str, state: SubState, out: &mut Vec<Output>) {
        let Some(n) = self.node_mut(node) else { return };
        n.state = state.clone();
        let waiting = if matches!(state, SubState::Subscribing) {
            Vec::new()
        } else {
            std::mem::take(&mut n.follow_reqs)
        };
        let answers: Vec<_> = waiting
            .into_iter()
            .map(|req| {
                let result = match &state {
                    SubState::Failed(e) | SubState::Retrying { error: e, .. } => Err(e.clone()),
                    s => Ok(Answer::Followed {
                        node: node.to_owned(),
                        state: s.clone(),
                    }),
                };
                (req, result)
            })
            .collect();
        out.push(Output::Event(NetEvent::Subscription {
            node: node.to_owned(),
            state,
        }));
        for (req, result) in answers {
            reply(out, req, result);
        }
    }

    fn on_online(&mut self, bound: &Jid, now: Now, out: &mut Vec<Output>) {
        self.bound = Some(bound.clone());
        self.set_conn(
            ConnState::Online {
                jid: bound.to_string(),
                resumed: false,
                server: self.server.clone(),
            },
            out,
        );
        out.push(Output::Send(Box::new(Stanza::Presence(Presence::new(
            PresenceType::None,
        )))));
        // A fresh session: requests in flight on the old stream may never be answered. Publishes
        // are re-sent (their ids are derived, so a duplicate overwrites); the subscriptions and
        // retrieves of followed nodes are redone below; other requests are answered with the
        // reset, since the service may or may not have done them.
        let old: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        // Held for a snapshot that will not come on this stream: delivered as they came.
        for node in self.held_nodes() {
            self.release_held(&node, out);
        }
        self.incremental.clear();
        self.resync_wanted.clear();
        if self.cfg.subscribe {
            let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
            for node in names {
                if let Some(n) = self.node_mut(&node) {
                    n.subscribed = false;
                    n.need_retrieve = true;
                    n.attempts = 0;
                    n.next_attempt = None;
                }
                self.set_state(&node, SubState::Subscribing, out);
                self.join(&node, SnapshotReason::Initial, now, out);
            }
            self.send_iq(
                Request::Cleanup,
                pubsub::SubscriptionsQuery::default().build(),
                now,
                out,
            );
        } else {
            // Nothing retrieves here: resync requests cannot be answered by a snapshot.
            for (_, reqs) in std::mem::take(&mut self.resync_reqs) {
                for req in reqs {
                    reply(out, req, Err(reset_error()));
                }
            }
        }
        for p in old {
            match p.request {
                Request::Publish {
                    item,
                    req,
                    attempts,
                } => self.send_publish(item, req, attempts, now, out),
                Request::CheckLeftovers { items, .. } => self.unchecked.extend(items),
                // The node is not followed any more, and the clean-up of this session removes
                // a subscription of this JID to it that may be left.
                Request::Unsubscribe {
                    node,
                    why: Unsub::Unfollow(req),
                    ..
                } => reply(
                    out,
                    req,
                    Ok(Answer::Unfollowed {
                        account: self.account_subs.contains(&node),
                        node,
                    }),
                ),
                other => {
                    if let Some(req) = other.req() {
                        reply(out, req, Err(reset_error()));
                    }
                }
            }
        }
        self.flush_outbox(now, out);
        self.check_leftovers(now, out);
    }

    /// Subscribe to a node (unless this session did already) and retrieve its items (if the
    /// initial retrieve is still due, or `reason` asks for one).
    fn join(&mut self, node: &str, reason: SnapshotReason, now: Now, out: &mut Vec<Output>) {
        let Some(n) = self.node(node) else { return };
        let (subscribe, retrieve) = (
            !n.subscribed && !self.subscribe_in_flight(node),
            n.need_retrieve,
        );
        if subscribe {
            let payload = pubsub::Subscribe::new(node, &self.bound_string()).build();
            self.send_iq(
                Request::Subscribe {
                    node: node.to_owned(),
                },
                payload,
                now,
                out,
            );
        }
        if retrieve || reason != SnapshotReason::Initial {
            self.start_retrieve(node.to_owned(), reason, now, out);
        }
    }

    fn subscribe_in_flight(&self, node: &str) -> bool {
        self.pending
            .values()
            .any(|p| matches!(&p.request, Request::Subscribe { node: n } if n == node))
    }

    /// A subscribe or initial retrieve of `node` failed: try again later if the failure is
    /// temporary and tries are left, otherwise the node has failed (until `r`).
    fn node_failed(&mut self, node: &str, error: RequestError, now: Now, out: &mut Vec<Output>) {
        let policy = self.cfg.retry;
        let Some(n) = self.node_mut(node) else { return };
        // Failed already, or a retry is already planned (the subscribe and the retrieve of one
        // try can both fail): one try, one count.
        if matches!(n.state, SubState::Failed(_)) || n.next_attempt.is_some() {
            return;
        }
        n.attempts += 1;
        let attempt = n.attempts;
        let state = if error.is_temporary() && attempt < policy.attempts {
            let retry_in = policy.delay(attempt);
            n.next_attempt = Some(now.mono + retry_in);
            SubState::Retrying {
                error,
                attempt,
                retry_in,
            }
        } else {
            n.next_attempt = None;
            SubState::Failed(error)
        };
        self.set_state(node, state, out);
    }

    fn start_due_retries(&mut self, now: Now, out: &mut Vec<Output>) {
        if !self.is_online() || self.closing.is_some() {
            return;
        }
        let due: Vec<String> = self
            .nodes
            .iter_mut()
            .filter(|n| n.next_attempt.is_some_and(|t| now.mono >= t))
            .map(|n| {
                n.next_attempt = None;
                n.name.clone()
            })
            .collect();
        for node in due {
            self.join(&node, SnapshotReason::Initial, now, out);
        }
        let (due, later): (Vec<Delayed>, Vec<Delayed>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|d| now.mono >= d.due);
        self.delayed = later;
        for d in due {
            self.send_publish(d.item, d.req, d.attempts, now, out);
        }
    }

    fn flush_outbox(&mut self, now: Now, out: &mut Vec<Output>) {
        let mut held = VecDeque::new();
        while let Some((item, req)) = self.outbox.pop_front() {
            if self.leftovers_pending(&item.node) {
                // Behind the items an earlier run left: numbers go out in order.
                held.push_back((item, req));
            } else {
                self.send_publish(item, req, 0, now, out);
            }
        }
        self.outbox = held;
    }

    /// Items an earlier run left for `node` are not sent yet (not checked with the service).
    fn leftovers_pending(&self, node: &str) -> bool {
        self.unchecked.iter().any(|i| i.node == node)
            || self
                .pending
                .values()
                .any(|p| matches!(&p.request, Request::CheckLeftovers { node: n, .. } if n == node))
    }

    fn next_iq_id(&mut self) -> String {
        self.next_id += 1;
        format!("pt{}", self.next_id)
    }

    fn send_iq(&mut self, request: Request, payload: Element, now: Now, out: &mut Vec<Output>) {
        let to = match &request {
            Request::Probe { jid, .. } => match Jid::new(jid) {
                Ok(j) => j,
                Err(_) => return,
            },
            Request::Items { to, .. } | Request::OneShot { to, .. } => to.clone(),
            _ => self.cfg.service.clone(),
        };
        let id = self.next_iq_id();
        let is_get = request.is_get();
        self.pending.insert(
            id.clone(),
            Pending {
                request,
                to: to.clone(),
                sent: now.mono,
            },
        );
        let iq = if is_get {
            Iq::Get {
                from: None,
                to: Some(to),
                id,
                payload,
            }
        } else {
            Iq::Set {
                from: None,
                to: Some(to),
                id,
                payload,
            }
        };
        out.push(Output::Send(Box::new(Stanza::Iq(iq))));
    }

    /// Start retrieving all items of a node, unless a retrieve of it is already in flight
    /// (requests coalesce: at most one per node).
    fn start_retrieve(
        &mut self,
        node: String,
        reason: SnapshotReason,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        if self.resyncing.contains_key(&node) {
            return;
        }
        self.resync_wanted.remove(&node);
        let hold = reason == SnapshotReason::Initial;
        self.resyncing.insert(node.clone(), Held::new(now, hold));
        self.last_resync.insert(node.clone(), now.mono);
        out.push(Output::Event(NetEvent::ResyncStarted {
            node: node.clone(),
        }));
        // With items kept, list the service's ids and fetch only the ones missing. The user's
        // own resync fetches everything (an item replaced under the same id while this
        // account was away is only seen so).
        let incremental = reason != SnapshotReason::Manual
            && self.store.keeps_items()
            && !self.no_id_list.contains(&node)
            && !self.store.cached_ids(&node).is_empty();
        if incremental {
            let payload = id_page(&node, None);
            let request = Request::ListIds {
                node,
                reason,
                ids: Vec::new(),
                pages: 1,
            };
            self.send_iq(request, payload, now, out);
        } else {
            self.retrieve_all(node, reason, now, out);
        }
    }

    /// Retrieve every item of the node, page by page.
    fn retrieve_all(
        &mut self,
        node: String,
        reason: SnapshotReason,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        self.incremental.remove(&node);
        let payload = pubsub::ItemsQuery::page(&node, RSM_PAGE, None).build();
        let request = Request::Retrieve {
            node,
            reason,
            items: Vec::new(),
            pages: 1,
            head: None,
        };
        self.send_iq(request, payload, now, out);
    }

    /// A page of a node's ids: ask for the next, or fetch what the store lacks.
    fn on_ids_page(
        &mut self,
        request: Request,
        payload: Option<&Element>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Request::ListIds {
            node,
            reason,
            mut ids,
            pages,
        } = request
        else {
            return;
        };
        let Some(page) = payload.and_then(|p| disco::item_ids(p, &node)) else {
            // Not a list of this node's items: a full retrieve instead.
            self.no_id_list.insert(node.clone());
            return self.retrieve_all(node, reason, now, out);
        };
        let next = page.next_after(ids.len() + page.ids.len());
        ids.extend(page.ids);
        if let Some(after) = next
            && pages < MAX_PAGES
        {
            let payload = id_page(&node, Some(after));
            let request = Request::ListIds {
                node,
                reason,
                ids,
                pages: pages + 1,
            };
            return self.send_iq(request, payload, now, out);
        }
        let kept = self.store.cached_ids(&node);
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        // A listing that cannot be the whole set (fewer ids than the service counts, the page
        // bound reached, nothing listed while items are kept) is not trusted: a full retrieve
        // says for sure (and costs little when the node is in fact empty).
        let counted = page.page.as_ref().and_then(|p| p.count);
        if counted.is_some_and(|c| ids.len() < c)
            || pages >= MAX_PAGES
            || (ids.is_empty() && !kept.is_empty())
        {
            return self.retrieve_all(node, reason, now, out);
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !kept.contains(*id))
            .cloned()
            .collect();
        self.runs += 1;
        let run = self.runs;
        let batches: Vec<Vec<String>> = missing
            .chunks(FETCH_BATCH)
            .map(<[String]>::to_vec)
            .collect();
        self.incremental.insert(
            node.clone(),
            Incremental {
                run,
                reason,
                listed: ids,
                got: Vec::new(),
                had: kept.len(),
                asked: missing.clone(),
                outstanding: batches.len(),
                head: None,
            },
        );
        if batches.is_empty() {
            return self.finish_incremental(&node, now, out);
        }
        for ids in batches {
            let payload = pubsub::ItemsQuery {
                ids,
                ..pubsub::ItemsQuery::all(&node)
            }
            .build();
            self.send_iq(
                Request::FetchIds {
                    node: node.clone(),
                    run,
                },
                payload,
                now,
                out,
            );
        }
    }

    /// A batch of items fetched by id arrived.
    fn on_fetched(
        &mut self,
        node: &str,
        run: u64,
        payload: Option<&Element>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Some(inc) = self.incremental.get_mut(node).filter(|i| i.run == run) else {
            return;
        };
        let (_, result) = add_items_page(node, payload, &mut inc.got);
        inc.head = result.head.or(inc.head);
        inc.outstanding = inc.outstanding.saturating_sub(1);
        if inc.outstanding == 0 {
            self.finish_incremental(node, now, out);
        }
    }

    /// Every batch is in: the kept items the service still lists, and those fetched, make the
    /// node's set (a retrieve in full when the service did not send all it was asked for).
    fn finish_incremental(&mut self, node: &str, now: Now, out: &mut Vec<Output>) {
        let Some(inc) = self.incremental.remove(node) else {
            return;
        };
        let fetched: HashSet<&str> = inc.got.iter().filter_map(|i| i.id()).collect();
        let wanted: HashSet<&str> = inc.listed.iter().map(String::as_str).collect();
        let asked: HashSet<&str> = inc.asked.iter().map(String::as_str).collect();
        if asked.iter().any(|id| !fetched.contains(id)) {
            tracing::debug!(%node, "an incremental resync missed items: retrieving all");
            return self.retrieve_all(node.to_owned(), inc.reason, now, out);
        }
        // What was shown at start, when it holds every item still needed; else the store.
        let shown = self.shown.remove(node).filter(|items| {
            let ids: HashSet<&str> = items.iter().filter_map(|i| i.id()).collect();
            wanted
                .iter()
                .all(|id| fetched.contains(id) || ids.contains(id))
        });
        let cached = shown.unwrap_or_else(|| self.store.cached(node));
        let had = inc.had;
        let mut items: Vec<FeedItem> = cached
            .into_iter()
            .filter(|i| {
                i.id()
                    .is_some_and(|id| wanted.contains(id) && !fetched.contains(id))
            })
            .collect();
        // Every listed item must be in hand: one the store no longer has (another process
        // evicted or cleared it meanwhile) makes it a full retrieve.
        if items.len() + fetched.iter().filter(|id| wanted.contains(*id)).count() < wanted.len() {
            tracing::debug!(%node, "kept items went missing during a resync: retrieving all");
            return self.retrieve_all(node.to_owned(), inc.reason, now, out);
        }
        // No head in the answer (nothing was fetched): the relay's numbering goes on from the
        // last one known.
        let relay_head = inc
            .head
            .or_else(|| self.trackers.get(node).and_then(GapTracker::service_head));
        // The fetched items in the service's order. Answers by id, and id listings, need not
        // come in it (Prosody lists and answers newest first, and retrieves oldest first):
        // the kept items, which came before, tell which way the listing runs. With none kept
        // there is nothing to tell it by, and a full retrieve gives the order.
        let pos: HashMap<&str, usize> = inc
            .listed
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let at = |i: &FeedItem| i.id().and_then(|id| pos.get(id).copied());
        let mut got = inc.got;
        // When the kept items (oldest first) come in the listing in order, one way or the
        // other, the listing runs by age: every item goes where it puts it. Fetched items
        // can then be older than the kept ones too (the cache kept only the newest). Three
        // at least: two are always in one order or the other, whatever the listing.
        let kept_at: Vec<usize> = items.iter().filter_map(at).collect();
        let by_age = kept_at.len() >= 3 && kept_at.len() == items.len();
        let up = by_age && kept_at.windows(2).all(|w| w[0] < w[1]);
        let down = by_age && kept_at.windows(2).all(|w| w[0] > w[1]);
        let (kept, fetched) = (items.len(), got.len());
        if !got.is_empty() && (up || down) {
            items.append(&mut got);
            // Oldest first; anything the listing lacks last, as before.
            items.sort_by_key(|i| {
                let p = at(i);
                (
                    p.is_none(),
                    if down {
                        usize::MAX - p.unwrap_or(0)
                    } else {
                        p.unwrap_or(0)
                    },
                )
            });
        } else if !got.is_empty() {
            if items.is_empty() {
                tracing::debug!(%node, "nothing kept to order the fetched items by: retrieving all");
                return self.retrieve_all(node.to_owned(), inc.reason, now, out);
            }
            // Mean listing positions, compared without division: kept > fetched means the
            // listing runs newest first.
            let sum_len = |v: &[FeedItem]| {
                let p: Vec<u128> = v.iter().filter_map(at).map(|x| x as u128).collect();
                (p.iter().sum::<u128>(), p.len() as u128)
            };
            let ((ks, kn), (gs, gn)) = (sum_len(&items), sum_len(&got));
            let newest_first = ks * gn > gs * kn;
            got.sort_by_key(|i| at(i).unwrap_or(usize::MAX));
            if newest_first {
                got.reverse();
            }
        }
        out.push(Output::Event(NetEvent::Incremental {
            node: node.to_owned(),
            kept,
            fetched,
            dropped: had.saturating_sub(kept),
        }));
        items.extend(got);
        if let Some(n) = self.node_mut(node) {
            n.need_retrieve = false;
        }
        self.finish_retrieve(node, items, relay_head, inc.reason, false, now, out);
    }

    fn resync_due(&self, node: &str, now: Now) -> bool {
        self.last_resync
            .get(node)
            .is_none_or(|t| now.mono.saturating_duration_since(*t) >= self.cfg.resync_min_interval)
    }

    /// A gap was seen: resync the node now, or as soon as the rate limit allows.
    fn want_resync(&mut self, node: &str, now: Now, out: &mut Vec<Output>) {
        if self.resyncing.contains_key(node) {
            return;
        }
        if self.is_online() && self.resync_due(node, now) {
            self.start_retrieve(node.to_owned(), SnapshotReason::Gap, now, out);
        } else {
            self.resync_wanted.insert(node.to_owned());
        }
    }

    fn start_due_resyncs(&mut self, now: Now, out: &mut Vec<Output>) {
        if !self.is_online() {
            return;
        }
        let mut due: Vec<String> = self
            .resync_wanted
            .iter()
            .filter(|n| self.resync_due(n, now))
            .cloned()
            .collect();
        due.sort();
        for node in due {
            self.start_retrieve(node, SnapshotReason::Gap, now, out);
        }
    }

    fn publish(
        &mut self,
        node: String,
        text: &str,
        req: Option<RequestId>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let text = sanitize::outgoing(text);
        if let Err(why) = proto::check_text_size(&text) {
            // Refused before it takes a number: nothing was published, nothing is void.
            let error = RequestError::Invalid(why);
            match req {
                Some(req) => reply(out, req, Err(error)),
                None => out.push(Output::Event(NetEvent::AutoPublishFailed {
                    node,
                    id: String::new(),
                    error,
                })),
            }
            return;
        }
        if !self.is_online() && self.outbox.len() >= OUTBOX_LIMIT {
            let error = RequestError::Invalid(format!(
                "offline, and {OUTBOX_LIMIT} items are already waiting"
            ));
            match req {
                Some(req) => reply(out, req, Err(error)),
                None => out.push(Output::Event(NetEvent::AutoPublishFailed {
                    node,
                    id: String::new(),
                    error,
                })),
            }
            return;
        }
        let number = self.store.number(&node);
        self.tracker(&node).ignore(&number.session);
        let item = OutgoingItem {
            node,
            sender: self.bound_string(),
            time: now.wall,
            seq: Seq {
                session: number.session,
                n: number.n,
                void: number.void,
            },
            text,
        };
        // Written down before it is sent: a crash from here on leaves it for the next run.
        self.store.outbox_put(&item);
        self.send_or_queue(item, req, now, out);
    }

    /// Send an item now, or queue it for the link.
    fn send_or_queue(
        &mut self,
        item: OutgoingItem,
        req: Option<RequestId>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        if self.is_online() && !self.leftovers_pending(&item.node) {
            self.send_publish(item, req, 0, now, out);
        } else {
            out.push(Output::Event(NetEvent::PublishSent {
                req,
                node: item.node.clone(),
                id: item.id(),
                queued: true,
            }));
            self.outbox.push_back((item, req));
        }
    }

    /// Drop the unsent items (the user chose to at quit): from the store too, their numbers
    /// declared never published. One in flight whose answer still comes changes nothing.
    fn discard_unsent(&mut self, req: RequestId, out: &mut Vec<Output>) {
        self.outbox.clear();
        self.delayed.clear();
        for item in self.unchecked.drain(..) {
            self.discarded.insert(item.id());
        }
        for p in self.pending.values() {
            if let Request::CheckLeftovers { items, .. } = &p.request {
                self.discarded.extend(items.iter().map(OutgoingItem::id));
            }
        }
        let n = self.store.discard_outbox();
        reply(out, req, Ok(Answer::Discarded(n)));
    }

    /// Send (or queue) what earlier runs left unsent, with their own ids and numbers.
    fn send_leftovers(
        &mut self,
        req: RequestId,
        node: Option<&str>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let items = self.store.leftovers(node);
        let listed = items
            .iter()
            .map(|i| (i.node.clone(), i.id(), i.text.clone()))
            .collect();
        for item in items {
            self.tracker(&item.node).ignore(&item.seq.session);
            self.keep_ids.insert(item.id());
            out.push(Output::Event(NetEvent::PublishSent {
                req: None,
                node: item.node.clone(),
                id: item.id(),
                queued: true,
            }));
            self.unchecked.push(item);
        }
        reply(out, req, Ok(Answer::Leftovers(listed)));
        if self.is_online() {
            self.check_leftovers(now, out);
        }
    }

    /// Ask the service which leftovers it has already, node by node.
    fn check_leftovers(&mut self, now: Now, out: &mut Vec<Output>) {
        let mut by_node: Vec<(String, Vec<OutgoingItem>)> = Vec::new();
        for item in std::mem::take(&mut self.unchecked) {
            match by_node.iter_mut().find(|(n, _)| *n == item.node) {
                Some((_, items)) => items.push(item),
                None => by_node.push((item.node.clone(), vec![item])),
            }
        }
        for (node, items) in by_node {
            for batch in items.chunks(FETCH_BATCH) {
                let payload = pubsub::ItemsQuery {
                    ids: batch.iter().map(OutgoingItem::id).collect(),
                    ..pubsub::ItemsQuery::all(&node)
                }
                .build();
                let items = batch.to_vec();
                let node = node.clone();
                self.send_iq(Request::CheckLeftovers { node, items }, payload, now, out);
            }
        }
    }

    /// The service's answer about leftovers (`present`: the ids it has; `None`: it could not
    /// say): send those it lacks, one after the other in their order.
    fn leftovers_checked(
        &mut self,
        items: Vec<OutgoingItem>,
        present: Option<&HashSet<String>>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let node = items.first().map(|i| i.node.clone());
        for item in items {
            if self.discarded.contains(&item.id()) || self.closing.is_some() {
                // Discarded meanwhile, or the session ends: not sent now (what is kept stays
                // for the next run).
                continue;
            }
            if present.is_some_and(|p| p.contains(&item.id())) {
                self.store.outbox_remove(&item);
                self.keep_ids.remove(&item.id());
                out.push(Output::Event(NetEvent::AutoPublished {
                    node: item.node.clone(),
                    id: item.id(),
                }));
            } else if self.is_online() {
                self.send_publish(item, None, 0, now, out);
            } else {
                self.outbox.push_back((item, None));
            }
        }
        // What this run queued for the node waited behind them.
        if node.is_some_and(|n| !self.leftovers_pending(&n)) && self.is_online() {
            self.flush_outbox(now, out);
        }
    }

    /// Send (or send again) a publish; `attempts` is how many tries it had before.
    fn send_publish(
        &mut self,
        mut item: OutgoingItem,
        req: Option<RequestId>,
        attempts: u32,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        if item.sender.is_empty() {
            item.sender = self.bound_string();
        }
        if attempts == 0 {
            out.push(Output::Event(NetEvent::PublishSent {
                req,
                node: item.node.clone(),
                id: item.id(),
                queued: false,
            }));
        }
        let payload = pubsub::Publish::new(&item.node, proto::item::item_element(&item)).build();
        self.send_iq(
            Request::Publish {
                item,
                req,
                attempts: attempts + 1,
            },
            payload,
            now,
            out,
        );
    }

    /// A publish failed for good: its number was never published (later items say so).
    /// `ended`: the session ended before the service answered; with `keep_unsent` the item
    /// then stays in the store for a later run.
    fn fail_publish(
        &mut self,
        item: &OutgoingItem,
        req: Option<RequestId>,
        error: RequestError,
        ended: bool,
        out: &mut Vec<Output>,
    ) {
        let keep = ended && (self.cfg.keep_unsent || self.keep_ids.contains(&item.id()));
        if !keep {
            self.store.void(&item.node, &item.seq.session, item.seq.n);
            self.store.outbox_remove(item);
            self.keep_ids.remove(&item.id());
        }
        match req {
            Some(req) => reply(out, req, Err(error)),
            None => out.push(Output::Event(NetEvent::AutoPublishFailed {
                node: item.node.clone(),
                id: item.id(),
                error,
            })),
        }
    }

    fn on_command(&mut self, cmd: Command, now: Now, out: &mut Vec<Output>) {
        if self.closing.is_some() {
            if let Some(req) = cmd.req() {
                reply(
                    out,
                    req,
                    Err(RequestError::Connection("shutting down".into())),
                );
            }
            return;
        }
        // Requests that only make sense with an answer now are refused while offline;
        // publishes wait for the link, follows and unfollows change the followed set.
        let needs_link = matches!(
            cmd,
            Command::Subscribe { .. }
                | Command::Unsubscribe { .. }
                | Command::Retract { .. }
                | Command::PublishItem { .. }
                | Command::Owner { .. }
                | Command::ListNodes { .. }
                | Command::Info { .. }
                | Command::Items { .. }
                | Command::Subscriptions { .. }
        );
        if needs_link
            && !self.is_online()
            && let Some(req) = cmd.req()
        {
            reply(out, req, Err(RequestError::Offline));
            return;
        }
        match cmd {
            Command::Publish { req, node, text } => match self.local(node) {
                Ok(node) => self.publish(node, &text, Some(req), now, out),
                Err(e) => reply(out, req, Err(e)),
            },
            Command::Resync { req, node } => match self.local(node) {
                Ok(node) => self.resync_command(req, &node, now, out),
                Err(e) => reply(out, req, Err(e)),
            },
            Command::Follow { req, node } => match self.local(node) {
                Ok(node) => self.follow(req, node, now, out),
                Err(e) => reply(out, req, Err(e)),
            },
            Command::Unfollow { req, node } => match self.local(node) {
                Ok(node) => self.unfollow(req, &node, now, out),
                Err(e) => reply(out, req, Err(e)),
            },
            Command::SetAutoPublish { enabled, node } => {
                self.auto_publish = enabled;
                if node.is_some() {
                    self.auto_node = node;
                }
                out.push(Output::Event(NetEvent::AutoPublish {
                    enabled,
                    interval: self.cfg.interval,
                    node: self.auto_node.clone(),
                }));
            }
            Command::Shutdown => self.shutdown(now, out),
            Command::SendLeftovers { req, node } => {
                self.send_leftovers(req, node.as_deref(), now, out);
            }
            Command::DiscardUnsent { req } => self.discard_unsent(req, out),
            Command::Items {
                req,
                node: NodeKey { service: to, node },
                max,
            } => {
                if let Err(e) = check_node_name(&node) {
                    return reply(out, req, Err(e));
                }
                let query = match max {
                    // The newest `max` (XEP-0060 §6.5.7); a service that ignores it is cut here.
                    Some(k) => pubsub::ItemsQuery {
                        max_items: Some(k),
                        ..pubsub::ItemsQuery::all(&node)
                    },
                    None => pubsub::ItemsQuery::page(&node, RSM_PAGE, None),
                };
                let request = Request::Items {
                    req,
                    to,
                    node,
                    max,
                    items: Vec::new(),
                    pages: 1,
                };
                self.send_iq(request, query.build(), now, out);
            }
            cmd @ (Command::ListNodes { .. }
            | Command::Info { .. }
            | Command::Subscriptions { .. }) => {
                let (request, payload) = Self::service_iq(cmd);
                self.send_iq(request, payload, now, out);
            }
            cmd => match self.one_iq(cmd) {
                Ok((request, payload)) => self.send_iq(request, payload, now, out),
                Err((req, error)) => reply(out, req, Err(error)),
            },
        }
    }

    /// A request that is one IQ to the service: what to remember of it (how to read its
    /// answer), and its payload. `Err`: refused here (a bad node name), with the request to
    /// answer. Each one-shot request is one arm here.
    fn one_iq(&self, cmd: Command) -> Result<(Request, Element), (RequestId, RequestError)> {
        let named = |req: RequestId, node: &str| check_node_name(node).map_err(|e| (req, e));
        let (req, to, get, payload, read) = match cmd {
            Command::Subscribe {
                req,
                node: NodeKey { service: to, node },
            } => {
                named(req, &node)?;
                let jid = self.bare_string();
                let payload = pubsub::Subscribe::new(&node, &jid).build();
                let read = Reader::ok(move |p| match SubState::from_result(p) {
                    SubState::Failed(e) => Err(e),
                    state => Ok(Answer::Subscribed { node, jid, state }),
                });
                (req, to, false, payload, read)
            }
            Command::Unsubscribe {
                req,
                node: NodeKey { service: to, node },
            } => {
                named(req, &node)?;
                let jid = self.bare_string();
                let payload = pubsub::Unsubscribe::new(&node, &jid, None).build();
                let read = Reader::ok(move |_| Ok(Answer::Unsubscribed { node, jid }));
                (req, to, false, payload, read)
            }
            Command::PublishItem {
                req,
                node: NodeKey { service: to, node },
                item,
                options,
            } => {
                named(req, &node)?;
                let len = proto::to_xml(&item).len();
                if len > proto::MAX_ITEM_XML_BYTES {
                    return Err((
                        req,
                        RequestError::Invalid(format!(
                            "the item is {len} bytes of XML; at most {} can be sent",
                            proto::MAX_ITEM_XML_BYTES
                        )),
                    ));
                }
                let asked = item.attr("id").map(str::to_owned);
                let mut publish = pubsub::Publish::new(&node, item);
                publish.options = options;
                let read = Reader::ok(move |p| {
                    let id = pubsub::Publish::result_id(p).or(asked).unwrap_or_default();
                    Ok(Answer::Published { node, id })
                });
                (req, to, false, publish.build(), read)
            }
            Command::Retract {
                req,
                node: NodeKey { service: to, node },
                id,
            } => {
                let payload = pubsub::Retract::new(&node, &id).build();
                (
                    req,
                    to,
                    false,
                    payload,
                    Reader::ok(move |_| Ok(Answer::Retracted { node, id })),
                )
            }
            Command::Owner {
                req,
                node: NodeKey { service: to, node },
                op,
            } => {
                // An instant node has no name yet; the default form is no node's.
                let nameless = node.is_empty()
                    && matches!(op, OwnerOp::Create { .. } | OwnerOp::DefaultConfig);
                if !nameless {
                    named(req, &node)?;
                }
                let get = matches!(
                    op,
                    OwnerOp::DefaultConfig
                        | OwnerOp::GetConfig
                        | OwnerOp::Affiliations
                        | OwnerOp::Subscriptions
                );
                let (payload, read) = owner_iq(node, op);
                (req, to, get, payload, read)
            }
            other => unreachable!("not a one-IQ request: {other:?}"),
        };
        Ok((Request::OneShot { req, to, get, read }, payload))
    }

    /// A one-shot request about a service (its nodes, itself, the account's subscriptions):
    /// the request to remember (how to read its answer) and its payload.
    fn service_iq(cmd: Command) -> (Request, Element) {
        let (req, to, get, payload, read) = match cmd {
            Command::ListNodes {
                req,
                service: to,
                parent,
                after,
            } => {
                let page = SetQuery {
                    max: Some(DISCO_PAGE),
                    after,
                    before: None,
                    index: None,
                };
                let payload = disco::items_query(parent.as_deref(), Some(page));
                let read = Reader::ok(move |p| match p.and_then(disco::Items::parse) {
                    Some(mut items) => {
                        items.node = items.node.or(parent);
                        Ok(Answer::Nodes(items))
                    }
                    None => Err(malformed("a node list")),
                });
                (req, to, true, payload, read)
            }
            Command::Info {
                req,
                service: to,
                node,
            } => {
                let payload = disco::info_query(node.as_deref());
                let read = Reader::ok(move |p| match p.and_then(disco::Info::parse) {
                    Some(mut info) => {
                        info.node = info.node.or(node);
                        Ok(Answer::Info(info))
                    }
                    None => Err(malformed("an info answer")),
                });
                (req, to, true, payload, read)
            }
            Command::Subscriptions { req, service: to } => {
                let payload = pubsub::SubscriptionsQuery::default().build();
                let read =
                    Reader::ok(|p| Ok(Answer::Subscriptions(pubsub::Subscriptions::parse(p).list)));
                (req, to, true, payload, read)
            }
            other => unreachable!("not a service request: {other:?}"),
        };
        (Request::OneShot { req, to, get, read }, payload)
    }

    /// A node of this session's service, by name; another service's is refused (a session
    /// follows and publishes at its own service only).
    fn local(&self, key: NodeKey) -> Result<String, RequestError> {
        if key.service == self.cfg.service {
            Ok(key.node)
        } else {
            Err(RequestError::Invalid(format!(
                "{key}: this session follows and publishes at {} only",
                self.cfg.service
            )))
        }
    }

    fn bare_string(&self) -> String {
        self.bound
            .as_ref()
            .map(|j| j.to_bare().to_string())
            .unwrap_or_default()
    }

    /// Follow a node from now on: it joins the followed set at once (shown as subscribing),
    /// is subscribed and its items retrieved as on a fresh session, and the request is
    /// answered with the service's first answer to the subscribe.
    fn follow(&mut self, req: RequestId, node: String, now: Now, out: &mut Vec<Output>) {
        if let Err(e) = check_node_name(&node) {
            return reply(out, req, Err(e));
        }
        if !self.cfg.subscribe {
            return reply(
                out,
                req,
                Err(RequestError::Invalid(
                    "this session does not subscribe to nodes".into(),
                )),
            );
        }
        if let Some(n) = self.node_mut(&node) {
            if n.is_down() {
                // Following a failed node again is the user asking to try again.
                return self.resync_command(req, &node, now, out);
            }
            match n.state.clone() {
                SubState::Subscribing => n.follow_reqs.push(req),
                state => reply(out, req, Ok(Answer::Followed { node, state })),
            }
            return;
        }
        let mut followed = Followed::new(node.clone());
        followed.need_retrieve = true;
        followed.follow_reqs.push(req);
        self.nodes.push(followed);
        if self.auto_node.is_none() {
            self.auto_node = Some(node.clone());
        }
        out.push(Output::Event(NetEvent::Subscription {
            node: node.clone(),
            state: SubState::Subscribing,
        }));
        self.show_cached(&node, now, out);
        // Offline, the fresh session or resumption does it (a resumed stream finds the node
        // subscribing: it is joined here as soon as the link is up, by the retry timer).
        if self.is_online() {
            self.join(&node, SnapshotReason::Initial, now, out);
        } else if let Some(n) = self.node_mut(&node) {
            n.next_attempt = Some(now.mono);
        }
    }

    /// Stop following a node: it leaves the followed set at once, and the service is asked to
    /// remove this run's subscription (when it has one, or one is on its way).
    fn unfollow(&mut self, req: RequestId, node: &str, now: Now, out: &mut Vec<Output>) {
        let Some(pos) = self.nodes.iter().position(|n| n.name == node) else {
            return reply(
                out,
                req,
                Err(RequestError::Invalid(format!(
                    "'{}' is not followed",
                    sanitize::display(node)
                ))),
            );
        };
        let n = self.nodes.remove(pos);
        let gone = || RequestError::Invalid(format!("stopped following '{node}'"));
        for waiting in n.follow_reqs {
            reply(out, waiting, Err(gone()));
        }
        for waiting in self.resync_reqs.remove(node).unwrap_or_default() {
            reply(out, waiting, Err(gone()));
        }
        self.resyncing.remove(node);
        self.resync_wanted.remove(node);
        self.trackers.remove(node);
        if self.auto_node.as_deref() == Some(node) {
            self.auto_node = self.nodes.first().map(|n| n.name.clone());
        }
        let at_service = n.subscribed || self.subscribe_in_flight(node);
        if self.is_online() && at_service {
            let jid = self.bound_string();
            let payload = pubsub::Unsubscribe::new(node, &jid, None).build();
            let request = Request::Unsubscribe {
                node: node.to_owned(),
                jid,
                why: Unsub::Unfollow(req),
            };
            self.send_iq(request, payload, now, out);
        } else {
            // Offline: the next fresh session's clean-up removes what is left at the service.
            reply(
                out,
                req,
                Ok(Answer::Unfollowed {
                    account: self.account_subs.contains(node),
                    node: node.to_owned(),
                }),
            );
        }
    }

    fn resync_command(&mut self, req: RequestId, node: &str, now: Now, out: &mut Vec<Output>) {
        if !self.is_online() {
            return reply(out, req, Err(RequestError::Offline));
        }
        let Some(n) = self.node_mut(node) else {
            return reply(
                out,
                req,
                Err(RequestError::Invalid(format!(
                    "'{}' is not followed",
                    sanitize::display(node)
                ))),
            );
        };
        if n.is_down() {
            // Subscribe again: the user asked, so the tries start over.
            n.attempts = 0;
            n.next_attempt = None;
            n.subscribed = false;
            n.need_retrieve = true;
            self.set_state(node, SubState::Subscribing, out);
        }
        self.resync_reqs
            .entry(node.to_owned())
            .or_default()
            .push(req);
        self.join(node, SnapshotReason::Manual, now, out);
    }

    /// Unsubscribe what this run subscribed to, then stop (at once when offline, else on the
    /// last answer or after [`SHUTDOWN_WAIT`]).
    fn shutdown(&mut self, now: Now, out: &mut Vec<Output>) {
        let jid = self.bound.as_ref().map(ToString::to_string);
        let subscribed: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.subscribed)
            .map(|n| n.name.clone())
            .collect();
        match jid {
            Some(jid) if self.is_online() && !subscribed.is_empty() => {
                for node in subscribed {
                    let payload = pubsub::Unsubscribe::new(&node, &jid, None).build();
                    let request = Request::Unsubscribe {
                        node,
                        jid: jid.clone(),
                        why: Unsub::Shutdown,
                    };
                    self.send_iq(request, payload, now, out);
                }
                self.closing = Some(now.mono + SHUTDOWN_WAIT);
            }
            _ => self.stop(out),
        }
    }

    /// End the session: every request still open is answered first.
    fn stop(&mut self, out: &mut Vec<Output>) {
        self.closing = None;
        self.fail_all_pending("the session ended", out);
        out.push(Output::Stop);
    }

    fn drop_stanza(&mut self, reason: String, out: &mut Vec<Output>) {
        self.dropped += 1;
        tracing::info!(%reason, total = self.dropped, "dropped a stanza");
        out.push(Output::Event(NetEvent::Dropped {
            total: self.dropped,
            reason,
        }));
    }

    fn on_stanza(&mut self, stanza: Stanza, now: Now, out: &mut Vec<Output>) {
        match stanza {
            Stanza::Iq(iq) => self.on_iq(iq, now, out),
            Stanza::Message(msg) => self.on_message(&msg, now, out),
            Stanza::Presence(_) => {}
        }
    }

    fn tracker(&mut self, node: &str) -> &mut GapTracker {
        let own = &self.cfg.publisher_session;
        self.trackers
            .entry(node.to_owned())
            .or_insert_with(|| GapTracker::ignoring(own))
    }

    /// Keep what is accounted for of `node` for the next run.
    fn keep_accounted(&mut self, node: &str) {
        if !self.store.keeps_items() {
            return;
        }
        let Some(tracker) = self.trackers.get(node) else {
            return;
        };
        let accounted: Vec<crate::cache::Accounted> = tracker
            .accounted()
            .map(|(sender, session, ranges)| crate::cache::Accounted {
                sender: sender.to_owned(),
                session: session.to_owned(),
                ranges: ranges.to_vec(),
            })
            .collect();
        self.store.set_accounted(node, &accounted);
    }

    fn check_sequence(&mut self, item: &FeedItem, now: Now, out: &mut Vec<Output>) {
        self.accounted_dirty.insert(item.node().to_owned());
        // A relay's node-wide numbering covers every publisher: when it is there, it is the
        // exact check, and the per-publisher one would only report the same loss twice.
        let (verdict, by) = self.tracker(item.node()).observe_item(item);
        let sender = match by {
            Some(_) => SERVICE_NUMBERING.to_owned(),
            None => item.sender().map(str::to_owned).unwrap_or_default(),
        };
        if let Verdict::Gap(range) = verdict {
            out.push(Output::Event(NetEvent::Gap {
                node: item.node().to_owned(),
                sender,
                from: *range.start(),
                to: *range.end(),
            }));
            self.want_resync(item.node(), now, out);
        }
    }

    /// An event arrived for a node whose subscription looked down: it is live after all (a
    /// relay that came back with our subscription, for one).
    fn node_is_live(&mut self, node: &str, now: Now, out: &mut Vec<Output>) {
        let Some(n) = self.node_mut(node) else { return };
        // Down, or waiting for the owner's approval (which items arriving, or the service's
        // word, show has come).
        if !n.is_down() && !matches!(n.state, SubState::Pending | SubState::Unconfigured) {
            return;
        }
        n.subscribed = true;
        n.attempts = 0;
        n.next_attempt = None;
        let retrieve = n.need_retrieve;
        self.set_state(node, SubState::Subscribed, out);
        if retrieve && self.is_online() {
            self.start_retrieve(node.to_owned(), SnapshotReason::Initial, now, out);
        }
    }

    /// The service says a subscription changed. This run's own (its full JID, or the bare
    /// JID it is followed with): approved, it is live (and its items are fetched if they were
    /// not); removed (the owner removed it, or made this account an outcast), it is down
    /// until `r` subscribes again.
    fn subscription_changed(
        &mut self,
        node: &str,
        jid: &str,
        state: &str,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let ours = self.bound.as_ref().is_some_and(|b| b.as_str() == jid)
            || (self.bare_string() == jid && self.node(node).is_some_and(|n| !n.subscribed));
        if !ours || self.node(node).is_none() {
            return;
        }
        match state {
            "subscribed" => self.node_is_live(node, now, out),
            "pending" => self.set_state(node, SubState::Pending, out),
            "unconfigured" => self.set_state(node, SubState::Unconfigured, out),
            _ => {
                if let Some(n) = self.node_mut(node) {
                    n.subscribed = false;
                }
                let error = RequestError::Invalid(
                    "the service ended this subscription (the node's owner removed it, or you \
                     may no longer read the node)"
                        .into(),
                );
                self.set_state(node, SubState::Failed(error), out);
            }
        }
    }

    fn on_message(&mut self, msg: &Message, now: Now, out: &mut Vec<Output>) {
        if msg.from.as_ref() == Some(&self.cfg.service)
            && let Some(ask) = owner::AuthorizationRequest::find(&msg.payloads)
        {
            out.push(Output::Event(NetEvent::AuthorizationRequest {
                node: ask.node,
                jid: ask.jid,
                subid: ask.subid,
            }));
            return;
        }
        let Some(event) = event::find(&msg.payloads) else {
            return;
        };
        if msg.from.as_ref() != Some(&self.cfg.service) {
            let from = msg.from.as_ref().map_or_else(
                || "(no sender)".to_owned(),
                |f| sanitize::display(f.as_str()),
            );
            self.drop_stanza(format!("pubsub event from {from}, not the service"), out);
            return;
        }
        // To the bare JID: the account's own subscription (`subscribe` made it). A node this
        // run subscribed to itself gets the same event to its full JID too.
        let to_account = msg.to.as_ref().is_some_and(|t| t.resource().is_none());
        for mut part in event::parse(event) {
            // A `serve` relay numbers each notification (one item per message).
            if let EventPart::Items { node, items } = &mut part
                && let [item] = items.as_mut_slice()
            {
                item.service_seq = seq::read(msg.payloads.iter(), node, "n");
            }
            let node = part.node().to_owned();
            let Some(followed) = self.node(&node) else {
                if !to_account {
                    self.drop_stanza(
                        format!("event for node {node}, which we did not subscribe to"),
                        out,
                    );
                }
                continue;
            };
            if to_account && followed.subscribed {
                tracing::trace!(%node, "event to the account, a copy of ours");
                continue;
            }
            if !matches!(part, EventPart::Subscription { .. }) {
                self.node_is_live(&node, now, out);
            }
            match part {
                EventPart::Items { items, .. } => {
                    for item in items {
                        self.store.add(&item);
                        if let Some(held) = self.resyncing.get_mut(item.node()) {
                            // The retrieve in flight resets the sequence state; checking now
                            // would report gaps it is about to fill. See `Held`.
                            if held.take(&item) {
                                out.push(Output::Event(NetEvent::Item(item)));
                            }
                            continue;
                        }
                        self.check_sequence(&item, now, out);
                        out.push(Output::Event(NetEvent::Item(item)));
                    }
                }
                EventPart::Retract { node, id } => {
                    self.store.retract(&node, &id);
                    if let Some(held) = self.resyncing.get_mut(&node) {
                        held.items.retain(|i| i.id() != Some(id.as_str()));
                    }
                    out.push(Output::Event(NetEvent::Retracted { node, id }));
                }
                EventPart::Purge { node } => {
                    if let Some(held) = self.resyncing.get_mut(&node) {
                        held.items.clear();
                    }
                    self.store.clear(&node);
                    // The numbering starts over; what was received stays accounted for.
                    self.tracker(&node).reset_from(&[], None);
                    out.push(Output::Event(NetEvent::Purged { node }));
                }
                EventPart::Delete { node, redirect } => {
                    if let Some(held) = self.resyncing.get_mut(&node) {
                        held.items.clear();
                    }
                    self.store.clear(&node);
                    self.tracker(&node).reset_from(&[], None);
                    out.push(Output::Event(NetEvent::Deleted { node, redirect }));
                }
                EventPart::Subscription { node, jid, state } => {
                    self.subscription_changed(&node, &jid, &state, now, out);
                }
            }
        }
    }

    fn on_iq(&mut self, iq: Iq, now: Now, out: &mut Vec<Output>) {
        match iq {
            Iq::Get {
                from, id, payload, ..
            } => {
                let reply = if payload.is("ping", proto::NS_PING) {
                    Iq::Result {
                        from: None,
                        to: from,
                        id,
                        payload: None,
                    }
                } else {
                    service_unavailable(from, id)
                };
                out.push(Output::Send(Box::new(Stanza::Iq(reply))));
            }
            Iq::Set { from, id, .. } => {
                out.push(Output::Send(Box::new(Stanza::Iq(service_unavailable(
                    from, id,
                )))));
            }
            Iq::Result {
                from, id, payload, ..
            } => {
                if let Some(p) = self.take_pending(&id, from.as_ref(), out) {
                    self.on_result(p.request, payload.as_ref(), now, out);
                }
            }
            Iq::Error {
                from, id, error, ..
            } => {
                if let Some(p) = self.take_pending(&id, from.as_ref(), out) {
                    self.on_error(p.request, &error, now, out);
                }
            }
        }
        self.maybe_done_closing(out);
    }

    /// During a shutdown: stop once the last unsubscribe is answered.
    fn maybe_done_closing(&mut self, out: &mut Vec<Output>) {
        if self.closing.is_some()
            && !self.pending.values().any(|p| {
                matches!(
                    p.request,
                    Request::Unsubscribe {
                        why: Unsub::Shutdown,
                        ..
                    }
                )
            })
        {
            self.stop(out);
        }
    }

    /// The pending request for a reply, if the reply comes from where the request went.
    fn take_pending(
        &mut self,
        id: &str,
        from: Option<&Jid>,
        out: &mut Vec<Output>,
    ) -> Option<Pending> {
        let Some(p) = self.pending.get(id) else {
            // tokio-xmpp's own keepalive (an iq to our own account; ejabberd answers it, every
            // 20 s or so) is not a stray reply.
            if id.starts_with(LIVENESS_PROBE_ID) {
                return None;
            }
            self.drop_stanza("a reply to no request of ours (late or forged)".into(), out);
            return None;
        };
        if from != Some(&p.to) {
            let from = from.map_or_else(
                || "(no sender)".to_owned(),
                |f| sanitize::display(f.as_str()),
            );
            self.drop_stanza(
                format!("a reply from {from} to a request sent elsewhere"),
                out,
            );
            return None;
        }
        self.pending.remove(id)
    }

    fn on_result(
        &mut self,
        request: Request,
        payload: Option<&Element>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        match request {
            Request::Subscribe { node } => {
                let state = SubState::from_result(payload);
                if let Some(n) = self.node_mut(&node) {
                    n.subscribed = !matches!(state, SubState::Failed(_));
                    n.attempts = 0;
                    n.next_attempt = None;
                }
                // (A node unfollowed meanwhile had its unsubscribe sent after this.)
                self.set_state(&node, state, out);
            }
            request @ Request::Retrieve { .. } => self.on_retrieve_page(request, payload, now, out),
            request @ Request::ListIds { .. } => self.on_ids_page(request, payload, now, out),
            Request::FetchIds { node, run } => self.on_fetched(&node, run, payload, now, out),
            Request::CheckLeftovers { node, items } => {
                let present: HashSet<String> =
                    pubsub::ItemsResult::parse_with(&node, payload, |i| {
                        proto::parse_item(&node, i)
                    })
                    .items
                    .into_iter()
                    .filter_map(|i| i.id().map(str::to_owned))
                    .collect();
                self.leftovers_checked(items, Some(&present), now, out);
            }
            request @ Request::Items { .. } => self.on_items_page(request, payload, now, out),
            Request::OneShot { req, read, .. } => reply(out, req, (read.0)(Ok(payload))),
            Request::Publish { item, req, .. } => {
                self.store.outbox_remove(&item);
                self.keep_ids.remove(&item.id());
                let id = item.id();
                let node = item.node;
                match req {
                    Some(req) => reply(out, req, Ok(Answer::Published { node, id })),
                    None => out.push(Output::Event(NetEvent::AutoPublished { node, id })),
                }
            }
            Request::Unsubscribe { node, jid, why } => match why {
                Unsub::Stale => {
                    out.push(Output::Event(NetEvent::StaleSubscriptionRemoved {
                        node,
                        jid,
                    }));
                }
                Unsub::Unfollow(req) => reply(
                    out,
                    req,
                    Ok(Answer::Unfollowed {
                        account: self.account_subs.contains(&node),
                        node,
                    }),
                ),
                Unsub::Shutdown => {}
            },
            Request::Cleanup => self.clean_up_subscriptions(payload, now, out),
            Request::Probe { jid, .. } => {
                tracing::debug!(%jid, "another resource of this account answered: left alone");
            }
        }
    }

    /// A page of a followed node's items: ask for the next, or finish the retrieve.
    fn on_retrieve_page(
        &mut self,
        request: Request,
        payload: Option<&Element>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Request::Retrieve {
            node,
            reason,
            mut items,
            pages,
            head,
        } = request
        else {
            return;
        };
        let (next, result) = add_items_page(&node, payload, &mut items);
        let head = result.head.or(head);
        // Page on while the service says there is more (RSM). Services without RSM
        // answer everything at once and send no <set/>.
        if let Some(last) = next
            && pages < MAX_PAGES
        {
            out.push(Output::Event(NetEvent::ResyncProgress {
                node: node.clone(),
                received: items.len(),
                total: result.page.and_then(|p| p.count).map(|c| c as u64),
            }));
            let payload = pubsub::ItemsQuery::page(&node, RSM_PAGE, Some(&last)).build();
            let request = Request::Retrieve {
                node,
                reason,
                items,
                pages: pages + 1,
                head,
            };
            self.send_iq(request, payload, now, out);
            return;
        }
        if let Some(n) = self.node_mut(&node) {
            n.need_retrieve = false;
        }
        self.finish_retrieve(&node, items, head, reason, true, now, out);
    }

    /// A page of items for a front end: ask for the next, or answer.
    fn on_items_page(
        &mut self,
        request: Request,
        payload: Option<&Element>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Request::Items {
            req,
            to,
            node,
            max,
            mut items,
            pages,
        } = request
        else {
            return;
        };
        let (next, _) = add_items_page(&node, payload, &mut items);
        if max.is_none()
            && let Some(last) = next
            && pages < MAX_PAGES
        {
            let payload = pubsub::ItemsQuery::page(&node, RSM_PAGE, Some(&last)).build();
            let request = Request::Items {
                req,
                to,
                node,
                max,
                items,
                pages: pages + 1,
            };
            self.send_iq(request, payload, now, out);
            return;
        }
        sort_by_time_and_seq(&mut items);
        if let Some(k) = max.and_then(|k| usize::try_from(k).ok()) {
            let extra = items.len().saturating_sub(k);
            items.drain(..extra);
        }
        reply(out, req, Ok(Answer::Items { node, items }));
    }

    /// Remove subscriptions of this account that no run uses: those of this full JID for
    /// nodes it does not follow, and those of other resources of ours that are gone (asked
    /// with a ping first).
    fn clean_up_subscriptions(
        &mut self,
        payload: Option<&Element>,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        let Some(bound) = self.bound.clone() else {
            return;
        };
        let bare = bound.to_bare();
        let mut probes: Vec<(String, NodeSubs)> = Vec::new();
        for sub in pubsub::Subscriptions::parse(payload).list {
            let Ok(jid) = Jid::new(&sub.jid) else {
                continue;
            };
            if jid.to_bare() != bare {
                continue;
            }
            if jid.resource().is_none() {
                self.account_subs.insert(sub.node.clone());
                continue;
            }
            if jid == bound {
                if self.node(&sub.node).is_none() {
                    let payload =
                        pubsub::Unsubscribe::new(&sub.node, &sub.jid, sub.subid.as_deref()).build();
                    let request = Request::Unsubscribe {
                        node: sub.node,
                        jid: sub.jid,
                        why: Unsub::Stale,
                    };
                    self.send_iq(request, payload, now, out);
                }
                continue;
            }
            if !jid
                .resource()
                .is_some_and(|r| r.as_str().starts_with(RESOURCE_PREFIX))
            {
                continue;
            }
            match probes.iter_mut().find(|(j, _)| *j == sub.jid) {
                Some((_, subs)) => subs.push((sub.node, sub.subid)),
                None => probes.push((sub.jid, vec![(sub.node, sub.subid)])),
            }
        }
        for (jid, subs) in probes {
            self.send_iq(Request::Probe { jid, subs }, proto::ping(), now, out);
        }
    }

    /// The service's items are all in: merge what arrived live meanwhile, dedupe, order,
    /// work out what is lost, restart the sequence state from it, and report the snapshot
    /// (and answer the resync requests waiting for it).
    #[expect(clippy::too_many_arguments, reason = "one call per kind of resync")]
    fn finish_retrieve(
        &mut self,
        node: &str,
        mut items: Vec<FeedItem>,
        head: Option<u64>,
        reason: SnapshotReason,
        fetched_all: bool,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        // Items that arrived live while the request was in flight and that the service's
        // answer does not contain were published after it was answered.
        if let Some(held) = self.resyncing.remove(node) {
            items.extend(held.items);
        }
        let mut seen = HashSet::new();
        items.retain(|i| i.id().is_none_or(|id| seen.insert(id.to_owned())));
        sort_by_time_and_seq(&mut items);
        self.shown.remove(node);
        self.store.replace(node, &items, fetched_all);
        let tracker = self.tracker(node);
        let lost = lost_in(&items, tracker);
        tracker.reset_from(&items, head);
        // Said once: the next resync (of this run or a later one) does not say it again.
        for l in &lost {
            tracker.account(&l.sender, &l.session, l.from, l.to);
        }
        self.keep_accounted(node);
        let count = items.len();
        out.push(Output::Event(NetEvent::Snapshot {
            node: node.to_owned(),
            items,
            reason,
            lost,
            at: now.wall,
        }));
        for req in self.resync_reqs.remove(node).unwrap_or_default() {
            let answer = Answer::Resynced {
                node: node.to_owned(),
                count,
            };
            reply(out, req, Ok(answer));
        }
    }

    fn on_error(&mut self, request: Request, error: &StanzaError, now: Now, out: &mut Vec<Output>) {
        let error = RequestError::from_stanza_error(error);
        match request {
            // Not subscribed (any more): what an unfollow wanted.
            Request::Unsubscribe {
                node,
                why: Unsub::Unfollow(req),
                ..
            } if error.pubsub_detail() == Some("not-subscribed") => {
                reply(
                    out,
                    req,
                    Ok(Answer::Unfollowed {
                        account: self.account_subs.contains(&node),
                        node,
                    }),
                );
            }
            Request::Probe { jid, subs } => {
                // The server answers for a resource that is not online.
                if matches!(
                    error.condition(),
                    Some(Condition::ServiceUnavailable | Condition::RecipientUnavailable)
                ) {
                    for (node, subid) in subs {
                        let payload =
                            pubsub::Unsubscribe::new(&node, &jid, subid.as_deref()).build();
                        let request = Request::Unsubscribe {
                            node,
                            jid: jid.clone(),
                            why: Unsub::Stale,
                        };
                        self.send_iq(request, payload, now, out);
                    }
                }
            }
            request => self.fail_request(request, error, now, out),
        }
    }

    fn expire(&mut self, now: Now, out: &mut Vec<Output>) {
        // While the link is down no answer can come; what happens to the requests is decided
        // when it is back (resumed: re-sent and waited for; fresh session: redone).
        if !self.is_online() {
            return;
        }
        let timeout = self.cfg.iq_timeout;
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.mono.saturating_duration_since(p.sent) >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.fail_request(p.request, RequestError::Timeout(timeout), now, out);
            }
        }
    }

    /// The session cannot go on: answer every request, fail every publish waiting, and mark
    /// the followed nodes failed.
    fn fail_all_pending(&mut self, reason: &str, out: &mut Vec<Output>) {
        let error = RequestError::Connection(reason.to_owned());
        let all: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        for p in all {
            match p.request {
                Request::Publish { item, req, .. } => {
                    self.fail_publish(&item, req, error.clone(), true, out);
                }
                other => self.report_failure(other, error.clone(), out),
            }
        }
        let waiting: Vec<(OutgoingItem, Option<RequestId>)> = self
            .outbox
            .drain(..)
            .chain(self.delayed.drain(..).map(|d| (d.item, d.req)))
            .collect();
        for (item, req) in waiting {
            self.fail_publish(&item, req, error.clone(), true, out);
        }
        for (_, reqs) in std::mem::take(&mut self.resync_reqs) {
            for req in reqs {
                reply(out, req, Err(error.clone()));
            }
        }
        let names: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !matches!(n.state, SubState::Failed(_)) || !n.follow_reqs.is_empty())
            .map(|n| n.name.clone())
            .collect();
        for node in names {
            if let Some(n) = self.node_mut(&node) {
                n.next_attempt = None;
            }
            self.set_state(&node, SubState::Failed(error.clone()), out);
        }
    }

    /// A request failed while the session goes on: retry what is worth retrying.
    fn fail_request(
        &mut self,
        request: Request,
        error: RequestError,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        match request {
            Request::Subscribe { node } => {
                // The node is gone: what the cache kept of it is of no use any more.
                if error.condition() == Some(crate::xmpp::error::Condition::ItemNotFound) {
                    self.store.clear(&node);
                }
                self.node_failed(&node, error, now, out);
            }
            // An incremental resync that fails becomes a full one (the service may not list
            // a node's items, or not fetch them by id).
            Request::ListIds { node, reason, .. } => {
                self.no_id_list.insert(node.clone());
                self.retrieve_all(node, reason, now, out);
            }
            Request::FetchIds { node, run } => {
                if let Some(inc) = self.incremental.get(&node).filter(|i| i.run == run) {
                    let reason = inc.reason;
                    self.retrieve_all(node, reason, now, out);
                }
            }
            // The service would not say (no such node, no fetching by id): the publishes
            // themselves will tell.
            Request::CheckLeftovers { items, .. } => self.leftovers_checked(items, None, now, out),
            Request::Retrieve { node, reason, .. }
                if self.node(&node).is_some_and(|n| {
                    matches!(n.state, SubState::Pending | SubState::Unconfigured)
                }) =>
            {
                // Waiting for the owner's approval, which may not read items yet (ejabberd's
                // authorize nodes): the items come once the subscription is live.
                if let Some(n) = self.node_mut(&node) {
                    n.need_retrieve = true;
                }
                if reason == SnapshotReason::Initial {
                    // The retrieve follows the approval.
                    self.release_held(&node, out);
                } else {
                    self.retrieve_failed(&node, error, out);
                }
            }
            Request::Retrieve { node, reason, .. } => {
                self.retrieve_failed(&node, error.clone(), out);
                if reason == SnapshotReason::Initial && !error.is_unsupported() {
                    self.node_failed(&node, error, now, out);
                } else if let Some(n) = self.node_mut(&node) {
                    n.need_retrieve = false;
                }
            }
            Request::Publish {
                item,
                req,
                attempts,
            } if error.is_temporary() && attempts < self.cfg.retry.attempts => {
                let retry_in = self.cfg.retry.delay(attempts);
                out.push(Output::Event(NetEvent::PublishRetrying {
                    req,
                    node: item.node.clone(),
                    id: item.id(),
                    error,
                    retry_in,
                }));
                self.delayed.push(Delayed {
                    due: now.mono + retry_in,
                    item,
                    req,
                    attempts,
                });
            }
            other => self.report_failure(other, error, out),
        }
    }

    /// The nodes with a resync in flight, in order.
    fn held_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.resyncing.keys().cloned().collect();
        nodes.sort();
        nodes
    }

    /// No snapshot is coming after all: the items that arrived during the resync are
    /// delivered as they are.
    fn release_held(&mut self, node: &str, out: &mut Vec<Output>) {
        if let Some(mut held) = self.resyncing.remove(node) {
            for item in held.release() {
                out.push(Output::Event(NetEvent::Item(item)));
            }
        }
    }

    /// A retrieve failed: the resync requests waiting for it are answered; one the core
    /// started by itself is reported.
    fn retrieve_failed(&mut self, node: &str, error: RequestError, out: &mut Vec<Output>) {
        self.release_held(node, out);
        self.incremental.remove(node);
        let waiting = self.resync_reqs.remove(node).unwrap_or_default();
        if waiting.is_empty() {
            out.push(Output::Event(NetEvent::ResyncFailed {
                node: node.to_owned(),
                error,
            }));
        } else {
            for req in waiting {
                reply(out, req, Err(error.clone()));
            }
        }
    }

    /// Say that a request failed (no retry).
    fn report_failure(&mut self, request: Request, error: RequestError, out: &mut Vec<Output>) {
        match request {
            Request::Subscribe { node } => self.set_state(&node, SubState::Failed(error), out),
            Request::Retrieve { node, .. } | Request::ListIds { node, .. } => {
                self.retrieve_failed(&node, error, out);
            }
            Request::FetchIds { node, run } => {
                if self.incremental.get(&node).is_some_and(|i| i.run == run) {
                    self.incremental.remove(&node);
                    self.retrieve_failed(&node, error, out);
                }
            }
            Request::CheckLeftovers { items, .. } => {
                for item in items {
                    self.fail_publish(&item, None, error.clone(), true, out);
                }
            }
            Request::Publish { item, req, .. } => self.fail_publish(&item, req, error, false, out),
            Request::Unsubscribe {
                node,
                jid,
                why: why @ (Unsub::Stale | Unsub::Shutdown),
            } => {
                tracing::debug!(%node, %jid, ?why, %error, "unsubscribe failed");
            }
            Request::Cleanup => {
                tracing::debug!(%error, "the service did not list our subscriptions");
            }
            Request::Probe { jid, .. } => {
                tracing::debug!(%jid, %error, "no answer from another resource: left alone");
            }
            Request::OneShot { req, read, .. } => reply(out, req, (read.0)(Err(error))),
            other => {
                if let Some(req) = other.req() {
                    reply(out, req, Err(error));
                }
            }
        }
    }
}

/// Read a page of `node`'s items onto `items`: where the next page starts (when the service
/// pages and says there is more), and the rest of the answer (its RSM page and head).
/// An owner's request: its payload, and how to read the answer.
fn owner_iq(node: String, op: OwnerOp) -> (Element, Reader) {
    let done = |node: String, d: OwnerDone| Ok(Answer::Owner { node, done: d });
    match op {
        OwnerOp::Create { config, exist_ok } => {
            let create = pubsub::Create {
                node: (!node.is_empty()).then(|| node.clone()),
                config,
            };
            // The service names an instant node; a named one may be echoed or not.
            let read = Reader(Box::new(move |r| match r {
                Err(e) if exist_ok && e.condition() == Some(Condition::Conflict) => done(
                    node.clone(),
                    OwnerDone::Created {
                        node,
                        existed: true,
                    },
                ),
                Err(e) => Err(e),
                Ok(p) => {
                    let name = pubsub::Create::result_node(p).unwrap_or(node);
                    if name.is_empty() {
                        return Err(malformed("an instant node's answer without its name"));
                    }
                    done(
                        name.clone(),
                        OwnerDone::Created {
                            node: name,
                            existed: false,
                        },
                    )
                }
            }));
            (create.build(), read)
        }
        OwnerOp::DefaultConfig | OwnerOp::GetConfig => {
            let payload = if op == OwnerOp::DefaultConfig {
                owner::default_query()
            } else {
                owner::Configure::get(&node).build()
            };
            let read = Reader::ok(move |p| match owner::Configure::parse_result(p) {
                Some(form) => done(node, OwnerDone::Config(form)),
                None => Err(malformed("a configuration answer without a form")),
            });
            (payload, read)
        }
        OwnerOp::SetConfig(form) => (
            owner::Configure::set(&node, form.submission()).build(),
            Reader::ok(move |_| done(node, OwnerDone::Configured)),
        ),
        OwnerOp::CancelConfig => (
            owner::Configure::set(&node, Form::cancel()).build(),
            Reader::ok(move |_| done(node, OwnerDone::Cancelled)),
        ),
        OwnerOp::Purge => (
            owner::Purge::new(&node).build(),
            Reader::ok(move |_| done(node, OwnerDone::Purged)),
        ),
        OwnerOp::Delete { redirect } => (
            owner::Delete::new(&node, redirect.as_deref()).build(),
            Reader::ok(move |_| done(node, OwnerDone::Deleted)),
        ),
        OwnerOp::Affiliations => (
            owner::Affiliations::new(&node, Vec::new()).build(),
            Reader::ok(move |p| {
                let list = owner::Affiliations::parse_result(p).list;
                done(node, OwnerDone::Affiliations(list))
            }),
        ),
        OwnerOp::SetAffiliations(list) => (
            owner::Affiliations::new(&node, list).build(),
            Reader::ok(move |_| done(node, OwnerDone::AffiliationsSet)),
        ),
        OwnerOp::Subscriptions => (
            owner::NodeSubs::new(&node, Vec::new()).build(),
            Reader::ok(move |p| {
                let list = owner::NodeSubs::parse_result(p).list;
                done(node, OwnerDone::Subscriptions(list))
            }),
        ),
        OwnerOp::SetSubscriptions(list) => (
            owner::NodeSubs::new(&node, list).build(),
            Reader::ok(move |_| done(node, OwnerDone::SubscriptionsSet)),
        ),
    }
}

fn add_items_page(
    node: &str,
    payload: Option<&Element>,
    items: &mut Vec<FeedItem>,
) -> (Option<String>, pubsub::ItemsResult<FeedItem>) {
    let mut result = pubsub::ItemsResult::parse_with(node, payload, |i| proto::parse_item(node, i));
    let next = result.next_after(items.len() + result.items.len());
    items.append(&mut result.items);
    (next, result)
}

/// disco#items on `node`: a page of its item ids, after the id `after`.
fn id_page(node: &str, after: Option<String>) -> Element {
    let page = SetQuery {
        max: Some(ID_PAGE),
        after,
        before: None,
        index: None,
    };
    disco::items_query(Some(node), Some(page))
}

fn reply(out: &mut Vec<Output>, req: RequestId, result: Result<Answer, RequestError>) {
    out.push(Output::Event(NetEvent::Reply { req, result }));
}

fn malformed(what: &str) -> RequestError {
    RequestError::Invalid(format!("the service sent {what} that cannot be read"))
}

/// A node name a user typed: not empty, no control characters (XML cannot carry most of
/// them), at most 1,023 bytes (what servers accept in practice).
pub fn check_node_name(node: &str) -> Result<(), RequestError> {
    let why = if node.trim().is_empty() {
        "a node name cannot be empty"
    } else if node.chars().any(char::is_control) {
        "a node name cannot contain control characters"
    } else if node.len() > 1023 {
        "a node name is at most 1,023 bytes"
    } else {
        return Ok(());
    };
    Err(RequestError::Invalid(why.into()))
}

fn reset_error() -> RequestError {
    RequestError::Connection("the connection was reset before the service answered".into())
}

/// Order by (time, seq), stably. An item without a readable time takes the time of the item
/// before it, so it stays where the service put it.
fn sort_by_time_and_seq(items: &mut Vec<FeedItem>) {
    // An item without a time of its own sorts with the one before it in the service's order,
    // after it (the sort is stable): it takes that one's time and number.
    let mut last = (None, 0);
    let mut keyed: Vec<_> = items
        .drain(..)
        .map(|item| {
            let key = match item.timestamp() {
                Some(t) => (Some(t), item.seq().map_or(0, |s| s.n)),
                None => last,
            };
            last = key;
            (key.0, key.1, item)
        })
        .collect();
    keyed.sort_by_key(|a| (a.0, a.1));
    items.extend(keyed.into_iter().map(|(_, _, item)| item));
}

fn service_unavailable(to: Option<Jid>, id: String) -> Iq {
    Iq::Error {
        from: None,
        to,
        id,
        error: StanzaError::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            "en",
            "",
        ),
        payload: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_without_a_time_stays_after_the_one_before_it() {
        let item = |id: &str, time: Option<&str>, n: u64| -> FeedItem {
            crate::feed::ItemParts {
                id: Some(id.into()),
                time: time.map(str::to_owned),
                seq: time.map(|_| Seq::new("s", n)),
                ..Default::default()
            }
            .into()
        };
        // The service's order; one timed item late, so sorting has something to do.
        let mut items = vec![
            item("x0", None, 0),
            item("t1", Some("2026-11-29T10:00:01Z"), 1),
            item("x1", None, 0),
            item("t3", Some("2026-11-29T10:00:03Z"), 3),
            item("x3", None, 0),
            item("t2", Some("2026-11-29T10:00:02Z"), 2),
            item("x2", None, 0),
        ];
        sort_by_time_and_seq(&mut items);
        let ids: Vec<&str> = items.iter().filter_map(FeedItem::id).collect();
        assert_eq!(ids, ["x0", "t1", "x1", "t2", "x2", "t3", "x3"]);
    }
}
