//! What a new user hits first, against real servers: a relay that restarts, a node that
//! comes into being later, runs that leave subscriptions behind, `serve` on a data directory
//! in use, and the demo's ready-made `watch` command line.

mod common;

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::serve::Serve;
use common::*;
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::xmpp::error::Condition;
use pubsub_tui::xmpp::proto::SubState;
use pubsub_tui::xmpp::session::RetryPolicy;
use pubsub_tui::xmpp::{self, Command as NetCommand, NetEvent, SnapshotReason};

const BIN: &str = env!("CARGO_BIN_EXE_pubsub-tui");

/// Retries quick enough for a test, and plenty of them.
const QUICK: RetryPolicy = RetryPolicy {
    first: Duration::from_millis(300),
    max: Duration::from_secs(1),
    attempts: 100,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_starts_late_is_subscribed_and_published_to_when_it_comes() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let relay = format!("relay@{}/{}", prosody::DOMAIN, common::serve::RESOURCE);
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut cfg = session_at(&relay, &["test"], false, Duration::from_secs(3600));
    cfg.retry = QUICK;
    let mut bob = xmpp::spawn(bob_cfg, cfg);
    wait_online(&mut bob).await;
    // The relay is not online: the server answers for it, and bob tries again.
    let error = wait_for(&mut bob, 10, "a retry", |e| match e {
        NetEvent::Subscription {
            state: SubState::Retrying { error, .. },
            ..
        } => Some(error.clone()),
        NetEvent::Subscription {
            state: SubState::Failed(e),
            ..
        } => panic!("failed for good: {e}"),
        _ => None,
    })
    .await;
    assert_eq!(error.condition(), Some(Condition::ServiceUnavailable));
    // Typed while the relay is away: it waits and is tried again, not failed.
    bob.commands
        .send(NetCommand::Publish {
            req: common::req(),
            node: bob.key("test"),
            text: "before the relay".into(),
        })
        .await
        .expect("send");
    wait_for(&mut bob, 10, "the publish being tried again", |e| match e {
        NetEvent::PublishRetrying { .. } => Some(()),
        NetEvent::Reply {
            result: Err(error), ..
        } => panic!("failed: {error}"),
        _ => None,
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _serve = Serve::start(&server, "relay", dir.path(), &[]);
    let mut subscribed = false;
    let mut published = false;
    let mut snapshot = false;
    wait_for(&mut bob, 20, "live, published, retrieved", |e| {
        match e {
            NetEvent::Subscription {
                state: SubState::Subscribed,
                ..
            } => subscribed = true,
            NetEvent::Reply {
                result: Ok(pubsub_tui::xmpp::Answer::Published { .. }),
                ..
            } => published = true,
            NetEvent::Snapshot { .. } => snapshot = true,
            NetEvent::Reply {
                result: Err(error), ..
            } => panic!("failed: {error}"),
            _ => {}
        }
        (subscribed && published && snapshot).then_some(())
    })
    .await;
    let items = common::manual_resync(&mut bob, "test").await;
    assert_eq!(
        items
            .iter()
            .map(pubsub_tui::feed::FeedItem::text)
            .collect::<Vec<_>>(),
        ["before the relay"],
        "published exactly once"
    );
    let _ = bob.commands.send(NetCommand::Shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_did_not_exist_yet_comes_back_with_r() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(
        bob_cfg,
        session(&["later"], false, Duration::from_secs(3600)),
    );
    let error = wait_for(&mut bob, 20, "the refusal", |e| match e {
        NetEvent::Subscription {
            state: SubState::Failed(e),
            ..
        } => Some(e.clone()),
        _ => None,
    })
    .await;
    assert_eq!(error.condition(), Some(Condition::ItemNotFound));
    create_nodes(&server, &["later"]).await;
    bob.commands
        .send(NetCommand::Resync {
            req: common::req(),
            node: bob.key("later"),
        })
        .await
        .expect("send");
    let mut subscribed = false;
    wait_for(&mut bob, 20, "subscribed and retrieved", |e| {
        match e {
            NetEvent::Subscription {
                state: SubState::Subscribed,
                ..
            } => subscribed = true,
            NetEvent::Subscription {
                state: SubState::Failed(e),
                ..
            } => panic!("{e}"),
            _ => {}
        }
        (subscribed
            && matches!(
                e,
                NetEvent::Snapshot {
                    reason: SnapshotReason::Manual,
                    ..
                }
            ))
        .then_some(())
    })
    .await;
    let _ = bob.commands.send(NetCommand::Shutdown).await;
}

/// A fresh run of bob (a new resource): the stale subscriptions it removed in `secs` seconds.
async fn stale_removed_by_a_new_run(
    server: &prosody::Prosody,
    pw: &str,
    resource: &str,
    secs: u64,
) -> Vec<String> {
    let mut run = xmpp::spawn(
        connect_config(server, "bob", resource, pw),
        session(&["n"], false, Duration::from_secs(3600)),
    );
    let mut removed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, run.events.recv()).await {
        if let NetEvent::StaleSubscriptionRemoved { jid, .. } = ev {
            removed.push(jid);
        }
    }
    let _ = run.commands.send(NetCommand::Shutdown).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), run.task).await;
    removed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_leave_no_subscriptions_behind() {
    // Without stream management a killed client's session ends with its connection (with it,
    // the server keeps it hibernating for a while, and it still "answers").
    let Some(server) = start_prosody(&Options {
        stream_management: false,
        ..Options::default()
    }) else {
        return;
    };
    create_nodes(&server, &["n"]).await;
    let (_, pw) = account(&server, "bob", "unused");
    let watch = |resource: &str| {
        Command::new(BIN)
            .args(["watch", "--jid", "bob@localhost", "--resource", resource])
            .args(["--server", &server.server(), "--insecure-plain-tcp"])
            .args(["--service", prosody::PUBSUB, "--node", "n"])
            .env("PUBSUB_TUI_PASSWORD", &pw)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("XDG_STATE_HOME", common::state_home())
            .env("XDG_DATA_HOME", common::state_home())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("watch starts")
    };
    let until_resynced = |child: &mut std::process::Child| {
        let out = child.stdout.take().expect("stdout");
        for line in std::io::BufReader::new(out).lines() {
            if line.expect("line").contains("\"kind\":\"resync\"") {
                return;
            }
        }
        panic!("watch ended before its resync");
    };
    // A run killed with -9 leaves its subscription; the next run removes it.
    let mut killed = watch("pubsub-tui-killed");
    until_resynced(&mut killed);
    killed.kill().expect("kill -9");
    let _ = killed.wait();
    let removed = stale_removed_by_a_new_run(&server, &pw, "pubsub-tui-next", 4).await;
    assert_eq!(removed, ["bob@localhost/pubsub-tui-killed"]);
    // A run that ends cleanly (Ctrl-C) unsubscribes: nothing is left to remove.
    let mut clean = watch("pubsub-tui-clean");
    until_resynced(&mut clean);
    let status = Command::new("kill")
        .args(["-INT", &clean.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    assert!(clean.wait().expect("wait").success());
    let removed = stale_removed_by_a_new_run(&server, &pw, "pubsub-tui-third", 4).await;
    assert!(removed.is_empty(), "{removed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_its_files_private_and_refuses_a_second_instance() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(&server, "relay", dir.path(), &[]);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&serve.data_dir), 0o700, "the data dir");
    assert_eq!(mode(&serve.data_dir.join("serve.sqlite3")), 0o600);
    if let Ok(wal) = std::fs::metadata(serve.data_dir.join("serve.sqlite3-wal")) {
        assert_eq!(wal.permissions().mode() & 0o777, 0o600, "the WAL");
    }
    let pw = password_file_named(dir.path(), "second-password", "whatever");
    let out = Command::new(BIN)
        .args(["serve", "--jid", "other@localhost/server"])
        .args(["--server", &server.server(), "--insecure-plain-tcp"])
        .arg("--password-file")
        .arg(&pw)
        .arg("--data-dir")
        .arg(&serve.data_dir)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", common::state_home())
        .env("XDG_DATA_HOME", common::state_home())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another pubsub-tui serve is running on the data directory"),
        "{err}"
    );
    // Control: the first one still answers.
    let (alice_cfg, _) = account(&server, "alice", "a");
    let mut alice = xmpp::spawn(
        alice_cfg,
        session_at(&serve.jid, &["t"], false, Duration::from_secs(3600)),
    );
    wait_for(&mut alice, 20, "the first service answers", |e| match e {
        NetEvent::Snapshot { .. } => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_s_watch_command_line_works_as_printed() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, pubsub_tui::demo::DEMO_NODES).await;
    let pw = prosody::random_password();
    server.register("bob", &pw).expect("register");
    let file = server.dir().join("bob.password");
    pubsub_tui::config::write_private(&file, &format!("{pw}\n")).expect("write");
    let line = pubsub_tui::demo::watch_command(BIN, &server, &file);
    assert!(line.starts_with(BIN), "{line}");
    let script = pubsub_tui::demo::write_watch_script(BIN, &server, &file).expect("script");
    let mut child = Command::new("sh")
        .arg(&script)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", common::state_home())
        .env("XDG_DATA_HOME", common::state_home())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let out = child.stdout.take().expect("stdout");
    let mut resynced = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("line");
        if line.contains("\"kind\":\"resync\"") {
            resynced.push(line);
            if resynced.len() == 2 {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(resynced.len(), 2, "both demo nodes: {line}");
}
