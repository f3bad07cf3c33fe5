//! Captures `tests/fixtures/captured/`: runs the headless commands against a private
//! Prosody, ejabberd and `serve` with the wire log on, one log per answer in
//! `/tmp/capture/`. Not part of the suite (`#[ignore]`); run it by hand when a server's
//! answers need capturing again:
//! `cargo test --test capture_fixtures -- --ignored`, then copy each result IQ's child into
//! `tests/fixtures/captured/SERVER_WHAT.xml` (with the random resource replaced).

mod common;
use common::*;
use pubsub_tui::xmpp::{self, Command, NetHandle};
use std::time::Duration;

/// Run `pubsub-tui ARGS` with the wire log into `log`.
fn run(port: u16, service: &str, user: &str, pw: &str, args: &[&str], log: &str) {
    std::fs::create_dir_all("/tmp/capture").expect("capture dir");
    let split = if args[0] == "node" { 2 } else { 1 };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pubsub-tui"))
        .args(&args[..split])
        .args([
            "--jid",
            &format!("{user}@localhost"),
            "--server",
            &format!("127.0.0.1:{port}"),
            "--insecure-plain-tcp",
            "--service",
            service,
            "--log-level",
            "pubsub_tui::wire=trace",
            "--log-file",
            log,
        ])
        .args(&args[split..])
        .env("PUBSUB_TUI_PASSWORD", pw)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", state_home())
        .env("XDG_DATA_HOME", state_home())
        .output()
        .expect("runs");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

const ASKED: [(&[&str], &str); 6] = [
    (&["nodes"], "nodes"),
    (&["info"], "info"),
    (&["info", "--node", "news"], "info_node"),
    (&["subscribe", "--node", "news"], "subscribe"),
    (&["subscriptions"], "subscriptions"),
    (&["items", "--node", "news"], "items"),
];

/// The owner's requests, run as the node's owner.
const OWNER_ASKED: [(&[&str], &str); 4] = [
    (&["node", "config", "news"], "config"),
    (&["node", "affiliations", "news"], "affiliations"),
    (&["node", "subscriptions", "news"], "node_subscriptions"),
    (&["node", "create", "x", "--set", "max_items=2"], "default"),
];

/// Create the nodes (unless `created`), publish one item, and run every command of
/// [`ASKED`] against `service`, then [`OWNER_ASKED`] as `owner` (user, password), logging
/// the answers as `/tmp/capture/PREFIX_WHAT.log`.
async fn capture(
    a: &mut NetHandle,
    created: bool,
    port: u16,
    pw: &str,
    owner: (&str, &str),
    prefix: &str,
) {
    wait_online(a).await;
    if !created {
        for (n, t) in [("news", Some("All the news")), ("demo", None)] {
            let key = a.key(n);
            let r = send(a, |req| Command::Owner {
                req,
                node: key,
                op: pubsub_tui::xmpp::OwnerOp::open_node(10, t),
            })
            .await;
            reply(a, 20, r).await.expect("created");
        }
    }
    let r = publish(a, "news", "hello").await;
    reply(a, 20, r).await.expect("published");
    let service = a.service.to_string();
    for (args, name) in ASKED {
        let log = format!("/tmp/capture/{prefix}_{name}.log");
        run(port, &service, "alice", pw, args, &log);
    }
    for (args, name) in OWNER_ASKED {
        let log = format!("/tmp/capture/{prefix}_{name}.log");
        run(port, &service, owner.0, owner.1, args, &log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "captures fixtures by hand"]
async fn capture_ejabberd() {
    let server = start_ejabberd(false).expect("ejabberd");
    let cfg = ejabberd_account(&server, "alice", "a");
    let pw = cfg.password.expose().to_owned();
    let session = session_at("pubsub.localhost", &[], false, Duration::from_secs(3600));
    let mut a = xmpp::spawn(cfg, session);
    capture(&mut a, false, server.port, &pw, ("alice", &pw), "ejabberd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "captures fixtures by hand"]
async fn capture_prosody() {
    let server = start_prosody(&pubsub_tui::prosody::Options::default()).expect("prosody");
    pubsub_tui::demo::create_titled_nodes(
        &server,
        &[("news", Some("All the news")), ("demo", None)],
        10,
    )
    .await
    .expect("nodes");
    let (cfg, pw) = account(&server, "alice", "a");
    let mut a = xmpp::spawn(cfg, session(&[], false, Duration::from_secs(3600)));
    let admin = server.admin_password.clone();
    capture(&mut a, true, server.port, &pw, ("admin", &admin), "prosody").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "captures fixtures by hand"]
async fn capture_serve() {
    let server = start_prosody(&pubsub_tui::prosody::Options::default()).expect("prosody");
    let dir = tempfile::tempdir().expect("dir");
    let relay = common::serve::Serve::start(&server, "relay", dir.path(), &[]);
    let (cfg, pw) = account(&server, "alice", "a");
    let session = session_at(&relay.jid, &[], false, Duration::from_secs(3600));
    let mut a = xmpp::spawn(cfg, session);
    capture(&mut a, false, server.port, &pw, ("alice", &pw), "serve").await;
}
