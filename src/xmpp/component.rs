//! A machine (the relay service) as an external component (XEP-0114): one plain TCP stream
//! to the server's component port, opened with a handshake (the SHA-1 of the stream id and
//! the shared secret; the secret itself never crosses the wire), then stanzas both ways,
//! addressed from the component's own domain.
//!
//! A component is how services such as Idavoll attach to a server: it is addressed by its
//! own domain and stamps its own `from`. On Prosody it fans out no faster than an account
//! (`cargo bench --bench serve -- component`: Prosody parses every stanza either way). The
//! protocol has no TLS: the link is allowed to loopback only, like `--insecure-plain-tcp`.
//!
//! The shell does what [`super::task`]'s does, for a stream without stream management: it
//! reconnects with the same backoff (a link that dies young counts as a failed attempt), and
//! reports the same connection states. Stanzas the parser refuses are left out.

use std::borrow::Cow;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_xmpp::Stanza;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, XmppStream, XmppStreamElement, initiate_stream,
};
use xmpp_parsers::component::Handshake;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::ping::Ping;

use super::connect::{ConnectConfig, ConnectError, backoff, connect_host, server_label};
use super::events::ConnState;
use super::guard::Guarded;
use super::session::{Input, Now, Output};
use super::task::{Machine, NetHandle, TICK, start_shell};

type Stream = XmppStream<BufStream<AcceptHeader<Guarded<TcpStream>>>>;

/// How long a link must have been up for its loss to start the backoff afresh.
const STABLE: Duration = Duration::from_secs(30);

/// The id prefix of the keepalive pings this shell sends (their answers stay here).
const PING_ID: &str = "component-keepalive-";

/// Open one authenticated component stream to the server (`cfg.servers`, which has one) as
/// the domain `cfg.jid`, with `cfg.password` as the shared secret.
pub async fn establish(cfg: &ConnectConfig) -> Result<Stream, ConnectError> {
    let Some((host, port)) = cfg.servers.first() else {
        return Err(ConnectError::Network(
            "a component needs --server HOST:PORT (the server's component port)".into(),
        ));
    };
    let tcp = connect_host(host, *port, cfg.connect_timeout).await?;
    tcp.set_nodelay(true)?;
    let peer = tcp.peer_addr()?;
    if !peer.ip().is_loopback() {
        return Err(ConnectError::PlainNotLoopback(peer.to_string()));
    }
    let domain = cfg.jid.domain().as_str().to_owned();
    let header = StreamHeader {
        to: Some(Cow::Owned(domain.clone())),
        from: None,
        id: None,
    };
    let mut pending = initiate_stream(
        BufStream::new(AcceptHeader::new(Guarded::new(tcp))),
        xmpp_parsers::ns::JABBER_CLIENT,
        header,
        cfg.timeouts,
    )
    .await?;
    let Some(id) = pending.take_header().id else {
        return Err(ConnectError::NotXmpp(
            "the server opened no component stream (no stream id): is this its component \
             port?"
                .into(),
        ));
    };
    let mut stream: Stream = pending.skip_features();
    let handshake = Handshake::from_stream_id_and_password(id.into_owned(), cfg.password.expose());
    stream
        .send(&XmppStreamElement::ComponentHandshake(handshake))
        .await?;
    loop {
        match read(stream.next().await) {
            Some(Ok(XmppStreamElement::ComponentHandshake(_))) => return Ok(stream),
            Some(Ok(XmppStreamElement::StreamError(e))) => {
                let condition = e.0.condition.to_string();
                // A wrong secret or a domain the server does not serve: trying again cannot
                // help. Anything else (a server shutting down) may pass.
                return Err(if condition.contains("not-authorized") {
                    ConnectError::Component(format!(
                        "the server refused the secret of the component {domain} ({condition})"
                    ))
                } else if condition.contains("host-unknown") {
                    ConnectError::Component(format!(
                        "the server does not know the component {domain} ({condition}): is \
                         --server its component port, and {domain} a component in its \
                         configuration?"
                    ))
                } else if condition.contains("conflict") {
                    ConnectError::ComponentTaken(format!(
                        "another component is connected as {domain} ({condition})"
                    ))
                } else {
                    ConnectError::Network(format!(
                        "the server refused the component {domain} ({condition})"
                    ))
                });
            }
            Some(Ok(_)) => {
                return Err(ConnectError::Component(format!(
                    "the server answered the handshake for {domain} with something else: is \
                     --server its component port?"
                )));
            }
            Some(Err(ReadError::SoftTimeout)) => {}
            Some(Err(ReadError::HardError(e))) => return Err(e.into()),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(ConnectError::Network(format!("a malformed answer: {e}")));
            }
            Some(Err(ReadError::StreamFooterReceived)) | None => {
                return Err(ConnectError::Network(format!(
                    "the server closed the stream during the handshake for {domain}"
                )));
            }
        }
    }
}

/// Start a machine as a component. It connects at once and keeps going until its shutdown
/// command, a final connection error, or until the front end drops its command sender.
pub fn spawn<M: Machine>(cfg: ConnectConfig, machine: M) -> NetHandle<M::Command, M::Event> {
    let service = cfg.jid.clone();
    start_shell(service, |commands, events| {
        run(cfg, machine, commands, events)
    })
}

/// What ended one connected stretch.
enum Ended {
    /// The machine stopped, or its front end went away.
    Stop,
    /// The stream broke: connect again.
    Lost,
}

async fn run<M: Machine>(
    cfg: ConnectConfig,
    mut machine: M,
    mut commands: mpsc::Receiver<M::Command>,
    events: mpsc::Sender<M::Event>,
) {
    let mut failures = 0u32;
    let mut ever_online = false;
    loop {
        let attempt = failures + 1;
        if !feed(
            &mut machine,
            Input::Connection(ConnState::Connecting {
                attempt,
                server: cfg.servers.first().map(|(h, p)| server_label(h, *p)),
            }),
            &events,
        )
        .await
        {
            return;
        }
        let connected = tokio::select! {
            r = tokio::time::timeout(cfg.connect_timeout, establish(&cfg)) => {
                r.unwrap_or(Err(ConnectError::Timeout(cfg.connect_timeout)))
            }
            cmd = commands.recv() => {
                let cmd = cmd.unwrap_or_else(M::shutdown);
                let _ = feed(&mut machine, Input::Command(cmd), &events).await;
                return;
            }
        };
        match connected {
            Ok(stream) => {
                ever_online = true;
                let up = std::time::Instant::now();
                match connected_run(&cfg, &mut machine, stream, &mut commands, &events).await {
                    Ended::Stop => return,
                    Ended::Lost => {
                        if !feed(&mut machine, Input::Closed, &events).await {
                            return;
                        }
                    }
                }
                // A link that died young counts as a failed attempt, so a server that takes
                // the handshake and then drops us is not hammered; each reconnect waits.
                failures = if up.elapsed() < STABLE {
                    failures + 1
                } else {
                    1
                };
                tokio::select! {
                    () = tokio::time::sleep(backoff(failures)) => {}
                    cmd = commands.recv() => {
                        let cmd = cmd.unwrap_or_else(M::shutdown);
                        let _ = feed(&mut machine, Input::Command(cmd), &events).await;
                        return;
                    }
                }
            }
            Err(e) => {
                failures += 1;
                let out_of_attempts = cfg.max_attempts.is_some_and(|max| failures >= max);
                // Taken at the very start: another serve runs as this component.
                let taken = !ever_online && matches!(e, ConnectError::ComponentTaken(_));
                if e.is_fatal() || out_of_attempts || taken {
                    let error = e.to_string();
                    let _ = feed(
                        &mut machine,
                        Input::Connection(ConnState::Failed { error }),
                        &events,
                    )
                    .await;
                    return;
                }
                let retry_in = backoff(failures);
                let state = ConnState::Retrying {
                    attempt,
                    error: e.to_string(),
                    retry_in,
                };
                if !feed(&mut machine, Input::Connection(state), &events).await {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(retry_in) => {}
                    cmd = commands.recv() => {
                        let cmd = cmd.unwrap_or_else(M::shutdown);
                        let _ = feed(&mut machine, Input::Command(cmd), &events).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Give the machine an input with no stream to send on (what it would send is dropped).
/// False when it stopped or its front end is gone.
async fn feed<M: Machine>(
    machine: &mut M,
    input: Input<M::Command>,
    events: &mpsc::Sender<M::Event>,
) -> bool {
    for out in machine.handle(input, Now::system()) {
        match out {
            Output::Event(e) => {
                M::log(&e);
                if events.send(e).await.is_err() {
                    return false;
                }
            }
            Output::Stop => return false,
            Output::Send(_) => {}
        }
    }
    true
}

async fn connected_run<M: Machine>(
    cfg: &ConnectConfig,
    machine: &mut M,
    mut stream: Stream,
    commands: &mut mpsc::Receiver<M::Command>,
    events: &mpsc::Sender<M::Event>,
) -> Ended {
    let me = Jid::from(cfg.jid.to_bare());
    let mut tick = tokio::time::interval(TICK);
    let mut pings = 0u64;
    let mut input = Input::Online {
        bound: me.clone(),
        server: cfg.servers.first().map(|(h, p)| server_label(h, *p)),
    };
    loop {
        let mut stop = false;
        let mut lost = false;
        for out in machine.handle(input, Now::system()) {
            match out {
                Output::Send(stanza) => {
                    // After a failed send the rest still goes to the front end; the link is
                    // then given up.
                    if !lost
                        && let Some(stanza) = addressed(*stanza, &me)
                        && stream
                            .send(&XmppStreamElement::Stanza(stanza))
                            .await
                            .is_err()
                    {
                        lost = true;
                    }
                }
                Output::Event(e) => {
                    M::log(&e);
                    if events.send(e).await.is_err() {
                        stop = true;
                    }
                }
                Output::Stop => stop = true,
            }
        }
        if lost && !stop {
            return Ended::Lost;
        }
        if stop {
            let _ = tokio::time::timeout(
                Duration::from_millis(1500),
                futures::SinkExt::<&XmppStreamElement>::close(&mut stream),
            )
            .await;
            return Ended::Stop;
        }
        input = loop {
            tokio::select! {
                el = stream.next() => match el {
                    // A stanza the parser refuses (anyone can send one to our domain): left
                    // out, as the client stream does, not a reason to drop the link.
                    Some(Ok(FallibleStreamElement::Err(e))) => {
                        tracing::info!(error = %e, "left out an invalid stanza");
                    }
                    Some(Ok(FallibleStreamElement::Ok(el))) => match el {
                        XmppStreamElement::Stanza(Stanza::Iq(iq)) if is_keepalive(&iq) => {}
                        XmppStreamElement::Stanza(s) => break Input::Stanza(Box::new(s)),
                        XmppStreamElement::StreamError(e) => {
                            tracing::warn!(condition = %e.0.condition, "the server ended the component stream");
                            return Ended::Lost;
                        }
                        _ => {}
                    },
                    Some(Err(ReadError::ParseError(_))) => {}
                    Some(Err(ReadError::SoftTimeout)) => {
                        // Silence: ask the server something, so a dead link shows.
                        pings += 1;
                        let ping = Iq::from_get(format!("{PING_ID}{pings}"), Ping)
                            .with_from(me.clone())
                            .with_to(server_of(&me));
                        if stream.send(&XmppStreamElement::Stanza(ping.into())).await.is_err() {
                            return Ended::Lost;
                        }
                    }
                    Some(Err(ReadError::HardError(_) | ReadError::StreamFooterReceived)) | None => {
                        return Ended::Lost;
                    }
                },
                cmd = commands.recv() => break Input::Command(cmd.unwrap_or_else(M::shutdown)),
                _ = tick.tick() => break Input::Tick,
            }
        };
    }
}

/// The server's stream header, made one that tokio-xmpp reads as a client's: a component
/// stream has no `version` (tokio-xmpp wants 1.0 unless built for components only), and its
/// stanzas are in `jabber:component:accept` (xmpp-parsers reads `jabber:client` unless built
/// for components only, which would break the client commands of the same binary). The
/// stanzas themselves are the same, and inherit the namespace from the header; only the
/// header's bytes change, and the server's `<handshake/>` right after it gets its namespace
/// back. Our side is written as a client stream whose header then says
/// `jabber:component:accept`: our stanzas inherit it, as the server wants (Prosody drops a
/// component's stanzas marked `jabber:client`).
pub struct AcceptHeader<S> {
    inner: S,
    phase: Phase,
    /// Bytes of the header (or the handshake's start) while they are not whole.
    held: Vec<u8>,
    /// Rewritten bytes not yet read.
    out: std::collections::VecDeque<u8>,
    /// Our header is still being written (held in `sent` until whole).
    sending_header: bool,
    /// Bytes of our side not yet written to the server.
    sent: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Until the `>` of `<stream:stream …>`.
    Header,
    /// The server's first element: `<handshake/>` gets its namespace back.
    Handshake,
    /// Everything else passes as it is.
    Through,
}

impl<S> AcceptHeader<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            phase: Phase::Header,
            held: Vec::new(),
            out: std::collections::VecDeque::new(),
            sending_header: true,
            sent: Vec::new(),
        }
    }

    /// Take in `got` (empty at the end of the stream); move what is settled to `out`.
    fn take_in(&mut self, got: &[u8]) -> std::io::Result<()> {
        self.held.extend_from_slice(got);
        let end = got.is_empty();
        if self.phase == Phase::Header {
            if let Some(at) = header_end(&self.held) {
                let rest = self.held.split_off(at + 1);
                let head = std::mem::replace(&mut self.held, rest);
                self.out.extend(rewrite_header(&head));
                self.phase = Phase::Handshake;
            } else if self.held.len() > 4096 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the server's stream header is over 4 KiB",
                ));
            } else if !end {
                return Ok(());
            }
        }
        if self.phase == Phase::Handshake {
            const TAG: &[u8] = b"<handshake";
            let at = self
                .held
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.held.len());
            let start = &self.held[at..];
            // Wait for the whole start tag (bounded: the header's 4 KiB again).
            let tag_end = start.iter().position(|&b| b == b'>');
            let maybe = start.len() < TAG.len() && TAG.starts_with(start)
                || start.starts_with(TAG) && tag_end.is_none();
            if maybe && !end && self.held.len() <= 4096 {
                return Ok(());
            }
            if start.starts_with(TAG)
                && matches!(
                    start.get(TAG.len()),
                    Some(b'/' | b'>' | b' ' | b'\t' | b'\n' | b'\r')
                )
                && !tag_end.is_some_and(|e| start[..e].windows(5).any(|w| w == b"xmlns"))
            {
                let attr = format!(" xmlns='{}'", xmpp_parsers::ns::COMPONENT);
                let at = at + TAG.len();
                self.held.splice(at..at, attr.into_bytes());
            }
            self.phase = Phase::Through;
        }
        self.out.extend(self.held.drain(..));
        Ok(())
    }
}

/// Where the `<stream:stream …>` start tag ends in `buf` (the index of its `>`), if it does.
fn header_end(buf: &[u8]) -> Option<usize> {
    let at = buf.windows(8).position(|w| w == b"<stream:")?;
    let mut quote = None;
    for (i, &b) in buf.iter().enumerate().skip(at) {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The header with the client namespace and a version.
fn rewrite_header(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let at = text.find("<stream:").unwrap_or(0);
    let (decl, tag) = text.split_at(at);
    let (component, client) = (xmpp_parsers::ns::COMPONENT, xmpp_parsers::ns::JABBER_CLIENT);
    // Only the default namespace: other attributes (the stream id) stay as they are.
    let mut tag = tag
        .replace(
            &format!("xmlns='{component}'"),
            &format!("xmlns='{client}'"),
        )
        .replace(
            &format!("xmlns=\"{component}\""),
            &format!("xmlns=\"{client}\""),
        );
    if !tag.contains("version=") {
        let end = tag.len() - 1;
        tag.insert_str(end, " version='1.0'");
    }
    format!("{decl}{tag}").into_bytes()
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for AcceptHeader<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if !self.out.is_empty() {
                let n = buf.remaining().min(self.out.len());
                let bytes: Vec<u8> = self.out.drain(..n).collect();
                buf.put_slice(&bytes);
                return Poll::Ready(Ok(()));
            }
            if self.phase == Phase::Through {
                return std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 1024];
            let mut rb = tokio::io::ReadBuf::new(&mut chunk);
            match std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let got = rb.filled().to_vec();
                    self.take_in(&got)?;
                    if got.is_empty() && self.out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> AcceptHeader<S> {
    /// Write out what is held of our side (the rewritten header).
    fn poll_drain(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while !self.sent.is_empty() && !self.sending_header {
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, &self.sent) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.sent.drain(..n);
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for AcceptHeader<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.sending_header {
            // Our header, until its `>`: held, then sent with the component namespace.
            self.sent.extend_from_slice(buf);
            if let Some(end) = header_end(&self.sent) {
                let rest = self.sent.split_off(end + 1);
                let head = String::from_utf8_lossy(&self.sent).into_owned();
                let client = xmpp_parsers::ns::JABBER_CLIENT;
                let component = xmpp_parsers::ns::COMPONENT;
                // The component namespace, and no version: XEP-0114 streams have none (a
                // server could take one as a wish for stream features).
                let (decl, head) = head.split_at(head.find("<stream:").unwrap_or(0));
                let head = head
                    .replace(
                        &format!("xmlns='{client}'"),
                        &format!("xmlns='{component}'"),
                    )
                    .replace(
                        &format!("xmlns=\"{client}\""),
                        &format!("xmlns=\"{component}\""),
                    )
                    .replace(" version='1.0'", "")
                    .replace(" version=\"1.0\"", "");
                self.sent = format!("{decl}{head}").into_bytes();
                self.sent.extend(rest);
                self.sending_header = false;
                if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            return Poll::Ready(Ok(buf.len()));
        }
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_write(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.poll_drain(cx) {
            std::task::Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.poll_drain(cx) {
            std::task::Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

/// A read, with a stream-level parse failure as the error it is.
fn read(
    el: Option<Result<FallibleStreamElement, ReadError>>,
) -> Option<Result<XmppStreamElement, ReadError>> {
    el.map(|r| r.and_then(FallibleStreamElement::into_read_error))
}

fn is_keepalive(iq: &Iq) -> bool {
    match iq {
        Iq::Result { id, .. } | Iq::Error { id, .. } => id.starts_with(PING_ID),
        _ => false,
    }
}

/// The server a component hangs off: its domain less the first label (`pubsub.example.org`
/// → `example.org`), or the domain itself when it has one label.
fn server_of(me: &Jid) -> Jid {
    let domain = me.domain().as_str();
    domain
        .split_once('.')
        .and_then(|(_, parent)| Jid::new(parent).ok())
        .unwrap_or_else(|| me.clone())
}

/// A stanza as a component sends it: from its domain (a client's server stamps that; a
/// component must), and never a presence to nobody (a client's broadcast has no meaning
/// here).
fn addressed(stanza: Stanza, me: &Jid) -> Option<Stanza> {
    Some(match stanza {
        Stanza::Presence(p) if p.to.is_none() => return None,
        Stanza::Presence(mut p) => {
            p.from.get_or_insert_with(|| me.clone());
            Stanza::Presence(p)
        }
        Stanza::Message(mut m) => {
            m.from.get_or_insert_with(|| me.clone());
            Stanza::Message(m)
        }
        Stanza::Iq(iq) if iq.from().is_none() => Stanza::Iq(iq.with_from(me.clone())),
        iq @ Stanza::Iq(_) => iq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::message::Message;
    use xmpp_parsers::presence::{Presence, Type as PresenceType};

    fn me() -> Jid {
        Jid::new("relay.example.org").expect("jid")
    }

    #[test]
    fn what_a_component_sends_is_from_its_domain() {
        let to = Jid::new("bob@example.org/tui").expect("jid");
        let Some(Stanza::Message(m)) = addressed(Message::new(Some(to.clone())).into(), &me())
        else {
            panic!("a message goes out");
        };
        assert_eq!(m.from, Some(me()));
        // A from already set is kept (control: the stamp is not blind).
        let other = Jid::new("relay.example.org/x").expect("jid");
        let mut m = Message::new(Some(to.clone()));
        m.from = Some(other.clone());
        let Some(Stanza::Message(m)) = addressed(m.into(), &me()) else {
            panic!("a message goes out");
        };
        assert_eq!(m.from, Some(other));
        let Some(Stanza::Iq(Iq::Result { from, .. })) =
            addressed(Iq::empty_result(to.clone(), "x").into(), &me())
        else {
            panic!("an iq goes out");
        };
        assert_eq!(from, Some(me()));
    }

    #[test]
    fn a_presence_to_nobody_is_not_sent_and_a_probe_is() {
        assert!(addressed(Presence::new(PresenceType::None).into(), &me()).is_none());
        let probe =
            Presence::new(PresenceType::Probe).with_to(Jid::new("bob@example.org").expect("jid"));
        assert!(
            matches!(addressed(probe.into(), &me()), Some(Stanza::Presence(p)) if p.from == Some(me()))
        );
    }

    #[tokio::test]
    async fn the_server_header_reads_as_a_client_one_and_nothing_after_it_changes() {
        use tokio::io::AsyncReadExt as _;
        let server = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                      xmlns='jabber:component:accept' id='a>b' from='relay.localhost'><handshake/>\
                      <message to='x'><body>jabber:component:accept</body></message>";
        // Byte by byte, so the header comes in pieces.
        let (mut w, r) = tokio::io::duplex(1);
        let feeder = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            for b in server.bytes() {
                w.write_all(&[b]).await.expect("write");
            }
        });
        let mut got = String::new();
        AcceptHeader::new(r)
            .read_to_string(&mut got)
            .await
            .expect("read");
        feeder.await.expect("feeder");
        assert_eq!(
            got,
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns='jabber:client' id='a>b' from='relay.localhost' version='1.0'><handshake xmlns='jabber:component:accept'/>\
             <message to='x'><body>jabber:component:accept</body></message>"
        );
        // Whitespace before the handshake, and a handshake that has its namespace already.
        for (after, want) in [
            (
                "\n <handshake/>",
                "\n <handshake xmlns='jabber:component:accept'/>",
            ),
            (
                "<handshake xmlns='jabber:component:accept'/>",
                "<handshake xmlns='jabber:component:accept'/>",
            ),
            ("<message/>", "<message/>"),
        ] {
            let given = format!(
                "<stream:stream xmlns='jabber:component:accept' id='jabber:component:accept'>{after}"
            );
            let mut got = String::new();
            AcceptHeader::new(given.as_bytes())
                .read_to_string(&mut got)
                .await
                .expect("read");
            assert_eq!(
                got,
                format!(
                    "<stream:stream xmlns='jabber:client' id='jabber:component:accept' version='1.0'>{want}"
                ),
                "the id is not a namespace: it stays"
            );
        }
        // The end of the stream before a whole header passes on what came.
        let mut got = String::new();
        AcceptHeader::new(&b"<stream:stream xmlns="[..])
            .read_to_string(&mut got)
            .await
            .expect("read");
        assert_eq!(got, "<stream:stream xmlns=");
        // A header that never ends is refused, not held without bound.
        let long = format!("<stream:stream id='{}'", "x".repeat(5000));
        let mut got = String::new();
        assert!(
            AcceptHeader::new(long.as_bytes())
                .read_to_string(&mut got)
                .await
                .is_err()
        );
        // A header that has a version keeps it (one version only).
        let with = "<stream:stream xmlns='jabber:component:accept' version='1.0' id='x'>";
        let mut got = String::new();
        AcceptHeader::new(with.as_bytes())
            .read_to_string(&mut got)
            .await
            .expect("read");
        assert_eq!(
            got,
            "<stream:stream xmlns='jabber:client' version='1.0' id='x'>"
        );
    }

    #[tokio::test]
    async fn our_header_says_the_component_namespace_and_nothing_after_it_changes() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut w = AcceptHeader::new(ours);
        // In pieces: the header is held until whole.
        w.write_all(b"<?xml version='1.0'?><stream:stream xmlns='jabber:cli")
            .await
            .expect("write");
        w.write_all(b"ent' to='relay.localhost' version='1.0'>")
            .await
            .expect("write");
        w.write_all(b"<message to='a'><body>'jabber:client'</body></message>")
            .await
            .expect("write");
        w.flush().await.expect("flush");
        drop(w);
        let mut got = String::new();
        theirs.read_to_string(&mut got).await.expect("read");
        assert_eq!(
            got,
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' to='relay.localhost'>\
             <message to='a'><body>'jabber:client'</body></message>"
        );
    }

    #[test]
    fn the_server_is_the_parent_domain() {
        assert_eq!(server_of(&me()), Jid::new("example.org").expect("jid"));
        let single = Jid::new("localhost").expect("jid");
        assert_eq!(server_of(&single), single);
    }
}
