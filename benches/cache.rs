//! What the local store saves: a resync of a node of 10,000 items after 10 were published and
//! 10 retracted, incremental (the ids listed, the 10 new fetched by id) against a full
//! retrieve (`--no-cache`): small items (sensor readings, about 170 bytes) on a private
//! Prosody, and larger ones (Atom entries, about 1.3 KB) on a private ejabberd (13 MB of them:
//! Prosody, which does not page, would answer a full retrieve in one stanza over the client's
//! 8 MiB bound). Both on loopback. Bytes are those the server sent,
//! counted by a relay between it and the client, from the moment the session is online to the
//! snapshot (subscribing and the listing included); time over the same span. Medians of 3
//! runs, side by side in each run.
//!
//! Then the time from start to the first screen of cached items: the TUI (this build) in
//! tmux, its service unreachable (every byte held), until the newest kept item is on screen;
//! and the store's part of it alone (open the database, read and parse the node's items).
//!
//! With `--writes` (no server), only what keeping live items costs: 30,000 items of a flood
//! added to a store and written every 250 (as the core's timer does at 500/s); CPU per item
//! while the node fills (its first 10,000, the default bound) and once it is full (each new
//! item pushes the oldest out), medians of 3 runs.
//!
//! Run: `cargo bench --bench cache` (release build), `cargo bench --bench cache -- --writes`.

#![allow(
    clippy::wildcard_imports,
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cli::Target;
use common::tmux::Tmux;
use common::*;
use pubsub_tui::cache::Persist as _;
use pubsub_tui::cache::db::{self, Db, Limits};
use pubsub_tui::prosody::{self, Options};

use pubsub_tui::xmpp::connect::{ConnectConfig, Password};
use pubsub_tui::xmpp::{Command, NetEvent, SnapshotReason};
use xmpp_parsers::jid::Jid;

const ITEMS: usize = 10_000;
const CHANGED: usize = 10;
const RUNS: usize = 3;

/// The item of number `n`: a sensor reading (about 170 bytes), or an Atom entry of a blog
/// feed (about 1.3 KB).
fn item_xml(kind: &str, n: usize) -> String {
    if kind == "readings" {
        return format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='r{n}'><reading xmlns='urn:example:sensor'><temp unit='C'>{}.{}</temp><hum>{}</hum><station>lab-{}</station></reading></item>",
            15 + n % 15,
            n % 10,
            30 + n % 50,
            n % 7
        );
    }
    let words = "Pubsub nodes keep items; subscribers get each one as it is published, and a \
                 client that was away asks for what it missed. This entry is one of many in a \
                 long-running feed, with a summary of a few sentences and some markup. ";
    format!(
        "<item xmlns='http://jabber.org/protocol/pubsub' id='r{n}'><entry xmlns='http://www.w3.org/2005/Atom'>\
         <title>Release notes, part {n}</title><id>tag:example.org,2026:entry-{n}</id>\
         <updated>2026-11-{:02}T08:00:00Z</updated><author><name>The release team</name></author>\
         <link rel='alternate' href='https://example.org/posts/{n}'/>\
         <summary type='html'>&lt;p&gt;{words}{words}&lt;/p&gt;</summary>\
         <content type='html'>&lt;p&gt;{words}{words}{words}&lt;/p&gt;</content></entry></item>",
        1 + n % 28
    )
}

fn export_file(dir: &Path, kind: &str) -> String {
    let mut out = String::new();
    for n in 0..ITEMS {
        let xml = item_xml(kind, n);
        out.push_str(&serde_json::json!({"id": format!("r{n}"), "xml": xml}).to_string());
        out.push('\n');
    }
    let path = dir.join(format!("{kind}.ndjson"));
    std::fs::write(&path, out).expect("write");
    path.display().to_string()
}

/// One resync as a fresh run of bob would do it: bytes from the server and time, from online
/// to the snapshot; whether it was incremental; the items in it.
struct Measured {
    bytes: u64,
    time: Duration,
    incremental: bool,
    count: usize,
}

async fn resync(
    relay: &relay::Relay,
    password: &str,
    node: &str,
    store: Option<&Path>,
) -> Measured {
    let jid = Jid::new("bob@localhost/bench").expect("jid");
    let connect = ConnectConfig {
        max_attempts: Some(3),
        ..ConnectConfig::loopback(jid, Password::new(password), relay.port)
    };
    let mut cfg = session(&[node], false, Duration::from_secs(3600));
    cfg.iq_timeout = Duration::from_secs(60);
    let persist: Box<dyn pubsub_tui::cache::Persist> = match store {
        Some(p) => Box::new(
            Db::open(p, prosody::PUBSUB, Limits::default())
                .db
                .expect("store"),
        ),
        None => Box::new(pubsub_tui::cache::Volatile::new("bench")),
    };
    let mut net = pubsub_tui::xmpp::task::spawn_with_store(connect, cfg, persist);
    wait_online(&mut net).await;
    let (bytes0, t0) = (relay.server_byte_count(), Instant::now());
    let mut incremental = false;
    let count = loop {
        match tokio::time::timeout(Duration::from_secs(120), net.events.recv()).await {
            Ok(Some(NetEvent::Incremental { .. })) => incremental = true,
            Ok(Some(NetEvent::Snapshot { items, reason, .. }))
                if reason != SnapshotReason::Cached =>
            {
                break items.len();
            }
            Ok(Some(_)) => {}
            other => panic!("no snapshot: {other:?}"),
        }
    };
    let measured = Measured {
        bytes: relay.server_byte_count() - bytes0,
        time: t0.elapsed(),
        incremental,
        count,
    };
    let _ = net.commands.send(Command::Shutdown).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), net.task).await;
    measured
}

/// CPU time this thread has used (`/proc/thread-self/schedstat`: on the CPU, in ns).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = stat
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat format");
    Duration::from_nanos(ns)
}

/// The `--writes` measure (see the module doc).
fn writes() {
    use pubsub_tui::feed::Seq;
    use pubsub_tui::xmpp::proto::item::{OutgoingItem, item_element, parse_item};
    const N: u32 = 30_000;
    const FILL: u32 = 10_000;
    const TICK: u32 = 250;
    let items: Vec<_> = (0..N)
        .map(|i| {
            let el = item_element(&OutgoingItem {
                node: "flood".into(),
                sender: "flood-pub@localhost/pubsub-tui-ab12cd34".into(),
                time: chrono::Utc::now(),
                seq: Seq::new("k3j4h5g6", u64::from(i) + 1),
                text: format!(
                    "flood item {i:06}, a reading of {}.{} degrees",
                    20 + i % 7,
                    i % 10
                ),
            });
            parse_item("flood", &el)
        })
        .collect();
    let (mut filling, mut full) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("dir");
        let mut db = Db::open(
            &dir.path().join("a@x.sqlite"),
            prosody::PUBSUB,
            Limits::default(),
        )
        .db
        .expect("store");
        let start = thread_cpu();
        let mut filled = start;
        for (i, item) in (0..).zip(&items) {
            db.add(item);
            if (i + 1) % TICK == 0 {
                db.flush();
            }
            if i + 1 == FILL {
                filled = thread_cpu();
            }
        }
        db.flush();
        assert_eq!(
            db.cached_ids("flood").len(),
            FILL as usize,
            "the bound holds"
        );
        let spent = |from: Duration, to: Duration| to.checked_sub(from).unwrap_or_default();
        filling.push(spent(start, filled) / FILL);
        full.push(spent(filled, thread_cpu()) / (N - FILL));
    }
    println!(
        "keeping a live item, CPU per item (median of {RUNS}): {:.1} µs while the node fills, \
         {:.1} µs once it is full",
        median(filling).as_secs_f64() * 1e6,
        median(full).as_secs_f64() * 1e6
    );
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mib(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The TUI started on the kept items, the service unreachable: the time until the feed shows
/// them (with the line that says they are kept from earlier runs).
fn first_cached_screen(data: &Path, password: &str, run: usize) -> Duration {
    let pw = data.join("password");
    std::fs::write(&pw, password).expect("password");
    let mut perms = std::fs::metadata(&pw).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&pw, perms).expect("chmod");
    // Nothing listens there: the screen can only come from the store.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let cmd = format!(
        "XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME={d} XDG_DATA_HOME={d} {} --jid bob@localhost \
         --server 127.0.0.1:{port} --insecure-plain-tcp --service {} --password-file {} \
         --log-file {} --node atom --node readings; sleep 60",
        env!("CARGO_BIN_EXE_pubsub-tui"),
        prosody::PUBSUB,
        pw.display(),
        data.join("tui.log").display(),
        d = data.display(),
    );
    let t = Instant::now();
    let tmux = Tmux::start(&format!("bench-cache-{}-{run}", std::process::id()), &cmd);
    let deadline = t + Duration::from_secs(30);
    loop {
        if tmux.screen().contains("kept from earlier runs") {
            let shown = t.elapsed();
            tmux.keys(&["q"]);
            return shown;
        }
        assert!(Instant::now() < deadline, "no cached screen");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One payload kind: the node filled, then `runs` rounds of changes, each resynced both
/// ways. Returns the path of bob's store and how many items it keeps.
async fn compare(
    port: u16,
    admin: &Target,
    bob_pw: &str,
    kind: &str,
    runs: usize,
    data: &Path,
) -> (std::path::PathBuf, usize) {
    let node = kind;
    admin.ok(&[
        "node",
        "create",
        node,
        "--set",
        "max_items=10000",
        "--set",
        "publish_model=open",
    ]);
    let files = tempfile::tempdir().expect("dir");
    let t = Instant::now();
    admin.ok(&["import", "--node", node, &export_file(files.path(), kind)]);
    eprintln!(
        "{kind}: {ITEMS} items imported in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let relay = relay::Relay::start(port).await;
    let store = db::path_for(&data.join("pubsub-tui").join("cache"), "bob@localhost");
    std::fs::create_dir_all(store.parent().expect("dir")).expect("mkdir");
    let first = resync(&relay, bob_pw, node, Some(&store)).await;
    assert!(!first.incremental && first.count == ITEMS);
    let mut inc = Vec::new();
    let mut full = Vec::new();
    for run in 0..runs {
        for k in 0..CHANGED {
            let n = ITEMS + run * CHANGED + k;
            let file = files.path().join("one.xml");
            std::fs::write(&file, item_xml(kind, n)).expect("write");
            admin.ok(&[
                "publish",
                "--node",
                node,
                "--xml",
                file.to_str().expect("utf-8"),
            ]);
            let id = format!("r{}", ITEMS / 2 + run * CHANGED + k);
            admin.ok(&["retract", "--node", node, &id]);
        }
        let i = resync(&relay, bob_pw, node, Some(&store)).await;
        let f = resync(&relay, bob_pw, node, None).await;
        assert!(i.incremental && !f.incremental);
        assert_eq!(i.count, f.count, "the same set either way");
        println!(
            "{kind} run {}: incremental {} in {} ms · full {} in {} ms",
            run + 1,
            mib(i.bytes),
            i.time.as_millis(),
            mib(f.bytes),
            f.time.as_millis()
        );
        inc.push(i);
        full.push(f);
    }
    let ib = median(inc.iter().map(|m| m.bytes).collect());
    let fb = median(full.iter().map(|m| m.bytes).collect());
    let it = median(inc.iter().map(|m| m.time).collect());
    let ft = median(full.iter().map(|m| m.time).collect());
    println!(
        "{kind}: resync of {ITEMS} items ({} each), {CHANGED} new and {CHANGED} retracted, median of {runs}:",
        mib(fb / ITEMS as u64),
    );
    println!(
        "  incremental {} in {} ms; full retrieve {} in {} ms: {:.1}x fewer bytes, {:.1}x less time",
        mib(ib),
        it.as_millis(),
        mib(fb),
        ft.as_millis(),
        fb as f64 / ib.max(1) as f64,
        ft.as_secs_f64() / it.as_secs_f64().max(1e-9)
    );
    (store, inc.last().map_or(0, |m| m.count))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--writes") {
        writes();
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { RUNS };
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (_, bob_pw) = account(&server, "bob", "b");
    let admin = Target::prosody_admin(&server, account(&server, "carol", "c").0);
    let data = tempfile::tempdir().expect("data");
    compare(server.port, &admin, &bob_pw, "readings", runs, data.path()).await;
    let Some(ej) = start_ejabberd_with("    max_items_node: 20000\n") else {
        return;
    };
    let olga_pw = prosody::random_password();
    ej.register("olga", &olga_pw);
    ej.register("bob", &bob_pw);
    let olga = Target {
        port: ej.port,
        service: prosody::PUBSUB.into(),
        owner: "olga".into(),
        password: olga_pw,
        bob: ejabberd_account(&ej, "carol", "c"),
        bob_bare: "carol@localhost".into(),
    };
    let (store, kept) = compare(ej.port, &olga, &bob_pw, "atom", runs, data.path()).await;

    // The store's part of a start: open, read and parse the node's items.
    let mut loads = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut db = Db::open(&store, prosody::PUBSUB, Limits::default())
            .db
            .expect("store");
        let n = db.cached("atom").len();
        loads.push(t.elapsed());
        assert_eq!(n, kept);
    }
    println!(
        "store: {kept} kept Atom entries read and parsed in {} ms (median of {runs})",
        median(loads).as_millis()
    );
    if Tmux::present_or_skip() {
        let mut screens = Vec::new();
        for run in 0..runs {
            screens.push(first_cached_screen(data.path(), &bob_pw, run));
        }
        println!(
            "TUI: start to the first screen of cached items (two nodes, about {kept} items each): {} ms (median of {runs})",
            median(screens).as_millis()
        );
    }
}
