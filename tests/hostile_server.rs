//! A scripted fake server, for what a real one will not send: it logs the client in, then
//! sends a stanza nested 1,000, 10,000 and 100,000 levels deep (one per connection, never
//! closed; the server then drops the connection). Without the guard 100,000 levels overflow
//! the parser's stack and abort the whole process (this test binary included); with it, what
//! is nested past 64 levels never reaches the parser. An item nested 100 levels deep, closed
//! as a published one is, arrives cut at that depth on a connection that stays up. A 1 MiB
//! attribute (over the parser's 8 KiB token limit, which would end the connection) is cut by
//! the guard and its item arrives; so do a 4 MiB text item, whole, and an ordinary one.
//! Also: a `<conflict/>` stream error stops the client for good with a clear message, a
//! peer that is not an XMPP server is named as such, and a server that sends a stanza the
//! parser refuses after each login is backed off from, not reconnected to in a loop.

mod common;

use std::time::Duration;

use common::fake_server::{event, login};
use pubsub_tui::config::Password;
use pubsub_tui::xmpp::connect::ConnectConfig;
use pubsub_tui::xmpp::session::SessionConfig;
use pubsub_tui::xmpp::{self, ConnState, NetEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use xmpp_parsers::jid::Jid;

/// The fake server's side: three bombs, then the items on one connection.
async fn script(listener: TcpListener) {
    // First connections: bombs of 10^3, 10^4 and 10^5 levels, one per connection.
    for depth in [1_000, 10_000, 100_000] {
        let (mut sock, _) = listener.accept().await.expect("accept");
        login(&mut sock).await;
        let bomb = format!(
            "<message from='pubsub.localhost' to='alice@localhost/tui'>{}",
            "<a>".repeat(depth)
        );
        let _ = sock.write_all(bomb.as_bytes()).await;
    }
    // Then, on one connection: an attribute of 1 MiB (over the parser's token limit of
    // 8 KiB: the guard cuts it), a huge text node, an attribute within the limits, and an
    // ordinary item.
    let (mut sock, _) = listener.accept().await.expect("last accept");
    login(&mut sock).await;
    // An item nested 100 levels deep, as a publisher may store one on any service.
    let deep = format!(
        "<item id='deep'><d xmlns='urn:x'>{}bottom{}</d></item>",
        "<l>".repeat(100),
        "</l>".repeat(100)
    );
    sock.write_all(event(&deep).as_bytes())
        .await
        .expect("write");
    let huge_attr = "y".repeat(1024 * 1024);
    sock.write_all(event(&format!("<item id='a' sender='s' message='{huge_attr}'/>")).as_bytes())
        .await
        .expect("write");
    let huge = "x".repeat(4 * 1024 * 1024);
    sock.write_all(event(&format!("<item id='big' sender='s' message='m'><post xmlns='urn:x-pubsub-tui:item:0' session='s' seq='1'>{huge}</post></item>")).as_bytes()).await.expect("write");
    let long_attr = "y".repeat(8000);
    sock.write_all(
        event(&format!(
            "<item id='attr' sender='{long_attr}' message='m'/>"
        ))
        .as_bytes(),
    )
    .await
    .expect("write");
    sock.write_all(event("<item id='after' sender='s' message='still here'/>").as_bytes())
        .await
        .expect("write");
    // Keep the connection open until the test is done.
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depth_bomb_drops_the_connection_not_the_process() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(script(listener));

    let (cfg, session) = loopback_session(port);
    let mut net = xmpp::spawn(cfg, session);
    let mut lost = 0;
    let mut big = None;
    let mut attr = None;
    let mut cut = None;
    let mut deep = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, net.events.recv())
            .await
            .expect("events in time")
            .expect("the network task is still running");
        match ev {
            NetEvent::Connection(ConnState::Suspended) => lost += 1,
            NetEvent::Connection(ConnState::Failed { error }) => panic!("gave up: {error}"),
            NetEvent::Item(item) if item.id() == Some("big") => {
                big = Some(item.text().chars().count());
            }
            NetEvent::Item(item) if item.id() == Some("attr") => {
                attr = item.sender().map(|s| s.chars().count());
            }
            NetEvent::Item(item) if item.id() == Some("a") => {
                cut = Some(item.text().len());
            }
            NetEvent::Item(item) if item.id() == Some("deep") => {
                deep = Some((
                    lost,
                    item.tree().cut(),
                    item.tree().strings().any(|s| s == "bottom"),
                ));
            }
            NetEvent::Item(item) if item.text() == "still here" => break,
            _ => {}
        }
    }
    assert_eq!(
        lost, 3,
        "each bomb's connection ended (the server dropped it), the rest did not"
    );
    assert_eq!(
        deep,
        Some((3, Some(pubsub_tui::feed::payload::Cut::Depth), false)),
        "the deep item came on the last connection, cut, and the link stayed up"
    );
    assert_eq!(
        cut,
        Some(pubsub_tui::xmpp::guard::MAX_ATTR_BYTES),
        "the 1 MiB attribute arrived, cut to the guard's limit"
    );
    assert_eq!(
        attr,
        Some(pubsub_tui::sanitize::MAX_FIELD_CHARS + 1),
        "an 8,000-byte sender JID, shown cut"
    );
    assert_eq!(big, Some(4 * 1024 * 1024), "4 MiB of text, whole");
    server.abort();
}

fn loopback_session(port: u16) -> (ConnectConfig, SessionConfig) {
    let jid = Jid::new("alice@localhost/tui").expect("jid");
    let cfg = ConnectConfig {
        max_attempts: Some(5),
        ..ConnectConfig::loopback(jid, Password::new("pw"), port)
    };
    let session = SessionConfig {
        service: Jid::new("pubsub.localhost").expect("jid"),
        nodes: vec!["n".into()],
        subscribe: true,
        auto_publish: false,
        interval: Duration::from_secs(3600),
        iq_timeout: Duration::from_secs(30),
        resync_min_interval: Duration::from_secs(5),
        publisher_session: "t".into(),
        keep_unsent: false,
        retry: pubsub_tui::xmpp::session::RetryPolicy::DEFAULT,
    };
    (cfg, session)
}

/// Connection states until the final one, or the deadline.
async fn states_until_final(net: &mut xmpp::NetHandle, secs: u64) -> Vec<ConnState> {
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, net.events.recv()).await {
        if let NetEvent::Connection(s) = ev {
            let last = matches!(s, ConnState::Failed { .. });
            states.push(s);
            if last {
                break;
            }
        }
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_by_another_login_stops_with_a_clear_message() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        login(&mut sock).await;
        sock.write_all(b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error></stream:stream>").await.expect("write");
        // Count further logins: there must be none.
        let mut more = 0;
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(4), listener.accept()).await
        {
            more += 1;
        }
        more
    });
    let (cfg, session) = loopback_session(port);
    let mut net = xmpp::spawn(cfg, session);
    let states = states_until_final(&mut net, 20).await;
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(
        error.contains("another connection logged in as alice@localhost/tui and replaced this one")
            && error.contains("Replaced by new connection")
            && error.contains("--resource"),
        "{error}"
    );
    assert_eq!(server.await.expect("server"), 0, "it did not log in again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_xmpp_is_named_and_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let mut accepted = 0;
        while let Ok(Ok((mut sock, _))) =
            tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
        {
            accepted += 1;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
        accepted
    });
    let (cfg, session) = loopback_session(port);
    let mut net = xmpp::spawn(cfg, session);
    let states = states_until_final(&mut net, 20).await;
    let Some(ConnState::Failed { error }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(
        error.contains("not an XMPP server") && error.contains("HTTP/1.1 400 Bad Request"),
        "{error}"
    );
    assert_eq!(server.await.expect("server"), 1, "one attempt: it is final");
}

/// A server that sends, right after each login, a stanza the parser refuses (as one keeping
/// an item this client cannot read would, to each new session): the client drops the
/// stream itself, the server never ends it. Reconnecting at once looped about 20 times a
/// second; now such quick drops back off like failed attempts, and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stanza_the_parser_refuses_after_each_login_backs_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let window = Duration::from_secs(8);
    let server = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + window;
        // Held open: the server never ends a stream.
        let mut open = Vec::new();
        while let Ok(Ok((mut sock, _))) = tokio::time::timeout_at(deadline, listener.accept()).await
        {
            login(&mut sock).await;
            let _ = sock
                .write_all(
                    b"<message from='pubsub.localhost' to='alice@localhost/tui'><a></b></message>",
                )
                .await;
            open.push(sock);
        }
        open.len()
    });
    let (cfg, session) = loopback_session(port);
    let mut net = xmpp::spawn(cfg, session);
    let mut said = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, net.events.recv()).await {
        if let NetEvent::Connection(ConnState::Retrying {
            error, retry_in, ..
        }) = ev
        {
            said.push((error, retry_in));
        }
    }
    let logins = server.await.expect("server");
    assert!(logins >= 3, "it did reconnect: {logins}");
    assert!(logins <= 6, "it backed off: {logins} logins in {window:?}");
    let (error, wait) = said.first().expect("a retry was said");
    assert!(
        error.contains("dropped right after it came up, again"),
        "{error}"
    );
    assert!(*wait >= Duration::from_secs(1), "{wait:?}");
    let _ = net.commands.try_send(xmpp::Command::Shutdown);
}
