//! A private Prosody: its own config, data and port in a temp dir, listening on 127.0.0.1 only,
//! stopped by its PID. The demo and the tests use the same code.
//!
//! Prosody's pubsub component lets only admins create nodes and defaults to
//! `publish_model=publishers`, so [`Prosody::start`] makes an `admin` account; the caller
//! creates open nodes with it (see `demo.rs` and the tests).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub const DOMAIN: &str = "localhost";
pub const PUBSUB: &str = "pubsub.localhost";
/// The external component (XEP-0114) a private Prosody accepts: `serve --component`.
pub const COMPONENT: &str = "relay.localhost";
pub const ADMIN: &str = "admin";

/// The command that installs Prosody on Debian and Ubuntu.
pub const INSTALL_HINT: &str = "sudo apt-get install prosody";

#[derive(Debug, Clone)]
pub struct Options {
    /// Keep pubsub items in memory (fast) instead of on disk (survives restarts).
    pub memory_storage: bool,
    /// Upper bound for a node's `max_items`.
    pub max_items_cap: u32,
    /// PEM certificate and key for STARTTLS; plain TCP only when `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Offer XEP-0198 stream management (resumption after a lost connection).
    pub stream_management: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            memory_storage: true,
            max_items_cap: 10_000,
            tls: None,
            stream_management: true,
        }
    }
}

/// A running private Prosody. Dropping it kills the process.
#[derive(Debug)]
pub struct Prosody {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub admin_password: String,
    /// The port where [`COMPONENT`] connects (XEP-0114), and its shared secret.
    pub component_port: u16,
    pub component_secret: String,
}

/// Is the `prosody` binary installed? (`Err` says how to install it.)
pub fn available() -> anyhow::Result<()> {
    match Command::new("prosodyctl")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(_) => bail!(
            "Prosody is not installed (prosodyctl not found). Install it with: {INSTALL_HINT}"
        ),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn lua_str(s: &Path) -> String {
    format!("{:?}", s.display().to_string())
}

/// The file in a private Prosody's directory naming the process that started it.
const OWNER_FILE: &str = "owner";
/// The prefix of a private Prosody's temp dir.
const DIR_PREFIX: &str = "pubsub-tui-prosody-";

/// The start time of a process (field 22 of `/proc/PID/stat`), which tells a process from a
/// later one that got the same PID.
fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19).map(str::to_owned)
}

/// `PID STARTTIME` of this process.
fn owner_stamp() -> String {
    let pid = std::process::id().to_string();
    let start = start_time(&pid).unwrap_or_default();
    format!("{pid} {start}")
}

/// Stop private Prosodies left behind by a process that is gone (killed with -9, say), and
/// remove their directories. Returns what was done, one line each.
pub fn clean_stale() -> Vec<String> {
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return done;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_ours = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        if !is_ours {
            continue;
        }
        let mut words = owner.split_whitespace();
        let (Some(pid), start) = (words.next(), words.next()) else {
            continue;
        };
        if start_time(pid).is_some_and(|now| Some(now.as_str()) == start) {
            continue; // its owner is alive
        }
        if let Ok(pid) = std::fs::read_to_string(dir.join("prosody.pid")) {
            let pid = pid.trim();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let config = dir.join("prosody.cfg.lua");
            let config = config.to_string_lossy();
            // Only the Prosody of this directory, by its PID.
            if !pid.is_empty()
                && cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg == config.as_bytes())
            {
                stop_pid(pid);
                done.push(format!("stopped a private Prosody left behind (PID {pid})"));
            }
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            done.push(format!("removed {}", dir.display()));
        }
    }
    done
}

/// SIGTERM, then SIGKILL if it is still there after 2 s.
fn stop_pid(pid: &str) {
    let signal = |sig: &str| {
        let _ = Command::new("kill")
            .args([sig, pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal("-KILL");
}

pub fn random_password() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Prosody {
    /// Write a config, create the admin account, start Prosody and wait for its port.
    pub fn start(opts: &Options) -> anyhow::Result<Self> {
        available()?;
        for cleaned in clean_stale() {
            tracing::info!("{cleaned}");
        }
        let dir = tempfile::Builder::new()
            .prefix("pubsub-tui-prosody-")
            .tempdir()
            .context("creating a temp dir for Prosody")?;
        let port = free_port()?;
        let component_port = free_port()?;
        let component_secret = random_password();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let config = dir.path().join("prosody.cfg.lua");
        let storage = if opts.memory_storage {
            "storage = { pubsub_data = \"memory\", pubsub_nodes = \"memory\" }"
        } else {
            ""
        };
        let (tls_global, require_encryption, disabled) = match &opts.tls {
            Some((cert, key)) => (
                format!(
                    "ssl = {{ certificate = {}; key = {} }}",
                    lua_str(cert),
                    lua_str(key)
                ),
                "true",
                "",
            ),
            // Prosody offers STARTTLS even without a certificate; plain means plain.
            None => (String::new(), "false", ", \"tls\""),
        };
        let text = format!(
            r#"-- private Prosody for pubsub-tui (generated)
run_as_root = true
daemonize = false
pidfile = {pid}
data_path = {data}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {log} }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
component_ports = {{ {component_port} }}
component_interface = "127.0.0.1"
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_direct_tls_ports = {{ }}
network_settings = {{ nagle = false }}
admins = {{ "{ADMIN}@{DOMAIN}" }}
modules_enabled = {{ "roster", "saslauth", "disco", "ping", "posix"{tls_module}{smacks} }}
modules_disabled = {{ "s2s", "offline", "limits"{disabled} }}
authentication = "internal_hashed"
c2s_require_encryption = {require_encryption}
allow_unencrypted_plain_auth = true
{tls_global}

VirtualHost "{DOMAIN}"

Component "{PUBSUB}" "pubsub"
    pubsub_max_items = {cap}
    -- Prosody's storage refuses items past 1,000 per node (quota-limit) unless told, and
    -- checks the quota before it evicts: room for more than a full node.
    storage_archive_item_limit = {quota}
    {storage}

Component "{COMPONENT}"
    component_secret = {secret}
"#,
            secret = lua_str(Path::new(&component_secret)),
            pid = lua_str(&dir.path().join("prosody.pid")),
            data = lua_str(&data),
            log = lua_str(&dir.path().join("prosody.log")),
            cap = opts.max_items_cap,
            quota = u64::from(opts.max_items_cap) * 2,
            tls_module = if opts.tls.is_some() { ", \"tls\"" } else { "" },
            smacks = if opts.stream_management {
                ", \"smacks\""
            } else {
                ""
            },
        );
        std::fs::write(&config, text)?;
        let mut this = Self {
            dir,
            config,
            child: None,
            port,
            admin_password: random_password(),
            component_port,
            component_secret,
        };
        let admin_pw = this.admin_password.clone();
        this.register(ADMIN, &admin_pw)?;
        this.spawn()?;
        Ok(this)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt as _;
        std::fs::write(self.dir.path().join(OWNER_FILE), owner_stamp())
            .context("writing the owner file of the private Prosody")?;
        let child = Command::new("prosody")
            .arg("--config")
            .arg(&self.config)
            .arg("-F")
            // Its own process group: a terminal's SIGHUP (or Ctrl-C) goes to us, and we stop
            // it, rather than to Prosody, which would reload on SIGHUP and stay behind.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting Prosody ({INSTALL_HINT} if it is missing)"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "Prosody exited at start ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "Prosody did not open port {} within 15 s; its log:\n{}",
            self.port,
            self.log_tail()
        );
    }

    /// The last lines of Prosody's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Create an account (works whether or not the server is running).
    pub fn register(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, DOMAIN, password])
            .stdin(Stdio::null())
            .output()
            .context("running prosodyctl register")?;
        if !out.status.success() {
            bail!(
                "prosodyctl register {user} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server address as `--server` takes it.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill the process (by its PID) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port and data (after [`Prosody::stop`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
    }
}
