//! The relay service as a state machine: requests in, replies and notifications out.
//!
//! Like the client's [`crate::xmpp::session::Session`], it reads no clock (time comes in with
//! each input) and owns no socket; the only I/O it does is its [`Store`], whose every change
//! is committed before the reply that confirms it goes out. Tests drive it with an in-memory
//! store.
//!
//! Access follows XEP-0060 §4.1 on every request. A node's creator owns it; `--admin` JIDs and
//! the service's own account own every node. Outcasts may do nothing. A whitelist node admits
//! members, publishers and owners (others get `not-allowed` with `<closed-node/>`). The
//! publish model says who may publish (`forbidden` otherwise). Only owners configure, purge,
//! delete, and see or change affiliations and subscriptions. An item is replaced or retracted
//! only by its publisher (bare JID), the node's publishers or its owners. Every check runs
//! before anything is stored, so a refused request changes nothing.
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

use super::store::{AccessModel, NoSuchItem, NodeConfig, NodeRow, PublishModel, Query, Store};
use crate::sanitize;
use crate::xmpp::events::ConnState;
use crate::xmpp::proto::{
    self, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_PUBSUB, NS_PUBSUB_ERRORS, NS_PUBSUB_OWNER,
    NS_RSM, NS_SEQ, disco, el, event, form, owner, pubsub,
};
use crate::xmpp::session::{Input, Now, Output};
/// Longest node name and item id accepted, in bytes.
const MAX_NAME: usize = 1024;
const MAX_ID: usize = 256;
/// Largest stored item, serialised (with the id and publisher the service adds): one such
/// item, in a notification or a retrieve result, stays under Prosody's 256 KiB stanza limit.
pub const MAX_ITEM_BYTES: usize = 250_000;
/// Largest RSM page served.
const MAX_PAGE: u64 = 1000;

/// The features disco#info announces: exactly what [`Service`] implements.
pub const FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    NS_RSM,
    NS_PUBSUB,
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#instant-nodes",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#manage-subscriptions",
    "http://jabber.org/protocol/pubsub#member-affiliation",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#outcast-affiliation",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-only-affiliation",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#publisher-affiliation",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
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

/// A node name or item id: not empty, bounded, and without control, bidi or invisible
/// format characters (a name that shows differently from what it is cannot be told apart).
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s
            .chars()
            .any(|c| c.is_control() || sanitize::is_format_char(c))
}

/// The node a request names, checked.
fn node_of(node: Option<&str>) -> Result<String, Refusal> {
    match node {
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

/// The JID a (un)subscribe request names, checked.
fn jid_of(jid: Option<&str>) -> Result<Jid, Refusal> {
    jid.and_then(|j| Jid::new(j).ok()).ok_or_else(|| {
        refuse(DefinedCondition::BadRequest, "missing or invalid jid").detail("invalid-jid")
    })
}

/// A bare JID's standing with a node (XEP-0060 §4.1), weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Aff {
    Outcast,
    None,
    Member,
    PublishOnly,
    Publisher,
    Owner,
}

impl Aff {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "outcast" => Self::Outcast,
            "none" => Self::None,
            "member" => Self::Member,
            "publish-only" => Self::PublishOnly,
            "publisher" => Self::Publisher,
            "owner" => Self::Owner,
            _ => return None,
        })
    }

    /// May subscribe and retrieve items under this access model.
    fn may_read(self, access: AccessModel) -> Result<(), Refusal> {
        match (self, access) {
            (Self::Outcast, _) => Err(refuse(
                DefinedCondition::Forbidden,
                "you are an outcast of this node",
            )),
            (Self::None | Self::PublishOnly, AccessModel::Whitelist) => Err(refuse(
                DefinedCondition::NotAllowed,
                "this node admits its members only",
            )
            .detail("closed-node")),
            _ => Ok(()),
        }
    }
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
            Input::Online { bound, server } => {
                self.bound = Some(bound.clone());
                self.online = true;
                self.last_probe = None;
                out.push(Output::Event(ServeEvent::Connection(ConnState::Online {
                    jid: bound.to_string(),
                    resumed: false,
                    server,
                })));
                out.push(Output::Send(Box::new(Stanza::Presence(Presence::new(
                    PresenceType::None,
                )))));
            }
            Input::Resumed { server } => {
                self.online = true;
                let jid = self.bound.as_ref().map(ToString::to_string);
                out.push(Output::Event(ServeEvent::Connection(ConnState::Online {
                    jid: jid.unwrap_or_default(),
                    resumed: true,
                    server,
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
                Stanza::Iq(iq) => self.on_iq(iq, now, &mut out),
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

    fn on_iq(&mut self, iq: Iq, now: Now, out: &mut Vec<Output<ServeEvent>>) {
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
        let answer = self.request(&requester, &payload, is_set, now, out);
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
        now: Now,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let ns = payload.ns();
        match (ns.as_str(), payload.name(), is_set) {
            (NS_PING, "ping", false) => Ok(None),
            (NS_DISCO_INFO, "query", false) => self.disco_info(payload.attr("node")),
            (NS_DISCO_ITEMS, "query", false) => self.disco_items(from, payload),
            (NS_PUBSUB, "pubsub", _) => self.pubsub(from, payload, is_set, now, out),
            (NS_PUBSUB_OWNER, "pubsub", _) => self.owner(from, payload, is_set, out),
            _ => Err(refuse(
                DefinedCondition::ServiceUnavailable,
                "this service does not answer that request",
            )),
        }
    }

    /// The service's identity and features, or a node's with its meta-data.
    fn disco_info(&self, node: Option<&str>) -> Handled {
        let identity = |kind: &str| disco::Identity {
            category: "pubsub".into(),
            kind: kind.into(),
            name: Some("pubsub-tui relay".into()),
        };
        let mut info = disco::Info {
            features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            ..disco::Info::default()
        };
        match node {
            None => info.identities.push(identity("service")),
            Some(node) => {
                let row = self.existing(node)?;
                info.node = Some(node.to_owned());
                info.identities.push(identity("leaf"));
                let mut owners: Vec<String> = self
                    .store
                    .affiliations(node)
                    .map_err(|e| storage_error(&e))?
                    .into_iter()
                    .filter(|(_, a)| a == "owner")
                    .map(|(jid, _)| jid)
                    .collect();
                owners.extend(self.cfg.admins.iter().cloned());
                owners.sort();
                owners.dedup();
                info.meta = Some(disco::NodeMeta {
                    title: row.title.clone(),
                    description: row.config.description.clone(),
                    payload_type: row.config.payload_type.clone(),
                    creator: Some(row.creator.clone()),
                    creation_date: row.created.clone(),
                    owners,
                    num_subscribers: Some(self.subs.get(node).map_or(0, |m| m.len() as u64)),
                    max_items: Some(self.keep(&row).to_string()),
                    access_model: Some(row.config.access_model.as_str().into()),
                    publish_model: Some(row.config.publish_model.as_str().into()),
                });
            }
        }
        Ok(Some(info.build()))
    }

    /// The nodes (with their titles as names), or a node's items, a page at a time (RSM).
    fn disco_items(&self, from: &str, q: &Element) -> Handled {
        let me = self.me().map(|j| j.to_string()).unwrap_or_default();
        let asked = q
            .get_child("set", NS_RSM)
            .and_then(|s| xmpp_parsers::rsm::SetQuery::try_from(s.clone()).ok());
        let max = asked
            .as_ref()
            .and_then(|a| a.max)
            .map_or(MAX_PAGE, |m| (m as u64).min(MAX_PAGE));
        let after = asked.as_ref().and_then(|a| a.after.clone());
        let mut listing = disco::Items::default();
        let total = match q.attr("node") {
            None => {
                let (page, total) = self
                    .store
                    .node_page(after.as_deref(), max)
                    .map_err(|e| storage_error(&e))?;
                listing.items = page
                    .into_iter()
                    .map(|(name, title)| disco::Listed {
                        jid: me.clone(),
                        node: Some(name),
                        name: title,
                    })
                    .collect();
                total
            }
            Some(node) => {
                let row = self.existing(node)?;
                self.affiliation(node, from)?
                    .may_read(row.config.access_model)?;
                listing.node = Some(node.to_owned());
                let ids = self.store.item_ids(node).map_err(|e| storage_error(&e))?;
                let total = ids.len() as u64;
                let start = after
                    .as_ref()
                    .and_then(|a| ids.iter().position(|i| i == a).map(|p| p + 1))
                    .unwrap_or(0);
                listing.items = ids
                    .into_iter()
                    .skip(start)
                    .take(usize::try_from(max).unwrap_or(usize::MAX))
                    .map(|id| disco::Listed {
                        jid: me.clone(),
                        node: None,
                        name: Some(id),
                    })
                    .collect();
                total
            }
        };
        // Say how it pages when asked to, or when this is not all of it.
        if asked.is_some() || (listing.items.len() as u64) < total {
            let key = |l: &disco::Listed| l.node.clone().or_else(|| l.name.clone());
            listing.page = Some(pubsub::ItemsResult::page_of(
                listing
                    .items
                    .first()
                    .and_then(key)
                    .as_deref()
                    .map(|k| (k, 0)),
                listing.items.last().and_then(key).as_deref(),
                usize::try_from(total).unwrap_or(usize::MAX),
            ));
        }
        Ok(Some(listing.build()))
    }

    /// The node's row, or `item-not-found`.
    fn existing(&self, node: &str) -> Result<NodeRow, Refusal> {
        self.store
            .node(node)
            .map_err(|e| storage_error(&e))?
            .ok_or_else(|| refuse(DefinedCondition::ItemNotFound, "no such node"))
    }

    /// Items the node keeps: its own limit, within the service's.
    fn keep(&self, row: &NodeRow) -> u64 {
        row.config
            .max_items
            .map_or(self.cfg.max_items, |m| m.min(self.cfg.max_items))
    }

    /// The requester's standing with a node: admins and the service's own account own every
    /// node; the others have what the node's affiliations say.
    fn affiliation(&self, node: &str, from: &str) -> Result<Aff, Refusal> {
        let b = bare(from);
        if self.cfg.admins.contains(&b)
            || self
                .bound
                .as_ref()
                .is_some_and(|me| me.to_bare().to_string() == b)
        {
            return Ok(Aff::Owner);
        }
        let a = self
            .store
            .affiliation(node, &b)
            .map_err(|e| storage_error(&e))?;
        Ok(Aff::parse(&a).unwrap_or(Aff::None))
    }

    /// The node's row, if the requester owns it; `forbidden` otherwise.
    fn owned(&self, node: &str, from: &str, what: &str) -> Result<NodeRow, Refusal> {
        let row = self.existing(node)?;
        if self.affiliation(node, from)? == Aff::Owner {
            Ok(row)
        } else {
            Err(refuse(
                DefinedCondition::Forbidden,
                format!("only the node's owners may {what}"),
            ))
        }
    }

    /// Whether the bare JID holds a subscription to the node (any resource).
    fn subscribed(&self, node: &str, from: &str) -> bool {
        let b = bare(from);
        self.subs
            .get(node)
            .is_some_and(|m| m.keys().any(|j| bare(j) == b))
    }

    /// Create the node if it does not exist (auto-create), within the node limit.
    fn ensure_node(&mut self, node: &str, creator: &str, now: Now) -> Result<(), Refusal> {
        if self
            .store
            .node(node)
            .map_err(|e| storage_error(&e))?
            .is_some()
        {
            return Ok(());
        }
        self.create(node, creator, None, &NodeConfig::default(), now)
            .map(|_| ())
    }

    fn create(
        &mut self,
        node: &str,
        creator: &str,
        title: Option<&str>,
        config: &NodeConfig,
        now: Now,
    ) -> Result<bool, Refusal> {
        let count = self.store.node_count().map_err(|e| storage_error(&e))?;
        if count >= self.cfg.max_nodes {
            return Err(refuse(
                DefinedCondition::ResourceConstraint,
                format!("this service keeps at most {} nodes", self.cfg.max_nodes),
            ));
        }
        let created = now.wall.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.store
            .create_node(node, &bare(creator), title, config, &created)
            .map_err(|e| storage_error(&e))
    }

    fn pubsub(
        &mut self,
        from: &str,
        p: &Element,
        is_set: bool,
        now: Now,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let request =
            pubsub::Request::parse(p).map_err(|why| refuse(DefinedCondition::BadRequest, why))?;
        let wrong_type = |name: &str| {
            Err(refuse(
                DefinedCondition::BadRequest,
                format!("<{name}/> needs an iq of the other type"),
            ))
        };
        match (request, is_set) {
            (pubsub::Request::Subscribe(s), true) => self.subscribe(from, &s, now, out),
            (pubsub::Request::Unsubscribe(u), true) => self.unsubscribe(from, &u, out),
            (pubsub::Request::Publish(p), true) => self.publish(from, &p, now, out),
            (pubsub::Request::Retract(r), true) => self.retract(from, &r, out),
            (pubsub::Request::Create(c), true) => self.create_request(from, &c, now),
            (pubsub::Request::Items(q), false) => self.items(from, &q),
            (pubsub::Request::Subscriptions(q), false) => {
                Ok(Some(self.subscriptions_of(from, q.node.as_deref())))
            }
            (pubsub::Request::Subscribe(_), false) => wrong_type("subscribe"),
            (pubsub::Request::Unsubscribe(_), false) => wrong_type("unsubscribe"),
            (pubsub::Request::Publish(_), false) => wrong_type("publish"),
            (pubsub::Request::Retract(_), false) => wrong_type("retract"),
            (pubsub::Request::Create(_), false) => wrong_type("create"),
            (pubsub::Request::Items(_), true) => wrong_type("items"),
            (pubsub::Request::Subscriptions(_), true) => wrong_type("subscriptions"),
            (pubsub::Request::Other(name), is_set) => match (name.as_str(), is_set) {
                ("affiliations", false) => self.own_affiliations(from),
                ("options", _) => Err(Refusal::unsupported("subscription-options")),
                ("default", _) => Err(refuse(
                    DefinedCondition::BadRequest,
                    "ask for the default configuration in the pubsub#owner namespace",
                )),
                ("configure", _) => Err(refuse(
                    DefinedCondition::BadRequest,
                    "configure a node in the pubsub#owner namespace",
                )),
                _ => Err(refuse(
                    DefinedCondition::FeatureNotImplemented,
                    "unknown pubsub request",
                )),
            },
        }
    }

    /// The requester's own affiliations (`<pubsub><affiliations/></pubsub>`).
    fn own_affiliations(&self, from: &str) -> Handled {
        let mut list = el("affiliations", NS_PUBSUB, &[]);
        for (node, a) in self
            .store
            .affiliations_of(&bare(from))
            .map_err(|e| storage_error(&e))?
        {
            list.append_child(el(
                "affiliation",
                NS_PUBSUB,
                &[("node", &node), ("affiliation", &a)],
            ));
        }
        let mut p = el("pubsub", NS_PUBSUB, &[]);
        p.append_child(list);
        Ok(Some(p))
    }

    fn subscribe(
        &mut self,
        from: &str,
        s: &pubsub::Subscribe,
        now: Now,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let node = node_of(s.node.as_deref())?;
        let jid = jid_of(s.jid.as_deref())?;
        if jid.to_bare().to_string() != bare(from) {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "you can only subscribe your own JID",
            )
            .detail("invalid-jid"));
        }
        if let Some(row) = self.store.node(&node).map_err(|e| storage_error(&e))? {
            self.affiliation(&node, from)?
                .may_read(row.config.access_model)?;
        }
        self.ensure_node(&node, from, now)?;
        let state = self.add_subscription(&node, &jid.to_string(), out)?;
        Ok(Some(state.build_result()))
    }

    /// Store a subscription (or refresh one) and say so.
    fn add_subscription(
        &mut self,
        node: &str,
        jid: &str,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Result<pubsub::Subscription, Refusal> {
        let fresh = format!("{:016x}", self.rng.random::<u64>());
        let subid = self
            .store
            .subscribe(node, jid, &fresh)
            .map_err(|e| storage_error(&e))?;
        let known = self
            .subs
            .entry(node.to_owned())
            .or_default()
            .insert(
                jid.to_owned(),
                Sub {
                    subid: subid.clone(),
                },
            )
            .is_some();
        self.resume(jid, out);
        if !known {
            out.push(Output::Event(ServeEvent::Subscribed {
                node: node.to_owned(),
                jid: jid.to_owned(),
            }));
        }
        Ok(pubsub::Subscription {
            node: node.to_owned(),
            jid: jid.to_owned(),
            subid: Some(subid),
            state: "subscribed".into(),
        })
    }

    fn unsubscribe(
        &mut self,
        from: &str,
        u: &pubsub::Unsubscribe,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let node = node_of(u.node.as_deref())?;
        self.existing(&node)?;
        let jid = jid_of(u.jid.as_deref())?;
        if jid.to_bare().to_string() != bare(from) {
            return Err(refuse(
                DefinedCondition::Forbidden,
                "you can only unsubscribe your own JID",
            ));
        }
        if !self.remove_subscription(&node, &jid.to_string(), out)? {
            return Err(
                refuse(DefinedCondition::UnexpectedRequest, "not subscribed")
                    .detail("not-subscribed"),
            );
        }
        Ok(None)
    }

    /// Remove a subscription; false if there was none.
    fn remove_subscription(
        &mut self,
        node: &str,
        jid: &str,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Result<bool, Refusal> {
        let removed = self
            .store
            .unsubscribe(node, jid)
            .map_err(|e| storage_error(&e))?;
        if !removed {
            return Ok(false);
        }
        if let Some(m) = self.subs.get_mut(node) {
            m.remove(jid);
        }
        if !self.is_subscriber(jid) {
            self.paused.remove(jid);
        }
        out.push(Output::Event(ServeEvent::Unsubscribed {
            node: node.to_owned(),
            jid: jid.to_owned(),
        }));
        Ok(true)
    }

    /// The requester's (bare JID's) subscriptions, of one node or all.
    fn subscriptions_of(&self, from: &str, only: Option<&str>) -> Element {
        let me = bare(from);
        let mut nodes: Vec<_> = self.subs.iter().collect();
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        let mut list = Vec::new();
        for (node, m) in nodes {
            if only.is_some_and(|n| n != node) {
                continue;
            }
            for (jid, sub) in m {
                if bare(jid) == me {
                    list.push(pubsub::Subscription {
                        node: node.clone(),
                        jid: jid.clone(),
                        subid: Some(sub.subid.clone()),
                        state: "subscribed".into(),
                    });
                }
            }
        }
        pubsub::Subscriptions {
            node: only.map(str::to_owned),
            list,
        }
        .build()
    }

    fn create_request(&mut self, from: &str, c: &pubsub::Create, now: Now) -> Handled {
        let (node, instant) = match c.node.as_deref() {
            Some(n) => (node_of(Some(n))?, false),
            None => (format!("{:016x}", self.rng.random::<u64>()), true),
        };
        let mut title = None;
        let mut config = NodeConfig::default();
        self.apply_config(&mut title, &mut config, &c.config)?;
        if self.create(&node, from, title.as_deref(), &config, now)? {
            // An instant node's name is the service's: say it.
            Ok(instant.then(|| pubsub::Create::build_result(&node)))
        } else {
            Err(refuse(DefinedCondition::Conflict, "the node exists"))
        }
    }

    /// Check configuration values (var, value) and apply them to `title` and `config`;
    /// `not-acceptable` names the first bad one, and nothing is applied then.
    fn apply_config(
        &self,
        title: &mut Option<String>,
        config: &mut NodeConfig,
        values: &[(String, String)],
    ) -> Result<(), Refusal> {
        let bad = |var: &str, why: String| {
            refuse(
                DefinedCondition::NotAcceptable,
                format!("{}: {why}", var.trim_start_matches("pubsub#")),
            )
        };
        let text = |v: &str, max: usize| {
            let v = sanitize::display_max(v.trim(), max);
            (!v.is_empty()).then_some(v)
        };
        let flag = |var: &str, v: &str| {
            form::parse_bool(v).ok_or_else(|| bad(var, format!("{v:?} is not a boolean")))
        };
        let (mut t, mut c) = (title.clone(), config.clone());
        for (var, v) in values {
            match var.as_str() {
                "FORM_TYPE" if v == pubsub::NODE_CONFIG => {}
                "FORM_TYPE" => return Err(bad(var, format!("{v:?} is not node configuration"))),
                "pubsub#title" => t = text(v, 200),
                "pubsub#description" => c.description = text(v, 1000),
                "pubsub#payload_type" | "pubsub#type" => c.payload_type = text(v, 300),
                "pubsub#max_items" => {
                    let max = self.cfg.max_items;
                    c.max_items = Some(match v.trim() {
                        "max" => max,
                        n => match n.parse::<u64>() {
                            Ok(k) if (1..=max).contains(&k) => k,
                            _ if !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit()) => {
                                return Err(bad(
                                    var,
                                    format!("out of bounds (1 to {max}, or max)"),
                                ));
                            }
                            _ => return Err(bad(var, format!("{v:?} is not a number"))),
                        },
                    });
                }
                "pubsub#access_model" => {
                    c.access_model = AccessModel::ALL
                        .into_iter()
                        .find(|m| m.as_str() == v.trim())
                        .ok_or_else(|| {
                            bad(var, format!("{v:?} is not supported (open, whitelist)"))
                        })?;
                }
                "pubsub#publish_model" => {
                    c.publish_model = PublishModel::ALL
                        .into_iter()
                        .find(|m| m.as_str() == v.trim())
                        .ok_or_else(|| {
                            bad(
                                var,
                                format!("{v:?} is not supported (open, publishers, subscribers)"),
                            )
                        })?;
                }
                "pubsub#notify_retract" => c.notify_retract = flag(var, v)?,
                "pubsub#deliver_payloads" => c.deliver_payloads = flag(var, v)?,
                other => return Err(bad(other, "this service has no such setting".into())),
            }
        }
        *title = t;
        *config = c;
        Ok(())
    }

    /// The node's configuration as a form to fill in.
    fn config_form(&self, row: &NodeRow) -> form::Form {
        use form::{Choice, Field, FieldKind};
        let labelled = |var: &str, kind: FieldKind, label: &str, value: &str| {
            let mut f = Field::new(var, kind, &[]);
            f.label = Some(label.to_owned());
            if !value.is_empty() {
                f.values.push(value.to_owned());
            }
            f
        };
        let choices = |names: &[&str]| {
            names
                .iter()
                .map(|n| Choice {
                    label: None,
                    value: (*n).to_owned(),
                })
                .collect()
        };
        let c = &row.config;
        let flag = |b: bool| if b { "1" } else { "0" };
        let mut max = labelled(
            "pubsub#max_items",
            FieldKind::TextSingle,
            "Items to keep",
            &self.keep(row).to_string(),
        );
        max.desc = Some(format!("1 to {}, or max", self.cfg.max_items));
        let fields = vec![
            Field::new("FORM_TYPE", FieldKind::Hidden, &[pubsub::NODE_CONFIG]),
            labelled(
                "pubsub#title",
                FieldKind::TextSingle,
                "Title",
                row.title.as_deref().unwrap_or_default(),
            ),
            labelled(
                "pubsub#description",
                FieldKind::TextSingle,
                "Description",
                c.description.as_deref().unwrap_or_default(),
            ),
            max,
            Field {
                options: choices(&["open", "whitelist"]),
                ..labelled(
                    "pubsub#access_model",
                    FieldKind::ListSingle,
                    "Who may subscribe and retrieve items",
                    c.access_model.as_str(),
                )
            },
            Field {
                options: choices(&["open", "publishers", "subscribers"]),
                ..labelled(
                    "pubsub#publish_model",
                    FieldKind::ListSingle,
                    "Who may publish",
                    c.publish_model.as_str(),
                )
            },
            labelled(
                "pubsub#notify_retract",
                FieldKind::Boolean,
                "Tell subscribers when an item is retracted",
                flag(c.notify_retract),
            ),
            labelled(
                "pubsub#deliver_payloads",
                FieldKind::Boolean,
                "Notifications carry the item's payload",
                flag(c.deliver_payloads),
            ),
            labelled(
                "pubsub#payload_type",
                FieldKind::TextSingle,
                "The payload's namespace",
                c.payload_type.as_deref().unwrap_or_default(),
            ),
        ];
        form::Form {
            title: Some("Node configuration".into()),
            ..form::Form::new(form::FormKind::Form, fields)
        }
    }

    fn publish(
        &mut self,
        from: &str,
        p: &pubsub::Publish,
        now: Now,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let node = node_of(p.node.as_deref())?;
        let [item] = p.items.as_slice() else {
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
        let xml = proto::to_xml(&stored);
        if xml.is_empty() {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "the item cannot be stored",
            ));
        }
        if xml.len() > MAX_ITEM_BYTES {
            return Err(refuse(
                DefinedCondition::NotAcceptable,
                format!("items are limited to {MAX_ITEM_BYTES} bytes"),
            )
            .detail("payload-too-big"));
        }
        // Every check before anything is stored: the node (as it is, or as auto-create would
        // make it), the requester's rights, an item of someone else's, the preconditions.
        let existing = self.store.node(&node).map_err(|e| storage_error(&e))?;
        if let Some(row) = &existing {
            self.may_publish(&node, row, from)?;
            let aff = self.affiliation(&node, from)?;
            if let Some(owner) = self
                .store
                .item_publisher(&node, &id)
                .map_err(|e| storage_error(&e))?
                && owner != publisher
                && aff < Aff::Publisher
            {
                return Err(refuse(
                    DefinedCondition::Forbidden,
                    "only the item's publisher, the node's publishers or its owners may replace it",
                ));
            }
        }
        if let Some(row) = &existing {
            self.check_preconditions(row.title.as_deref(), &row.config, &p.options)?;
        } else {
            // Auto-create takes the publish-options as the new node's configuration
            // (XEP-0060 §7.1.5), checked like any.
            let (mut title, mut config) = (None, NodeConfig::default());
            self.apply_config(&mut title, &mut config, &p.options)
                .map_err(|r| {
                    refuse(
                        DefinedCondition::Conflict,
                        format!("precondition not met: {}", r.text),
                    )
                    .detail("precondition-not-met")
                })?;
            self.create(&node, from, title.as_deref(), &config, now)?;
        }
        let row = self.existing(&node)?;
        let seq = self
            .store
            .publish(&node, &id, &publisher, &xml, self.keep(&row))
            .map_err(|e| storage_error(&e))?;
        let notice = if row.config.deliver_payloads {
            stored
        } else {
            el("item", NS_PUBSUB, &[("id", &id), ("publisher", &publisher)])
        };
        let notified = self.notify(&node, &row, &event::items(&node, &notice), Some(seq), out)?;
        out.push(Output::Event(ServeEvent::Published {
            node: node.clone(),
            id: id.clone(),
            seq,
            publisher,
            notified,
        }));
        Ok(Some(pubsub::Publish::build_result(&node, &id)))
    }

    /// Whether the requester may publish to the node, by its publish model.
    fn may_publish(&self, node: &str, row: &NodeRow, from: &str) -> Result<(), Refusal> {
        let aff = self.affiliation(node, from)?;
        let allowed = match (aff, row.config.publish_model) {
            (Aff::Outcast, _) => false,
            (_, PublishModel::Open) => true,
            (a, PublishModel::Publishers) => a >= Aff::PublishOnly,
            (a, PublishModel::Subscribers) => a >= Aff::PublishOnly || self.subscribed(node, from),
        };
        if allowed {
            return Ok(());
        }
        Err(refuse(
            DefinedCondition::Forbidden,
            match (aff, row.config.publish_model) {
                (Aff::Outcast, _) => "you are an outcast of this node",
                (_, PublishModel::Subscribers) => {
                    "only the node's subscribers and publishers may publish"
                }
                _ => "only the node's publishers may publish",
            },
        ))
    }

    /// Publish-options (XEP-0060 §7.1.5): each must match the node's configuration, or the
    /// publish is refused with `conflict` and `<precondition-not-met/>`.
    fn check_preconditions(
        &self,
        title: Option<&str>,
        config: &NodeConfig,
        options: &[(String, String)],
    ) -> Result<(), Refusal> {
        if options.is_empty() {
            return Ok(());
        }
        let mut t = title.map(str::to_owned);
        let mut wanted = config.clone();
        let unmet = |why: String| {
            refuse(
                DefinedCondition::Conflict,
                format!("precondition not met: {why}"),
            )
            .detail("precondition-not-met")
        };
        self.apply_config(&mut t, &mut wanted, options)
            .map_err(|r| unmet(r.text))?;
        if wanted != *config || t.as_deref() != title {
            let var = options
                .iter()
                .map(|(v, _)| v.trim_start_matches("pubsub#"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(unmet(format!("the node's configuration differs ({var})")));
        }
        Ok(())
    }

    /// Send an `<event/>` to every subscriber that is not paused and may read the node; with
    /// `seq`, each message also carries the node-wide sequence number.
    fn notify(
        &mut self,
        node: &str,
        row: &NodeRow,
        event: &Element,
        seq: Option<u64>,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Result<usize, Refusal> {
        let mut targets: Vec<String> = self
            .subs
            .get(node)
            .map(|m| {
                m.keys()
                    .filter(|j| !self.paused.contains(*j))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if row.config.access_model != AccessModel::Open {
            let mut allowed = Vec::with_capacity(targets.len());
            for jid in targets {
                if self
                    .affiliation(node, &jid)?
                    .may_read(row.config.access_model)
                    .is_ok()
                {
                    allowed.push(jid);
                }
            }
            targets = allowed;
        }
        let seq_el = seq.map(|n| proto::seq::number(node, n));
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
        Ok(targets.len())
    }

    fn items(&self, from: &str, q: &pubsub::ItemsQuery) -> Handled {
        let node = node_of(q.node.as_deref())?;
        let row = self.existing(&node)?;
        self.affiliation(&node, from)?
            .may_read(row.config.access_model)?;
        let query = if !q.ids.is_empty() {
            Query::Ids(q.ids.clone())
        } else if let Some(page) = &q.page {
            let max = page.max.map_or(MAX_PAGE, |m| (m as u64).min(MAX_PAGE));
            Query::Page {
                max,
                after: page.after.clone().filter(|a| !a.is_empty()),
            }
        } else if let Some(n) = q.max_items {
            Query::Newest(n)
        } else {
            Query::All
        };
        let mut stored = match self.store.items(&node, &query) {
            Ok(v) => v,
            Err(e) if e.is::<NoSuchItem>() => {
                return Err(refuse(
                    DefinedCondition::ItemNotFound,
                    "the page starts after an item this node does not have",
                ));
            }
            Err(e) => return Err(storage_error(&e)),
        };
        // One answer stays under the server's stanza limit (Prosody's is 256 KiB): as many
        // items as fit, one at least, and an RSM page that says where to go on.
        let cut = cut_to_budget(&mut stored, matches!(query, Query::Newest(_)));
        let items = stored
            .iter()
            .map(|s| {
                // Never expected to fail (we stored what we wrote); keep the id at least.
                s.xml
                    .parse::<Element>()
                    .unwrap_or_else(|_| el("item", NS_PUBSUB, &[("id", &s.id)]))
            })
            .collect();
        let page =
            if matches!(query, Query::Page { .. }) || (cut && !matches!(query, Query::Newest(_))) {
                let count = self
                    .store
                    .item_count(&node)
                    .map_err(|e| storage_error(&e))?;
                let first = match stored.first() {
                    Some(f) => Some((
                        f.id.as_str(),
                        self.store
                            .index_of(&node, f.seq)
                            .map_err(|e| storage_error(&e))?,
                    )),
                    None => None,
                };
                Some(pubsub::ItemsResult::page_of(
                    first.map(|(id, i)| (id, usize::try_from(i).unwrap_or(usize::MAX))),
                    stored.last().map(|l| l.id.as_str()),
                    usize::try_from(count).unwrap_or(usize::MAX),
                ))
            } else {
                None
            };
        // Where the node's numbering stands, so a client can check the next notification.
        Ok(Some(
            pubsub::ItemsResult {
                node,
                items,
                page,
                head: Some(row.head),
            }
            .build(),
        ))
    }

    fn retract(
        &mut self,
        from: &str,
        r: &pubsub::Retract,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let node = node_of(r.node.as_deref())?;
        let row = self.existing(&node)?;
        if r.ids.is_empty() {
            return Err(
                refuse(DefinedCondition::BadRequest, "retract names no item")
                    .detail("item-required"),
            );
        }
        let aff = self.affiliation(&node, from)?;
        for id in &r.ids {
            let publisher = self
                .store
                .item_publisher(&node, id)
                .map_err(|e| storage_error(&e))?
                .ok_or_else(|| refuse(DefinedCondition::ItemNotFound, "no such item"))?;
            if aff == Aff::Outcast || (aff < Aff::Publisher && publisher != bare(from)) {
                return Err(refuse(
                    DefinedCondition::Forbidden,
                    "only the item's publisher, the node's publishers or its owners may retract it",
                ));
            }
        }
        let mut gone = Vec::new();
        for id in &r.ids {
            if self
                .store
                .retract(&node, id)
                .map_err(|e| storage_error(&e))?
            {
                gone.push(id.clone());
            }
        }
        if r.notify && row.config.notify_retract {
            self.notify(&node, &row, &event::retracts(&node, &gone), None, out)?;
        }
        Ok(None)
    }

    fn owner(
        &mut self,
        from: &str,
        p: &Element,
        is_set: bool,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let Some(request) = owner::Request::parse(p) else {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "an empty pubsub#owner request",
            ));
        };
        match (request, is_set) {
            (owner::Request::Purge(purge), true) => {
                let node = node_of(purge.node.as_deref())?;
                let row = self.owned(&node, from, "purge it")?;
                self.store.purge(&node).map_err(|e| storage_error(&e))?;
                self.notify(&node, &row, &event::purge(&node), None, out)?;
                Ok(None)
            }
            (owner::Request::Delete(d), true) => {
                let node = node_of(d.node.as_deref())?;
                let row = self.owned(&node, from, "delete it")?;
                let event = event::delete(&node, d.redirect.as_deref());
                // Told before the subscriptions go with the node.
                self.notify(&node, &row, &event, None, out)?;
                self.store
                    .delete_node(&node)
                    .map_err(|e| storage_error(&e))?;
                for jid in self.subs.remove(&node).unwrap_or_default().into_keys() {
                    if !self.is_subscriber(&jid) {
                        self.paused.remove(&jid);
                    }
                    out.push(Output::Event(ServeEvent::Unsubscribed {
                        node: node.clone(),
                        jid,
                    }));
                }
                Ok(None)
            }
            (owner::Request::Configure(c), false) => {
                let node = node_of(c.node.as_deref())?;
                let row = self.owned(&node, from, "configure it")?;
                let result = owner::Configure::set(&node, self.config_form(&row));
                Ok(Some(result.build()))
            }
            (owner::Request::Configure(c), true) => self.configure(from, c, out),
            (owner::Request::Affiliations(a), false) => {
                let node = node_of(a.node.as_deref())?;
                self.owned(&node, from, "see its affiliations")?;
                let list = self
                    .store
                    .affiliations(&node)
                    .map_err(|e| storage_error(&e))?
                    .into_iter()
                    .map(|(jid, affiliation)| owner::Affiliation { jid, affiliation })
                    .collect();
                Ok(Some(owner::Affiliations::new(&node, list).build()))
            }
            (owner::Request::Affiliations(a), true) => {
                let node = node_of(a.node.as_deref())?;
                self.owned(&node, from, "change its affiliations")?;
                self.set_affiliations(&node, &a.list, out)
            }
            (owner::Request::Subscriptions(q), false) => {
                let node = node_of(q.node.as_deref())?;
                self.owned(&node, from, "see its subscriptions")?;
                let list = self
                    .subs
                    .get(&node)
                    .map(|m| {
                        m.iter()
                            .map(|(jid, sub)| owner::NodeSub {
                                jid: jid.clone(),
                                state: "subscribed".into(),
                                subid: Some(sub.subid.clone()),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Some(owner::NodeSubs::new(&node, list).build()))
            }
            (owner::Request::Subscriptions(q), true) => {
                let node = node_of(q.node.as_deref())?;
                let row = self.owned(&node, from, "change its subscriptions")?;
                self.set_subscriptions(&node, &row, &q.list, out)
            }
            (owner::Request::Purge(_) | owner::Request::Delete(_), false) => Err(refuse(
                DefinedCondition::BadRequest,
                "purge and delete need an iq of type set",
            )),
            (owner::Request::Other(name), false) if name == "default" => {
                let row = NodeRow {
                    head: 0,
                    creator: bare(from),
                    title: None,
                    created: None,
                    config: NodeConfig::default(),
                };
                Ok(Some(owner::default_result(&self.config_form(&row))))
            }
            (owner::Request::Other(_), _) => Err(refuse(
                DefinedCondition::FeatureNotImplemented,
                "unknown pubsub#owner request",
            )),
        }
    }

    /// A submitted configuration form (or its cancel), checked whole before it is stored.
    fn configure(
        &mut self,
        from: &str,
        c: owner::Configure,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let node = node_of(c.node.as_deref())?;
        let row = self.owned(&node, from, "configure it")?;
        let Some(f) = c.form else {
            return Err(refuse(
                DefinedCondition::BadRequest,
                "a configure request without a form",
            ));
        };
        match f.kind {
            form::FormKind::Cancel => return Ok(None),
            form::FormKind::Submit => {}
            other => {
                return Err(refuse(
                    DefinedCondition::BadRequest,
                    format!("a {} form cannot be submitted", other.as_str()),
                ));
            }
        }
        let values: Vec<(String, String)> = f
            .fields
            .into_iter()
            .filter_map(|f| Some((f.var?, f.values)))
            .map(|(var, values)| (var, values.into_iter().next().unwrap_or_default()))
            .collect();
        let (mut title, mut config) = (row.title.clone(), row.config.clone());
        self.apply_config(&mut title, &mut config, &values)?;
        let keep = config
            .max_items
            .map_or(self.cfg.max_items, |m| m.min(self.cfg.max_items));
        self.store
            .configure(&node, title.as_deref(), &config, keep)
            .map_err(|e| storage_error(&e))?;
        // A node made a whitelist keeps only the subscribers it admits.
        self.drop_unreadable(&node, out)?;
        Ok(None)
    }

    /// Remove the subscriptions of those who may no longer read the node (outcasts; on a
    /// whitelist node, whoever is not a member, publisher or owner), and tell each.
    fn drop_unreadable(
        &mut self,
        node: &str,
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Result<(), Refusal> {
        let row = self.existing(node)?;
        let subscribers: Vec<String> = self
            .subs
            .get(node)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for jid in subscribers {
            if self
                .affiliation(node, &jid)?
                .may_read(row.config.access_model)
                .is_ok()
            {
                continue;
            }
            self.store
                .unsubscribe(node, &jid)
                .map_err(|e| storage_error(&e))?;
            if let Some(m) = self.subs.get_mut(node) {
                m.remove(&jid);
            }
            self.tell(&jid, &event::subscription(node, &jid, "none"), out);
            out.push(Output::Event(ServeEvent::Unsubscribed {
                node: node.to_owned(),
                jid,
            }));
        }
        Ok(())
    }

    /// Send one JID an event of its own (its subscription changed).
    fn tell(&mut self, jid: &str, event: &Element, out: &mut Vec<Output<ServeEvent>>) {
        let Ok(to) = Jid::new(jid) else { return };
        let mut m = Message::new(Some(to));
        m.type_ = MessageType::Headline;
        m.id = Some(MessageId(format!("n{}", self.next_counter())));
        m.payloads.push(event.clone());
        out.push(Output::Send(Box::new(Stanza::Message(m))));
    }

    /// Change affiliations, all or none: each JID valid, each affiliation known, and the node
    /// left with an owner.
    fn set_affiliations(
        &mut self,
        node: &str,
        list: &[owner::Affiliation],
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let mut changes = Vec::new();
        for a in list {
            let jid = Jid::new(&a.jid).map_err(|_| {
                refuse(
                    DefinedCondition::BadRequest,
                    format!("{:?} is not a JID", a.jid),
                )
                .detail("invalid-jid")
            })?;
            if Aff::parse(&a.affiliation).is_none() {
                return Err(refuse(
                    DefinedCondition::BadRequest,
                    format!(
                        "{:?} is not an affiliation ({})",
                        a.affiliation,
                        owner::AFFILIATIONS.join(", ")
                    ),
                ));
            }
            changes.push((jid.to_bare().to_string(), a.affiliation.clone()));
        }
        let mut after: HashMap<String, String> = self
            .store
            .affiliations(node)
            .map_err(|e| storage_error(&e))?
            .into_iter()
            .collect();
        for (jid, a) in &changes {
            after.insert(jid.clone(), a.clone());
        }
        if !after.values().any(|a| a == "owner") {
            return Err(refuse(
                DefinedCondition::NotAcceptable,
                "the node would have no owner left",
            ));
        }
        self.store
            .set_affiliations(node, &changes)
            .map_err(|e| storage_error(&e))?;
        // Outcasts, and on a whitelist node those no longer admitted, lose their
        // subscriptions, and are told.
        self.drop_unreadable(node, out)?;
        Ok(None)
    }

    /// The owner's changes to subscriptions, all or none: `none` removes one, `subscribed`
    /// adds one (for a JID that may read the node). This service never holds a subscription
    /// pending, so there is nothing to approve.
    fn set_subscriptions(
        &mut self,
        node: &str,
        row: &NodeRow,
        list: &[owner::NodeSub],
        out: &mut Vec<Output<ServeEvent>>,
    ) -> Handled {
        let mut changes = Vec::new();
        for s in list {
            let jid = Jid::new(&s.jid).map_err(|_| {
                refuse(
                    DefinedCondition::BadRequest,
                    format!("{:?} is not a JID", s.jid),
                )
                .detail("invalid-jid")
            })?;
            match s.state.as_str() {
                "none" => {}
                "subscribed" => {
                    self.affiliation(node, jid.as_str())?
                        .may_read(row.config.access_model)
                        .map_err(|r| {
                            refuse(
                                DefinedCondition::NotAcceptable,
                                format!("{jid} may not subscribe: {}", r.text),
                            )
                        })?;
                }
                other => {
                    return Err(refuse(
                        DefinedCondition::NotAcceptable,
                        format!(
                            "{other:?}: this service has no pending or unconfigured subscriptions \
                             (set subscribed or none)"
                        ),
                    ));
                }
            }
            changes.push((jid.to_string(), s.state == "subscribed"));
        }
        for (jid, add) in changes {
            let state = if add {
                self.add_subscription(node, &jid, out)?;
                "subscribed"
            } else if self.remove_subscription(node, &jid, out)? {
                "none"
            } else {
                continue;
            };
            self.tell(&jid, &event::subscription(node, &jid, state), out);
        }
        Ok(None)
    }
}

/// Bytes of items one retrieve result carries at most (with its wrapper, under 256 KiB).
const RESULT_BUDGET: usize = 250_000;

/// Keep the items that fit in [`RESULT_BUDGET`] (one at least): the first ones, or with
/// `newest` the last ones. Whether any were left out.
fn cut_to_budget(items: &mut Vec<super::store::StoredItem>, newest: bool) -> bool {
    let order: Box<dyn Iterator<Item = &super::store::StoredItem>> = if newest {
        Box::new(items.iter().rev())
    } else {
        Box::new(items.iter())
    };
    let (mut total, mut keep) = (0, 0);
    for it in order {
        total += it.xml.len();
        if keep > 0 && total > RESULT_BUDGET {
            break;
        }
        keep += 1;
    }
    let cut = keep < items.len();
    if newest {
        let drop = items.len() - keep;
        items.drain(..drop);
    } else {
        items.truncate(keep);
    }
    cut
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
}
