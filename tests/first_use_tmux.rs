//! What a new user hits first, in a real terminal (tmux) against a private Prosody: two runs
//! on one account, big items, Shift-Tab, pasted lines, the compact cursor, auto-publish off by
//! default, closing the terminal on the demo, and a panic that leaves the shell usable.

mod common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::*;
use pubsub_tui::prosody::{self, Options, Prosody};

const BIN: &str = env!("CARGO_BIN_EXE_pubsub-tui");

/// `pubsub-tui SUB` as `user` on `server`, password from the environment.
fn cli(server: &Prosody, sub: &str, user: &str, password: &str) -> Command {
    let mut c = Command::new(BIN);
    c.arg(sub)
        .args(["--jid", &format!("{user}@{}", prosody::DOMAIN)])
        .args(["--server", &server.server(), "--insecure-plain-tcp"])
        .args(["--service", prosody::PUBSUB])
        .env("PUBSUB_TUI_PASSWORD", password)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", common::state_home())
        .env("XDG_DATA_HOME", common::state_home());
    c
}

/// A `watch` whose JSON lines are collected in the background.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Watch {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch starts");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
                sink.lock().expect("lock").push(v);
            }
        });
        Self { child, lines }
    }

    fn count(&self, pred: impl Fn(&serde_json::Value) -> bool) -> usize {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|v| pred(v))
            .count()
    }

    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.count(&pred) == 0 {
            assert!(Instant::now() < deadline, "watch: no {what} in {secs} s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn items(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter(|v| v["kind"] == "item")
            .cloned()
            .collect()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(kind: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["kind"] == kind
}

fn onlines(v: &serde_json::Value) -> bool {
    v["kind"] == "connection" && v["state"] == "online"
}

fn log_onlines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("online as alice@localhost")
        .count()
}

/// The TUI in tmux as alice on a private Prosody with the open node `node`.
struct TuiRun {
    server: Prosody,
    /// alice's password.
    pw: String,
    log: PathBuf,
    tmux: Tmux,
    _dir: tempfile::TempDir,
}

impl TuiRun {
    /// `None` when tmux or Prosody is missing (a skip; a failure under `CI=true`).
    async fn start(name: &str, node: &str, extra: &str) -> Option<Self> {
        if !Tmux::present_or_skip() {
            return None;
        }
        let server = start_prosody(&Options::default())?;
        create_nodes(&server, &[node]).await;
        let (_, pw) = account(&server, "alice", "unused");
        let dir = tempfile::tempdir().expect("tempdir");
        let pw_file = password_file(dir.path(), &pw);
        let log = dir.path().join("tui.log");
        let tmux = Tmux::start_tui(
            name,
            &server.server(),
            &pw_file,
            &log,
            &format!("--node {node} {extra}"),
        );
        Some(Self {
            server,
            pw,
            log,
            tmux,
            _dir: dir,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_account_do_not_knock_each_other_off() {
    let Some(TuiRun {
        server,
        pw,
        log,
        tmux,
        _dir,
    }) = TuiRun::start("two-runs", "demo", "--log-level info").await
    else {
        return;
    };
    tmux.wait_for("the TUI online", 20, |s| {
        s.contains("online as alice@localhost")
    });
    let mut watch_cmd = cli(&server, "watch", "alice", &pw);
    watch_cmd.args(["--node", "demo"]);
    let watch = Watch::start(watch_cmd);
    watch.wait_for("its initial resync", 20, is("resync"));
    // 60 s of publishing from a third run of the same account, every 10 s.
    for i in 0..6 {
        let out = cli(&server, "publish", "alice", &pw)
            .args(["--node", "demo", &format!("ping {i}")])
            .output()
            .expect("publish runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(10));
    }
    tmux.wait_for("the last item in the TUI", 10, |s| s.contains("ping 5"));
    assert_eq!(watch.items().len(), 6, "each item once, live");
    assert_eq!(watch.count(onlines), 1, "watch: one login, no reconnect");
    assert_eq!(
        watch.count(|v| v["kind"] == "connection"
            && v["state"] != "online"
            && v["state"] != "connecting"),
        0,
        "watch: never lost the link"
    );
    assert_eq!(
        watch.count(is("resync")),
        1,
        "watch: one resync (the initial one)"
    );
    assert_eq!(log_onlines(&log), 1, "the TUI: one login, no reconnect");
    let screen = tmux.screen();
    assert!(!screen.contains("stored items retrieved"), "{screen}");
    watch.stop();
    tmux.keys(&["q"]);
    tmux.wait_for("exit", 10, |s| s.contains("EXIT:0"));

    // The user forces one resource on two runs: the one replaced stops, once, and says why.
    let forced = |c: &mut Command| {
        c.args(["--node", "demo", "--resource", "fixed"]);
    };
    let mut a = cli(&server, "watch", "alice", &pw);
    forced(&mut a);
    let first = Watch::start(a);
    first.wait_for("the first run's resync", 20, is("resync"));
    let mut b = cli(&server, "watch", "alice", &pw);
    forced(&mut b);
    let mut second = Watch::start(b);
    second.wait_for("the second run's resync", 20, is("resync"));
    let mut first = first;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = first.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the replaced run did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut first.child.stderr.take().expect("stderr"), &mut err)
        .expect("read");
    assert!(
        err.contains("another connection logged in as alice@localhost/fixed and replaced this one"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "said once: {err}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        second.child.try_wait().expect("wait").is_none(),
        "the other one keeps running"
    );
    assert_eq!(second.count(onlines), 1, "and was not knocked off");
    second.stop();
}

/// Text of `bytes` bytes (as UTF-8): ASCII, or CJK (3 bytes a character).
fn text_of(bytes: usize, cjk: bool) -> String {
    if cjk {
        "日本語".repeat(bytes / 9)
    } else {
        "z".repeat(bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_items_arrive_live_at_a_tui_and_a_watch() {
    let Some(TuiRun {
        server,
        log,
        tmux,
        _dir,
        ..
    }) = TuiRun::start("big-items", "big", "").await
    else {
        return;
    };
    let (_, bob_pw) = account(&server, "bob", "unused");
    tmux.wait_for("the TUI's initial resync", 20, |s| {
        s.contains("big live") && s.contains("no stored items")
    });
    let mut watch_cmd = cli(&server, "watch", "bob", &bob_pw);
    watch_cmd.args(["--node", "big"]);
    let watch = Watch::start(watch_cmd);
    watch.wait_for("its initial resync", 20, is("resync"));
    let mut sent = Vec::new();
    for kib in [8, 64, 250] {
        for cjk in [false, true] {
            let text = text_of(kib * 1024, cjk);
            let mut p = cli(&server, "publish", "bob", &bob_pw)
                .args(["--node", "big"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("publish");
            std::io::Write::write_all(&mut p.stdin.take().expect("stdin"), text.as_bytes())
                .expect("write");
            let out = p.wait_with_output().expect("publish ends");
            assert!(
                out.status.success(),
                "{kib} KiB (cjk {cjk}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            sent.push(text);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while watch.items().len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "watch has {} items",
            watch.items().len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got: Vec<String> = watch
        .items()
        .iter()
        .map(|v| v["text"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(got.len(), sent.len());
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g.len(), s.len(), "whole, not cut");
        assert!(g == s, "the same text");
    }
    assert_eq!(watch.count(onlines), 1, "watch: no reconnect");
    tmux.wait_for("all six in the TUI", 20, |s| s.contains("big · 6 items"));
    assert_eq!(log_onlines(&log), 1, "the TUI: no reconnect");
    watch.stop();
    tmux.keys(&["q"]);
    tmux.wait_for("exit", 10, |s| s.contains("EXIT:0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_paste_cursor_and_auto_publish_as_a_user_meets_them() {
    let Some(TuiRun {
        server,
        pw,
        tmux,
        _dir,
        ..
    }) = TuiRun::start("keys", "demo", "").await
    else {
        return;
    };
    tmux.wait_for("online", 20, |s| s.contains("demo live"));
    // Auto-publish is off unless asked for.
    std::thread::sleep(Duration::from_secs(6));
    let s = tmux.screen();
    assert!(
        s.contains("auto off") && !s.contains("auto-publish #"),
        "{s}"
    );
    // Shift-Tab, twice from the feed: the subscriptions, then the compose box.
    assert!(s.contains("(i to write)"), "{s}");
    tmux.keys(&["BTab", "BTab"]);
    tmux.wait_for("the compose box focused", 5, |s| {
        s.contains("(Enter publishes)")
    });
    // A paste of two lines (tmux sends a CR for the line break, as terminals do).
    let status = Command::new("tmux")
        .args(["set-buffer", "-b", "two-lines", "first line\nsecond line"])
        .status()
        .expect("tmux");
    assert!(status.success());
    let status = Command::new("tmux")
        .args(["paste-buffer", "-p", "-b", "two-lines", "-t", &tmux.name()])
        .status()
        .expect("tmux");
    assert!(status.success());
    tmux.wait_for("the pasted lines", 5, |s| {
        s.contains("first line⏎second line")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("published", 10, |s| s.contains("published"));
    let items = node_items(&server, "alice", &pw, "demo").await;
    assert_eq!(
        items
            .iter()
            .map(pubsub_tui::feed::FeedItem::text)
            .collect::<Vec<_>>(),
        ["first line\nsecond line"]
    );
    // The cursor sits right after the text, in the compact layout too.
    tmux.text("abc");
    tmux.wait_for("typed", 5, |s| s.contains("abc"));
    assert_eq!(
        tmux.display("#{cursor_x}"),
        "4",
        "full layout: after the border"
    );
    tmux.resize(40, 12);
    tmux.wait_for("the compact layout", 5, |s| s.contains("demo live 1"));
    assert_eq!(tmux.display("#{cursor_x}"), "3", "compact: no side border");
    tmux.resize(100, 30);
    // `a` turns auto-publish on, to the selected node.
    tmux.keys(&["Escape", "a"]);
    tmux.wait_for("auto on", 5, |s| {
        s.contains("auto 5s → demo") && s.contains("auto-publish on: an item every 5 s to demo")
    });
    tmux.wait_for("an auto-published item", 12, |s| {
        s.contains("auto-publish #1")
    });
    // "abc" is still a draft: quitting asks first.
    tmux.keys(&["a", "q"]);
    tmux.wait_for("the quit question", 5, |s| {
        s.contains("the draft in the compose box")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("exit", 10, |s| s.contains("EXIT:0"));
}

/// The private Prosody directories whose owner is the process `pid`.
fn prosody_dirs_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pubsub-tui-prosody-"))
                && std::fs::read_to_string(p.join("owner"))
                    .is_ok_and(|o| o.split_whitespace().next() == Some(&pid.to_string()))
        })
        .collect()
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The demo's process (the pane's command, or its child when a shell runs it).
fn demo_pid(tmux: &Tmux) -> u32 {
    let pane: u32 = tmux.display("#{pane_pid}").parse().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for pid in std::iter::once(pane).chain(children(pane)) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.iter().any(|a| *a == b"demo") && args[0].ends_with(b"pubsub-tui") {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no demo process under the pane");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The demo's Prosody: its directory and PID.
fn demo_prosody(demo: u32) -> (PathBuf, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(dir) = prosody_dirs_of(demo).into_iter().next()
            && let Ok(pid) = std::fs::read_to_string(dir.join("prosody.pid"))
            && alive(pid.trim())
        {
            return (dir, pid.trim().to_owned());
        }
        assert!(Instant::now() < deadline, "no Prosody for demo {demo}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn gone_within(what: &str, secs: u64, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} still there after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_stops_its_prosody_however_it_ends() {
    if !Tmux::present_or_skip() || prosody::available().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: tmux and Prosody needed"
        );
        return;
    }
    let start = |name: &str| {
        Tmux::start(
            &format!("{name}-{}", std::process::id()),
            &format!("{BIN} demo --log-file /dev/null; sleep 60"),
        )
    };
    // Closing the terminal (tmux kill-session: SIGHUP) stops the demo's Prosody.
    let tmux = start("demo-hup");
    tmux.wait_for("the demo online", 60, |s| {
        s.contains("online as alice@localhost")
    });
    // It says how to reach it from another terminal.
    tmux.keys(&["m"]);
    tmux.wait_for("the watch command", 5, |s| {
        s.contains("/watch.sh") && s.contains("--jid bob@localhost --server 127.0.0.1:")
    });
    tmux.keys(&["Escape"]);
    let demo = demo_pid(&tmux);
    let (dir, prosody_pid) = demo_prosody(demo);
    drop(tmux);
    gone_within("the demo's Prosody", 10, || !alive(&prosody_pid));
    gone_within("its directory", 10, || !dir.exists());

    // A demo killed with -9 cannot clean up; the next one does.
    let tmux = start("demo-kill9");
    tmux.wait_for("the demo online", 60, |s| {
        s.contains("online as alice@localhost")
    });
    let demo = demo_pid(&tmux);
    let (dir, prosody_pid) = demo_prosody(demo);
    let status = Command::new("kill")
        .args(["-KILL", &demo.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        alive(&prosody_pid),
        "left behind (the case this test is about)"
    );
    drop(tmux);
    let next = start("demo-next");
    next.wait_for("the next demo online", 60, |s| {
        s.contains("online as alice@localhost")
    });
    gone_within("the stale Prosody", 10, || !alive(&prosody_pid));
    gone_within("the stale directory", 10, || !dir.exists());
    let (_, next_pid) = demo_prosody(demo_pid(&next));
    drop(next);
    gone_within("the next demo's Prosody", 10, || !alive(&next_pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_leaves_the_shell_as_it_was() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["demo"]).await;
    let (_, pw) = account(&server, "alice", "unused");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw_file = password_file(dir.path(), &pw);
    let cmd = format!(
        "RUST_BACKTRACE=0 {} {BIN} --jid alice@localhost --server {} --insecure-plain-tcp --service \
         pubsub.localhost --password-file {} --log-file /dev/null --node demo; \
         echo EXIT:$?; cat -v",
        format_args!("{}=1", pubsub_tui::tui::TEST_PANIC_ENV),
        server.server(),
        pw_file.display()
    );
    let tmux = Tmux::start(&format!("panic-{}", std::process::id()), &cmd);
    let s = tmux.wait_for("the panic", 20, |s| s.contains("EXIT:"));
    assert!(
        s.contains("EXIT:101") && s.contains("panicking on purpose"),
        "{s}"
    );
    assert_eq!(tmux.display("#{alternate_on}"), "0", "main screen");
    assert_eq!(tmux.display("#{mouse_any_flag}"), "0", "mouse capture off");
    assert!(
        !pasted_bracketed(&tmux, "after-panic"),
        "bracketed paste off"
    );

    // Control: the check does see bracketed paste when it is on.
    let control = Tmux::start(
        &format!("paste-control-{}", std::process::id()),
        "printf '\\033[?2004h'; cat -v",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(pasted_bracketed(&control, "control"));
}

/// Paste a marker as a bracketed paste into the pane (running `cat -v`): did the program's
/// terminal get the bracket sequences (`^[[200~`)?
fn pasted_bracketed(tmux: &Tmux, marker: &str) -> bool {
    let run = |args: &[&str]| {
        assert!(
            Command::new("tmux")
                .args(args)
                .status()
                .expect("tmux")
                .success()
        );
    };
    run(&["set-buffer", "-b", marker, marker]);
    run(&["paste-buffer", "-p", "-b", marker, "-t", &tmux.name()]);
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the paste echoed", 5, |s| s.contains(marker));
    s.contains("^[[200~")
}

#[test]
fn the_tui_with_its_input_redirected_says_to_use_watch() {
    if !Tmux::present_or_skip() {
        return;
    }
    // A terminal for output, but stdin from /dev/null (a script's `pubsub-tui < file`).
    let tmux = Tmux::start(
        &format!("no-tty-{}", std::process::id()),
        &format!(
            "PUBSUB_TUI_PASSWORD=x XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME=/tmp/pubsub-tui-no-state XDG_DATA_HOME=/tmp/pubsub-tui-no-state {BIN} --jid a@example.org \
             --node n < /dev/null; echo EXIT:$?; sleep 30"
        ),
    );
    let s = tmux.wait_for("the exit", 10, |s| s.contains("EXIT:"));
    assert!(s.contains("EXIT:2"), "{s}");
    assert!(
        s.contains("the TUI needs a terminal; use `pubsub-tui watch`"),
        "{s}"
    );
    assert!(!s.contains("panicked"), "{s}");
}
