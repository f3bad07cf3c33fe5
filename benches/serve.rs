//! Figures for `serve`, the relay service, on a private Prosody on loopback:
//! - throughput: one publisher pipelines items to the service while 1, 10 or 100 of our
//!   client cores are subscribed; publishes/s until every publish is confirmed, and until
//!   every subscriber has every notification (median of 3 rounds);
//! - on-disk size of the database per 10,000 stored items;
//! - for comparison, the same throughput through Prosody's own pubsub component (items in
//!   memory). The relay costs Prosody one more stanza to parse per notification: the service
//!   sends each one over its own c2s stream.
//!
//! Run: `cargo bench --bench serve` (release build); pick sections with
//! `cargo bench --bench serve -- 1 10 100 component disk prosody` (`component`: the service
//! as an external component, `serve --component`, to 1, 10 and 100 subscribers).

#![allow(
    clippy::wildcard_imports,
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::{Options, PUBSUB, Prosody};
use pubsub_tui::serve::{ServeCommand, ServeConfig, ServeEvent, Service, Store};
use pubsub_tui::xmpp::session::SessionConfig;
use pubsub_tui::xmpp::{self, Command, NetEvent, NetHandle};

const ITEMS: usize = 1000;
const ROUNDS: usize = 3;
const DISK_ITEMS: usize = 10_000;

fn via(service: &str, node: &str, subscribe: bool) -> SessionConfig {
    SessionConfig {
        subscribe,
        iq_timeout: Duration::from_secs(120),
        ..session_at(service, &[node], false, Duration::from_secs(3600))
    }
}

/// The service, running in-process. Its events are drained (and counted) by a task of their
/// own: the network core waits for its front end, so an unread event channel stalls it.
struct Running {
    commands: tokio::sync::mpsc::Sender<ServeCommand>,
    task: tokio::task::JoinHandle<()>,
    drain: tokio::task::JoinHandle<usize>,
}

impl Running {
    /// Shut the service down; returns how many `Published` events it reported.
    async fn stop(self) -> usize {
        let _ = self.commands.send(ServeCommand::Shutdown).await;
        let _ = self.task.await;
        self.drain.await.expect("drain")
    }
}

/// The service on an account's stream, or as the external component `relay.localhost`.
fn start_service(
    server: &Prosody,
    dir: &std::path::Path,
    max_items: u64,
    component: bool,
) -> (Running, String) {
    let cfg = if component {
        pubsub_tui::xmpp::connect::ConnectConfig::loopback(
            xmpp_parsers::jid::Jid::new(pubsub_tui::prosody::COMPONENT).expect("jid"),
            pubsub_tui::config::Password::new(server.component_secret.clone()),
            server.component_port,
        )
    } else {
        account(server, "relay", "server").0
    };
    let jid = cfg.jid.to_string();
    let service = Service::new(
        ServeConfig {
            max_items,
            max_nodes: 1000,
            admins: vec![],
            probe_interval: Duration::from_secs(3600),
            seed: 1,
        },
        Store::open_dir(dir).expect("store"),
    )
    .expect("service");
    let NetHandle {
        commands,
        mut events,
        task,
        ..
    } = if component {
        xmpp::component::spawn(cfg, service)
    } else {
        xmpp::task::spawn_machine(cfg, service)
    };
    let drain = tokio::spawn(async move {
        let mut published = 0;
        while let Some(e) = events.recv().await {
            if matches!(e, ServeEvent::Published { .. }) {
                published += 1;
            }
        }
        published
    });
    (
        Running {
            commands,
            task,
            drain,
        },
        jid,
    )
}

/// `label` names the service in the output, and keeps nodes and accounts apart.
async fn throughput(server: &Prosody, service: &str, label: &str, subscribers: usize) {
    let node = format!("{label}{subscribers}");
    let mut subs = Vec::new();
    for i in 0..subscribers {
        let (cfg, _) = account(server, &format!("{label}{subscribers}x{i}"), "r");
        let mut net = xmpp::spawn(cfg, via(service, &node, true));
        wait_for(&mut net, 60, "subscribed", |e| {
            matches!(e, NetEvent::Snapshot { .. }).then_some(())
        })
        .await;
        subs.push(net);
    }
    let (pcfg, _) = account(server, &format!("{label}{subscribers}pub"), "p");
    let mut publisher = xmpp::spawn(pcfg, via(service, &node, false));
    wait_online(&mut publisher).await;
    let mut confirmed = Vec::new();
    let mut delivered = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let counters: Vec<_> = subs
            .drain(..)
            .map(|mut net| {
                tokio::spawn(async move {
                    let mut n = 0;
                    while n < ITEMS {
                        wait_for(&mut net, 300, "notifications", |e| {
                            matches!(e, NetEvent::Item(_)).then_some(())
                        })
                        .await;
                        n += 1;
                    }
                    (net, Instant::now())
                })
            })
            .collect();
        publish_n(&mut publisher, &node, ITEMS).await;
        confirmed.push(start.elapsed());
        let mut last = start;
        for c in counters {
            let (net, at) = c.await.expect("counter");
            last = last.max(at);
            subs.push(net);
        }
        delivered.push(last - start);
    }
    confirmed.sort();
    delivered.sort();
    let rate = |d: Duration| ITEMS as f64 / d.as_secs_f64();
    println!(
        "{label}, {subscribers:>3} subscriber(s): {:>6.0} publishes/s confirmed, {:>6.0}/s delivered to all \
         ({:>7.0} notifications/s); median of {ROUNDS} rounds of {ITEMS} (confirmed {:.0}–{:.0}/s)",
        rate(confirmed[ROUNDS / 2]),
        rate(delivered[ROUNDS / 2]),
        rate(delivered[ROUNDS / 2]) * subscribers as f64,
        rate(confirmed[ROUNDS - 1]),
        rate(confirmed[0]),
    );
    for s in subs {
        let _ = s.commands.send(Command::Shutdown).await;
    }
    let _ = publisher.commands.send(Command::Shutdown).await;
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// 10,000 items of our own format in one node of a fresh database, retention 10,000.
async fn disk(server: &Prosody) {
    let data = tempfile::tempdir().expect("tempdir");
    let (svc, jid) = start_service(server, data.path(), DISK_ITEMS as u64, false);
    let (pcfg, _) = account(server, "diskpub", "p");
    let mut publisher = xmpp::spawn(pcfg, via(&jid, "disk", false));
    wait_online(&mut publisher).await;
    let start = Instant::now();
    publish_n(&mut publisher, "disk", DISK_ITEMS).await;
    let took = start.elapsed();
    let _ = publisher.commands.send(Command::Shutdown).await;
    // While the service runs, the write-ahead log is beside the database.
    let running = dir_bytes(data.path());
    assert_eq!(svc.stop().await, DISK_ITEMS, "every publish reported");
    // What stays after SQLite folds the write-ahead log into the database.
    let db = rusqlite::Connection::open(data.path().join("serve.sqlite3")).expect("db");
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let bytes: u64 = db
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|b| u64::try_from(b).unwrap_or(0))
        .expect("size");
    let (count, xml): (i64, f64) = db
        .query_row(
            "SELECT count(*), avg(length(xml)) FROM items WHERE node = 'disk'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("avg");
    assert_eq!(
        usize::try_from(count).ok(),
        Some(DISK_ITEMS),
        "every item stored"
    );
    println!(
        "serve, disk: {DISK_ITEMS} items in a fresh database: {:.2} MiB after checkpoint \
         ({:.0} bytes/item; the stored <item/> averages {xml:.0} bytes), {:.2} MiB with the WAL while running; \
         published at {:.0}/s",
        bytes as f64 / 1_048_576.0,
        bytes as f64 / DISK_ITEMS as f64,
        running as f64 / 1_048_576.0,
        DISK_ITEMS as f64 / took.as_secs_f64(),
    );
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
    // Sections to run: `cargo bench --bench serve -- 10 disk` (default: all).
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |what: &str| wanted.is_empty() || wanted.iter().any(|w| w == what);
    runtime.block_on(async {
        let Some(server) = start_prosody(&Options::default()) else {
            return;
        };
        let counts: Vec<usize> = [1, 10, 100]
            .into_iter()
            .filter(|n| run(&n.to_string()))
            .collect();
        if !counts.is_empty() {
            let data = tempfile::tempdir().expect("tempdir");
            let (svc, jid) = start_service(&server, data.path(), ITEMS as u64, false);
            for &n in &counts {
                throughput(&server, &jid, "serve", n).await;
            }
            svc.stop().await;
        }
        // The same service as an external component (XEP-0114): `serve --component`.
        if run("component") {
            let data = tempfile::tempdir().expect("tempdir");
            let (svc, jid) = start_service(&server, data.path(), ITEMS as u64, true);
            for n in [1, 10, 100] {
                throughput(&server, &jid, "component", n).await;
            }
            svc.stop().await;
        }
        if run("disk") {
            disk(&server).await;
        }
        // The same measurement through Prosody's own pubsub component, for comparison.
        if run("prosody") {
            for n in [1, 10, 100] {
                let node = format!("prosody{n}");
                // Below the in-memory store's quota (`storage_archive_item_limit`, 1000):
                // a node at the quota fails every publish with internal-server-error.
                create_nodes_with(&server, &[&node], 500).await;
                throughput(&server, PUBSUB, "prosody", n).await;
            }
        }
    });
}
