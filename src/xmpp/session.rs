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

use super::events::{Command, ConnState, NetEvent, SnapshotReason};
use super::protocol::{self, EventPart, OutgoingItem, SubState};
use crate::feed::gap::{GapTracker, Verdict, lost_in};
use crate::feed::{FeedItem, Seq};
use crate::sanitize;

/// Typed text waiting for a connection is kept up to this many items; more are refused.
pub const OUTBOX_LIMIT: usize = 1000;
/// The "sender" of a gap found in a relay's node-wide numbering.
pub const SERVICE_NUMBERING: &str = "all publishers";
/// Items asked for per RSM page.
pub const RSM_PAGE: u32 = 200;
/// Pages one resync may take (a bound against a service that never stops paging).
pub const MAX_PAGES: u32 = 500;

/// What the session needs to know, fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The pubsub service: a component (`pubsub.example.org`) or a relay's full JID.
    pub service: Jid,
    /// Nodes to subscribe to (and accept events for).
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
    /// Periodic check of IQ timeouts.
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
    },
    CreateNode {
        node: String,
    },
}

#[derive(Debug, Clone)]
struct Pending {
    request: Request,
    to: Jid,
    sent: Instant,
}

#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    nodes: HashSet<String>,
    conn: ConnState,
    bound: Option<Jid>,
    next_id: u64,
    pending: HashMap<String, Pending>,
    seq: HashMap<String, u64>,
    outbox: VecDeque<OutgoingItem>,
    /// Live items that arrived while a retrieve of their node was in flight.
    resyncing: HashMap<String, Vec<FeedItem>>,
    /// Sequence state per node.
    trackers: HashMap<String, GapTracker>,
    /// When the last retrieve of each node started (for the rate limit).
    last_resync: HashMap<String, Instant>,
    /// Nodes with an automatic resync waiting for the rate limit.
    resync_wanted: HashSet<String>,
    auto_publish: bool,
    dropped: u64,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            nodes: cfg.nodes.iter().cloned().collect(),
            auto_publish: cfg.auto_publish,
            cfg,
            conn: ConnState::Connecting { attempt: 1 },
            bound: None,
            next_id: 0,
            pending: HashMap::new(),
            seq: HashMap::new(),
            outbox: VecDeque::new(),
            resyncing: HashMap::new(),
            trackers: HashMap::new(),
            last_resync: HashMap::new(),
            resync_wanted: HashSet::new(),
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
                self.expire(now, &mut out);
                self.start_due_resyncs(now, &mut out);
            }
            Input::AutoPublishTick => {
                if self.auto_publish
                    && self.is_online()
                    && let Some(node) = self.cfg.nodes.first().cloned()
                {
                    let n = self.seq.get(&node).copied().unwrap_or(0) + 1;
                    self.publish(node, &format!("auto-publish #{n}"), true, now, &mut out);
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
            for node in self.cfg.nodes.clone() {
                out.push(Output::Event(NetEvent::Subscription {
                    node: node.clone(),
                    state: SubState::Subscribing,
                }));
                let payload = protocol::subscribe(&node, &bound.to_string());
                self.send_iq(Request::Subscribe { node: node.clone() }, payload, now, out);
                self.start_retrieve(node, SnapshotReason::Initial, now, out);
            }
        }
        for p in old {
            match p.request {
                Request::Publish { item, auto } => self.send_publish(item, auto, now, out),
                other @ (Request::CreateNode { .. }
                | Request::Retract { .. }
                | Request::Purge { .. }) => {
                    out.push(Output::Event(NetEvent::RequestFailed {
                        what: describe(&other),
                        reason: "the connection was reset before the service answered".into(),
                    }));
                }
                Request::Subscribe { .. } | Request::Retrieve { .. } => {}
            }
        }
        self.flush_outbox(now, out);
    }

    fn flush_outbox(&mut self, now: Now, out: &mut Vec<Output>) {
        while let Some(item) = self.outbox.pop_front() {
            self.send_publish(item, false, now, out);
        }
    }

    fn next_iq_id(&mut self) -> String {
        self.next_id += 1;
        format!("pt{}", self.next_id)
    }

    fn send_iq(&mut self, request: Request, payload: Element, now: Now, out: &mut Vec<Output>) {
        let id = self.next_iq_id();
        let to = self.cfg.service.clone();
        let is_get = matches!(request, Request::Retrieve { .. });
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
        let payload = protocol::retrieve_page(&node, RSM_PAGE, None);
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
        let n = self.seq.entry(node.clone()).or_insert(0);
        *n += 1;
        let item = OutgoingItem {
            node,
            sender: self
                .bound
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            time: now.wall,
            seq: Seq {
                session: self.cfg.publisher_session.clone(),
                n: *n,
            },
            text,
        };
        if self.is_online() {
            self.send_publish(item, auto, now, out);
        } else if self.outbox.len() < OUTBOX_LIMIT {
            out.push(Output::Event(NetEvent::PublishQueued {
                node: item.node.clone(),
                id: item.id(),
            }));
            self.outbox.push_back(item);
        } else {
            out.push(Output::Event(NetEvent::PublishFailed {
                node: item.node.clone(),
                id: item.id(),
                reason: format!("offline, and {OUTBOX_LIMIT} items are already waiting"),
            }));
        }
    }

    fn send_publish(
        &mut self,
        mut item: OutgoingItem,
        auto: bool,
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
        let payload = protocol::publish(&item);
        self.send_iq(Request::Publish { item, auto }, payload, now, out);
    }

    fn on_command(&mut self, cmd: Command, now: Now, out: &mut Vec<Output>) {
        match cmd {
            Command::Publish { node, text } => self.publish(node, &text, false, now, out),
            Command::Resync { node } => {
                if self.is_online() {
                    self.start_retrieve(node, SnapshotReason::Manual, now, out);
                } else {
                    out.push(Output::Event(NetEvent::ResyncFailed {
                        node,
                        reason: "not connected".into(),
                        unsupported: false,
                    }));
                }
            }
            Command::SetAutoPublish(on) => {
                self.auto_publish = on;
                out.push(Output::Event(NetEvent::AutoPublish {
                    enabled: on,
                    interval: self.cfg.interval,
                    node: self.cfg.nodes.first().cloned(),
                }));
            }
            Command::CreateNode { node, max_items } => {
                let payload = protocol::create_node(&node, max_items);
                self.send_iq(Request::CreateNode { node }, payload, now, out);
            }
            Command::Retract { node, id } => {
                let payload = protocol::retract(&node, &id);
                self.send_iq(Request::Retract { node, id }, payload, now, out);
            }
            Command::Purge { node } => {
                let payload = protocol::purge(&node);
                self.send_iq(Request::Purge { node }, payload, now, out);
            }
            Command::Shutdown => out.push(Output::Stop),
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

    fn check_sequence(&mut self, item: &FeedItem, now: Now, out: &mut Vec<Output>) {
        let tracker = self.trackers.entry(item.node.clone()).or_default();
        // A relay's node-wide numbering covers every publisher: when it is there, it is the
        // exact check, and the per-publisher one would only report the same loss twice.
        let (verdict, sender) = match item.service_seq {
            Some(n) => (tracker.observe_service(n), SERVICE_NUMBERING.to_owned()),
            None => (
                tracker.observe(item.sender.as_deref(), item.seq.as_ref()),
                item.sender.clone().unwrap_or_default(),
            ),
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

    fn on_message(&mut self, msg: &Message, now: Now, out: &mut Vec<Output>) {
        let Some(event) = protocol::event_payload(&msg.payloads) else {
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
        for mut part in protocol::parse_event(event) {
            // A `serve` relay numbers each notification (one item per message).
            if let EventPart::Items { node, items } = &mut part
                && let [item] = items.as_mut_slice()
            {
                item.service_seq = protocol::parse_service_seq(msg.payloads.iter(), node, "n");
            }
            if !self.nodes.contains(part.node()) {
                let node = part.node().to_owned();
                self.drop_stanza(
                    format!("event for node {node}, which we did not subscribe to"),
                    out,
                );
                continue;
            }
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
                let reply = if payload.is("ping", protocol::NS_PING) {
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
                    self.on_error(p.request, &error, out);
                }
            }
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
            Request::Subscribe { node } => out.push(Output::Event(NetEvent::Subscription {
                node,
                state: protocol::parse_subscription_result(payload),
            })),
            Request::Retrieve {
                node,
                reason,
                mut items,
                pages,
                head,
            } => {
                let head = payload
                    .and_then(|p| protocol::parse_service_seq(p.children(), &node, "head"))
                    .or(head);
                let page_items = protocol::parse_items_result(&node, payload);
                let got = page_items.len();
                items.extend(page_items);
                // Page on while the service says there is more (RSM). Services without RSM
                // answer everything at once and send no <set/>.
                if let Some(protocol::Page {
                    last: Some(last),
                    count,
                }) = protocol::parse_page(payload)
                    && got > 0
                    && pages < MAX_PAGES
                    && count.is_none_or(|c| (items.len() as u64) < c)
                {
                    out.push(Output::Event(NetEvent::ResyncProgress {
                        node: node.clone(),
                        received: items.len(),
                        total: count,
                    }));
                    let payload = protocol::retrieve_page(&node, RSM_PAGE, Some(&last));
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
                self.finish_retrieve(node, items, head, reason, now, out);
            }
            Request::Retract { node, id } => out.push(Output::Event(NetEvent::Done {
                what: format!("retract {id} from {node}"),
            })),
            Request::Purge { node } => out.push(Output::Event(NetEvent::Done {
                what: format!("purge {node}"),
            })),
            Request::Publish { item, auto } => out.push(Output::Event(NetEvent::Published {
                node: item.node.clone(),
                id: item.id(),
                auto,
            })),
            Request::CreateNode { node } => out.push(Output::Event(NetEvent::NodeCreated { node })),
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
        let lost = lost_in(&items);
        self.trackers
            .entry(node.clone())
            .or_default()
            .reset_from(&items, head);
        out.push(Output::Event(NetEvent::Snapshot {
            node,
            items,
            reason,
            lost,
            at: now.wall,
        }));
    }

    fn on_error(&mut self, request: Request, error: &StanzaError, out: &mut Vec<Output>) {
        match request {
            // Creating a node that exists already is what we wanted.
            Request::CreateNode { node }
                if error.defined_condition == DefinedCondition::Conflict =>
            {
                out.push(Output::Event(NetEvent::NodeCreated { node }));
            }
            request => {
                let reason = protocol::describe_error(error);
                self.fail_request(request, reason, protocol::is_unsupported(error), out);
            }
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
                let reason = format!("no answer within {} s", timeout.as_secs());
                self.fail_request(p.request, reason, false, out);
            }
        }
    }

    fn fail_all_pending(&mut self, reason: &str, out: &mut Vec<Output>) {
        let all: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        for p in all {
            self.fail_request(p.request, reason.to_owned(), false, out);
        }
        for item in std::mem::take(&mut self.outbox) {
            out.push(Output::Event(NetEvent::PublishFailed {
                node: item.node.clone(),
                id: item.id(),
                reason: reason.to_owned(),
            }));
        }
    }

    /// Report a request that failed. `unsupported`: the service cannot do this at all.
    fn fail_request(
        &mut self,
        request: Request,
        reason: String,
        unsupported: bool,
        out: &mut Vec<Output>,
    ) {
        let event = match request {
            Request::Subscribe { node } => NetEvent::Subscription {
                node,
                state: SubState::Error(reason),
            },
            Request::Retrieve { node, .. } => {
                self.resyncing.remove(&node);
                NetEvent::ResyncFailed {
                    node,
                    reason,
                    unsupported,
                }
            }
            Request::Publish { item, .. } => NetEvent::PublishFailed {
                node: item.node.clone(),
                id: item.id(),
                reason,
            },
            other @ (Request::CreateNode { .. }
            | Request::Retract { .. }
            | Request::Purge { .. }) => NetEvent::RequestFailed {
                what: describe(&other),
                reason,
            },
        };
        out.push(Output::Event(event));
    }
}

/// A short name for a request, for error messages.
fn describe(request: &Request) -> String {
    match request {
        Request::Subscribe { node } => format!("subscribe to {node}"),
        Request::Retrieve { node, .. } => format!("retrieve items of {node}"),
        Request::Publish { item, .. } => format!("publish {} to {}", item.id(), item.node),
        Request::CreateNode { node } => format!("create node {node}"),
        Request::Retract { node, id } => format!("retract {id} from {node}"),
        Request::Purge { node } => format!("purge {node}"),
    }
}

/// Order by (time, seq), stably. An item without a readable time takes the time of the item
/// before it, so it stays where the service put it.
fn sort_by_time_and_seq(items: &mut Vec<FeedItem>) {
    let mut last = None;
    let mut keyed: Vec<_> = items
        .drain(..)
        .map(|item| {
            let t = item
                .time
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .or(last);
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
