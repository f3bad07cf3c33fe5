//! Opening authenticated XMPP streams, and the reconnect loop around it.
//!
//! We do not use tokio-xmpp's `StanzaStream::new_c2s`, because its reconnect loop retries
//! everything forever, bad credentials included, and never says why it failed. Instead our
//! connector (handed to `StanzaStream::new`) opens the stream step by step, so it can:
//! - set `TCP_NODELAY` (otherwise IQ round trips take ~40 ms on loopback);
//! - do STARTTLS with our own rustls config (system roots, or only `--ca-file`);
//! - refuse to send credentials when the server offers no STARTTLS, or when plain TCP is asked
//!   for anything but a loopback address;
//! - classify failures: bad credentials and TLS errors are final, the rest is retried with
//!   exponential backoff and jitter, and every attempt is reported to the front end;
//! - notice when a stream it handed over died before tokio-xmpp had a session on it (see
//!   [`Handovers`]), back off, and offer the next stream without stream management.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_xmpp::error::{AuthError, Error as XmppError};
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{
    ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement, initiate_stream,
};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::sasl::DefinedCondition as SaslCondition;
use xmpp_parsers::starttls;
use xmpp_parsers::stream_features::StreamFeatures;

use super::events::ConnState;
use super::guard::{Guarded, StreamErrors};

/// Dead-link detection: 20 s of silence, then a ping that must be answered within 10 s.
pub const LINK_TIMEOUTS: Timeouts = Timeouts {
    read_timeout: Duration::from_secs(20),
    response_timeout: Duration::from_secs(10),
};
/// Limit for one connection attempt (TCP, TLS, SASL, bind).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A password. Its `Debug` never shows it, so it cannot leak through a log of a config.
#[derive(Clone)]
pub struct Password(Arc<str>);

impl Password {
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How the stream is protected.
#[derive(Clone)]
pub enum Security {
    /// STARTTLS (required) with this rustls configuration.
    StartTls(Arc<rustls::ClientConfig>),
    /// Plain TCP: only ever to a loopback address (checked again on every connect).
    PlainLoopback,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StartTls(_) => f.write_str("StartTls"),
            Self::PlainLoopback => f.write_str("PlainLoopback"),
        }
    }
}

/// Everything needed to open a stream.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// The account, with the resource to request.
    pub jid: Jid,
    pub password: Password,
    /// The servers to connect to, in order of preference (`--server`, once or more; all of
    /// one cluster, or one server). Empty: the JID's domain's SRV records say.
    pub servers: Vec<(String, u16)>,
    pub security: Security,
    /// Dead-link detection: silence before a ping, and the wait for its answer.
    pub timeouts: Timeouts,
    /// Limit for one attempt (TCP, TLS, SASL, bind).
    pub connect_timeout: Duration,
    /// Give up after this many failed attempts in a row (`None`: keep trying).
    pub max_attempts: Option<u32>,
}

impl ConnectConfig {
    /// Plain TCP to a server on this machine (a private test or demo server), with the
    /// project's default timeouts and unlimited retries.
    pub fn loopback(jid: Jid, password: Password, port: u16) -> Self {
        Self {
            jid,
            password,
            servers: vec![("127.0.0.1".into(), port)],
            security: Security::PlainLoopback,
            timeouts: LINK_TIMEOUTS,
            connect_timeout: CONNECT_TIMEOUT,
            max_attempts: None,
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the server rejected the credentials ({0})")]
    Auth(String),
    #[error("no SASL mechanism in common with the server")]
    NoMechanism,
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error(
        "the server does not offer STARTTLS; refusing to send credentials unencrypted \
         (plain TCP is only allowed to loopback, with --insecure-plain-tcp)"
    )]
    NoStartTls,
    #[error("refusing plain TCP to {0}: it is not a loopback address")]
    PlainNotLoopback(String),
    #[error("{0}")]
    Network(String),
    #[error("no answer within {} s", .0.as_secs_f64().round())]
    Timeout(Duration),
    /// The peer is something else (a web server, SSH, …): a wrong host or port.
    #[error("{0}")]
    NotXmpp(String),
    /// The server will not take this component (a wrong secret, an unknown domain).
    #[error("{0}")]
    Component(String),
    /// Another component is connected under this domain (or our own previous link, not yet
    /// dropped): retried, unless it is so at the first connection.
    #[error("{0}")]
    ComponentTaken(String),
    /// Every server of several failed: each with its reason.
    #[error("{}", each_server(.0))]
    Servers(Vec<(String, ConnectError)>),
}

fn each_server(errors: &[(String, ConnectError)]) -> String {
    let each: Vec<String> = errors.iter().map(|(s, e)| format!("{s}: {e}")).collect();
    format!("no server answered ({})", each.join("; "))
}

impl ConnectError {
    /// Final errors stop the reconnect loop: retrying cannot fix them, and retrying bad
    /// credentials can lock the account.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Network(_) | Self::Timeout(_) | Self::ComponentTaken(_) => false,
            // Some server may come back: retried unless every one is wrong for good.
            Self::Servers(each) => each.iter().all(|(_, e)| e.is_fatal()),
            _ => true,
        }
    }

    /// About the account, not the server: no other server of the same domain is tried
    /// (they share the accounts, and retrying bad credentials can lock one). The mechanisms a
    /// server offers are its own configuration: another may have one in common.
    fn is_about_the_account(&self) -> bool {
        matches!(self, Self::Auth(_))
    }

    /// One error for an attempt that tried `errors.len()` servers (at least one).
    fn of_servers(mut errors: Vec<(String, ConnectError)>) -> Self {
        if errors.len() == 1
            && let Some((_, e)) = errors.pop()
        {
            return e;
        }
        Self::Servers(errors)
    }
}

/// `HOST:PORT` as a user writes it (an IPv6 address in brackets).
pub fn server_label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One SRV record of a domain's XMPP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub host: String,
    pub port: u16,
}

/// SRV records in the order RFC 2782 says to try them: lowest priority first; within one
/// priority, an order drawn by weight (a record of weight 3 comes first three times as often
/// as one of weight 1; those of weight 0 only after the others). `pick(total)` draws uniformly
/// from `0..total`.
pub fn srv_order(mut records: Vec<SrvTarget>, mut pick: impl FnMut(u32) -> u32) -> Vec<SrvTarget> {
    // Zero weights first within a priority (the RFC's arrangement); with the draw below they
    // come after the weighted records of their priority, in the order given.
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let same = records
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let mut group: Vec<SrvTarget> = records.drain(..same).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let at = if total == 0 {
                0
            } else {
                let drawn = pick(total).min(total - 1);
                let mut running = 0u32;
                group
                    .iter()
                    .position(|r| {
                        running += u32::from(r.weight);
                        running > drawn
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(at));
        }
    }
    out
}

/// The servers of `domain` from its `_xmpp-client._tcp` SRV records, in [`srv_order`]; the
/// domain itself on port 5222 when it has none (or when the lookup fails: the system's
/// resolver then says why in words).
async fn srv_servers(domain: &str) -> Result<Vec<(String, u16)>, ConnectError> {
    use hickory_resolver::proto::rr::RData;
    let fallback = vec![(domain.to_owned(), 5222)];
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Ok(fallback);
    }
    let Ok(Ok(resolver)) = hickory_resolver::TokioResolver::builder_tokio()
        .map(hickory_resolver::ResolverBuilder::build)
    else {
        return Ok(fallback);
    };
    let Ok(lookup) = resolver
        .srv_lookup(format!("_xmpp-client._tcp.{domain}."))
        .await
    else {
        return Ok(fallback);
    };
    let records_len = lookup.answers().len();
    let records: Vec<SrvTarget> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            // "." is no server (only meaningful alone, handled below).
            RData::SRV(srv) if records_len > 1 && srv.target.is_root() => None,
            RData::SRV(srv) => Some(SrvTarget {
                priority: srv.priority,
                weight: srv.weight,
                host: srv.target.to_ascii().trim_end_matches('.').to_owned(),
                port: srv.port,
            }),
            _ => None,
        })
        .collect();
    // RFC 2782: a single record with the target "." says there is no such service.
    if let [only] = records.as_slice()
        && only.host.is_empty()
    {
        return Err(ConnectError::NotXmpp(format!(
            "{domain} says in its DNS records that it offers no XMPP service"
        )));
    }
    if records.is_empty() {
        return Ok(fallback);
    }
    let ordered = srv_order(records, |total| rand::random_range(0..total));
    Ok(ordered.into_iter().map(|r| (r.host, r.port)).collect())
}

impl From<XmppError> for ConnectError {
    fn from(e: XmppError) -> Self {
        match e {
            XmppError::Io(io) if super::guard::NotXmpp::is(&io) => Self::NotXmpp(io.to_string()),
            XmppError::Auth(AuthError::Fail(SaslCondition::TemporaryAuthFailure)) => {
                Self::Network("temporary authentication failure".into())
            }
            XmppError::Auth(AuthError::Fail(cond)) => Self::Auth(sasl_condition_name(&cond)),
            XmppError::Auth(AuthError::NoMechanism) => Self::NoMechanism,
            XmppError::Auth(other) => Self::Auth(other.to_string()),
            // "I/O error: Connection refused": the prefix says nothing to a user.
            XmppError::Io(io) => Self::Network(io.to_string()),
            other => Self::Network(other.to_string()),
        }
    }
}

impl From<std::io::Error> for ConnectError {
    fn from(e: std::io::Error) -> Self {
        if super::guard::NotXmpp::is(&e) {
            return Self::NotXmpp(e.to_string());
        }
        Self::Network(e.to_string())
    }
}

fn sasl_condition_name(cond: &SaslCondition) -> String {
    // The Debug form is the variant name (NotAuthorized); make it the wire name.
    let name = format!("{cond:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Anything we can run an XML stream over (TCP, or TLS over TCP). tokio-xmpp reads it through
/// a `BufStream`.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

fn header(domain: &str) -> StreamHeader<'static> {
    StreamHeader {
        to: Some(Cow::Owned(domain.to_owned())),
        from: None,
        id: None,
    }
}

/// Load the trust roots: only the CA file if given, else the system's.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use anyhow::Context as _;
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read CA file {}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("CA file {} is not valid PEM", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("CA file {} contains no certificate", path.display());
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("bad certificate in {}", path.display()))?;
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if roots.is_empty() {
            anyhow::bail!("no trusted root certificates found on this system; pass --ca-file PEM");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connect to `host` (a name or an IP address) on `port`: each of its addresses in turn,
/// with the system resolver (so `/etc/hosts` counts), and errors in plain words. Of several
/// addresses, each but the last gets its share of `budget` (at most [`ADDRESS_TIMEOUT`]).
pub(crate) async fn connect_host(
    host: &str,
    port: u16,
    budget: Duration,
) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ConnectError::Network(format!("cannot find the server {host}: {e}")))?
        .collect();
    let mut last = None;
    let count = addrs.len();
    let each = ADDRESS_TIMEOUT.min(budget / u32::try_from(count.max(1)).unwrap_or(u32::MAX));
    for (i, addr) in addrs.into_iter().enumerate() {
        // A silent address (a broken IPv6 route) must not keep the others from being tried.
        let connect = TcpStream::connect(addr);
        let result = if i + 1 < count {
            tokio::time::timeout(each, connect)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no answer from {addr} within {} s",
                            each.as_secs_f64().round()
                        ),
                    ))
                })
        } else {
            connect.await
        };
        match result {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Network(match last {
        Some(e) => format!("cannot connect to {host} port {port}: {e}"),
        None => format!("cannot find the server {host}: it has no address"),
    }))
}

/// The servers to try, in order: `--server`s as given, else the domain's SRV records.
async fn servers(cfg: &ConnectConfig) -> Result<Vec<(String, u16)>, ConnectError> {
    if cfg.servers.is_empty() {
        srv_servers(cfg.jid.domain().as_str()).await
    } else {
        Ok(cfg.servers.clone())
    }
}

/// The body of a stream-level read loop: wait for `<proceed/>` after `<starttls/>`.
async fn starttls_handshake(
    mut stream: XmppStream<BufStream<Guarded<TcpStream>>>,
) -> Result<TcpStream, ConnectError> {
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await?;
    loop {
        match stream
            .next()
            .await
            .map(|v| v.and_then(tokio_xmpp::xmlstream::FallibleStreamElement::into_read_error))
        {
            Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
            Some(Ok(_) | Err(ReadError::SoftTimeout)) => {}
            Some(Err(ReadError::HardError(e))) => return Err(e.into()),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(ConnectError::Network(e.to_string()));
            }
            None | Some(Err(ReadError::StreamFooterReceived)) => {
                return Err(ConnectError::Network(
                    "the server closed the stream during STARTTLS".into(),
                ));
            }
        }
    }
    Ok(stream.into_inner().into_inner().into_inner())
}

fn tls_error(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(ToString::to_string)
}

/// An authenticated stream, not yet bound: the server it is on (`HOST:PORT`), its features.
pub type Established = (
    String,
    StreamFeatures,
    XmppStream<BufStream<Box<dyn AsyncReadWrite>>>,
);

/// Where a connect attempt starts in the list of servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// With the first, as given.
    First,
    /// After this one (`HOST:PORT`), which it comes back to last: the server of a session that
    /// was lost.
    After(String),
    /// With this one: the server of a stream that died before its session was set up (for
    /// a reason that was not the server's; see [`Handovers`]).
    With(String),
}

/// Open one authenticated (not yet bound) stream to the first server that takes it, trying
/// each in turn from `start`, each within the connect timeout. Returns the server it is on
/// (`HOST:PORT`). Stream errors the server sends on the stream later are left in `errors`.
pub async fn establish(
    cfg: &ConnectConfig,
    start: &Start,
    errors: Option<Arc<StreamErrors>>,
    trying: &(dyn Fn(&str) + Sync),
) -> Result<Established, ConnectError> {
    let mut servers = tokio::time::timeout(cfg.connect_timeout, servers(cfg))
        .await
        .map_err(|_| ConnectError::Timeout(cfg.connect_timeout))??;
    let (Start::After(from) | Start::With(from)) = start else {
        return establish_in_turn(cfg, servers, errors, trying).await;
    };
    if let Some(at) = servers
        .iter()
        .position(|(h, p)| server_label(h, *p) == *from)
    {
        let skip = usize::from(matches!(start, Start::After(_)));
        servers.rotate_left(at + skip);
    }
    establish_in_turn(cfg, servers, errors, trying).await
}

async fn establish_in_turn(
    cfg: &ConnectConfig,
    servers: Vec<(String, u16)>,
    errors: Option<Arc<StreamErrors>>,
    trying: &(dyn Fn(&str) + Sync),
) -> Result<Established, ConnectError> {
    // The attempt as a whole keeps to the connect timeout: the servers left share what is
    // left of it equally (a healthy server takes well under a second), so a silent one
    // cannot use up the others' time.
    let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
    let count = servers.len();
    let mut failed = Vec::new();
    for (i, (host, port)) in servers.into_iter().enumerate() {
        let label = server_label(&host, port);
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            failed.push((
                label,
                ConnectError::Network("not tried: the attempt's time was used up".into()),
            ));
            continue;
        }
        let left = u32::try_from(count - i).unwrap_or(u32::MAX);
        let share = remaining / left;
        trying(&label);
        let attempt = establish_on(cfg, &host, port, share, errors.clone());
        let error = match tokio::time::timeout(share, attempt).await {
            Ok(Ok((features, stream))) => return Ok((label, features, stream)),
            Ok(Err(e)) if e.is_about_the_account() => return Err(e),
            Ok(Err(e)) => e,
            Err(_) => ConnectError::Timeout(share),
        };
        // Said here too: a later server may work, and then this reason would go unseen (a
        // certificate that does not verify on one node, say).
        if count > 1 {
            tracing::warn!(server = %label, error = %error, "server failed, trying the next");
        }
        failed.push((label, error));
    }
    Err(ConnectError::of_servers(failed))
}

/// Time for one address of a name that has several, before the next is tried.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Open one authenticated (not yet bound) stream to `host` on `port`.
pub async fn establish_on(
    cfg: &ConnectConfig,
    host: &str,
    port: u16,
    budget: Duration,
    errors: Option<Arc<StreamErrors>>,
) -> Result<
    (
        StreamFeatures,
        XmppStream<BufStream<Box<dyn AsyncReadWrite>>>,
    ),
    ConnectError,
> {
    let domain = cfg.jid.domain().as_str().to_owned();
    let ns = xmpp_parsers::ns::JABBER_CLIENT;
    let tcp = connect_host(host, port, budget).await?;
    tcp.set_nodelay(true)?;
    let (io, binding): (Box<dyn AsyncReadWrite>, ChannelBinding) = match &cfg.security {
        Security::PlainLoopback => {
            let peer = tcp.peer_addr()?;
            if !peer.ip().is_loopback() {
                return Err(ConnectError::PlainNotLoopback(peer.to_string()));
            }
            (
                Box::new(Guarded::new(tcp).reporting(errors)),
                ChannelBinding::None,
            )
        }
        Security::StartTls(config) => {
            let plain = initiate_stream(
                BufStream::new(Guarded::new(tcp)),
                ns,
                header(&domain),
                cfg.timeouts,
            )
            .await?;
            let (features, plain) = plain.recv_features().await.map_err(XmppError::from)?;
            if !features.can_starttls() {
                return Err(ConnectError::NoStartTls);
            }
            let tcp = starttls_handshake(plain).await?;
            let name = rustls::pki_types::ServerName::try_from(domain.clone())
                .map_err(|e| ConnectError::Tls(format!("{domain} is not a valid TLS name: {e}")))?;
            let tls = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| match tls_error(&e) {
                    Some(t) => ConnectError::Tls(t),
                    None => ConnectError::Network(format!("during the TLS handshake: {e}")),
                })?;
            let (_, conn) = tls.get_ref();
            let binding = if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .map_or(ChannelBinding::None, ChannelBinding::TlsExporter)
            } else {
                ChannelBinding::None
            };
            (Box::new(Guarded::new(tls).reporting(errors)), binding)
        }
    };
    let stream = initiate_stream(BufStream::new(io), ns, header(&domain), cfg.timeouts).await?;
    let (features, stream) = stream.recv_features().await.map_err(XmppError::from)?;
    let username = cfg
        .jid
        .node()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    let creds = Credentials::default()
        .with_username(username)
        .with_password(cfg.password.expose().to_owned())
        .with_channel_binding(binding);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds).await?;
    let stream = stream.send_header(header(&domain)).await?;
    let (features, stream) = stream.recv_features().await.map_err(XmppError::from)?;
    Ok((features, stream))
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A stream we drop this soon after its session came up counts as a failed attempt (see
/// [`Handovers`]).
const QUICK_DROP: Duration = Duration::from_secs(10);

/// Whether the streams handed to tokio-xmpp got as far as a session.
///
/// An authenticated stream is not yet a session: tokio-xmpp still resumes (XEP-0198) or binds
/// on it. If that step fails it asks for a new stream at once, and since connecting works, a
/// connector that only counted its own failures would loop without pause. The case is real:
/// after a restart, or once the hibernation time (600 s by default) is over, Prosody answers
/// a resumption with `<failed/>` without an `h` attribute, which xmpp-parsers 0.23 cannot
/// parse, so tokio-xmpp drops the stream and keeps its resumption state.
///
/// So the network task reports each session ([`Handovers::session_up`]); a stream that died
/// before one counts as a failed attempt: the next one is offered without the
/// stream-management feature, and from the second in a row on they wait (the usual backoff),
/// so nothing can loop without pause.
///
/// Without the feature, tokio-xmpp drops the stale state and binds a fresh session (which the
/// session machine then resyncs).
///
/// Streams that we dropped (the peer did not end them: [`StreamErrors::peer_ended`]) within
/// [`QUICK_DROP`] of their session are counted apart: the parser refused what the server
/// sent, and since the server sends it again to each new session (an item it keeps, say),
/// reconnecting at once looped hundreds of times a second. From the second such drop in a
/// row on, the next stream waits (the usual backoff); nothing else changes (the feature stays
/// offered), so a single drop (a restart whose end was read late) reconnects as before.
#[derive(Debug, Default)]
pub struct Handovers {
    handed: AtomicBool,
    up: AtomicBool,
    /// When the last stream's session came up.
    up_at: std::sync::Mutex<Option<std::time::Instant>>,
    failed_in_a_row: AtomicU32,
    /// Streams in a row dropped by us right after their session.
    dropped_in_a_row: AtomicU32,
    /// The server the last stream went to (`HOST:PORT`).
    server: std::sync::Mutex<Option<String>>,
    /// The stream error the last stream ended with, if any.
    pub errors: Arc<StreamErrors>,
}

impl Handovers {
    /// The network task saw a session on the last stream (bound or resumed).
    pub fn session_up(&self) {
        self.up.store(true, Ordering::SeqCst);
        if let Ok(mut at) = self.up_at.lock() {
            *at = Some(std::time::Instant::now());
        }
    }

    /// A new stream is wanted: how many streams in a row died before a session, and how
    /// many in a row were dropped by us right after one.
    fn next_request(&self) -> (u32, u32) {
        let handed = self.handed.swap(false, Ordering::SeqCst);
        let up = self.up.swap(false, Ordering::SeqCst);
        let dropped_here = handed
            && up
            && !self.errors.peer_ended()
            && self
                .up_at
                .lock()
                .ok()
                .and_then(|at| *at)
                .is_some_and(|at| at.elapsed() < QUICK_DROP);
        let dropped = if dropped_here {
            self.dropped_in_a_row.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.dropped_in_a_row.store(0, Ordering::SeqCst);
            0
        };
        let dead = if handed && !up {
            self.failed_in_a_row.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.failed_in_a_row.store(0, Ordering::SeqCst);
            0
        };
        (dead, dropped)
    }

    fn handed_over(&self, server: String) {
        if let Ok(mut s) = self.server.lock() {
            *s = Some(server);
        }
        self.up.store(false, Ordering::SeqCst);
        self.errors.new_stream();
        self.handed.store(true, Ordering::SeqCst);
    }

    /// The server the last stream went to (`HOST:PORT`).
    pub fn connected(&self) -> Option<String> {
        self.server.lock().ok().and_then(|s| s.clone())
    }
}

pub(crate) fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(MAX_BACKOFF);
    let jitter_ms = rand::random_range(0..=base.as_millis() / 4);
    base + Duration::from_millis(u64::try_from(jitter_ms).unwrap_or(0))
}

/// Whether the next stream waits, after `dead` streams in a row died before a session and
/// `dropped` in a row were dropped by us right after one: how many in a row, and why. The
/// first retry after a stream died before its session changes something (no stream
/// management), so it need not wait; nor does the first after one we dropped.
fn wait_before(dead: u32, dropped: u32) -> Option<(u32, &'static str)> {
    if dead > 1 {
        Some((
            dead,
            "the server closed the stream before a session was set up",
        ))
    } else if dropped > 1 {
        Some((
            dropped,
            "the connection was dropped right after it came up, again: what the server sent \
             could not be read (it may keep an item this client cannot parse)",
        ))
    } else {
        None
    }
}

/// Connect until it works, a final error happens, or the stream is gone. Reports every
/// attempt on `status`. After a final error it waits for the stream to be dropped.
pub async fn connect_loop(
    cfg: Arc<ConnectConfig>,
    handovers: Arc<Handovers>,
    status: mpsc::UnboundedSender<ConnState>,
    mut slot: oneshot::Sender<Connection>,
) {
    let (dead_streams, dropped) = handovers.next_request();
    // Another login with our full JID took over the session. Reconnecting would take it
    // back, and the other would do the same: the two would knock each other off for ever.
    if let Some(e) = handovers.errors.take() {
        if e.condition == "conflict" {
            let said = e
                .text
                .map(|t| format!(" (the server said: {t})"))
                .unwrap_or_default();
            let _ = status.send(ConnState::Failed {
                error: format!(
                    "another connection logged in as {} and replaced this one{said}; stopped \
                     here so the two do not knock each other off (two runs at once need two \
                     resources: see --resource)",
                    cfg.jid
                ),
            });
            slot.closed().await;
            return;
        }
        tracing::warn!(condition = %e.condition, text = ?e.text, "the server ended the stream");
    }
    if let Some((in_a_row, why)) = wait_before(dead_streams, dropped) {
        let wait = backoff(in_a_row - 1);
        let _ = status.send(ConnState::Retrying {
            attempt: in_a_row,
            error: why.into(),
            retry_in: wait,
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = slot.closed() => return,
        }
    }
    let mut failures = 0u32;
    let mut attempt = 0u32;
    // After a session was lost, the other servers come first: the one it was on may be down.
    // A stream that died before its session goes back to the same server.
    let previous = handovers.connected();
    let start = match previous.clone() {
        Some(last) if dead_streams == 0 => Start::After(last),
        Some(last) => Start::With(last),
        None => Start::First,
    };
    loop {
        attempt += 1;
        let trying = |server: &str| {
            let _ = status.send(ConnState::Connecting {
                attempt,
                server: Some(server.to_owned()),
            });
        };
        let result = establish(&cfg, &start, Some(handovers.errors.clone()), &trying).await;
        let error = match result {
            Ok((server, mut features, stream)) => {
                if dead_streams > 0 {
                    tracing::warn!(
                        dead_streams,
                        "the last stream died before a session; binding a fresh session \
                         without stream management this time"
                    );
                    features.stream_management = None;
                } else if previous.as_ref().is_some_and(|p| *p != server) {
                    // A session lives on the server that held it: asking another to resume
                    // it fails (Prosody then drops the stream), which would show as a second
                    // outage. Bind a fresh one, which the session machine resyncs.
                    tracing::info!(%server, "moved to another server: a fresh session");
                    features.stream_management = None;
                }
                handovers.handed_over(server);
                let _ = slot.send(Connection {
                    stream: stream.box_stream(),
                    features,
                    identity: cfg.jid.clone(),
                });
                return;
            }
            Err(e) => e,
        };
        tracing::warn!(attempt, error = %error, "connection attempt failed");
        let out_of_attempts = cfg.max_attempts.is_some_and(|max| attempt >= max);
        if error.is_fatal() || out_of_attempts {
            let error = if out_of_attempts && !error.is_fatal() {
                format!("{error} (gave up after {attempt} attempts)")
            } else {
                error.to_string()
            };
            let _ = status.send(ConnState::Failed { error });
            // Do not drop the slot: tokio-xmpp's worker panics when a reconnect request is
            // abandoned. Hold it until the network task drops the stream, which ends the worker.
            slot.closed().await;
            return;
        }
        failures += 1;
        let wait = backoff(failures);
        let _ = status.send(ConnState::Retrying {
            attempt,
            error: error.to_string(),
            retry_in: wait,
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = slot.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, host: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            host: host.into(),
            port: 5222,
        }
    }

    fn hosts(v: &[SrvTarget]) -> Vec<&str> {
        v.iter().map(|r| r.host.as_str()).collect()
    }

    #[test]
    fn srv_records_go_by_priority_then_weight() {
        let records = vec![
            srv(20, 0, "backup"),
            srv(10, 1, "light"),
            srv(10, 3, "heavy"),
            srv(5, 0, "first"),
        ];
        // Drawing 0 picks the first record of the running sum, drawing the total the last.
        let low = srv_order(records.clone(), |_| 0);
        assert_eq!(hosts(&low), ["first", "light", "heavy", "backup"]);
        let high = srv_order(records.clone(), |total| total - 1);
        assert_eq!(hosts(&high), ["first", "heavy", "light", "backup"]);
        // With weights 3 and 1, the heavier comes first about three times in four.
        let heavy_first = (0..4000)
            .filter(|_| {
                let order = srv_order(records.clone(), |t| rand::random_range(0..t));
                order[1].host == "heavy"
            })
            .count();
        assert!(
            (2700..=3300).contains(&heavy_first),
            "{heavy_first} of 4000"
        );
    }

    #[test]
    fn an_error_of_each_server_is_said_and_final_only_if_all_are() {
        let one = ConnectError::of_servers(vec![(
            "a:1".into(),
            ConnectError::Network("refused".into()),
        )]);
        assert_eq!(one.to_string(), "refused", "one server: its error as it is");
        let both = ConnectError::of_servers(vec![
            ("a:1".into(), ConnectError::Network("refused".into())),
            ("b:2".into(), ConnectError::NotXmpp("not XMPP".into())),
        ]);
        assert_eq!(
            both.to_string(),
            "no server answered (a:1: refused; b:2: not XMPP)"
        );
        assert!(!both.is_fatal(), "a:1 may come back");
        let wrong = ConnectError::of_servers(vec![
            ("a:1".into(), ConnectError::NoStartTls),
            ("b:2".into(), ConnectError::NotXmpp("not XMPP".into())),
        ]);
        assert!(wrong.is_fatal());
        assert_eq!(server_label("::1", 5222), "[::1]:5222");
    }
}
