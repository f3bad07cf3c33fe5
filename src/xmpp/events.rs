//! The messages between the network core and its front ends: plain owned data named for the
//! domain. No XML and no library handles cross this boundary.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::feed::FeedItem;
use crate::feed::gap::Lost;
use crate::xmpp::error::{Op, RequestError};
use crate::xmpp::proto::SubState;

/// What a front end asks the network core to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Publish {
        node: String,
        text: String,
    },
    /// Retrieve all items of the node and replace the local view with them. A node whose
    /// subscription failed is subscribed again first.
    Resync {
        node: String,
    },
    /// Turn auto-publish on or off; `node` is where it publishes (the TUI's selected node).
    SetAutoPublish {
        enabled: bool,
        node: Option<String>,
    },
    /// Retract an item (with notification); needs rights on the service.
    Retract {
        node: String,
        id: String,
    },
    /// Delete every item of a node (owner only).
    Purge {
        node: String,
    },
    /// Create a node with an open publish model (needs owner rights on Prosody).
    CreateNode {
        node: String,
        max_items: u32,
    },
    /// Unsubscribe from every followed node (when online), then close the stream.
    Shutdown,
}

/// The connection as a front end should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
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
            Self::Connecting { attempt: 1 } => f.write_str("connecting"),
            Self::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            Self::Retrying {
                attempt,
                error,
                retry_in,
            } => write!(
                f,
                "attempt {attempt} failed: {error}; retrying in {} s",
                retry_in.as_secs().max(1)
            ),
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
}

/// What the network core tells its front ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Connection(ConnState),
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
    Deleted {
        node: String,
    },
    /// A publish is on its way (`queued`: offline, it waits for the link).
    PublishSent {
        node: String,
        id: String,
        queued: bool,
        auto: bool,
    },
    /// The service confirmed the publish.
    Published {
        node: String,
        id: String,
        auto: bool,
    },
    /// A temporary failure; the same item (same id) is sent again after `retry_in`.
    PublishRetrying {
        node: String,
        id: String,
        error: RequestError,
        retry_in: Duration,
    },
    /// The publish failed for good. `text` is what was to be published.
    PublishFailed {
        node: String,
        id: String,
        text: String,
        auto: bool,
        error: RequestError,
    },
    AutoPublish {
        enabled: bool,
        interval: Duration,
        node: Option<String>,
    },
    NodeCreated {
        node: String,
    },
    /// A retract or purge was accepted.
    Done {
        op: Op,
        node: String,
        id: Option<String>,
    },
    RequestFailed {
        op: Op,
        node: String,
        id: Option<String>,
        error: RequestError,
    },
    /// A subscription of this account that no run uses any more (its resource is gone, or
    /// it is for a node this run does not follow) was removed.
    StaleSubscriptionRemoved {
        node: String,
        jid: String,
    },
    /// A stanza was ignored (forged sender, unknown node, stray reply); `total` so far.
    Dropped {
        total: u64,
        reason: String,
    },
}
