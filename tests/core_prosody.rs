//! The network core against a real private Prosody: two clients, live delivery, stored items
//! on subscribe, manual resync, forged events, bad credentials, and typed text that needs
//! filtering and escaping.

mod common;

use std::time::Duration;

use common::*;
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::{self, Command, NetEvent, SnapshotReason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_publish_and_receive_live() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["test"]).await;
    let (a_cfg, _) = account(&server, "alice", "tui");
    let (b_cfg, _) = account(&server, "bob", "tui");

    let mut b = xmpp::spawn(b_cfg, session(&["test"], false, Duration::from_secs(60)));
    wait_online(&mut b).await;
    wait_for(&mut b, 10, "bob's initial snapshot", |e| match e {
        NetEvent::Snapshot {
            reason: SnapshotReason::Initial,
            ..
        } => Some(()),
        _ => None,
    })
    .await;

    let mut a = xmpp::spawn(a_cfg, session(&["test"], true, Duration::from_millis(300)));
    let a_jid = wait_online(&mut a).await;
    a.commands
        .send(Command::Publish {
            req: common::req(),
            node: a.key("test"),
            text: "hello <&> world".into(),
        })
        .await
        .expect("send");

    let typed = wait_for(&mut b, 10, "alice's typed item at bob", |e| match e {
        NetEvent::Item(i) if i.text() == "hello <&> world" => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(typed.sender(), Some(a_jid.as_str()));
    let seq = typed.seq().expect("our items carry a sequence");
    assert_eq!(
        typed.id(),
        Some(format!("{}-{}", seq.session, seq.n).as_str())
    );

    let auto = wait_for(&mut b, 10, "an auto-published item at bob", |e| match e {
        NetEvent::Item(i) if i.text().starts_with("auto-publish") => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(auto.seq().expect("seq").session, seq.session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_items_on_subscribe_after_restart_and_on_resync() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["store"]).await;
    let (a_cfg, _) = account(&server, "alice", "tui");
    let (b_cfg, b_pw) = account(&server, "bob", "tui");

    let mut a = xmpp::spawn(a_cfg, session(&["store"], false, Duration::from_secs(60)));
    wait_online(&mut a).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        a.commands
            .send(Command::Publish {
                req: common::req(),
                node: a.key("store"),
                text: format!("stored {i}"),
            })
            .await
            .expect("send");
        let id = wait_for(&mut a, 10, "publish confirmation", |e| match e {
            NetEvent::Reply {
                result: Ok(pubsub_tui::xmpp::Answer::Published { id, .. }),
                ..
            } => Some(id.clone()),
            NetEvent::Reply {
                result: Err(error), ..
            } => panic!("publish failed: {error}"),
            _ => None,
        })
        .await;
        ids.push(id);
    }

    // B starts after the items were published: it receives them on subscribing.
    let mut b = xmpp::spawn(
        b_cfg.clone(),
        session(&["store"], false, Duration::from_secs(60)),
    );
    let stored = wait_for(&mut b, 15, "bob's initial snapshot", |e| match e {
        NetEvent::Snapshot {
            items,
            reason: SnapshotReason::Initial,
            ..
        } => Some(items.clone()),
        _ => None,
    })
    .await;
    let got: Vec<_> = stored
        .iter()
        .filter_map(|i| i.id().map(str::to_owned))
        .collect();
    assert_eq!(
        got, ids,
        "stored items, oldest first, equal what was published"
    );
    assert_eq!(stored[2].text(), "stored 2");

    // B restarts (same account and resource): it gets them again, exactly once each.
    let _ = b.commands.send(Command::Shutdown).await;
    let _ = b.task.await;
    let mut b = xmpp::spawn(
        connect_config(&server, "bob", "tui", &b_pw),
        session(&["store"], false, Duration::from_secs(60)),
    );
    let again = wait_for(&mut b, 15, "snapshot after restart", |e| match e {
        NetEvent::Snapshot { items, .. } => Some(items.clone()),
        _ => None,
    })
    .await;
    assert_eq!(again.len(), 5);

    // A manual resync equals the node's items.
    let resynced = manual_resync(&mut b, "store").await;
    assert_eq!(resynced, again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_text_is_filtered_escaped_and_round_trips_exactly() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["t"]).await;
    let (a_cfg, _) = account(&server, "alice", "tui");
    let (b_cfg, _) = account(&server, "bob", "tui");
    let mut b = xmpp::spawn(b_cfg, session(&["t"], false, Duration::from_secs(60)));
    wait_online(&mut b).await;
    let mut a_session = session(&["t"], false, Duration::from_secs(60));
    a_session.subscribe = false;
    let mut a = xmpp::spawn(a_cfg, a_session);
    wait_online(&mut a).await;

    // Markup, a CDATA end, quotes and entities must be escaped; BEL, ESC, NUL, a bidi
    // override and U+FFFE (not XML) must go; the rest must arrive byte for byte.
    let typed =
        "a]]>b<c&d\"e'f\u{7}g\u{1b}[2Jh\u{202e}i\u{0}j\u{fffe}k &amp; <![CDATA[x]]> 你好 🎉";
    let expected = "a]]>b<c&d\"e'fg[2Jhijk &amp; <![CDATA[x]]> 你好 🎉";
    let ids = {
        a.commands
            .send(Command::Publish {
                req: common::req(),
                node: a.key("t"),
                text: typed.into(),
            })
            .await
            .expect("send");
        a.commands
            .send(Command::Publish {
                req: common::req(),
                node: a.key("t"),
                text: "after".into(),
            })
            .await
            .expect("send");
        let mut ids = Vec::new();
        while ids.len() < 2 {
            ids.push(
                wait_for(&mut a, 10, "both confirmed", |e| match e {
                    NetEvent::Reply {
                        result: Ok(pubsub_tui::xmpp::Answer::Published { id, .. }),
                        ..
                    } => Some(id.clone()),
                    NetEvent::Reply {
                        result: Err(error), ..
                    } => panic!("{error}"),
                    _ => None,
                })
                .await,
            );
        }
        ids
    };
    let live = wait_for(&mut b, 10, "the item live", |e| match e {
        NetEvent::Item(i) if i.id() == Some(ids[0].as_str()) => Some(i.text().to_owned()),
        _ => None,
    })
    .await;
    assert_eq!(live, expected);
    // The stream stayed up: the next item arrives too, and the stored copy is the same.
    wait_for(&mut b, 10, "the next item", |e| match e {
        NetEvent::Item(i) if i.text() == "after" => Some(()),
        _ => None,
    })
    .await;
    let stored = manual_resync(&mut b, "t").await;
    assert_eq!(stored[0].text(), expected);
}
