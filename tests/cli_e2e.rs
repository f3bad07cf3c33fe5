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

/// `pubsub-tui SUB --jid … --server … --service …` as `user`, password from the environment.
fn base(server: &Prosody, sub: &str, user: &str, password: &str) -> Command {
    let mut c = Command::new(BIN);
    c.arg(sub)
        .args(["--jid", &format!("{user}@{}", prosody::DOMAIN)])
        .args(["--server", &server.server()])
        .arg("--insecure-plain-tcp")
        .args(["--service", prosody::PUBSUB])
        .env("PUBSUB_TUI_PASSWORD", password)
        .env_remove("PUBSUB_TUI_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", common::state_home())
        .env("XDG_DATA_HOME", common::state_home());
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

fn publish(server: &Prosody, user: &str, pw: &str, node: &str, text: &str) -> std::process::Output {
    base(server, "publish", user, pw)
        .args(["--node", node, text])
        .output()
        .expect("runs")
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
    let out = publish(&server, "alice", &alice_pw, "test", "first <item>");
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
    let mut watch = base(&server, "watch", "bob", &bob_pw)
        .args(["--node", "test"])
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
    let sender = stored[0]["sender"].as_str().expect("sender");
    assert!(
        sender.starts_with("alice@localhost/pubsub-tui-"),
        "each run has its own resource: {sender}"
    );
    // The item's XML, as received; one timestamp format (milliseconds, UTC).
    assert!(
        stored[0]["xml"]
            .as_str()
            .is_some_and(|x| x.contains("first &lt;item&gt;") && x.contains("<post")),
        "{}",
        stored[0]
    );
    let time = stored[0]["time"].as_str().expect("time");
    let at = lines.last().expect("resync")["at"]
        .as_str()
        .expect("at")
        .to_owned();
    for t in [time, at.as_str()] {
        assert_eq!(t.len(), "2026-11-24T07:56:57.123Z".len(), "{t}");
        assert!(t.ends_with('Z'), "{t}");
    }

    assert_password_not_in_environ(watch.id(), &bob_pw);

    // Text from stdin, on several lines: the lines stay lines.
    let mut p = base(&server, "publish", "alice", &alice_pw)
        .args(["--node", "test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    std::io::Write::write_all(
        &mut p.stdin.take().expect("stdin"),
        b"from stdin\r\nsecond line\n",
    )
    .expect("write");
    let out = p.wait_with_output().expect("waits");
    assert!(out.status.success());
    let lines = json_lines_until(&mut reader, 20, |v| v["kind"] == "item");
    let item = lines.last().expect("a line");
    assert_eq!(item["text"], "from stdin\nsecond line");
    assert_eq!(item["node"], "test");
    assert_eq!(item["format"], "native");
    assert!(item["session"].is_string());

    // Ctrl-C ends watch cleanly, and it unsubscribes on the way out.
    let status = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = watch.wait().expect("watch exits");
    assert!(status.success(), "watch exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_told_once_in_plain_words() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["test"]).await;
    let (_, alice_pw) = account(&server, "alice", "x");

    // A failed publish exits non-zero with one clear line, no colour codes in a pipe.
    let out = publish(&server, "alice", &alice_pw, "no-such-node", "x");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "publish to no-such-node failed: not allowed: the node 'no-such-node' may not \
             exist, or you may not publish to it (forbidden)"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "said once: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes into a pipe: {err:?}"
    );

    // Even at trace level, the password never reaches the log (tokio-xmpp would log the
    // SASL exchange; its targets are capped).
    let log = tempfile::NamedTempFile::new().expect("tempfile");
    let out = base(&server, "publish", "alice", &alice_pw)
        .args(["--node", "test", "--log-level", "trace", "--log-file"])
        .arg(log.path())
        .arg("traced")
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

    // Bad credentials: a clear final error, quickly, once.
    let started = Instant::now();
    let out = publish(&server, "alice", "wrong", "test", "x");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rejected the credentials"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "said once: {err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_gives_up_when_no_node_can_be_subscribed() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["real"]).await;
    let (_, pw) = account(&server, "bob", "x");
    let started = Instant::now();
    let out = base(&server, "watch", "bob", &pw)
        .args(["--node", "missing", "--node", "gone"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no node could be subscribed at pubsub.localhost")
            && err.contains("missing: no such node 'missing' at pubsub.localhost")
            && err.contains("gone: no such node"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // Control: with one node that exists, it keeps watching.
    let mut watch = base(&server, "watch", "bob", &pw)
        .args(["--node", "missing", "--node", "real"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let mut reader = BufReader::new(watch.stdout.take().expect("stdout"));
    json_lines_until(&mut reader, 20, |v| {
        v["kind"] == "resync" && v["node"] == "real"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(watch.try_wait().expect("wait").is_none(), "still running");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_too_big_for_an_item_is_refused_before_anything_is_sent() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (_, pw) = account(&server, "alice", "x");
    let big = "x".repeat(pubsub_tui::xmpp::proto::MAX_TEXT_XML_BYTES + 1);
    let mut p = base(&server, "publish", "alice", &pw)
        .args(["--node", "test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    std::io::Write::write_all(&mut p.stdin.take().expect("stdin"), big.as_bytes()).expect("write");
    let out = p.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("too long to publish") && err.contains("256000"),
        "{err}"
    );
}

fn run_err(args: &[&str], envs: &[(&str, &str)]) -> (String, Option<i32>) {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", common::state_home())
        .env("XDG_DATA_HOME", common::state_home())
        .env_remove("PUBSUB_TUI_PASSWORD")
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("runs");
    assert!(!out.status.success(), "{args:?} should fail");
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "jid = 'a@localhost'\nnodez = ['x']\n").expect("write");
    let (err, _) = run_err(&["watch", "--config", cfg.to_str().expect("path")], &[]);
    assert!(
        err.contains("unknown field") && err.contains("nodez"),
        "{err}"
    );

    let (err, _) = run_err(&["watch"], &[]);
    assert!(
        err.contains("no account given") && err.contains("pubsub-tui demo"),
        "{err}"
    );

    let (err, _) = run_err(&["--password", "x"], &[]);
    assert!(err.contains("--password"), "{err}");

    let (err, _) = run_err(
        &[
            "watch",
            "--jid",
            "a@example.org",
            "--server",
            "example.org:5222",
            "--insecure-plain-tcp",
            "--node",
            "n",
        ],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(err.contains("only allowed to a loopback address"), "{err}");

    // A bad value names the flag and its config key.
    let (err, _) = run_err(
        &["--jid", "a@example.org", "--node", "n", "--auto-publish=0"],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(
        err.contains("--auto-publish (config: auto_publish)"),
        "{err}"
    );
    let (err, _) = run_err(
        &[
            "watch",
            "--jid",
            "a@example.org",
            "--node",
            "n",
            "--iq-timeout=-1",
        ],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(err.contains("--iq-timeout (config: iq_timeout)"), "{err}");

    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").expect("write");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (err, _) = run_err(
        &[
            "watch",
            "--jid",
            "a@example.org",
            "--node",
            "n",
            "--password-file",
            pw.to_str().expect("path"),
        ],
        &[],
    );
    assert!(err.contains("chmod 600"), "{err}");

    let (err, _) = run_err(&["watch", "--jid", "a@example.org", "--node", "n"], &[]);
    assert!(err.contains("no password source"), "{err}");
}

#[test]
fn an_empty_or_control_node_name_is_a_usage_error() {
    for node in ["", "a\tb"] {
        let (err, code) = run_err(&["watch", "--jid", "a@example.org", "--node", node], &[]);
        assert_eq!(code, Some(2), "{node:?}: {err}");
        assert!(err.contains("--node"), "{err}");
    }
    // Control: a name that is fine gets as far as the password.
    let (err, code) = run_err(&["watch", "--jid", "a@example.org", "--node", "n"], &[]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn flags_in_the_wrong_place_and_unreachable_servers_are_said_plainly() {
    // A subcommand's flags go after its name; before it they are the TUI's, and said so.
    let (err, code) = run_err(&["--node", "n", "watch", "--jid", "a@example.org"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--node before `watch`") && err.contains("pubsub-tui watch --node"),
        "{err}"
    );
    // serve does not take the client's flags at all...
    let (err, code) = run_err(&["serve", "--jid", "r@example.org/s", "--node", "n"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unexpected argument '--node'"), "{err}");
    // ...and the same settings from the environment, which a client may share, are ignored.
    let (err, _) = run_err(
        &["serve", "--jid", "r@example.org/s"],
        &[("PUBSUB_TUI_NODE", "n")],
    );
    assert!(err.contains("no password source"), "{err}");
    // serve needs a full JID.
    let (err, _) = run_err(&["serve", "--jid", "r@example.org"], &[]);
    assert!(err.contains("serve needs a full JID"), "{err}");

    // A server that cannot be found, or that refuses: plain words, no debug values, once.
    let (err, _) = run_err(
        &[
            "publish",
            "--jid",
            "a@example.org",
            "--server",
            "nonexistent.invalid",
            "--node",
            "n",
            "x",
        ],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(
        err.contains("cannot find the server nonexistent.invalid"),
        "{err}"
    );
    assert!(
        !err.contains('{') && err.trim().lines().count() == 1,
        "{err}"
    );
    let (err, _) = run_err(
        &[
            "publish",
            "--jid",
            "a@localhost",
            "--server",
            "127.0.0.1:1",
            "--insecure-plain-tcp",
            "--node",
            "n",
            "x",
        ],
        &[("PUBSUB_TUI_PASSWORD", "x")],
    );
    assert!(
        err.contains("cannot connect to 127.0.0.1 port 1: Connection refused"),
        "{err}"
    );
}

#[test]
fn each_subcommand_lists_only_its_own_flags() {
    let watch = help(&["watch", "--help"]);
    assert!(
        watch.contains("--node") && watch.contains("--jid"),
        "{watch}"
    );
    for absent in ["--auto-publish", "--feed-limit", "--interval", "--data-dir"] {
        assert!(
            !watch.contains(absent),
            "watch --help lists {absent}: {watch}"
        );
    }
    let demo = help(&["demo", "--help"]);
    assert!(demo.contains("--peer-interval"), "{demo}");
    for absent in [
        "--jid",
        "--node",
        "--server",
        "--service",
        "--password-file",
    ] {
        assert!(!demo.contains(absent), "demo --help lists {absent}: {demo}");
    }
    let serve = help(&["serve", "--help"]);
    assert!(
        serve.contains("--data-dir") && serve.contains("--jid"),
        "{serve}"
    );
    for absent in ["--node", "--iq-timeout", "--auto-publish", "--service"] {
        assert!(
            !serve.contains(absent),
            "serve --help lists {absent}: {serve}"
        );
    }
    let publish = help(&["publish", "--help"]);
    assert!(!publish.contains("--auto-publish"), "{publish}");
    let tui = help(&["--help"]);
    assert!(
        tui.contains("--auto-publish") && tui.contains("--resource"),
        "{tui}"
    );
}

#[test]
fn the_tui_without_a_terminal_says_what_to_use_instead() {
    let out = Command::new(BIN)
        .args(["--jid", "a@example.org", "--node", "n"])
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", common::state_home())
        .env("XDG_DATA_HOME", common::state_home())
        .env("PUBSUB_TUI_PASSWORD", "x")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "not a panic (101)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the TUI needs a terminal; use `pubsub-tui watch` or `pubsub-tui publish`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `pubsub-tui SUB… ACCOUNT REST…` against an unreachable server, expected to fail.
fn owner_cli(sub: &[&str], rest: &[&str]) -> (String, Option<i32>) {
    let acct = [
        "--jid",
        "a@localhost",
        "--server",
        "127.0.0.1:9",
        "--insecure-plain-tcp",
    ];
    let args: Vec<&str> = sub
        .iter()
        .chain(acct.iter())
        .chain(rest.iter())
        .copied()
        .collect();
    run_err(&args, &[("PUBSUB_TUI_PASSWORD", "x")])
}

#[test]
fn publishing_a_given_payload_refuses_bad_files_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p.display().to_string()
    };
    let big = format!("<r xmlns='urn:x'>{}</r>", "a".repeat(300_000));
    for (rest, why) in [
        (
            vec!["--node", "n", "--xml", "/nonexistent/x.xml"],
            "reading /nonexistent/x.xml".to_owned(),
        ),
        (
            vec!["--node", "n", "--xml", &file("empty.xml", b"")],
            "it is empty".to_owned(),
        ),
        (
            vec![
                "--node",
                "n",
                "--xml",
                &file("nons.xml", b"<reading><t>1</t></reading>"),
            ],
            "the element has no namespace".to_owned(),
        ),
        (
            vec![
                "--node",
                "n",
                "--xml",
                &file("bin.xml", &[0, 159, 146, 150, 0xff]),
            ],
            "reading".to_owned(),
        ),
        (
            vec![
                "--node",
                "n",
                "--xml",
                &file("empty-item.xml", b"<item xmlns='urn:x' id='a'/>"),
            ],
            "holds no payload element".to_owned(),
        ),
        (
            vec!["--node", "n", "--xml", &file("big.xml", big.as_bytes())],
            "an item is at most".to_owned(),
        ),
        (
            vec!["--node", "n", "--id", "", "text"],
            "--id: the item id is empty".to_owned(),
        ),
    ] {
        let (err, _) = owner_cli(&["publish"], &rest);
        assert!(err.contains(&why), "{rest:?}: {err}");
    }
}

#[test]
fn owner_commands_refuse_bad_input_before_connecting() {
    for (sub, rest, why) in [
        (
            vec!["node", "config"],
            vec!["n", "--set", "title"],
            "is not KEY=VALUE",
        ),
        (
            vec!["node", "affiliations"],
            vec!["n", "--set", "bob@x=king"],
            "\"king\" is not an affiliation; use one of: owner, publisher",
        ),
        (
            vec!["node", "affiliations"],
            vec!["n", "--set", "@bad=member"],
            "is not a valid JID",
        ),
        (
            vec!["node", "subscriptions"],
            vec!["n", "--set", "bob@x=maybe"],
            "is not a subscription state",
        ),
        (
            vec!["node", "purge"],
            vec![""],
            "a node name cannot be empty",
        ),
        (
            vec!["node", "delete"],
            vec!["n", "--redirect", ""],
            "give an xmpp: URI",
        ),
        (
            vec!["node", "delete"],
            vec!["n", "--redirect", "http://example.org/"],
            "--redirect \"http://example.org/\": give an xmpp: URI",
        ),
        (
            vec!["retract"],
            vec!["--node", "n", ""],
            "the item id is empty",
        ),
    ] {
        let (err, status) = owner_cli(&sub, &rest);
        assert!(err.contains(why), "{sub:?} {rest:?}: {err}");
        assert_eq!(status, Some(2), "{sub:?} {rest:?}: {err}");
    }
    // Positive control: good input gets as far as the (unreachable) server.
    let (err, status) = owner_cli(&["node", "affiliations"], &["n", "--set", "bob@x=member"]);
    assert!(err.contains("connection failed"), "{err}");
    assert_eq!(status, Some(1));
}

#[test]
fn a_bad_watch_filter_is_refused_before_connecting() {
    let (err, code) = run_err(&["watch", "--node", "n", "--filter", "~(oops"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular expression"), "{err}");
    let (err, code) = run_err(&["watch", "--node", "n", "--filter", "@temp>warm"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a number to compare with"), "{err}");
}
