//! The TUI's update function and whole-screen snapshots (ratatui `TestBackend` + insta) at
//! 80x24 and 40x12, with fixed times.

use std::time::Duration;

use chrono::{FixedOffset, TimeZone as _};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use pubsub_tui::feed::{FeedItem, ItemFormat, Seq};
use pubsub_tui::tui::model::{Focus, Model};
use pubsub_tui::tui::update::{Effect, Msg, update};
use pubsub_tui::tui::view;
use pubsub_tui::xmpp::protocol::SubState;
use pubsub_tui::xmpp::{Command, ConnState, NetEvent, SnapshotReason};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn item(node: &str, n: u64, sender: &str, text: &str) -> FeedItem {
    FeedItem {
        node: node.into(),
        id: Some(format!("beef{n:04}")),
        sender: Some(sender.into()),
        time: Some(format!("2026-11-24T07:{:02}:{:02}Z", n / 60 % 60, n % 60)),
        seq: Some(Seq {
            session: "beef".into(),
            n,
        }),
        service_seq: None,
        text: text.into(),
        format: ItemFormat::Native,
    }
}

fn model() -> Model {
    let mut m = Model::new(
        &["demo".into(), "news".into()],
        10_000,
        true,
        Duration::from_secs(5),
        FixedOffset::east_opt(0).expect("utc"),
    );
    let _ = update(&mut m, Msg::Resize(80, 24));
    m
}

fn net(m: &mut Model, ev: NetEvent) {
    let _ = update(m, Msg::Net(ev));
}

fn key(m: &mut Model, code: KeyCode) -> Vec<Effect> {
    update(m, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(m: &mut Model, text: &str) {
    for c in text.chars() {
        key(m, KeyCode::Char(c));
    }
}

fn populated() -> Model {
    let mut m = model();
    net(
        &mut m,
        NetEvent::Connection(ConnState::Online {
            jid: "alice@localhost/pubsub-tui".into(),
            resumed: false,
        }),
    );
    net(
        &mut m,
        NetEvent::Subscription {
            node: "demo".into(),
            state: SubState::Subscribed,
        },
    );
    net(
        &mut m,
        NetEvent::Subscription {
            node: "news".into(),
            state: SubState::Error("item-not-found".into()),
        },
    );
    net(
        &mut m,
        NetEvent::Snapshot {
            node: "demo".into(),
            items: vec![
                item("demo", 1, "bob@localhost/phone", "Hello!"),
                item("demo", 2, "bob@localhost/phone", "anyone out there?"),
            ],
            reason: SnapshotReason::Initial,
            lost: Vec::new(),
            at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 24, 7, 0, 9)
                .single()
                .expect("time"),
        },
    );
    for n in 3..=8 {
        net(
            &mut m,
            NetEvent::Item(item(
                "demo",
                n,
                if n % 2 == 0 {
                    "alice@localhost/pubsub-tui"
                } else {
                    "bob@localhost/phone"
                },
                &format!("message number {n} with some text to fill the line"),
            )),
        );
    }
    net(
        &mut m,
        NetEvent::Retracted {
            node: "demo".into(),
            id: "beef0004".into(),
        },
    );
    m.last_error = None;
    m
}

fn render(m: &Model, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::draw(f, m)).expect("draw");
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn snapshot_main_screen_80x24() {
    let mut m = populated();
    m.last_error = Some("subscribing to news: item-not-found".into());
    insta::assert_snapshot!(render(&m, 80, 24));
}

#[test]
fn snapshot_main_screen_40x12() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!(render(&m, 40, 12));
}

#[test]
fn snapshot_help_80x24_and_40x12() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('?'));
    assert!(m.show_help);
    insta::assert_snapshot!("help_80x24", render(&m, 80, 24));
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("help_40x12", render(&m, 40, 12));
}

#[test]
fn help_that_does_not_fit_scrolls_to_its_last_line_and_back() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Resize(40, 12));
    key(&mut m, KeyCode::Char('?'));
    let last_entry = "Esc         follow the newest items";
    let top = render(&m, 40, 12);
    assert!(!top.contains(last_entry), "{top}");
    assert!(top.contains("more"), "says there is more: {top}");
    key(&mut m, KeyCode::End);
    let bottom = render(&m, 40, 12);
    assert!(bottom.contains(last_entry), "{bottom}");
    assert!(!bottom.contains("more"), "{bottom}");
    // Down at the end stays at the end; PgUp and Home go back.
    let end = m.help_scroll;
    key(&mut m, KeyCode::Down);
    assert_eq!(m.help_scroll, end);
    key(&mut m, KeyCode::PageUp);
    assert!(m.help_scroll < end);
    key(&mut m, KeyCode::Home);
    assert_eq!(render(&m, 40, 12), top);
    // At 80x24 it fits: nothing to scroll.
    let _ = update(&mut m, Msg::Resize(80, 24));
    key(&mut m, KeyCode::End);
    assert_eq!(m.help_scroll, 0);
}

#[test]
fn snapshot_composing_while_reconnecting() {
    let mut m = populated();
    net(
        &mut m,
        NetEvent::Connection(ConnState::Retrying {
            attempt: 3,
            error: "Connection refused (os error 111)".into(),
            retry_in: Duration::from_secs(4),
        }),
    );
    key(&mut m, KeyCode::Char('i'));
    typed(&mut m, "sent while offline");
    key(&mut m, KeyCode::Enter);
    net(
        &mut m,
        NetEvent::PublishQueued {
            node: "demo".into(),
            id: "s1-1".into(),
        },
    );
    typed(&mut m, "draft <&> text");
    insta::assert_snapshot!(render(&m, 80, 24));
    // Once published, it no longer waits.
    net(
        &mut m,
        NetEvent::Published {
            node: "demo".into(),
            id: "s1-1".into(),
            auto: false,
        },
    );
    assert!(m.waiting.is_empty());
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('?'));
    for (w, h) in [
        (1, 1),
        (10, 3),
        (40, 12),
        (39, 11),
        (200, 60),
        (80, 5),
        (5, 80),
    ] {
        let _ = update(&mut m, Msg::Resize(w, h));
        let _ = render(&m, w, h);
    }
}

#[test]
fn enter_publishes_to_the_selected_node_and_clears_the_box() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    assert_eq!(m.focus, Focus::Compose);
    typed(&mut m, "q is text here, not quit");
    assert!(!m.quit);
    let fx = key(&mut m, KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Net(Command::Publish {
            node: "demo".into(),
            text: "q is text here, not quit".into()
        })]
    );
    assert_eq!(m.compose.value(), "");
    assert!(
        key(&mut m, KeyCode::Enter).is_empty(),
        "empty text publishes nothing"
    );
}

#[test]
fn keys_toggle_auto_resync_focus_and_quit() {
    let mut m = populated();
    assert_eq!(
        key(&mut m, KeyCode::Char('a')),
        [Effect::Net(Command::SetAutoPublish(false))]
    );
    assert!(!m.auto_publish);
    assert_eq!(
        key(&mut m, KeyCode::Char('r')),
        [Effect::Net(Command::Resync {
            node: "demo".into()
        })]
    );
    key(&mut m, KeyCode::BackTab);
    assert_eq!(m.focus, Focus::Subscriptions);
    key(&mut m, KeyCode::Char('j'));
    assert_eq!(m.selected, 1);
    assert_eq!(
        key(&mut m, KeyCode::Char('r')),
        [Effect::Net(Command::Resync {
            node: "news".into()
        })]
    );
    key(&mut m, KeyCode::Tab);
    assert_eq!(m.focus, Focus::Feed);
    let fx = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(fx, [Effect::Quit]);
}

#[test]
fn feed_follows_until_scrolled_and_esc_returns_to_follow() {
    let mut m = populated();
    for n in 9..100 {
        net(
            &mut m,
            NetEvent::Item(item("demo", n, "bob@localhost/phone", "x")),
        );
    }
    assert!(m.following());
    key(&mut m, KeyCode::PageUp);
    let offset = m.feed_offset;
    assert!(offset > 0);
    // New items while scrolled keep the reader's rows in place.
    net(
        &mut m,
        NetEvent::Item(item("demo", 100, "bob@localhost/phone", "new")),
    );
    assert_eq!(m.feed_offset, offset + 1);
    let _ = update(
        &mut m,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        }),
    );
    assert_eq!(m.feed_offset, offset + 1 - 3);
    key(&mut m, KeyCode::Esc);
    assert!(m.following());
    key(&mut m, KeyCode::Home);
    assert_eq!(m.feed_offset, m.feed_total() - m.feed_height());
}

#[test]
fn feed_is_bounded_with_an_eviction_marker() {
    let mut m = Model::new(
        &["n".into()],
        50,
        false,
        Duration::from_secs(5),
        FixedOffset::east_opt(0).expect("utc"),
    );
    let _ = update(&mut m, Msg::Resize(80, 24));
    for n in 0..500 {
        net(
            &mut m,
            NetEvent::Item(item("n", n, "bob@localhost/x", "flood")),
        );
    }
    let node = m.selected_node().expect("node");
    assert_eq!(node.feed.len(), 50);
    assert_eq!(node.feed.evicted(), 450);
    key(&mut m, KeyCode::Home);
    let screen = render(&m, 80, 24);
    assert!(screen.contains("450 older rows evicted"), "{screen}");
}

#[test]
fn resync_replaces_the_view_and_unsupported_is_said_plainly() {
    let mut m = populated();
    net(
        &mut m,
        NetEvent::Snapshot {
            node: "demo".into(),
            items: vec![item("demo", 1, "bob@localhost/phone", "only this")],
            reason: SnapshotReason::Manual,
            lost: Vec::new(),
            at: chrono::Utc::now(),
        },
    );
    assert_eq!(m.selected_node().expect("node").feed.item_count(), 1);
    net(
        &mut m,
        NetEvent::ResyncFailed {
            node: "demo".into(),
            reason: "feature-not-implemented".into(),
            unsupported: true,
        },
    );
    assert!(
        m.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot send stored items again")),
        "{:?}",
        m.last_error
    );
}

#[test]
fn paste_into_compose_drops_control_characters() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    let _ = update(&mut m, Msg::Paste("line1\nline2\u{1b}[2J\u{7}".into()));
    assert_eq!(m.compose.value(), "line1 line2[2J");
}
