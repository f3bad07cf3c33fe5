//! The service's storage: nodes with their sequence counters, items, and subscriptions, in one
//! SQLite database in WAL mode.
//!
//! Every change is one transaction that is committed before the service answers, so whatever
//! the service confirmed survives a `kill -9` of the process. `synchronous=NORMAL` trades the
//! last commits before a power loss (not a process crash) for a commit without an fsync.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, params};

const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    name    TEXT PRIMARY KEY,
    head    INTEGER NOT NULL DEFAULT 0,  -- the last sequence number given out
    creator TEXT NOT NULL,               -- bare JID, the node's owner
    title   TEXT,                        -- pubsub#title
    created TEXT,                        -- RFC 3339, when the node was created
    config  TEXT                         -- the rest of its configuration (JSON, NodeConfig)
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
CREATE TABLE IF NOT EXISTS affiliations (
    node        TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
    jid         TEXT NOT NULL,           -- bare JID
    affiliation TEXT NOT NULL,           -- owner, publisher, publish-only, member, outcast
    PRIMARY KEY (node, jid)
) WITHOUT ROWID;
";

/// Who may subscribe and retrieve (`pubsub#access_model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessModel {
    /// Anyone but outcasts.
    #[default]
    Open,
    /// Members, publishers and owners only.
    Whitelist,
}

/// Who may publish (`pubsub#publish_model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishModel {
    /// Anyone but outcasts.
    #[default]
    Open,
    /// Owners, publishers and publish-only.
    Publishers,
    /// Those, and anyone subscribed.
    Subscribers,
}

impl AccessModel {
    pub const ALL: [Self; 2] = [Self::Open, Self::Whitelist];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Whitelist => "whitelist",
        }
    }
}

impl PublishModel {
    pub const ALL: [Self; 3] = [Self::Open, Self::Publishers, Self::Subscribers];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Publishers => "publishers",
            Self::Subscribers => "subscribers",
        }
    }
}

/// A node's configuration besides its title.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    pub description: Option<String>,
    /// Items kept; `None`: the service's limit.
    pub max_items: Option<u64>,
    pub access_model: AccessModel,
    pub publish_model: PublishModel,
    /// Tell subscribers when an item is retracted.
    pub notify_retract: bool,
    /// Notifications carry the item's payload (else only its id).
    pub deliver_payloads: bool,
    /// The payload's namespace (`pubsub#type`).
    pub payload_type: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            description: None,
            max_items: None,
            access_model: AccessModel::Open,
            publish_model: PublishModel::Open,
            notify_retract: true,
            deliver_payloads: true,
            payload_type: None,
        }
    }
}

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
    pub config: NodeConfig,
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
        if (1..=2).contains(&version) {
            // Version 2 had no configuration and no affiliations: each creator owns its node.
            db.execute_batch("ALTER TABLE nodes ADD COLUMN config TEXT;")?;
            db.execute_batch(SCHEMA)?;
            db.execute_batch(
                "INSERT OR IGNORE INTO affiliations (node, jid, affiliation)
                 SELECT name, creator, 'owner' FROM nodes;",
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
            .prepare_cached(
                "SELECT head, creator, title, created, config FROM nodes WHERE name = ?1",
            )?
            .query_row([name], |r| {
                let config: Option<String> = r.get(4)?;
                Ok(NodeRow {
                    head: to_u64(r.get(0)?),
                    creator: r.get(1)?,
                    title: r.get(2)?,
                    created: r.get(3)?,
                    // Written by us; a value we cannot read falls back to the defaults.
                    config: config
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .unwrap_or_default(),
                })
            })
            .optional()?)
    }

    /// Change a node's title and configuration, and drop its oldest items beyond `keep`, in
    /// one transaction.
    pub fn configure(
        &mut self,
        node: &str,
        title: Option<&str>,
        config: &NodeConfig,
        keep: u64,
    ) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        tx.prepare_cached("UPDATE nodes SET title = ?2, config = ?3 WHERE name = ?1")?
            .execute(params![node, title, serde_json::to_string(config)?])?;
        trim(&tx, node, keep)?;
        tx.commit()?;
        Ok(())
    }

    /// Delete a node with its items, subscriptions and affiliations.
    pub fn delete_node(&self, node: &str) -> anyhow::Result<bool> {
        Ok(self
            .db
            .prepare_cached("DELETE FROM nodes WHERE name = ?1")?
            .execute([node])?
            == 1)
    }

    /// A bare JID's affiliation with a node (`none` when it has no entry).
    pub fn affiliation(&self, node: &str, jid: &str) -> anyhow::Result<String> {
        Ok(self
            .db
            .prepare_cached("SELECT affiliation FROM affiliations WHERE node = ?1 AND jid = ?2")?
            .query_row([node, jid], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| "none".to_owned()))
    }

    /// A node's affiliations (bare JID, affiliation), by JID.
    pub fn affiliations(&self, node: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT jid, affiliation FROM affiliations WHERE node = ?1 ORDER BY jid",
        )?;
        let rows = stmt.query_map([node], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A bare JID's affiliations (node, affiliation), by node.
    pub fn affiliations_of(&self, jid: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT node, affiliation FROM affiliations WHERE jid = ?1 ORDER BY node",
        )?;
        let rows = stmt.query_map([jid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Set affiliations (bare JID, affiliation; `none` removes the entry), and remove every
    /// subscription of a JID made an outcast (any resource), in one transaction.
    pub fn set_affiliations(
        &mut self,
        node: &str,
        changes: &[(String, String)],
    ) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        for (jid, affiliation) in changes {
            if affiliation == "none" {
                tx.prepare_cached("DELETE FROM affiliations WHERE node = ?1 AND jid = ?2")?
                    .execute([node, jid])?;
            } else {
                tx.prepare_cached(
                    "INSERT INTO affiliations (node, jid, affiliation) VALUES (?1, ?2, ?3)
                     ON CONFLICT (node, jid) DO UPDATE SET affiliation = ?3",
                )?
                .execute([node, jid, affiliation])?;
            }
            if affiliation == "outcast" {
                tx.prepare_cached(
                    "DELETE FROM subscriptions WHERE node = ?1
                     AND (jid = ?2 OR substr(jid, 1, length(?2) + 1) = ?2 || '/')",
                )?
                .execute([node, jid])?;
            }
        }
        tx.commit()?;
        Ok(())
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

    /// Create the node, its creator its owner; false if it existed.
    pub fn create_node(
        &mut self,
        name: &str,
        creator: &str,
        title: Option<&str>,
        config: &NodeConfig,
        created: &str,
    ) -> anyhow::Result<bool> {
        let tx = self.db.transaction()?;
        let n = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO nodes (name, creator, title, created, config)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                name,
                creator,
                title,
                created,
                serde_json::to_string(config)?
            ])?;
        if n == 1 {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO affiliations (node, jid, affiliation) VALUES (?1, ?2, 'owner')",
            )?
            .execute([name, creator])?;
        }
        tx.commit()?;
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
        trim(&tx, node, max_items)?;
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

/// Drop a node's oldest items beyond `keep`.
fn trim(db: &Connection, node: &str, keep: u64) -> anyhow::Result<()> {
    db.prepare_cached(
        "DELETE FROM items WHERE node = ?1 AND seq <= (
             SELECT seq FROM items WHERE node = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![node, to_i64(keep)])?;
    Ok(())
}

/// An RSM `after` that names no item of the node.
#[derive(Debug, thiserror::Error)]
#[error("no such item")]
pub struct NoSuchItem;

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_node() -> Store {
        let mut s = Store::open_in_memory().expect("store");
        let config = NodeConfig::default();
        assert!(
            s.create_node("n", "alice@x", None, &config, "2026-11-29T00:00:00Z")
                .expect("create")
        );
        assert!(
            !s.create_node("n", "bob@x", None, &config, "x")
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
        let mut s = store_with_node();
        for (n, t) in [("b", Some("Bee")), ("a", None), ("c", Some("Sea"))] {
            assert!(
                s.create_node(n, "x@y", t, &NodeConfig::default(), "2026-11-29T00:00:00Z")
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
        let mut s = Store::open_dir(dir.path()).expect("upgraded");
        let row = s.node("old").expect("read").expect("kept");
        assert_eq!((row.creator.as_str(), row.title), ("a@x", None));
        assert_eq!(row.config, NodeConfig::default());
        assert_eq!(
            s.affiliation("old", "a@x").expect("aff"),
            "owner",
            "the creator owns it"
        );
        assert!(
            s.create_node("new", "b@x", Some("T"), &NodeConfig::default(), "now")
                .expect("create")
        );
    }

    #[test]
    fn configuration_affiliations_and_delete() {
        let mut s = store_with_node();
        assert_eq!(s.affiliation("n", "alice@x").expect("aff"), "owner");
        assert_eq!(s.affiliation("n", "bob@x").expect("aff"), "none");
        for i in 1..=5 {
            s.publish("n", &format!("i{i}"), "alice@x", "<item/>", 100)
                .expect("publish");
        }
        let config = NodeConfig {
            max_items: Some(2),
            access_model: AccessModel::Whitelist,
            notify_retract: false,
            ..NodeConfig::default()
        };
        s.configure("n", Some("Title"), &config, 2)
            .expect("configure");
        let row = s.node("n").expect("read").expect("node");
        assert_eq!(row.config, config);
        assert_eq!(row.title.as_deref(), Some("Title"));
        assert_eq!(
            s.item_ids("n").expect("ids"),
            ["i4", "i5"],
            "trimmed at once"
        );
        // Outcasts lose their subscriptions (every resource, and no one else's).
        s.subscribe("n", "bob@x/a", "s1").expect("sub");
        s.subscribe("n", "bob@x", "s2").expect("sub");
        s.subscribe("n", "bob@xx/a", "s3").expect("sub");
        s.set_affiliations(
            "n",
            &[
                ("bob@x".into(), "outcast".into()),
                ("carol@x".into(), "member".into()),
            ],
        )
        .expect("set");
        let subs: Vec<String> = s
            .subscriptions()
            .expect("subs")
            .into_iter()
            .map(|s| s.jid)
            .collect();
        assert_eq!(subs, ["bob@xx/a"]);
        assert_eq!(
            s.affiliations("n").expect("affs"),
            [
                ("alice@x".to_owned(), "owner".to_owned()),
                ("bob@x".to_owned(), "outcast".to_owned()),
                ("carol@x".to_owned(), "member".to_owned())
            ]
        );
        s.set_affiliations("n", &[("carol@x".into(), "none".into())])
            .expect("remove");
        assert_eq!(s.affiliation("n", "carol@x").expect("aff"), "none");
        assert_eq!(
            s.affiliations_of("alice@x").expect("of"),
            [("n".to_owned(), "owner".to_owned())]
        );
        assert!(s.delete_node("n").expect("delete"));
        assert!(s.node("n").expect("read").is_none());
        assert!(s.affiliations("n").expect("affs").is_empty());
        assert!(s.subscriptions().expect("subs").is_empty());
        assert!(!s.delete_node("n").expect("delete again"));
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
