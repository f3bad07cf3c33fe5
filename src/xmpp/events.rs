//! The messages between the network core and its front ends: plain owned data named for the
//! domain. No XML and no library handles cross this boundary.

use std::time::Duration;

use chrono::{DateTime, Utc};
use xmpp_parsers::jid::Jid;

use crate::feed::FeedItem;
use crate::feed::gap::Lost;
use crate::xmpp::error::RequestError;
use crate::xmpp::proto::form::Form;
use crate::xmpp::proto::owner::{Affiliation, NodeSub};
use crate::xmpp::proto::{SubState, disco, pubsub};

/// A front end's name for one of its requests. The core answers each request exactly once,
/// with [`NetEvent::Reply`] carrying its id: the result, or why it failed. Ids are the front
/// end's to choose ([`RequestIds`] hands them out in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Hands out request ids, 1, 2, 3, …
#[derive(Debug, Default, Clone)]
pub struct RequestIds(u64);

impl RequestIds {
    pub fn fresh(&mut self) -> RequestId {
        self.0 += 1;
        RequestId(self.0)
    }
}

/// A node, addressed by its service and its name. Commands address nodes this way; a
/// session follows nodes at its own service, and its events name nodes within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeKey {
    pub service: Jid,
    pub node: String,
}

impl NodeKey {
    pub fn new(service: &Jid, node: impl Into<String>) -> Self {
        Self {
            service: service.clone(),
            node: node.into(),
        }
    }
}

impl std::fmt::Display for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.node, self.service)
    }
}

/// What a front end asks the network core to do. Each request carries a [`RequestId`] and is
/// answered once with [`NetEvent::Reply`]; the others (auto-publish, shutdown) are settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Publish text to a node (waits for the link when offline).
    Publish {
        req: RequestId,
        node: NodeKey,
        text: String,
    },
    /// Retrieve all items of a followed node and replace the local view with them (a
    /// [`NetEvent::Snapshot`] too). A node whose subscription failed is subscribed again first.
    Resync { req: RequestId, node: NodeKey },
    /// Follow a node from now on: subscribe, and retrieve its items.
    Follow { req: RequestId, node: NodeKey },
    /// Stop following a node: unsubscribe, and accept no more of its events.
    Unfollow { req: RequestId, node: NodeKey },
    /// Subscribe the account (its bare JID) to a node, lastingly; the session does not
    /// follow it.
    Subscribe { req: RequestId, node: NodeKey },
    /// Remove the account's (bare JID) subscription to a node.
    Unsubscribe { req: RequestId, node: NodeKey },
    /// Publish a given `<item/>` (its id, when it has one, replaces the item of that id),
    /// with publish-options (var, value) when given. Needs the link (it does not wait).
    PublishItem {
        req: RequestId,
        node: NodeKey,
        item: xmpp_parsers::minidom::Element,
        options: Vec<(String, String)>,
    },
    /// Retract an item (with notification); needs rights on the service.
    Retract {
        req: RequestId,
        node: NodeKey,
        id: String,
    },
    /// A node's owner's request: create, configure, purge, delete, affiliations and
    /// subscriptions.
    Owner {
        req: RequestId,
        node: NodeKey,
        op: OwnerOp,
    },
    /// One page of the nodes a service lists (under `parent`, a collection, when given),
    /// starting after `after` (RSM) when given.
    ListNodes {
        req: RequestId,
        service: Jid,
        parent: Option<String>,
        after: Option<String>,
    },
    /// What a service (no node) or one of its nodes says about itself: identity, features,
    /// meta-data.
    Info {
        req: RequestId,
        service: Jid,
        node: Option<String>,
    },
    /// The items a node stores (all pages, or the newest `max`), without following it.
    Items {
        req: RequestId,
        node: NodeKey,
        max: Option<u64>,
    },
    /// This account's subscriptions at a service.
    Subscriptions { req: RequestId, service: Jid },
    /// Turn auto-publish on or off; `node` is where it publishes (the TUI's selected node).
    SetAutoPublish { enabled: bool, node: Option<String> },
    /// Send the items an earlier run left in the store's outbox (of `node` only, when given).
    /// Answered with their ids at once; each then goes as an unrequested publish
    /// ([`NetEvent::AutoPublished`] or [`NetEvent::AutoPublishFailed`] when done).
    SendLeftovers {
        req: RequestId,
        node: Option<String>,
    },
    /// Drop this run's unsent items from the store (the user chose to at quit): their numbers
    /// are declared never published. Answered with how many.
    DiscardUnsent { req: RequestId },
    /// Unsubscribe from every followed node (when online), then close the stream.
    Shutdown,
}

impl Command {
    /// The request's id (`None` for settings).
    pub fn req(&self) -> Option<RequestId> {
        match self {
            Self::Publish { req, .. }
            | Self::Resync { req, .. }
            | Self::Follow { req, .. }
            | Self::Unfollow { req, .. }
            | Self::Subscribe { req, .. }
            | Self::Unsubscribe { req, .. }
            | Self::PublishItem { req, .. }
            | Self::Retract { req, .. }
            | Self::Owner { req, .. }
            | Self::ListNodes { req, .. }
            | Self::Info { req, .. }
            | Self::Items { req, .. }
            | Self::Subscriptions { req, .. }
            | Self::SendLeftovers { req, .. }
            | Self::DiscardUnsent { req } => Some(*req),
            Self::SetAutoPublish { .. } | Self::Shutdown => None,
        }
    }
}

/// What a node's owner asks (XEP-0060 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerOp {
    /// Create the node (an instant node, named by the service, when the key's node is empty)
    /// with these configuration values (var, value). `exist_ok`: a node that exists already
    /// is what was wanted.
    Create {
        config: Vec<(String, String)>,
        exist_ok: bool,
    },
    /// The form for a new node's configuration (the service's defaults).
    DefaultConfig,
    /// The node's configuration form.
    GetConfig,
    /// Submit the (edited) configuration form; only what it holds is sent.
    SetConfig(Form),
    /// Leave configuring without a change.
    CancelConfig,
    Purge,
    /// Delete the node; subscribers are pointed to `redirect` when given.
    Delete {
        redirect: Option<String>,
    },
    Affiliations,
    SetAffiliations(Vec<Affiliation>),
    Subscriptions,
    SetSubscriptions(Vec<NodeSub>),
}

impl OwnerOp {
    /// Create a node anyone may publish to and read, keeping `max_items`, with a title when
    /// given; a node that exists already is fine (needs owner rights on Prosody).
    pub fn open_node(max_items: u32, title: Option<&str>) -> Self {
        let mut config = pubsub::Create::open("", max_items).config;
        if let Some(t) = title {
            config.push(("pubsub#title".into(), t.to_owned()));
        }
        Self::Create {
            config,
            exist_ok: true,
        }
    }

    /// What it does, for the words of an error.
    pub fn op(&self) -> crate::xmpp::error::Op {
        use crate::xmpp::error::Op;
        match self {
            Self::Create { .. } => Op::Create,
            Self::DefaultConfig | Self::GetConfig | Self::SetConfig(_) | Self::CancelConfig => {
                Op::Configure
            }
            Self::Purge => Op::Purge,
            Self::Delete { .. } => Op::Delete,
            Self::Affiliations | Self::SetAffiliations(_) => Op::Affiliations,
            Self::Subscriptions | Self::SetSubscriptions(_) => Op::NodeSubscriptions,
        }
    }
}

/// What an owner's request did or returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerDone {
    /// The node's name (the service's choice for an instant node); `existed`: it was there
    /// already (with `exist_ok`).
    Created {
        node: String,
        existed: bool,
    },
    /// A configuration form (the node's, or the defaults).
    Config(Form),
    Configured,
    Cancelled,
    Purged,
    Deleted,
    Affiliations(Vec<Affiliation>),
    AffiliationsSet,
    Subscriptions(Vec<NodeSub>),
    SubscriptionsSet,
}

/// A request's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The service stored it under this id.
    Published {
        node: String,
        id: String,
    },
    /// Items left unsent by an earlier run, now on their way: (node, id, text).
    Leftovers(Vec<(String, String, String)>),
    /// Unsent items dropped.
    Discarded(usize),
    /// The node's items were retrieved (the [`NetEvent::Snapshot`] before this has them).
    Resynced {
        node: String,
        count: usize,
    },
    /// The node is followed; its subscription's state.
    Followed {
        node: String,
        state: SubState,
    },
    /// `account`: the account itself (its bare JID) is still subscribed to the node (the
    /// `subscribe` command, or another client, made that subscription; it is not this run's).
    Unfollowed {
        node: String,
        account: bool,
    },
    /// The account's subscription (`jid` is its bare JID).
    Subscribed {
        node: String,
        jid: String,
        state: SubState,
    },
    Unsubscribed {
        node: String,
        jid: String,
    },
    Retracted {
        node: String,
        id: String,
    },
    /// An owner's request's result.
    Owner {
        node: String,
        done: OwnerDone,
    },
    Nodes(disco::Items),
    Info(disco::Info),
    Items {
        node: String,
        items: Vec<FeedItem>,
    },
    Subscriptions(Vec<pubsub::Subscription>),
}

/// The connection as a front end should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
        /// The server being tried (`HOST:PORT`), when known.
        server: Option<String>,
    },
    /// The last attempt failed; the next one starts after `retry_in`.
    Retrying {
        attempt: u32,
        error: String,
        retry_in: Duration,
    },
    Online {
        jid: String,
        resumed: bool,
        /// The server it is on (`HOST:PORT`), when known: with several servers for one
        /// account, the one it reached.
        server: Option<String>,
    },
    /// The link was lost; reconnecting (resumption is still possible).
    Suspended,
    /// Final: bad credentials, a TLS failure, or out of attempts. No more retries.
    Failed {
        error: String,
    },
    Closed,
}

impl std::fmt::Display for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connecting { attempt, server } => {
                f.write_str("connecting")?;
                if let Some(server) = server {
                    write!(f, " to {server}")?;
                }
                if *attempt > 1 {
                    write!(f, " (attempt {attempt})")?;
                }
                Ok(())
            }
            Self::Retrying {
                attempt,
                error,
                retry_in,
            } => write!(
                f,
                "attempt {attempt} failed: {error}; retrying in {} s",
                retry_in.as_secs().max(1)
            ),
            Self::Online {
                jid,
                server: Some(server),
                ..
            } => write!(f, "online as {jid} on {server}"),
            Self::Online { jid, .. } => write!(f, "online as {jid}"),
            Self::Suspended => f.write_str("connection lost, reconnecting"),
            Self::Failed { error } => write!(f, "failed: {error}"),
            Self::Closed => f.write_str("closed"),
        }
    }
}

/// Why a node's items were retrieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotReason {
    /// On subscribing in a fresh session.
    Initial,
    /// Asked for by the user.
    Manual,
    /// Started automatically after a gap in the sequence numbers.
    Gap,
    /// What the local cache kept from earlier runs, shown before the service answers; the
    /// first retrieve confirms (or corrects) it.
    Cached,
}

/// What the network core tells its front ends.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    Connection(ConnState),
    /// The answer to a request ([`Command`]), exactly once per request.
    Reply {
        req: RequestId,
        result: Result<Answer, RequestError>,
    },
    Subscription {
        node: String,
        state: SubState,
    },
    /// A live notification.
    Item(FeedItem),
    /// A retrieve started for this node.
    ResyncStarted {
        node: String,
    },
    /// The service's set of items for the node, ordered by (time, seq), deduplicated by id.
    /// `lost` says which items the service no longer has and this run never received.
    Snapshot {
        node: String,
        items: Vec<FeedItem>,
        reason: SnapshotReason,
        lost: Vec<Lost>,
        at: DateTime<Utc>,
    },
    /// The snapshot that follows was made incrementally: of the service's items, `kept` came
    /// from the local cache and `fetched` were downloaded; `dropped` kept items the service
    /// no longer has were removed.
    Incremental {
        node: String,
        kept: usize,
        fetched: usize,
        dropped: usize,
    },
    /// A retrieve is paging through the service's items (RSM).
    ResyncProgress {
        node: String,
        received: usize,
        total: Option<u64>,
    },
    /// Items from `sender` with these sequence numbers never arrived. A resync follows.
    Gap {
        node: String,
        sender: String,
        from: u64,
        to: u64,
    },
    /// A retrieve the core started by itself (at a fresh session, after a gap) failed.
    ResyncFailed {
        node: String,
        error: RequestError,
    },
    Retracted {
        node: String,
        id: String,
    },
    Purged {
        node: String,
    },
    /// The node is gone; `redirect` is where its content went, if the owner said.
    Deleted {
        node: String,
        redirect: Option<String>,
    },
    /// A publish is on its way (`queued`: offline, it waits for the link). `req` is the
    /// request's, `None` for auto-publish.
    PublishSent {
        req: Option<RequestId>,
        node: String,
        id: String,
        queued: bool,
    },
    /// A temporary failure; the same item (same id) is sent again after `retry_in`.
    PublishRetrying {
        req: Option<RequestId>,
        node: String,
        id: String,
        error: RequestError,
        retry_in: Duration,
    },
    /// The service stored an auto-published item (a requested publish is answered by its
    /// reply).
    AutoPublished {
        node: String,
        id: String,
    },
    /// An auto-published item failed for good (a requested publish says so in its reply).
    AutoPublishFailed {
        node: String,
        id: String,
        error: RequestError,
    },
    AutoPublish {
        enabled: bool,
        interval: Duration,
        node: Option<String>,
    },
    /// The service asks this account, a node's owner, to approve a subscription (an
    /// `authorize` node). Approve or deny it with the owner's subscriptions request.
    AuthorizationRequest {
        node: String,
        jid: String,
        subid: Option<String>,
    },
    /// A subscription of this account that no run uses any more (its resource is gone, or
    /// it is for a node this run does not follow) was removed.
    StaleSubscriptionRemoved {
        node: String,
        jid: String,
    },
    /// The local store failed or was not used as it was (told once each time).
    Store(String),
    /// A stanza was ignored (forged sender, unknown node, stray reply); `total` so far.
    Dropped {
        total: u64,
        reason: String,
    },
}
