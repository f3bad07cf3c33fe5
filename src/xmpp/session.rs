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
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::error::{Condition, Op, RequestError};
use super::events::{Command, ConnState, NetEvent, SnapshotReason};
use super::proto::event::{self, EventPart};
use super::proto::{self, OutgoingItem, SubState, owner, pubsub, seq};
use crate::feed::gap::{GapTracker, Ranges, Verdict, lost_in};
use crate::feed::{FeedItem, MAX_VOID_RANGES, Seq};
use crate::sanitize;

/// Typed text waiting for a connection is kept up to this many items; more are refused.
pub const OUTBOX_LIMIT: usize = 1000;
/// The "sender" of a gap found in a relay's node-wide numbering.
pub const SERVICE_NUMBERING: &str = "all publishers";
/// Items asked for per RSM page.
pub const RSM_PAGE: usize = 200;
/// Pages one resync may take (a bound against a service that never stops paging).
pub const MAX_PAGES: u32 = 500;
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
    },
    /// The stream was resumed (XEP-0198): nothing was lost.
    Resumed,
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

#[derive(Debug, Clone)]
enum Request {
    Subscribe {
        node: String,
    },
    Retrieve {
        node: String,
        reason: SnapshotReason,
        /// Items of the pages received so far.
        items: Vec<FeedItem>,
        pages: u32,
        /// The service's node-wide head number, if it says (a `serve` relay does).
        head: Option<u64>,
    },
    Retract {
        node: String,
        id: String,
    },
    Purge {
        node: String,
    },
    Publish {
        item: OutgoingItem,
        auto: bool,
        /// Tries so far, this one included.
        attempts: u32,
    },
    CreateNode {
        node: String,
    },
    Unsubscribe {
        node: String,
        jid: String,
        /// A left-behind subscription being cleaned up (not one of this run's own).
        stale: bool,
    },
    /// The account's subscriptions at the service (to clean up left-behind ones).
    Subscriptions,
    /// A ping to another resource of the account: does it still exist?
    Probe {
        jid: String,
        subs: NodeSubs,
    },
}

/// Subscriptions of one JID: (node, subscription id).
type NodeSubs = Vec<(String, Option<String>)>;

#[derive(Debug, Clone)]
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
        }
    }

    fn is_down(&self) -> bool {
        matches!(self.state, SubState::Retrying { .. } | SubState::Failed(_))
    }
}

/// A publish waiting for its next try.
#[derive(Debug, Clone)]
struct Delayed {
    due: Instant,
    item: OutgoingItem,
    auto: bool,
    attempts: u32,
}

#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    nodes: Vec<Followed>,
    conn: ConnState,
    bound: Option<Jid>,
    next_id: u64,
    pending: HashMap<String, Pending>,
    /// The last sequence number given out, per node.
    seq: HashMap<String, u64>,
    /// Numbers given out that the service never accepted, per node (announced in later items).
    void: HashMap<String, Ranges>,
    outbox: VecDeque<(OutgoingItem, bool)>,
    delayed: Vec<Delayed>,
    /// Live items that arrived while a retrieve of their node was in flight.
    resyncing: HashMap<String, Vec<FeedItem>>,
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
    pub fn new(cfg: SessionConfig) -> Self {
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
            conn: ConnState::Connecting { attempt: 1 },
            bound: None,
            next_id: 0,
            pending: HashMap::new(),
            seq: HashMap::new(),
            void: HashMap::new(),
            outbox: VecDeque::new(),
            delayed: Vec::new(),
            resyncing: HashMap::new(),
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
            Input::Online { bound } => self.on_online(&bound, now, &mut out),
            Input::Resumed => {
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
                    },
                    &mut out,
                );
                self.flush_outbox(now, &mut out);
            }
            Input::Suspended => self.set_conn(ConnState::Suspended, &mut out),
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
                    out.push(Output::Stop);
                    return out;
                }
                self.expire(now, &mut out);
                self.start_due_resyncs(now, &mut out);
                self.start_due_retries(now, &mut out);
            }
            Input::AutoPublishTick => {
                if self.auto_publish
                    && self.is_online()
                    && self.closing.is_none()
                    && let Some(node) = self.auto_node.clone()
                {
                    self.auto_count += 1;
                    let text = format!("auto-publish #{}", self.auto_count);
                    self.publish(node, &text, true, now, &mut out);
                }
            }
            Input::Closed => {
                if !matches!(self.conn, ConnState::Failed { .. }) {
                    self.fail_all_pending("the connection was closed", &mut out);
                    self.set_conn(ConnState::Closed, &mut out);
                }
            }
        }
        out
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

    fn set_state(&mut self, node: &str, state: SubState, out: &mut Vec<Output>) {
        if let Some(n) = self.node_mut(node) {
            n.state = state.clone();
            out.push(Output::Event(NetEvent::Subscription {
                node: node.to_owned(),
                state,
            }));
        }
    }

    fn on_online(&mut self, bound: &Jid, now: Now, out: &mut Vec<Output>) {
        self.bound = Some(bound.clone());
        self.set_conn(
            ConnState::Online {
                jid: bound.to_string(),
                resumed: false,
            },
            out,
        );
        out.push(Output::Send(Box::new(Stanza::Presence(Presence::new(
            PresenceType::None,
        )))));
        // A fresh session: requests in flight on the old stream may never be answered. Publishes
        // are re-sent (their ids are derived, so a duplicate overwrites); the rest is redone.
        let old: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        self.resyncing.clear();
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
            self.send_iq(Request::Subscriptions, pubsub::SubscriptionsQuery::default().build(), now, out);
        }
        for p in old {
            match p.request {
                Request::Publish {
                    item,
                    auto,
                    attempts,
                } => self.send_publish(item, auto, attempts, now, out),
                Request::CreateNode { node } => out.push(Output::Event(NetEvent::RequestFailed {
                    op: Op::Create,
                    node,
                    id: None,
                    error: reset_error(),
                })),
                Request::Retract { node, id } => {
                    out.push(Output::Event(NetEvent::RequestFailed {
                        op: Op::Retract,
                        node,
                        id: Some(id),
                        error: reset_error(),
                    }));
                }
                Request::Purge { node } => out.push(Output::Event(NetEvent::RequestFailed {
                    op: Op::Purge,
                    node,
                    id: None,
                    error: reset_error(),
                })),
                Request::Subscribe { .. }
                | Request::Retrieve { .. }
                | Request::Unsubscribe { .. }
                | Request::Subscriptions
                | Request::Probe { .. } => {}
            }
        }
        self.flush_outbox(now, out);
    }

    /// Subscribe to a node (unless this session did already) and retrieve its items (if the
    /// initial retrieve is still due, or `reason` asks for one).
    fn join(&mut self, node: &str, reason: SnapshotReason, now: Now, out: &mut Vec<Output>) {
        let Some(n) = self.node(node) else { return };
        let in_flight = self
            .pending
            .values()
            .any(|p| matches!(&p.request, Request::Subscribe { node: n } if n == node));
        let (subscribe, retrieve) = (!n.subscribed && !in_flight, n.need_retrieve);
        if subscribe {
            let jid = self
                .bound
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let payload = pubsub::Subscribe::new(node, &jid).build();
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
            self.send_publish(d.item, d.auto, d.attempts, now, out);
        }
    }

    fn flush_outbox(&mut self, now: Now, out: &mut Vec<Output>) {
        while let Some((item, auto)) = self.outbox.pop_front() {
            self.send_publish(item, auto, 0, now, out);
        }
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
            _ => self.cfg.service.clone(),
        };
        let id = self.next_iq_id();
        let is_get = matches!(
            request,
            Request::Retrieve { .. } | Request::Subscriptions | Request::Probe { .. }
        );
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
        self.resyncing.insert(node.clone(), Vec::new());
        self.last_resync.insert(node.clone(), now.mono);
        out.push(Output::Event(NetEvent::ResyncStarted {
            node: node.clone(),
        }));
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

    fn publish(&mut self, node: String, text: &str, auto: bool, now: Now, out: &mut Vec<Output>) {
        let text = sanitize::outgoing(text);
        if let Err(why) = proto::check_text_size(&text) {
            // Refused before it takes a number: nothing was published, nothing is void.
            out.push(Output::Event(NetEvent::PublishFailed {
                node,
                id: String::new(),
                text,
                auto,
                error: RequestError::Invalid(why),
            }));
            return;
        }
        let n = self.seq.entry(node.clone()).or_insert(0);
        *n += 1;
        let mut seq = Seq::new(self.cfg.publisher_session.clone(), *n);
        if let Some(v) = self.void.get(&node) {
            let ranges = v.as_slice();
            seq.void = ranges[ranges.len().saturating_sub(MAX_VOID_RANGES)..].to_vec();
        }
        let item = OutgoingItem {
            node,
            sender: self
                .bound
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            time: now.wall,
            seq,
            text,
        };
        if self.is_online() {
            self.send_publish(item, auto, 0, now, out);
        } else if self.outbox.len() < OUTBOX_LIMIT {
            out.push(Output::Event(NetEvent::PublishSent {
                node: item.node.clone(),
                id: item.id(),
                queued: true,
                auto,
            }));
            self.outbox.push_back((item, auto));
        } else {
            let error = RequestError::Invalid(format!(
                "offline, and {OUTBOX_LIMIT} items are already waiting"
            ));
            self.fail_publish(item, auto, error, out);
        }
    }

    /// Send (or send again) a publish; `attempts` is how many tries it had before.
    fn send_publish(
        &mut self,
        mut item: OutgoingItem,
        auto: bool,
        attempts: u32,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        if item.sender.is_empty() {
            item.sender = self
                .bound
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
        }
        if attempts == 0 {
            out.push(Output::Event(NetEvent::PublishSent {
                node: item.node.clone(),
                id: item.id(),
                queued: false,
                auto,
            }));
        }
        let payload = pubsub::Publish::new(&item.node, proto::item::item_element(&item)).build();
        self.send_iq(
            Request::Publish {
                item,
                auto,
                attempts: attempts + 1,
            },
            payload,
            now,
            out,
        );
    }

    /// A publish failed for good: its number was never published (later items say so).
    fn fail_publish(
        &mut self,
        item: OutgoingItem,
        auto: bool,
        error: RequestError,
        out: &mut Vec<Output>,
    ) {
        self.void
            .entry(item.node.clone())
            .or_default()
            .insert(item.seq.n, item.seq.n);
        out.push(Output::Event(NetEvent::PublishFailed {
            node: item.node.clone(),
            id: item.id(),
            text: item.text,
            auto,
            error,
        }));
    }

    fn on_command(&mut self, cmd: Command, now: Now, out: &mut Vec<Output>) {
        if self.closing.is_some() {
            return;
        }
        match cmd {
            Command::Publish { node, text } => self.publish(node, &text, false, now, out),
            Command::Resync { node } => self.resync_command(&node, now, out),
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
            Command::CreateNode { node, max_items } => {
                let payload = pubsub::Create::open(&node, max_items).build();
                self.send_iq(Request::CreateNode { node }, payload, now, out);
            }
            Command::Retract { node, id } => {
                let payload = pubsub::Retract::new(&node, &id).build();
                self.send_iq(Request::Retract { node, id }, payload, now, out);
            }
            Command::Purge { node } => {
                let payload = owner::Purge::new(&node).build();
                self.send_iq(Request::Purge { node }, payload, now, out);
            }
            Command::Shutdown => self.shutdown(now, out),
        }
    }

    fn resync_command(&mut self, node: &str, now: Now, out: &mut Vec<Output>) {
        if !self.is_online() {
            out.push(Output::Event(NetEvent::ResyncFailed {
                node: node.to_owned(),
                error: RequestError::Offline,
            }));
            return;
        }
        let Some(n) = self.node_mut(node) else {
            out.push(Output::Event(NetEvent::ResyncFailed {
                node: node.to_owned(),
                error: RequestError::Invalid(format!("{node} is not followed")),
            }));
            return;
        };
        if n.is_down() {
            // Subscribe again: the user asked, so the tries start over.
            n.attempts = 0;
            n.next_attempt = None;
            n.subscribed = false;
            n.need_retrieve = true;
            self.set_state(node, SubState::Subscribing, out);
        }
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
                        stale: false,
                    };
                    self.send_iq(request, payload, now, out);
                }
                self.closing = Some(now.mono + SHUTDOWN_WAIT);
            }
            _ => out.push(Output::Stop),
        }
    }

    fn drop_stanza(&mut self, reason: String, out: &mut Vec<Output>) {
        self.dropped += 1;
        tracing::debug!(%reason, total = self.dropped, "dropped a stanza");
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

    fn check_sequence(&mut self, item: &FeedItem, now: Now, out: &mut Vec<Output>) {
        // A relay's node-wide numbering covers every publisher: when it is there, it is the
        // exact check, and the per-publisher one would only report the same loss twice.
        let (verdict, by) = self.tracker(&item.node).observe_item(item);
        let sender = match by {
            Some(_) => SERVICE_NUMBERING.to_owned(),
            None => item.sender.clone().unwrap_or_default(),
        };
        if let Verdict::Gap(range) = verdict {
            out.push(Output::Event(NetEvent::Gap {
                node: item.node.clone(),
                sender,
                from: *range.start(),
                to: *range.end(),
            }));
            self.want_resync(&item.node, now, out);
        }
    }

    /// An event arrived for a node whose subscription looked down: it is live after all (a
    /// relay that came back with our subscription, for one).
    fn node_is_live(&mut self, node: &str, now: Now, out: &mut Vec<Output>) {
        let Some(n) = self.node_mut(node) else { return };
        if !n.is_down() {
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

    fn on_message(&mut self, msg: &Message, now: Now, out: &mut Vec<Output>) {
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
        for mut part in event::parse(event) {
            // A `serve` relay numbers each notification (one item per message).
            if let EventPart::Items { node, items } = &mut part
                && let [item] = items.as_mut_slice()
            {
                item.service_seq = seq::read(msg.payloads.iter(), node, "n");
            }
            if self.node(part.node()).is_none() {
                let node = part.node().to_owned();
                self.drop_stanza(
                    format!("event for node {node}, which we did not subscribe to"),
                    out,
                );
                continue;
            }
            let node = part.node().to_owned();
            self.node_is_live(&node, now, out);
            match part {
                EventPart::Items { items, .. } => {
                    for item in items {
                        if let Some(buffer) = self.resyncing.get_mut(&item.node) {
                            // The retrieve in flight resets the sequence state; checking now
                            // would report gaps it is about to fill (ejabberd's re-sent last
                            // item at login arrives here).
                            buffer.push(item.clone());
                        } else {
                            self.check_sequence(&item, now, out);
                        }
                        out.push(Output::Event(NetEvent::Item(item)));
                    }
                }
                EventPart::Retract { node, id } => {
                    if let Some(buffer) = self.resyncing.get_mut(&node) {
                        buffer.retain(|i| i.id.as_deref() != Some(id.as_str()));
                    }
                    out.push(Output::Event(NetEvent::Retracted { node, id }));
                }
                EventPart::Purge { node } => {
                    self.trackers.remove(&node);
                    out.push(Output::Event(NetEvent::Purged { node }));
                }
                EventPart::Delete { node } => {
                    self.trackers.remove(&node);
                    out.push(Output::Event(NetEvent::Deleted { node }));
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
            && !self
                .pending
                .values()
                .any(|p| matches!(p.request, Request::Unsubscribe { stale: false, .. }))
        {
            self.closing = None;
            out.push(Output::Stop);
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
                self.set_state(&node, state, out);
            }
            Request::Retrieve {
                node,
                reason,
                mut items,
                pages,
                head,
            } => {
                let result = pubsub::ItemsResult::parse(&node, payload);
                let head = result.head.or(head);
                items.extend(result.items.iter().map(|i| proto::parse_item(&node, i)));
                // Page on while the service says there is more (RSM). Services without RSM
                // answer everything at once and send no <set/>.
                if let Some(last) = result.next_after(items.len())
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
                self.finish_retrieve(node, items, head, reason, now, out);
            }
            Request::Retract { node, id } => out.push(Output::Event(NetEvent::Done {
                op: Op::Retract,
                node,
                id: Some(id),
            })),
            Request::Purge { node } => out.push(Output::Event(NetEvent::Done {
                op: Op::Purge,
                node,
                id: None,
            })),
            Request::Publish { item, auto, .. } => out.push(Output::Event(NetEvent::Published {
                node: item.node.clone(),
                id: item.id(),
                auto,
            })),
            Request::CreateNode { node } => out.push(Output::Event(NetEvent::NodeCreated { node })),
            Request::Unsubscribe { node, jid, stale } => {
                if stale {
                    out.push(Output::Event(NetEvent::StaleSubscriptionRemoved {
                        node,
                        jid,
                    }));
                }
            }
            Request::Subscriptions => self.clean_up_subscriptions(payload, now, out),
            Request::Probe { jid, .. } => {
                tracing::debug!(%jid, "another resource of this account answered: left alone");
            }
        }
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
            if jid == bound {
                if self.node(&sub.node).is_none() {
                    let payload = pubsub::Unsubscribe::new(&sub.node, &sub.jid, sub.subid.as_deref()).build();
                    let request = Request::Unsubscribe {
                        node: sub.node,
                        jid: sub.jid,
                        stale: true,
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
    /// work out what is lost, restart the sequence state from it, and report the snapshot.
    fn finish_retrieve(
        &mut self,
        node: String,
        mut items: Vec<FeedItem>,
        head: Option<u64>,
        reason: SnapshotReason,
        now: Now,
        out: &mut Vec<Output>,
    ) {
        // Items that arrived live while the request was in flight and that the service's
        // answer does not contain were published after it was answered.
        if let Some(live) = self.resyncing.remove(&node) {
            items.extend(live);
        }
        let mut seen = HashSet::new();
        items.retain(|i| i.id.as_ref().is_none_or(|id| seen.insert(id.clone())));
        sort_by_time_and_seq(&mut items);
        let tracker = self.tracker(&node);
        let lost = lost_in(&items, tracker);
        tracker.reset_from(&items, head);
        out.push(Output::Event(NetEvent::Snapshot {
            node,
            items,
            reason,
            lost,
            at: now.wall,
        }));
    }

    fn on_error(&mut self, request: Request, error: &StanzaError, now: Now, out: &mut Vec<Output>) {
        let error = RequestError::from_stanza_error(error);
        match request {
            // Creating a node that exists already is what we wanted.
            Request::CreateNode { node } if error.condition() == Some(Condition::Conflict) => {
                out.push(Output::Event(NetEvent::NodeCreated { node }));
            }
            Request::Probe { jid, subs } => {
                // The server answers for a resource that is not online.
                if matches!(
                    error.condition(),
                    Some(Condition::ServiceUnavailable | Condition::RecipientUnavailable)
                ) {
                    for (node, subid) in subs {
                        let payload = pubsub::Unsubscribe::new(&node, &jid, subid.as_deref()).build();
                        let request = Request::Unsubscribe {
                            node,
                            jid: jid.clone(),
                            stale: true,
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

    fn fail_all_pending(&mut self, reason: &str, out: &mut Vec<Output>) {
        let error = RequestError::Connection(reason.to_owned());
        let all: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        for p in all {
            if let Request::Publish { item, auto, .. } = p.request {
                self.fail_publish(item, auto, error.clone(), out);
            } else {
                self.report_failure(p.request, error.clone(), out);
            }
        }
        let waiting: Vec<(OutgoingItem, bool)> = self
            .outbox
            .drain(..)
            .chain(self.delayed.drain(..).map(|d| (d.item, d.auto)))
            .collect();
        for (item, auto) in waiting {
            self.fail_publish(item, auto, error.clone(), out);
        }
        let names: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !matches!(n.state, SubState::Failed(_)))
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
            Request::Subscribe { node } => self.node_failed(&node, error, now, out),
            Request::Retrieve { node, reason, .. } => {
                self.resyncing.remove(&node);
                let initial = reason == SnapshotReason::Initial;
                out.push(Output::Event(NetEvent::ResyncFailed {
                    node: node.clone(),
                    error: error.clone(),
                }));
                if initial && !error.is_unsupported() {
                    self.node_failed(&node, error, now, out);
                } else if let Some(n) = self.node_mut(&node) {
                    n.need_retrieve = false;
                }
            }
            Request::Publish {
                item,
                auto,
                attempts,
            } => {
                if error.is_temporary() && attempts < self.cfg.retry.attempts {
                    let retry_in = self.cfg.retry.delay(attempts);
                    out.push(Output::Event(NetEvent::PublishRetrying {
                        node: item.node.clone(),
                        id: item.id(),
                        error,
                        retry_in,
                    }));
                    self.delayed.push(Delayed {
                        due: now.mono + retry_in,
                        item,
                        auto,
                        attempts,
                    });
                } else {
                    self.fail_publish(item, auto, error, out);
                }
            }
            other => self.report_failure(other, error, out),
        }
    }

    /// Say that a request failed (no retry).
    fn report_failure(&mut self, request: Request, error: RequestError, out: &mut Vec<Output>) {
        let (op, node, id) = match request {
            Request::Subscribe { node } => {
                self.set_state(&node, SubState::Failed(error), out);
                return;
            }
            Request::Retrieve { node, .. } => {
                self.resyncing.remove(&node);
                out.push(Output::Event(NetEvent::ResyncFailed { node, error }));
                return;
            }
            Request::Publish { item, auto, .. } => {
                self.fail_publish(item, auto, error, out);
                return;
            }
            Request::Unsubscribe { node, jid, stale } => {
                tracing::debug!(%node, %jid, stale, %error, "unsubscribe failed");
                return;
            }
            Request::Subscriptions => {
                tracing::debug!(%error, "the service did not list our subscriptions");
                return;
            }
            Request::Probe { jid, .. } => {
                tracing::debug!(%jid, %error, "no answer from another resource: left alone");
                return;
            }
            Request::CreateNode { node } => (Op::Create, node, None),
            Request::Retract { node, id } => (Op::Retract, node, Some(id)),
            Request::Purge { node } => (Op::Purge, node, None),
        };
        out.push(Output::Event(NetEvent::RequestFailed {
            op,
            node,
            id,
            error,
        }));
    }
}

fn reset_error() -> RequestError {
    RequestError::Connection("the connection was reset before the service answered".into())
}

/// Order by (time, seq), stably. An item without a readable time takes the time of the item
/// before it, so it stays where the service put it.
fn sort_by_time_and_seq(items: &mut Vec<FeedItem>) {
    let mut last = None;
    let mut keyed: Vec<_> = items
        .drain(..)
        .map(|item| {
            let t = item.timestamp().or(last);
            last = t;
            let n = item.seq.as_ref().map_or(0, |s| s.n);
            (t, n, item)
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
