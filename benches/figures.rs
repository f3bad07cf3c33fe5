//! Figures for the notes, against a private Prosody on loopback:
//! - publish-to-display latency: from handing a publish to client A's core until client B's
//!   TUI model has the item and a frame with it has been drawn (200 items, one at a time);
//! - the TUI binary's resident memory while it holds 10,000 items in one node.
//!
//! Run: `cargo bench --bench figures` (release build). Prints medians and percentiles.

#![allow(
    clippy::wildcard_imports,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use common::*;
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::tui::model::Model;
use pubsub_tui::tui::update::{Msg, update};
use pubsub_tui::tui::view;
use pubsub_tui::xmpp::{self, Command as NetCommand, NetEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const LATENCY_ITEMS: usize = 200;
const MEMORY_ITEMS: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn latency(server: &prosody::Prosody) {
    create_nodes(server, &["lat"]).await;
    let (a_cfg, _) = account(server, "pub", "a");
    let (b_cfg, _) = account(server, "sub", "b");
    let mut a_session = session(&["lat"], false, Duration::from_secs(3600));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    let mut b = xmpp::spawn(b_cfg, session(&["lat"], false, Duration::from_secs(3600)));
    wait_online(&mut a).await;
    wait_for(&mut b, 20, "initial snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. }).then_some(())
    })
    .await;

    let mut model = Model::new(
        &xmpp_parsers::jid::Jid::new("pubsub.localhost").expect("jid"),
        &["lat".into()],
        10_000,
        false,
        Duration::from_secs(5),
        FixedOffset::east_opt(0).expect("utc"),
    );
    let _ = update(&mut model, Msg::Resize(100, 30));
    let mut term = Terminal::new(TestBackend::new(100, 30)).expect("terminal");
    let mut samples = Vec::with_capacity(LATENCY_ITEMS);
    for i in 0..LATENCY_ITEMS {
        let text = format!("latency probe {i}");
        let t0 = Instant::now();
        a.commands
            .send(NetCommand::Publish {
                req: common::req(),
                node: a.key("lat"),
                text: text.clone(),
            })
            .await
            .expect("send");
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), b.events.recv())
                .await
                .expect("in time")
                .expect("open");
            let done = matches!(&ev, NetEvent::Item(item) if item.text() == text);
            let _ = update(&mut model, Msg::Net(ev));
            if done {
                term.draw(|f| view::draw(f, &model)).expect("draw");
                break;
            }
        }
        samples.push(t0.elapsed());
        while a.events.try_recv().is_ok() {}
    }
    samples.sort();
    println!(
        "publish-to-display latency over {LATENCY_ITEMS} items: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    );
    let _ = a.commands.send(NetCommand::Shutdown).await;
    let _ = b.commands.send(NetCommand::Shutdown).await;
}

/// Median time of `runs` manual resyncs of `node` (holding `count` items) by a fresh client.
async fn resync_median(
    cfg: pubsub_tui::xmpp::connect::ConnectConfig,
    node: &str,
    count: usize,
    runs: usize,
) -> Duration {
    let mut net = xmpp::spawn(cfg, session(&[node], false, Duration::from_secs(3600)));
    let first = wait_for(&mut net, 60, "initial snapshot", |e| match e {
        NetEvent::Snapshot { items, .. } => Some(items.len()),
        _ => None,
    })
    .await;
    assert_eq!(first, count);
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        net.commands
            .send(NetCommand::Resync {
                req: common::req(),
                node: net.key(node),
            })
            .await
            .expect("send");
        let n = wait_for(&mut net, 60, "resync", |e| match e {
            NetEvent::Snapshot { items, .. } => Some(items.len()),
            _ => None,
        })
        .await;
        times.push(t0.elapsed());
        assert_eq!(n, count);
    }
    let _ = net.commands.send(NetCommand::Shutdown).await;
    times.sort();
    percentile(&times, 0.5)
}

async fn publish_all(cfg: pubsub_tui::xmpp::connect::ConnectConfig, node: &str, count: usize) {
    let mut s = session(&[node], false, Duration::from_secs(3600));
    s.subscribe = false;
    let mut net = xmpp::spawn(cfg, s);
    wait_online(&mut net).await;
    for i in 0..count {
        net.commands
            .send(NetCommand::Publish {
                req: common::req(),
                node: net.key(node),
                text: format!("resync probe {i}"),
            })
            .await
            .expect("send");
    }
    for _ in 0..count {
        wait_for(&mut net, 60, "publishes", |e| match e {
            NetEvent::Reply {
                result: Ok(pubsub_tui::xmpp::Answer::Published { .. }),
                ..
            } => Some(()),
            NetEvent::Reply {
                result: Err(error), ..
            } => panic!("{error}"),
            _ => None,
        })
        .await;
    }
    let _ = net.commands.send(NetCommand::Shutdown).await;
}

async fn resyncs(server: &prosody::Prosody) {
    create_nodes_with(server, &["sync256"], 256).await;
    let (a, _) = account(server, "resync-pub", "a");
    publish_all(a, "sync256", 256).await;
    let (b, _) = account(server, "resync-sub", "b");
    let t = resync_median(b, "sync256", 256, 7).await;
    println!(
        "resync of 256 items on Prosody (memory storage): median {:.1} ms over 7",
        ms(t)
    );
    if let Some(ej) = start_ejabberd(true) {
        let a = ejabberd_account(&ej, "pub", "a");
        publish_all(a, "sync1000", 1000).await;
        let b = ejabberd_account(&ej, "sub", "b");
        let t = resync_median(b, "sync1000", 1000, 7).await;
        println!(
            "resync of 1000 items on ejabberd (RSM pages of {}): median {:.1} ms over 7",
            pubsub_tui::xmpp::session::RSM_PAGE,
            ms(t)
        );
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn memory(server: &prosody::Prosody) {
    // Prosody's memory storage refuses a node's 1001st stored item (quota-limit), so the node
    // keeps few; the TUI still receives every one of the 10,000 live notifications.
    create_nodes_with(server, &["mem"], 100).await;
    let (_, viewer_pw) = account(server, "viewer", "x");
    let (flood_cfg, _) = account(server, "flood", "x");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, &viewer_pw).expect("write");
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let name = format!("pubsub-tui-bench-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_pubsub-tui");
    let server_addr = server.server();
    let jid = format!("viewer@{}", prosody::DOMAIN);
    let log = dir.path().join("log");
    let args = [
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "100",
        "-y",
        "30",
        "env",
        "XDG_CONFIG_HOME=/nonexistent",
        bin,
        "--jid",
        &jid,
        "--server",
        &server_addr,
        "--insecure-plain-tcp",
        "--service",
        prosody::PUBSUB,
        "--node",
        "mem",
        "--password-file",
        pw.to_str().expect("path"),
        "--log-file",
        log.to_str().expect("path"),
    ];
    assert!(
        Command::new("tmux")
            .args(args)
            .status()
            .expect("tmux")
            .success()
    );
    let pid: u32 = tmux(&["display-message", "-p", "-t", &name, "#{pane_pid}"])
        .parse()
        .expect("pane pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tmux(&["capture-pane", "-p", "-t", &name]).contains("online as") {
        assert!(Instant::now() < deadline, "TUI did not come online");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid);

    let mut session_cfg = session(&["mem"], false, Duration::from_secs(3600));
    session_cfg.subscribe = false;
    let mut flood = xmpp::spawn(flood_cfg, session_cfg);
    wait_online(&mut flood).await;
    let started = Instant::now();
    let mut confirmed = 0;
    for i in 0..MEMORY_ITEMS {
        flood
            .commands
            .send(NetCommand::Publish {
                req: common::req(),
                node: flood.key("mem"),
                text: format!("memory probe item number {i:05} with a little text"),
            })
            .await
            .expect("send");
        while let Ok(ev) = flood.events.try_recv() {
            if matches!(
                ev,
                NetEvent::Reply {
                    result: Ok(pubsub_tui::xmpp::Answer::Published { .. }),
                    ..
                }
            ) {
                confirmed += 1;
            }
        }
    }
    while confirmed < MEMORY_ITEMS {
        match tokio::time::timeout(Duration::from_secs(30), flood.events.recv())
            .await
            .expect("in time")
        {
            Some(NetEvent::Reply {
                result: Ok(pubsub_tui::xmpp::Answer::Published { .. }),
                ..
            }) => confirmed += 1,
            Some(NetEvent::Reply {
                result: Err(error), ..
            }) => panic!("publish failed: {error}"),
            Some(_) => {}
            None => panic!("flood connection ended"),
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tmux(&["capture-pane", "-p", "-t", &name]).contains(&format!("{MEMORY_ITEMS} items")) {
        assert!(
            Instant::now() < deadline,
            "TUI did not show {MEMORY_ITEMS} items:\n{}",
            tmux(&["capture-pane", "-p", "-t", &name])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let full = rss_kib(pid);
    println!(
        "TUI resident memory: {:.1} MiB idle, {:.1} MiB holding {MEMORY_ITEMS} items ({:.0} bytes/item)",
        idle as f64 / 1024.0,
        full as f64 / 1024.0,
        (full.saturating_sub(idle) * 1024) as f64 / MEMORY_ITEMS as f64,
    );
    #[allow(clippy::cast_precision_loss)]
    let rate = MEMORY_ITEMS as f64 / publish_secs;
    println!(
        "flood: {MEMORY_ITEMS} pipelined publishes confirmed in {publish_secs:.2} s ({rate:.0}/s); all shown in the TUI after {shown_secs:.2} s"
    );
    let _ = Command::new("tmux")
        .args(["send-keys", "-t", &name, "q"])
        .status();
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &name])
        .status();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let opts = Options {
            memory_storage: true,
            max_items_cap: 10_000,
            ..Options::default()
        };
        let Some(server) = start_prosody(&opts) else {
            return;
        };
        latency(&server).await;
        resyncs(&server).await;
        memory(&server).await;
    });
}
