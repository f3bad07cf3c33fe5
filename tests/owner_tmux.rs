//! The owner's requests in the real TUI, in tmux, against a private Prosody (as its admin, who
//! owns the node): configure the node through the form, see a refused value's error beside
//! it, fix it and submit; retract an item; purge the node behind its question; create a node
//! from the form; each checked at the service afterwards.

mod common;

use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::xmpp::{self, Answer, Command, NodeKey, OwnerDone, OwnerOp};

/// The node's configuration value of `var`, read by the admin.
async fn config_value(net: &mut xmpp::NetHandle, node: &str, var: &str) -> String {
    let key = NodeKey::new(&net.service, node);
    let r = send(net, |req| Command::Owner {
        req,
        node: key,
        op: OwnerOp::GetConfig,
    })
    .await;
    match reply(net, 20, r).await {
        Ok(Answer::Owner {
            done: OwnerDone::Config(form),
            ..
        }) => form
            .field(var)
            .map(|f| f.value().to_owned())
            .unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

/// The form; `max_items` out of the bounds Prosody's form gives (XEP-0122): refused as the
/// edit ends, shown under the form with the edit still open; then fixed and submitted.
async fn configure_with_a_refusal(tmux: &Tmux, admin: &mut xmpp::NetHandle) {
    tmux.keys(&["C"]);
    tmux.wait_for("the form", 10, |s| {
        s.contains("Configure tidings at pubsub.localhost") && s.contains("Max # of items")
    });
    tmux.keys(&["j", "j", "j"]);
    tmux.wait_for("max_items selected", 5, |s| {
        s.contains("pubsub#max_items [text-single]")
    });
    tmux.keys(&["Enter", "BSpace", "BSpace"]);
    tmux.text("100000");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the refusal", 10, |s| {
        s.contains("\"100000\" is not a whole number from 1 to 10000, or max")
    });
    assert!(s.contains("100000"), "the edit stays: {s}");
    tmux.keys(&["C-s"]);
    assert_eq!(
        config_value(admin, "tidings", "pubsub#max_items").await,
        "20",
        "nothing sent while the edit is open"
    );
    // Fixed and sent: accepted, and so at the service.
    for _ in 0..6 {
        tmux.keys(&["BSpace"]);
    }
    tmux.text("2");
    tmux.keys(&["Enter", "C-s"]);
    tmux.wait_for("configured", 10, |s| {
        s.contains("configured tidings: changed pubsub#max_items")
    });
    assert_eq!(
        config_value(admin, "tidings", "pubsub#max_items").await,
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_with_a_refused_value_then_retract_and_purge() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    pubsub_tui::demo::create_titled_nodes(&server, &[("tidings", Some("Tidings"))], 20)
        .await
        .expect("node");
    let (bob_cfg, bob_pw) = account(&server, "bob", "phone");
    let mut bob = xmpp::spawn(bob_cfg, session(&[], false, Duration::from_secs(3600)));
    wait_online(&mut bob).await;
    for text in ["first", "second", "third"] {
        let r = publish(&mut bob, "tidings", text).await;
        assert!(reply(&mut bob, 20, r).await.is_ok());
    }
    let admin_pw = server.admin_password.clone();
    let mut admin = xmpp::spawn(
        connect_config(&server, prosody::ADMIN, "check", &admin_pw),
        session(&[], false, Duration::from_secs(3600)),
    );
    wait_online(&mut admin).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let pw = password_file(dir.path(), &admin_pw);
    let state = dir.path().join("state").display().to_string();
    let cmd = format!(
        "EDITOR='sed -i s/second/edited/' XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME={state} XDG_DATA_HOME={state} {} \
         --jid admin@localhost --server {} \
         --insecure-plain-tcp --service pubsub.localhost --password-file {} --log-file {} \
         --node tidings; echo EXIT:$?; sleep 60",
        env!("CARGO_BIN_EXE_pubsub-tui"),
        server.server(),
        pw.display(),
        dir.path().join("tui.log").display()
    );
    let tmux = Tmux::start(&format!("owner-{}", std::process::id()), &cmd);
    tmux.wait_for("the stored items", 20, |s| {
        s.contains("online as admin@localhost") && s.contains("third")
    });

    configure_with_a_refusal(&tmux, &mut admin).await;

    // Retract the newest item: asked, then gone at the service.
    tmux.keys(&["Up", "x"]);
    tmux.wait_for("the retract question", 5, |s| {
        s.contains("Retract the item")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("retracted", 10, |s| {
        s.contains("retracted ") && s.contains("from tidings")
    });
    let texts: Vec<String> = node_items(&server, "bob", &bob_pw, "tidings")
        .await
        .into_iter()
        .map(|i| i.text().to_owned())
        .collect();
    assert_eq!(
        texts,
        ["second"],
        "max_items 2 kept the newest two; third was retracted"
    );

    // Purge: the question names the node and its items; n keeps them, y purges.
    tmux.keys(&["X"]);
    tmux.wait_for("the purge question", 10, |s| {
        s.contains("Delete every item of 'tidings'") && s.contains("(1 item)")
    });
    tmux.keys(&["n"]);
    tmux.wait_for("the question gone", 5, |s| !s.contains("Purge?"));
    assert_eq!(
        node_items(&server, "bob", &bob_pw, "tidings").await.len(),
        1
    );
    tmux.keys(&["X"]);
    tmux.wait_for("the purge question again", 10, |s| s.contains("Purge?"));
    tmux.keys(&["y"]);
    tmux.wait_for("purged", 10, |s| s.contains("purged tidings"));
    assert!(
        node_items(&server, "bob", &bob_pw, "tidings")
            .await
            .is_empty()
    );

    // A new node from the form: named, with a title.
    tmux.keys(&["N"]);
    tmux.wait_for("the new node's form", 10, |s| {
        s.contains("New node at pubsub.localhost")
    });
    tmux.keys(&["Enter"]);
    tmux.text("fresh");
    tmux.keys(&["Enter", "j", "Enter"]);
    tmux.text("Fresh news");
    tmux.keys(&["Enter", "C-s"]);
    tmux.wait_for("created", 10, |s| s.contains("created fresh"));
    assert_eq!(
        config_value(&mut admin, "fresh", "pubsub#title").await,
        "Fresh news"
    );

    tmux.keys(&["q"]);
    tmux.wait_for("the exit", 10, |s| s.contains("EXIT:0"));
}
