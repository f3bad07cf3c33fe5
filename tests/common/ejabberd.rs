//! A private ejabberd for the tests: its own config, spool and port in a temp dir, on
//! 127.0.0.1 (epmd too), stopped by the PID it writes. As root, `ejabberdctl` re-runs itself
//! as the `ejabberd` user, so the temp dir is handed to that user.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Ejabberd {
    dir: tempfile::TempDir,
    node: String,
    child: Option<Child>,
    pub port: u16,
}

pub fn available() -> bool {
    Command::new("ejabberdctl")
        .arg("help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// How to set up one node.
#[derive(Default)]
struct Setup<'a> {
    stream_management: bool,
    /// More `mod_pubsub` options (YAML lines, indented 4).
    pubsub_options: &'a str,
    /// Keep pubsub in this PostgreSQL (and its password for the `ejabberd` role).
    sql: Option<(u16, &'a str)>,
    /// The Erlang cookie the nodes of one cluster share.
    cookie: Option<&'a str>,
    /// The node name's prefix (`pubsubtui` by default).
    name: &'a str,
}

impl Ejabberd {
    pub fn start(stream_management: bool) -> Self {
        Self::start_with(stream_management, "")
    }

    /// [`Ejabberd::start`] with more `mod_pubsub` options (YAML lines, indented 4).
    pub fn start_with(stream_management: bool, pubsub_options: &str) -> Self {
        Self::launch(&Setup {
            stream_management,
            pubsub_options,
            ..Setup::default()
        })
    }

    fn launch(setup: &Setup<'_>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pubsub-tui-ejabberd-")
            .tempdir()
            .expect("tempdir");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let d = dir.path();
        std::fs::create_dir_all(d.join("logs")).expect("mkdir");
        std::fs::create_dir_all(d.join("spool")).expect("mkdir");
        let sm = if setup.stream_management {
            "  mod_stream_mgmt:\n    max_ack_queue: infinity\n"
        } else {
            ""
        };
        let (sql, pubsub_db) = match setup.sql {
            Some((pg_port, password)) => (
                format!(
                    "sql_type: pgsql\nsql_server: \"127.0.0.1\"\nsql_port: {pg_port}\nsql_database: ejabberd\n\
                     sql_username: ejabberd\nsql_password: \"{password}\"\nsql_pool_size: 5\n"
                ),
                "    db_type: sql\n",
            ),
            None => (String::new(), ""),
        };
        let pubsub_options = setup.pubsub_options;
        std::fs::write(
            d.join("ejabberd.yml"),
            format!(
                "loglevel: warning\nhosts:\n  - localhost\nlisten:\n  -\n    port: {port}\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n    max_stanza_size: 262144\n    shaper: none\n    access: c2s\n{sql}\
                 acl:\n  local:\n    user_regexp: \"\"\naccess_rules:\n  local:\n    allow: local\n  c2s:\n    allow: all\n  pubsub_createnode:\n    allow: local\nshaper_rules: {{}}\n\
                 modules:\n  mod_disco: {{}}\n  mod_ping: {{}}\n  mod_roster: {{}}\n{sm}  mod_pubsub:\n{pubsub_db}    access_createnode: pubsub_createnode\n    plugins:\n      - flat\n    default_node_config:\n      max_items: 1000\n{pubsub_options}"
            ),
        )
        .expect("write config");
        // Erlang's distribution on loopback only; one cookie for the nodes of a cluster.
        let cookie = setup
            .cookie
            .map_or_else(String::new, |c| format!("-setcookie {c} "));
        let erl =
            format!("ERL_OPTIONS=\"{cookie}-kernel inet_dist_use_interface {{127,0,0,1}}\"\n");
        std::fs::write(
            d.join("ejabberdctl.cfg"),
            format!(
                "ERL_EPMD_ADDRESS=127.0.0.1\nEJABBERD_PID_PATH={}\n{erl}",
                d.join("ejabberd.pid").display()
            ),
        )
        .expect("write ctl config");
        std::fs::write(d.join("inetrc"), "").expect("write inetrc");
        let status = Command::new("chown")
            .args(["-R", "ejabberd:"])
            .arg(d)
            .status()
            .expect("chown");
        assert!(status.success(), "chown to the ejabberd user failed");
        let name = if setup.name.is_empty() {
            "pubsubtui"
        } else {
            setup.name
        };
        let mut this = Self {
            dir,
            node: format!("{name}{port}@localhost"),
            child: None,
            port,
        };
        let child = this
            .ctl()
            .arg("foreground")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ejabberdctl starts");
        this.child = Some(child);
        this.wait_for_port();
        this
    }

    fn wait_for_port(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ejabberd did not open port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until `ejabberdctl status` says the node runs (at most 30 s).
    fn wait_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.ctl().arg("status").output().expect("ejabberdctl");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ejabberd {} not started within 30 s: {}\n{}",
                self.node,
                String::from_utf8_lossy(&out.stdout),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The end of the node's logs, to say why something failed.
    fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["error.log", "ejabberd.log", "crash.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join("logs").join(name)) {
                let start = text.len().saturating_sub(2000);
                let start = (start..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                out.push_str("--- ");
                out.push_str(name);
                out.push('\n');
                out.push_str(&text[start..]);
                out.push('\n');
            }
        }
        out
    }

    /// Stop this node at once, as a crash would (`kill -KILL`).
    pub fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill")
                .args(["-KILL", pid.trim()])
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_file(self.pid_file());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn ctl(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("ejabberdctl");
        c.current_dir(d)
            .arg("--config-dir")
            .arg(d)
            .arg("--config")
            .arg(d.join("ejabberd.yml"))
            .arg("--ctl-config")
            .arg(d.join("ejabberdctl.cfg"))
            .arg("--logs")
            .arg(d.join("logs"))
            .arg("--spool")
            .arg(d.join("spool"))
            .arg("--node")
            .arg(&self.node);
        c
    }

    pub fn register(&self, user: &str, password: &str) {
        let out = self
            .ctl()
            .args(["register", user, "localhost", password])
            .output()
            .expect("ejabberdctl");
        assert!(
            out.status.success(),
            "register {user}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// The node's process, from the PID file it writes.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("ejabberd.pid")
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The tools a cluster on PostgreSQL needs besides ejabberd: PostgreSQL's programs, Erlang's
/// PostgreSQL driver and ejabberd's schema. What is missing, if anything.
pub fn cluster_missing() -> Option<String> {
    for tool in ["initdb", "postgres", "pg_isready", "psql"] {
        if pg_bin(tool).is_none() {
            return Some(format!("PostgreSQL's {tool} (Debian: postgresql)"));
        }
    }
    let driver = std::fs::read_dir("/usr/lib/erlang/lib").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("p1_pgsql-"))
    });
    if !driver {
        return Some("Erlang's PostgreSQL driver (Debian: erlang-p1-pgsql)".into());
    }
    if !std::path::Path::new(PG_SCHEMA).exists() {
        return Some(format!("ejabberd's schema {PG_SCHEMA}"));
    }
    None
}

const PG_SCHEMA: &str = "/usr/share/ejabberd/sql/pg.sql";

/// A PostgreSQL program: on the PATH, or where Debian keeps it (`/usr/lib/postgresql/N/bin`,
/// the newest N).
fn pg_bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.is_file())
            .collect();
        versions.sort_by_key(|p| {
            p.components()
                .nth(4)
                .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
        });
        versions.pop()
    })
}

/// Run as the `ejabberd` user (PostgreSQL refuses root). `setpriv` execs, so the child's PID is
/// the program's own.
fn as_ejabberd(program: &std::path::Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=ejabberd",
        "--regid=ejabberd",
        "--clear-groups",
        "--",
    ])
    .arg(program);
    c
}

/// A private PostgreSQL: its own data in a temp dir, on a free loopback port, run as the
/// `ejabberd` user, with a database `ejabberd` that holds ejabberd's schema. Stopped by its PID.
pub struct Postgres {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// The `ejabberd` role's password (random).
    pub password: String,
}

impl Postgres {
    pub fn start() -> Self {
        let tool = |name: &str| pg_bin(name).unwrap_or_else(|| panic!("no {name}"));
        let dir = tempfile::Builder::new()
            .prefix("pubsub-tui-postgres-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let status = Command::new("chown")
            .arg("ejabberd:")
            .arg(d)
            .status()
            .expect("chown");
        assert!(status.success(), "chown to the ejabberd user failed");
        let out = as_ejabberd(&tool("initdb"))
            .arg("-D")
            .arg(d.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let log = std::fs::File::create(d.join("postgres.log")).expect("log file");
        let child = as_ejabberd(&tool("postgres"))
            .arg("-D")
            .arg(d.join("data"))
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
            ])
            .arg(format!("unix_socket_directories={}", d.display()))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let password = pubsub_tui::prosody::random_password();
        let this = Self {
            dir,
            child: Some(child),
            port,
            password,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(tool("pg_isready"))
                .args(["-q", "-h"])
                .arg(this.dir.path())
                .args(["-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            let log = std::fs::read_to_string(this.dir.path().join("postgres.log"));
            assert!(
                Instant::now() < deadline,
                "PostgreSQL not ready within 30 s: {log:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        this.psql(
            "postgres",
            "postgres",
            &[
                "-c",
                &format!("CREATE ROLE ejabberd LOGIN PASSWORD '{}'", this.password),
                "-c",
                "CREATE DATABASE ejabberd OWNER ejabberd",
            ],
        );
        this.psql("ejabberd", "ejabberd", &["-f", PG_SCHEMA]);
        this
    }

    /// Run psql as `user` on `db`: `postgres` through the socket (trusted), others over TCP
    /// with their password.
    pub fn psql(&self, user: &str, db: &str, args: &[&str]) -> String {
        let mut c = Command::new(pg_bin("psql").expect("psql"));
        if user == "postgres" {
            c.arg("-h").arg(self.dir.path());
        } else {
            c.args(["-h", "127.0.0.1"])
                .env("PGPASSWORD", &self.password);
        }
        let out = c
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-At"])
            .args(args)
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: PostgreSQL's fast shutdown; its own processes end with it.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two ejabberd nodes joined into one cluster (`join_cluster`), pubsub on a private
/// PostgreSQL. Accounts live in mnesia, which the cluster shares.
pub struct Cluster {
    pub a: Ejabberd,
    pub b: Ejabberd,
    /// Declared last: dropped after the nodes that use it.
    pub pg: Postgres,
}

impl Cluster {
    pub fn start() -> Self {
        let pg = Postgres::start();
        let cookie = format!("pubsubtui{}", pubsub_tui::prosody::random_password());
        let node = |name| {
            Ejabberd::launch(&Setup {
                sql: Some((pg.port, &pg.password)),
                cookie: Some(&cookie),
                name,
                ..Setup::default()
            })
        };
        let a = node("pubsubtuiA");
        let b = node("pubsubtuiB");
        a.wait_started();
        b.wait_started();
        // It restarts B's ejabberd (and empties B's mnesia: register accounts after it). On a
        // loaded machine the control connection to B has failed once ("nodedown"): tried
        // again, a few times.
        let mut tries = 0;
        loop {
            let out = b
                .ctl()
                .args(["join_cluster", &a.node])
                .output()
                .expect("ejabberdctl");
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(
                tries < 5,
                "join_cluster: {}{}\nB's log: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                b.log_tail()
            );
            std::thread::sleep(Duration::from_secs(1));
            b.wait_started();
        }
        b.wait_for_port();
        let listed = a.ctl().arg("list_cluster").output().expect("ejabberdctl");
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed.contains(&a.node) && listed.contains(&b.node),
            "both nodes in the cluster: {listed}"
        );
        Self { a, b, pg }
    }
}
