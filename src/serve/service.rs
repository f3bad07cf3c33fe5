//! The relay service as a state machine: requests in, replies and notifications out.
//!
//! Like the client's [`crate::xmpp::session::Session`], it reads no clock (time comes in with
//! each input) and owns no socket; the only I/O it does is its [`Store`], whose every change
//! is committed before the reply that confirms it goes out. Tests drive it with an in-memory
//! store.
//!
//! Subscriptions are never dropped for being unreachable. A subscriber whose notification
//! bounced, or whose full JID the server says is gone (a ping probe answered with
//! `service-unavailable`), is *paused*: it gets no notifications until it is heard from again
//! (any request, a probe answered, or available presence).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::message::{Id as MessageId, Message, MessageType};
use xmpp_parsers::minidom::{Element, rxml::NcName};
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::store::{NoSuchItem, Query, Store};
use crate::sanitize;
use crate::xmpp::events::ConnState;
use crate::xmpp::protocol::{
    NS_PING, NS_PUBSUB, NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER, NS_RSM, NS_SEQ, el,
};
use crate::xmpp::session::{Input, Now, Output};

const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Longest node name and item id accepted, in bytes.
const MAX_NAME: usize = 1024;
const MAX_ID: usize = 256;
/// Largest stored item, serialised.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;
/// Largest RSM page served.
const MAX_PAGE: u64 = 1000;

/// The features disco#info announces: exactly what [`Service`] implements.
pub const FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    NS_RSM,
    NS_PUBSUB,
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
    NS_SEQ,
];

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Items kept per node; the oldest go first.
    pub max_items: u64,
    /// Nodes the service will create.
    pub max_nodes: u64,
    /// Bare JIDs that own every node (besides each node's creator and the service itself).
    pub admins: Vec<String>,
    /// How often full-JID subscribers are pinged to find those that are gone.
    pub probe_interval: Duration,
    /// Seed for generated item and subscription ids.
    pub seed: u64,
}

/// What the front end can ask of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeCommand {
    Shutdown,
}

/// What the service reports (for its log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeEvent {
    Connection(ConnState),
    Published {
        node: String,
        id: String,
        seq: u64,
        publisher: String,
        notified: usize,
    },
    Subscribed {
        node: String,
        jid: String,
    },
    Unsubscribed {
        node: String,
        jid: String,
    },
    /// No more notifications to this JID until it is heard from.
    Paused {
        jid: String,
        reason: String,
    },
    Resumed {
        jid: String,
    },
    /// A request was answered with an error.
    Refused {
        from: String,
        reason: String,
    },
    /// The database failed; the request got `internal-server-error`.
    StorageFailed {
        error: String,
    },
}

/// An error reply: condition, optional pubsub#errors child, and a human text.
struct Refusal {
    kind: ErrorType,
    condition: DefinedCondition,
    pubsub: Option<(&'static str, Option<&'static str>)>,
    text: String,
}

type Handled = Result<Option<Element>, Refusal>;

fn refuse(condition: DefinedCondition, text: impl Into<String>) -> Refusal {
    let kind = match condition {
        DefinedCondition::InternalServerError | DefinedCondition::ResourceConstraint => {
            ErrorType::Wait
        }
        DefinedCondition::BadRequest | DefinedCondition::NotAcceptable => ErrorType::Modify,
        DefinedCondition::Forbidden => ErrorType::Auth,
        _ => ErrorType::Cancel,
    };
    Refusal {
        kind,
        condition,
        pubsub: None,
        text: text.into(),
    }
}

impl Refusal {
    fn detail(mut self, name: &'static str) -> Self {
        self.pubsub = Some((name, None));
        self
    }
    fn unsupported(feature: &'static str) -> Self {
        let mut r = refuse(
            DefinedCondition::FeatureNotImplemented,
            format!("this service does not implement {feature}"),
        );
        r.pubsub = Some(("unsupported", Some(feature)));
        r
    }
    fn into_error(self) -> StanzaError {
        let mut e = StanzaError::new(self.kind, self.condition, "en", self.text);
        if let Some((name, feature)) = self.pubsub {
            let mut b = Element::builder(name, NS_PUBSUB_ERRORS);
            if let Some(f) = feature {
                b = b.attr(nc("feature"), f);
            }
            e.other = Some(b.build());
        }
        e
    }
}

fn storage_error(e: &anyhow::Error) -> Refusal {
    refuse(
        DefinedCondition::InternalServerError,
        format!("storage failed: {e:#}"),
    )
}

fn nc(name: &str) -> NcName {
    NcName::try_from(name).expect("names in this module are valid XML names")
}

fn bare(jid: &str) -> String {
    Jid::new(jid).map_or_else(|_| jid.to_owned(), |j| j.to_bare().to_string())
}

/// A copy of `item` in another namespace, with the same attributes and content.
fn renamespaced(item: &Element, ns: &str) -> Element {
    let mut out = Element::builder("item", ns).build();
    *out.attrs_mut() = item.attrs().clone();
    for node in item.nodes() {
        out.append_node(node.clone());
    }
    out
}

fn serialise(e: &Element) -> Option<String> {
    let mut buf = Vec::new();
    e.write_to(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// The node attribute of a request element, checked.
fn node_attr(e: &Element) -> Result<String, Refusal> {
    match e.attr("node") {
        Some(n) if valid_name(n, MAX_NAME) => Ok(n.to_owned()),
        Some(_) => Err(refuse(
            DefinedCondition::NotAcceptable,
            "the node name is empty, too long or has control characters",
        )),
        None => Err(
            refuse(DefinedCondition::BadRequest, "the request names no node")
                .detail("nodeid-required"),
        ),
    }
}

/// The jid attribute of a (un)subscribe request, checked.
fn jid_attr(e: &Element) -> Result<Jid, Refusal> {
    e.attr("jid").and_then(|j| Jid::new(j).ok()).ok_or_else(|| {
        refuse(DefinedCondition::BadRequest, "missing or invalid jid").detail("invalid-jid")
    })
}

#[derive(Debug, Clone)]
struct Sub {
    subid: String,
}

pub struct Service {
    cfg: ServeConfig,
    store: Store,
    bound: Option<Jid>,
    online: bool,
    /// node -> subscriber JID (as subscribed) -> subscription.
    subs: HashMap<String, BTreeMap<String, Sub>>,
    /// JIDs that get no notifications until heard from.
    paused: HashSet<String>,
    /// The message counter when each JID was last resumed: older bounces are stale.
    resumed_at: HashMap<String, u64>,
    counter: u64,
    /// Probe id -> JID, for the current round.
    probes: HashMap<String, String>,
    last_probe: Option<Instant>,
    rng: StdRng,
}

impl Service {
    pub fn new(cfg: ServeConfig, store: Store) -> anyhow::Result<Self> {
        let mut subs: HashMap<String, BTreeMap<String, Sub>> = HashMap::new();
        let mut paused = HashSet::new();
        for s in store.subscriptions()? {
            if s.paused {
                paused.insert(s.jid.clone());
            }
            subs.entry(s.node)
                .or_default()
                .insert(s.jid, Sub { subid: s.subid });
        }
        Ok(Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            store,
            bound: None,
            online: false,
            subs,
            paused,
            resumed_at: HashMap::new(),
            counter: 0,
            probes: HashMap::new(),
            last_probe: None,
        })
    }

    /// Subscriptions (node, JID) and whether each is paused, for tests and the log.
    pub fn subscriptions(&self) -> Vec<(String, String, bool)> {
        let mut v: Vec<_> = self
            .subs
            .iter()
            .flat_map(|(node, m)| {
                m.keys()
                    .map(|jid| (node.clone(), jid.clone(), self.paused.contains(jid)))
            })
            .collect();
        v.sort();
        v
    }

    pub fn handle(&mut self, input: Input<ServeCommand>, now: Now) -> Vec<Output<ServeEvent>> {
        let mut out = Vec::new();
        match input {
            Input::Online { bound } => {
                self.bound = Some(bound.clone());
                self.online = true;
                self.last_probe = None;
                out.push(Output::Event(ServeEvent::Connection(ConnState::Online {
                    jid: bound.to_string(),
                    resumed: false,
                })));
                out.push(Output::Send(Box::new(Stanza::Presence(Presence::new(
                    PresenceType::None,
                )))));
            }
            Input::Resumed => {
                self.online = true;
                let jid = self.bound.as_ref().map(ToString::to_string);
                out.push(Output::Event(ServeEvent::Connection(ConnState::Online {
                    jid: jid.unwrap_or_default(),
                    resumed: true,
                })));
            }
            Input::Suspended => {
                self.online = false;
                out.push(Output::Event(ServeEvent::Connection(ConnState::Suspended)));
            }
            Input::Connection(state) => out.push(Output::Event(ServeEvent::Connection(state))),
            Input::Closed => {
                self.online = false;
                out.push(Output::Event(ServeEvent::Connection(ConnState::Closed)));
            }
            Input::Command(ServeCommand::Shutdown) => out.push(Output::Stop),
            Input::Tick => self.maybe_probe(now, &mut out),
            Input::AutoPublishTick => {}
            Input::Stanza(stanza) => match *stanza {
                Stanza::Iq(iq) => self.on_iq(iq, &mut out),
                Stanza::Message(m) => self.on_message(&m, &mut out),
                Stanza::Presence(p) => self.on_presence(&p, &mut out),
            },
        }
        out
    }

    fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn me(&self) -> Option<Jid> {
        self.bound.clone()
    }

    // ----- reachability -------------------------------------------------------------------

    fn pause(&mut self, jid: &str, reason: String, out: &mut Vec<Output<ServeEvent>>) {
        if !self.is_subscriber(jid) || !self.paused.insert(jid.to_owned()) {
            return;
        }
        if let Err(e) = self.store.set_paused(jid, true) {
            out.push(Output::Event(ServeEvent::StorageFailed {
                error: format!("{e:#}"),
            }));
        }
        out.push(Output::Event(ServeEvent::Paused {
            jid: jid.to_owned(),
            reason,
        }));
    }

    fn resume(&mut self, jid: &str, out: &mut Vec<Output<ServeEvent>>) {
        if !self.paused.remove(jid) {
            return;
        }
        self.resumed_at.insert(jid.to_owned(), self.counter + 1);
        if let Err(e) = self.store.set_paused(jid, false) {
            out.push(Output::Event(ServeEvent::StorageFailed {
                error: format!("{e:#}"),
            }));
        }
        out.push(Output::Event(ServeEvent::Resumed {
            jid: jid.to_owned(),
        }));
    }

    fn is_subscriber(&self, jid: &str) -> bool {
        self.subs.values().any(|m| m.contains_key(jid))
    }

    fn maybe_probe(&mut self, now: Now, out: &mut Vec<Output<ServeEvent>>) {
        if !self.online
            || self
                .last_probe
                .is_some_and(|t| now.mono.saturating_duration_since(t) < self.cfg.probe_interval)
        {
            return;
        }
        self.last_probe = Some(now.mono);
        self.probes.clear();
        let targets: HashSet<String> = self
            .subs
            .values()
            .flat_map(|m| m.keys())
            .filter(|j| Jid::new(j).is_ok_and(|j| j.resource().is_some()))
            .cloned()
            .collect();
        for jid in targets {
            let Ok(to) = Jid::new(&jid) else { continue };
            let id = format!("probe-{}", self.next_counter());
            self.probes.insert(id.clone(), jid);
            let iq = Iq::Get {
                from: None,
                to: Some(to),
                id,
                payload: el("ping", NS_PING, &[]),
            };
            out.push(Output::Send(Box::new(Stanza::Iq(iq))));
        }
    }

    fn on_probe_answer(
        &mut self,
        id: &str,
        error: Option<&StanzaError>,
        out: &mut Vec<Output<ServeEvent>>,
    ) {
        let Some(jid) = self.probes.remove(id) else {
            return;
        };
        match error {
            // What a server answers for a resource that is not there.
            Some(e)
                if matches!(
                    e.defined_condition,
                    DefinedCondition::ServiceUnavailable
                        | DefinedCondition::RecipientUnavailable
                        | DefinedCondition::RemoteServerNotFound
                        | DefinedCondition::Gone { .. }
                ) =>
            {
                let reason = format!("a ping to it was answered with {:?}", e.defined_condition);
                self.pause(&jid, reason, out);
            }
            // It answered (even with "I don't do pings"): it is there.
            _ => self.resume(&jid, out),
        }
    }

    fn on_message(&mut self, m: &Message, out: &mut Vec<Output<ServeEvent>>) {
        if m.type_ != MessageType::Error {
            return;
        }
        let Some(from) = m.from.as_ref().map(ToString::to_string) else {
            return;
        };
        // Our notification ids are "n<counter>"; a bounce of one sent before the JID was last
        // resumed says nothing about now.
        let n =
            m.id.as_ref()
                .and_then(|id| id.0.strip_prefix('n'))
                .and_then(|n| n.parse::<u64>().ok());
        let Some(n) = n else { return };
        if n < self.resumed_at.get(&from).copied().unwrap_or(0) {
            return;
        }
        self.pause(&from, "a notification to it bounced".into(), out);
    }

    fn on_presence(&mut self, p: &Presence, out: &mut Vec<Output<ServeEvent>>) {
        let Some(from) = p.from.as_ref().map(ToString::to_string) else {
            return;
        };
        match p.type_ {
            PresenceType::None => self.resume(&from, out),
            PresenceType::Unavailable | PresenceType::Error => {
                self.pause(&from, "it sent unavailable presence".into(), out);
            }
            _ => {}
        }
    }

    // ----- requests -----------------------------------------------------------------------

    fn on_iq(&mut self, iq: Iq, out: &mut Vec<Output<ServeEvent>>) {
        let (from, id, payload, is_set) = match iq {
            Iq::Result { id, .. } => {
                self.on_probe_answer(&id, None, out);
                return;
            }
            Iq::Error { id, error, .. } => {
                self.on_probe_answer(&id, Some(&error), out);
                return;
            }
            Iq::Get {
                from, id, payload, ..
            } => (from, id, payload, false),
            Iq::Set {
                from, id, payload, ..
            } => (from, id, payload, true),
        };
        // No sender: the server on behalf of our own account.
        let requester = from
            .as_ref()
            .or(self.bound.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default();
        self.resume(&requester, out);
        let answer = self.request(&requester, &payload, is_set, out);
        let reply = match answer {
            Ok(payload) => Iq::Result {
                from: None,
                to: from,
                id,
                payload,
            },
            Err(refusal) => {
                out.push(Output::Event(ServeEvent::Refused {
                    from: sanitize::display(&requester),
                    reason: sanitize::display_max(&refusal.text, 300),
                }));
                Iq::Error {
                    from: None,
                    to: from,
                    id,
                    error: refusal.into_error(),
                    payload: None,
                }
            }
        };
        out.push(Output::Send(Box::new(Stanza::Iq(reply))));
    }

    fn request(
        &mut self,
        from: &str,
        payload: &Element,
        is_set: bool,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let ns = payload.ns();
        match (ns.as_str(), payload.name(), is_set) {
            (NS_PING, "ping", false) => Ok(None),
            (NS_DISCO_INFO, "query", false) => self.disco_info(payload),
            (NS_DISCO_ITEMS, "query", false) => self.disco_items(payload),
            (NS_PUBSUB, "pubsub", _) => self.pubsub(from, payload, is_set, out),
            (NS_PUBSUB_OWNER, "pubsub", true) => self.owner(from, payload, out),
            (NS_PUBSUB_OWNER, "pubsub", false) => Err(Refusal::unsupported("config-node")),
            _ => Err(refuse(
                DefinedCondition::ServiceUnavailable,
                "this service does not answer that request",
            )),
        }
    }

    fn disco_info(&self, q: &Element) -> Handled {
        let mut query = el("query", NS_DISCO_INFO, &[]);
        let kind = match q.attr("node") {
            None => "service",
            Some(node) => {
                self.existing(node)?;
                query.set_attr(rxml_none(), nc("node"), node);
                "leaf"
            }
        };
        query.append_child(el(
            "identity",
            NS_DISCO_INFO,
            &[
                ("category", "pubsub"),
                ("type", kind),
                ("name", "pubsub-tui relay"),
            ],
        ));
        for f in FEATURES {
            query.append_child(el("feature", NS_DISCO_INFO, &[("var", f)]));
        }
        Ok(Some(query))
    }

    fn disco_items(&self, q: &Element) -> Handled {
        let me = self.me().map(|j| j.to_string()).unwrap_or_default();
        let mut query = el("query", NS_DISCO_ITEMS, &[]);
        match q.attr("node") {
            None => {
                let names = self.store.node_names().map_err(|e| storage_error(&e))?;
                for n in names {
                    query.append_child(el("item", NS_DISCO_ITEMS, &[("jid", &me), ("node", &n)]));
                }
            }
            Some(node) => {
                self.existing(node)?;
                query.set_attr(rxml_none(), nc("node"), node);
                let ids = self.store.item_ids(node).map_err(|e| storage_error(&e))?;
                for id in ids {
                    query.append_child(el("item", NS_DISCO_ITEMS, &[("jid", &me), ("name", &id)]));
                }
            }
        }
        Ok(Some(query))
    }

    /// The node's head and creator, or `item-not-found`.
    fn existing(&self, node: &str) -> Result<(u64, String), Refusal> {
        self.store
            .node(node)
            .map_err(|e| storage_error(&e))?
            .ok_or_else(|| refuse(DefinedCondition::ItemNotFound, "no such node"))
    }

    /// Create the node if it does not exist (auto-create), within the node limit.
    fn ensure_node(&mut self, node: &str, creator: &str) -> Result<(), Refusal> {
        if self
            .store
            .node(node)
            .map_err(|e| storage_error(&e))?
            .is_some()
        {
            return Ok(());
        }
        self.create(node, creator).map(|_| ())
    }

    fn create(&mut self, node: &str, creator: &str) -> Result<bool, Refusal> {
        let count = self.store.node_count().map_err(|e| storage_error(&e))?;
        if count >= self.cfg.max_nodes {
            return Err(refuse(
                DefinedCondition::ResourceConstraint,
                format!("this service keeps at most {} nodes", self.cfg.max_nodes),
            ));
        }
        self.store
            .create_node(node, &bare(creator))
            .map_err(|e| storage_error(&e))
    }

    fn is_owner(&self, from: &str, creator: &str) -> bool {
        let b = bare(from);
        b == creator
            || self.cfg.admins.contains(&b)
            || self
                .bound
                .as_ref()
                .is_some_and(|me| me.to_bare().to_string() == b)
    }

    fn pubsub(
        &mut self,
        from: &str,
        p: &Element,
        is_set: bool,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let Some(action) = p.children().find(|c| c.ns() == NS_PUBSUB) else {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "an empty pubsub request",
            ));
        };
        match (action.name(), is_set) {
            ("subscribe", true) => self.subscribe(from, action, out),
            ("unsubscribe", true) => self.unsubscribe(from, action, out),
            ("publish", true) => self.publish(from, action, out),
            ("retract", true) => self.retract(from, action, out),
            ("create", true) => self.create_request(from, action),
            ("items", false) => self.items(p, action),
            ("subscriptions", false) => Ok(Some(self.subscriptions_of(from, action))),
            ("subscribe" | "unsubscribe" | "publish" | "retract" | "create", false)
            | ("items" | "subscriptions", true) => Err(refuse(
                DefinedCondition::BadRequest,
                format!(
                    "<{}/> needs an iq of the other type",
                    sanitize::display_max(action.name(), 40)
                ),
            )),
            ("options", _) => Err(Refusal::unsupported("subscription-options")),
            ("affiliations", _) => Err(Refusal::unsupported("retrieve-affiliations")),
            ("default", _) => Err(Refusal::unsupported("retrieve-default")),
            ("configure", _) => Err(Refusal::unsupported("config-node")),
            _ => Err(refuse(
                DefinedCondition::FeatureNotImplemented,
                "unknown pubsub request",
            )),
        }
    }

    fn subscribe(&mut self, from: &str, e: &Element, out: &mut Vec<Output<ServeEvent>>) -> Handled {
        let node = node_attr(e)?;
        let jid = jid_attr(e)?;
        if jid.to_bare().to_string() != bare(from) {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "you can only subscribe your own JID",
            )
            .detail("invalid-jid"));
        }
        self.ensure_node(&node, from)?;
        let jid = jid.to_string();
        let fresh = format!("{:016x}", self.rng.random::<u64>());
        let subid = self
            .store
            .subscribe(&node, &jid, &fresh)
            .map_err(|e| storage_error(&e))?;
        let known = self
            .subs
            .entry(node.clone())
            .or_default()
            .insert(
                jid.clone(),
                Sub {
                    subid: subid.clone(),
                },
            )
            .is_some();
        self.resume(&jid, out);
        if !known {
            out.push(Output::Event(ServeEvent::Subscribed {
                node: node.clone(),
                jid: jid.clone(),
            }));
        }
        let mut p = el("pubsub", NS_PUBSUB, &[]);
        p.append_child(el(
            "subscription",
            NS_PUBSUB,
            &[
                ("node", &node),
                ("jid", &jid),
                ("subid", &subid),
                ("subscription", "subscribed"),
            ],
        ));
        Ok(Some(p))
    }

    fn unsubscribe(
        &mut self,
        from: &str,
        e: &Element,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let node = node_attr(e)?;
        self.existing(&node)?;
        let jid = jid_attr(e)?;
        if jid.to_bare().to_string() != bare(from) {
            return Err(refuse(
                DefinedCondition::Forbidden,
                "you can only unsubscribe your own JID",
            ));
        }
        let jid = jid.to_string();
        let removed = self
            .store
            .unsubscribe(&node, &jid)
            .map_err(|e| storage_error(&e))?;
        if !removed {
            return Err(
                refuse(DefinedCondition::UnexpectedRequest, "not subscribed")
                    .detail("not-subscribed"),
            );
        }
        if let Some(m) = self.subs.get_mut(&node) {
            m.remove(&jid);
        }
        if !self.is_subscriber(&jid) {
            self.paused.remove(&jid);
        }
        out.push(Output::Event(ServeEvent::Unsubscribed { node, jid }));
        Ok(None)
    }

    fn subscriptions_of(&self, from: &str, e: &Element) -> Element {
        let only = e.attr("node");
        let me = bare(from);
        let mut list = el("subscriptions", NS_PUBSUB, &[]);
        if let Some(n) = only {
            list.set_attr(rxml_none(), nc("node"), n);
        }
        let mut nodes: Vec<_> = self.subs.iter().collect();
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        for (node, m) in nodes {
            if only.is_some_and(|n| n != node) {
                continue;
            }
            for (jid, sub) in m {
                if bare(jid) == me {
                    list.append_child(el(
                        "subscription",
                        NS_PUBSUB,
                        &[
                            ("node", node),
                            ("jid", jid),
                            ("subid", &sub.subid),
                            ("subscription", "subscribed"),
                        ],
                    ));
                }
            }
        }
        let mut p = el("pubsub", NS_PUBSUB, &[]);
        p.append_child(list);
        p
    }

    fn create_request(&mut self, from: &str, e: &Element) -> Handled {
        let node = match e.attr("node") {
            None => {
                return Err(refuse(
                    DefinedCondition::NotAcceptable,
                    "instant nodes are not supported: name the node",
                )
                .detail("nodeid-required"));
            }
            Some(_) => node_attr(e)?,
        };
        if self.create(&node, from)? {
            Ok(None)
        } else {
            Err(refuse(DefinedCondition::Conflict, "the node exists"))
        }
    }

    fn publish(&mut self, from: &str, e: &Element, out: &mut Vec<Output<ServeEvent>>) -> Handled {
        let node = node_attr(e)?;
        let mut items = e.children().filter(|c| c.is("item", NS_PUBSUB));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "a publish carries exactly one <item/>",
            )
            .detail("item-required"));
        };
        let id = match item.attr("id") {
            Some(id) if valid_name(id, MAX_ID) => id.to_owned(),
            Some(_) => {
                return Err(refuse(
                    DefinedCondition::NotAcceptable,
                    "the item id is empty, too long or has control characters",
                ));
            }
            None => format!("{:016x}", self.rng.random::<u64>()),
        };
        let publisher = bare(from);
        let mut stored = item.clone();
        stored.set_attr(rxml_none(), nc("id"), id.clone());
        // Who published it, as the service saw it: subscribers can check the item's own claim
        // of a sender against it (a client's attribute of that name is replaced).
        stored.set_attr(rxml_none(), nc("publisher"), publisher.clone());
        let Some(xml) = serialise(&stored) else {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "the item cannot be stored",
            ));
        };
        if xml.len() > MAX_ITEM_BYTES {
            return Err(refuse(
                DefinedCondition::NotAcceptable,
                format!("items are limited to {MAX_ITEM_BYTES} bytes"),
            )
            .detail("payload-too-big"));
        }
        self.ensure_node(&node, from)?;
        let seq = self
            .store
            .publish(&node, &id, &publisher, &xml, self.cfg.max_items)
            .map_err(|e| storage_error(&e))?;
        let mut items = el("items", NS_PUBSUB_EVENT, &[("node", &node)]);
        items.append_child(renamespaced(&stored, NS_PUBSUB_EVENT));
        let notified = self.notify(&node, &items, Some(seq), out);
        out.push(Output::Event(ServeEvent::Published {
            node: node.clone(),
            id: id.clone(),
            seq,
            publisher,
            notified,
        }));
        let mut publish = el("publish", NS_PUBSUB, &[("node", &node)]);
        publish.append_child(el("item", NS_PUBSUB, &[("id", &id)]));
        let mut p = el("pubsub", NS_PUBSUB, &[]);
        p.append_child(publish);
        Ok(Some(p))
    }

    /// Send an event child (`<items/>`, `<purge/>`) to every subscriber that is not paused;
    /// with `seq`, each message also carries the node-wide sequence number.
    fn notify(
        &mut self,
        node: &str,
        child: &Element,
        seq: Option<u64>,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> usize {
        let targets: Vec<String> = self
            .subs
            .get(node)
            .map(|m| {
                m.keys()
                    .filter(|j| !self.paused.contains(*j))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut event = el("event", NS_PUBSUB_EVENT, &[]);
        event.append_child(child.clone());
        let seq_el = seq.map(|n| el("seq", NS_SEQ, &[("node", node), ("n", &n.to_string())]));
        for jid in &targets {
            let Ok(to) = Jid::new(jid) else { continue };
            let mut m = Message::new(Some(to));
            m.type_ = MessageType::Headline;
            m.id = Some(MessageId(format!("n{}", self.next_counter())));
            m.payloads.push(event.clone());
            if let Some(s) = &seq_el {
                m.payloads.push(s.clone());
            }
            out.push(Output::Send(Box::new(Stanza::Message(m))));
        }
        targets.len()
    }

    fn items(&self, p: &Element, e: &Element) -> Handled {
        let node = node_attr(e)?;
        let (head, _) = self.existing(&node)?;
        let ids: Vec<String> = e
            .children()
            .filter(|c| c.is("item", NS_PUBSUB))
            .filter_map(|c| c.attr("id").map(str::to_owned))
            .collect();
        let rsm = p.get_child("set", NS_RSM);
        let query = if !ids.is_empty() {
            Query::Ids(ids)
        } else if let Some(set) = rsm {
            let max = set
                .get_child("max", NS_RSM)
                .and_then(|m| m.text().trim().parse::<u64>().ok())
                .unwrap_or(MAX_PAGE)
                .min(MAX_PAGE);
            let after = set
                .get_child("after", NS_RSM)
                .map(Element::text)
                .filter(|a| !a.is_empty());
            Query::Page { max, after }
        } else if let Some(n) = e.attr("max_items") {
            let n = n
                .trim()
                .parse::<u64>()
                .map_err(|_| refuse(DefinedCondition::BadRequest, "max_items is not a number"))?;
            Query::Newest(n)
        } else {
            Query::All
        };
        let stored = match self.store.items(&node, &query) {
            Ok(v) => v,
            Err(e) if e.is::<NoSuchItem>() => {
                return Err(refuse(
                    DefinedCondition::ItemNotFound,
                    "the page starts after an item this node does not have",
                ));
            }
            Err(e) => return Err(storage_error(&e)),
        };
        let mut items = el("items", NS_PUBSUB, &[("node", &node)]);
        for s in &stored {
            match s.xml.parse::<Element>() {
                Ok(item) => {
                    items.append_child(item);
                }
                Err(_) => {
                    // Never expected (we stored what we serialised); keep the id at least.
                    items.append_child(el("item", NS_PUBSUB, &[("id", &s.id)]));
                }
            }
        }
        let mut reply = el("pubsub", NS_PUBSUB, &[]);
        reply.append_child(items);
        if matches!(query, Query::Page { .. }) {
            let mut set = el("set", NS_RSM, &[]);
            if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
                let index = self
                    .store
                    .index_of(&node, first.seq)
                    .map_err(|e| storage_error(&e))?;
                let mut f = el("first", NS_RSM, &[("index", &index.to_string())]);
                f.append_text(first.id.clone());
                set.append_child(f);
                let mut l = el("last", NS_RSM, &[]);
                l.append_text(last.id.clone());
                set.append_child(l);
            }
            let count = self
                .store
                .item_count(&node)
                .map_err(|e| storage_error(&e))?;
            let mut c = el("count", NS_RSM, &[]);
            c.append_text(count.to_string());
            set.append_child(c);
            reply.append_child(set);
        }
        // Where the node's numbering stands, so a client can check the next notification.
        reply.append_child(el(
            "seq",
            NS_SEQ,
            &[("node", &node), ("head", &head.to_string())],
        ));
        Ok(Some(reply))
    }

    fn retract(&mut self, from: &str, e: &Element, out: &mut Vec<Output<ServeEvent>>) -> Handled {
        let node = node_attr(e)?;
        let (_, creator) = self.existing(&node)?;
        let ids: Vec<String> = e
            .children()
            .filter(|c| c.is("item", NS_PUBSUB))
            .filter_map(|c| c.attr("id").map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Err(
                refuse(DefinedCondition::BadRequest, "retract names no item")
                    .detail("item-required"),
            );
        }
        let owner = self.is_owner(from, &creator);
        for id in &ids {
            let publisher = self
                .store
                .item_publisher(&node, id)
                .map_err(|e| storage_error(&e))?
                .ok_or_else(|| refuse(DefinedCondition::ItemNotFound, "no such item"))?;
            if !owner && publisher != bare(from) {
                return Err(refuse(
                    DefinedCondition::Forbidden,
                    "only the publisher or the node owner can retract an item",
                ));
            }
        }
        let notify = !matches!(e.attr("notify"), Some("false" | "0"));
        let mut event = el("items", NS_PUBSUB_EVENT, &[("node", &node)]);
        for id in &ids {
            if self
                .store
                .retract(&node, id)
                .map_err(|e| storage_error(&e))?
            {
                event.append_child(el("retract", NS_PUBSUB_EVENT, &[("id", id)]));
            }
        }
        if notify {
            self.notify(&node, &event, None, out);
        }
        Ok(None)
    }

    fn owner(&mut self, from: &str, p: &Element, out: &mut Vec<Output<ServeEvent>>) -> Handled {
        let Some(action) = p.children().find(|c| c.ns() == NS_PUBSUB_OWNER) else {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "an empty pubsub#owner request",
            ));
        };
        match action.name() {
            "purge" => {
                let node = node_attr(action)?;
                let (_, creator) = self.existing(&node)?;
                if !self.is_owner(from, &creator) {
                    return Err(refuse(
                        DefinedCondition::Forbidden,
                        "only the node owner can purge it",
                    ));
                }
                self.store.purge(&node).map_err(|e| storage_error(&e))?;
                let purge = el("purge", NS_PUBSUB_EVENT, &[("node", &node)]);
                self.notify(&node, &purge, None, out);
                Ok(None)
            }
            "delete" => Err(Refusal::unsupported("delete-nodes")),
            "subscriptions" => Err(Refusal::unsupported("manage-subscriptions")),
            "affiliations" => Err(Refusal::unsupported("modify-affiliations")),
            _ => Err(Refusal::unsupported("config-node")),
        }
    }
}

fn rxml_none() -> xmpp_parsers::minidom::rxml::Namespace<'static> {
    xmpp_parsers::minidom::rxml::Namespace::NONE
}

impl crate::xmpp::task::Machine for Service {
    type Command = ServeCommand;
    type Event = ServeEvent;
    fn handle(&mut self, input: Input<ServeCommand>, now: Now) -> Vec<Output<ServeEvent>> {
        Service::handle(self, input, now)
    }
    fn shutdown() -> ServeCommand {
        ServeCommand::Shutdown
    }
    fn auto_interval(&self) -> Option<Duration> {
        None
    }
    fn is_final_failure(event: &ServeEvent) -> bool {
        matches!(event, ServeEvent::Connection(ConnState::Failed { .. }))
    }
    fn log(event: &ServeEvent) {
        super::log_event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_pubsub_detail() {
        let e = Refusal::unsupported("config-node").into_error();
        assert_eq!(e.defined_condition, DefinedCondition::FeatureNotImplemented);
        let other = e.other.expect("pubsub#errors child");
        assert!(other.is("unsupported", NS_PUBSUB_ERRORS));
        assert_eq!(other.attr("feature"), Some("config-node"));
    }

    #[test]
    fn renamespacing_keeps_attributes_and_children() {
        let item: Element = "<item xmlns='http://jabber.org/protocol/pubsub' sender='a' message='m'><x xmlns='urn:y'>t</x></item>"
            .parse()
            .expect("xml");
        let ev = renamespaced(&item, NS_PUBSUB_EVENT);
        assert!(ev.is("item", NS_PUBSUB_EVENT));
        assert_eq!(ev.attr("message"), Some("m"));
        assert_eq!(
            ev.get_child("x", "urn:y").map(Element::text).as_deref(),
            Some("t")
        );
    }
}
