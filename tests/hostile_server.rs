//! A scripted fake server, for what a real one will not send: it logs the client in, then
//! sends a stanza nested 1,000, 10,000 and 100,000 levels deep (one per connection). Without
//! the guard 100,000 levels overflow the parser's stack and abort the whole process (this
//! test binary included); with it, each connection is dropped and the client reconnects. A
//! 1 MiB attribute (over the parser's 8 KiB token limit) also just ends its connection. On the
//! last connection a 4 MiB text item, an 8,000-byte attribute and an ordinary item arrive as
//! usual, the long fields cut for display.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depth_bomb_drops_the_connection_not_the_process() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
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
        // An attribute of 1 MiB: over the parser's token limit (8 KiB), so it ends the
        // connection too.
        let (mut sock, _) = listener.accept().await.expect("accept");
        login(&mut sock).await;
        let huge_attr = "y".repeat(1024 * 1024);
        let _ = sock
            .write_all(event(&format!("<item id='a' sender='{huge_attr}'/>")).as_bytes())
            .await;
        // Then: a huge text node and a huge attribute (within the limits), then an ordinary
        // item.
        let (mut sock, _) = listener.accept().await.expect("second accept");
        login(&mut sock).await;
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
    });

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
    };
    let mut net = xmpp::spawn(cfg, session);
    let mut lost = 0;
    let mut big = None;
    let mut attr = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, net.events.recv())
            .await
            .expect("events in time")
            .expect("the network task is still running");
        match ev {
            NetEvent::Connection(ConnState::Suspended) => lost += 1,
            NetEvent::Connection(ConnState::Failed { error }) => panic!("gave up: {error}"),
            NetEvent::Item(item) if item.id.as_deref() == Some("big") => {
                big = Some(item.text.chars().count());
            }
            NetEvent::Item(item) if item.id.as_deref() == Some("attr") => {
                attr = item.sender.map(|s| s.chars().count());
            }
            NetEvent::Item(item) if item.text == "still here" => break,
            _ => {}
        }
    }
    assert_eq!(
        lost, 4,
        "each bomb and the 1 MiB attribute ended its connection"
    );
    assert_eq!(
        attr,
        Some(pubsub_tui::sanitize::MAX_FIELD_CHARS + 1),
        "an 8,000-byte attribute, shown cut"
    );
    assert_eq!(
        big,
        Some(pubsub_tui::sanitize::MAX_FIELD_CHARS + 1),
        "4 MiB of text, shown cut"
    );
    server.abort();
}
