//! `pubsub-tui demo`: everything a newcomer needs to see the client work, on this machine.
//!
//! Starts a private Prosody (see [`crate::prosody`]), creates two accounts and two open nodes,
//! runs a second publisher ("bob") on the same network core, and opens the TUI as "alice".
//! Quitting stops all of it: the publisher task, then Prosody (killed by its PID on drop).

use std::borrow::Cow;
use std::time::Duration;

use anyhow::{Context as _, bail};
use xmpp_parsers::jid::Jid;

use crate::config::{Password, new_publisher_session};
use crate::prosody::{self, Options, Prosody};
use crate::tui;
use crate::xmpp::connect::ConnectConfig;
use crate::xmpp::session::SessionConfig;
use crate::xmpp::{self, Command, ConnState, NetEvent, NetHandle};

pub const DEMO_NODES: &[&str] = &["demo", "news"];

/// A node the demo creates and publishes to, but does not follow at start.
pub const UNFOLLOWED_NODE: &str = "weather";
/// The nodes' titles, as the explorer shows them.
const TITLES: &[(&str, Option<&str>)] = &[
    ("demo", Some("Demo: you and a second publisher")),
    ("news", Some("News from the team")),
    ("weather", Some("Weather reports")),
];
const WEATHER: &[&str] = &["12 °C, light rain", "14 °C, cloudy", "17 °C, sunny spells"];
const PHRASES: &[&str] = &[
    "Hello!",
    "anyone out there?",
    "sensor 3: 21.4 °C",
    "the build is green",
    "coffee's ready ☕",
    "deploying v1.2.3",
    "sensor 3: 21.6 °C",
    "meeting moved to 15:00",
];

/// Connection settings for an account on a private Prosody (plain TCP on loopback).
pub fn local_account(
    server: &Prosody,
    user: &str,
    resource: &str,
    password: &str,
) -> anyhow::Result<ConnectConfig> {
    let jid = Jid::new(&format!("{user}@{}/{resource}", prosody::DOMAIN))?;
    Ok(ConnectConfig::loopback(
        jid,
        Password::new(password),
        server.port,
    ))
}

/// Session settings for the private Prosody's pubsub component.
pub fn local_session(
    nodes: &[&str],
    auto_publish: bool,
    interval: Duration,
) -> anyhow::Result<SessionConfig> {
    Ok(SessionConfig {
        service: Jid::new(prosody::PUBSUB)?,
        nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        subscribe: true,
        auto_publish,
        interval,
        iq_timeout: Duration::from_secs(30),
        resync_min_interval: crate::config::AUTO_RESYNC_MIN_INTERVAL,
        publisher_session: new_publisher_session(),
        retry: crate::xmpp::session::RetryPolicy::DEFAULT,
        keep_unsent: false,
    })
}

async fn wait_online(net: &mut NetHandle) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, net.events.recv()).await {
            Err(_) => bail!("no connection within 20 s"),
            Ok(None) => bail!("the connection ended"),
            Ok(Some(NetEvent::Connection(ConnState::Online { .. }))) => return Ok(()),
            Ok(Some(NetEvent::Connection(ConnState::Failed { error }))) => bail!(error),
            Ok(Some(_)) => {}
        }
    }
}

/// Create open nodes (publish model `open`) as the server's admin account.
pub async fn create_open_nodes(
    server: &Prosody,
    nodes: &[&str],
    max_items: u32,
) -> anyhow::Result<()> {
    let untitled: Vec<(&str, Option<&str>)> = nodes.iter().map(|n| (*n, None)).collect();
    create_titled_nodes(server, &untitled, max_items).await
}

/// Create open nodes, each with its title (if any), as the server's admin account.
pub async fn create_titled_nodes(
    server: &Prosody,
    nodes: &[(&str, Option<&str>)],
    max_items: u32,
) -> anyhow::Result<()> {
    let cfg = local_account(server, prosody::ADMIN, "setup", &server.admin_password)?;
    let mut session = local_session(&[], false, Duration::from_secs(3600))?;
    session.subscribe = false;
    let service = session.service.clone();
    let mut admin = xmpp::spawn(cfg, session);
    wait_online(&mut admin).await.context("admin login")?;
    for (node, title) in nodes {
        let node = (*node).to_owned();
        admin
            .request(
                |req| Command::Owner {
                    req,
                    node: xmpp::NodeKey::new(&service, node.clone()),
                    op: xmpp::OwnerOp::open_node(max_items, *title),
                },
                drop,
            )
            .await
            .map_err(|error| anyhow::anyhow!("creating node {node}: {error}"))?;
    }
    let _ = admin.commands.send(Command::Shutdown).await;
    let _ = admin.task.await;
    Ok(())
}

/// A second publisher: publishes a phrase every `interval` until the handle is dropped.
fn spawn_peer(
    mut net: NetHandle,
    service: xmpp_parsers::jid::Jid,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let mut n = 0usize;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let (node, text) = match n % 4 {
                        // The node the TUI does not follow: subscribe in the explorer (e).
                        3 => (UNFOLLOWED_NODE, WEATHER[(n / 4) % WEATHER.len()].to_owned()),
                        2 => (DEMO_NODES[1], PHRASES[n % PHRASES.len()].to_owned()),
                        _ => (DEMO_NODES[0], PHRASES[n % PHRASES.len()].to_owned()),
                    };
                    n += 1;
                    let req = net.ids.fresh();
                    let node = xmpp::NodeKey::new(&service, node);
                    if net.commands.send(Command::Publish { req, node, text }).await.is_err() {
                        return;
                    }
                }
                ev = net.events.recv() => if ev.is_none() { return },
            }
        }
    })
}

/// The command line that watches the demo's nodes as `bob`, from another terminal.
/// `exe` is the pubsub-tui binary to run.
pub fn watch_command(exe: &str, server: &Prosody, password_file: &std::path::Path) -> String {
    let quote = |s: String| shlex::try_quote(&s).map_or_else(|_| s.clone(), Cow::into_owned);
    let exe = exe.to_owned();
    let nodes: Vec<String> = DEMO_NODES.iter().map(|n| format!("--node {n}")).collect();
    format!(
        "{} watch --jid bob@{} --server {} --insecure-plain-tcp --password-file {} {}",
        quote(exe),
        prosody::DOMAIN,
        server.server(),
        quote(password_file.display().to_string()),
        nodes.join(" ")
    )
}

/// A script in the demo's directory that runs [`watch_command`] (a short thing to type, or
/// copy, in another terminal). Returns its path.
pub fn write_watch_script(
    exe: &str,
    server: &Prosody,
    password_file: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = server.dir().join("watch.sh");
    let script = format!(
        "#!/bin/sh\n# Watch the running pubsub-tui demo as bob (JSON lines; Ctrl-C stops).\nexec {} \"$@\"\n",
        watch_command(exe, server, password_file)
    );
    crate::config::write_private(&path, &script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} runnable", path.display()))?;
    Ok(path)
}

pub async fn run(peer_interval: f64, feed_limit: usize) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    if !(peer_interval.is_finite() && peer_interval >= 0.05) {
        bail!("--peer-interval must be at least 0.05 seconds");
    }
    prosody::available()?;
    // From here on a closed terminal (SIGHUP), SIGTERM or Ctrl-C ends the demo through its
    // cleanup (the private Prosody is stopped when `server` is dropped), not abruptly.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    eprintln!("Starting a private Prosody on 127.0.0.1…");
    let server = Prosody::start(&Options::default())?;
    let alice_pw = prosody::random_password();
    let bob_pw = prosody::random_password();
    let setup = async {
        server.register("alice", &alice_pw)?;
        server.register("bob", &bob_pw)?;
        create_titled_nodes(&server, TITLES, 256).await
    };
    tokio::select! {
        r = setup => r?,
        _ = hup.recv() => bail!("the terminal closed"),
        _ = term.recv() => bail!("stopped (SIGTERM)"),
        _ = int.recv() => bail!("interrupted"),
    }
    // For `watch` and `publish` from another terminal, as bob.
    let bob_file = server.dir().join("bob.password");
    crate::config::write_private(&bob_file, &format!("{bob_pw}\n"))?;
    let exe = std::env::current_exe()
        .ok()
        .map_or_else(|| "pubsub-tui".to_owned(), |p| p.display().to_string());
    let try_it = watch_command(&exe, &server, &bob_file);
    let script = write_watch_script(&exe, &server, &bob_file)?;
    eprintln!(
        "Demo server on {}. To watch it from another terminal while the demo runs:\n  sh {}\n\
         which runs:\n  {try_it}",
        server.server(),
        script.display()
    );

    let mut bob_session = local_session(DEMO_NODES, false, Duration::from_secs(3600))?;
    bob_session.subscribe = false;
    let service = bob_session.service.clone();
    let bob = xmpp::spawn(
        local_account(&server, "bob", "phone", &bob_pw)?,
        bob_session,
    );
    let bob_commands = bob.commands.clone();
    let peer = spawn_peer(bob, service, Duration::from_secs_f64(peer_interval));

    let session = local_session(DEMO_NODES, true, Duration::from_secs(5))?;
    let mut model = tui::model::Model::for_session(&session, feed_limit);
    model.info(format!(
        "demo server on {}; to watch it from another terminal: sh {}, which runs: {try_it}",
        server.server(),
        script.display()
    ));
    model.outcome(
        tui::model::Level::Info,
        format!(
            "demo: in another terminal, sh {} watches it",
            script.display()
        ),
    );
    let alice = xmpp::spawn(
        local_account(
            &server,
            "alice",
            &crate::config::random_resource(),
            &alice_pw,
        )?,
        session,
    );
    // The demo's accounts live as long as its Prosody: nothing to keep for a next start.
    let result = tui::run(alice, model, None).await;

    let _ = bob_commands.send(Command::Shutdown).await;
    drop(bob_commands);
    let _ = tokio::time::timeout(Duration::from_secs(2), peer).await;
    drop(server);
    result
}
