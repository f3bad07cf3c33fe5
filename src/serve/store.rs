//! The service's storage: nodes with their sequence counters, items, and subscriptions, in one
//! SQLite database in WAL mode.
//!
//! Every change is one transaction that is committed before the service answers, so whatever
//! the service confirmed survives a `kill -9` of the process. `synchronous=NORMAL` trades the
//! last commits before a power loss (not a process crash) for a commit without an fsync.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, params};

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    name    TEXT PRIMARY KEY,
    head    INTEGER NOT NULL DEFAULT 0,  -- the last sequence number given out
    creator TEXT NOT NULL,               -- bare JID, the node's owner
    title   TEXT,                        -- pubsub#title, when given at creation
    created TEXT                         -- RFC 3339, when the node was created
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    node      TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    id        TEXT NOT NULL,
    publisher TEXT NOT NULL,             -- bare JID
    xml       TEXT NOT NULL,             -- the <item/> as published, with its id
    PRIMARY KEY (node, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS items_by_id ON items(node, id);
CREATE TABLE IF NOT EXISTS subscriptions (
    node   TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    jid    TEXT NOT NULL,
    subid  TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,   -- 1: the JID was unreachable; no notifications
    PRIMARY KEY (node, jid)
) WITHOUT ROWID;
";

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub seq: u64,
    pub id: String,
    pub publisher: String,
    pub xml: String,
}

/// A node's name and title, as listed.
pub type NodeEntry = (String, Option<String>);

/// A node's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The last sequence number given out.
    pub head: u64,
    /// The bare JID that created it.
    pub creator: String,
    pub title: Option<String>,
    pub created: Option<String>,
}

/// One stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSub {
    pub node: String,
    pub jid: String,
    pub subid: String,
    pub paused: bool,
}

/// Which items of a node to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    All,
    /// The newest `n`, oldest first.
    Newest(u64),
    /// These ids, in the order asked (unknown ones left out).
    Ids(Vec<String>),
    /// At most `max` items after the item `after` (from the start without it), plus the
    /// index of the first one.
    Page {
        max: u64,
        after: Option<String>,
    },
}

pub struct Store {
    db: Connection,
}

/// Holds the data directory's lock until dropped (the lock goes with the process, too).
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code, reason = "held for its lock")] std::fs::File);

/// Take the exclusive lock on `dir/serve.lock`, or say that another service holds it.
pub fn lock_dir(dir: &Path) -> anyhow::Result<DirLock> {
    crate::config::create_private_dir(dir)?;
    let path = dir.join("serve.lock");
    let file = crate::config::open_private(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another pubsub-tui serve is running on the data directory {} (it holds {}); \
             stop it first, or give this one another --data-dir",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Open (or create) the database `serve.sqlite3` in `dir` (created private: 0700), as a
    /// file only its owner can read (0600; SQLite gives its WAL and shared-memory files the
    /// same mode).
    pub fn open_dir(dir: &Path) -> anyhow::Result<Self> {
        crate::config::create_private_dir(dir)?;
        let path = dir.join("serve.sqlite3");
        crate::config::open_private(&path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        let db = Connection::open(&path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        Self::init(db).with_context(|| format!("database {}", path.display()))
    }

    /// A database in memory (tests).
    pub fn open_in_memory() -> anyhow::Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> anyhow::Result<Self> {
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        // In memory the journal mode stays "memory"; on disk it becomes "wal".
        let _mode: String = db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        db.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "it was written by a newer pubsub-tui (schema {version}; this one knows {SCHEMA_VERSION})"
            );
        }
        if version == 1 {
            // Version 1 had no titles or creation times.
            db.execute_batch(
                "ALTER TABLE nodes ADD COLUMN title TEXT; ALTER TABLE nodes ADD COLUMN created TEXT;",
            )?;
        }
        db.execute_batch(SCHEMA)?;
        db.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))?;
        Ok(Self { db })
    }

    /// The node's row, if it exists.
    pub fn node(&self, name: &str) -> anyhow::Result<Option<NodeRow>> {
        Ok(self
            .db
            .prepare_cached("SELECT head, creator, title, created FROM nodes WHERE name = ?1")?
            .query_row([name], |r| {
                Ok(NodeRow {
                    head: to_u64(r.get(0)?),
                    creator: r.get(1)?,
                    title: r.get(2)?,
                    created: r.get(3)?,
                })
            })
            .optional()?)
    }

    pub fn node_names(&self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT name FROM nodes ORDER BY name")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    /// At most `max` nodes (name, title) after `after` in name order, and how many there are.
    pub fn node_page(
        &self,
        after: Option<&str>,
        max: u64,
    ) -> anyhow::Result<(Vec<NodeEntry>, u64)> {
        let mut stmt = self.db.prepare_cached(
            "SELECT name, title FROM nodes WHERE name > ?1 ORDER BY name LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after.unwrap_or(""), to_i64(max)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok((rows.collect::<Result<_, _>>()?, self.node_count()?))
    }

    pub fn node_count(&self) -> anyhow::Result<u64> {
        Ok(to_u64(self.db.query_row(
            "SELECT count(*) FROM nodes",
            [],
            |r| r.get(0),
        )?))
    }

    /// Create the node; false if it existed.
    pub fn create_node(
        &self,
        name: &str,
        creator: &str,
        title: Option<&str>,
        created: &str,
    ) -> anyhow::Result<bool> {
        let n = self
            .db
            .prepare_cached(
                "INSERT OR IGNORE INTO nodes (name, creator, title, created) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![name, creator, title, created])?;
        Ok(n == 1)
    }

    /// Store an item under the next sequence number of its node, replacing an item with the
    /// same id, and drop the oldest beyond `max_items`. Returns the item's sequence number.
    pub fn publish(
        &mut self,
        node: &str,
        id: &str,
        publisher: &str,
        xml: &str,
        max_items: u64,
    ) -> anyhow::Result<u64> {
        let tx = self.db.transaction()?;
        let head: i64 = tx
            .prepare_cached("UPDATE nodes SET head = head + 1 WHERE name = ?1 RETURNING head")?
            .query_row([node], |r| r.get(0))?;
        tx.prepare_cached("DELETE FROM items WHERE node = ?1 AND id = ?2")?
            .execute([node, id])?;
        tx.prepare_cached(
            "INSERT INTO items (node, seq, id, publisher, xml) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![node, head, id, publisher, xml])?;
        tx.prepare_cached(
            "DELETE FROM items WHERE node = ?1 AND seq <= (
                 SELECT seq FROM items WHERE node = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![node, to_i64(max_items)])?;
        tx.commit()?;
        Ok(to_u64(head))
    }

    /// Items of a node, oldest first.
    pub fn items(&self, node: &str, query: &Query) -> anyhow::Result<Vec<StoredItem>> {
        const COLS: &str = "SELECT seq, id, publisher, xml FROM items";
        let row = |r: &rusqlite::Row<'_>| {
            Ok(StoredItem {
                seq: to_u64(r.get(0)?),
                id: r.get(1)?,
                publisher: r.get(2)?,
                xml: r.get(3)?,
            })
        };
        let items = match query {
            Query::All => self
                .db
                .prepare_cached(&format!("{COLS} WHERE node = ?1 ORDER BY seq"))?
                .query_map([node], row)?
                .collect::<Result<Vec<_>, _>>()?,
            Query::Newest(n) => {
                let mut v = self
                    .db
                    .prepare_cached(&format!(
                        "{COLS} WHERE node = ?1 ORDER BY seq DESC LIMIT ?2"
                    ))?
                    .query_map(params![node, to_i64(*n)], row)?
                    .collect::<Result<Vec<_>, _>>()?;
                v.reverse();
                v
            }
            Query::Ids(ids) => {
                let mut stmt = self
                    .db
                    .prepare_cached(&format!("{COLS} WHERE node = ?1 AND id = ?2"))?;
                let mut v = Vec::new();
                for id in ids {
                    if let Some(item) = stmt.query_row([node, id], row).optional()? {
                        v.push(item);
                    }
                }
                v
            }
            Query::Page { max, after } => {
                let from = match after {
                    Some(id) => self
                        .db
                        .prepare_cached("SELECT seq FROM items WHERE node = ?1 AND id = ?2")?
                        .query_row([node, id], |r| r.get::<_, i64>(0))
                        .optional()?
                        .ok_or_else(|| anyhow::Error::new(NoSuchItem))?,
                    None => 0,
                };
                self.db
                    .prepare_cached(&format!(
                        "{COLS} WHERE node = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                    ))?
                    .query_map(params![node, from, to_i64(*max)], row)?
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(items)
    }

    /// The ids of a node's items, oldest first.
    pub fn item_ids(&self, node: &str) -> anyhow::Result<Vec<String>> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT id FROM items WHERE node = ?1 ORDER BY seq")?;
        let ids = stmt.query_map([node], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// How many items come before the item with this sequence number (its RSM index).
    pub fn index_of(&self, node: &str, seq: u64) -> anyhow::Result<u64> {
        Ok(to_u64(
            self.db
                .prepare_cached("SELECT count(*) FROM items WHERE node = ?1 AND seq < ?2")?
                .query_row(params![node, to_i64(seq)], |r| r.get(0))?,
        ))
    }

    pub fn item_count(&self, node: &str) -> anyhow::Result<u64> {
        Ok(to_u64(
            self.db
                .prepare_cached("SELECT count(*) FROM items WHERE node = ?1")?
                .query_row([node], |r| r.get(0))?,
        ))
    }

    /// The publisher of an item, if the item exists.
    pub fn item_publisher(&self, node: &str, id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .db
            .prepare_cached("SELECT publisher FROM items WHERE node = ?1 AND id = ?2")?
            .query_row([node, id], |r| r.get(0))
            .optional()?)
    }

    pub fn retract(&self, node: &str, id: &str) -> anyhow::Result<bool> {
        Ok(self
            .db
            .prepare_cached("DELETE FROM items WHERE node = ?1 AND id = ?2")?
            .execute([node, id])?
            == 1)
    }

    pub fn purge(&self, node: &str) -> anyhow::Result<u64> {
        Ok(self
            .db
            .prepare_cached("DELETE FROM items WHERE node = ?1")?
            .execute([node])? as u64)
    }

    /// Subscribe (or re-subscribe, which un-pauses); returns the subscription id.
    pub fn subscribe(&self, node: &str, jid: &str, new_subid: &str) -> anyhow::Result<String> {
        self.db
            .prepare_cached(
                "INSERT INTO subscriptions (node, jid, subid) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node, jid) DO UPDATE SET paused = 0",
            )?
            .execute([node, jid, new_subid])?;
        Ok(self
            .db
            .prepare_cached("SELECT subid FROM subscriptions WHERE node = ?1 AND jid = ?2")?
            .query_row([node, jid], |r| r.get(0))?)
    }

    pub fn unsubscribe(&self, node: &str, jid: &str) -> anyhow::Result<bool> {
        Ok(self
            .db
            .prepare_cached("DELETE FROM subscriptions WHERE node = ?1 AND jid = ?2")?
            .execute([node, jid])?
            == 1)
    }

    /// Pause or resume every subscription of this JID.
    pub fn set_paused(&self, jid: &str, paused: bool) -> anyhow::Result<()> {
        self.db
            .prepare_cached("UPDATE subscriptions SET paused = ?2 WHERE jid = ?1")?
            .execute(params![jid, paused])?;
        Ok(())
    }

    pub fn subscriptions(&self) -> anyhow::Result<Vec<StoredSub>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT node, jid, subid, paused FROM subscriptions ORDER BY node, jid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredSub {
                node: r.get(0)?,
                jid: r.get(1)?,
                subid: r.get(2)?,
                paused: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// An RSM `after` that names no item of the node.
#[derive(Debug, thiserror::Error)]
#[error("no such item")]
pub struct NoSuchItem;

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_node() -> Store {
        let s = Store::open_in_memory().expect("store");
        assert!(
            s.create_node("n", "alice@x", None, "2026-11-29T00:00:00Z")
                .expect("create")
        );
        assert!(
            !s.create_node("n", "bob@x", None, "x")
                .expect("create again")
        );
        s
    }

    #[test]
    fn sequence_replace_and_retention() {
        let mut s = store_with_node();
        for i in 1..=5 {
            let seq = s
                .publish("n", &format!("i{i}"), "alice@x", "<item/>", 3)
                .expect("publish");
            assert_eq!(seq, i);
        }
        let items = s.items("n", &Query::All).expect("items");
        assert_eq!(s.item_count("n").expect("count"), 3);
        assert_eq!(
            items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["i3", "i4", "i5"]
        );
        // Re-publishing an id replaces the item and takes a new number.
        assert_eq!(s.publish("n", "i4", "alice@x", "<x/>", 3).expect("p"), 6);
        let items = s.items("n", &Query::All).expect("items");
        assert_eq!(
            items.iter().map(|i| i.seq).collect::<Vec<_>>(),
            [3, 5, 6],
            "{items:?}"
        );
        assert_eq!(s.node("n").expect("node").map(|n| n.head), Some(6));
        let newest = s.items("n", &Query::Newest(2)).expect("newest");
        assert_eq!(newest.iter().map(|i| i.seq).collect::<Vec<_>>(), [5, 6]);
        let page = s
            .items(
                "n",
                &Query::Page {
                    max: 1,
                    after: Some("i3".into()),
                },
            )
            .expect("page");
        assert_eq!(page[0].id, "i5");
        assert_eq!(s.index_of("n", 5).expect("index"), 1);
        assert!(
            s.items(
                "n",
                &Query::Page {
                    max: 1,
                    after: Some("gone".into())
                }
            )
            .is_err()
        );
        assert!(s.retract("n", "i5").expect("retract"));
        assert!(!s.retract("n", "i5").expect("retract again"));
        assert_eq!(s.purge("n").expect("purge"), 2);
        // The counter never goes back.
        assert_eq!(s.publish("n", "z", "alice@x", "<item/>", 3).expect("p"), 7);
    }

    #[test]
    fn nodes_page_in_name_order_with_titles() {
        let s = store_with_node();
        for (n, t) in [("b", Some("Bee")), ("a", None), ("c", Some("Sea"))] {
            assert!(
                s.create_node(n, "x@y", t, "2026-11-29T00:00:00Z")
                    .expect("create")
            );
        }
        let (page, total) = s.node_page(None, 2).expect("page");
        assert_eq!(total, 4);
        assert_eq!(
            page,
            [
                ("a".to_owned(), None),
                ("b".to_owned(), Some("Bee".to_owned()))
            ]
        );
        let (page, _) = s.node_page(Some("b"), 10).expect("page");
        assert_eq!(
            page.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["c", "n"]
        );
    }

    #[test]
    fn a_version_1_database_is_upgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Connection::open(dir.path().join("serve.sqlite3")).expect("open");
            db.execute_batch(
                "CREATE TABLE nodes (name TEXT PRIMARY KEY, head INTEGER NOT NULL DEFAULT 0, \
                 creator TEXT NOT NULL) WITHOUT ROWID; \
                 INSERT INTO nodes (name, creator) VALUES ('old', 'a@x'); PRAGMA user_version=1;",
            )
            .expect("a v1 database");
        }
        let s = Store::open_dir(dir.path()).expect("upgraded");
        let row = s.node("old").expect("read").expect("kept");
        assert_eq!((row.creator.as_str(), row.title), ("a@x", None));
        assert!(
            s.create_node("new", "b@x", Some("T"), "now")
                .expect("create")
        );
    }

    #[test]
    fn subscriptions_pause_and_resume() {
        let s = store_with_node();
        let id = s.subscribe("n", "bob@x/a", "s1").expect("sub");
        assert_eq!(id, "s1");
        s.set_paused("bob@x/a", true).expect("pause");
        assert!(s.subscriptions().expect("subs")[0].paused);
        // Subscribing again keeps the id and resumes.
        assert_eq!(s.subscribe("n", "bob@x/a", "s2").expect("sub"), "s1");
        assert!(!s.subscriptions().expect("subs")[0].paused);
        assert!(s.unsubscribe("n", "bob@x/a").expect("unsub"));
        assert!(s.subscriptions().expect("subs").is_empty());
    }
}
