//! The real TUI against a scripted hostile server: 100,000 items in one reply, control and
//! bidi characters in every displayed field (an 8-bit OSC that would set the window title
//! among them), absurd timestamps and sequence numbers. The process survives, memory stays
//! bounded, the screen stays intact and the window title does not change.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::fake_server::{event, login};
use common::tmux::Tmux;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// Log the client in, answer its retrieve with 100,000 items, then send the hostile items.
async fn hostile_server(listener: TcpListener, sent: tokio::sync::oneshot::Sender<()>) {
    let (mut sock, _) = listener.accept().await.expect("accept");
    login(&mut sock).await;
    // Our session numbers its requests: pt1 subscribes, pt2 retrieves.
    sock.write_all(b"<iq type='result' from='pubsub.localhost' id='pt1'/>")
        .await
        .expect("write");
    let mut reply = String::from(
        "<iq type='result' from='pubsub.localhost' id='pt2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'>",
    );
    for i in 0..100_000 {
        let _ = write!(reply, "<item id='bulk{i}' sender='b' message='bulk {i}'/>");
    }
    reply.push_str("</items></pubsub></iq>");
    sock.write_all(reply.as_bytes()).await.expect("write");
    for item in [
        // 8-bit OSC (U+009D … U+009C) that would set the title, in sender and text.
        "<item id='t1' sender='evil&#x9d;0;PWNED&#x9c;' message='x&#x9d;2;PWNED&#x9c;y' time='0000-01-01T00:00:00Z'/>",
        // 8-bit CSI, NEL, CR, bidi override.
        "<item id='t2' sender='a&#x202e;b' message='csi&#x9b;2Jclear&#xd;&#x85;cr' time='9999-12-31T23:59:59Z'/>",
        "<item id='t3' sender='x' message='garbage time' time='not a time &#x9b;31m'/>",
        "<item id='s1'><post xmlns='urn:x-pubsub-tui:item:0' sender='z' session='q' seq='1'>first</post></item>",
        "<item id='s2'><post xmlns='urn:x-pubsub-tui:item:0' sender='z' session='q' seq='1000000000000'>absurd seq</post></item>",
        "<item id='last' sender='y' message='hostile batch done'/>",
    ] {
        sock.write_all(event(item).as_bytes()).await.expect("write");
    }
    let _ = sent.send(());
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_content_leaves_the_screen_and_title_intact() {
    if !Tmux::present_or_skip() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(hostile_server(listener, sent_tx));

    let dir = tempfile::tempdir().expect("tempdir");
    let pw = common::password_file(dir.path(), "pw");
    let log = dir.path().join("log");
    let tmux = Tmux::start_tui(
        "pubsub-tui-hostile",
        &format!("127.0.0.1:{port}"),
        &pw,
        &log,
        "--node n",
    );
    let title_before = tmux.display("#{pane_title}");
    let pid = tmux.display("#{pane_pid}");
    // The pane runs a shell; the TUI is its child.
    let tui_pid = std::process::Command::new("pgrep")
        .args(["-P", &pid])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned));
    tokio::time::timeout(Duration::from_secs(30), sent_rx)
        .await
        .expect("server sent all")
        .expect("sent");
    let screen = tmux.wait_for("the hostile batch", 30, |s| {
        s.contains("hostile batch done")
    });

    assert_eq!(
        tmux.display("#{pane_title}"),
        title_before,
        "the window title is unchanged"
    );
    assert!(
        !screen.contains('\u{202e}') && !screen.contains('\u{9d}') && !screen.contains('\u{9b}')
    );
    let lines: Vec<&str> = screen.lines().collect();
    assert!(
        lines[0].starts_with("┌ Subscriptions"),
        "top border intact:\n{screen}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("└")),
        "bottom border intact:\n{screen}"
    );
    assert!(
        screen.contains("online as alice@localhost"),
        "status bar intact:\n{screen}"
    );
    // The feed is bounded at 10,000 items per node whatever the server sends.
    assert!(screen.contains("Feed · n · 10000 items"), "{screen}");
    if let Some(pid) = tui_pid {
        let rss = rss_mib(&pid);
        // The peak is tokio-xmpp's element tree of the 6 MB reply; the stanza size limit
        // (8 MiB) bounds it, and the feed keeps 10,000 items.
        assert!(rss < 256.0, "resident memory {rss:.1} MiB");
        println!("TUI resident memory after 100,000 items in one reply: {rss:.1} MiB");
    }
    // Still responsive, and it quits cleanly.
    tmux.keys(&["?"]);
    tmux.wait_for("help", 5, |s| s.contains("toggle auto-publish"));
    tmux.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(200));
    tmux.keys(&["q"]);
    let s = tmux.wait_for("exit", 10, |s| s.contains("EXIT:"));
    assert!(s.contains("EXIT:0"), "{s}");
    assert_eq!(tmux.display("#{pane_title}"), title_before);
    server.abort();
}
