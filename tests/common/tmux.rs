//! Driving a real terminal program in tmux: keys in, screen out.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    name: String,
}

impl Tmux {
    /// Whether tmux can run here. Without it the test skips, except under `CI=true`, where
    /// that is a failure.
    pub fn present_or_skip() -> bool {
        if Self::available() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no tmux"
        );
        eprintln!("SKIPPED: tmux is not installed");
        false
    }

    pub fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn start(name: &str, cmd: &str) -> Self {
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "100",
                "-y",
                "30",
                cmd,
            ])
            .status()
            .expect("tmux runs");
        assert!(status.success());
        Self {
            name: name.to_owned(),
        }
    }

    /// Run the TUI binary as alice@localhost over plain TCP to `server` (HOST:PORT), with a
    /// password file and a log file, plus `extra` flags. After it exits the pane shows
    /// `EXIT:<status>` for a minute.
    pub fn start_tui(
        name: &str,
        server: &str,
        password_file: &std::path::Path,
        log: &std::path::Path,
        extra: &str,
    ) -> Self {
        let state = log.with_file_name("state").display().to_string();
        let cmd = format!(
            "XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME={state} XDG_DATA_HOME={state} {} --jid alice@localhost --server {server} \
             --insecure-plain-tcp --service pubsub.localhost --password-file {} --log-file {} \
             {extra}; echo EXIT:$?; sleep 60",
            env!("CARGO_BIN_EXE_pubsub-tui"),
            password_file.display(),
            log.display()
        );
        Self::start(&format!("{name}-{}", std::process::id()), &cmd)
    }

    /// The session's name (a tmux target).
    pub fn name(&self) -> String {
        self.name.clone()
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = Command::new("tmux")
                .args(["send-keys", "-t", &self.name, k])
                .status()
                .expect("tmux");
            assert!(status.success());
            // One key at a time: Esc followed at once by a letter reads as Alt+letter.
            std::thread::sleep(Duration::from_millis(120));
        }
    }

    pub fn text(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux");
        assert!(status.success());
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn display(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, format])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn resize(&self, w: u16, h: u16) {
        let status = Command::new("tmux")
            .args([
                "resize-window",
                "-t",
                &self.name,
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
            ])
            .status()
            .expect("tmux");
        assert!(status.success());
    }

    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}
