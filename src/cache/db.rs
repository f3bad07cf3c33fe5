//! The client's store: one SQLite database per account, in WAL mode, shared by every process
//! of the account (SQLite's locks order their writes; a busy database is waited for).
//!
//! - `items`: the items of the followed nodes, as the feed holds them (the sanitised
//!   `<item/>`), per service and node, in the order received, bounded per node and in total
//!   bytes (the `size` row, kept exact by every transaction that writes items, whichever
//!   process: [`ItemWrites`]).
//! - `publishers`: our publisher sessions per service and node, each with its last number and
//!   the numbers never published.
//! - `outbox`: our items not yet confirmed by the service.
//!
//! **Concurrent publishers.** Each process claims its own session per node: a session is held
//! through an advisory lock on a small file (`flock`, released by the kernel when the process
//! ends, even on `kill -9`). A run takes over a session no running process holds (the one
//! with unsent items first, then the last used), so consecutive runs continue one sequence;
//! a run that finds every session held starts a new one. Why not one counter under a lock:
//! two processes taking numbers from one sequence interleave them, and each item that
//! overtakes another in flight would look like a gap to every subscriber (and set off a
//! resync). With a session each, every sequence stays in order.
//!
//! Numbers and the outbox are committed before the item is sent; live items are buffered and
//! written in one transaction on the core's timer (or every [`BATCH`] items).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension as _, params};

use super::{Accounted, Number, Persist, Volatile, recent_void};
use crate::feed::FeedItem;
use crate::feed::Seq;
use crate::feed::gap::Ranges;
use crate::xmpp::proto::OutgoingItem;
use crate::xmpp::proto::item::{format_ranges, parse_ranges};

/// The schema this version writes. A database of a later one is moved aside, not read.
pub const SCHEMA_VERSION: i64 = 2;
/// Live items written in one transaction at most.
pub const BATCH: usize = 512;
/// Publisher sessions whose accounted numbers a node keeps, past which only those in use stay.
const MAX_ACCOUNTED_SESSIONS: i64 = 256;
/// The total size of the kept items, by default.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kept (
    service TEXT NOT NULL,
    node    TEXT NOT NULL,
    id      TEXT NOT NULL,
    ord     INTEGER NOT NULL,  -- when it was received (µs since 1970): the order kept
    xml     TEXT NOT NULL,     -- the <item/> as the feed holds it (sanitised, bounded)
    PRIMARY KEY (service, node, id)
);
CREATE INDEX IF NOT EXISTS items_by_ord ON kept(service, node, ord);
CREATE INDEX IF NOT EXISTS items_oldest ON kept(ord);
CREATE TABLE IF NOT EXISTS size (bytes INTEGER NOT NULL);
INSERT INTO size SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM size);
CREATE TABLE IF NOT EXISTS publishers (
    service TEXT NOT NULL,
    node    TEXT NOT NULL,
    session TEXT NOT NULL,
    seq     INTEGER NOT NULL DEFAULT 0,  -- the last number given out
    void    TEXT NOT NULL DEFAULT '',    -- numbers never published (2-3,7)
    used    INTEGER NOT NULL,            -- last use, seconds since 1970
    PRIMARY KEY (service, node, session)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounted (
    service TEXT NOT NULL,
    node    TEXT NOT NULL,
    sender  TEXT NOT NULL,               -- bare JID
    session TEXT NOT NULL,
    ranges  TEXT NOT NULL,               -- numbers received or reported lost (1-30,32)
    PRIMARY KEY (service, node, sender, session)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    service TEXT NOT NULL,
    node    TEXT NOT NULL,
    session TEXT NOT NULL,
    n       INTEGER NOT NULL,
    sender  TEXT NOT NULL,
    time    TEXT NOT NULL,               -- RFC 3339
    text    TEXT NOT NULL,
    void    TEXT NOT NULL,
    PRIMARY KEY (service, node, session, n)
) WITHOUT ROWID;
";

/// Bounds of the kept items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items per node (the feed's limit).
    pub per_node: usize,
    /// Bytes of item XML in all.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_node: crate::config::DEFAULT_FEED_LIMIT,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// The default directory of the databases: `$XDG_DATA_HOME/pubsub-tui/cache`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("pubsub-tui").join("cache"))
}

/// The database of an account (its bare JID) in `dir`: the JID with anything but letters,
/// digits, `@`, `.`, `-` and `_` written as `%XX`.
pub fn path_for(dir: &Path, account: &str) -> PathBuf {
    let mut name = String::new();
    for b in account.bytes() {
        if b.is_ascii_alphanumeric() || b"@.-_".contains(&b) {
            name.push(char::from(b));
        } else {
            let _ = write!(name, "%{b:02X}");
        }
    }
    dir.join(format!("{name}.sqlite"))
}

/// A buffered change to the kept items.
#[derive(Debug)]
enum Op {
    Put {
        node: String,
        id: String,
        ord: i64,
        xml: String,
    },
    Retract {
        node: String,
        id: String,
    },
    Clear {
        node: String,
    },
}

/// A session this process holds: its node, and the lock that holds it.
#[derive(Debug)]
struct Held {
    node: String,
    _lock: File,
}

/// The SQLite store of one account, working for one service.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    path: PathBuf,
    service: String,
    limits: Limits,
    /// Where the session locks are, and the prefix of their names (the database's).
    locks: PathBuf,
    held: HashMap<String, Held>,
    /// The session each node's new items are numbered in.
    primary: HashMap<String, String>,
    pending: Vec<Op>,
    /// Per node, at least as many items as it holds: counted when last trimmed, plus every
    /// item put since (a put may replace one). While it is within the limit, a write need
    /// not count them again (that scans the node's index).
    at_most: HashMap<String, Bound>,
    /// `PRAGMA data_version` when this connection last wrote items: another value means
    /// another connection wrote since, and the counts in `at_most` are no longer known.
    seen_version: Option<i64>,
    /// The order key given to the last live item, so that each is above the one before even
    /// when two arrive in the same microsecond.
    last_ord: i64,
    /// After a failure: numbering goes on here, nothing else is kept.
    failed: Option<Volatile>,
}

/// What opening found: the store (if it could be opened) and anything to tell the user.
#[derive(Debug)]
pub struct Opened {
    pub db: Option<Db>,
    pub notice: Option<String>,
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// The error in words, once (rusqlite's own text repeats SQLite's message).
fn said(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        rusqlite::Error::SqliteFailure(err, None) => err.to_string(),
        other => other.to_string(),
    }
}

fn damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Move a damaged or too new database (and its WAL files) aside: where it went.
fn move_aside(path: &Path, why: &str) -> std::io::Result<PathBuf> {
    // The process id too: two processes moving one file at once do not collide.
    let stamp = format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let to = path.with_file_name(format!("{name}.{why}-{stamp}"));
    std::fs::rename(path, &to)?;
    for ext in ["-wal", "-shm"] {
        let side = path.with_file_name(format!("{name}{ext}"));
        if side.exists() {
            let _ = std::fs::rename(
                &side,
                to.with_file_name(format!("{name}.{why}-{stamp}{ext}")),
            );
        }
    }
    Ok(to)
}

/// Why a database was not opened as it is.
enum OpenError {
    /// Not readable as a database of ours: move it aside.
    Damaged(String),
    Newer(i64),
    /// Anything else (a read-only directory, no space): run without.
    Other(String),
}

fn connect(path: &Path) -> Result<Connection, OpenError> {
    let other = |e: rusqlite::Error| {
        if damaged(&e) {
            OpenError::Damaged(said(&e))
        } else if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) {
            OpenError::Other(format!(
                "{} (check that you may write it and its -wal and -shm files)",
                said(&e)
            ))
        } else {
            OpenError::Other(said(&e))
        }
    };
    if !path.exists() {
        // Private from the start (SQLite gives its side files the same mode).
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| OpenError::Other(e.to_string()))?;
    }
    let conn = Connection::open(path).map_err(other)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(other)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(other)?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::Newer(version));
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(other)?;
    // FULL: a number or an outbox row written is on disk before the item goes out, even
    // across a power loss (NORMAL could lose the last commits and give a number out twice).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(other)?;
    // Temporary files (a statement journal, which schema 1's size triggers needed for every
    // insert, a sort) stay in memory. On disk the journal spilled to a file in /var/tmp past
    // 64 KiB: about eight page writes per item kept (`cargo bench --bench flood`).
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(other)?;
    write_schema(&conn).map_err(other)?;
    conn.set_prepared_statement_cache_capacity(64);
    // A file damaged past its header is found here rather than at the first write.
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(other)?;
    if check != "ok" {
        return Err(OpenError::Damaged(check));
    }
    Ok(conn)
}

impl Db {
    /// Open (or create) the database at `path` for `service`. A damaged database, or one of a
    /// later version, is moved aside and a new one started; one that cannot be opened at all
    /// gives no store, and the notice says why.
    pub fn open(path: &Path, service: &str, limits: Limits) -> Opened {
        let shown = path.display();
        if let Some(dir) = path.parent()
            && let Err(e) = crate::config::create_private_dir(dir)
        {
            return Opened {
                db: None,
                notice: Some(format!("no cache this run: {e:#}")),
            };
        }
        let mut notice = None;
        let conn = match connect(path) {
            Ok(c) => c,
            Err(OpenError::Other(e)) => {
                return Opened {
                    db: None,
                    notice: Some(format!("no cache this run: cannot open {shown}: {e}")),
                };
            }
            Err(first) => {
                let (why, said) = match first {
                    OpenError::Newer(v) => (
                        "newer",
                        format!("it was written by a newer pubsub-tui (schema {v})"),
                    ),
                    OpenError::Damaged(e) => ("damaged", format!("it is damaged ({e})")),
                    OpenError::Other(_) => unreachable!("handled above"),
                };
                let moved = match move_aside(path, why) {
                    Ok(to) => to,
                    Err(e) => {
                        return Opened {
                            db: None,
                            notice: Some(format!(
                                "no cache this run: {shown}: {said}, and it cannot be moved aside ({e})"
                            )),
                        };
                    }
                };
                notice = Some(format!(
                    "the cache {shown} was not used: {said}; it was moved to {} and a new one started",
                    moved.display()
                ));
                match connect(path) {
                    Ok(c) => c,
                    Err(OpenError::Other(e) | OpenError::Damaged(e)) => {
                        return Opened {
                            db: None,
                            notice: Some(format!("no cache this run: cannot open {shown}: {e}")),
                        };
                    }
                    Err(OpenError::Newer(_)) => unreachable!("a new file has no version yet"),
                }
            }
        };
        if let Some(moved) = moved_aside_notice(path) {
            notice = Some(match notice {
                Some(n) => format!("{n}; {moved}"),
                None => moved,
            });
        }
        let locks = path.with_extension("locks");
        if let Err(e) = crate::config::create_private_dir(&locks) {
            return Opened {
                db: None,
                notice: Some(format!("no cache this run: {e:#}")),
            };
        }
        Opened {
            db: Some(Self {
                conn,
                path: path.to_owned(),
                service: service.to_owned(),
                limits,
                locks,
                held: HashMap::new(),
                primary: HashMap::new(),
                pending: Vec::new(),
                at_most: HashMap::new(),
                seen_version: None,
                last_ord: 0,
                failed: None,
            }),
            notice,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop keeping after a failure: numbering goes on in a fresh session.
    fn fail(&mut self, what: &str, e: &rusqlite::Error) {
        if self.failed.is_none() {
            tracing::warn!(%e, what, "the cache failed");
            self.pending.clear();
            self.failed = Some(Volatile::after_failure(format!(
                "the cache {} failed ({what}: {}); nothing more is kept this run",
                self.path.display(),
                said(e)
            )));
        }
    }

    /// Hold `session` if no other process does: its lock file, locked.
    fn try_hold(&self, session: &str) -> Result<Option<File>, rusqlite::Error> {
        // Ours are 8 hex digits; anything else (a hand-edited or foreign file) is not held,
        // and never becomes part of a path.
        if session.is_empty()
            || session.len() > 32
            || !session.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(None);
        }
        let name = format!(
            "{}.{session}.lock",
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let io = |e: std::io::Error| {
            rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::new(
                e.kind(),
                format!("the lock file of session {session}: {e}"),
            )))
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.locks.join(name))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The session this process numbers `node`'s items in: one it holds, else one no process
    /// holds (with unsent items first, then the last used), else a new one.
    fn session_for(&mut self, node: &str) -> Result<String, rusqlite::Error> {
        if let Some(s) = self.primary.get(node) {
            return Ok(s.clone());
        }
        if let Some((s, _)) = self.held.iter().find(|(_, h)| h.node == node) {
            let s = s.clone();
            self.primary.insert(node.to_owned(), s.clone());
            return Ok(s);
        }
        let candidates: Vec<String> = {
            let mut st = self.conn.prepare_cached(
                "SELECT session FROM publishers p WHERE service = ?1 AND node = ?2
                 ORDER BY EXISTS (SELECT 1 FROM outbox o WHERE o.service = p.service
                                  AND o.node = p.node AND o.session = p.session) DESC,
                          used DESC",
            )?;
            st.query_map(params![self.service, node], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for s in candidates {
            if let Some(lock) = self.try_hold(&s)? {
                self.hold(node, &s, lock);
                return Ok(s);
            }
        }
        loop {
            let s = crate::config::new_publisher_session();
            let Some(lock) = self.try_hold(&s)? else {
                continue;
            };
            let added = self.conn.execute(
                "INSERT INTO publishers (service, node, session, used) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![self.service, node, s, Utc::now().timestamp()],
            )?;
            if added == 1 {
                self.hold(node, &s, lock);
                return Ok(s);
            }
        }
    }

    fn hold(&mut self, node: &str, session: &str, lock: File) {
        self.held.insert(
            session.to_owned(),
            Held {
                node: node.to_owned(),
                _lock: lock,
            },
        );
        self.primary
            .entry(node.to_owned())
            .or_insert_with(|| session.to_owned());
    }

    fn try_number(&mut self, node: &str) -> Result<Number, rusqlite::Error> {
        let session = self.session_for(node)?;
        let (n, void): (i64, String) = self.conn.query_row(
            "UPDATE publishers SET seq = seq + 1, used = ?4
             WHERE service = ?1 AND node = ?2 AND session = ?3 RETURNING seq, void",
            params![self.service, node, session, Utc::now().timestamp()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut ranges = Ranges::default();
        for (a, b) in parse_ranges(&void) {
            ranges.insert(a, b);
        }
        let Ok(n) = u64::try_from(n) else {
            return Err(rusqlite::Error::IntegralValueOutOfRange(0, n));
        };
        if n == 0 {
            return Err(rusqlite::Error::IntegralValueOutOfRange(0, 0));
        }
        Ok(Number {
            session,
            n,
            void: recent_void(&ranges),
        })
    }

    fn try_void(&mut self, node: &str, session: &str, n: u64) -> Result<(), rusqlite::Error> {
        let void: Option<String> = self
            .conn
            .query_row(
                "SELECT void FROM publishers WHERE service = ?1 AND node = ?2 AND session = ?3",
                params![self.service, node, session],
                |r| r.get(0),
            )
            .optional()?;
        let Some(void) = void else { return Ok(()) };
        let mut ranges = Ranges::default();
        for (a, b) in parse_ranges(&void) {
            ranges.insert(a, b);
        }
        ranges.insert(n, n);
        self.conn.execute(
            "UPDATE publishers SET void = ?4 WHERE service = ?1 AND node = ?2 AND session = ?3",
            params![
                self.service,
                node,
                session,
                format_ranges(ranges.as_slice())
            ],
        )?;
        Ok(())
    }

    fn try_leftovers(&mut self, node: Option<&str>) -> Result<Vec<OutgoingItem>, rusqlite::Error> {
        let sessions: Vec<(String, String)> = {
            let mut st = self.conn.prepare_cached(
                "SELECT DISTINCT node, session FROM outbox
                 WHERE service = ?1 AND (?2 IS NULL OR node = ?2)",
            )?;
            st.query_map(params![self.service, node], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (node, session) in sessions {
            if self.held.contains_key(&session) {
                continue;
            }
            if let Some(lock) = self.try_hold(&session)? {
                self.hold(&node, &session, lock);
            }
        }
        self.outbox_of_held(node)
    }

    /// The unsent items of the sessions this process holds, oldest first.
    fn outbox_of_held(&self, node: Option<&str>) -> Result<Vec<OutgoingItem>, rusqlite::Error> {
        let mut st = self.conn.prepare_cached(
            "SELECT node, session, n, sender, time, text, void FROM outbox
             WHERE service = ?1 AND session = ?2 AND (?3 IS NULL OR node = ?3) ORDER BY n",
        )?;
        let mut out = Vec::new();
        let mut sessions: Vec<&String> = self.held.keys().collect();
        sessions.sort();
        for s in sessions {
            let rows = st.query_map(params![self.service, s, node], |r| {
                let time: String = r.get(4)?;
                let void: String = r.get(6)?;
                let n: i64 = r.get(2)?;
                Ok(OutgoingItem {
                    node: r.get(0)?,
                    sender: r.get(3)?,
                    time: DateTime::parse_from_rfc3339(&time)
                        .map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc)),
                    seq: Seq {
                        session: r.get(1)?,
                        n: u64::try_from(n).unwrap_or(0),
                        void: parse_ranges(&void),
                    },
                    text: r.get(5)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        // A session's numbers in order (times can step back).
        out.sort_by(|a, b| {
            (&a.node, &a.seq.session, a.seq.n).cmp(&(&b.node, &b.seq.session, b.seq.n))
        });
        // The file is data: text that could not have been ours is not sent.
        out.retain(|i| {
            i.text == crate::sanitize::outgoing(&i.text)
                && crate::xmpp::proto::check_text_size(&i.text).is_ok()
        });
        Ok(out)
    }

    fn try_discard(&mut self) -> Result<usize, rusqlite::Error> {
        let items = self.outbox_of_held(None)?;
        for item in &items {
            self.try_void(&item.node, &item.seq.session, item.seq.n)?;
            self.try_remove(item)?;
        }
        Ok(items.len())
    }

    fn try_remove(&self, item: &OutgoingItem) -> Result<(), rusqlite::Error> {
        self.conn.execute(
            "DELETE FROM outbox WHERE service = ?1 AND node = ?2 AND session = ?3 AND n = ?4",
            params![
                self.service,
                item.node,
                item.seq.session,
                i64::try_from(item.seq.n).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(())
    }

    fn try_put_outbox(&self, item: &OutgoingItem) -> Result<(), rusqlite::Error> {
        self.conn.execute(
            "INSERT OR REPLACE INTO outbox (service, node, session, n, sender, time, text, void)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                self.service,
                item.node,
                item.seq.session,
                i64::try_from(item.seq.n).unwrap_or(i64::MAX),
                item.sender,
                item.time.to_rfc3339(),
                item.text,
                format_ranges(&item.seq.void),
            ],
        )?;
        Ok(())
    }

    /// Write the buffered changes in one transaction, then keep within the bounds.
    fn try_flush(&mut self) -> Result<(), rusqlite::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.pending);
        let written = Self::write_ops(
            &mut self.conn,
            &self.service,
            self.limits,
            (&mut self.at_most, &mut self.seen_version),
            &ops,
        );
        if written.is_err() {
            // Kept for the next try (a busy database), before what came since.
            let later = std::mem::replace(&mut self.pending, ops);
            self.pending.extend(later);
        }
        written
    }

    fn write_ops(
        conn: &mut Connection,
        service: &str,
        limits: Limits,
        (at_most, seen_version): (&mut HashMap<String, Bound>, &mut Option<i64>),
        ops: &[Op],
    ) -> Result<(), rusqlite::Error> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version = others_wrote(&tx, *seen_version, at_most)?;
        let mut w = ItemWrites::new(&tx);
        // Items each node gained (a changed item rewritten is not one more).
        let mut touched: HashMap<&str, usize> = HashMap::new();
        for op in ops {
            match op {
                Op::Put { node, id, ord, xml } => {
                    let added = w.put(service, node, id, *ord, xml, Reorder::IfChanged)?;
                    *touched.entry(node).or_default() += usize::from(added);
                }
                Op::Retract { node, id } => {
                    if w.delete(service, node, id)?
                        && let Some(b) = at_most.get_mut(node.as_str())
                    {
                        b.items = b.items.saturating_sub(1);
                    }
                }
                Op::Clear { node } => {
                    w.clear(Some(service), Some(node))?;
                    at_most.remove(node.as_str());
                }
            }
        }
        let mut counted = Vec::new();
        for (node, added) in touched {
            let known = at_most.get(node).copied().unwrap_or_default();
            // The count is exact while only this connection writes (`others_wrote`); it is
            // counted again now and then all the same.
            let bound = if known.writes > 0 && known.writes < RECOUNT_WRITES {
                let held = known.items.saturating_add(added);
                let over = held.saturating_sub(limits.per_node);
                Bound {
                    items: held.saturating_sub(w.delete_oldest(service, node, over)?),
                    writes: known.writes + 1,
                }
            } else {
                Bound {
                    items: bound_node(&mut w, service, node, limits.per_node)?,
                    writes: 1,
                }
            };
            counted.push((node, bound));
        }
        let evicted = bound_total(&mut w, limits.max_bytes)?;
        w.settle()?;
        tx.commit()?;
        *seen_version = Some(version);
        if evicted > 0 {
            // Evicted from any node: counted again when next written.
            at_most.clear();
        } else {
            for (node, bound) in counted {
                at_most.insert(node.to_owned(), bound);
            }
        }
        Ok(())
    }

    fn try_cached(&mut self, node: &str) -> Result<Vec<FeedItem>, rusqlite::Error> {
        self.try_flush()?;
        let mut st = self.conn.prepare_cached(
            "SELECT ord, xml FROM kept WHERE service = ?1 AND node = ?2 ORDER BY ord",
        )?;
        let rows = st.query_map(params![self.service, node], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (ord, xml) = row?;
            if let Some(item) = item_from_xml(node, &xml, ord) {
                out.push(item);
            }
        }
        Ok(out)
    }

    fn try_accounted(&mut self, node: &str) -> Result<Vec<Accounted>, rusqlite::Error> {
        self.try_flush()?;
        let mut st = self.conn.prepare_cached(
            "SELECT sender, session, ranges FROM accounted WHERE service = ?1 AND node = ?2",
        )?;
        st.query_map(params![self.service, node], |r| {
            let ranges: String = r.get(2)?;
            Ok(Accounted {
                sender: r.get(0)?,
                session: r.get(1)?,
                ranges: all_ranges(&ranges),
            })
        })?
        .collect()
    }

    fn try_set_accounted(
        &mut self,
        node: &str,
        accounted: &[Accounted],
    ) -> Result<(), rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            // Added to what is there: another process of the account keeps its own too.
            let mut get = tx.prepare_cached(
                "SELECT ranges FROM accounted
                 WHERE service = ?1 AND node = ?2 AND sender = ?3 AND session = ?4",
            )?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO accounted (service, node, sender, session, ranges)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for a in accounted {
                let before: Option<String> = get
                    .query_row(params![self.service, node, a.sender, a.session], |r| {
                        r.get(0)
                    })
                    .optional()?;
                let mut ranges = Ranges::default();
                let older = all_ranges(before.as_deref().unwrap_or(""));
                for &(x, y) in a.ranges.iter().chain(older.iter()) {
                    ranges.insert(x, y);
                }
                put.execute(params![
                    self.service,
                    node,
                    a.sender,
                    a.session,
                    format_ranges(ranges.as_slice())
                ])?;
            }
            // Bounded: past a few hundred sessions, only those in use now stay.
            let rows: i64 = tx.query_row(
                "SELECT COUNT(*) FROM accounted WHERE service = ?1 AND node = ?2",
                params![self.service, node],
                |r| r.get(0),
            )?;
            if rows > MAX_ACCOUNTED_SESSIONS {
                let keep: HashSet<(&str, &str)> = accounted
                    .iter()
                    .map(|a| (a.sender.as_str(), a.session.as_str()))
                    .collect();
                let all: Vec<(String, String)> = {
                    let mut st = tx.prepare_cached(
                        "SELECT sender, session FROM accounted WHERE service = ?1 AND node = ?2",
                    )?;
                    st.query_map(params![self.service, node], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?
                };
                let mut del = tx.prepare_cached(
                    "DELETE FROM accounted
                     WHERE service = ?1 AND node = ?2 AND sender = ?3 AND session = ?4",
                )?;
                for (sender, session) in &all {
                    if !keep.contains(&(sender.as_str(), session.as_str())) {
                        del.execute(params![self.service, node, sender, session])?;
                    }
                }
            }
        }
        tx.commit()
    }

    fn try_cached_ids(&mut self, node: &str) -> Result<HashSet<String>, rusqlite::Error> {
        self.try_flush()?;
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM kept WHERE service = ?1 AND node = ?2")?;
        st.query_map(params![self.service, node], |r| r.get(0))?
            .collect()
    }

    fn try_replace(
        &mut self,
        node: &str,
        items: &[FeedItem],
        fetched: bool,
    ) -> Result<(), rusqlite::Error> {
        self.try_flush()?;
        let keep: HashSet<&str> = items.iter().filter_map(|i| i.id()).collect();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version = others_wrote(&tx, self.seen_version, &mut self.at_most)?;
        let mut w = ItemWrites::new(&tx);
        let service = self.service.as_str();
        {
            let have: HashMap<String, i64> = {
                let mut st =
                    tx.prepare_cached("SELECT id, ord FROM kept WHERE service = ?1 AND node = ?2")?;
                st.query_map(params![service, node], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            for id in have.keys().filter(|id| !keep.contains(id.as_str())) {
                w.delete(service, node, id)?;
            }
            // New ones where the order given puts them, among what is kept; changed ones
            // rewritten.
            let known: Vec<Option<i64>> = items
                .iter()
                .map(|i| {
                    i.id()
                        .and_then(|id| have.get(id).copied())
                        .or_else(|| i.received.map(|t| t.timestamp_micros()))
                })
                .collect();
            let ords = place(&known, now_micros());
            let mut moved = tx.prepare_cached(
                "UPDATE kept SET ord = ?4 WHERE service = ?1 AND node = ?2 AND id = ?3",
            )?;
            for (k, item) in items.iter().enumerate() {
                if let Some(id) = item.id()
                    && let Some(&was) = have.get(id)
                {
                    // Moved up to stay after the one before it.
                    if was != ords[k] {
                        moved.execute(params![service, node, id, ords[k]])?;
                    }
                    if !fetched {
                        continue;
                    }
                }
                let Some((id, xml)) = keepable(item) else {
                    if let Some(id) = &item.id() {
                        w.delete(service, node, id)?;
                    }
                    continue;
                };
                w.put(service, node, id, ords[k], &xml, Reorder::No)?;
            }
        }
        let items = bound_node(&mut w, service, node, self.limits.per_node)?;
        let evicted = bound_total(&mut w, self.limits.max_bytes)?;
        w.settle()?;
        tx.commit()?;
        self.seen_version = Some(version);
        if evicted > 0 {
            self.at_most.clear();
        } else {
            self.at_most
                .insert(node.to_owned(), Bound { items, writes: 1 });
        }
        Ok(())
    }
}

/// Every range of `a-b,c` (what this store wrote; anything unreadable is left out).
fn all_ranges(s: &str) -> Vec<(u64, u64)> {
    s.split(',')
        .filter_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        })
        .collect()
}

/// What of an item can be kept: its id and XML (not without an id, nor when the tree's
/// bounds cut it: it could not be told apart from the whole item later).
fn keepable(item: &FeedItem) -> Option<(&str, String)> {
    let id = item.id()?;
    item.tree().is_whole().then(|| (id, item.xml()))
}

/// An item read back: parsed again as it was received (with the time it was received).
fn item_from_xml(node: &str, xml: &str, ord: i64) -> Option<FeedItem> {
    let el = crate::xmpp::proto::parse_payload(xml).ok()?;
    let mut item = crate::xmpp::proto::parse_item(node, &el);
    item.received = DateTime::from_timestamp_micros(ord);
    Some(item)
}

/// The order key (`ord`) of each item of a list in the order given, strictly rising: its own
/// where it has one (the cache's, or when it was received), else one between its
/// neighbours', so that an item fetched later does not pass the newer ones kept (it would
/// then outlive them at the per-node bound). A known key moves up when there is no room
/// below it. Items after the last known one go at `now`, in order.
fn place(known: &[Option<i64>], now: i64) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::with_capacity(known.len());
    let mut i = 0;
    while let Some(&k) = known.get(i) {
        let prev = out.last().copied();
        let after = |p: Option<i64>| p.map(|p| p.saturating_add(1));
        if let Some(o) = k {
            // Strictly after the one before: a known key moves up a little when it must.
            out.push(after(prev).map_or(o, |a| o.max(a)));
            i += 1;
            continue;
        }
        let run = known[i..].iter().take_while(|k| k.is_none()).count();
        let len = i64::try_from(run).unwrap_or(i64::MAX);
        let next = known.get(i + run).copied().flatten();
        let first = match (prev, next) {
            (None, Some(n)) => n.saturating_sub(len),
            (Some(p), Some(_)) => p.saturating_add(1),
            (p, None) => after(p).map_or(now, |a| a.max(now)),
        };
        out.extend((0..len).map(|j| first.saturating_add(j)));
        i += run;
    }
    out
}

/// Keep at most `limit` items of `node`: the oldest received go. Returns how many it holds
/// then.
fn bound_node(
    w: &mut ItemWrites<'_>,
    service: &str,
    node: &str,
    limit: usize,
) -> Result<usize, rusqlite::Error> {
    let count: i64 = w.tx.query_row(
        "SELECT COUNT(*) FROM kept WHERE service = ?1 AND node = ?2",
        params![service, node],
        |r| r.get(0),
    )?;
    let count = usize::try_from(count).unwrap_or(0);
    let gone = w.delete_oldest(service, node, count.saturating_sub(limit))?;
    Ok(count.saturating_sub(gone))
}

/// Whether another connection wrote since this one last did (`PRAGMA data_version` tells,
/// and not for this connection's own commits): then the counts kept are forgotten, to be
/// counted again. Returns the version, to remember once this transaction commits.
fn others_wrote(
    tx: &rusqlite::Transaction<'_>,
    seen: Option<i64>,
    at_most: &mut HashMap<String, Bound>,
) -> Result<i64, rusqlite::Error> {
    let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    if seen != Some(version) {
        at_most.clear();
    }
    Ok(version)
}

/// What a store knows of a node's size: `items` items, `writes` writes after it last counted
/// them (every add and removal of this connection kept in it; forgotten when another
/// connection writes: [`others_wrote`]).
#[derive(Debug, Clone, Copy, Default)]
struct Bound {
    items: usize,
    writes: u32,
}

/// Writes after which a node's items are counted again even within the limit.
const RECOUNT_WRITES: u32 = 16;

/// Keep the items within `max` bytes in all: the oldest received, of any node, go.
/// Returns how many went.
fn bound_total(w: &mut ItemWrites<'_>, max: u64) -> Result<usize, rusqlite::Error> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    w.settle()?;
    let tx = w.tx;
    let bytes: i64 = tx.query_row("SELECT bytes FROM size", [], |r| r.get(0))?;
    if bytes < 0 {
        // Not what the writes keep: count again.
        tx.execute(
            "UPDATE size SET bytes = (SELECT COALESCE(SUM(length(CAST(xml AS BLOB))), 0) FROM kept)",
            [],
        )?;
        return Ok(0);
    }
    let mut excess = bytes.saturating_sub(max);
    if excess <= 0 {
        return Ok(0);
    }
    let oldest: Vec<(String, String, String, i64)> = {
        let mut st = tx.prepare_cached(
            "SELECT service, node, id, length(CAST(xml AS BLOB)) FROM kept ORDER BY ord",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            excess = excess.saturating_sub(row.3);
            out.push(row);
            if excess <= 0 {
                break;
            }
        }
        out
    };
    let mut gone = 0;
    for (service, node, id, _) in oldest {
        gone += usize::from(w.delete(&service, &node, &id)?);
    }
    w.settle()?;
    Ok(gone)
}

/// Whether a put of an item already kept, changed, moves it to the place given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reorder {
    /// A live item sent again changed goes last; unchanged it keeps its place.
    IfChanged,
    /// A fetched item keeps the place the list gave it (moved apart).
    No,
}

/// The writes to the kept items of one transaction, with the bytes they add or free: the
/// `size` row changes once, at [`Self::settle`], rather than by a trigger per row (which made
/// SQLite keep a statement journal and write the row again for every item).
struct ItemWrites<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    /// Bytes added (less those freed) since the size row was last written.
    bytes: i64,
}

impl<'t> ItemWrites<'t> {
    fn new(tx: &'t rusqlite::Transaction<'t>) -> Self {
        Self { tx, bytes: 0 }
    }

    /// Keep an item: added (true), or rewritten when its XML changed (false).
    fn put(
        &mut self,
        service: &str,
        node: &str,
        id: &str,
        ord: i64,
        xml: &str,
        reorder: Reorder,
    ) -> Result<bool, rusqlite::Error> {
        let len = i64::try_from(xml.len()).unwrap_or(i64::MAX);
        let added = self
            .tx
            .prepare_cached(
                "INSERT INTO kept (service, node, id, ord, xml) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![service, node, id, ord, xml])?;
        if added > 0 {
            self.bytes = self.bytes.saturating_add(len);
            return Ok(true);
        }
        let old: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT length(CAST(xml AS BLOB)) FROM kept
                 WHERE service = ?1 AND node = ?2 AND id = ?3 AND xml != ?4",
            )?
            .query_row(params![service, node, id, xml], |r| r.get(0))
            .optional()?;
        if let Some(old) = old {
            let mut st = self.tx.prepare_cached(
                "UPDATE kept SET xml = ?4, ord = coalesce(?5, ord)
                 WHERE service = ?1 AND node = ?2 AND id = ?3",
            )?;
            let ord = (reorder == Reorder::IfChanged).then_some(ord);
            st.execute(params![service, node, id, xml, ord])?;
            self.bytes = self.bytes.saturating_add(len).saturating_sub(old);
        }
        Ok(false)
    }

    /// Forget an item: whether it was kept.
    fn delete(&mut self, service: &str, node: &str, id: &str) -> Result<bool, rusqlite::Error> {
        let freed = self.freed(
            "DELETE FROM kept WHERE service = ?1 AND node = ?2 AND id = ?3
             RETURNING length(CAST(xml AS BLOB))",
            params![service, node, id],
        )?;
        Ok(freed > 0)
    }

    /// Forget the `count` items of `node` received first: how many went (more when the
    /// last to go shares its order key with others, which only another process's items can).
    fn delete_oldest(
        &mut self,
        service: &str,
        node: &str,
        count: usize,
    ) -> Result<usize, rusqlite::Error> {
        if count == 0 {
            return Ok(0);
        }
        // The order key of the last to go, then a range of the index: an `id IN (… LIMIT)`
        // scanned the whole node.
        let last: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT ord FROM kept WHERE service = ?1 AND node = ?2
                 ORDER BY ord LIMIT 1 OFFSET ?3",
            )?
            .query_row(
                params![service, node, i64::try_from(count - 1).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()?;
        let Some(last) = last else {
            return self.clear(Some(service), Some(node));
        };
        self.freed(
            "DELETE FROM kept WHERE service = ?1 AND node = ?2 AND ord <= ?3
             RETURNING length(CAST(xml AS BLOB))",
            params![service, node, last],
        )
    }

    /// Forget every item (of `service` and of `node`, when given): how many went.
    fn clear(
        &mut self,
        service: Option<&str>,
        node: Option<&str>,
    ) -> Result<usize, rusqlite::Error> {
        self.freed(
            "DELETE FROM kept WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR node = ?2)
             RETURNING length(CAST(xml AS BLOB))",
            params![service, node],
        )
    }

    /// Run a `DELETE … RETURNING` the length of each row: how many went.
    fn freed(&mut self, sql: &str, p: impl rusqlite::Params) -> Result<usize, rusqlite::Error> {
        let mut st = self.tx.prepare_cached(sql)?;
        let mut rows = st.query(p)?;
        let mut gone = 0;
        while let Some(row) = rows.next()? {
            let len: i64 = row.get(0)?;
            self.bytes = self.bytes.saturating_sub(len);
            gone += 1;
        }
        Ok(gone)
    }

    /// Write the size row.
    fn settle(&mut self) -> Result<(), rusqlite::Error> {
        if self.bytes != 0 {
            self.tx
                .prepare_cached("UPDATE size SET bytes = bytes + ?1")?
                .execute(params![self.bytes])?;
            self.bytes = 0;
        }
        Ok(())
    }
}

impl Persist for Db {
    fn number(&mut self, node: &str) -> Number {
        if self.failed.is_none() {
            match self.try_number(node) {
                Ok(n) => return n,
                Err(e) => self.fail("taking a number", &e),
            }
        }
        self.failed
            .as_mut()
            .map(|v| v.number(node))
            .expect("failed is set")
    }

    fn void(&mut self, node: &str, session: &str, n: u64) {
        if let Some(v) = &mut self.failed {
            return v.void(node, session, n);
        }
        if let Err(e) = self.try_void(node, session, n) {
            self.fail("recording a number never published", &e);
        }
    }

    fn outbox_put(&mut self, item: &OutgoingItem) {
        if self.failed.is_none()
            && let Err(e) = self.try_put_outbox(item)
        {
            self.fail("keeping an item to send", &e);
        }
    }

    fn outbox_remove(&mut self, item: &OutgoingItem) {
        // Tried even after a failure: a row left behind would be checked (and perhaps sent)
        // again by the next run.
        if let Err(e) = self.try_remove(item) {
            self.fail("removing a sent item", &e);
        }
    }

    fn leftovers(&mut self, node: Option<&str>) -> Vec<OutgoingItem> {
        if self.failed.is_some() {
            return Vec::new();
        }
        self.try_leftovers(node).unwrap_or_else(|e| {
            self.fail("reading the items left to send", &e);
            Vec::new()
        })
    }

    fn discard_outbox(&mut self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        self.try_discard().unwrap_or_else(|e| {
            self.fail("discarding the items left to send", &e);
            0
        })
    }

    fn keeps_items(&self) -> bool {
        self.failed.is_none()
    }

    fn item_limit(&self) -> usize {
        self.limits.per_node
    }

    fn cached(&mut self, node: &str) -> Vec<FeedItem> {
        if self.failed.is_some() {
            return Vec::new();
        }
        self.try_cached(node).unwrap_or_else(|e| {
            self.fail("reading the kept items", &e);
            Vec::new()
        })
    }

    fn cached_ids(&mut self, node: &str) -> HashSet<String> {
        if self.failed.is_some() {
            return HashSet::new();
        }
        self.try_cached_ids(node).unwrap_or_else(|e| {
            self.fail("reading the kept items", &e);
            HashSet::new()
        })
    }

    fn add(&mut self, item: &FeedItem) {
        if self.failed.is_some() {
            return;
        }
        let Some((id, xml)) = keepable(item) else {
            // Not kept as it is now: an older copy under its id must not stand in for it.
            if let Some(id) = item.id() {
                self.pending.push(Op::Retract {
                    node: item.node().to_owned(),
                    id: id.to_owned(),
                });
            }
            return;
        };
        let ord = item
            .received
            .map_or_else(now_micros, |t| t.timestamp_micros())
            .max(self.last_ord.saturating_add(1));
        self.last_ord = ord;
        self.pending.push(Op::Put {
            node: item.node().to_owned(),
            id: id.to_owned(),
            ord,
            xml,
        });
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    fn retract(&mut self, node: &str, id: &str) {
        if self.failed.is_none() {
            self.pending.push(Op::Retract {
                node: node.to_owned(),
                id: id.to_owned(),
            });
        }
    }

    fn clear(&mut self, node: &str) {
        if self.failed.is_none() {
            self.pending.push(Op::Clear {
                node: node.to_owned(),
            });
        }
    }

    fn replace(&mut self, node: &str, items: &[FeedItem], fetched: bool) {
        if self.failed.is_none()
            && let Err(e) = self.try_replace(node, items, fetched)
        {
            self.fail("keeping the node's items", &e);
        }
    }

    fn accounted(&mut self, node: &str) -> Vec<Accounted> {
        if self.failed.is_some() {
            return Vec::new();
        }
        self.try_accounted(node).unwrap_or_else(|e| {
            self.fail("reading the numbers accounted for", &e);
            Vec::new()
        })
    }

    fn set_accounted(&mut self, node: &str, accounted: &[Accounted]) {
        if self.failed.is_none()
            && let Err(e) = self.try_set_accounted(node, accounted)
        {
            self.fail("keeping the numbers accounted for", &e);
        }
    }

    fn flush(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let ops = self.pending.len();
        match self.try_flush() {
            Ok(()) => {}
            // Another process holds the database longer than the busy wait: try again on the
            // next tick (the buffer is bounded: past it, the store gives up).
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && ops < BATCH * 8 => {}
            Err(e) => self.fail("keeping items", &e),
        }
    }

    fn take_problem(&mut self) -> Option<String> {
        self.failed.as_mut().and_then(Volatile::take_problem)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What a database holds, for `pubsub-tui cache`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Bytes of the database file (and its WAL).
    pub file_bytes: u64,
    pub nodes: Vec<KeptNode>,
    pub sessions: Vec<Session>,
    pub unsent: Vec<Unsent>,
    /// Databases of the account an older pubsub-tui moved aside (see [`moved_aside`]).
    pub moved_aside: Vec<MovedAside>,
}

/// A database of the account that an older pubsub-tui moved aside as "newer" (it could not
/// read it), and that this version can read: what it holds would be lost without a word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MovedAside {
    pub path: PathBuf,
    /// Items there waiting to be published.
    pub waiting: u64,
}

/// The databases next to `path` that an older pubsub-tui moved aside and this version reads.
pub fn moved_aside(path: &Path) -> Vec<MovedAside> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.newer-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<MovedAside> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                n.starts_with(&prefix) && !n.ends_with("-wal") && !n.ends_with("-shm")
            })
        })
        .filter_map(|p| {
            let conn =
                Connection::open_with_flags(&p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .ok()?;
            if version > SCHEMA_VERSION {
                return None;
            }
            let waiting: i64 = conn
                .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
                .unwrap_or(0);
            Some(MovedAside {
                path: p,
                waiting: waiting.unsigned_abs(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// What to tell the user of databases an older pubsub-tui moved aside, if any.
fn moved_aside_notice(path: &Path) -> Option<String> {
    let moved = moved_aside(path);
    if moved.is_empty() {
        return None;
    }
    let files: Vec<String> = moved
        .iter()
        .map(|m| {
            let waiting = usize::try_from(m.waiting).unwrap_or(usize::MAX);
            format!(
                "{} ({} waiting to be published there)",
                m.path.display(),
                crate::feed::render::plural(waiting, "item")
            )
        })
        .collect();
    Some(format!(
        "an older pubsub-tui could not read this account's cache and moved it aside: {}; this \
         version reads it: stop every pubsub-tui of the account and move it back to {} (and \
         its -wal file, if it has one, to {}-wal) to use what it kept",
        files.join(", "),
        path.display(),
        path.display()
    ))
}

/// A node's kept items.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeptNode {
    pub service: String,
    pub node: String,
    pub items: u64,
    /// Bytes of their XML.
    pub bytes: u64,
}

/// A publisher session of ours.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    pub service: String,
    pub node: String,
    pub session: String,
    /// The last number given out.
    pub last: u64,
    /// A running process holds it.
    pub in_use: bool,
}

/// An item waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unsent {
    pub service: String,
    pub node: String,
    pub id: String,
    pub text: String,
}

/// Open an existing database to read or clear it (never creating one): `None` when there is
/// none yet.
fn open_existing(path: &Path, upgrade: bool) -> anyhow::Result<Option<Connection>> {
    use anyhow::Context as _;
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "{} was written by a newer pubsub-tui (schema {version}); it is left as it is",
            path.display()
        );
    }
    if version == 0 {
        return Ok(None);
    }
    if upgrade && version < SCHEMA_VERSION {
        write_schema(&conn).with_context(|| format!("upgrading {}", path.display()))?;
    }
    Ok(Some(conn))
}

/// Schema 1 to 2. Schema 1 kept the size by triggers, which cost a statement journal and a
/// second write per item (`cargo bench --bench cache -- --writes`); schema 2 counts it in
/// [`ItemWrites`]. The table is renamed so that a schema 1 process still running fails to
/// write it (and says so) rather than writing items the size does not count; the size is
/// counted again from what is there.
const UPGRADE_FROM_1: &str = "
DROP TRIGGER IF EXISTS items_added;
DROP TRIGGER IF EXISTS items_removed;
DROP TRIGGER IF EXISTS items_changed;
ALTER TABLE items RENAME TO kept;
";

/// The same, when `kept` is there already: a schema 1 process that opened the file as this
/// one upgraded it made `items` again (and wrote to it). Its rows join the others.
const MERGE_FROM_1: &str = "
DROP TRIGGER IF EXISTS items_added;
DROP TRIGGER IF EXISTS items_removed;
DROP TRIGGER IF EXISTS items_changed;
INSERT OR IGNORE INTO kept (service, node, id, ord, xml)
    SELECT service, node, id, ord, xml FROM items;
DROP TABLE items;
";

/// Create what is missing of the schema, or bring an older one up to date, in one
/// transaction (the version read inside it: two processes may open the file at once).
fn write_schema(conn: &Connection) -> Result<(), rusqlite::Error> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        // A newer version wrote it since it was opened: leave it to that one.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "written by a newer pubsub-tui (schema {version}) meanwhile"
            )),
        ));
    }
    if version == 1 {
        let kept_too: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kept')",
            [],
            |r| r.get(0),
        )?;
        tx.execute_batch(if kept_too {
            MERGE_FROM_1
        } else {
            UPGRADE_FROM_1
        })?;
        tx.execute(
            "UPDATE size SET bytes = (SELECT COALESCE(SUM(length(CAST(xml AS BLOB))), 0) FROM kept)",
            [],
        )?;
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()
}

/// What the database at `path` holds (an empty summary when there is none).
pub fn summary(path: &Path) -> anyhow::Result<Summary> {
    // Read as it is: a look must not make the file unreadable to the version that wrote it.
    let Some(conn) = open_existing(path, false)? else {
        return Ok(Summary {
            moved_aside: moved_aside(path),
            ..Summary::default()
        });
    };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let table = if version < 2 { "items" } else { "kept" };
    let file_bytes = ["", "-wal"]
        .iter()
        .filter_map(|ext| {
            let mut p = path.as_os_str().to_owned();
            p.push(ext);
            std::fs::metadata(p).ok()
        })
        .map(|m| m.len())
        .sum();
    let nodes = {
        let mut st = conn.prepare(&format!(
            "SELECT service, node, COUNT(*), SUM(length(CAST(xml AS BLOB))) FROM {table}
             GROUP BY service, node ORDER BY service, node"
        ))?;
        st.query_map([], |r| {
            Ok(KeptNode {
                service: r.get(0)?,
                node: r.get(1)?,
                items: r.get::<_, i64>(2)?.unsigned_abs(),
                bytes: r.get::<_, i64>(3)?.unsigned_abs(),
            })
        })?
        .collect::<Result<_, _>>()?
    };
    let mut sessions: Vec<Session> = {
        let mut st = conn.prepare(
            "SELECT service, node, session, seq FROM publishers ORDER BY service, node, used",
        )?;
        st.query_map([], |r| {
            Ok(Session {
                service: r.get(0)?,
                node: r.get(1)?,
                session: r.get(2)?,
                last: r.get::<_, i64>(3)?.unsigned_abs(),
                in_use: false,
            })
        })?
        .collect::<Result<_, _>>()?
    };
    let locks = path.with_extension("locks");
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for s in &mut sessions {
        // Held: its lock cannot be taken now.
        s.in_use = std::fs::OpenOptions::new()
            .write(true)
            .open(locks.join(format!("{stem}.{}.lock", s.session)))
            .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
    }
    let unsent = {
        let mut st = conn.prepare(
            "SELECT service, node, session, n, text FROM outbox ORDER BY service, node, time",
        )?;
        st.query_map([], |r| {
            let session: String = r.get(2)?;
            let n: i64 = r.get(3)?;
            Ok(Unsent {
                service: r.get(0)?,
                node: r.get(1)?,
                id: format!("{session}-{n}"),
                text: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?
    };
    Ok(Summary {
        file_bytes,
        nodes,
        sessions,
        unsent,
        moved_aside: moved_aside(path),
    })
}

/// Remove the kept items (of `node` only, when given, at any service): how many.
pub fn clear(path: &Path, node: Option<&str>) -> anyhow::Result<usize> {
    let Some(mut conn) = open_existing(path, true)? else {
        return Ok(0);
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut w = ItemWrites::new(&tx);
    let n = w.clear(None, node)?;
    w.settle()?;
    tx.commit()?;
    // No VACUUM: it would hold the database for long under a running client.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of node `n`'s kept items, in order.
    fn ids(db: &mut Db) -> Vec<String> {
        db.cached("n")
            .into_iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect()
    }

    fn item(node: &str, id: &str, text: &str) -> FeedItem {
        let xml = format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='{id}'>\
             <reading xmlns='urn:example:sensor'><t unit='C'>{text}</t></reading></item>"
        );
        let el = crate::xmpp::proto::parse_payload(&xml).expect("xml");
        crate::xmpp::proto::parse_item(node, &el)
    }

    /// A store at `path` keeping `per_node` items a node (and a megabyte in all).
    fn open_bounded(path: &Path, per_node: usize) -> Db {
        let limits = Limits {
            per_node,
            max_bytes: 1_000_000,
        };
        Db::open(path, "pubsub.x", limits).db.expect("opened")
    }

    fn open(dir: &Path) -> Db {
        let o = Db::open(&dir.join("a@x.sqlite"), "pubsub.x", Limits::default());
        assert!(o.notice.is_none(), "{:?}", o.notice);
        o.db.expect("opened")
    }

    #[test]
    fn the_file_name_is_the_account_escaped() {
        let p = path_for(Path::new("/d"), "ali ce/é@x.org");
        assert_eq!(p, Path::new("/d/ali%20ce%2F%C3%A9@x.org.sqlite"));
    }

    #[test]
    fn numbers_continue_across_runs_and_concurrent_runs_take_their_own_session() {
        let dir = tempfile::tempdir().expect("dir");
        let first = {
            let mut db = open(dir.path());
            let a = db.number("n");
            assert_eq!(a.n, 1);
            assert_eq!(db.number("n").n, 2);
            db.void("n", &a.session, 2);
            a.session
        };
        // The next run continues the session, and declares 2 void.
        let mut db = open(dir.path());
        let b = db.number("n");
        assert_eq!((b.session.as_str(), b.n), (first.as_str(), 3));
        assert_eq!(b.void, vec![(2, 2)]);
        // A second process while this one holds the session: a session of its own.
        let mut other = open(dir.path());
        let c = other.number("n");
        assert_ne!(c.session, first);
        assert_eq!(c.n, 1);
        assert_eq!(db.number("n").n, 4, "each keeps its own sequence");
        drop(db);
        // Once the first has ended, a third run takes its session over (the last used one
        // is the other's, which is held).
        let mut third = open(dir.path());
        let d = third.number("n");
        assert_eq!((d.session.as_str(), d.n), (first.as_str(), 5));
        assert!(third.take_problem().is_none());
    }

    #[test]
    fn the_bound_goes_by_the_items_there_not_by_what_was_written() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        let mut db = open_bounded(&path, 3);
        for id in ["a", "b", "c"] {
            db.add(&item("n", id, id));
        }
        db.flush();
        for id in ["a", "b", "c"] {
            db.retract("n", id);
        }
        db.flush();
        db.add(&item("n", "d", "d"));
        db.flush();
        assert_eq!(ids(&mut db), ["d"], "kept: the node holds one, not four");
        // Another process clears the node: what comes next is kept all the same.
        for id in ["e", "f"] {
            db.add(&item("n", id, id));
        }
        db.flush();
        assert_eq!(clear(&path, Some("n")).expect("cleared"), 3);
        db.add(&item("n", "g", "g"));
        db.flush();
        assert_eq!(ids(&mut db), ["g"]);
        // Items received in the same microsecond: exactly the limit stays.
        let at = chrono::Utc::now();
        for k in 0..5 {
            let mut parts = item("n", &format!("t{k}"), "same time").to_parts();
            parts.received = Some(at);
            db.add(&parts.into());
        }
        db.flush();
        assert_eq!(ids(&mut db).len(), 3, "{:?}", ids(&mut db));
        let (kept, exact) = sizes(&db.conn);
        assert_eq!(kept, exact);
    }

    #[test]
    fn a_database_an_older_version_moved_aside_is_pointed_out() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        {
            let mut db = open(dir.path());
            let nb = db.number("n");
            db.outbox_put(&OutgoingItem {
                node: "n".into(),
                sender: "a@x/r".into(),
                time: Utc::now(),
                seq: Seq::new(nb.session, nb.n),
                text: "queued".into(),
            });
        }
        // As an older version does with a file of a newer schema (and one it cannot read
        // either: a schema this version does not know).
        let moved = dir.path().join("a@x.sqlite.newer-20261129T215358-4377");
        std::fs::rename(&path, &moved).expect("move");
        let unknown = dir.path().join("a@x.sqlite.newer-20261129T215359-4378");
        Connection::open(&unknown)
            .expect("create")
            .execute_batch("PRAGMA user_version = 99;")
            .expect("version");
        let o = Db::open(&path, "pubsub.x", Limits::default());
        let notice = o.notice.expect("said");
        assert!(notice.contains("moved it aside"), "{notice}");
        assert!(notice.contains(&moved.display().to_string()), "{notice}");
        assert!(notice.contains("1 item waiting"), "{notice}");
        assert!(
            !notice.contains("4378"),
            "one it cannot read is not offered: {notice}"
        );
        let seen = summary(&path).expect("summary");
        assert_eq!(
            seen.moved_aside,
            [MovedAside {
                path: moved,
                waiting: 1
            }]
        );
        // Control: none moved aside, nothing said.
        let clean = tempfile::tempdir().expect("dir");
        assert!(
            Db::open(
                &clean.path().join("a@x.sqlite"),
                "pubsub.x",
                Limits::default()
            )
            .notice
            .is_none()
        );
    }

    #[test]
    fn the_outbox_survives_and_is_sent_by_one_process_only() {
        let dir = tempfile::tempdir().expect("dir");
        let waiting = {
            let mut db = open(dir.path());
            let nb = db.number("n");
            let item = OutgoingItem {
                node: "n".into(),
                sender: "a@x/r".into(),
                time: Utc::now(),
                seq: Seq::new(nb.session, nb.n),
                text: "hello\nworld".into(),
            };
            db.outbox_put(&item);
            item
        };
        let mut db = open(dir.path());
        let mut other = open(dir.path());
        let left = db.leftovers(None);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id(), waiting.id());
        assert_eq!(left[0].text, "hello\nworld");
        assert!(other.leftovers(None).is_empty(), "held by the first");
        // The claimed session is the one the node's next items are numbered in.
        assert_eq!(db.number("n").session, waiting.seq.session);
        assert_eq!(db.discard_outbox(), 1);
        assert!(db.leftovers(None).is_empty());
        let next = db.number("n");
        assert_eq!(
            (next.n, next.void),
            (3, vec![(1, 1)]),
            "the discarded number is void"
        );
        db.outbox_put(&waiting);
        db.outbox_remove(&waiting);
        assert!(db.leftovers(Some("n")).is_empty());
    }

    #[test]
    fn items_fetched_later_take_their_place_among_the_kept_ones() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        // The service's 25 items, oldest first, none with a time of its own.
        let all: Vec<FeedItem> = (1..=25)
            .map(|k| item("n", &format!("s{k:02}"), &k.to_string()))
            .collect();
        let newest = ["s21", "s22", "s23", "s24", "s25"];
        let mut db = open_bounded(&path, 5);
        db.replace("n", &all, true);
        assert_eq!(ids(&mut db), newest);
        drop(db);
        // The next run: the five kept, the twenty older ones fetched again.
        let mut db = open_bounded(&path, 5);
        let mut given = db.cached("n");
        given.splice(0..0, all[..20].iter().cloned());
        db.replace("n", &given, false);
        assert_eq!(
            ids(&mut db),
            newest,
            "the newest five are still the ones kept"
        );
        // A live item after them goes last.
        db.add(&item("n", "s26", "26"));
        assert_eq!(ids(&mut db), ["s22", "s23", "s24", "s25", "s26"]);
    }

    #[test]
    fn an_item_sent_again_unchanged_keeps_its_place_and_a_changed_one_moves_last() {
        let dir = tempfile::tempdir().expect("dir");
        let mut db = Db::open(
            &dir.path().join("a@x.sqlite"),
            "pubsub.x",
            Limits::default(),
        )
        .db
        .expect("opened");
        for id in ["s1", "s2", "s3"] {
            db.add(&item("n", id, "v"));
        }
        let before = db.cached("n");
        // ejabberd sends the last item again on subscribe.
        db.add(&item("n", "s1", "v"));
        assert_eq!(ids(&mut db), ["s1", "s2", "s3"]);
        assert_eq!(
            db.cached("n")[0].received,
            before[0].received,
            "when it was received"
        );
        db.add(&item("n", "s1", "changed"));
        assert_eq!(ids(&mut db), ["s2", "s3", "s1"]);
    }

    #[test]
    fn places_go_between_the_known_ones() {
        assert_eq!(place(&[None, None, Some(10)], 100), [8, 9, 10]);
        assert_eq!(place(&[Some(10), None, Some(20)], 100), [10, 11, 20]);
        // No room between 10 and 11: the known one after moves up.
        assert_eq!(
            place(&[Some(10), None, None, Some(11), Some(12)], 100),
            [10, 11, 12, 13, 14]
        );
        assert_eq!(place(&[Some(10), Some(5)], 100), [10, 11]);
        assert_eq!(place(&[Some(10), None, None], 100), [10, 100, 101]);
        assert_eq!(place(&[Some(500), None], 100), [500, 501]);
        assert_eq!(place(&[None, None], 100), [100, 101]);
        assert!(place(&[], 1).is_empty());
    }

    #[test]
    fn a_node_stays_bounded_over_many_writes_and_beside_another_run() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        let mut a = open_bounded(&path, 10);
        // One write each (`cached` writes what is pending): counted only now and then.
        for k in 0..25 {
            a.add(&item("n", &format!("a{k:02}"), "x"));
            assert!(ids(&mut a).len() <= 10, "after {k}");
        }
        let first = ids(&mut a);
        assert_eq!(first.first().map(String::as_str), Some("a15"));
        assert_eq!(first.len(), 10);
        // Another run on the account writes the node too; this one's count of it is then
        // too low, until it counts again.
        let mut b = open_bounded(&path, 10);
        for k in 0..10 {
            b.add(&item("n", &format!("b{k:02}"), "x"));
        }
        assert_eq!(ids(&mut b).len(), 10);
        for k in 0..=RECOUNT_WRITES {
            a.add(&item("n", &format!("c{k:02}"), "x"));
            let _ = ids(&mut a);
        }
        let last = ids(&mut a);
        assert_eq!(last.len(), 10, "{last:?}");
        assert!(last.iter().all(|i| i.starts_with('c')), "{last:?}");
    }

    #[test]
    fn items_are_kept_replaced_and_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        let mut db = open_bounded(&path, 3);
        for k in 0..5 {
            db.add(&item("n", &format!("i{k}"), &k.to_string()));
        }
        db.add(&item("m", "x", "other node"));
        db.retract("n", "i4");
        assert_eq!(
            ids(&mut db),
            ["i1", "i2", "i3"],
            "the newest 3 of those left"
        );
        let back = &db.cached("m")[0];
        assert_eq!(back.text(), item("m", "x", "other node").text());
        assert!(back.received.is_some());
        db.replace(
            "n",
            &[item("n", "i3", "changed"), item("n", "i9", "new")],
            true,
        );
        let kept = db.cached("n");
        let ids: Vec<_> = kept
            .iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect();
        assert_eq!(ids, ["i3", "i9"]);
        assert!(kept[0].xml().contains("changed"), "{}", kept[0].xml());
        // Incremental: what is kept stays as it is (only new ids are written).
        db.replace(
            "n",
            &[
                item("n", "i3", "again"),
                item("n", "i9", "new"),
                item("n", "j", "j"),
            ],
            false,
        );
        let kept = db.cached("n");
        assert_eq!(kept.len(), 3);
        assert!(kept[0].xml().contains("changed"), "{}", kept[0].xml());
        db.clear("n");
        assert!(db.cached_ids("n").is_empty());
        assert_eq!(db.cached_ids("m").len(), 1);
    }

    /// The size row, and what the items take in fact.
    fn sizes(conn: &Connection) -> (i64, i64) {
        let kept: i64 = conn
            .query_row("SELECT bytes FROM size", [], |r| r.get(0))
            .expect("size");
        let exact: i64 = conn
            .query_row(
                "SELECT COALESCE(SUM(length(CAST(xml AS BLOB))), 0) FROM kept",
                [],
                |r| r.get(0),
            )
            .expect("sum");
        (kept, exact)
    }

    #[test]
    fn the_size_kept_is_what_the_items_take_after_every_kind_of_write() {
        type Step = (&'static str, fn(&mut Db));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        let mut db = open_bounded(&path, 4);
        let steps: [Step; 11] = [
            ("new items", |db| {
                for k in 0..3 {
                    db.add(&item("n", &format!("i{k}"), "text"));
                }
            }),
            ("one changed, longer", |db| {
                db.add(&item("n", "i1", "a much longer text"));
            }),
            ("one sent again unchanged", |db| {
                db.add(&item("n", "i1", "a much longer text"));
            }),
            ("one changed, shorter", |db| db.add(&item("n", "i1", "t"))),
            ("past the node's bound", |db| {
                for k in 3..9 {
                    db.add(&item("n", &format!("i{k}"), &"x".repeat(k)));
                }
            }),
            ("retracted", |db| db.retract("n", "i8")),
            ("retracted, not kept", |db| db.retract("n", "nope")),
            ("another node", |db| db.add(&item("m", "x", "other"))),
            ("replaced by a fetch", |db| {
                let fetched = [
                    item("n", "i7", "fetched and changed"),
                    item("n", "k", "new"),
                ];
                db.replace("n", &fetched, true);
            }),
            ("replaced, incremental", |db| {
                let listed = [item("n", "i7", "ignored"), item("n", "k2", "new too")];
                db.replace("n", &listed, false);
            }),
            ("cleared", |db| db.clear("n")),
        ];
        for (what, step) in steps {
            let before = sizes(&db.conn).1;
            step(&mut db);
            db.flush();
            let (kept, exact) = sizes(&db.conn);
            assert_eq!(kept, exact, "after: {what}");
            if what != "one sent again unchanged" && what != "retracted, not kept" {
                assert_ne!(exact, before, "control: {what} changed what is kept");
            }
        }
        assert_eq!(ids(&mut db), Vec::<String>::new());
        drop(db);
        // The size bound: the oldest go, whatever their node.
        let tight = Limits {
            per_node: 100,
            max_bytes: 700,
        };
        let mut db = Db::open(&path, "pubsub.x", tight).db.expect("opened");
        for k in 0..10 {
            db.add(&item("n", &format!("j{k}"), "some text"));
        }
        db.flush();
        let (kept, exact) = sizes(&db.conn);
        assert_eq!(kept, exact);
        assert!(kept <= 700 && kept > 0, "{kept}");
        assert!(db.cached_ids("n").contains("j9"), "the newest stay");
        assert!(
            db.cached_ids("m").is_empty(),
            "the oldest went, whatever their node"
        );
        // And `pubsub-tui cache clear`.
        drop(db);
        assert!(clear(&path, None).expect("cleared") > 0);
        let conn = Connection::open(&path).expect("open");
        assert_eq!(sizes(&conn), (0, 0));
    }

    /// A database as schema 1 left it: the size kept by triggers, one item.
    fn schema_1(path: &Path) {
        let conn = Connection::open(path).expect("create");
        // The other tables are as they were.
        conn.execute_batch(SCHEMA).expect("schema");
        conn.execute_batch(
            "DROP TABLE kept;
             DROP TABLE size;
             CREATE TABLE items (service TEXT NOT NULL, node TEXT NOT NULL, id TEXT NOT NULL,
                ord INTEGER NOT NULL, xml TEXT NOT NULL, PRIMARY KEY (service, node, id))
                WITHOUT ROWID;
             CREATE INDEX items_by_ord ON items(service, node, ord);
             CREATE INDEX items_oldest ON items(ord);
             CREATE TABLE size (bytes INTEGER NOT NULL);
             INSERT INTO size VALUES (0);
             CREATE TRIGGER items_added AFTER INSERT ON items
                BEGIN UPDATE size SET bytes = bytes + length(CAST(NEW.xml AS BLOB)); END;
             CREATE TRIGGER items_removed AFTER DELETE ON items
                BEGIN UPDATE size SET bytes = bytes - length(CAST(OLD.xml AS BLOB)); END;
             CREATE TRIGGER items_changed AFTER UPDATE OF xml ON items
                BEGIN UPDATE size SET bytes = bytes - length(CAST(OLD.xml AS BLOB))
                                            + length(CAST(NEW.xml AS BLOB)); END;
             INSERT INTO items VALUES ('pubsub.x', 'n', 'old', 1,
                '<item xmlns=''http://jabber.org/protocol/pubsub'' id=''old''/>');
             -- A size gone wrong (a write it did not count): the upgrade counts again.
             UPDATE size SET bytes = 12345;
             PRAGMA user_version = 1;",
        )
        .expect("schema 1");
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .expect("open")
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version")
    }

    #[test]
    fn a_schema_1_database_is_brought_up_to_date_and_its_size_counted_again() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        schema_1(&path);
        // A look at it leaves it as it is (the version that wrote it can still read it).
        let seen = summary(&path).expect("summary");
        assert_eq!(seen.nodes.len(), 1);
        assert_eq!(seen.nodes[0].items, 1);
        assert_eq!(user_version(&path), 1, "a look does not upgrade");
        let mut db = open(dir.path());
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let count = |sql: &str| -> i64 { db.conn.query_row(sql, [], |r| r.get(0)).expect("count") };
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'"),
            0
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'items'"),
            0,
            "renamed: a schema 1 process still running cannot write items the size misses"
        );
        let (kept, exact) = sizes(&db.conn);
        assert_eq!(kept, exact, "counted again");
        assert_ne!(kept, 12345, "control: it was wrong");
        assert_eq!(ids(&mut db), ["old"], "what was kept stays");
        db.add(&item("n", "new", "text"));
        db.retract("n", "old");
        db.flush();
        let (kept, exact) = sizes(&db.conn);
        assert_eq!(kept, exact, "counted once, not by a trigger as well");
        assert!(kept > 0);
        drop(db);
        // A schema 1 process that opened the file meanwhile made `items` again, wrote to it
        // and set the version back: the next run takes its rows in.
        Connection::open(&path)
            .expect("open")
            .execute_batch(
                "CREATE TABLE items (service TEXT NOT NULL, node TEXT NOT NULL, id TEXT NOT NULL,
                    ord INTEGER NOT NULL, xml TEXT NOT NULL, PRIMARY KEY (service, node, id))
                    WITHOUT ROWID;
                 INSERT INTO items VALUES ('pubsub.x', 'n', 'late', 9,
                    '<item xmlns=''http://jabber.org/protocol/pubsub'' id=''late''/>');
                 PRAGMA user_version = 1;",
            )
            .expect("an old process's writes");
        let mut db = open(dir.path());
        let mut have = ids(&mut db);
        have.sort();
        assert_eq!(have, ["late", "new"]);
        let items_table: i64 = db
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'items'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(items_table, 0);
        let (kept, exact) = sizes(&db.conn);
        assert_eq!(kept, exact);
        drop(db);
        // `cache --clear` on a schema 1 file brings it up to date first, too.
        let other = dir.path().join("b@x.sqlite");
        schema_1(&other);
        assert_eq!(clear(&other, None).expect("cleared"), 1);
        assert_eq!(user_version(&other), SCHEMA_VERSION);
        assert_eq!(sizes(&Connection::open(&other).expect("open")), (0, 0));
    }

    #[test]
    fn a_damaged_or_newer_database_is_moved_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a@x.sqlite");
        std::fs::write(
            &path,
            b"this is not a database, just text that is long enough..",
        )
        .expect("write");
        let o = Db::open(&path, "pubsub.x", Limits::default());
        let notice = o.notice.expect("said");
        assert!(
            notice.contains("damaged") && notice.contains("moved to"),
            "{notice}"
        );
        let mut db = o.db.expect("a new one");
        assert_eq!(db.number("n").n, 1);
        drop(db);
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99).expect("set");
        drop(conn);
        let o = Db::open(&path, "pubsub.x", Limits::default());
        let notice = o.notice.expect("said");
        assert!(notice.contains("newer pubsub-tui (schema 99)"), "{notice}");
        assert!(o.db.is_some());
        let aside = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.contains(".damaged-") || n.contains(".newer-")
            })
            .count();
        assert!(aside >= 2, "both kept aside");
    }

    #[test]
    fn a_directory_that_cannot_be_written_gives_no_cache_and_says_why() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).expect("mkdir");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        // Root writes anywhere: a read-only mount then (root may mount).
        let mounted = std::fs::write(ro.join("probe"), b"x").is_ok();
        if mounted {
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
                .arg(&ro)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "as root, a read-only tmpfs can be mounted");
        }
        let o = Db::open(&ro.join("a@x.sqlite"), "pubsub.x", Limits::default());
        if mounted {
            let _ = std::process::Command::new("umount").arg(&ro).status();
        }
        assert!(o.db.is_none());
        let notice = o.notice.expect("said");
        assert!(notice.contains("no cache this run"), "{notice}");
        // The positive control: a directory that can be written gives a store.
        assert!(
            Db::open(&dir.path().join("a@x.sqlite"), "s", Limits::default())
                .db
                .is_some()
        );
    }
}
