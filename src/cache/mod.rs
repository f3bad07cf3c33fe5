//! What a client keeps between runs, per account: the items of the nodes it follows (so a
//! start shows them at once and a resync fetches only what changed), its publisher sessions
//! and their numbers (so consecutive runs continue one sequence and subscribers can tell what
//! was lost between them), and the items it has not yet been able to publish (the outbox).
//!
//! The network core sees all of it through [`Persist`], which never fails: [`Volatile`] keeps
//! numbering in memory and nothing else (`--no-cache`, the tests of the state machine), and
//! [`db::Db`] keeps everything in one SQLite database per account. When the database fails
//! (a full disk, a damaged file), it says so once and goes on as [`Volatile`] with a fresh
//! session, so no number is ever given out twice.

pub mod db;

use std::collections::{HashMap, HashSet};

use crate::feed::gap::Ranges;
use crate::feed::{FeedItem, MAX_VOID_RANGES};
use crate::xmpp::proto::OutgoingItem;

/// Where a client's store is, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub path: std::path::PathBuf,
    pub limits: db::Limits,
}

/// The store a session uses: the database of `cfg` (none: in memory only, with `session` as
/// the publisher session), and anything to tell the user about it.
pub fn open(
    cfg: Option<&CacheConfig>,
    service: &str,
    session: &str,
) -> (Box<dyn Persist>, Option<String>) {
    let Some(cfg) = cfg else {
        return (Box::new(Volatile::new(session)), None);
    };
    let opened = db::Db::open(&cfg.path, service, cfg.limits);
    match opened.db {
        Some(db) => (Box::new(db), opened.notice),
        None => (Box::new(Volatile::new(session)), opened.notice),
    }
}

/// The numbers of one publisher session accounted for on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounted {
    pub sender: String,
    pub session: String,
    pub ranges: Vec<(u64, u64)>,
}

/// A number for an item of ours: the publisher session, the number, and the earlier numbers
/// of the session that were never published (the item declares them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    pub session: String,
    pub n: u64,
    pub void: Vec<(u64, u64)>,
}

/// What the client keeps between runs. No method fails: a store that cannot write says so
/// through [`Persist::take_problem`] and carries on without keeping.
pub trait Persist: Send + std::fmt::Debug {
    /// The next number for an item of ours on `node`. It is written down before it is given
    /// out: a crash after this never gives it out again.
    fn number(&mut self, node: &str) -> Number;
    /// A number that was never published (the service refused it, or the user discarded it).
    fn void(&mut self, node: &str, session: &str, n: u64);
    /// Keep an item until the service confirms it (called before it is sent).
    fn outbox_put(&mut self, item: &OutgoingItem);
    /// The service confirmed the item, or it failed for good.
    fn outbox_remove(&mut self, item: &OutgoingItem);
    /// Items an earlier run left unsent, to send now: those of the sessions this process
    /// holds or can claim (of `node` only, when given). The sessions claimed become this
    /// process's, so two processes never send the same leftovers.
    fn leftovers(&mut self, node: Option<&str>) -> Vec<OutgoingItem>;
    /// Drop this process's unsent items (their numbers become void): how many there were.
    fn discard_outbox(&mut self) -> usize;
    /// Whether items are kept (an incremental resync needs them).
    fn keeps_items(&self) -> bool;
    /// Items kept per node at most (a node with more is resynced in full: the cache cannot
    /// hold its window).
    fn item_limit(&self) -> usize;
    /// The kept items of `node`, oldest first.
    fn cached(&mut self, node: &str) -> Vec<FeedItem>;
    /// The ids of the kept items of `node`.
    fn cached_ids(&mut self, node: &str) -> HashSet<String>;
    /// A live item arrived (kept unless it has no id or was cut by the tree's bounds).
    fn add(&mut self, item: &FeedItem);
    fn retract(&mut self, node: &str, id: &str);
    /// The node was purged or deleted: nothing of it is kept.
    fn clear(&mut self, node: &str);
    /// The service's whole set of items of `node` (after a resync): what is kept becomes it.
    /// `fetched`: every item was downloaded (a full retrieve), so kept ones are rewritten
    /// where they changed; otherwise (incremental) only those not kept yet are written.
    fn replace(&mut self, node: &str, items: &[FeedItem], fetched: bool);
    /// The sequence numbers of `node` this account has accounted for (received, or reported
    /// lost), per (bare sender, publisher session), as kept by earlier runs.
    fn accounted(&mut self, node: &str) -> Vec<Accounted>;
    /// Keep what is accounted for of `node` (replacing what was kept).
    fn set_accounted(&mut self, node: &str, accounted: &[Accounted]);
    /// Write what is buffered (called on the core's timer).
    fn flush(&mut self);
    /// What went wrong since the last call, to tell the user once.
    fn take_problem(&mut self) -> Option<String>;
}

/// Numbers in memory for one run, nothing else kept: each run is a new publisher session.
#[derive(Debug)]
pub struct Volatile {
    session: String,
    seq: HashMap<String, u64>,
    void: HashMap<String, Ranges>,
    problem: Option<String>,
}

impl Volatile {
    pub fn new(session: impl Into<String>) -> Self {
        Self {
            session: session.into(),
            seq: HashMap::new(),
            void: HashMap::new(),
            problem: None,
        }
    }

    /// A fresh session after a store failed: `problem` is said once.
    pub fn after_failure(problem: String) -> Self {
        Self {
            problem: Some(problem),
            ..Self::new(crate::config::new_publisher_session())
        }
    }
}

/// The last [`MAX_VOID_RANGES`] of `ranges`.
pub fn recent_void(ranges: &Ranges) -> Vec<(u64, u64)> {
    let r = ranges.as_slice();
    r[r.len().saturating_sub(MAX_VOID_RANGES)..].to_vec()
}

impl Persist for Volatile {
    fn number(&mut self, node: &str) -> Number {
        let n = self.seq.entry(node.to_owned()).or_insert(0);
        *n += 1;
        Number {
            session: self.session.clone(),
            n: *n,
            void: self.void.get(node).map(recent_void).unwrap_or_default(),
        }
    }

    fn void(&mut self, node: &str, session: &str, n: u64) {
        if session == self.session {
            self.void.entry(node.to_owned()).or_default().insert(n, n);
        }
    }

    fn outbox_put(&mut self, _: &OutgoingItem) {}
    fn outbox_remove(&mut self, _: &OutgoingItem) {}
    fn leftovers(&mut self, _: Option<&str>) -> Vec<OutgoingItem> {
        Vec::new()
    }
    fn discard_outbox(&mut self) -> usize {
        0
    }
    fn keeps_items(&self) -> bool {
        false
    }
    fn item_limit(&self) -> usize {
        usize::MAX
    }
    fn cached(&mut self, _: &str) -> Vec<FeedItem> {
        Vec::new()
    }
    fn cached_ids(&mut self, _: &str) -> HashSet<String> {
        HashSet::new()
    }
    fn add(&mut self, _: &FeedItem) {}
    fn retract(&mut self, _: &str, _: &str) {}
    fn clear(&mut self, _: &str) {}
    fn replace(&mut self, _: &str, _: &[FeedItem], _: bool) {}
    fn accounted(&mut self, _: &str) -> Vec<Accounted> {
        Vec::new()
    }
    fn set_accounted(&mut self, _: &str, _: &[Accounted]) {}
    fn flush(&mut self) {}
    fn take_problem(&mut self) -> Option<String> {
        self.problem.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_numbers_per_node_and_declares_void_ones() {
        let mut v = Volatile::new("s");
        assert_eq!(v.number("a").n, 1);
        assert_eq!(v.number("a").n, 2);
        assert_eq!(v.number("b").n, 1);
        v.void("a", "s", 2);
        v.void("a", "other", 1);
        let third = v.number("a");
        assert_eq!((third.n, third.void), (3, vec![(2, 2)]));
        assert!(v.take_problem().is_none());
        let mut failed = Volatile::after_failure("disk full".into());
        assert_ne!(failed.number("a").session, "s");
        assert_eq!(failed.take_problem().as_deref(), Some("disk full"));
        assert_eq!(failed.take_problem(), None, "said once");
    }
}
