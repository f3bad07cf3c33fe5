//! The domain: what a pubsub item is once it has been parsed, and the bounded per-node store
//! the front ends keep.
//!
//! Everything in here is plain owned data, already sanitised (see [`crate::sanitize`]): no XML,
//! no library handles. The network core produces these values; front ends only read them.

pub mod export;
pub mod filter;
pub mod gap;
mod item;
pub mod payload;
pub mod render;
mod store;

pub use item::{FeedItem, ItemParts};
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

/// A [`Seq`] borrowed from where it is kept (an item keeps its session in its tree's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRef<'a> {
    pub session: &'a str,
    pub n: u64,
    pub void: &'a [(u64, u64)],
}

impl SeqRef<'_> {
    /// Is `n` one of the numbers the publisher says were never published?
    pub fn is_void(&self, n: u64) -> bool {
        self.void.iter().any(|&(a, b)| a <= n && n <= b)
    }

    pub fn to_seq(&self) -> Seq {
        Seq {
            session: self.session.to_owned(),
            n: self.n,
            void: self.void.to_vec(),
        }
    }
}

impl<'a> From<&'a Seq> for SeqRef<'a> {
    fn from(s: &'a Seq) -> Self {
        Self {
            session: &s.session,
            n: s.n,
            void: &s.void,
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
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
    #[default]
    Unknown,
}

impl ItemFormat {
    /// The name JSON output gives it (as serde names it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Wokkel => "wokkel",
            Self::Atom => "atom",
            Self::Json => "json",
            Self::Unknown => "unknown",
        }
    }
}
