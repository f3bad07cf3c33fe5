//! Figures for `serve`, the relay service, on a private Prosody on loopback:
//! - throughput: one publisher pipelines items to the service while 1, 10 or 100 of our
//!   client cores are subscribed; publishes/s until every publish is confirmed, and until
//!   every subscriber has every notification (median of 3 rounds);
//! - on-disk size of the database per 10,000 stored items.
//!
//! Run: `cargo bench --bench serve` (release build).

#![allow(
    clippy::wildcard_imports,
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::{self, Options, Prosody};
use pubsub_tui::serve::{ServeConfig, Service, Store};
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

fn start_service(
    server: &Prosody,
    dir: &std::path::Path,
    max_items: u64,
) -> (
    NetHandle<pubsub_tui::serve::ServeCommand, pubsub_tui::serve::ServeEvent>,
    String,
) {
    let (cfg, _) = account(server, "relay", "server");
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
    (xmpp::task::spawn_machine(cfg, service), jid)
}

async fn throughput(server: &Prosody, service: &str, subscribers: usize) {
    let node = format!("t{subscribers}");
    let mut subs = Vec::new();
    for i in 0..subscribers {
        let (cfg, _) = account(server, &format!("s{subscribers}x{i}"), "r");
        let mut net = xmpp::spawn(cfg, via(service, &node, true));
        wait_for(&mut net, 60, "subscribed", |e| {
            matches!(e, NetEvent::Snapshot { .. }).then_some(())
        })
        .await;
        subs.push(net);
    }
    let (pcfg, _) = account(server, &format!("pub{subscribers}"), "p");
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
        "serve, {subscribers:>3} subscriber(s): {:>6.0} publishes/s confirmed, {:>6.0}/s delivered to all \
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
        let Some(server) = start_prosody(&Options::default()) else {
            return;
        };
        let data = tempfile::tempdir().expect("tempdir");
        let (svc, jid) = start_service(&server, data.path(), DISK_ITEMS as u64);
        for n in [1, 10, 100] {
            throughput(&server, &jid, n).await;
        }
        // Disk: 10,000 items of our own format in one node.
        let (pcfg, _) = account(&server, "diskpub", "p");
        let mut publisher = xmpp::spawn(pcfg, via(&jid, "disk", false));
        wait_online(&mut publisher).await;
        let before = dir_bytes(data.path());
        publish_n(&mut publisher, "disk", DISK_ITEMS).await;
        let _ = publisher.commands.send(Command::Shutdown).await;
        let _ = svc.commands.send(pubsub_tui::serve::ServeCommand::Shutdown).await;
        let _ = svc.task.await;
        let with_wal = dir_bytes(data.path()) - before.min(dir_bytes(data.path()));
        // What stays after SQLite folds the write-ahead log into the database.
        let db = rusqlite::Connection::open(data.path().join("serve.sqlite3")).expect("db");
        db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
        let page: u64 = db
            .query_row("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", [], |r| r.get::<_, i64>(0))
            .map(|b| u64::try_from(b).unwrap_or(0))
            .expect("size");
        let per_item: f64 = db
            .query_row("SELECT avg(length(xml)) FROM items WHERE node = 'disk'", [], |r| r.get(0))
            .expect("avg");
        println!(
            "serve, disk: whole database after 10,000 more items {:.2} MiB (growth with WAL {:.2} MiB); \
             the stored <item/> averages {per_item:.0} bytes",
            page as f64 / 1_048_576.0,
            with_wal as f64 / 1_048_576.0
        );
        let _ = prosody::DOMAIN;
    });
}
