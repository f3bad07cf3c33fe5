//! The flood bench: what one notification costs each kind of subscriber, side by side in one
//! run.
//!
//! Through a private Prosody with in-memory pubsub storage, one publisher (in this process)
//! floods N items to a node. Four subscribers, each its own process and account, follow the
//! node during the same flood:
//! - `pubsub-tui watch`, its JSON lines going to a file;
//! - the TUI, in tmux at 120x40;
//! - slixmpp (Python, from `PyPI`: `benches/flood_slix.py`), the comparison peer;
//! - a bare baseline: this bench binary run again as a minimal subscriber on the same
//!   tokio-xmpp stack (`StanzaStream`, one task, a current-thread runtime) that only counts
//!   the notifications. It is the floor our stack allows.
//!
//! Each subscriber's CPU time (utime + stime from `/proc/PID/stat`) is read when a warm-up
//! item has reached all of them, and again when it has the flood's last item; divided by N
//! that is its CPU per event. The figures are medians over the runs; the ratios are to
//! slixmpp and to the baseline. At the fastest rate it also reports how far each subscriber
//! lags behind the publisher, the TUI's share of a core during the flood, and, in a flood of
//! its own, how long a key typed into the TUI's compose box takes to show (tmux send-keys to
//! capture-pane).
//!
//! Run:
//! - `cargo bench --bench flood` (release build; 10,000 items, 3 runs at 500/s and at the
//!   fastest rate Prosody allows);
//! - `cargo bench --bench flood -- --items 3000 --runs 1 --rates 500,max`;
//! - `cargo test --bench flood -- --quick` (CI: the debug build, 300 items, one run at each
//!   rate; it checks that every subscriber gets every item, not the figures).
//!
//! Needs Prosody, tmux and a Python with slixmpp (`scripts/ensure-deps` and
//! `scripts/ensure-wokkel` install them; the venv is target/wokkel-venv).

#![allow(
    clippy::wildcard_imports,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader, Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::{self, Options, Prosody};
use pubsub_tui::xmpp::{self, Answer, Command as NetCommand, NetEvent, NetHandle};

/// The text of the item every subscriber must have before the measurement starts.
const WARM_UP: &str = "warm-up";

#[allow(clippy::struct_excessive_bools, reason = "command-line switches")]
struct Opts {
    items: usize,
    runs: usize,
    /// Items per second; `None` is as fast as the server confirms.
    rates: Vec<Option<u32>>,
    echo: bool,
    quick: bool,
    /// Run `watch` and the TUI with `--no-cache`.
    no_cache: bool,
    /// Only the in-process draw times (no flood).
    draw_only: bool,
    /// Items for the held-items section (the TUI's memory and draw time); 0 skips it.
    held: usize,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        items: 10_000,
        runs: 3,
        rates: vec![Some(500), None],
        echo: true,
        quick: false,
        no_cache: false,
        held: 100_000,
        draw_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.items = 300;
                o.runs = 1;
                o.echo = false;
                o.held = 1000;
            }
            "--held" => o.held = args.next().and_then(|v| v.parse().ok()).expect("--held N"),
            "--items" => o.items = args.next().and_then(|v| v.parse().ok()).expect("--items N"),
            "--runs" => o.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--no-echo" => o.echo = false,
            "--no-cache" => o.no_cache = true,
            "--draw-only" => {
                o.draw_only = true;
                o.runs = 0;
                o.echo = false;
            }
            "--rates" => {
                o.rates = args
                    .next()
                    .expect("--rates 500,max")
                    .split(',')
                    .map(|r| (r != "max").then(|| r.parse().expect("a rate or max")))
                    .collect();
            }
            // What cargo passes to a bench (and `cargo test` to any target).
            "--bench" | "--nocapture" | "--test-threads" => {}
            other if other.starts_with("--") => {}
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// The CPU time a process has used so far (all its threads, `/proc/PID/stat`).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn slix_python() -> Option<PathBuf> {
    common::wokkel::python_with("slixmpp")
}

/// One subscriber under measurement.
struct Sub {
    label: &'static str,
    pid: u32,
    kind: Kind,
}

enum Kind {
    /// A child that says `ready`, `warm` and `done N` on stdout.
    Lines {
        child: Child,
        lines: mpsc::Receiver<String>,
    },
    /// `watch`, writing its JSON lines to this file.
    Watch { child: Child, out: PathBuf },
    /// The TUI in this tmux session.
    Tui { session: String },
}

impl Sub {
    /// Whether it has this item (by its text); `done` for the child that counts.
    fn has(&mut self, text: &str, done: bool) -> bool {
        match &mut self.kind {
            Kind::Lines { lines, .. } => {
                let want = if done { "done" } else { "warm" };
                while let Ok(l) = lines.try_recv() {
                    if l.starts_with(want) {
                        return true;
                    }
                    assert!(!l.starts_with("error"), "{}: {l}", self.label);
                }
                false
            }
            Kind::Watch { out, .. } => tail(out, 64 * 1024).contains(text),
            Kind::Tui { session } => tmux(&["capture-pane", "-p", "-t", session]).contains(text),
        }
    }
}

/// A subscriber ends with the bench, also when it panics.
impl Drop for Sub {
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Lines { child, .. } | Kind::Watch { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Kind::Tui { session } => {
                let _ = Command::new("tmux")
                    .args(["kill-session", "-t", session])
                    .status();
            }
        }
    }
}

/// The last `bytes` of a file, as text.
fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, want: &str, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with(want) => return,
            Ok(l) => assert!(!l.starts_with("error"), "{label}: {l}"),
            Err(e) => panic!("{label} never said {want}: {e}"),
        }
    }
}

/// What the subscribers need to know of the setup.
struct Setup<'a> {
    server: &'a Prosody,
    dir: &'a Path,
    node: &'a str,
    items: usize,
    no_cache: bool,
}

fn account_file(setup: &Setup, user: &str) -> PathBuf {
    let (_, pw) = account(setup.server, user, "x");
    password_file_named(setup.dir, &format!("{user}.pw"), &pw)
}

/// As a new user runs it: the defaults (the cache on, in this run's own data directory).
fn app_args(setup: &Setup, user: &str, pw: &Path) -> Vec<String> {
    [
        "--jid",
        &format!("{user}@{}", prosody::DOMAIN),
        "--server",
        &setup.server.server(),
        "--insecure-plain-tcp",
        "--service",
        prosody::PUBSUB,
        "--node",
        setup.node,
        "--password-file",
        pw.to_str().expect("path"),
    ]
    .into_iter()
    .chain(setup.no_cache.then_some("--no-cache"))
    .map(str::to_owned)
    .collect()
}

fn start_watch(setup: &Setup) -> Sub {
    let pw = account_file(setup, "watch");
    let out = setup.dir.join(format!("watch-{}.ndjson", setup.node));
    let child = Command::new(env!("CARGO_BIN_EXE_pubsub-tui"))
        .arg("watch")
        .args(app_args(setup, "watch", &pw))
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_DATA_HOME", setup.dir)
        .stdout(std::fs::File::create(&out).expect("watch output"))
        .stderr(Stdio::null())
        .spawn()
        .expect("watch starts");
    let sub = Sub {
        label: "pubsub-tui watch",
        pid: child.id(),
        kind: Kind::Watch {
            child,
            out: out.clone(),
        },
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tail(&out, 1 << 20).contains("\"kind\":\"resync\"") {
        assert!(
            Instant::now() < deadline,
            "watch never subscribed: {}",
            tail(&out, 4096)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sub
}

fn start_tui(setup: &Setup) -> Sub {
    let pw = account_file(setup, "tui");
    let session = format!("flood-{}-{}", std::process::id(), setup.node);
    let mut cmd = vec![
        "env".to_owned(),
        "XDG_CONFIG_HOME=/nonexistent".to_owned(),
        format!("XDG_DATA_HOME={}", setup.dir.display()),
        format!("XDG_STATE_HOME={}", setup.dir.display()),
        env!("CARGO_BIN_EXE_pubsub-tui").to_owned(),
    ];
    cmd.extend(app_args(setup, "tui", &pw));
    cmd.extend(["--feed-limit".to_owned(), (setup.items + 10).to_string()]);
    let mut args: Vec<&str> = vec!["new-session", "-d", "-s", &session, "-x", "120", "-y", "40"];
    args.extend(cmd.iter().map(String::as_str));
    assert!(
        Command::new("tmux")
            .args(&args)
            .status()
            .expect("tmux")
            .success()
    );
    let pid: u32 = tmux(&["display-message", "-p", "-t", &session, "#{pane_pid}"])
        .trim()
        .parse()
        .expect("pane pid");
    // The pane's process is the TUI itself (not a shell around it): its figures are ours.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "pubsub-tui", "the pane runs the TUI directly");
    let sub = Sub {
        label: "pubsub-tui (TUI, 120x40)",
        pid,
        kind: Kind::Tui {
            session: session.clone(),
        },
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tmux(&["capture-pane", "-p", "-t", &session]).contains("no stored items") {
        assert!(
            Instant::now() < deadline,
            "the TUI never showed the node:\n{}",
            tmux(&["capture-pane", "-p", "-t", &session])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sub
}

fn start_counter(
    setup: &Setup,
    label: &'static str,
    user: &str,
    program: &Path,
    pre: &[&str],
) -> Sub {
    let pw = account_file(setup, user);
    let mut child = Command::new(program)
        .args(pre)
        .args([
            &format!("{user}@{}/x", prosody::DOMAIN),
            pw.to_str().expect("path"),
            "127.0.0.1",
            &setup.server.port.to_string(),
            prosody::PUBSUB,
            setup.node,
            &setup.items.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("subscriber starts");
    let lines = lines_of(&mut child);
    let sub = Sub {
        label,
        pid: child.id(),
        kind: Kind::Lines { child, lines },
    };
    if let Kind::Lines { lines, .. } = &sub.kind {
        wait_line(lines, "ready", label);
    }
    sub
}

async fn publisher(server: &Prosody) -> NetHandle {
    let (cfg, _) = account(server, "flood", "pub");
    let mut s = session(&[], false, Duration::from_secs(3600));
    s.subscribe = false;
    let mut net = xmpp::spawn(cfg, s);
    wait_online(&mut net).await;
    net
}

/// Publish `count` items, at `rate` per second or as fast as they are confirmed (at most
/// `WINDOW` unconfirmed). Returns when the last is confirmed.
async fn flood(net: &mut NetHandle, node: &str, count: usize, rate: Option<u32>) -> Duration {
    const WINDOW: usize = 200;
    let key = net.key(node);
    let started = Instant::now();
    let (mut sent, mut confirmed) = (0, 0);
    let mut mine = std::collections::HashSet::new();
    while confirmed < count {
        let due = rate.map_or(count, |r| {
            ((started.elapsed().as_secs_f64() * f64::from(r)) as usize + 1).min(count)
        });
        while sent < due && sent - confirmed < WINDOW {
            let req = common::req();
            mine.insert(req);
            net.commands
                .send(NetCommand::Publish {
                    req,
                    node: key.clone(),
                    text: item_text(sent),
                })
                .await
                .expect("send");
            sent += 1;
        }
        let wait = if sent < due {
            Duration::from_secs(30)
        } else {
            Duration::from_millis(2)
        };
        match tokio::time::timeout(wait, net.events.recv()).await {
            Ok(Some(NetEvent::Reply {
                req,
                result: Ok(Answer::Published { .. }),
            })) if mine.remove(&req) => confirmed += 1,
            Ok(Some(NetEvent::Reply { result: Err(e), .. })) => panic!("publish failed: {e}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the publisher's connection ended"),
            Err(_) => assert!(sent >= due, "no confirmation in 30 s"),
        }
    }
    started.elapsed()
}

fn item_text(i: usize) -> String {
    format!(
        "flood item {i:06}, a reading of {}.{} degrees",
        20 + i % 7,
        i % 10
    )
}

/// One subscriber's figures in one flood.
#[derive(Clone, Copy)]
struct Figure {
    /// CPU per event.
    per_event: Duration,
    /// From the last confirmation to having the last item.
    lag: Duration,
    /// CPU time over the wall time from the flood's start until it had the last item.
    core_share: f64,
}

async fn one_flood(
    server: &Prosody,
    net: &mut NetHandle,
    opts: &Opts,
    rate: Option<u32>,
    run: usize,
) -> Vec<(&'static str, Figure)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = format!(
        "flood{}r{run}",
        rate.map_or_else(|| "max".to_owned(), |r| r.to_string())
    );
    create_nodes_with(server, &[node.as_str()], 100).await;
    let setup = Setup {
        server,
        dir: dir.path(),
        node: &node,
        items: opts.items,
        no_cache: opts.no_cache,
    };
    let me = std::env::current_exe().expect("bench binary");
    let mut subs = vec![start_watch(&setup), start_tui(&setup)];
    subs.push(start_counter(
        &setup,
        "bare tokio-xmpp subscriber",
        "bare",
        &me,
        &["--bare-subscriber"],
    ));
    if let Some(py) = slix_python() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/flood_slix.py");
        subs.push(start_counter(
            &setup,
            "slixmpp",
            "slix",
            &py,
            &[script.to_str().expect("path")],
        ));
    }
    // Everyone has the warm-up item, then rests a moment: what came before is not measured.
    net.commands
        .send(NetCommand::Publish {
            req: common::req(),
            node: net.key(&node),
            text: WARM_UP.into(),
        })
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &mut subs {
        while !s.has(WARM_UP, false) {
            assert!(
                Instant::now() < deadline,
                "{} never got the warm-up item",
                s.label
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<Duration> = subs.iter().map(|s| cpu(s.pid)).collect();
    let started = Instant::now();
    let took = flood(net, &node, opts.items, rate).await;
    // The start of the last item's text: what a feed row of the TUI shows whole.
    let last = format!("flood item {:06}", opts.items - 1);
    let mut figures = vec![None; subs.len()];
    let deadline = Instant::now() + Duration::from_secs(120);
    while figures.iter().any(Option::is_none) {
        for (i, s) in subs.iter_mut().enumerate() {
            if figures[i].is_none() && s.has(&last, true) {
                let used = cpu(s.pid).saturating_sub(before[i]);
                let wall = started.elapsed();
                figures[i] = Some(Figure {
                    per_event: used / opts.items as u32,
                    lag: wall.saturating_sub(took),
                    core_share: used.as_secs_f64() / wall.as_secs_f64(),
                });
            }
        }
        assert!(
            Instant::now() < deadline,
            "a subscriber never got the last item"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "  run {run}: {} items in {:.2} s ({:.0}/s confirmed)",
        opts.items,
        took.as_secs_f64(),
        opts.items as f64 / took.as_secs_f64()
    );
    if let Some(Kind::Watch { out, .. }) = subs
        .iter()
        .map(|s| &s.kind)
        .find(|k| matches!(k, Kind::Watch { .. }))
    {
        let text = std::fs::read_to_string(out).expect("watch output");
        let items = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"item\""))
            .count();
        assert_eq!(
            items,
            opts.items + 1,
            "watch printed every item (and the warm-up)"
        );
        assert!(
            !text.contains("\"kind\":\"gap\""),
            "no gap in a loopback flood"
        );
    }
    let out = subs
        .iter()
        .zip(figures)
        .map(|(s, f)| (s.label, f.expect("measured")))
        .collect();
    drop(subs);
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(rate: Option<u32>, runs: &[Vec<(&'static str, Figure)>]) {
    let name = rate.map_or_else(|| "the fastest rate".to_owned(), |r| format!("{r}/s"));
    println!(
        "\nCPU per event at {name}, median of {} run(s):",
        runs.len()
    );
    let labels: Vec<&str> = runs[0].iter().map(|(l, _)| *l).collect();
    let med = |label: &str, f: fn(&Figure) -> Duration| {
        median(
            runs.iter()
                .map(|r| f(&r.iter().find(|(l, _)| *l == label).expect("label").1))
                .collect(),
        )
    };
    let slix = labels
        .contains(&"slixmpp")
        .then(|| med("slixmpp", |f| f.per_event));
    let bare = med("bare tokio-xmpp subscriber", |f| f.per_event);
    println!(
        "| subscriber | CPU per event | ratio to slixmpp | ratio to the bare baseline | lag after the last publish | share of a core |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for label in labels {
        let per = med(label, |f| f.per_event);
        let lag = med(label, |f| f.lag);
        let share = {
            let mut v: Vec<f64> = runs
                .iter()
                .map(|r| {
                    r.iter()
                        .find(|(l, _)| *l == label)
                        .expect("label")
                        .1
                        .core_share
                })
                .collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratio = |base: Duration| {
            if base.is_zero() {
                "n/a".to_owned()
            } else {
                format!("{:.2}", us(per) / us(base))
            }
        };
        println!(
            "| {label} | {:.1} µs | {} | {} | {:.0} ms | {:.0} % |",
            us(per),
            slix.map_or_else(|| "n/a".to_owned(), ratio),
            ratio(bare),
            lag.as_secs_f64() * 1000.0,
            share * 100.0
        );
    }
}

/// At the fastest rate, a key typed into the TUI's compose box every 50 ms: how long until
/// tmux shows it.
async fn echo(server: &Prosody, net: &mut NetHandle, items: usize, no_cache: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = "floodecho";
    create_nodes_with(server, &[node], 100).await;
    let setup = Setup {
        server,
        dir: dir.path(),
        node,
        items,
        no_cache,
    };
    let tui = start_tui(&setup);
    let Kind::Tui { session } = &tui.kind else {
        unreachable!()
    };
    let session = session.clone();
    tmux(&["send-keys", "-t", &session, "i"]);
    std::thread::sleep(Duration::from_millis(300));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let typist = {
        let (session, stop) = (session.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut times = Vec::new();
            let zs = || {
                tmux(&["capture-pane", "-p", "-t", &session])
                    .matches('Z')
                    .count()
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && times.len() < 400 {
                let t0 = Instant::now();
                tmux(&["send-keys", "-t", &session, "-l", "Z"]);
                while zs() == 0 {
                    assert!(t0.elapsed() < Duration::from_secs(10), "a key never showed");
                }
                times.push(t0.elapsed());
                // Rub it out (not measured), so the box never scrolls.
                tmux(&["send-keys", "-t", &session, "BSpace"]);
                while zs() > 0 {
                    assert!(t0.elapsed() < Duration::from_secs(20), "a key never went");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            times
        })
    };
    let took = flood(net, node, items, None).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut times = typist.join().expect("typist");
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "\nkey echo in the TUI during a flood of {items} at the fastest rate ({:.0}/s): {} keys, median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        items as f64 / took.as_secs_f64(),
        times.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    drop(tui);
}

/// The bare baseline: subscribe, then count notifications. Arguments as the Python peer's.
fn bare_subscriber(args: &[String]) {
    use futures::StreamExt as _;
    use tokio_xmpp::connect::{DnsConfig, TcpServerConnector};
    use tokio_xmpp::stanzastream::{Event, StanzaStream, StreamEvent};
    use tokio_xmpp::xmlstream::Timeouts;
    use xmpp_parsers::iq::Iq;
    use xmpp_parsers::jid::Jid;
    use xmpp_parsers::minidom::Element;
    use xmpp_parsers::presence::Presence;

    let [jid, pw, host, port, service, node, count] = args else {
        panic!("bare subscriber: JID PASSWORD_FILE HOST PORT SERVICE NODE COUNT");
    };
    let password = std::fs::read_to_string(pw)
        .expect("password")
        .trim()
        .to_owned();
    let count: usize = count.parse().expect("count");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let connector = TcpServerConnector::from(DnsConfig::addr(&format!("{host}:{port}")));
        let jid = Jid::new(jid).expect("jid");
        let mut stream =
            StanzaStream::new_c2s(connector, jid.clone(), password, Timeouts::default(), 64);
        let (mut warm, mut seen) = (false, 0);
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Stream(StreamEvent::Reset { .. }) => {
                    stream.send(Box::new(Presence::available().into())).await;
                    let iq: Element = format!(
                        "<iq xmlns='jabber:client' type='set' id='sub' to='{service}'>\
                         <pubsub xmlns='http://jabber.org/protocol/pubsub'>\
                         <subscribe node='{node}' jid='{}'/></pubsub></iq>",
                        jid.to_bare()
                    )
                    .parse()
                    .expect("iq");
                    let iq = Iq::try_from(iq).expect("iq");
                    stream.send(Box::new(iq.into())).await;
                }
                Event::Stanza(tokio_xmpp::Stanza::Iq(iq)) if iq.id() == "sub" => {
                    println!("ready");
                }
                Event::Stanza(tokio_xmpp::Stanza::Message(m))
                    if m.payloads
                        .iter()
                        .any(|p| p.is("event", "http://jabber.org/protocol/pubsub#event")) =>
                {
                    if warm {
                        seen += 1;
                        if seen == count {
                            println!("done {seen}");
                        }
                    } else if m.payloads.iter().any(|p| String::from(p).contains(WARM_UP)) {
                        warm = true;
                        println!("warm");
                    }
                }
                _ => {}
            }
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare-subscriber") {
        bare_subscriber(&args[2..]);
        return;
    }
    let opts = parse_args();
    if !tmux_present() {
        return;
    }
    let Some(server) = start_prosody(&Options {
        memory_storage: true,
        ..Options::default()
    }) else {
        return;
    };
    if slix_python().is_none() {
        eprintln!(
            "SKIPPED slixmpp: no Python with slixmpp in target/wokkel-venv (run scripts/ensure-wokkel)"
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut net = publisher(&server).await;
        println!(
            "flood: {} items per run, {} run(s) per rate{}",
            opts.items,
            opts.runs,
            if opts.quick {
                " (quick: it checks that it works, not the figures)"
            } else {
                ""
            }
        );
        for &rate in &opts.rates {
            let mut runs = Vec::new();
            for run in 0..opts.runs {
                runs.push(one_flood(&server, &mut net, &opts, rate, run).await);
            }
            if !runs.is_empty() {
                report(rate, &runs);
            }
        }
        if opts.echo {
            echo(&server, &mut net, opts.items, opts.no_cache).await;
        }
        if opts.held > 0 {
            draw_times(opts.held);
            if !opts.draw_only {
                held(&server, &mut net, opts.held, opts.no_cache).await;
            }
        }
        let _ = net.commands.send(NetCommand::Shutdown).await;
    });
}

/// The TUI's resident memory after a flood of `count` items that it holds all of.
async fn held(server: &Prosody, net: &mut NetHandle, count: usize, no_cache: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = "floodheld";
    create_nodes_with(server, &[node], 100).await;
    let setup = Setup {
        server,
        dir: dir.path(),
        node,
        items: count,
        no_cache,
    };
    let tui = start_tui(&setup);
    let Kind::Tui { session } = &tui.kind else {
        unreachable!()
    };
    let session = session.clone();
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(tui.pid);
    let before = cpu(tui.pid);
    let took = flood(net, node, count, None).await;
    let last = format!("flood item {:06}", count - 1);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !tmux(&["capture-pane", "-p", "-t", &session]).contains(&last) {
        assert!(
            Instant::now() < deadline,
            "the TUI never showed the last item"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let used = cpu(tui.pid).saturating_sub(before);
    let shown = format!("{count} items");
    let title = tmux(&["capture-pane", "-p", "-t", &session]);
    assert!(title.contains(&shown), "the TUI holds every item:\n{title}");
    std::thread::sleep(Duration::from_millis(500));
    let full = rss_kib(tui.pid);
    println!(
        "\nthe TUI holding {count} items (a flood at {:.0}/s, {:.1} µs of CPU per item): resident {:.1} MiB ({:.1} MiB at start, {:.0} bytes per item held)",
        count as f64 / took.as_secs_f64(),
        us(used / count as u32),
        full as f64 / 1024.0,
        idle as f64 / 1024.0,
        (full.saturating_sub(idle) * 1024) as f64 / count as f64
    );
    drop(tui);
}

/// The TUI's frame (its `view::draw` into ratatui's test backend, 120x40) with a feed of
/// 1,000 items, 10 times that, and so on up to `max`: a frame costs what the screen shows.
fn draw_times(max: usize) {
    use pubsub_tui::tui::update::{Msg, update};
    println!("\ndraw time per frame (120x40, the feed following its newest item), median of 50:");
    let mut n = 1000.min(max);
    loop {
        let mut m = pubsub_tui::tui::model::Model::new(
            &xmpp_parsers::jid::Jid::new(prosody::PUBSUB).expect("jid"),
            &["held".to_owned()],
            n,
            false,
            Duration::from_secs(5),
            chrono::FixedOffset::east_opt(0).expect("utc"),
        );
        let _ = update(&mut m, Msg::Resize(120, 40));
        for i in 0..n {
            let xml = format!(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='s1-{i}'><post xmlns='urn:x-pubsub-tui:item:0' \
                 sender='flood@localhost/pub' time='2026-11-29T07:00:00.000Z' session='s1' seq='{}'>{}</post></item>",
                i + 1,
                item_text(i)
            );
            let el = xml.parse().expect("item XML");
            let item = pubsub_tui::xmpp::proto::parse_item("held", &el);
            let _ = update(&mut m, Msg::Net(NetEvent::Item(item)));
        }
        let mut term =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).expect("terminal");
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            term.draw(|f| pubsub_tui::tui::view::draw(f, &m))
                .expect("draw");
            times.push(t.elapsed());
        }
        // (Resident memory is the TUI process's, in the held-items flood: here the freed
        // models of the smaller runs would be counted again.)
        println!(
            "  {n:>7} items: {:.3} ms",
            median(times).as_secs_f64() * 1000.0
        );
        drop(m);
        if n >= max {
            break;
        }
        n = (n * 10).min(max);
    }
}

fn tmux_present() -> bool {
    tmux::Tmux::present_or_skip()
}
