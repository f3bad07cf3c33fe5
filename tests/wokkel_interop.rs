//! Interop with the seed-era peer (Python, Twisted, Wokkel from PyPI): its client through our
//! `serve`, and our client through its relay service. Real Prosody in between.

mod common;

use std::time::Duration;

use common::serve::Serve;
use common::wokkel::{self, Peer};
use common::{account, session_at, wait_for, wait_online};
use pubsub_tui::feed::ItemFormat;
use pubsub_tui::prosody::Options;
use pubsub_tui::xmpp::proto::SubState;
use pubsub_tui::xmpp::session::SessionConfig;
use pubsub_tui::xmpp::{self, Command, NetEvent};

/// A key pressed in the TUI model; its network commands go to `net`.
async fn press(model: &mut pubsub_tui::tui::model::Model, net: &xmpp::NetHandle, key: char) {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use pubsub_tui::tui::update::{Effect, Msg, update};
    let key = KeyEvent::new(KeyCode::Char(key), KeyModifiers::NONE);
    for e in update(model, Msg::Key(key)) {
        if let Effect::Net(cmd) = e {
            net.commands.send(cmd).await.expect("send");
        }
    }
}

fn via(service: &str) -> SessionConfig {
    session_at(service, &["test"], false, Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wokkel_client_and_ours_through_serve() {
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let Some(python) = wokkel::python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(&server, "relay", dir.path(), &[]);
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(bob_cfg, via(&serve.jid));
    wait_online(&mut bob).await;
    let mut wok = Peer::start(
        &python,
        &server,
        dir.path(),
        "client",
        "wok",
        "w",
        &[&serve.jid, "test"],
    );

    // Ours sees the Wokkel client's attribute-only items: sender, message and time.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let item = wait_for(&mut bob, 15, "the Wokkel client's items", |e| match e {
            NetEvent::Item(i) if i.format == ItemFormat::Wokkel => Some(i.clone()),
            _ => None,
        })
        .await;
        seen.push(item);
    }
    for (n, item) in seen.iter().enumerate() {
        assert_eq!(item.sender(), Some(wok.jid.as_str()));
        assert_eq!(item.text(), format!("wokkel says {}", n + 1));
        let time = item.time().expect("a time");
        assert!(
            time.len() == 8 && time.as_bytes()[2] == b':',
            "HH:MM:SS, not {time:?}"
        );
        assert!(item.service_seq.is_some(), "numbered by serve");
    }

    // The Wokkel client sees ours, read from the attributes it knows.
    bob.commands
        .send(Command::Publish {
            req: common::req(),
            node: bob.key("test"),
            text: "hello from pubsub-tui".into(),
        })
        .await
        .expect("send");
    let line = wok.wait_line(15, "our item at the Wokkel client", |v| {
        v["kind"] == "item" && v["message"] == "hello from pubsub-tui"
    });
    assert_eq!(line["sender"], "bob@localhost/b");
    assert!(line["time"].as_str().is_some_and(|t| t.len() == 8));
    let _ = bob.commands.send(Command::Shutdown).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ours_against_the_wokkel_relay() {
    let Some(server) = common::start_prosody(&Options::default()) else {
        return;
    };
    let Some(python) = wokkel::python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Peer::start(&python, &server, dir.path(), "relay", "old", "server", &[]);
    let (bob_cfg, _) = account(&server, "bob", "b");
    let mut bob = xmpp::spawn(bob_cfg, via(&relay.jid));
    let mut model = common::model_for("test");
    model.service = bob.service.clone();
    let mut subscribed = false;
    let mut unsupported = false;
    common::run_until(
        &mut bob,
        &mut model,
        20,
        "subscribed, initial retrieve refused",
        |e| {
            match e {
                NetEvent::Subscription {
                    state: SubState::Subscribed,
                    ..
                } => subscribed = true,
                NetEvent::Subscription {
                    state: SubState::Failed(e),
                    ..
                } => panic!("subscribe refused: {e}"),
                NetEvent::ResyncFailed { error, .. } => unsupported = error.is_unsupported(),
                _ => {}
            }
            subscribed && unsupported
        },
    )
    .await;

    // Publishing works: the relay forwards our item back to us, verbatim.
    bob.commands
        .send(Command::Publish {
            req: common::req(),
            node: bob.key("test"),
            text: "through the old relay".into(),
        })
        .await
        .expect("send");
    let mut published = false;
    let mut came_back = None;
    common::run_until(
        &mut bob,
        &mut model,
        15,
        "our item back from the relay",
        |e| {
            match e {
                NetEvent::Reply {
                    result: Ok(pubsub_tui::xmpp::Answer::Published { .. }),
                    ..
                } => published = true,
                NetEvent::Reply {
                    result: Err(error), ..
                } => panic!("publish failed: {error}"),
                NetEvent::Item(i) => came_back = Some(i.clone()),
                _ => {}
            }
            published && came_back.is_some()
        },
    )
    .await;
    let item = came_back.expect("item");
    assert_eq!(item.text(), "through the old relay");
    assert_eq!(
        item.format,
        ItemFormat::Native,
        "our payload survived the relay"
    );
    assert_eq!(model.nodes[0].feed.item_count(), 1);

    // Asking for a resync: a clear message that this service cannot do it.
    // As the user asks it: `r` in the TUI, its request sent to the core.
    press(&mut model, &bob, 'r').await;
    common::run_until(
        &mut bob,
        &mut model,
        15,
        "the refused resync",
        |e| matches!(e, NetEvent::Reply { result: Err(error), .. } if error.is_unsupported()),
    )
    .await;
    let message = model.outcome.clone().expect("an error shown").text;
    assert!(
        message.contains("cannot send stored items again, so resync is not possible"),
        "{message}"
    );
    assert_eq!(
        model.nodes[0].feed.item_count(),
        1,
        "the refused resync keeps what we had"
    );
    let _ = bob.commands.send(Command::Shutdown).await;
}
