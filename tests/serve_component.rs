//! `pubsub-tui serve --component`: the relay service as an external component (XEP-0114) of
//! a real Prosody. Clients address it at the component's domain; it survives a restart of
//! the server; a wrong secret and bad flags end with a clear message.

mod common;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::serve::{Serve, subscribed};
use common::{account, session_at, wait_for, wait_online};
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::xmpp::{self, Command, NetEvent, NetHandle};

/// A client session following `test` at the component.
fn client() -> pubsub_tui::xmpp::session::SessionConfig {
    session_at(
        prosody::COMPONENT,
        &["test"],
        false,
        Duration::from_secs(60),
    )
}

/// [`client`], subscribed.
async fn subscriber(cfg: pubsub_tui::xmpp::connect::ConnectConfig) -> NetHandle {
    let mut net = xmpp::spawn(cfg, client());
    subscribed(&mut net).await;
    net
}

async fn items(net: &mut NetHandle, n: usize, what: &str) -> Vec<pubsub_tui::feed::FeedItem> {
    let mut got = Vec::new();
    while got.len() < n {
        got.push(
            wait_for(net, 20, what, |e| match e {
                NetEvent::Item(i) => Some(i.clone()),
                _ => None,
            })
            .await,
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_exchange_items_through_the_component_across_a_server_restart() {
    let Some(mut server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::start_component(&server, dir.path(), &[]);
    assert!(
        serve.log_text().contains("online as relay.localhost"),
        "{}",
        serve.log_text()
    );
    let (alice_cfg, _) = account(&server, "alice", "a");
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = subscriber(bob_cfg.clone()).await;
    let mut alice = subscriber(alice_cfg.clone()).await;
    let ids = common::publish_n(&mut alice, "test", 5).await;
    // Bob's core takes events only from the service it asked: the notifications are from
    // the component's domain.
    let got = items(&mut bob, 5, "alice's items at bob").await;
    assert_eq!(
        got.iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        got.iter().map(|i| i.service_seq).collect::<Vec<_>>(),
        (1..=5).map(Some).collect::<Vec<_>>(),
        "each notification carries the node-wide number"
    );
    let stored = common::manual_resync(&mut bob, "test").await;
    assert_eq!(
        stored
            .iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect::<Vec<_>>(),
        ids
    );
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = bob.commands.send(Command::Shutdown).await;

    // The server restarts: the component connects again by itself, and keeps its items.
    server.restart().expect("Prosody restarts");
    let deadline = Instant::now() + Duration::from_secs(40);
    while serve
        .log_text()
        .matches("online as relay.localhost")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "serve did not reconnect:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (carol_cfg, _) = account(&server, "carol", "c");
    let mut carol = xmpp::spawn(carol_cfg, client());
    wait_online(&mut carol).await;
    let snapshot = wait_for(
        &mut carol,
        20,
        "the snapshot after the restart",
        |e| match e {
            NetEvent::Snapshot { items, .. } => Some(items.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(
        snapshot
            .iter()
            .filter_map(|i| i.id().map(str::to_owned))
            .collect::<Vec<_>>(),
        ids
    );
    let mut alice = xmpp::spawn(alice_cfg, client());
    wait_online(&mut alice).await;
    let more = common::publish_n(&mut alice, "test", 1).await;
    let got = items(&mut carol, 1, "an item after the restart").await;
    assert_eq!(got[0].id(), more.first().map(String::as_str));
    assert_eq!(got[0].service_seq, Some(6));
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = carol.commands.send(Command::Shutdown).await;
    assert!(serve.stop().success());
}

/// Log in to `server` over a raw socket (PLAIN, bind) and send `stanza` as it is.
async fn send_raw(server: &pubsub_tui::prosody::Prosody, user: &str, password: &str, stanza: &str) {
    use base64::Engine as _;
    use common::fake_server::read_until;
    use tokio::io::AsyncWriteExt as _;
    let header = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' \
                  xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let mut buf = Vec::new();
    sock.write_all(header.as_bytes()).await.expect("write");
    read_until(&mut sock, &mut buf, 0, "</stream:features>").await;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    let mark = buf.len();
    sock.write_all(
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>")
            .as_bytes(),
    )
    .await
    .expect("write");
    read_until(&mut sock, &mut buf, mark, "<success").await;
    let mark = buf.len();
    sock.write_all(header.as_bytes()).await.expect("write");
    read_until(&mut sock, &mut buf, mark, "</stream:features>").await;
    let mark = buf.len();
    sock.write_all(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>",
    )
    .await
    .expect("write");
    read_until(&mut sock, &mut buf, mark, "</iq>").await;
    sock.write_all(stanza.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stanza_the_parser_refuses_is_left_out_and_the_link_stays() {
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start_component(&server, dir.path(), &[]);
    let (bob_cfg, _) = account(&server, "bob", "b");
    let (_, mallory_pw) = account(&server, "mallory", "m");
    let mut bob = subscriber(bob_cfg).await;
    // A message type no parser knows, addressed to the component: Prosody routes it.
    send_raw(
        &server,
        "mallory",
        &mallory_pw,
        "<message to='relay.localhost' type='bogus'><body>x</body></message>",
    )
    .await;
    serve.wait_log("left out an invalid stanza", 10).await;
    assert_eq!(
        serve.log_text().matches("online as").count(),
        1,
        "the link stayed up:\n{}",
        serve.log_text()
    );
    // And it still serves: alice publishes, bob gets the item.
    let (alice_cfg, _) = account(&server, "alice", "a");
    let mut alice = subscriber(alice_cfg).await;
    let ids = common::publish_n(&mut alice, "test", 1).await;
    let got = items(&mut bob, 1, "alice's item at bob").await;
    assert_eq!(got[0].id(), ids.first().map(String::as_str));
    let _ = alice.commands.send(Command::Shutdown).await;
    let _ = bob.commands.send(Command::Shutdown).await;
}

fn serve_run(args: &[&str]) -> (bool, String, Duration) {
    let started = Instant::now();
    let out = Process::new(env!("CARGO_BIN_EXE_pubsub-tui"))
        .arg("serve")
        .args(args)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_DATA_HOME", std::env::temp_dir())
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_wrong_secret_ends_at_once_with_the_reason() {
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = common::password_file_named(dir.path(), "wrong", "not-the-secret");
    let data = dir.path().join("data");
    let port = format!("127.0.0.1:{}", server.component_port);
    let as_component = |secret: &std::path::Path, data: &std::path::Path| {
        serve_run(&[
            "--component",
            prosody::COMPONENT,
            "--server",
            &port,
            "--secret-file",
            secret.to_str().expect("path"),
            "--data-dir",
            data.to_str().expect("path"),
        ])
    };
    let (ok, err, took) = as_component(&wrong, &data);
    assert!(!ok, "a wrong secret is a failure");
    assert!(err.contains("relay.localhost"), "{err}");
    assert!(
        err.contains("refused the secret") && err.contains("not-authorized"),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "not retried: {took:?}");
    assert!(
        !err.contains("not-the-secret"),
        "the secret is never printed"
    );
    // Control: the right secret comes online (the process is stopped by its PID).
    let serve = Serve::start_component(&server, dir.path(), &[]);
    assert!(serve.log_text().contains("online as relay.localhost"));
    // A second serve as the same component, with the right secret: it ends at once too.
    let right = common::password_file_named(dir.path(), "right", &server.component_secret);
    let other = dir.path().join("other");
    let (ok, err, took) = as_component(&right, &other);
    assert!(!ok, "a second component on one domain is a failure");
    assert!(
        err.contains("another component is connected as relay.localhost"),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "not retried: {took:?}");
    assert_eq!(
        serve.log_text().matches("online as").count(),
        1,
        "the first one stayed"
    );
}

#[test]
fn bad_component_flags_are_refused_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = common::password_file_named(dir.path(), "s", "x");
    let secret = secret.to_str().expect("path");
    let loose = dir.path().join("loose");
    std::fs::write(&loose, "x\n").expect("write");
    let loose = loose.to_str().expect("path");
    for (args, says) in [
        (
            vec!["--component", "relay.localhost", "--secret-file", secret],
            "needs --server",
        ),
        (
            vec![
                "--component",
                "relay.localhost",
                "--server",
                "127.0.0.1:5347",
            ],
            "needs --secret-file",
        ),
        (
            vec![
                "--component",
                "relay.example.org",
                "--server",
                "example.org:5347",
                "--secret-file",
                secret,
            ],
            "only to this machine",
        ),
        (
            vec![
                "--component",
                "bob@relay.localhost",
                "--server",
                "127.0.0.1:5347",
                "--secret-file",
                secret,
            ],
            "is not a domain",
        ),
        (vec!["--secret-file", secret], "is for --component"),
        (
            vec![
                "--component",
                "relay.localhost",
                "--server",
                "127.0.0.1",
                "--secret-file",
                secret,
            ],
            "component port",
        ),
        (
            vec![
                "--component",
                "relay.localhost",
                "--server",
                "127.0.0.1:5347",
                "--secret-file",
                loose,
            ],
            "readable by group or others",
        ),
    ] {
        let (ok, err, _) = serve_run(&args);
        assert!(!ok, "{args:?} is refused");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
