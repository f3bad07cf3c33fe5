//! Figures for the explorer, against a private ejabberd on loopback with 1,000 nodes (each
//! with a title; `max_nodes_discoitems` raised so the root list is not cut at 100):
//! - the node list alone (one disco#items request);
//! - the list with every node's meta-data, through the TUI's own code (`update` and the
//!   network core), with 1, 8 (the default) and 32 meta-data requests in flight.
//!
//! Run: `cargo bench --bench explorer` (release build; needs root for ejabberd). Prints the
//! median of 5 runs of each, and the ratios.

#![allow(
    clippy::wildcard_imports,
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::FixedOffset;
use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pubsub_tui::tui::model::Model;
use pubsub_tui::tui::update::{Effect, Msg, update};
use pubsub_tui::xmpp::{self, Answer, Command, NetEvent, NetHandle};

const NODES: usize = 1000;
const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Send the effects' commands to the core.
async fn perform(net: &NetHandle, fx: Vec<Effect>) {
    for e in fx {
        if let Effect::Net(cmd) = e {
            net.commands.send(cmd).await.expect("send");
        }
    }
}

/// Open the explorer in a fresh model and run until all nodes and their meta-data are in.
async fn explore_all(net: &mut NetHandle, window: usize) -> Duration {
    let mut m = Model::new(
        &xmpp_parsers::jid::Jid::new("pubsub.localhost").expect("jid"),
        &[],
        100,
        false,
        Duration::from_secs(5),
        FixedOffset::east_opt(0).expect("utc"),
    );
    m.explorer.info_window = window;
    let _ = update(
        &mut m,
        Msg::Net(NetEvent::Connection(xmpp::ConnState::Online {
            jid: "alice@localhost/bench".into(),
            resumed: false,
            server: None,
        })),
    );
    let t0 = Instant::now();
    let fx = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('e'), KeyModifiers::NONE)),
    );
    perform(net, fx).await;
    while m.explorer.counts() != (NODES, NODES) {
        let ev = tokio::time::timeout(Duration::from_secs(60), net.events.recv())
            .await
            .expect("events in time")
            .expect("core alive");
        let fx = update(&mut m, Msg::Net(ev));
        perform(net, fx).await;
    }
    t0.elapsed()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let Some(server) = start_ejabberd_with("    max_nodes_discoitems: infinity\n") else {
            return;
        };
        let cfg = ejabberd_account(&server, "alice", "a");
        let mut net = xmpp::spawn(
            cfg,
            session_at("pubsub.localhost", &[], false, Duration::from_secs(3600)),
        );
        wait_online(&mut net).await;
        let t = Instant::now();
        for i in 0..NODES {
            let key = net.key(&format!("node-{i:04}"));
            let r = send(&mut net, |req| Command::Owner {
                req,
                node: key,
                op: pubsub_tui::xmpp::OwnerOp::open_node(10, Some(&format!("Node number {i}"))),
            })
            .await;
            reply(&mut net, 30, r).await.expect("created");
        }
        println!(
            "created {NODES} nodes in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        let mut list = Vec::new();
        for _ in 0..RUNS {
            let t0 = Instant::now();
            let service = net.service.clone();
            let r = send(&mut net, |req| Command::ListNodes {
                req,
                service,
                parent: None,
                after: None,
            })
            .await;
            let Ok(Answer::Nodes(items)) = reply(&mut net, 30, r).await else {
                panic!("a node list")
            };
            assert_eq!(items.items.len(), NODES, "the list is whole");
            list.push(t0.elapsed());
        }
        let list = median(list);
        println!("list of {NODES} nodes (one disco#items): median {:.1} ms", ms(list));

        let mut by_window = Vec::new();
        for window in [1, 8, 32] {
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(explore_all(&mut net, window).await);
            }
            let med = median(runs);
            by_window.push((window, med));
        }
        let base = by_window[1].1;
        for (window, med) in &by_window {
            println!(
                "explorer: {NODES} nodes with meta-data, {window:>2} in flight: median {:.0} ms ({:.2}x the default)",
                ms(*med),
                med.as_secs_f64() / base.as_secs_f64()
            );
        }
        let _ = net.commands.send(Command::Shutdown).await;
    });
}
