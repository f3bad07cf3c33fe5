//! Reading a feed in the real TUI, in tmux, against a private Prosody: open an item and fold
//! its tree, filter, find and jump between matches, write the node's items to a file, and read
//! the file.

mod common;

use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::{self, Command, NodeKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_fold_filter_find_and_write_a_file() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["sensors"]).await;
    let (bob_cfg, _) = account(&server, "bob", "lab");
    let mut bob = xmpp::spawn(bob_cfg, session(&[], false, Duration::from_secs(3600)));
    wait_online(&mut bob).await;
    for (n, temp) in [(1, "19.5"), (2, "22.5"), (3, "20.0"), (4, "23.0")] {
        let payload = format!(
            "<reading xmlns='urn:example:sensor'><temp unit='C'>{temp}</temp><hum>4{n}</hum><station>lab-{n}</station></reading>"
        );
        let item = pubsub_tui::xmpp::proto::item::item_with(
            Some(&format!("r{n}")),
            payload.parse().expect("payload"),
        );
        let key = NodeKey::new(&bob.service, "sensors");
        let r = send(&mut bob, |req| Command::PublishItem {
            req,
            node: key,
            item,
            options: Vec::new(),
        })
        .await;
        assert!(reply(&mut bob, 20, r).await.is_ok());
    }
    let (_, pw) = account(&server, "alice", "x");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw_file = password_file(dir.path(), &pw);
    let tmux = Tmux::start_tui(
        "read",
        &server.server(),
        &pw_file,
        &dir.path().join("tui.log"),
        "--node sensors",
    );
    tmux.wait_for("the readings", 20, |s| {
        s.contains("online as alice@localhost") && s.contains("reading · temp 23.0 C · hum 44")
    });

    // The newest item's tree: fold <reading/>, unfold it.
    tmux.keys(&["Up", "v"]);
    tmux.wait_for("the tree", 10, |s| {
        s.contains("[tree]") && s.contains("· temp unit=\"C\" = \"23.0\"")
    });
    tmux.keys(&["Down", "Left"]);
    tmux.wait_for("folded", 10, |s| {
        s.contains("▸ reading [sensor]") && !s.contains("temp unit")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("unfolded", 10, |s| s.contains("· hum = \"44\""));
    tmux.keys(&["Tab"]);
    tmux.wait_for("the raw XML", 10, |s| {
        s.contains("[raw XML]") && s.contains("<temp unit='C'>23.0</temp>")
    });
    tmux.keys(&["Escape"]);

    // Filter by a field: two of four; then find, and jump.
    tmux.keys(&["Escape", "/"]);
    tmux.text("@temp>21");
    let s = tmux.wait_for("the filter", 10, |s| s.contains("2 of 4 match"));
    assert!(!s.contains("temp 19.5"), "{s}");
    tmux.keys(&["Tab", "Enter"]);
    tmux.wait_for("find", 10, |s| {
        s.contains("/@temp>21 · find · 2 of 4 match") && s.contains("temp 19.5")
    });
    tmux.keys(&["n", "v"]);
    tmux.wait_for("the newest match", 10, |s| s.contains("Item r4 · sensors"));
    tmux.keys(&["Escape", "n", "v"]);
    tmux.wait_for("the older match", 10, |s| s.contains("Item r2 · sensors"));
    tmux.keys(&["Escape", "N", "v"]);
    tmux.wait_for("back to the newer", 10, |s| s.contains("Item r4 · sensors"));
    tmux.keys(&["Escape", "Escape", "Escape"]);
    tmux.wait_for("unfiltered", 10, |s| !s.contains("of 4 match"));

    // Write the node's items to a CSV file.
    let out = dir.path().join("sensors.csv");
    tmux.keys(&["w"]);
    tmux.wait_for("the question", 10, |s| {
        s.contains("Write 4 items of sensors")
    });
    tmux.keys(&["C-u"]);
    tmux.text(&out.display().to_string());
    tmux.keys(&["Tab"]);
    tmux.wait_for("csv picked", 10, |s| s.contains("[csv]"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("written", 10, |s| s.contains("wrote 4 items of sensors to"));
    let csv = std::fs::read_to_string(&out).expect("the file");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "node,id,time,sender,publisher,format,text,xml");
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[1].starts_with("sensors,r1,"), "{csv}");
    assert!(csv.contains("<temp unit='C'>22.5</temp>"), "{csv}");

    tmux.keys(&["q"]);
    tmux.wait_for("exit", 10, |s| s.contains("EXIT:0"));
    let _ = bob.commands.try_send(Command::Shutdown);
}
