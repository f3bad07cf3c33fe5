//! Shared helpers for the integration tests: a private Prosody, accounts, and waiting for
//! network events with a deadline.
#![allow(dead_code)]

pub mod cli;
pub mod ejabberd;
pub mod fake_server;
pub mod relay;
pub mod serve;
pub mod tmux;
pub mod wokkel;

use std::time::Duration;

use pubsub_tui::config::Password;
use pubsub_tui::prosody::{self, Options, Prosody};
use pubsub_tui::xmpp::connect::ConnectConfig;
use pubsub_tui::xmpp::session::SessionConfig;
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent, NetHandle, RequestId};
use xmpp_parsers::jid::Jid;

/// Start a private Prosody, or skip the test when Prosody is missing. Under `CI=true` a
/// missing server is a failure, not a skip.
pub fn start_prosody(opts: &Options) -> Option<Prosody> {
    if let Ok(filter) = std::env::var("PUBSUB_TUI_TEST_LOG") {
        let _ = pubsub_tui::logging::init(None, &filter);
    }
    if let Err(e) = prosody::available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no Prosody: {e}"
        );
        eprintln!("SKIPPED: {e}");
        return None;
    }
    Some(Prosody::start(opts).expect("private Prosody starts"))
}

pub fn account(server: &Prosody, user: &str, resource: &str) -> (ConnectConfig, String) {
    let password = prosody::random_password();
    server.register(user, &password).expect("register account");
    (connect_config(server, user, resource, &password), password)
}

pub fn connect_config(
    server: &Prosody,
    user: &str,
    resource: &str,
    password: &str,
) -> ConnectConfig {
    let jid = Jid::new(&format!("{user}@{}/{resource}", prosody::DOMAIN)).expect("valid jid");
    ConnectConfig {
        max_attempts: Some(3),
        ..ConnectConfig::loopback(jid, Password::new(password), server.port)
    }
}

pub fn session(nodes: &[&str], auto: bool, interval: Duration) -> SessionConfig {
    SessionConfig {
        service: Jid::new(prosody::PUBSUB).expect("valid jid"),
        nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        subscribe: true,
        auto_publish: auto,
        interval,
        iq_timeout: Duration::from_secs(10),
        resync_min_interval: Duration::from_secs(1),
        publisher_session: pubsub_tui::config::new_publisher_session(),
        keep_unsent: false,
        retry: pubsub_tui::xmpp::session::RetryPolicy {
            first: Duration::from_millis(500),
            max: Duration::from_secs(2),
            attempts: 4,
        },
    }
}

/// Like [`session`], for the pubsub service at `service` (a relay's full JID).
pub fn session_at(service: &str, nodes: &[&str], auto: bool, interval: Duration) -> SessionConfig {
    SessionConfig {
        service: Jid::new(service).expect("service jid"),
        ..session(nodes, auto, interval)
    }
}

/// Wait for the first event matching `pred`, failing the test after `secs` seconds.
pub async fn wait_for<T>(
    net: &mut NetHandle,
    secs: u64,
    what: &str,
    mut pred: impl FnMut(&NetEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let ev = tokio::time::timeout_at(deadline, net.events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {secs} s waiting for {what}"))
            .unwrap_or_else(|| panic!("network task ended while waiting for {what}"));
        if let NetEvent::Connection(ConnState::Failed { error }) = &ev {
            panic!("connection failed while waiting for {what}: {error}");
        }
        if let Some(v) = pred(&ev) {
            return v;
        }
    }
}

pub async fn wait_online(net: &mut NetHandle) -> String {
    wait_for(net, 20, "online", |e| match e {
        NetEvent::Connection(ConnState::Online { jid, .. }) => Some(jid.clone()),
        _ => None,
    })
    .await
}

/// Create open nodes as the admin account.
pub async fn create_nodes(server: &Prosody, nodes: &[&str]) {
    create_nodes_with(server, nodes, 1000).await;
}

/// Create open nodes keeping at most `max_items` items each (the demo's code).
pub async fn create_nodes_with(server: &Prosody, nodes: &[&str], max_items: u32) {
    pubsub_tui::demo::create_open_nodes(server, nodes, max_items)
        .await
        .expect("nodes created");
}

/// A throwaway CA and a leaf certificate for `localhost` (CA:FALSE, serverAuth, SANs), made
/// with the openssl command. Returns (ca.pem, cert.pem, key.pem).
pub fn make_test_ca(
    dir: &std::path::Path,
    san: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pubsub-tui test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={san}\n"),
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

/// Collect connection states until the network task ends (or `secs` pass).
pub async fn connection_states(net: &mut NetHandle, secs: u64) -> Vec<ConnState> {
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, net.events.recv()).await {
        if let NetEvent::Connection(s) = ev {
            states.push(s);
        }
    }
    states
}

/// Start a private ejabberd, or skip (a failure under `CI=true`).
pub fn start_ejabberd(stream_management: bool) -> Option<ejabberd::Ejabberd> {
    ejabberd_usable().then(|| ejabberd::Ejabberd::start(stream_management))
}

/// [`start_ejabberd`] (without stream management) with more `mod_pubsub` options.
pub fn start_ejabberd_with(pubsub_options: &str) -> Option<ejabberd::Ejabberd> {
    ejabberd_usable().then(|| ejabberd::Ejabberd::start_with(false, pubsub_options))
}

/// Start a two-node ejabberd cluster with pubsub on PostgreSQL, or skip (a failure under
/// `CI=true`).
pub fn start_cluster() -> Option<ejabberd::Cluster> {
    if !ejabberd_usable() {
        return None;
    }
    if let Some(missing) = ejabberd::cluster_missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no {missing} (scripts/ensure-deps installs it)"
        );
        eprintln!("SKIPPED: no {missing} (scripts/ensure-deps installs it)");
        return None;
    }
    Some(ejabberd::Cluster::start())
}

/// Is ejabberd installed, and may this user run it? (No is a failure under `CI=true`.)
fn ejabberd_usable() -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !ejabberd::available() || !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no ejabberd (or not root)"
        );
        eprintln!("SKIPPED: ejabberd is not installed, or this is not root (ejabberdctl needs it)");
        return false;
    }
    true
}

/// An account on a private ejabberd (plain TCP on loopback; any user may create nodes).
pub fn ejabberd_account(server: &ejabberd::Ejabberd, user: &str, resource: &str) -> ConnectConfig {
    let password = prosody::random_password();
    server.register(user, &password);
    let jid = Jid::new(&format!("{user}@localhost/{resource}")).expect("valid jid");
    ConnectConfig {
        max_attempts: Some(3),
        ..ConnectConfig::loopback(jid, Password::new(password), server.port)
    }
}

/// A TUI model holding one node (UTC times), to feed network events into.
pub fn model_for(node: &str) -> pubsub_tui::tui::model::Model {
    pubsub_tui::tui::model::Model::new(
        &xmpp_parsers::jid::Jid::new("pubsub.localhost").expect("jid"),
        &[node.to_owned()],
        10_000,
        false,
        Duration::from_secs(5),
        chrono::FixedOffset::east_opt(0).expect("utc"),
    )
}

/// Ids of the items the model's (only) node shows, in order.
pub fn feed_ids(m: &pubsub_tui::tui::model::Model) -> Vec<String> {
    m.nodes[0].feed.item_ids().map(str::to_owned).collect()
}

/// Publish `n` items (pipelined) and wait for every confirmation; their ids in order. At most
/// `WINDOW` are unconfirmed, so this loop reads confirmations before the core's event queue
/// fills (the core waits for its front end then, and would stop taking commands).
pub async fn publish_n(net: &mut NetHandle, node: &str, n: usize) -> Vec<String> {
    const WINDOW: usize = 1000;
    let confirmation = |e: &NetEvent| match e {
        NetEvent::Reply { result, .. } => match result {
            Ok(pubsub_tui::xmpp::Answer::Published { id, .. }) => Some(id.clone()),
            other => panic!("publish failed: {other:?}"),
        },
        _ => None,
    };
    let mut ids = Vec::new();
    for i in 0..n {
        if i >= ids.len() + WINDOW {
            ids.push(wait_for(net, 60, "publish confirmations", confirmation).await);
        }
        publish(net, node, &format!("item {i}")).await;
    }
    while ids.len() < n {
        ids.push(wait_for(net, 60, "publish confirmations", confirmation).await);
    }
    ids
}

/// Send a publish request; its id.
pub async fn publish(net: &mut NetHandle, node: &str, text: &str) -> RequestId {
    let req = net.ids.fresh();
    net.commands
        .send(Command::Publish {
            req,
            node: net.key(node),
            text: text.into(),
        })
        .await
        .expect("send");
    req
}

/// Send a request made with a fresh id; its id.
pub async fn send(net: &mut NetHandle, make: impl FnOnce(RequestId) -> Command) -> RequestId {
    let req = net.ids.fresh();
    net.commands.send(make(req)).await.expect("send");
    req
}

/// Wait for the answer to request `req`.
pub async fn reply(
    net: &mut NetHandle,
    secs: u64,
    req: RequestId,
) -> Result<pubsub_tui::xmpp::Answer, pubsub_tui::xmpp::error::RequestError> {
    wait_for(net, secs, "the answer", |e| match e {
        NetEvent::Reply { req: r, result } if *r == req => Some(result.clone()),
        _ => None,
    })
    .await
}

/// The items a node of the Prosody pubsub component holds, read by a fresh client of `user`
/// (resource "check").
pub async fn node_items(
    server: &Prosody,
    user: &str,
    password: &str,
    node: &str,
) -> Vec<pubsub_tui::feed::FeedItem> {
    node_items_at(server, user, password, prosody::PUBSUB, node).await
}

/// The items a node of `service` holds, read by a fresh client of `user` (resource "check").
pub async fn node_items_at(
    server: &Prosody,
    user: &str,
    password: &str,
    service: &str,
    node: &str,
) -> Vec<pubsub_tui::feed::FeedItem> {
    let mut check = xmpp::spawn(
        connect_config(server, user, "check", password),
        session_at(service, &[node], false, Duration::from_secs(3600)),
    );
    let items = wait_for(&mut check, 20, "the node's items", |e| match e {
        NetEvent::Snapshot { items, .. } => Some(items.clone()),
        _ => None,
    })
    .await;
    let _ = check.commands.send(Command::Shutdown).await;
    items
}

/// Ids of the items a node holds, read by a fresh client.
pub async fn node_item_ids(
    server: &Prosody,
    user: &str,
    password: &str,
    node: &str,
) -> Vec<String> {
    node_items(server, user, password, node)
        .await
        .into_iter()
        .filter_map(|i| i.id().map(str::to_owned))
        .collect()
}

/// Ask for a resync of `node` and return the items of the snapshot it produces.
pub async fn manual_resync(net: &mut NetHandle, node: &str) -> Vec<pubsub_tui::feed::FeedItem> {
    let key = net.key(node);
    send(net, |req| Command::Resync { req, node: key }).await;
    wait_for(net, 15, "the manual snapshot", |e| match e {
        NetEvent::Snapshot {
            items,
            reason: pubsub_tui::xmpp::SnapshotReason::Manual,
            ..
        } => Some(items.clone()),
        _ => None,
    })
    .await
}

/// A password file only its owner can read, holding `password`.
pub fn password_file(dir: &std::path::Path, password: &str) -> std::path::PathBuf {
    password_file_named(dir, "password", password)
}

/// A password file only its owner can read, named `name` in `dir`.
pub fn password_file_named(
    dir: &std::path::Path,
    name: &str,
    password: &str,
) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).expect("write the password file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// Feed events into the TUI model until `pred` matches one (which is applied too). `pred`
/// sees every event, so it may also count them.
pub async fn run_until(
    net: &mut NetHandle,
    m: &mut pubsub_tui::tui::model::Model,
    secs: u64,
    what: &str,
    mut pred: impl FnMut(&NetEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let ev = tokio::time::timeout_at(deadline, net.events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("network task ended waiting for {what}"));
        let done = pred(&ev);
        let _ = pubsub_tui::tui::update::update(m, pubsub_tui::tui::update::Msg::Net(ev));
        if done {
            return;
        }
    }
}

/// A request id for tests that send commands by hand (unique in the test binary).
pub fn req() -> RequestId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);
    RequestId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A fresh, empty XDG state dir for one run of the binary: what one test follows or leaves
/// must not reach another (they share account names).
pub fn state_home() -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix("pubsub-tui-state-")
        .tempdir()
        .expect("state dir")
        .keep()
}

/// A process's resident memory, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A port nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
