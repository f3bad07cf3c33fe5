//! `pubsub-tui serve`: the relay service of the original example, done properly.
//!
//! An ordinary account, logged in with a resource, answers XEP-0060 requests sent to its full
//! JID, keeps what is published in SQLite ([`store`]), and forwards each item verbatim to
//! every subscriber with a node-wide sequence number beside it. The behaviour is the pure
//! state machine in [`service`]; it runs in the same network shell as the client
//! ([`crate::xmpp::task`]).

pub mod service;
pub mod store;

use std::path::PathBuf;

pub use service::{ServeCommand, ServeConfig, ServeEvent, Service};
pub use store::Store;

use crate::xmpp::connect::ConnectConfig;
use crate::xmpp::events::ConnState;

/// The service's own JID: clients address it by this full JID, so it needs a resource (in
/// `--jid`, or `--resource`); it never gets a random one.
pub fn service_jid(m: &crate::config::Merged) -> anyhow::Result<xmpp_parsers::jid::Jid> {
    let given = m.jid.as_deref().map(str::trim).unwrap_or_default();
    if given.is_empty() || (!given.contains('/') && m.resource.is_none()) {
        anyhow::bail!(
            "serve needs a full JID: --jid user@domain/server (or --jid user@domain with \
             --resource server); clients address the service by it"
        );
    }
    crate::config::account_jid(given, m.resource.as_deref())
}

/// Run the service until SIGINT or SIGTERM, or a final connection error: on an account's
/// stream, or as the external component `connect.jid` when `component`.
pub async fn run(
    connect: ConnectConfig,
    cfg: ServeConfig,
    data_dir: PathBuf,
    component: bool,
) -> anyhow::Result<()> {
    // One service per data directory: a second one would share the database and (with the
    // same JID) knock the first off the server.
    let _lock = store::lock_dir(&data_dir)?;
    let store = Store::open_dir(&data_dir)?;
    let service = Service::new(cfg, store)?;
    tracing::info!(data_dir = %data_dir.display(), "serving as {}", connect.jid);
    let mut net = if component {
        crate::xmpp::component::spawn(connect, service)
    } else {
        crate::xmpp::task::spawn_machine(connect, service)
    };
    let mut failure = None;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            ev = net.events.recv() => match ev {
                Some(ServeEvent::Connection(ConnState::Failed { error })) => failure = Some(error),
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                let _ = net.commands.send(ServeCommand::Shutdown).await;
            }
            _ = term.recv() => {
                let _ = net.commands.send(ServeCommand::Shutdown).await;
            }
        }
    }
    let _ = net.task.await;
    if let Some(error) = failure {
        anyhow::bail!("connection failed: {error}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// One log line per event worth it; publishes are at debug (there can be thousands a second).
pub fn log_event(e: &ServeEvent) {
    match e {
        ServeEvent::Connection(ConnState::Failed { error }) => {
            tracing::error!(%error, "connection failed");
        }
        ServeEvent::Connection(state) => tracing::info!(%state, "connection"),
        ServeEvent::Published {
            node,
            id,
            seq,
            publisher,
            notified,
        } => tracing::debug!(%node, %id, seq, %publisher, notified, "published"),
        ServeEvent::Subscribed { node, jid } => tracing::info!(%node, %jid, "subscribed"),
        ServeEvent::Unsubscribed { node, jid } => tracing::info!(%node, %jid, "unsubscribed"),
        ServeEvent::Paused { jid, reason } => {
            tracing::info!(%jid, %reason, "subscriber paused (no notifications until heard from)");
        }
        ServeEvent::Resumed { jid } => tracing::info!(%jid, "subscriber resumed"),
        ServeEvent::Refused { from, reason } => tracing::info!(%from, %reason, "request refused"),
        ServeEvent::StorageFailed { error } => tracing::error!(%error, "storage failed"),
    }
}
