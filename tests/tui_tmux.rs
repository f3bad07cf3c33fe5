//! The real TUI binary in tmux against a private Prosody: it connects, shows live items from
//! another publisher, publishes what is typed, shows help, resizes, quits, and leaves the
//! terminal restored.

mod common;

use common::tmux::Tmux;

use std::time::Duration;

use common::*;
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::{self, Command as NetCommand, NetEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_in_tmux_publishes_shows_help_resizes_and_restores_the_terminal() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["demo"]).await;
    let (_, alice_pw) = account(&server, "alice", "x");
    let (bob_cfg, _) = account(&server, "bob", "phone");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = password_file(dir.path(), &alice_pw);
    let log = dir.path().join("tui.log");

    let tmux = Tmux::start_tui(
        "pubsub-tui-test",
        &server.server(),
        &pw,
        &log,
        "--node demo --auto-publish 1 --log-level debug",
    );
    tmux.wait_for("online", 20, |s| s.contains("online as alice@localhost"));
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "the TUI uses the alternate screen"
    );

    // Another publisher's item shows up live.
    let mut bob = xmpp::spawn(bob_cfg, session(&["demo"], false, Duration::from_secs(60)));
    wait_online(&mut bob).await;
    bob.commands
        .send(NetCommand::Publish {
            req: common::req(),
            node: bob.key("demo"),
            text: "hello from bob".into(),
        })
        .await
        .expect("send");
    wait_for(&mut bob, 10, "bob's publish", |e| {
        matches!(
            e,
            NetEvent::Reply {
                result: Ok(pubsub_tui::xmpp::Answer::Published { .. }),
                ..
            }
        )
        .then_some(())
    })
    .await;
    tmux.wait_for("bob's item", 10, |s| {
        s.contains("bob@localhost") && s.contains("hello from bob")
    });
    // Auto-publish (every second) shows alice's items too.
    tmux.wait_for("an auto-published item", 10, |s| {
        s.contains("auto-publish #")
    });

    // Type a message (with characters that need escaping) and publish it.
    tmux.keys(&["i"]);
    tmux.text("typed <&> in tmux");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the typed item in the feed", 10, |s| {
        s.contains("alice@localhost") && s.contains("typed <&> in tmux")
    });
    assert!(s.contains("published"), "{s}");

    // Help, from the key table.
    tmux.keys(&["Escape", "?"]);
    tmux.wait_for("help", 5, |s| {
        s.contains("Help") && s.contains("toggle auto-publish")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("help closed", 5, |s| !s.contains("toggle auto-publish"));

    // Resync.
    tmux.keys(&["r"]);
    tmux.wait_for("resync", 10, |s| s.contains("resynced:"));

    // Small and tiny sizes: no panic, still drawing.
    tmux.resize(40, 12);
    tmux.wait_for("compact layout", 5, |s| s.contains("demo live"));
    tmux.resize(20, 5);
    std::thread::sleep(Duration::from_millis(300));
    tmux.resize(100, 30);
    tmux.wait_for("full layout again", 5, |s| s.contains("Subscriptions"));

    // Quit: exit 0 and the terminal is restored (main screen, no mouse capture).
    tmux.keys(&["q"]);
    let s = tmux.wait_for("exit", 10, |s| s.contains("EXIT:"));
    assert!(s.contains("EXIT:0"), "{s}");
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "back on the main screen"
    );
    assert_eq!(
        tmux.display("#{mouse_any_flag}"),
        "0",
        "mouse capture released"
    );

    // The debug log has the session but never the password.
    let log_text = std::fs::read_to_string(&log).expect("log written");
    assert!(!log_text.is_empty());
    assert!(
        !log_text.contains(&alice_pw),
        "the password leaked into the log"
    );
}
