//! What the user changed about the nodes they follow, kept between runs: a small JSON file in
//! the XDG state dir (`$XDG_STATE_HOME/pubsub-tui/followed.json`), one entry per account and
//! service, each with the nodes followed (`added`) and left (`removed`) in the explorer or
//! with `subscribe` and `unsubscribe`.
//!
//! Why a state file and not the config file: the config file is the user's own text (comments,
//! order, perhaps kept in a dotfiles repository or read-only); a program rewriting it would
//! lose what it does not understand. The state dir is where the XDG spec puts what a program
//! learns at run time and should keep. The config says where to start; this file records the
//! changes since.
//!
//! Every change reads the file again before writing it (two runs may change it), and is
//! written whole to a temporary file that is then renamed over it, so it is never half
//! written. A file that cannot be read is left alone: nothing is written over it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Largest state file read (it holds node names; this is far more than any use needs).
const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The changes recorded for one account at one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

impl Changes {
    /// The nodes to follow: the configured ones less those left, then those added.
    pub fn apply(&self, configured: &[String]) -> Vec<String> {
        let mut out: Vec<String> = configured
            .iter()
            .filter(|n| !self.removed.contains(n))
            .cloned()
            .collect();
        for n in &self.added {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }

    fn record(&mut self, node: &str, follow: bool) {
        let (to, from) = if follow {
            (&mut self.added, &mut self.removed)
        } else {
            (&mut self.removed, &mut self.added)
        };
        from.retain(|n| n != node);
        if !to.iter().any(|n| n == node) {
            to.push(node.to_owned());
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    /// By "account service" (the account's bare JID, a space, the service's JID).
    #[serde(default)]
    accounts: BTreeMap<String, Changes>,
}

/// The state file, and whose entry in it this run uses.
#[derive(Debug, Clone)]
pub struct FollowState {
    path: PathBuf,
    key: String,
}

impl FollowState {
    pub fn new(path: PathBuf, account: &str, service: &str) -> Self {
        Self {
            path,
            key: format!("{account} {service}"),
        }
    }

    /// The default file, if the system has a state dir.
    pub fn default_path() -> Option<PathBuf> {
        dirs::state_dir().map(|d| d.join("pubsub-tui").join("followed.json"))
    }

    /// The changes recorded for this account and service (none when there is no file yet).
    pub fn load(&self) -> anyhow::Result<Changes> {
        Ok(read(&self.path)?
            .accounts
            .get(&self.key)
            .cloned()
            .unwrap_or_default())
    }

    /// Record that `node` is followed (or left) from now on.
    pub fn record(&self, node: &str, follow: bool) -> anyhow::Result<()> {
        let mut file = read(&self.path)?;
        file.version = 1;
        file.accounts
            .entry(self.key.clone())
            .or_default()
            .record(node, follow);
        write(&self.path, &file)
    }
}

fn read(path: &Path) -> anyhow::Result<File> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if meta.len() > MAX_BYTES {
        bail!(
            "{} is {} bytes, more than a state file can be ({MAX_BYTES}); move it away",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // An empty file (a truncated write, a `touch`) holds nothing yet.
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    let file: File = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a state file this version can read (fix or move it away; it is left as it is)",
            path.display()
        )
    })?;
    if file.version > 1 {
        bail!(
            "{} was written by a newer pubsub-tui (version {}); it is left as it is",
            path.display(),
            file.version
        );
    }
    Ok(file)
}

fn write(path: &Path, file: &File) -> anyhow::Result<()> {
    let dir = path.parent().context("the state file has no directory")?;
    crate::config::create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let text = serde_json::to_string_pretty(file)?;
    crate::config::write_private(&tmp, &text)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_over_the_configured_nodes() {
        let mut c = Changes::default();
        c.record("b", false);
        c.record("x", true);
        c.record("y", true);
        c.record("y", false);
        assert_eq!(c.apply(&["a".into(), "b".into()]), ["a", "x"]);
        c.record("b", true);
        assert_eq!(c.apply(&["a".into(), "b".into()]), ["a", "b", "x"]);
    }

    #[test]
    fn the_file_keeps_each_account_and_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("state").join("followed.json");
        let alice = FollowState::new(path.clone(), "alice@x", "pubsub.x");
        let bob = FollowState::new(path.clone(), "bob@x", "pubsub.x");
        assert_eq!(alice.load().expect("no file yet"), Changes::default());
        alice.record("news", true).expect("write");
        bob.record("other", true).expect("write");
        alice.record("old", false).expect("write");
        let a = alice.load().expect("read");
        assert_eq!(a.added, ["news"]);
        assert_eq!(a.removed, ["old"]);
        assert_eq!(bob.load().expect("read").added, ["other"]);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "not readable by others: {mode:o}");
        // A damaged file is reported and left alone.
        std::fs::write(&path, "{not json").expect("damage");
        let err = alice.record("x", true).expect_err("refused");
        assert!(err.to_string().contains("left as it is"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("still there"),
            "{not json"
        );
    }
}
