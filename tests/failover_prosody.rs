//! Several servers for one account (`--server` given more than once), against two private
//! Prosody instances: the client logic alone, without a cluster. Each Prosody has the same
//! account and node, so the client can carry on on either.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::{Options, Prosody};
use pubsub_tui::xmpp::{self, Answer, Command, ConnState, NetEvent, NetHandle};

/// Wait for the next `Online`: the server it names, and the connection states before it.
async fn online_after(net: &mut NetHandle, secs: u64) -> (String, Vec<ConnState>) {
    let mut states = Vec::new();
    let server = wait_for(net, secs, "online", |e| match e {
        NetEvent::Connection(ConnState::Online { server, .. }) => {
            Some(server.clone().expect("the connector names the server"))
        }
        NetEvent::Connection(s) => {
            states.push(s.clone());
            None
        }
        _ => None,
    })
    .await;
    (server, states)
}

/// Publish one item and wait for the service to confirm it.
async fn publish(net: &mut NetHandle, text: &str) {
    net.commands
        .send(Command::Publish {
            req: req(),
            node: net.key("n"),
            text: text.into(),
        })
        .await
        .expect("send");
    wait_for(net, 15, "the publish confirmed", |e| match e {
        NetEvent::Reply {
            result: Ok(Answer::Published { .. }),
            ..
        } => Some(()),
        NetEvent::Reply {
            result: Err(error), ..
        } => panic!("publish failed: {error}"),
        _ => None,
    })
    .await;
}

/// Two servers with alice (one password) and an open node `n` on each.
async fn two_servers() -> Option<(Prosody, Prosody, String)> {
    let a = start_prosody(&Options::default())?;
    let b = start_prosody(&Options::default())?;
    let password = pubsub_tui::prosody::random_password();
    for s in [&a, &b] {
        s.register("alice", &password).expect("register");
        create_nodes(s, &["n"]).await;
    }
    Some((a, b, password))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_server_in_use_dies_the_client_moves_to_the_next() {
    let Some((mut a, b, password)) = two_servers().await else {
        return;
    };
    let mut cfg = connect_config(&a, "alice", "tui", &password);
    cfg.servers = vec![("127.0.0.1".into(), a.port), ("127.0.0.1".into(), b.port)];
    cfg.max_attempts = None;
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let on_a = format!("127.0.0.1:{}", a.port);
    let on_b = format!("127.0.0.1:{}", b.port);
    assert_eq!(
        online_after(&mut net, 20).await.0,
        on_a,
        "the first server first"
    );
    publish(&mut net, "on a").await;

    let killed = Instant::now();
    a.stop();
    let (server, states) = online_after(&mut net, 30).await;
    assert_eq!(server, on_b, "moved to the next");
    let failover = killed.elapsed();
    // One outage: B is not asked to resume A's session (which would fail and drop the
    // stream, a second "connection lost").
    let lost = states
        .iter()
        .filter(|s| matches!(s, ConnState::Suspended))
        .count();
    assert_eq!(lost, 1, "{states:?}");
    // Carries on there: its node resynced and a publish goes through.
    let resynced = wait_for(&mut net, 15, "the node resynced on b", |e| match e {
        NetEvent::Snapshot { node, .. } if node == "n" => Some(Instant::now()),
        _ => None,
    })
    .await;
    publish(&mut net, "on b").await;
    eprintln!(
        "failover: {} ms from the kill to online on the next server, then {} ms to the resync",
        failover.as_millis(),
        resynced
            .duration_since(killed)
            .saturating_sub(failover)
            .as_millis()
    );
    // Within the first backoff: the other server was tried at once, not after a wait.
    assert!(failover < Duration::from_secs(10), "{failover:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_first_server_is_passed_over_at_once() {
    let Some((a, _b, password)) = two_servers().await else {
        return;
    };
    let dead = closed_port();
    let mut cfg = connect_config(&a, "alice", "tui", &password);
    cfg.servers = vec![("127.0.0.1".into(), dead), ("127.0.0.1".into(), a.port)];
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let states = {
        let mut states = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, net.events.recv()).await {
            if let NetEvent::Connection(s) = ev {
                let online = matches!(s, ConnState::Online { .. });
                states.push(s);
                if online {
                    break;
                }
            }
        }
        states
    };
    let Some(ConnState::Online { server, .. }) = states.last() else {
        panic!("never online: {states:?}");
    };
    assert_eq!(
        server.as_deref(),
        Some(format!("127.0.0.1:{}", a.port).as_str())
    );
    // In the first attempt: no retry, no backoff.
    assert!(
        !states
            .iter()
            .any(|s| matches!(s, ConnState::Retrying { .. })),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_server_answers_the_final_state_gives_each_ones_reason() {
    let Some((a, _b, password)) = two_servers().await else {
        return;
    };
    let (one, two) = (closed_port(), closed_port());
    let mut cfg = connect_config(&a, "alice", "tui", &password);
    cfg.servers = vec![("127.0.0.1".into(), one), ("127.0.0.1".into(), two)];
    cfg.max_attempts = Some(2);
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let states = connection_states(&mut net, 20).await;
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    for port in [one, two] {
        assert!(
            error.contains(&format!("127.0.0.1:{port}: cannot connect")),
            "{error}"
        );
    }
    assert!(error.contains("gave up after 2 attempts"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_first_server_takes_only_its_share_of_the_attempt() {
    let Some((a, _b, password)) = two_servers().await else {
        return;
    };
    // Takes the connection (the kernel completes it) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let mut cfg = connect_config(&a, "alice", "tui", &password);
    cfg.servers = vec![
        ("127.0.0.1".into(), silent_port),
        ("127.0.0.1".into(), a.port),
    ];
    cfg.connect_timeout = Duration::from_secs(4);
    let started = Instant::now();
    let mut net = xmpp::spawn(cfg, session(&["n"], false, Duration::from_secs(60)));
    let (server, states) = online_after(&mut net, 20).await;
    let took = started.elapsed();
    assert_eq!(server, format!("127.0.0.1:{}", a.port));
    // In the first attempt, after half of it went to the silent one.
    assert!(
        !states
            .iter()
            .any(|s| matches!(s, ConnState::Retrying { .. })),
        "{states:?}"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    drop(silent);
}
