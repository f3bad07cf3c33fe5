//! The domain: what a pubsub item is once it has been parsed, and the bounded per-node store
//! the front ends keep.
//!
//! Everything in here is plain owned data, already sanitised (see [`crate::sanitize`]): no XML,
//! no library handles. The network core produces these values; front ends only read them.

pub mod export;
pub mod filter;
pub mod gap;
pub mod payload;
pub mod render;
mod store;

pub use store::{ItemState, MarkerKind, NodeFeed, PushOutcome, Row, RowKind};

use serde::Serialize;

/// Our per-publisher sequence: a random id per publisher run plus a counter per node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Seq {
    /// Random id chosen when the publisher started.
    pub session: String,
    /// 1, 2, 3, … per node within that publisher session.
    pub n: u64,
    /// Earlier numbers of this session that the service never accepted (a publish it refused,
    /// or one that failed for good): they were never published, so they are not lost. Each
    /// item repeats the whole list (the most recent [`MAX_VOID_RANGES`] ranges).
    pub void: Vec<(u64, u64)>,
}

/// Ranges of never-published numbers an item carries at most.
pub const MAX_VOID_RANGES: usize = 32;

impl Seq {
    pub fn new(session: impl Into<String>, n: u64) -> Self {
        Self {
            session: session.into(),
            n,
            void: Vec::new(),
        }
    }

    /// Is `n` one of the numbers the publisher says were never published?
    pub fn is_void(&self, n: u64) -> bool {
        self.void.iter().any(|&(a, b)| a <= n && n <= b)
    }
}

/// Which shape the item had on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemFormat {
    /// Our own namespaced payload (with sequence numbers).
    Native,
    /// The seed-era Wokkel item: `sender`, `time`, `message` attributes on `<item/>`.
    Wokkel,
    /// An Atom `<entry/>` (title and summary).
    Atom,
    /// JSON carried in XML (XEP-0335): `<json xmlns='urn:xmpp:json:0'>`.
    Json,
    /// Anything else: a summary of its tree.
    Unknown,
}

/// One pubsub item, parsed and sanitised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedItem {
    pub node: String,
    /// The item id, if the service sent one (the Wokkel relay does not).
    pub id: Option<String>,
    /// Who the item says sent it (its payload's claim: any publisher can write any name).
    pub sender: Option<String>,
    /// Who the service says published it (the `publisher` attribute some services put on
    /// items: ejabberd, `serve`), a bare JID. Prosody sends none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// The timestamp as the item carried it (RFC 3339 for ours, `HH:MM:SS` for Wokkel).
    pub time: Option<String>,
    pub seq: Option<Seq>,
    /// The node-wide number our relay service (`serve`) gives each item, when it came with
    /// a live notification from such a service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_seq: Option<u64>,
    /// The text: whole, cleaned of control and bidi characters; newlines and tabs kept.
    pub text: String,
    pub format: ItemFormat,
    /// The `<item/>` element as received, as a bounded and sanitised tree.
    #[serde(skip)]
    pub tree: payload::Tree,
    /// When this program received it (set by the front end that shows it).
    #[serde(skip)]
    pub received: Option<chrono::DateTime<chrono::Utc>>,
}

impl FeedItem {
    /// The claimed sender contradicts the publisher the service names.
    pub fn is_forged(&self) -> bool {
        match (&self.publisher, &self.sender) {
            (Some(p), Some(s)) => s.split('/').next() != Some(p.as_str()),
            _ => false,
        }
    }

    /// The sender to show: the claimed one, unless the service names another publisher, then
    /// that one with the claim (`bob@x (claims alice@x)`).
    pub fn shown_sender(&self) -> String {
        let claimed = self.sender.as_deref().unwrap_or("?");
        match &self.publisher {
            Some(p) if self.is_forged() => format!("{p} (claims {claimed})"),
            Some(p) if self.sender.is_none() => p.clone(),
            _ => claimed.to_owned(),
        }
    }

    /// The item's own time, when it carries a full (RFC 3339) timestamp.
    pub fn timestamp(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The bytes this item holds, roughly: its strings, its tree and itself (for the feed's
    /// memory bound).
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.node.len()
            + self.id.as_ref().map_or(0, String::len)
            + self.sender.as_ref().map_or(0, String::len)
            + self.publisher.as_ref().map_or(0, String::len)
            + self.time.as_ref().map_or(0, String::len)
            + self
                .seq
                .as_ref()
                .map_or(0, |s| s.session.len() + s.void.len() * 16)
            + self.text.len()
            + self.tree.weight()
    }

    /// The values of its fields called `name`: elements and attributes of its payload, and
    /// for JSON (XEP-0335) the keys (or dotted paths, `tests.passed`) of the JSON.
    pub fn field_values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self.tree.field_values(name).collect();
        if self.format == ItemFormat::Json {
            v.extend(render::json_field_values(&self.tree, name));
        }
        v
    }

    /// The item as XML, from its tree.
    pub fn xml(&self) -> String {
        self.tree.to_xml()
    }

    /// The time to show in a narrow column, and whether it is when the item was received
    /// (`true`: the item carries no time of its own). `HH:MM:SS` in the given offset when the
    /// item carries an RFC 3339 timestamp, otherwise the first 8 characters of what it carried.
    pub fn display_time(&self, offset: chrono::FixedOffset) -> (String, bool) {
        let Some(raw) = self.time.as_deref() else {
            return match self.received {
                Some(t) => (
                    t.with_timezone(&offset).format("%H:%M:%S").to_string(),
                    true,
                ),
                None => ("--:--:--".to_owned(), false),
            };
        };
        let shown = match chrono::DateTime::parse_from_rfc3339(raw) {
            Ok(t) => t.with_timezone(&offset).format("%H:%M:%S").to_string(),
            Err(_) => raw.chars().take(8).collect(),
        };
        (shown, false)
    }
}
