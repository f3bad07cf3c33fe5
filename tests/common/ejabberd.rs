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

impl Ejabberd {
    pub fn start(stream_management: bool) -> Self {
        Self::start_with(stream_management, "")
    }

    /// [`Ejabberd::start`] with more `mod_pubsub` options (YAML lines, indented 4).
    pub fn start_with(stream_management: bool, pubsub_options: &str) -> Self {
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
        let sm = if stream_management {
            "  mod_stream_mgmt:\n    max_ack_queue: infinity\n"
        } else {
            ""
        };
        std::fs::write(
            d.join("ejabberd.yml"),
            format!(
                "loglevel: warning\nhosts:\n  - localhost\nlisten:\n  -\n    port: {port}\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n    max_stanza_size: 262144\n    shaper: none\n    access: c2s\n\
                 acl:\n  local:\n    user_regexp: \"\"\naccess_rules:\n  local:\n    allow: local\n  c2s:\n    allow: all\n  pubsub_createnode:\n    allow: local\nshaper_rules: {{}}\n\
                 modules:\n  mod_disco: {{}}\n  mod_ping: {{}}\n  mod_roster: {{}}\n{sm}  mod_pubsub:\n    access_createnode: pubsub_createnode\n    plugins:\n      - flat\n    default_node_config:\n      max_items: 1000\n{pubsub_options}"
            ),
        )
        .expect("write config");
        std::fs::write(
            d.join("ejabberdctl.cfg"),
            format!(
                "ERL_EPMD_ADDRESS=127.0.0.1\nEJABBERD_PID_PATH={}\n",
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
        let mut this = Self {
            dir,
            node: format!("pubsubtui{port}@localhost"),
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ejabberd did not open port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        this
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

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("ejabberd.pid")
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
