//! The async shell around a state machine ([`Session`], or the relay service): owns the
//! stream, runs the timers, moves messages.
//!
//! One task owns the `StanzaStream` unsplit and `select!`s over it, the front end's commands,
//! the connector's status reports and two timers. All decisions are the session's.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_xmpp::stanzastream::{Event, StanzaStream, StreamEvent};

use super::connect::{ConnectConfig, Handovers, connect_loop};
use super::error::RequestError;
use xmpp_parsers::jid::Jid;

use super::events::{Answer, Command, ConnState, NetEvent, NodeKey, RequestId, RequestIds};
use super::session::{Input, Now, Output, Session, SessionConfig};

/// Outbound and inbound stanza queue depth of the stream.
const QUEUE_DEPTH: usize = 1024;
/// How often IQ timeouts are checked.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// A pure state machine the shell can drive over a stream: the client [`Session`] or the
/// relay service ([`crate::serve::Service`]).
pub trait Machine: Send + 'static {
    /// What its front end can ask.
    type Command: Send + 'static;
    /// What it tells its front end.
    type Event: Send + 'static;
    fn handle(&mut self, input: Input<Self::Command>, now: Now) -> Vec<Output<Self::Event>>;
    /// What to tell the front end before anything happens (what a store kept).
    fn start(&mut self, _now: Now) -> Vec<Output<Self::Event>> {
        Vec::new()
    }
    /// The command that ends the machine when its front end goes away.
    fn shutdown() -> Self::Command;
    /// How often `Input::AutoPublishTick` fires (`None`: never).
    fn auto_interval(&self) -> Option<Duration>;
    /// True for the event that reports a final connection failure: the task ends without
    /// closing a stream (there is none).
    fn is_final_failure(event: &Self::Event) -> bool;
    /// Write a log line for the event, if it deserves one.
    fn log(event: &Self::Event);
}

impl Machine for Session {
    type Command = Command;
    type Event = NetEvent;
    fn handle(&mut self, input: Input, now: Now) -> Vec<Output> {
        Session::handle(self, input, now)
    }
    fn start(&mut self, now: Now) -> Vec<Output> {
        Session::start(self, now)
    }
    fn shutdown() -> Command {
        Command::Shutdown
    }
    fn auto_interval(&self) -> Option<Duration> {
        Some(self.interval())
    }
    fn is_final_failure(event: &NetEvent) -> bool {
        matches!(event, NetEvent::Connection(ConnState::Failed { .. }))
    }
    fn log(event: &NetEvent) {
        log_event(event);
    }
}

/// A running network core: send it commands, read its events.
pub struct NetHandle<C = Command, E = NetEvent> {
    pub commands: mpsc::Sender<C>,
    pub events: mpsc::Receiver<E>,
    pub task: JoinHandle<()>,
    /// Ids for this front end's requests.
    pub ids: RequestIds,
    /// The service the machine works with (for a client: its pubsub service; for a relay:
    /// itself).
    pub service: Jid,
}

impl NetHandle {
    /// The key of a node at this session's service.
    pub fn key(&self, node: &str) -> NodeKey {
        NodeKey::new(&self.service, node)
    }

    /// Send a request made with a fresh id and wait for its answer. Events that come before
    /// it go to `other`. The core answers every request, so this ends; `Err` also when the
    /// core has ended.
    pub async fn request(
        &mut self,
        make: impl FnOnce(RequestId) -> Command,
        mut other: impl FnMut(NetEvent),
    ) -> Result<Answer, RequestError> {
        let req = self.ids.fresh();
        let ended = || RequestError::Connection("the connection has ended".into());
        self.commands.send(make(req)).await.map_err(|_| ended())?;
        loop {
            match self.events.recv().await {
                Some(NetEvent::Reply { req: r, result }) if r == req => return result,
                Some(ev) => other(ev),
                None => return Err(ended()),
            }
        }
    }
}

/// Start the client network core. It connects at once and keeps going until
/// [`Command::Shutdown`], a final connection error, or until the front end drops its command
/// sender.
pub fn spawn(connect: ConnectConfig, session: SessionConfig) -> NetHandle {
    let service = session.service.clone();
    NetHandle {
        service,
        ..spawn_machine(connect, Session::new(session))
    }
}

/// [`spawn`], with a store (see [`crate::cache`]).
pub fn spawn_with_store(
    connect: ConnectConfig,
    session: SessionConfig,
    store: Box<dyn crate::cache::Persist>,
) -> NetHandle {
    let service = session.service.clone();
    NetHandle {
        service,
        ..spawn_machine(connect, Session::with_store(session, store))
    }
}

/// Start any [`Machine`] over a reconnecting stream for the account in `connect`.
pub fn spawn_machine<M: Machine>(
    connect: ConnectConfig,
    machine: M,
) -> NetHandle<M::Command, M::Event> {
    let service = connect.jid.clone();
    start_shell(service, |commands, events| {
        run(connect, machine, commands, events)
    })
}

/// Spawn a shell, `shell(commands, events)`, with the channels to its front end.
pub(crate) fn start_shell<C, E, F>(
    service: Jid,
    shell: impl FnOnce(mpsc::Receiver<C>, mpsc::Sender<E>) -> F,
) -> NetHandle<C, E>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let task = tokio::spawn(shell(cmd_rx, ev_tx));
    NetHandle {
        commands: cmd_tx,
        events: ev_rx,
        task,
        ids: RequestIds::default(),
        service,
    }
}

async fn run<M: Machine>(
    connect: ConnectConfig,
    mut machine: M,
    mut commands: mpsc::Receiver<M::Command>,
    events: mpsc::Sender<M::Event>,
) {
    let (status_tx, mut status_rx) = mpsc::unbounded_channel();
    let cfg = Arc::new(connect);
    let handovers = Arc::new(Handovers::default());
    let reconnector = {
        let (cfg, handovers) = (cfg.clone(), handovers.clone());
        Box::new(move |_location: Option<String>, slot| {
            tokio::spawn(connect_loop(
                cfg.clone(),
                handovers.clone(),
                status_tx.clone(),
                slot,
            ));
        })
    };
    let mut stream = StanzaStream::new(reconnector, QUEUE_DEPTH);
    let mut tick = tokio::time::interval(TICK);
    let auto_every = machine.auto_interval();
    let mut auto =
        tokio::time::interval(auto_every.unwrap_or(TICK).max(Duration::from_millis(100)));
    auto.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    auto.reset(); // the first auto-publish comes one interval after start
    let mut stream_alive = true;
    for out in machine.start(Now::system()) {
        if let Output::Event(ev) = out
            && events.send(ev).await.is_err()
        {
            return;
        }
    }

    loop {
        let input = tokio::select! {
            cmd = commands.recv() => Input::Command(cmd.unwrap_or_else(M::shutdown)),
            ev = stream.next(), if stream_alive => match ev {
                Some(Event::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                    handovers.session_up();
                    Input::Online { bound: bound_jid, server: handovers.connected() }
                }
                Some(Event::Stream(StreamEvent::Suspended)) => Input::Suspended,
                Some(Event::Stream(StreamEvent::Resumed)) => {
                    handovers.session_up();
                    Input::Resumed { server: handovers.connected() }
                }
                Some(Event::Stanza(s)) => {
                    trace_incoming(&s);
                    Input::Stanza(Box::new(s))
                }
                None => {
                    stream_alive = false;
                    // A final connector error is reported just before the stream ends.
                    while let Ok(status) = status_rx.try_recv() {
                        forward(&mut machine, Input::Connection(status), &events).await;
                    }
                    Input::Closed
                }
            },
            Some(status) = status_rx.recv() => Input::Connection(status),
            _ = tick.tick() => Input::Tick,
            _ = auto.tick(), if auto_every.is_some() => Input::AutoPublishTick,
        };
        let closed = matches!(input, Input::Closed);
        let now = Now::system();
        let mut stop = false;
        let mut failed = false;
        for output in machine.handle(input, now) {
            match output {
                Output::Send(stanza) => {
                    if stream_alive {
                        // Only enqueues; delivery is the stream's job (it survives reconnects).
                        drop(stream.send(stanza).await);
                    }
                }
                Output::Event(e) => {
                    M::log(&e);
                    if M::is_final_failure(&e) {
                        stop = true;
                        failed = true;
                    }
                    if events.send(e).await.is_err() {
                        stop = true;
                    }
                }
                Output::Stop => stop = true,
            }
        }
        if closed {
            break;
        }
        if stop {
            // After a final connection error there is no stream to close: dropping it ends
            // tokio-xmpp's worker (and so the parked connector).
            if stream_alive && !failed {
                let _ = tokio::time::timeout(Duration::from_millis(1500), stream.close()).await;
            }
            break;
        }
    }
}

fn trace_incoming(s: &tokio_xmpp::Stanza) {
    if tracing::enabled!(target: "pubsub_tui::wire", tracing::Level::TRACE) {
        let el: xmpp_parsers::minidom::Element = match s {
            tokio_xmpp::Stanza::Iq(i) => i.clone().into(),
            tokio_xmpp::Stanza::Message(m) => m.clone().into(),
            tokio_xmpp::Stanza::Presence(p) => p.clone().into(),
        };
        let mut buf = Vec::new();
        if el.write_to(&mut buf).is_ok() {
            tracing::trace!(target: "pubsub_tui::wire", "in: {}", String::from_utf8_lossy(&buf));
        }
    }
}

async fn forward<M: Machine>(
    machine: &mut M,
    input: Input<M::Command>,
    events: &mpsc::Sender<M::Event>,
) {
    for output in machine.handle(input, Now::system()) {
        if let Output::Event(e) = output {
            let _ = events.send(e).await;
        }
    }
}

/// The events worth a line in the log (items are not: they can be many, and are the user's).
fn log_event(e: &NetEvent) {
    match e {
        NetEvent::Connection(ConnState::Failed { error }) => {
            tracing::error!(%error, "connection failed");
        }
        NetEvent::Connection(state) => tracing::info!(%state, "connection"),
        NetEvent::Subscription { node, state } => tracing::info!(%node, %state, "subscription"),
        NetEvent::Snapshot {
            node,
            items,
            reason,
            lost,
            ..
        } => {
            tracing::info!(%node, count = items.len(), ?reason, lost = lost.len(), "items retrieved");
        }
        NetEvent::Gap {
            node,
            sender,
            from,
            to,
        } => tracing::info!(%node, %sender, from, to, "gap in sequence"),
        NetEvent::ResyncFailed { node, error } => {
            tracing::warn!(%node, %error, "resync failed");
        }
        NetEvent::PublishRetrying {
            node, id, error, ..
        } => tracing::info!(%node, %id, %error, "publish failed; trying again"),
        NetEvent::AutoPublishFailed { node, id, error } => {
            tracing::warn!(%node, %id, %error, "auto-publish failed");
        }
        NetEvent::Reply {
            req,
            result: Err(error),
        } => tracing::info!(%req, %error, "request failed"),
        NetEvent::Reply { req, result: Ok(_) } => tracing::debug!(%req, "request done"),
        NetEvent::StaleSubscriptionRemoved { node, jid } => {
            tracing::info!(%node, %jid, "removed a subscription left behind by an earlier run");
        }
        NetEvent::AutoPublished { node, id } => tracing::debug!(%node, %id, "auto-published"),
        _ => {}
    }
}
