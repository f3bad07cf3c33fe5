//! The `serve` binary as a child process on a private Prosody, so a test can `kill -9` it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pubsub_tui::prosody::{self, Prosody};

pub const RESOURCE: &str = "server";

pub struct Serve {
    child: Option<Child>,
    args: Vec<String>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub jid: String,
}

impl Serve {
    /// Register `user` and start `serve` as `user@localhost/server`, storing in `dir`.
    pub fn start(server: &Prosody, user: &str, dir: &Path, extra: &[&str]) -> Self {
        let password = prosody::random_password();
        server
            .register(user, &password)
            .expect("register the service account");
        let pw = super::password_file_named(dir, "serve-password", &password);
        let jid = format!("{user}@{}/{RESOURCE}", prosody::DOMAIN);
        Self::launch(
            vec![
                "--jid".into(),
                jid.clone(),
                "--server".into(),
                server.server(),
                "--insecure-plain-tcp".into(),
                "--password-file".into(),
                pw.display().to_string(),
            ],
            dir,
            jid,
            extra,
        )
    }

    /// Start `serve` with `how` (the connection flags), storing in `dir`, logging at info.
    fn launch(how: Vec<String>, dir: &Path, jid: String, extra: &[&str]) -> Self {
        let data_dir = dir.join("data");
        let log = dir.join("serve.log");
        let mut args: Vec<String> = vec!["serve".into()];
        args.extend(how);
        args.extend([
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--log-file".into(),
            log.display().to_string(),
            "--log-level".into(),
            "info".into(),
        ]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut s = Self {
            child: None,
            args,
            data_dir,
            log,
            jid,
        };
        s.spawn();
        s
    }

    /// Start `serve` as the external component [`prosody::COMPONENT`] of `server`, storing in
    /// `dir`.
    pub fn start_component(server: &Prosody, dir: &Path, extra: &[&str]) -> Self {
        let secret = super::password_file_named(dir, "component-secret", &server.component_secret);
        Self::launch(
            vec![
                "--component".into(),
                prosody::COMPONENT.into(),
                "--server".into(),
                format!("127.0.0.1:{}", server.component_port),
                "--secret-file".into(),
                secret.display().to_string(),
            ],
            dir,
            prosody::COMPONENT.into(),
            extra,
        )
    }

    fn spawn(&mut self) {
        let before = self.online_count();
        let child = Command::new(env!("CARGO_BIN_EXE_pubsub-tui"))
            .args(&self.args)
            .env_remove("PUBSUB_TUI_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.online_count() == before {
            assert!(
                Instant::now() < deadline,
                "serve did not come online in 20 s; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the log has `text`, failing the test after `secs` seconds.
    pub async fn wait_log(&self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in serve's log within {secs} s; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn online_count(&self) -> usize {
        self.log_text().matches("online as").count()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same database.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let c = self.child.as_mut().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let status = c.wait().expect("wait");
        self.child = None;
        status
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Wait until a client core is online and has its node's first snapshot.
pub async fn subscribed(net: &mut pubsub_tui::xmpp::NetHandle) {
    use pubsub_tui::xmpp::{NetEvent, SnapshotReason};
    super::wait_online(net).await;
    super::wait_for(net, 20, "the initial snapshot", |e| match e {
        NetEvent::Snapshot {
            reason: SnapshotReason::Initial,
            ..
        } => Some(()),
        NetEvent::ResyncFailed { error, .. } => panic!("initial retrieve failed: {error}"),
        _ => None,
    })
    .await;
}
