//! The `pubsub-tui` binary run as a user runs it, against a test server.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::io::Write as _;
use std::process::{Command as Process, Output, Stdio};

use pubsub_tui::xmpp::connect::ConnectConfig;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pubsub-tui");

/// Where the owner's commands go, and who watches.
pub struct Target {
    pub port: u16,
    pub service: String,
    /// The account that creates and owns the node, and its password.
    pub owner: String,
    pub password: String,
    /// Another account, subscribed to the node (it sees the events).
    pub bob: ConnectConfig,
    pub bob_bare: String,
}

impl Target {
    /// Prosody's admin at its pubsub component (bob watches).
    pub fn prosody_admin(server: &pubsub_tui::prosody::Prosody, bob: ConnectConfig) -> Self {
        Self {
            port: server.port,
            service: pubsub_tui::prosody::PUBSUB.into(),
            owner: pubsub_tui::prosody::ADMIN.into(),
            password: server.admin_password.clone(),
            bob,
            bob_bare: "bob@localhost".into(),
        }
    }

    /// A new account `user` on Prosody, at `service` (bob watches).
    pub fn prosody_user(
        server: &pubsub_tui::prosody::Prosody,
        user: &str,
        service: &str,
        bob: ConnectConfig,
    ) -> Self {
        let (cfg, _) = super::account(server, user, "t");
        Self {
            port: server.port,
            service: service.into(),
            owner: user.into(),
            password: cfg.password.expose().to_owned(),
            bob,
            bob_bare: "bob@localhost".into(),
        }
    }

    /// `pubsub-tui ARGS` as the owner (stdin closed: no terminal to confirm on).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let state = tempfile::tempdir().expect("state dir");
        let (first, rest) = args.split_at(if args[0] == "node" { 2 } else { 1 });
        let mut child = Process::new(BIN)
            .args(first)
            .args(["--jid", &format!("{}@localhost", self.owner)])
            .args([
                "--server",
                &format!("127.0.0.1:{}", self.port),
                "--insecure-plain-tcp",
            ])
            .args(["--service", &self.service])
            .args(rest)
            .env("PUBSUB_TUI_PASSWORD", &self.password)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("XDG_STATE_HOME", state.path())
            .env("XDG_DATA_HOME", state.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes());
        child.wait_with_output().expect("finishes")
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        self.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
