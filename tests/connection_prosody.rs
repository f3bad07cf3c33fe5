//! Connection behaviour against a real private Prosody: final errors stop at once, TLS trust
//! comes from --ca-file, a server without STARTTLS is refused, forged events change nothing.
//! Where the connection is refused, a recording relay shows that no credentials left.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use pubsub_tui::config::Password;
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::xmpp::connect::{Security, tls_config};
use pubsub_tui::xmpp::{self, Command, ConnState, NetEvent};

/// What the client sent through `relay`: it reached the server, but no SASL exchange and no
/// form of the password (PLAIN would carry it base64-encoded).
fn assert_no_credentials_sent(relay: &relay::Relay, password: &str) {
    use base64::Engine as _;
    let bytes = relay.client_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("<stream:stream"),
        "the client went through the relay: {text}"
    );
    assert!(!text.contains("<auth"), "SASL was started: {text}");
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{password}"));
    for secret in [password, plain.as_str()] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the password left the client"
        );
    }
}

/// A private Prosody with a certificate for `san`, signed by a throwaway CA; and the CA.
fn prosody_with_cert(
    dir: &std::path::Path,
    san: &str,
) -> Option<(prosody::Prosody, std::path::PathBuf)> {
    let (ca, cert, key) = make_test_ca(dir, san);
    let opts = Options {
        tls: Some((cert, key)),
        ..Options::default()
    };
    start_prosody(&opts).map(|server| (server, ca))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_final_after_one_attempt() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (mut cfg, _) = account(&server, "alice", "tui");
    cfg.password = Password::new("wrong password");
    cfg.max_attempts = None; // even with unlimited retries, a rejected password stops.
    let started = std::time::Instant::now();
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let states = connection_states(&mut net, 20).await;
    let attempts = states
        .iter()
        .filter(|s| matches!(s, ConnState::Connecting { .. }))
        .count();
    assert_eq!(attempts, 1, "one attempt, no retry loop: {states:?}");
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("no final failure: {states:?}")
    };
    assert!(
        error.contains("rejected the credentials") && error.contains("not-authorized"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_private_ca_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((server, ca)) = prosody_with_cert(
        dir.path(),
        "DNS:localhost,DNS:pubsub.localhost,IP:127.0.0.1",
    ) else {
        return;
    };
    let (mut cfg, password) = account(&server, "alice", "tui");

    // Trusting only our CA: online over TLS.
    cfg.security = Security::StartTls(tls_config(Some(&ca)).expect("CA loads"));
    let mut net = xmpp::spawn(cfg.clone(), session(&["n"], false, Duration::from_secs(60)));
    wait_online(&mut net).await;
    let _ = net.commands.send(Command::Shutdown).await;

    // The system roots do not know our CA: refused, final, before any credentials are sent.
    let relay = relay::Relay::start(server.port).await;
    cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    cfg.security = Security::StartTls(tls_config(None).expect("system roots"));
    cfg.max_attempts = None;
    let mut net = xmpp::spawn(cfg.clone(), session(&["n"], false, Duration::from_secs(60)));
    let states = connection_states(&mut net, 20).await;
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(
        error.contains("TLS failed") && error.to_lowercase().contains("certificate"),
        "{error}"
    );
    assert_no_credentials_sent(&relay, &password);
    assert_eq!(
        states
            .iter()
            .filter(|s| matches!(s, ConnState::Connecting { .. }))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_starttls_is_refused() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (mut cfg, password) = account(&server, "alice", "tui");
    // The recorder sees a login when there is one (plain TCP to loopback, as allowed).
    let control = relay::Relay::start(server.port).await;
    let mut plain = cfg.clone();
    plain.servers = vec![("127.0.0.1".into(), control.port)];
    let mut net = xmpp::spawn(plain, session(&["n"], false, Duration::from_secs(60)));
    wait_online(&mut net).await;
    let _ = net.commands.send(Command::Shutdown).await;
    assert!(String::from_utf8_lossy(&control.client_bytes()).contains("<auth"));

    let relay = relay::Relay::start(server.port).await;
    cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    cfg.security = Security::StartTls(tls_config(None).expect("system roots"));
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let states = connection_states(&mut net, 20).await;
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert_no_credentials_sent(&relay, &password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_with_backoff_and_reported() {
    // A port nobody listens on (bound and released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (mut cfg, _) = account(&server, "alice", "tui");
    cfg.servers = vec![("127.0.0.1".into(), port)];
    cfg.max_attempts = Some(2);
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let states = connection_states(&mut net, 20).await;
    assert!(states.iter().any(|s| matches!(s, ConnState::Retrying { attempt: 1, retry_in, .. } if *retry_in >= Duration::from_secs(1))), "{states:?}");
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(error.contains("gave up after 2 attempts"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_event_routed_by_the_real_server_changes_nothing() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["test"]).await;
    let (b_cfg, _) = account(&server, "bob", "tui");
    let (_, mallory_pw) = account(&server, "mallory", "x");
    let mut b = xmpp::spawn(b_cfg, session(&["test"], false, Duration::from_secs(60)));
    wait_online(&mut b).await;
    wait_for(&mut b, 10, "initial snapshot", |e| {
        matches!(e, NetEvent::Snapshot { .. }).then_some(())
    })
    .await;

    // Mallory, an ordinary account, sends bob a pubsub event that claims to be from node 'test'.
    let mut mallory = tokio_xmpp::Client::new_plaintext(
        format!("mallory@{}/x", prosody::DOMAIN)
            .parse::<xmpp_parsers::jid::Jid>()
            .expect("jid"),
        mallory_pw,
        tokio_xmpp::connect::DnsConfig::NoSrv {
            host: "127.0.0.1".into(),
            port: server.port,
            resolver: None,
        },
        pubsub_tui::config::LINK_TIMEOUTS,
    );
    while let Some(ev) = mallory.next().await {
        if matches!(ev, tokio_xmpp::Event::Online { .. }) {
            break;
        }
    }
    let forged: xmpp_parsers::minidom::Element = "<message xmlns='jabber:client' to='bob@localhost/tui' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='test'><item id='forged-1' sender='admin@localhost' message='send me your password'/></items></event></message>".parse().expect("xml");
    mallory
        .send_stanza(xmpp_parsers::stanza::Stanza::try_from(forged).expect("stanza"))
        .await
        .expect("sent");
    let reason = wait_for(&mut b, 10, "the forged event to be dropped", |e| match e {
        NetEvent::Item(i) => panic!("a forged item got through: {i:?}"),
        NetEvent::Dropped { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("mallory@localhost/x"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Signed by the CA we trust, but for another host.
    let Some((server, ca)) = prosody_with_cert(dir.path(), "DNS:other.example") else {
        return;
    };
    let (mut cfg, password) = account(&server, "alice", "tui");
    let relay = relay::Relay::start(server.port).await;
    cfg.servers = vec![("127.0.0.1".into(), relay.port)];
    cfg.security = Security::StartTls(tls_config(Some(&ca)).expect("CA loads"));
    cfg.max_attempts = None;
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let states = connection_states(&mut net, 20).await;
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(
        error.contains("TLS failed") && error.contains("not valid for name \"localhost\""),
        "{error}"
    );
    assert_no_credentials_sent(&relay, &password);
    assert_eq!(
        states
            .iter()
            .filter(|s| matches!(s, ConnState::Connecting { .. }))
            .count(),
        1
    );
}
