//! The import rate: `pubsub-tui import` (the release binary, as a user runs it) of an NDJSON
//! export of 1,000 sensor readings into a fresh node, through `serve` (SQLite) and through
//! Prosody's own pubsub component (in memory), on a private Prosody on loopback. Each run goes
//! to a new node; the figure is the median of 3 runs, from start to exit (connecting and
//! the retrieve that finds what is there included).
//!
//! Run: `cargo bench --bench transfer` (release build).

#![allow(
    clippy::wildcard_imports,
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cli::Target;
use common::*;
use pubsub_tui::prosody::Options;

const ITEMS: usize = 1000;
const RUNS: usize = 3;

fn export_file(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for n in 0..ITEMS {
        let xml = format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='r{n}'><reading xmlns='urn:example:sensor'><temp unit='C'>{}.{}</temp><hum>{}</hum><station>lab-{}</station></reading></item>",
            15 + n % 15,
            n % 10,
            30 + n % 50,
            n % 7
        );
        out.push_str(
            &serde_json::json!({"node": "src", "id": format!("r{n}"), "xml": xml}).to_string(),
        );
        out.push('\n');
    }
    let path = dir.join("readings.ndjson");
    std::fs::write(&path, out).expect("write");
    path.display().to_string()
}

fn rate(target: &Target, file: &str, prefix: &str, create: bool) -> f64 {
    let mut times = Vec::new();
    for run in 0..RUNS {
        let node = format!("{prefix}-{run}");
        if create {
            target.ok(&["node", "create", &node, "--set", "max_items=1000"]);
        }
        let t = Instant::now();
        let said = target.run(&["import", "--node", &node, file]);
        let elapsed = t.elapsed();
        let err = String::from_utf8_lossy(&said.stderr);
        assert!(said.status.success(), "{err}");
        assert!(err.contains(&format!("{ITEMS} published")), "{err}");
        times.push(elapsed);
    }
    times.sort();
    ITEMS as f64 / times[RUNS / 2].as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = start_prosody(&Options::default()).expect("prosody");
    let dir = tempfile::tempdir().expect("dir");
    let file = export_file(dir.path());
    let relay = common::serve::Serve::start(&server, "relay", dir.path(), &[]);
    let (bob, _) = account(&server, "bob", "b");
    let to_serve = Target::prosody_user(&server, "olga", &relay.jid, bob.clone());
    let to_prosody = Target::prosody_admin(&server, bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let serve = rate(&to_serve, &file, "serve", false);
    let prosody = rate(&to_prosody, &file, "prosody", true);
    println!(
        "import of {ITEMS} items (NDJSON, 16 in flight), median of {RUNS}: serve {serve:.0} items/s, Prosody {prosody:.0} items/s (serve/Prosody {:.2})",
        serve / prosody
    );
}
