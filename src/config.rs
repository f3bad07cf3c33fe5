//! Settings: the config file, merged under the flags (and their environment variables), then
//! validated into the configurations the network core takes. Also the password sources.
//!
//! Order of precedence for every setting: flag > environment variable > config file > default.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use xmpp_parsers::jid::Jid;

use crate::cli::{AccountArgs, LogArgs, ServiceArgs, TuiArgs};
use crate::xmpp::connect::{ConnectConfig, Security, tls_config};
use crate::xmpp::session::{RetryPolicy, SessionConfig};

pub const DEFAULT_INTERVAL_SECS: f64 = 5.0;
pub const DEFAULT_FEED_LIMIT: usize = 10_000;
pub const DEFAULT_IQ_TIMEOUT_SECS: f64 = 30.0;
pub const DEFAULT_MAX_ITEMS: u64 = 1000;
pub const DEFAULT_MAX_NODES: u64 = 10_000;
pub const DEFAULT_PROBE_INTERVAL_SECS: f64 = 60.0;
/// Environment variable holding the password (read once at start).
pub const PASSWORD_ENV: &str = "PUBSUB_TUI_PASSWORD";
pub use crate::xmpp::connect::{CONNECT_TIMEOUT, LINK_TIMEOUTS, Password};
/// Automatic (gap-triggered) resyncs of one node start at most this often.
pub const AUTO_RESYNC_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub jid: Option<String>,
    pub resource: Option<String>,
    pub server: Option<Servers>,
    pub ca_file: Option<PathBuf>,
    pub insecure_plain_tcp: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub service: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub auto_publish: Option<AutoPublish>,
    pub feed_limit: Option<usize>,
    /// `feed_memory = "64M"` (or a number of bytes).
    pub feed_memory: Option<Size>,
    /// `cache = false`: keep nothing between runs (as --no-cache).
    pub cache: Option<bool>,
    /// `cache_size = "256M"`: the kept items' size in all, at most.
    pub cache_size: Option<Size>,
    pub iq_timeout: Option<f64>,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<String>,
    /// `serve`'s own settings.
    pub serve: Option<ServeFile>,
}

/// A size in the config file: bytes, or text with a unit (`"64M"`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// The smallest and largest `--feed-memory`.
const FEED_MEMORY_RANGE: (usize, usize) = (64 << 10, 64 << 30);

/// A size with an optional unit: `65536`, `512K`, `64M`, `1G` (powers of 1024; `KiB`, `MB`
/// and the like read the same), from 64 KiB to 64 GiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: usize = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size: give bytes, or a number and K, M or G (64M)"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{s:?}: the unit is K, M or G (64M)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    let (lo, hi) = FEED_MEMORY_RANGE;
    if !(lo..=hi).contains(&bytes) {
        return Err(format!("{s:?}: a size here is from 64K to 64G"));
    }
    Ok(bytes)
}

/// `server = "HOST:PORT"`, or a list of them: the servers of one domain (its cluster's nodes),
/// tried in this order.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "ServersAsWritten")]
pub enum Servers {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a \"HOST:PORT\" string, or a list of them")]
enum ServersAsWritten {
    One(String),
    Many(Vec<String>),
}

impl TryFrom<ServersAsWritten> for Servers {
    type Error = String;

    fn try_from(s: ServersAsWritten) -> Result<Self, String> {
        let servers = match s {
            ServersAsWritten::Many(v) => Self::Many(v),
            ServersAsWritten::One(s) => Self::One(s),
        };
        let written = match &servers {
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        };
        if written.is_empty() {
            return Err(
                "server is an empty list: leave it out to use the domain's SRV records".into(),
            );
        }
        if written
            .iter()
            .flat_map(|s| s.split(','))
            .any(|s| s.trim().is_empty())
        {
            let written: Vec<String> = written.iter().map(|s| format!("{s:?}")).collect();
            return Err(format!(
                "server {} has an empty entry: each is \"HOST:PORT\" (leave server out to use \
                 the domain's SRV records)",
                written.join(", ")
            ));
        }
        Ok(servers)
    }
}

impl Servers {
    /// Each server; a string may hold several, comma-separated, as `--server` and
    /// `PUBSUB_TUI_SERVER` take them.
    fn into_vec(self) -> Vec<String> {
        let each = match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        };
        each.iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `auto_publish = true`, `false`, or a number of seconds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(untagged, expecting = "true, false or a number of seconds")]
pub enum AutoPublish {
    On(bool),
    Every(f64),
}

/// The `[serve]` table of the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    pub data_dir: Option<PathBuf>,
    pub max_items: Option<u64>,
    pub max_nodes: Option<u64>,
    pub admins: Option<Vec<String>>,
    pub probe_interval: Option<f64>,
    pub component: Option<String>,
    pub secret_file: Option<PathBuf>,
}

impl FileConfig {
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "config file {}: {}",
                path.display(),
                plain_types(&e.to_string())
            )
        })
    }

    /// The file named by `--config` (which must exist), or the default one if it exists.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => match default_config_path() {
                Some(p) if p.exists() => p,
                _ => return Ok(Self::default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, &path)
    }
}

/// A parse error with the Rust type names it may carry (`expected f64`) in words.
fn plain_types(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, words) in [
        ("expected f64", "expected a number"),
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
    ] {
        out = out.replace(rust, words);
    }
    out
}

pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("pubsub-tui").join("config.toml"))
}

/// Flags and config file merged, before anything is validated or read.
#[derive(Debug, Clone)]
pub struct Merged {
    pub jid: Option<String>,
    pub resource: Option<String>,
    /// `--server`s (or the config's `server`), in order; empty: SRV.
    pub server: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure_plain_tcp: bool,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub service: Option<String>,
    pub nodes: Vec<String>,
    /// Auto-publish interval in seconds; `None` is off.
    pub auto_publish: Option<f64>,
    pub feed_limit: usize,
    pub feed_memory: Option<Size>,
    /// Keep a local store (false: --no-cache, or `cache = false`).
    pub cache: bool,
    pub cache_size: Option<Size>,
    pub iq_timeout: f64,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub serve: ServeFile,
}

/// `~/x` means `$HOME/x` in the config file (shells expand it on the command line).
pub fn expand_tilde(path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

/// Merge the flags a front end takes (`None`: it has no such flags) over the config file.
pub fn merge(
    account: &AccountArgs,
    service: Option<&ServiceArgs>,
    tui: Option<&TuiArgs>,
    log: &LogArgs,
    file: FileConfig,
) -> Merged {
    let file = FileConfig {
        ca_file: file.ca_file.map(expand_tilde),
        password_file: file.password_file.map(expand_tilde),
        log_file: file.log_file.map(expand_tilde),
        ..file
    };
    let no_service = ServiceArgs::default();
    let service = service.unwrap_or(&no_service);
    let no_tui = TuiArgs::default();
    let tui = tui.unwrap_or(&no_tui);
    let auto_publish = tui.auto_publish.or(match file.auto_publish {
        Some(AutoPublish::On(true)) => Some(DEFAULT_INTERVAL_SECS),
        Some(AutoPublish::Every(secs)) => Some(secs),
        Some(AutoPublish::On(false)) | None => None,
    });
    Merged {
        jid: account.jid.clone().or(file.jid),
        resource: account.resource.clone().or(file.resource),
        // Empty pieces (a trailing comma, an empty PUBSUB_TUI_SERVER) name no server.
        server: if account.server.iter().all(|s| s.trim().is_empty()) {
            file.server.map(Servers::into_vec).unwrap_or_default()
        } else {
            account
                .server
                .iter()
                .filter(|s| !s.trim().is_empty())
                .cloned()
                .collect()
        },
        ca_file: account.ca_file.clone().or(file.ca_file),
        insecure_plain_tcp: account.insecure_plain_tcp || file.insecure_plain_tcp.unwrap_or(false),
        password_file: account.password_file.clone().or(file.password_file),
        password_command: account.password_command.clone().or(file.password_command),
        service: service.service.clone().or(file.service),
        nodes: if service.nodes.is_empty() {
            file.nodes.unwrap_or_default()
        } else {
            service.nodes.clone()
        },
        auto_publish,
        feed_limit: tui
            .feed_limit
            .or(file.feed_limit)
            .unwrap_or(DEFAULT_FEED_LIMIT),
        feed_memory: tui
            .feed_memory
            .map(|b| Size::Bytes(u64::try_from(b).unwrap_or(u64::MAX)))
            .or(file.feed_memory),
        cache: file.cache.unwrap_or(true),
        cache_size: file.cache_size,
        iq_timeout: service
            .iq_timeout
            .or(file.iq_timeout)
            .unwrap_or(DEFAULT_IQ_TIMEOUT_SECS),
        log_file: log.log_file.clone().or(file.log_file),
        log_level: log.log_level.clone().or(file.log_level),
        serve: file.serve.unwrap_or_default(),
    }
}

/// Each `--server` (or the config's `server` list), checked, in order. One given twice is a
/// mistake worth saying (a copy and paste that lost the other node), not a preference.
pub fn parse_servers(given: &[String]) -> anyhow::Result<Vec<(String, u16)>> {
    let mut out: Vec<(String, u16)> = Vec::with_capacity(given.len());
    for s in given {
        let server = parse_server(s)?;
        if out.contains(&server) {
            bail!(
                "--server {} (config: server) is given twice; each server of the account's \
                 domain once, in the order to try them",
                crate::xmpp::connect::server_label(&server.0, server.1)
            );
        }
        out.push(server);
    }
    Ok(out)
}

/// The standard XMPP client port, for a `--server` given without one.
pub const DEFAULT_PORT: u16 = 5222;

/// Parse `HOST[:PORT]` (IPv6 as `[::1]:5222` or `[::1]`); the port defaults to 5222.
pub fn parse_server(s: &str) -> anyhow::Result<(String, u16)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .with_context(|| format!("--server {s:?} (config: server): a '[' without ']'"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => bail!("--server {s:?} (config: server): expected [IPv6]:PORT"),
        }
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address.
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        bail!("--server {s:?} (config: server): the host is empty");
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port.parse().ok().filter(|p| *p != 0).with_context(|| {
            format!("--server {s:?} (config: server): {port:?} is not a port number (1-65535)")
        })?,
    };
    Ok((host.to_owned(), port))
}

/// True for `localhost` and loopback IP literals.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A fresh resource for one run: `pubsub-tui-` and 8 random hex digits.
pub fn random_resource() -> String {
    format!(
        "{}-{:08x}",
        crate::xmpp::session::RESOURCE_PREFIX,
        rand::random::<u32>()
    )
}

/// The account JID with a resource: the one in `s`, else `resource`, else a random one.
pub fn account_jid(s: &str, resource: Option<&str>) -> anyhow::Result<Jid> {
    let jid = Jid::new(s.trim())
        .map_err(|e| anyhow::anyhow!("--jid {s:?} (config: jid) is not a valid JID: {e}"))?;
    if jid.node().is_none() {
        bail!("--jid {s:?} (config: jid) has no user part; expected user@domain");
    }
    let resource = resource.map(str::trim);
    if jid.resource().is_some() {
        if resource.is_some() {
            bail!(
                "--jid {s:?} has a resource and --resource (config: resource) gives another: \
                 give it once"
            );
        }
        return Ok(jid);
    }
    let resource = match resource {
        Some("") => bail!("--resource (config: resource) is empty"),
        Some(r) => r.to_owned(),
        None => random_resource(),
    };
    Jid::new(&format!("{jid}/{resource}"))
        .map_err(|e| anyhow::anyhow!("--resource {resource:?} (config: resource): {e}"))
}

/// A setting in seconds, checked; `name` is the flag and its config key.
fn seconds(name: &str, value: f64, max: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value <= 0.0 || value > max {
        bail!("{name} must be a number of seconds above 0 and at most {max}, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// A usage mistake (the command line or the config says something that cannot be): the
/// binary exits 2 for it, as for a flag it does not know.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn check_node_name(node: &str) -> anyhow::Result<()> {
    if node.is_empty() {
        return Err(UsageError(
            "--node (config: nodes, env: PUBSUB_TUI_NODE): a node name is empty".into(),
        )
        .into());
    }
    if node.chars().any(char::is_control) || node.chars().count() > 1024 {
        return Err(UsageError(format!(
            "--node (config: nodes, env: PUBSUB_TUI_NODE): {node:?} has control characters or \
             is too long"
        ))
        .into());
    }
    Ok(())
}

/// The nodes in order, each once, without spaces around them (`PUBSUB_TUI_NODE='a, b'`).
fn clean_nodes(nodes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in nodes.iter().map(|n| n.trim()) {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    out
}

/// Everything a front end needs to start the network core.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect: ConnectConfig,
    pub session: SessionConfig,
    pub feed_limit: usize,
    pub feed_memory: Option<usize>,
    /// Where the local store is, and its bounds (`None`: keep nothing).
    pub cache: Option<crate::cache::CacheConfig>,
}

fn require_jid(m: &Merged) -> anyhow::Result<Jid> {
    let Some(jid) = &m.jid else {
        bail!(
            "no account given: pass --jid user@domain (or set jid in the config file, or \
             PUBSUB_TUI_JID).\nTo try pubsub-tui without an account, run `pubsub-tui demo`."
        );
    };
    account_jid(jid, m.resource.as_deref())
}

/// Validate the account and connection settings and read the password. `prompt` allows an
/// interactive prompt as the last password source.
pub fn resolve_connect(m: &Merged, prompt: bool) -> anyhow::Result<ConnectConfig> {
    let jid = require_jid(m)?;
    resolve_connect_as(m, jid, prompt)
}

/// [`resolve_connect`] for a JID decided by the caller.
pub fn resolve_connect_as(m: &Merged, jid: Jid, prompt: bool) -> anyhow::Result<ConnectConfig> {
    let servers = parse_servers(&m.server)?;
    let security = if m.insecure_plain_tcp {
        if let Some((host, _)) = servers.iter().find(|(host, _)| !is_loopback_host(host)) {
            bail!(
                "--insecure-plain-tcp (config: insecure_plain_tcp) is only allowed to a \
                 loopback address, not {host:?}"
            );
        }
        if servers.is_empty() {
            bail!(
                "--insecure-plain-tcp (config: insecure_plain_tcp) needs --server with a \
                 loopback address"
            );
        }
        Security::PlainLoopback
    } else {
        Security::StartTls(tls_config(m.ca_file.as_deref())?)
    };
    let password = read_password(m, &jid, prompt)?;
    Ok(ConnectConfig {
        jid,
        password,
        servers,
        security,
        timeouts: LINK_TIMEOUTS,
        connect_timeout: CONNECT_TIMEOUT,
        max_attempts: None,
    })
}

/// How `serve --component DOMAIN` connects: as DOMAIN, to `--server` (required, and on
/// this machine), with the secret from `--secret-file`. `None` when not a component.
pub fn resolve_component(
    m: &Merged,
    args: &crate::cli::ServeArgs,
    file: &ServeFile,
) -> anyhow::Result<Option<ConnectConfig>> {
    let secret_file = args
        .secret_file
        .clone()
        .or_else(|| file.secret_file.clone());
    let Some(domain) = args.component.clone().or_else(|| file.component.clone()) else {
        if secret_file.is_some() {
            bail!("--secret-file (config: [serve] secret_file) is for --component DOMAIN");
        }
        return Ok(None);
    };
    let domain = domain.trim();
    let jid = Jid::new(domain)
        .ok()
        .filter(|j| j.node().is_none() && j.resource().is_none() && !domain.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--component {domain:?} (config: [serve] component) is not a domain such as \
                 pubsub.example.org"
            )
        })?;
    if m.server.len() > 1 {
        bail!(
            "--component connects to one server: give --server HOST:PORT once (its component \
             port), not {}",
            m.server.join(", ")
        );
    }
    // Without a port, parse_server would take the client port (5222).
    if let Some(given) = m.server.first()
        && !given.trim().rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.ends_with(':') && port.parse::<u16>().is_ok()
        })
    {
        bail!(
            "--component needs the server's component port: --server {}:PORT (such as 5347), \
             not the client port",
            given.trim()
        );
    }
    let server = match m.server.first().map(|s| parse_server(s)).transpose()? {
        Some((host, port)) if is_loopback_host(&host) => (host, port),
        Some((host, _)) => bail!(
            "--component connects over plain TCP (XEP-0114 has no TLS), so only to this \
             machine: --server 127.0.0.1:PORT, not {host:?}"
        ),
        None => bail!(
            "--component needs --server HOST:PORT: the server's component port on this \
             machine (Prosody's component_ports, ejabberd's ejabberd_service listener)"
        ),
    };
    let Some(secret_file) = secret_file else {
        bail!(
            "--component needs --secret-file PATH: the component's shared secret, in a file \
             only you can read (secrets are never taken on the command line)"
        );
    };
    let password = password_from_file(&expand_tilde(secret_file)).map_err(|e| {
        anyhow::anyhow!(
            "{}",
            format!("{e:#}").replace("password file", "secret file")
        )
    })?;
    Ok(Some(ConnectConfig {
        jid,
        password,
        servers: vec![server],
        security: Security::PlainLoopback,
        timeouts: LINK_TIMEOUTS,
        connect_timeout: CONNECT_TIMEOUT,
        max_attempts: None,
    }))
}

/// Validate merged settings and read the password. `prompt` allows an interactive prompt as
/// the last password source. At least one node must be given.
pub fn resolve(m: &Merged, prompt: bool) -> anyhow::Result<Settings> {
    resolve_nodes(m, prompt, true)
}

/// [`resolve`] for the commands that name no node, or one of their own.
pub fn resolve_any(m: &Merged, prompt: bool) -> anyhow::Result<Settings> {
    resolve_nodes(m, prompt, false)
}

fn resolve_nodes(m: &Merged, prompt: bool, need_nodes: bool) -> anyhow::Result<Settings> {
    let jid = require_jid(m)?;
    let service = match &m.service {
        Some(s) => Jid::new(s.trim()).map_err(|e| {
            anyhow::anyhow!("--service {s:?} (config: service) is not a valid JID: {e}")
        })?,
        None => Jid::new(&format!("pubsub.{}", jid.domain()))
            .map_err(|e| anyhow::anyhow!("default service for {jid}: {e}"))?,
    };
    let nodes = clean_nodes(&m.nodes);
    if nodes.is_empty() && need_nodes {
        bail!(
            "no node given: pass --node NAME (repeatable), or set nodes = [\"...\"] in the config file"
        );
    }
    for n in &nodes {
        check_node_name(n)?;
    }
    let interval = seconds(
        "--auto-publish (config: auto_publish)",
        m.auto_publish.unwrap_or(DEFAULT_INTERVAL_SECS),
        86_400.0,
    )?;
    let iq_timeout = seconds("--iq-timeout (config: iq_timeout)", m.iq_timeout, 3_600.0)?;
    if m.feed_limit == 0 || m.feed_limit > 10_000_000 {
        bail!(
            "--feed-limit (config: feed_limit) must be between 1 and 10000000, not {}",
            m.feed_limit
        );
    }
    let feed_memory = match &m.feed_memory {
        None => None,
        Some(Size::Bytes(b)) => Some(
            parse_size(&b.to_string())
                .map_err(|e| anyhow::anyhow!("--feed-memory (config: feed_memory): {e}"))?,
        ),
        Some(Size::Text(t)) => Some(
            parse_size(t)
                .map_err(|e| anyhow::anyhow!("--feed-memory (config: feed_memory): {e}"))?,
        ),
    };
    let cache_size = match &m.cache_size {
        None => crate::cache::db::DEFAULT_MAX_BYTES,
        Some(Size::Bytes(b)) => *b,
        Some(Size::Text(t)) => parse_size(t)
            .map(|b| u64::try_from(b).unwrap_or(u64::MAX))
            .map_err(|e| anyhow::anyhow!("cache_size (config file): {e}"))?,
    };
    let cache = if m.cache {
        crate::cache::db::default_dir().map(|dir| crate::cache::CacheConfig {
            path: crate::cache::db::path_for(&dir, jid.to_bare().as_str()),
            limits: crate::cache::db::Limits {
                per_node: m.feed_limit,
                max_bytes: cache_size,
            },
        })
    } else {
        None
    };
    let connect = resolve_connect_as(m, jid, prompt)?;
    Ok(Settings {
        connect,
        session: SessionConfig {
            service,
            nodes,
            subscribe: true,
            auto_publish: m.auto_publish.is_some(),
            interval,
            iq_timeout,
            resync_min_interval: AUTO_RESYNC_MIN_INTERVAL,
            publisher_session: new_publisher_session(),
            retry: RetryPolicy::DEFAULT,
            keep_unsent: false,
        },
        feed_limit: m.feed_limit,
        feed_memory,
        cache,
    })
}

/// Validate the `serve` settings (flags over the `[serve]` table of the config file).
pub fn resolve_serve(
    args: &crate::cli::ServeArgs,
    file: &ServeFile,
) -> anyhow::Result<(crate::serve::ServeConfig, PathBuf)> {
    let max_items = args
        .max_items
        .or(file.max_items)
        .unwrap_or(DEFAULT_MAX_ITEMS);
    if max_items == 0 || max_items > 10_000_000 {
        bail!(
            "--max-items (config: [serve] max_items) must be between 1 and 10000000, not {max_items}"
        );
    }
    let max_nodes = args
        .max_nodes
        .or(file.max_nodes)
        .unwrap_or(DEFAULT_MAX_NODES);
    if max_nodes == 0 {
        bail!("--max-nodes (config: [serve] max_nodes) must be at least 1");
    }
    let probe_interval = seconds(
        "--probe-interval (config: [serve] probe_interval)",
        args.probe_interval
            .or(file.probe_interval)
            .unwrap_or(DEFAULT_PROBE_INTERVAL_SECS),
        86_400.0,
    )?;
    let given = if args.admins.is_empty() {
        file.admins.clone().unwrap_or_default()
    } else {
        args.admins.clone()
    };
    let mut admins = Vec::new();
    for a in &given {
        let jid = Jid::new(a.trim()).map_err(|e| {
            anyhow::anyhow!("--admin {a:?} (config: [serve] admins) is not a valid JID: {e}")
        })?;
        admins.push(jid.to_bare().to_string());
    }
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .map_or_else(default_data_dir, expand_tilde);
    Ok((
        crate::serve::ServeConfig {
            max_items,
            max_nodes,
            admins,
            probe_interval,
            seed: rand::random(),
        },
        data_dir,
    ))
}

/// Where `serve` keeps its database by default.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("pubsub-tui")
        .join("serve")
}

/// A random id for this publisher run (8 hex digits).
pub fn new_publisher_session() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn read_password(m: &Merged, jid: &Jid, prompt: bool) -> anyhow::Result<Password> {
    if let Some(path) = &m.password_file {
        return password_from_file(path);
    }
    if let Some(cmd) = &m.password_command {
        return password_from_command(cmd);
    }
    if let Some(p) = crate::envsecret::password() {
        if p.expose().is_empty() {
            bail!("{PASSWORD_ENV} is set but empty");
        }
        return Ok(p);
    }
    // The prompt reads from the terminal itself (/dev/tty), so it works with text piped into
    // stdin too.
    if prompt && std::fs::File::open("/dev/tty").is_ok() {
        let p = rpassword::prompt_password(format!("Password for {}: ", jid.to_bare()))
            .context("reading the password")?;
        if p.is_empty() {
            bail!("empty password");
        }
        return Ok(Password::new(p));
    }
    bail!(
        "no password source: use --password-file, --password-command or {PASSWORD_ENV} \
         (passwords are never taken as a command-line argument)"
    )
}

/// Open (creating if missing) a file only its owner can read: 0600 when created, and made
/// 0600 if it was looser.
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Create `dir` (and its parents) if missing; a directory created here is private (0700).
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))
}

/// Write a file only its owner can read (0600), such as a password file.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = open_private(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.set_len(0)
        .and_then(|()| f.write_all(contents.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Read the first line of a file that only its owner can read.
pub fn password_from_file(path: &Path) -> anyhow::Result<Password> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "password file {} is readable by group or others (mode {:03o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open password file {}", path.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        bail!("password file {} is empty", path.display());
    }
    Ok(Password::new(pw))
}

/// Run a command without a shell and take the first line of its standard output.
pub fn password_from_command(cmd: &str) -> anyhow::Result<Password> {
    let words = shlex::split(cmd).with_context(|| "--password-command: unbalanced quotes")?;
    let Some((program, args)) = words.split_first() else {
        bail!("--password-command is empty");
    };
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("--password-command: cannot run {program:?}"))?;
    if !output.status.success() {
        bail!("--password-command: {program:?} failed ({})", output.status);
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| anyhow::anyhow!("--password-command: output is not UTF-8"))?;
    let pw = text.lines().next().unwrap_or("");
    if pw.is_empty() {
        bail!("--password-command: {program:?} printed no password");
    }
    Ok(Password::new(pw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_parsing() {
        assert_eq!(
            parse_server("localhost:5222").expect("valid"),
            ("localhost".into(), 5222)
        );
        assert_eq!(
            parse_server("[::1]:5222").expect("valid"),
            ("::1".into(), 5222)
        );
        // No port: the standard one.
        assert_eq!(
            parse_server("localhost").expect("valid"),
            ("localhost".into(), 5222)
        );
        assert_eq!(parse_server("[::1]").expect("valid"), ("::1".into(), 5222));
        assert_eq!(parse_server("::1").expect("valid"), ("::1".into(), 5222));
        for bad in [":5222", "host:0", "host:99999", "host:x", "[::1", ""] {
            let err = parse_server(bad).expect_err(bad);
            assert!(err.to_string().contains("config: server"), "{err}");
        }
    }

    #[test]
    fn several_servers_in_order_and_none_twice() {
        let given = ["a.example:5222", "[::1]:5223", "b.example"].map(String::from);
        assert_eq!(
            parse_servers(&given).expect("valid"),
            [
                ("a.example".to_owned(), 5222),
                ("::1".to_owned(), 5223),
                ("b.example".to_owned(), 5222)
            ]
        );
        // The same server written two ways is still one server given twice.
        let twice = ["b.example:5222", "a.example:5222", "b.example"].map(String::from);
        let err = parse_servers(&twice).expect_err("a duplicate");
        assert!(err.to_string().contains("b.example:5222"), "{err}");
        assert!(err.to_string().contains("given twice"), "{err}");
        // The config file takes one or a list.
        let path = Path::new("config.toml");
        let one = FileConfig::parse("server = \"a.example:5222\"", path).expect("one");
        assert_eq!(one.server, Some(Servers::One("a.example:5222".into())));
        let list = FileConfig::parse("server = [\"a:1\", \"b:2\"]", path).expect("a list");
        assert_eq!(
            list.server.map(Servers::into_vec),
            Some(vec!["a:1".to_owned(), "b:2".to_owned()])
        );
        let err = FileConfig::parse("server = 5222", path).expect_err("a number");
        assert!(err.to_string().contains("config.toml"), "{err}");
        let err = FileConfig::parse("iq_timeout = \"a\"", path).expect_err("a string");
        assert!(
            err.to_string().contains("expected a number") && !err.to_string().contains("f64"),
            "{err}"
        );
        let err = FileConfig::parse("feed_limit = 1.5", path).expect_err("a fraction");
        assert!(err.to_string().contains("expected a whole number"), "{err}");
        let err = FileConfig::parse("server = []", path).expect_err("an empty list");
        assert!(err.to_string().contains("empty list"), "{err}");
        for empty in ["\"\"", "[\"\"]", "\"a:1, \"", "[\"a:1\", \"\"]"] {
            let err = FileConfig::parse(&format!("server = {empty}"), path).expect_err(empty);
            assert!(err.to_string().contains("empty entry"), "{empty}: {err}");
        }
        let err = FileConfig::parse("server = [\"a:1\", 5]", path).expect_err("a number");
        assert!(err.to_string().contains("\"HOST:PORT\" string"), "{err}");
        // Commas separate servers in a string, as on the command line.
        let commas = FileConfig::parse("server = \"a:1, b:2\"", path).expect("commas");
        assert_eq!(
            commas.server.map(Servers::into_vec),
            Some(vec!["a:1".to_owned(), "b:2".to_owned()])
        );
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("::1"));
        assert!(!is_loopback_host("example.org"));
        assert!(!is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn each_run_gets_its_own_resource_unless_one_is_given() {
        let a = account_jid("alice@example.org", None).expect("valid");
        let b = account_jid("alice@example.org", None).expect("valid");
        let ra = a.resource().expect("a resource").to_string();
        assert!(ra.starts_with("pubsub-tui-") && ra.len() == 19, "{ra}");
        assert_ne!(a, b, "two runs, two resources");
        assert_eq!(
            account_jid("alice@example.org", Some("laptop"))
                .expect("valid")
                .to_string(),
            "alice@example.org/laptop"
        );
        assert_eq!(
            account_jid("alice@example.org/laptop", None)
                .expect("valid")
                .to_string(),
            "alice@example.org/laptop"
        );
        let err = account_jid("alice@example.org/laptop", Some("desk")).expect_err("twice");
        assert!(err.to_string().contains("give it once"), "{err}");
        assert!(account_jid("example.org", None).is_err());
        assert!(account_jid("a@@b", None).is_err());
    }

    #[test]
    fn sizes_read_with_units_and_bounds() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size(" 64M "), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        for (bad, why) in [
            ("64X", "the unit is K, M or G"),
            ("M", "is not a size"),
            ("-5M", "is not a size"),
            ("1K", "from 64K to 64G"),
            ("65G", "from 64K to 64G"),
            ("99999999999999999999G", "is not a size"),
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        let f = FileConfig::parse("feed_memory = '64M'\n", Path::new("c.toml")).expect("parses");
        assert_eq!(f.feed_memory, Some(Size::Text("64M".into())));
        let f = FileConfig::parse("feed_memory = 100000\n", Path::new("c.toml")).expect("parses");
        assert_eq!(f.feed_memory, Some(Size::Bytes(100_000)));
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let err = FileConfig::parse("jid = 'a@b'\npasword_file = 'x'\n", Path::new("c.toml"))
            .expect_err("unknown key must fail");
        assert!(err.to_string().contains("pasword_file"), "{err}");
        let err = FileConfig::parse("interval = 'soon'\n", Path::new("c.toml"))
            .expect_err("bad type must fail");
        assert!(err.to_string().contains("interval"), "{err}");
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.example.toml");
        let text = std::fs::read_to_string(&path).expect("example exists");
        let file = FileConfig::parse(&text, &path).expect("example parses");
        assert_eq!(
            file.nodes.as_deref(),
            Some(&["news".to_owned(), "test".to_owned()][..])
        );
    }

    #[test]
    fn tilde_expands_to_home() {
        let home = dirs::home_dir().expect("home");
        assert_eq!(expand_tilde(PathBuf::from("~/x/pw")), home.join("x/pw"));
        assert_eq!(
            expand_tilde(PathBuf::from("/abs/pw")),
            PathBuf::from("/abs/pw")
        );
    }

    fn parse(text: &str) -> FileConfig {
        FileConfig::parse(text, Path::new("c.toml")).expect("valid")
    }

    #[test]
    fn flags_override_file() {
        let file = parse("jid = 'file@x'\nnodes = ['a']\nauto_publish = 9.0\n");
        let account = AccountArgs {
            jid: Some("flag@x".into()),
            ..AccountArgs::default()
        };
        let m = merge(&account, None, None, &LogArgs::default(), file);
        assert_eq!(m.jid.as_deref(), Some("flag@x"));
        assert_eq!(m.nodes, ["a"]);
        assert_eq!(m.auto_publish, Some(9.0));
        let tui = TuiArgs {
            auto_publish: Some(2.0),
            ..TuiArgs::default()
        };
        let m = merge(
            &account,
            None,
            Some(&tui),
            &LogArgs::default(),
            parse("auto_publish = 9\n"),
        );
        assert_eq!(m.auto_publish, Some(2.0));
    }

    #[test]
    fn auto_publish_is_off_unless_asked_for() {
        let m = |text: &str| {
            merge(
                &AccountArgs::default(),
                None,
                None,
                &LogArgs::default(),
                parse(text),
            )
            .auto_publish
        };
        assert_eq!(m(""), None);
        assert_eq!(m("auto_publish = false"), None);
        assert_eq!(m("auto_publish = true"), Some(DEFAULT_INTERVAL_SECS));
        assert_eq!(m("auto_publish = 2.5"), Some(2.5));
    }

    #[test]
    fn repeated_nodes_are_followed_once() {
        let mut m = merge(
            &AccountArgs::default(),
            None,
            None,
            &LogArgs::default(),
            parse(""),
        );
        m.jid = Some("a@example.org".into());
        m.nodes = vec!["demo".into(), " news".into(), "demo".into()];
        m.insecure_plain_tcp = true;
        m.server = vec!["127.0.0.1".into()];
        m.password_command = Some("printf pw".into());
        let s = resolve(&m, false).expect("valid");
        assert_eq!(s.session.nodes, ["demo", "news"]);
        assert!(!s.session.auto_publish, "off by default");
    }

    #[test]
    fn serve_settings_come_from_flags_or_the_serve_table() {
        let file = parse("[serve]\nmax_items = 50\nadmins = ['boss@x/y']\ndata_dir = '/tmp/d'\n");
        let serve = file.serve.clone().expect("table");
        let (cfg, dir) = resolve_serve(&crate::cli::ServeArgs::default(), &serve).expect("valid");
        assert_eq!(cfg.max_items, 50);
        assert_eq!(cfg.admins, ["boss@x"]);
        assert_eq!(dir, PathBuf::from("/tmp/d"));
        let flags = crate::cli::ServeArgs {
            max_items: Some(0),
            ..crate::cli::ServeArgs::default()
        };
        let err = resolve_serve(&flags, &serve).expect_err("0 items");
        assert!(err.to_string().contains("[serve] max_items"), "{err}");
        assert!(FileConfig::parse("[serve]\nmax_itemz = 1\n", Path::new("c")).is_err());
    }

    #[test]
    fn plain_tcp_only_to_loopback() {
        let mut m = merge(
            &AccountArgs::default(),
            None,
            None,
            &LogArgs::default(),
            FileConfig::default(),
        );
        m.jid = Some("a@example.org".into());
        m.nodes = vec!["n".into()];
        m.insecure_plain_tcp = true;
        m.server = vec!["example.org:5222".into()];
        let err = resolve(&m, false).expect_err("must refuse");
        assert!(err.to_string().contains("loopback"), "{err}");
        m.server = Vec::new();
        assert!(resolve(&m, false).is_err());
    }

    #[test]
    fn loose_password_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = password_from_file(&path).expect_err("0644 must be refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            password_from_file(&path).expect("0600 is fine").expose(),
            "secret"
        );
    }

    #[test]
    fn password_command_takes_first_line_without_shell() {
        let pw = password_from_command("printf 'top secret\\nsecond'").expect("runs");
        assert_eq!(pw.expose(), "top secret");
        // No shell: a pipe is just an argument to printf, not a pipeline.
        let pw = password_from_command("printf '%s' 'a|b'").expect("runs");
        assert_eq!(pw.expose(), "a|b");
        assert!(password_from_command("false").is_err());
        assert!(format!("{pw:?}").contains("redacted"));
    }
}
