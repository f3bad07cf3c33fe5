//! The explorer in the real TUI, in tmux, against a private Prosody: open it, filter, follow a
//! node and see its stored and live items, follow another and leave it again, quit; start
//! again and find the same nodes followed (the state file).

mod common;

use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::{self, NetHandle};

/// Publish and wait for the service's answer.
async fn published(bob: &mut NetHandle, node: &str, text: &str) {
    let r = publish(bob, node, text).await;
    assert!(reply(bob, 20, r).await.is_ok(), "publish to {node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_filter_follow_leave_quit_and_start_again_with_the_same_nodes() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    pubsub_tui::demo::create_titled_nodes(
        &server,
        &[
            ("alpha", Some("Alpha news")),
            ("beta", Some("Beta tests")),
            ("gamma", None),
        ],
        100,
    )
    .await
    .expect("nodes");
    let (_, alice_pw) = account(&server, "alice", "x");
    let (bob_cfg, _) = account(&server, "bob", "phone");
    let mut bob = xmpp::spawn(bob_cfg, session(&[], false, Duration::from_secs(3600)));
    wait_online(&mut bob).await;
    published(&mut bob, "alpha", "stored in alpha").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = password_file(dir.path(), &alice_pw);
    let log = dir.path().join("tui.log");

    // No node given: the TUI says how to find one.
    let tmux = Tmux::start_tui("explorer", &server.server(), &pw, &log, "");
    tmux.wait_for("online and empty", 20, |s| {
        s.contains("online as alice@localhost") && s.contains("press e to explore")
    });

    // The explorer lists the nodes with their titles; a filter narrows them.
    tmux.keys(&["e"]);
    tmux.wait_for("the node list", 10, |s| {
        s.contains("Explore pubsub.localhost")
            && s.contains("Alpha news")
            && s.contains("Beta tests")
            && s.contains("gamma")
    });
    tmux.keys(&["/"]);
    tmux.text("alp");
    let s = tmux.wait_for("the filter", 5, |s| {
        s.contains("filter: alp") && !s.contains("Beta tests")
    });
    assert!(s.contains("Alpha news"), "{s}");
    tmux.keys(&["Enter", "s"]);
    tmux.wait_for("following alpha", 10, |s| {
        s.contains("following alpha (subscribed)")
    });
    // Esc clears the filter, Esc again closes: alpha's stored item is in the feed.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the filter cleared", 5, |s| s.contains("Beta tests"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the stored item", 10, |s| {
        s.contains("alpha live") && s.contains("stored in alpha")
    });
    published(&mut bob, "alpha", "live in alpha").await;
    tmux.wait_for("the live item", 10, |s| s.contains("live in alpha"));

    // Follow beta, then leave it again from the explorer.
    tmux.keys(&["e", "/"]);
    tmux.text("beta");
    tmux.keys(&["Enter", "s"]);
    tmux.wait_for("following beta", 10, |s| {
        s.contains("following beta (subscribed)")
    });
    tmux.keys(&["Escape", "Escape"]);
    tmux.wait_for("two followed", 10, |s| {
        s.contains("alpha live") && s.contains("beta live")
    });
    tmux.keys(&["e", "/"]);
    tmux.text("beta");
    tmux.keys(&["Enter", "u"]);
    tmux.wait_for("left beta", 10, |s| s.contains("stopped following beta"));
    tmux.keys(&["Escape", "Escape"]);
    tmux.wait_for("beta gone from the pane", 10, |s| {
        s.contains("alpha live") && !s.contains("beta live")
    });
    // Its items no longer come; alpha's still do (the control, published after).
    published(&mut bob, "beta", "beta after leaving").await;
    published(&mut bob, "alpha", "alpha control").await;
    let s = tmux.wait_for("the control item", 10, |s| s.contains("alpha control"));
    tmux.keys(&["m"]);
    let messages = tmux.wait_for("the message log", 5, |s| s.contains("Messages"));
    assert!(!messages.contains("beta after leaving"), "{messages}");
    assert!(!s.contains("beta after leaving"), "{s}");
    tmux.keys(&["Escape", "q"]);
    let s = tmux.wait_for("exit", 10, |s| s.contains("EXIT:"));
    assert!(s.contains("EXIT:0"), "{s}");
    drop(tmux);

    // Started again with no node given: alpha is followed, beta is not.
    let again = Tmux::start_tui("explorer-again", &server.server(), &pw, &log, "");
    let s = again.wait_for("alpha followed again", 20, |s| {
        s.contains("alpha live") && s.contains("live in alpha")
    });
    assert!(!s.contains("beta"), "{s}");
    assert!(!s.contains("press e to explore"), "{s}");
    again.keys(&["q"]);
    again.wait_for("exit", 10, |s| s.contains("EXIT:0"));
}
