//! The seed-era Wokkel peer (tests/wokkel/peer.py) as a child process, with its JSON lines.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pubsub_tui::prosody::{self, Prosody};

/// The Python that has Wokkel (`scripts/ensure-deps` makes target/wokkel-venv), or `None`
/// (the test skips; under `CI=true` that is a failure).
pub fn python() -> Option<PathBuf> {
    python_with("wokkel, twisted")
}

/// The venv's Python, if it can import `modules` (`None`, or a failure under `CI=true`).
pub fn python_with(modules: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PUBSUB_TUI_WOKKEL_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/wokkel-venv/bin/python"),
        PathBuf::from,
    );
    let ok = Command::new(&path)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and no Python with {modules} at {} (run scripts/ensure-wokkel)",
        path.display()
    );
    eprintln!("SKIPPED: no Python with {modules} at {}", path.display());
    None
}

pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    pub jid: String,
}

impl Peer {
    /// Register `user` and start the peer in `role` ("client" or "relay") as user@localhost/res.
    pub fn start(
        python: &std::path::Path,
        server: &Prosody,
        dir: &std::path::Path,
        role: &str,
        user: &str,
        resource: &str,
        extra: &[&str],
    ) -> Self {
        let password = prosody::random_password();
        server
            .register(user, &password)
            .expect("register the Wokkel account");
        let pw = super::password_file_named(dir, &format!("{user}-password"), &password);
        let jid = format!("{user}@{}/{resource}", prosody::DOMAIN);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wokkel/peer.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([
                role,
                &jid,
                &pw.display().to_string(),
                &server.port.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the Wokkel peer starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let mut peer = Self { child, lines, jid };
        peer.wait_line(20, "the Wokkel peer ready", |v| v["kind"] == "ready");
        peer
    }

    /// The first line matching `pred` within `secs`; an `error` line fails the test.
    pub fn wait_line(
        &mut self,
        secs: u64,
        what: &str,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out after {secs} s waiting for {what}"));
            assert!(v["kind"] != "error", "the Wokkel peer reported {v}");
            if pred(&v) {
                return v;
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
