//! The local store against real servers, through the binary as a user runs it: publisher
//! numbers that continue from run to run, concurrent publishers, the durable outbox
//! (`publish --queue`, a TUI killed with items waiting), cached items at start, incremental
//! resyncs (Prosody, and ejabberd with RSM over more than one page), and a store that cannot
//! be used (damaged, newer, read-only, full).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use pubsub_tui::prosody::{self, Options, Prosody};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pubsub-tui");

/// An account as a user runs the binary with it: its server, and its own data dir (where the
/// store is), kept across runs.
struct User {
    server: String,
    jid: String,
    password: String,
    data: PathBuf,
}

impl User {
    fn new(port: u16, user: &str, password: &str, data: &Path) -> Self {
        Self {
            server: format!("127.0.0.1:{port}"),
            jid: format!("{user}@localhost"),
            password: password.to_owned(),
            data: data.to_owned(),
        }
    }

    fn prosody(server: &Prosody, user: &str, data: &Path) -> Self {
        let (cfg, _) = account(server, user, "t");
        Self::new(server.port, user, cfg.password.expose(), data)
    }

    fn admin(server: &Prosody, data: &Path) -> Self {
        Self::new(server.port, prosody::ADMIN, &server.admin_password, data)
    }

    /// The same account and data, connecting to `port` (a relay, or nothing at all).
    fn via(&self, port: u16) -> Self {
        Self {
            server: format!("127.0.0.1:{port}"),
            jid: self.jid.clone(),
            password: self.password.clone(),
            data: self.data.clone(),
        }
    }

    /// `pubsub-tui cache` (no connection, no password).
    fn cache(&self) -> String {
        let o = Process::new(BIN)
            .args(["cache", "--jid", &self.jid])
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("XDG_DATA_HOME", &self.data)
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", cli::text(&o.stderr));
        cli::text(&o.stdout)
    }

    fn command(&self, args: &[&str]) -> Process {
        let (first, rest) = args.split_at(if args[0] == "node" { 2 } else { 1 });
        let mut p = Process::new(BIN);
        p.args(first)
            .args(["--jid", &self.jid, "--server", &self.server])
            .args(["--insecure-plain-tcp", "--service", prosody::PUBSUB])
            .args(rest)
            .env("PUBSUB_TUI_PASSWORD", &self.password)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("XDG_STATE_HOME", &self.data)
            .env("XDG_DATA_HOME", &self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runs")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> (String, String) {
        let o = self.run(args);
        let (out, err) = (cli::text(&o.stdout), cli::text(&o.stderr));
        assert!(o.status.success(), "{args:?}: {err}");
        (out, err)
    }

    /// `watch ARGS` until a line satisfies `done` (or `secs` pass): every line so far.
    fn watch_until(&self, args: &[&str], secs: u64, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut child = self.command(&all).spawn().expect("watch runs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut lines = Vec::new();
        let mut finished = false;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            finished = done(&v);
            lines.push(v);
            if finished {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(finished, "watch {args:?} did not get there: {lines:#?}");
        lines
    }

    /// The node's items as the service holds them: (id, text).
    fn items(&self, node: &str) -> Vec<(String, String)> {
        let (out, _) = self.ok(&["items", "--node", node, "--format", "ndjson"]);
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("a JSON line");
                (
                    v["id"].as_str().unwrap_or("").to_owned(),
                    v["text"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

fn kind<'a>(lines: &'a [Value], k: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["kind"] == k).collect()
}

fn is_resync(v: &Value) -> bool {
    v["kind"] == "resync"
}

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pubsub-tui-data-")
        .tempdir()
        .expect("data dir")
}

fn prosody_or_skip() -> Option<Prosody> {
    start_prosody(&Options::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_one_shot_publishes_leave_exactly_thirty_lost_for_a_new_subscriber() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes_with(&server, &["evict", "forgetful"], 20).await;
    let (alice_data, bob_data) = (data_dir(), data_dir());
    let alice = User::prosody(&server, "alice", alice_data.path());
    let bob = User::prosody(&server, "bob", bob_data.path());
    // A cron job: one process per item.
    for k in 1..=50 {
        alice.ok(&["publish", "--node", "evict", &format!("reading {k}")]);
    }
    let lines = bob.watch_until(&["--node", "evict"], 30, is_resync);
    assert_eq!(kind(&lines, "stored").len(), 20);
    let lost = kind(&lines, "lost");
    assert_eq!(lost.len(), 1, "reported once: {lost:?}");
    assert_eq!(
        (&lost[0]["from"], &lost[0]["to"], &lost[0]["count"]),
        (&Value::from(1), &Value::from(30), &Value::from(30))
    );
    assert_eq!(kind(&lines, "resync")[0]["lost"], 30);
    // Reported once: the next run of the same subscriber does not say it again.
    let again = bob.watch_until(&["--node", "evict"], 30, is_resync);
    assert!(kind(&again, "lost").is_empty(), "{again:#?}");
    assert_eq!(kind(&again, "resync")[0]["lost"], 0);
    // The control: without the store each run is a new session, and nothing is seen lost.
    for k in 1..=25 {
        alice.ok(&[
            "publish",
            "--no-cache",
            "--node",
            "forgetful",
            &format!("r {k}"),
        ]);
    }
    let lines = bob.watch_until(&["--node", "forgetful"], 30, is_resync);
    assert_eq!(kind(&lines, "stored").len(), 20);
    assert_eq!(kind(&lines, "resync")[0]["lost"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publish_runs_never_reuse_a_number() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["both"]).await;
    let data = data_dir();
    let alice = std::sync::Arc::new(User::prosody(&server, "alice", data.path()));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let alice = alice.clone();
            std::thread::spawn(move || {
                for k in 0..8 {
                    alice.ok(&["publish", "--node", "both", &format!("t{t} {k}")]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let items = alice.items("both");
    assert_eq!(items.len(), 16, "nothing overwritten: {items:?}");
    // Each session's numbers run 1..=k with none twice: every number was given out once.
    let mut by_session: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (id, _) in &items {
        let (session, n) = id.rsplit_once('-').expect("session-n");
        by_session
            .entry(session.to_owned())
            .or_default()
            .push(n.parse().expect("n"));
    }
    for (session, mut ns) in by_session {
        ns.sort_unstable();
        let expected: Vec<u64> = (1..=ns.len() as u64).collect();
        assert_eq!(ns, expected, "session {session}");
    }
    let bob_data = data_dir();
    let bob = User::prosody(&server, "bob", bob_data.path());
    let lines = bob.watch_until(&["--node", "both"], 30, is_resync);
    assert_eq!(kind(&lines, "resync")[0]["lost"], 0, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_queue_keeps_the_item_for_the_next_run_which_sends_it_once() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["q"]).await;
    let data = data_dir();
    let alice = User::prosody(&server, "alice", data.path());
    let offline = alice.via(closed_port());
    // Without --queue, an unreachable service is a failure and nothing is kept.
    let o = offline.run(&["publish", "--node", "q", "lost in the void"]);
    assert!(!o.status.success());
    let (out, err) = offline.ok(&["publish", "--queue", "--node", "q", "queued one"]);
    let queued = out.trim().to_owned();
    assert!(err.contains("is kept"), "{err}");
    assert!(alice.items("q").is_empty());
    let cache = alice.cache();
    assert!(
        cache.contains(&queued) && cache.contains("queued one"),
        "{cache}"
    );
    // The next run sends it first, with its id, then its own.
    let (out, err) = alice.ok(&["publish", "--node", "q", "after"]);
    assert!(
        err.contains("also published 1 item left unsent by an earlier run"),
        "{err}"
    );
    let after = out.trim().to_owned();
    let items = alice.items("q");
    let ids: Vec<&str> = items.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [queued.as_str(), after.as_str()]);
    assert_eq!(items[0].1, "queued one");
    // One session, numbers in order: the failed publish took none.
    assert!(
        queued.ends_with("-1") && after.ends_with("-2"),
        "{queued} {after}"
    );
    // Sent once: the third run has nothing left to send.
    let (_, err) = alice.ok(&["publish", "--node", "q", "third"]);
    assert!(!err.contains("left unsent"), "{err}");
    assert_eq!(alice.items("q").len(), 3);
}

/// The process the tmux pane runs under its shell (the TUI).
fn tui_pid(tmux: &Tmux) -> u32 {
    let shell: u32 = tmux
        .display("#{pane_pid}")
        .trim()
        .parse()
        .expect("pane pid");
    let children =
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).expect("children");
    children
        .split_whitespace()
        .next()
        .expect("the TUI runs")
        .parse()
        .expect("pid")
}

fn tui_command(user: &User, extra: &str) -> String {
    let pw = user.data.join("password");
    std::fs::write(&pw, &user.password).expect("password file");
    let mut perms = std::fs::metadata(&pw).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&pw, perms).expect("chmod");
    format!(
        "XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME={d} XDG_DATA_HOME={d} {BIN} --jid {} \
         --server {} --insecure-plain-tcp --service {} --password-file {} --log-file {} \
         {extra}; echo EXIT:$?; sleep 60",
        user.jid,
        user.server,
        prosody::PUBSUB,
        pw.display(),
        user.data.join("tui.log").display(),
        d = user.data.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_typed_offline_survives_kill_9_and_is_published_once() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["k"]).await;
    let data = data_dir();
    let alice = User::prosody(&server, "alice", data.path());
    let offline = alice.via(closed_port());
    let name = format!("cache-kill-{}", std::process::id());
    let tmux = Tmux::start(&name, &tui_command(&offline, "--node k"));
    tmux.wait_for("the TUI", 20, |s| s.contains("Feed"));
    tmux.keys(&["i"]);
    tmux.text("typed while offline");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the item waiting", 20, |s| {
        s.contains("1 waiting to publish")
    });
    let pid = tui_pid(&tmux);
    let status = Process::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let gone = Path::new("/proc").join(pid.to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gone.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!gone.exists(), "the TUI was killed");
    drop(tmux);
    assert!(alice.items("k").is_empty());
    // Started again with the service reachable: the item goes out, once.
    let tmux = Tmux::start(&format!("{name}-2"), &tui_command(&alice, "--node k"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alice.items("k").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    let items = alice.items("k");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].1, "typed while offline");
    tmux.wait_for("it shown in the feed", 20, |s| {
        s.contains("typed while offline")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("a clean exit", 20, |s| s.contains("EXIT:0"));
    // Nothing is left to send.
    let cache = alice.cache();
    assert!(
        cache.contains("waiting to be published:\n  none"),
        "{cache}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_with_an_item_waiting_asks_keep_or_discard() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["ask"]).await;
    let data = data_dir();
    let alice = User::prosody(&server, "alice", data.path());
    let offline = alice.via(closed_port());
    let name = format!("cache-ask-{}", std::process::id());
    for (answer, kept) in [("d", false), ("y", true)] {
        let tmux = Tmux::start(
            &format!("{name}-{answer}"),
            &tui_command(&offline, "--node ask"),
        );
        tmux.wait_for("the TUI", 20, |s| s.contains("Feed"));
        tmux.keys(&["i"]);
        tmux.text(&format!("answered {answer}"));
        tmux.keys(&["Enter", "Escape"]);
        tmux.wait_for("the item waiting", 20, |s| {
            s.contains("1 waiting to publish")
        });
        tmux.keys(&["q"]);
        tmux.wait_for("the question", 20, |s| {
            s.contains("y quit, keep it") && s.contains("d quit, discard it")
        });
        tmux.keys(&[answer]);
        tmux.wait_for("the exit", 20, |s| s.contains("EXIT:0"));
        let cache = alice.cache();
        assert_eq!(
            cache.contains(&format!("answered {answer}")),
            kept,
            "{answer}: {cache}"
        );
    }
    // The kept one goes out at the next start; the discarded one never does.
    let (_, err) = alice.ok(&["publish", "--node", "ask", "later"]);
    assert!(err.contains("also published 1 item"), "{err}");
    let texts: Vec<String> = alice.items("ask").into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["answered y", "later"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_shows_the_cached_items_before_a_slow_service_answers() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["slow"]).await;
    let (alice_data, bob_data) = (data_dir(), data_dir());
    let alice = User::prosody(&server, "alice", alice_data.path());
    for k in 1..=3 {
        alice.ok(&["publish", "--node", "slow", &format!("kept item {k}")]);
    }
    let bob = User::prosody(&server, "bob", bob_data.path());
    bob.watch_until(&["--node", "slow"], 30, is_resync);
    // Now over a link that takes seconds per exchange.
    let relay = relay::Relay::start(server.port).await;
    relay.set_shape(relay::Shape {
        delay: Duration::from_secs(3),
        ..relay::Shape::default()
    });
    let slow = bob.via(relay.port);
    let started = std::time::Instant::now();
    let tmux = Tmux::start(
        &format!("cache-slow-{}", std::process::id()),
        &tui_command(&slow, "--node slow"),
    );
    let screen = tmux.wait_for("the cached items", 10, |s| s.contains("kept item 3"));
    let shown = started.elapsed();
    assert!(screen.contains("cached, not yet confirmed"), "{screen}");
    assert!(
        !screen.contains("live"),
        "the service has not answered yet: {screen}"
    );
    eprintln!("the cached screen after {} ms", shown.as_millis());
    // The link recovers: the first resync confirms them.
    relay.set_shape(relay::Shape::default());
    tmux.wait_for("confirmed", 60, |s| {
        s.contains("live") && !s.contains("cached, not yet confirmed")
    });
    tmux.keys(&["q"]);
}

/// Import into `node` the items `range` with ids `o0006` and so on (the NDJSON file,
/// `name`, written in the user's data directory).
fn import_numbered(user: &User, node: &str, name: &str, range: std::ops::Range<usize>) {
    use std::fmt::Write as _;
    let mut text = String::new();
    for k in range {
        let _ = writeln!(
            text,
            "{{\"id\":\"o{k:04}\",\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='o{k:04}'><n xmlns='urn:example:n'>{k}</n></item>\"}}"
        );
    }
    let file = user.data.join(name);
    std::fs::write(&file, text).expect("write");
    user.ok(&["import", "--node", node, &file.display().to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_items_an_incremental_resync_fetches_come_in_the_services_order() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["order"]).await;
    let (admin_data, bob_data) = (data_dir(), data_dir());
    let admin = User::admin(&server, admin_data.path());
    let bob = User::prosody(&server, "bob", bob_data.path());
    import_numbered(&admin, "order", "a", 1..6);
    bob.watch_until(&["--node", "order"], 30, is_resync);
    // Imported while bob is away: Prosody answers these ids newest first.
    import_numbered(&admin, "order", "b", 6..15);
    let lines = bob.watch_until(&["--node", "order"], 30, is_resync);
    let inc = kind(&lines, "incremental");
    assert_eq!(
        (&inc[0]["kept"], &inc[0]["fetched"]),
        (&Value::from(5), &Value::from(9))
    );
    let stored: Vec<String> = kind(&lines, "stored")
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("").to_owned())
        .collect();
    let service: Vec<String> = admin.items("order").into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        stored, service,
        "oldest first, as a full retrieve gives them"
    );
    assert_eq!(stored.first().map(String::as_str), Some("o0001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_newest_items_when_it_fetches_older_ones_again() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["older"]).await;
    let (admin_data, bob_data) = (data_dir(), data_dir());
    let admin = User::admin(&server, admin_data.path());
    let bob = User::prosody(&server, "bob", bob_data.path());
    // 25 items without a time of their own; bob keeps 5 of them.
    import_numbered(&admin, "older", "a", 1..26);
    // `feed_limit` bounds the cache's items per node too (`watch` takes it from the file).
    let config = bob_data.path().join("config.toml");
    std::fs::write(&config, "feed_limit = 5\n").expect("config");
    let config = config.display().to_string();
    let args = ["--node", "older", "--config", &config, "--cached"];
    let first = bob.watch_until(&args, 30, is_resync);
    assert!(kind(&first, "incremental").is_empty(), "nothing kept yet");
    let newest: Vec<String> = (21..26).map(|k| format!("o{k:04}")).collect();
    let ids = |lines: &[Value], k: &str| -> Vec<String> {
        kind(lines, k)
            .iter()
            .map(|v| v["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    // The next run fetches the 20 older ones again: they go before the kept ones.
    let second = bob.watch_until(&args, 30, is_resync);
    assert_eq!(ids(&second, "cached"), newest, "kept: the newest 5");
    let inc = kind(&second, "incremental");
    assert_eq!(
        (&inc[0]["kept"], &inc[0]["fetched"]),
        (&Value::from(5), &Value::from(20))
    );
    let service: Vec<String> = admin.items("older").into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids(&second, "stored"), service, "in the service's order");
    // And the cache still holds the newest 5, oldest first, for the run after.
    let third = bob.watch_until(&args, 30, is_resync);
    assert_eq!(ids(&third, "cached"), newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_after_offline_retracts_and_publishes_fetches_only_what_changed() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["inc"]).await;
    let (alice_data, bob_data, admin_data) = (data_dir(), data_dir(), data_dir());
    let alice = User::prosody(&server, "alice", alice_data.path());
    let admin = User::admin(&server, admin_data.path());
    let mut ids = Vec::new();
    for k in 1..=6 {
        let (out, _) = alice.ok(&["publish", "--node", "inc", &format!("first {k}")]);
        ids.push(out.trim().to_owned());
    }
    let bob = User::prosody(&server, "bob", bob_data.path());
    let first = bob.watch_until(&["--node", "inc"], 30, is_resync);
    assert!(kind(&first, "incremental").is_empty(), "nothing kept yet");
    // While bob is away: two retracted, three published.
    for id in &ids[1..3] {
        admin.ok(&["retract", "--node", "inc", id]);
    }
    // Several of them, in order.
    for k in 1..=8 {
        alice.ok(&["publish", "--node", "inc", &format!("while away {k}")]);
    }
    let lines = bob.watch_until(&["--node", "inc", "--cached"], 30, is_resync);
    assert_eq!(kind(&lines, "cached").len(), 6, "shown first, as kept");
    let inc = kind(&lines, "incremental");
    assert_eq!(inc.len(), 1, "{lines:#?}");
    assert_eq!(
        (&inc[0]["kept"], &inc[0]["fetched"], &inc[0]["dropped"]),
        (&Value::from(4), &Value::from(8), &Value::from(2))
    );
    let stored: Vec<String> = kind(&lines, "stored")
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("").to_owned())
        .collect();
    let service: Vec<String> = alice.items("inc").into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        stored, service,
        "the cache equals the service's set, in its order"
    );
    assert_eq!(kind(&lines, "resync")[0]["lost"], 0);
    // The control: --no-cache retrieves everything.
    let lines = bob.watch_until(&["--node", "inc", "--no-cache"], 30, is_resync);
    assert!(kind(&lines, "incremental").is_empty());
    assert_eq!(kind(&lines, "stored").len(), 12);
}

#[test]
fn an_incremental_resync_pages_through_ejabberds_ids_with_rsm() {
    let Some(server) = start_ejabberd_with("    max_items_node: 5000\n") else {
        return;
    };
    let (olga_data, bob_data) = (data_dir(), data_dir());
    let olga_pw = prosody::random_password();
    server.register("olga", &olga_pw);
    let bob_pw = prosody::random_password();
    server.register("bob", &bob_pw);
    let olga = User::new(server.port, "olga", &olga_pw, olga_data.path());
    let bob = User::new(server.port, "bob", &bob_pw, bob_data.path());
    olga.ok(&["node", "create", "many", "--set", "max_items=3000"]);
    // 1,150 items: more than one page of ids (1,000 a page).
    let file = olga_data.path().join("items.ndjson");
    let mut text = String::new();
    for k in 0..1150 {
        let _ = writeln!(
            text,
            "{{\"id\":\"i{k:04}\",\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='i{k:04}'><n xmlns='urn:example:n'>{k}</n></item>\"}}"
        );
    }
    std::fs::write(&file, text).expect("write");
    olga.ok(&["import", "--node", "many", file.to_str().expect("utf-8")]);
    let first = bob.watch_until(&["--node", "many"], 120, is_resync);
    assert_eq!(kind(&first, "stored").len(), 1150);
    for k in 0..3 {
        olga.ok(&["retract", "--node", "many", &format!("i{k:04}")]);
    }
    for k in 0..5 {
        olga.ok(&["publish", "--node", "many", &format!("new {k}")]);
    }
    let lines = bob.watch_until(&["--node", "many"], 120, is_resync);
    let inc = kind(&lines, "incremental");
    assert_eq!(inc.len(), 1, "{:?}", kind(&lines, "resync"));
    // Had only the first page been read, the rest would count as dropped. (ejabberd sends
    // the last item on subscribing: that one is kept before the resync, not fetched.)
    assert_eq!(inc[0]["dropped"], 3, "{inc:?}");
    let (kept, fetched) = (
        inc[0]["kept"].as_u64().unwrap_or(0),
        inc[0]["fetched"].as_u64().unwrap_or(0),
    );
    assert_eq!(kept + fetched, 1152, "{inc:?}");
    assert!((4..=5).contains(&fetched), "{inc:?}");
    assert_eq!(kind(&lines, "resync")[0]["count"], 1152);
    let stored: HashSet<String> = kind(&lines, "stored")
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(!stored.contains("i0000") && stored.contains("i1149"));
}

/// `watch` with the store at `data` in a state it cannot use: it says so in a `cache` line and
/// works without it (the node's items arrive).
fn watch_says_and_works(bob: &User, expect: &str) -> Vec<Value> {
    let lines = bob.watch_until(&["--node", "bad"], 30, is_resync);
    let said: Vec<String> = kind(&lines, "cache")
        .iter()
        .map(|v| v["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        said.iter().any(|t| t.contains(expect)),
        "{expect:?} not in {said:?}"
    );
    assert_eq!(kind(&lines, "stored").len(), 2);
    lines
}

fn cache_file(data: &Path, user: &str) -> PathBuf {
    data.join("pubsub-tui")
        .join("cache")
        .join(format!("{user}@localhost.sqlite"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_newer_read_only_or_full_store_is_said_and_the_app_works_without_it() {
    let Some(server) = prosody_or_skip() else {
        return;
    };
    create_nodes(&server, &["bad", "big"]).await;
    let alice_data = data_dir();
    let alice = User::prosody(&server, "alice", alice_data.path());
    alice.ok(&["publish", "--node", "bad", "first"]);
    alice.ok(&["publish", "--node", "bad", "second"]);
    let bob_data = data_dir();
    let bob = User::prosody(&server, "bob", bob_data.path());
    let file = cache_file(bob_data.path(), "bob");
    // Damaged.
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &file,
        "not a database at all, but long enough to look like a header",
    )
    .expect("write");
    watch_says_and_works(&bob, "it is damaged");
    let aside = std::fs::read_dir(file.parent().expect("dir"))
        .expect("list")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
    assert!(aside, "the damaged file is kept aside");
    // From a newer version.
    let conn = rusqlite::Connection::open(&file).expect("open");
    conn.pragma_update(None, "user_version", 7)
        .expect("version");
    drop(conn);
    watch_says_and_works(&bob, "newer pubsub-tui (schema 7)");
    // The positive control: a usable store says nothing and keeps the items.
    let lines = bob.watch_until(&["--node", "bad"], 30, is_resync);
    assert!(kind(&lines, "cache").is_empty(), "{lines:#?}");
    let cache = bob.cache();
    assert!(cache.contains("bad  2 items"), "{cache}");
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the read-only and full-disk cases need root (mount)"
        );
        eprintln!("SKIPPED: read-only and full data dirs (mount needs root)");
        return;
    }
    // A read-only data dir.
    let ro = data_dir();
    mount_tmpfs(ro.path(), "ro,size=1m");
    let bob_ro = User::prosody(&server, "bob", ro.path());
    watch_says_and_works(&bob_ro, "no cache this run");
    umount(ro.path());
    // A full disk: the store opens, then stops keeping when the items do not fit (said
    // once), and the feed goes on.
    let big = "x".repeat(20_000);
    for k in 0..6 {
        alice.ok(&["publish", "--node", "big", &format!("{k} {big}")]);
    }
    let full = data_dir();
    mount_tmpfs(full.path(), "size=128k");
    let bob_full = User::prosody(&server, "bob", full.path());
    let lines = bob_full.watch_until(&["--node", "big"], 30, |v| v["kind"] == "cache");
    umount(full.path());
    assert_eq!(kind(&lines, "stored").len(), 6);
    let said = kind(&lines, "cache");
    assert_eq!(said.len(), 1, "said once: {said:?}");
    let text = said[0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("disk is full") && text.contains("nothing more is kept this run"),
        "{text}"
    );
}

fn is_root() -> bool {
    Process::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn mount_tmpfs(at: &Path, options: &str) {
    let ok = Process::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount a tmpfs at {}", at.display());
}

fn umount(at: &Path) {
    let _ = Process::new("umount").arg(at).status();
}
