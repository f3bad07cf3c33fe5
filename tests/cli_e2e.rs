//! The real binary: `publish` and `watch` end to end against Prosody, and clear errors for bad
//! flags, config files and password files.

mod common;

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::{self, Options, Prosody};

const BIN: &str = env!("CARGO_BIN_EXE_pubsub-tui");

fn base(server: &Prosody, user: &str, password: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--jid", &format!("{user}@{}", prosody::DOMAIN)])
        .args(["--server", &server.server()])
        .arg("--insecure-plain-tcp")
        .args(["--service", prosody::PUBSUB])
        .env("PUBSUB_TUI_PASSWORD", password)
        .env_remove("PUBSUB_TUI_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent");
    c
}

fn json_lines_until(
    reader: &mut impl std::io::BufRead,
    secs: u64,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut lines = Vec::new();
    let mut buf = String::new();
    while Instant::now() < deadline {
        buf.clear();
        if reader.read_line(&mut buf).expect("read") == 0 {
            break;
        }
        let v: serde_json::Value =
            serde_json::from_str(buf.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {buf}"));
        let stop = done(&v);
        lines.push(v);
        if stop {
            return lines;
        }
    }
    panic!("condition not met within {secs} s; lines: {lines:#?}");
}

/// The password came in the environment; once read, /proc/PID/environ no longer has it (the
/// variable's name stays, its value is blanked).
fn assert_password_not_in_environ(pid: u32, password: &str) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let has = |needle: &[u8]| environ.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"PUBSUB_TUI_PASSWORD="), "the variable was passed");
    assert!(
        !has(password.as_bytes()),
        "the password is still in /proc/PID/environ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_watch_end_to_end() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["test"]).await;
    let (_, alice_pw) = account(&server, "alice", "x");
    let (_, bob_pw) = account(&server, "bob", "x");

    // One-shot publish: prints the item id, exits 0.
    let out = base(&server, "alice", &alice_pw)
        .args(["--node", "test", "publish", "first <item>"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first_id = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(first_id.ends_with("-1"), "id {first_id:?}");

    // watch: the stored item first, then live ones.
    let mut watch = base(&server, "bob", &bob_pw)
        .args(["--node", "test", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch starts");
    let mut reader = BufReader::new(watch.stdout.take().expect("stdout"));
    let lines = json_lines_until(&mut reader, 20, |v| v["kind"] == "resync");
    let stored: Vec<_> = lines.iter().filter(|v| v["kind"] == "stored").collect();
    assert_eq!(stored.len(), 1, "{lines:#?}");
    assert_eq!(stored[0]["id"], first_id.as_str());
    assert_eq!(stored[0]["text"], "first <item>");
    assert_eq!(stored[0]["seq"], 1);
    assert_eq!(stored[0]["sender"], "alice@localhost/pubsub-tui");

    assert_password_not_in_environ(watch.id(), &bob_pw);

    // Text from stdin.
    let mut p = base(&server, "alice", &alice_pw)
        .args(["--node", "test", "publish"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    std::io::Write::write_all(&mut p.stdin.take().expect("stdin"), b"from stdin\n").expect("write");
    let out = p.wait_with_output().expect("waits");
    assert!(out.status.success());
    let lines = json_lines_until(&mut reader, 20, |v| v["kind"] == "item");
    let item = lines.last().expect("a line");
    assert_eq!(item["text"], "from stdin");
    assert_eq!(item["node"], "test");
    assert_eq!(item["format"], "native");
    assert!(item["session"].is_string());

    // Ctrl-C ends watch cleanly.
    let status = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = watch.wait().expect("watch exits");
    assert!(status.success(), "watch exit status {status}");

    // A failed publish exits non-zero with a clear message.
    let out = base(&server, "alice", &alice_pw)
        .args(["--node", "no-such-node", "publish", "x"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("publish to no-such-node failed: forbidden"),
        "{err}"
    );

    // Even at trace level, the password never reaches the log (tokio-xmpp would log the
    // SASL exchange; its targets are capped).
    let log = tempfile::NamedTempFile::new().expect("tempfile");
    let out = base(&server, "alice", &alice_pw)
        .args(["--node", "test", "--log-level", "trace", "--log-file"])
        .arg(log.path())
        .args(["publish", "traced"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(log.path()).expect("log");
    assert!(text.contains("TRACE"), "the log is at trace level");
    assert!(
        !text.contains(&alice_pw),
        "the password is in the trace log"
    );

    // Bad credentials: a clear final error, quickly.
    let started = Instant::now();
    let out = base(&server, "alice", "wrong")
        .args(["--node", "test", "publish", "x"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rejected the credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn run_err(args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env_remove("PUBSUB_TUI_PASSWORD")
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("runs");
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "jid = 'a@localhost'\nnodez = ['x']\n").expect("write");
    let err = run_err(&["--config", cfg.to_str().expect("path"), "watch"], &[]);
    assert!(
        err.contains("unknown field") && err.contains("nodez"),
        "{err}"
    );

    let err = run_err(&["watch"], &[]);
    assert!(
        err.contains("no account given") && err.contains("pubsub-tui demo"),
        "{err}"
    );

    let err = run_err(&["--password", "x"], &[]);
    assert!(err.contains("--password"), "{err}");

    let err = run_err(
        &[
            "--jid",
            "a@example.org",
            "--server",
            "example.org:5222",
            "--insecure-plain-tcp",
            "--node",
            "n",
            "watch",
        ],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(err.contains("only allowed to a loopback address"), "{err}");

    let err = run_err(
        &[
            "--jid",
            "a@example.org",
            "--node",
            "n",
            "--interval=0",
            "watch",
        ],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(err.contains("--interval"), "{err}");

    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").expect("write");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = run_err(
        &[
            "--jid",
            "a@example.org",
            "--node",
            "n",
            "--password-file",
            pw.to_str().expect("path"),
            "watch",
        ],
        &[],
    );
    assert!(err.contains("chmod 600"), "{err}");

    let err = run_err(&["--jid", "a@example.org", "--node", "n", "watch"], &[]);
    assert!(err.contains("no password source"), "{err}");

    // serve refuses the client's flags rather than ignore them...
    let err = run_err(
        &[
            "--node",
            "n",
            "serve",
            "--jid",
            "r@example.org/s",
            "--iq-timeout",
            "5",
        ],
        &[],
    );
    assert!(
        err.contains("serve does not use --node, --iq-timeout"),
        "{err}"
    );
    // ...but not the same settings from the environment, which a client may share.
    let err = run_err(
        &["serve", "--jid", "r@example.org/s"],
        &[("PUBSUB_TUI_NODE", "n")],
    );
    assert!(
        !err.contains("does not use") && err.contains("no password source"),
        "{err}"
    );
}
