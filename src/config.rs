//! Settings: the config file, merged under the flags (and their environment variables), then
//! validated into the configurations the network core takes. Also the password sources.
//!
//! Order of precedence for every setting: flag > environment variable > config file > default.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tokio_xmpp::xmlstream::Timeouts;
use xmpp_parsers::jid::Jid;

use crate::cli::ConnArgs;
use crate::xmpp::connect::{ConnectConfig, Security, tls_config};
use crate::xmpp::session::SessionConfig;

/// Resource used when `--jid` is a bare JID. Stable on purpose: a new random resource per run
/// would leave one stale full-JID subscription per run on the service.
pub const DEFAULT_RESOURCE: &str = "pubsub-tui";
pub const DEFAULT_INTERVAL_SECS: f64 = 5.0;
pub const DEFAULT_FEED_LIMIT: usize = 10_000;
pub const DEFAULT_IQ_TIMEOUT_SECS: f64 = 30.0;
/// Environment variable holding the password (read once at start).
pub const PASSWORD_ENV: &str = "PUBSUB_TUI_PASSWORD";
/// Dead-link detection: 20 s of silence, then a ping that must be answered within 10 s.
pub const LINK_TIMEOUTS: Timeouts = Timeouts {
    read_timeout: Duration::from_secs(20),
    response_timeout: Duration::from_secs(10),
};
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Automatic (gap-triggered) resyncs of one node start at most this often.
pub const AUTO_RESYNC_MIN_INTERVAL: Duration = Duration::from_secs(5);

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

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub jid: Option<String>,
    pub server: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure_plain_tcp: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub service: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub interval: Option<f64>,
    pub auto_publish: Option<bool>,
    pub feed_limit: Option<usize>,
    pub iq_timeout: Option<f64>,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<String>,
}

impl FileConfig {
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
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

pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("pubsub-tui").join("config.toml"))
}

/// Flags and config file merged, before anything is validated or read.
#[derive(Debug, Clone)]
pub struct Merged {
    pub jid: Option<String>,
    pub server: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure_plain_tcp: bool,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub service: Option<String>,
    pub nodes: Vec<String>,
    pub interval: f64,
    pub auto_publish: bool,
    pub feed_limit: usize,
    pub iq_timeout: f64,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<String>,
}

/// `~/x` means `$HOME/x` in the config file (shells expand it on the command line).
pub fn expand_tilde(path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

pub fn merge(args: &ConnArgs, file: FileConfig) -> Merged {
    let file = FileConfig {
        ca_file: file.ca_file.map(expand_tilde),
        password_file: file.password_file.map(expand_tilde),
        log_file: file.log_file.map(expand_tilde),
        ..file
    };
    Merged {
        jid: args.jid.clone().or(file.jid),
        server: args.server.clone().or(file.server),
        ca_file: args.ca_file.clone().or(file.ca_file),
        insecure_plain_tcp: args.insecure_plain_tcp || file.insecure_plain_tcp.unwrap_or(false),
        password_file: args.password_file.clone().or(file.password_file),
        password_command: args.password_command.clone().or(file.password_command),
        service: args.service.clone().or(file.service),
        nodes: if args.nodes.is_empty() {
            file.nodes.unwrap_or_default()
        } else {
            args.nodes.clone()
        },
        interval: args
            .interval
            .or(file.interval)
            .unwrap_or(DEFAULT_INTERVAL_SECS),
        auto_publish: !args.no_auto_publish && file.auto_publish.unwrap_or(true),
        feed_limit: args
            .feed_limit
            .or(file.feed_limit)
            .unwrap_or(DEFAULT_FEED_LIMIT),
        iq_timeout: args
            .iq_timeout
            .or(file.iq_timeout)
            .unwrap_or(DEFAULT_IQ_TIMEOUT_SECS),
        log_file: args.log_file.clone().or(file.log_file),
        log_level: args.log_level.clone().or(file.log_level),
    }
}

/// Parse `HOST:PORT` (IPv6 as `[::1]:5222`).
pub fn parse_server(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("--server {s:?}: expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("--server {s:?}: the host is empty");
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("--server {s:?}: {port:?} is not a port number (1-65535)"))?;
    Ok((host.to_owned(), port))
}

/// True for `localhost` and loopback IP literals.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The account JID with a resource (the default one if the JID is bare).
pub fn account_jid(s: &str) -> anyhow::Result<Jid> {
    let jid =
        Jid::new(s.trim()).map_err(|e| anyhow::anyhow!("--jid {s:?} is not a valid JID: {e}"))?;
    if jid.node().is_none() {
        bail!("--jid {s:?} has no user part; expected user@domain");
    }
    if jid.resource().is_some() {
        return Ok(jid);
    }
    Jid::new(&format!("{jid}/{DEFAULT_RESOURCE}")).map_err(|e| anyhow::anyhow!("--jid {s:?}: {e}"))
}

fn seconds(name: &str, value: f64, max: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value <= 0.0 || value > max {
        bail!("{name} must be a number of seconds above 0 and at most {max}, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

fn check_node_name(node: &str) -> anyhow::Result<()> {
    if node.trim().is_empty() {
        bail!("a node name is empty");
    }
    if node.chars().any(char::is_control) || node.chars().count() > 1024 {
        bail!("node name {node:?} has control characters or is too long");
    }
    Ok(())
}

/// Everything a front end needs to start the network core.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect: ConnectConfig,
    pub session: SessionConfig,
    pub feed_limit: usize,
}

fn require_jid(m: &Merged) -> anyhow::Result<Jid> {
    let Some(jid) = &m.jid else {
        bail!(
            "no account given: pass --jid user@domain (or set jid in the config file, or \
             PUBSUB_TUI_JID).\nTo try pubsub-tui without an account, run `pubsub-tui demo`."
        );
    };
    account_jid(jid)
}

/// Validate the account and connection settings and read the password. `prompt` allows an
/// interactive prompt as the last password source.
pub fn resolve_connect(m: &Merged, prompt: bool) -> anyhow::Result<ConnectConfig> {
    let jid = require_jid(m)?;
    let server = m.server.as_deref().map(parse_server).transpose()?;
    let security = if m.insecure_plain_tcp {
        match &server {
            Some((host, _)) if is_loopback_host(host) => Security::PlainLoopback,
            Some((host, _)) => {
                bail!("--insecure-plain-tcp is only allowed to a loopback address, not {host:?}")
            }
            None => bail!("--insecure-plain-tcp needs --server with a loopback address"),
        }
    } else {
        Security::StartTls(tls_config(m.ca_file.as_deref())?)
    };
    let password = read_password(m, &jid, prompt)?;
    Ok(ConnectConfig {
        jid,
        password,
        server,
        security,
        timeouts: LINK_TIMEOUTS,
        connect_timeout: CONNECT_TIMEOUT,
        max_attempts: None,
    })
}

/// Validate merged settings and read the password. `prompt` allows an interactive prompt as
/// the last password source.
pub fn resolve(m: &Merged, prompt: bool) -> anyhow::Result<Settings> {
    let jid = require_jid(m)?;
    let service = match &m.service {
        Some(s) => Jid::new(s.trim())
            .map_err(|e| anyhow::anyhow!("--service {s:?} is not a valid JID: {e}"))?,
        None => Jid::new(&format!("pubsub.{}", jid.domain()))
            .map_err(|e| anyhow::anyhow!("default service for {jid}: {e}"))?,
    };
    if m.nodes.is_empty() {
        bail!(
            "no node given: pass --node NAME (repeatable), or set nodes = [\"...\"] in the config file"
        );
    }
    for n in &m.nodes {
        check_node_name(n)?;
    }
    let interval = seconds("--interval", m.interval, 86_400.0)?;
    let iq_timeout = seconds("--iq-timeout", m.iq_timeout, 3_600.0)?;
    if m.feed_limit == 0 || m.feed_limit > 10_000_000 {
        bail!(
            "--feed-limit must be between 1 and 10000000, not {}",
            m.feed_limit
        );
    }
    let connect = resolve_connect(m, prompt)?;
    Ok(Settings {
        connect,
        session: SessionConfig {
            service,
            nodes: m.nodes.clone(),
            subscribe: true,
            auto_publish: m.auto_publish,
            interval,
            iq_timeout,
            resync_min_interval: AUTO_RESYNC_MIN_INTERVAL,
            publisher_session: new_publisher_session(),
        },
        feed_limit: m.feed_limit,
    })
}

/// Validate the `serve` flags.
pub fn resolve_serve(args: &crate::cli::ServeArgs) -> anyhow::Result<crate::serve::ServeConfig> {
    if args.max_items == 0 || args.max_items > 10_000_000 {
        bail!(
            "--max-items must be between 1 and 10000000, not {}",
            args.max_items
        );
    }
    if args.max_nodes == 0 {
        bail!("--max-nodes must be at least 1");
    }
    let probe_interval = seconds("--probe-interval", args.probe_interval, 86_400.0)?;
    let mut admins = Vec::new();
    for a in &args.admins {
        let jid = Jid::new(a.trim())
            .map_err(|e| anyhow::anyhow!("--admin {a:?} is not a valid JID: {e}"))?;
        admins.push(jid.to_bare().to_string());
    }
    Ok(crate::serve::ServeConfig {
        max_items: args.max_items,
        max_nodes: args.max_nodes,
        admins,
        probe_interval,
        seed: rand::random(),
    })
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
    if prompt && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
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
        for bad in ["localhost", ":5222", "host:0", "host:99999", "host:x"] {
            assert!(parse_server(bad).is_err(), "{bad} should be refused");
        }
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
    fn bare_jid_gets_default_resource() {
        assert_eq!(
            account_jid("alice@example.org").expect("valid").to_string(),
            "alice@example.org/pubsub-tui"
        );
        assert_eq!(
            account_jid("alice@example.org/laptop")
                .expect("valid")
                .to_string(),
            "alice@example.org/laptop"
        );
        assert!(account_jid("example.org").is_err());
        assert!(account_jid("a@@b").is_err());
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

    #[test]
    fn flags_override_file() {
        let file = FileConfig::parse(
            "jid = 'file@x'\nnodes = ['a']\ninterval = 9.0\nauto_publish = false\n",
            Path::new("c.toml"),
        )
        .expect("valid");
        let args = ConnArgs {
            jid: Some("flag@x".into()),
            ..ConnArgs::default()
        };
        let m = merge(&args, file);
        assert_eq!(m.jid.as_deref(), Some("flag@x"));
        assert_eq!(m.nodes, ["a"]);
        assert!((m.interval - 9.0).abs() < f64::EPSILON);
        assert!(!m.auto_publish);
    }

    #[test]
    fn plain_tcp_only_to_loopback() {
        let mut m = merge(&ConnArgs::default(), FileConfig::default());
        m.jid = Some("a@example.org".into());
        m.nodes = vec!["n".into()];
        m.insecure_plain_tcp = true;
        m.server = Some("example.org:5222".into());
        let err = resolve(&m, false).expect_err("must refuse");
        assert!(err.to_string().contains("loopback"), "{err}");
        m.server = None;
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
