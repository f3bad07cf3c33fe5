//! The TUI's update function and whole-screen snapshots (ratatui `TestBackend` + insta) at
//! 80x24 and 40x12, with fixed times.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone as _};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use pubsub_tui::feed::{FeedItem, ItemFormat, ItemParts, Seq};
use pubsub_tui::tui::model::{Focus, Model, Overlay};
use pubsub_tui::tui::update::{Effect, Msg, update};
use pubsub_tui::tui::view;
use pubsub_tui::xmpp::error::{Refusal, RequestError};
use pubsub_tui::xmpp::proto::{SubState, disco};
use pubsub_tui::xmpp::{Answer, Command, ConnState, NetEvent, RequestId, SnapshotReason};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn item(node: &str, n: u64, sender: &str, text: &str) -> FeedItem {
    ItemParts {
        node: node.into(),
        id: Some(format!("beef{n:04}")),
        sender: Some(sender.into()),
        publisher: None,
        time: Some(format!("2026-11-24T07:{:02}:{:02}Z", n / 60 % 60, n % 60)),
        seq: Some(Seq::new("beef", n)),
        service_seq: None,
        text: text.into(),
        format: ItemFormat::Native,
        tree: pubsub_tui::feed::payload::Tree::default(),
        received: None,
    }
    .into()
}

/// 07:00:30 on the day the test items are from.
fn at(h: u32, min: u32, sec: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 24, h, min, sec)
        .single()
        .expect("time")
}

fn model() -> Model {
    let mut m = Model::new(
        &xmpp_parsers::jid::Jid::new("pubsub.localhost").expect("jid"),
        &["demo".into(), "news".into()],
        10_000,
        true,
        Duration::from_secs(5),
        FixedOffset::east_opt(0).expect("utc"),
    );
    let _ = update(&mut m, Msg::Resize(80, 24));
    let _ = update(&mut m, Msg::Tick(at(7, 0, 0)));
    m
}

fn net(m: &mut Model, ev: NetEvent) {
    let _ = update(m, Msg::Net(ev));
}

/// The request id of the (one) network command among the effects.
fn req_of(fx: &[Effect]) -> RequestId {
    fx.iter()
        .find_map(|e| match e {
            Effect::Net(c) => c.req(),
            _ => None,
        })
        .expect("a request")
}

/// The newest request the TUI has not had answered.
fn last_req(m: &Model) -> RequestId {
    m.asked.keys().last().copied().unwrap_or(RequestId(1))
}

fn key(m: &mut Model, code: KeyCode) -> Vec<Effect> {
    update(m, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(m: &mut Model, text: &str) {
    for c in text.chars() {
        key(m, KeyCode::Char(c));
    }
}

fn refusal(condition: &str) -> RequestError {
    let xml = format!(
        "<error xmlns='jabber:client' type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
    );
    RequestError::Refused(Refusal::from_element(xml.parse().expect("xml")).expect("error"))
}

fn online() -> NetEvent {
    NetEvent::Connection(ConnState::Online {
        jid: "alice@localhost/pubsub-tui-3f2a".into(),
        resumed: false,
        server: None,
    })
}

/// [`populated`], then items 9 to 99 on demo: more than a screen.
fn flooded() -> Model {
    let mut m = populated();
    for n in 9..100 {
        net(
            &mut m,
            NetEvent::Item(item("demo", n, "bob@localhost/phone", "x")),
        );
    }
    m
}

fn populated() -> Model {
    let mut m = model();
    net(&mut m, online());
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
            state: SubState::Failed(refusal("item-not-found")),
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
            at: at(7, 0, 9),
        },
    );
    for n in 3..=8 {
        net(
            &mut m,
            NetEvent::Item(item(
                "demo",
                n,
                if n % 2 == 0 {
                    "alice@localhost/pubsub-tui-3f2a"
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
    // Long enough after the news that the status bar is quiet again.
    let _ = update(&mut m, Msg::Tick(at(7, 1, 0)));
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

/// The cursor's position after drawing (the compose box puts it at the insertion point).
fn cursor(model: &Model, width: u16, height: u16) -> (u16, u16) {
    let mut term = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    term.draw(|f| view::draw(f, model)).expect("draw");
    let at = term.get_cursor_position().expect("cursor");
    (at.x, at.y)
}

#[test]
fn snapshot_main_screen_80x24() {
    let m = populated();
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
    assert_eq!(m.overlay, Overlay::Help { scroll: 0 });
    insta::assert_snapshot!("help_80x24", render(&m, 80, 24));
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("help_40x12", render(&m, 40, 12));
}

fn help_scroll(m: &Model) -> u16 {
    match m.overlay {
        Overlay::Help { scroll } => scroll,
        other => panic!("help is not open: {other:?}"),
    }
}

#[test]
fn help_that_does_not_fit_scrolls_to_its_last_line_and_back() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Resize(40, 12));
    key(&mut m, KeyCode::Char('?'));
    let last_entry = "Ctrl-C      quit";
    let top = render(&m, 40, 12);
    assert!(top.contains("more"), "says there is more: {top}");
    key(&mut m, KeyCode::End);
    let bottom = render(&m, 40, 12);
    assert!(bottom.contains(last_entry), "{bottom}");
    assert!(!bottom.contains("more"), "{bottom}");
    // Down at the end stays at the end; PgUp and Home go back.
    let end = help_scroll(&m);
    key(&mut m, KeyCode::Down);
    assert_eq!(help_scroll(&m), end);
    key(&mut m, KeyCode::PageUp);
    assert!(help_scroll(&m) < end);
    key(&mut m, KeyCode::Home);
    assert_eq!(render(&m, 40, 12), top);
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::None);
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
    let r = last_req(&m);
    net(
        &mut m,
        NetEvent::PublishSent {
            req: Some(r),
            node: "demo".into(),
            id: "s1-1".into(),
            queued: true,
        },
    );
    typed(&mut m, "draft <&> text");
    insta::assert_snapshot!(render(&m, 80, 24));
    assert_eq!(m.waiting(), 1);
    // Once published, it no longer waits.
    let r = last_req(&m);
    net(
        &mut m,
        NetEvent::Reply {
            req: r,
            result: Ok(Answer::Published {
                node: "demo".into(),
                id: "s1-1".into(),
            }),
        },
    );
    assert_eq!(m.waiting(), 0);
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    let mut m = populated();
    for overlay in ['?', 'm'] {
        key(&mut m, KeyCode::Char(overlay));
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
        key(&mut m, KeyCode::Esc);
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
            req: req_of(&fx),
            node: m.key("demo"),
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
        [Effect::Net(Command::SetAutoPublish {
            enabled: false,
            node: Some("demo".into()),
        })]
    );
    assert!(!m.auto_publish);
    let fx = key(&mut m, KeyCode::Char('r'));
    assert_eq!(
        fx,
        [Effect::Net(Command::Resync {
            req: req_of(&fx),
            node: m.key("demo")
        })]
    );
    // Shift-Tab as crossterm reports it: BackTab with SHIFT.
    let _ = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT)),
    );
    assert_eq!(m.focus, Focus::Subscriptions);
    key(&mut m, KeyCode::Char('j'));
    assert_eq!(m.selected, 1);
    let fx = key(&mut m, KeyCode::Char('r'));
    assert_eq!(
        fx,
        [Effect::Net(Command::Resync {
            req: req_of(&fx),
            node: m.key("news")
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
fn auto_publish_goes_to_the_selected_node() {
    let mut m = populated();
    key(&mut m, KeyCode::BackTab);
    assert_eq!(m.focus, Focus::Subscriptions);
    // Auto-publish is on: moving the selection moves its target.
    assert_eq!(
        key(&mut m, KeyCode::Down),
        [Effect::Net(Command::SetAutoPublish {
            enabled: true,
            node: Some("news".into()),
        })]
    );
    net(
        &mut m,
        NetEvent::AutoPublish {
            enabled: true,
            interval: Duration::from_secs(5),
            node: Some("news".into()),
        },
    );
    assert!(render(&m, 80, 24).contains("auto 5s → news"));
    // Off: moving does not send anything.
    key(&mut m, KeyCode::Char('a'));
    assert!(key(&mut m, KeyCode::Up).is_empty());
}

#[test]
fn feed_follows_until_scrolled_and_esc_returns_to_follow() {
    let mut m = flooded();
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
fn the_first_key_in_a_flood_selects_a_row_that_stays_in_view() {
    let mut m = flooded();
    assert!(m.following());
    key(&mut m, KeyCode::Up);
    let selected = m.cursor.expect("Up selects a row");
    let row_in_view = selected - m.feed_offset;
    for n in 100..150 {
        net(
            &mut m,
            NetEvent::Item(item("demo", n, "bob@localhost/phone", "flood")),
        );
    }
    assert_eq!(
        m.cursor,
        Some(selected + 50),
        "the same item stays selected"
    );
    assert_eq!(
        m.cursor.map(|c| c - m.feed_offset),
        Some(row_in_view),
        "and where it was on screen: the view is pinned"
    );
    assert!(!m.following());
}

#[test]
fn feed_is_bounded_with_an_eviction_marker() {
    let mut m = Model::new(
        &xmpp_parsers::jid::Jid::new("pubsub.localhost").expect("jid"),
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
    assert_eq!(node.feed.item_count(), 50);
    assert!(node.feed.evicted() >= 450);
    key(&mut m, KeyCode::Home);
    let screen = render(&m, 80, 24);
    assert!(screen.contains("older rows evicted"), "{screen}");
}

#[test]
fn resync_keeps_what_was_seen_and_evicted_and_drops_what_was_retracted() {
    let mut m = populated();
    // The service now has 5..8 (1..4 evicted; 6 retracted while we looked away).
    net(
        &mut m,
        NetEvent::Snapshot {
            node: "demo".into(),
            items: [5, 7, 8]
                .iter()
                .map(|&n| item("demo", n, "bob@localhost/phone", "x"))
                .collect(),
            reason: SnapshotReason::Manual,
            lost: Vec::new(),
            at: at(7, 1, 0),
        },
    );
    let feed = &m.selected_node().expect("node").feed;
    let ids: Vec<&str> = feed.item_ids().collect();
    // 4 was retracted before (and is not kept), 6 is gone from within the window.
    assert_eq!(
        ids,
        [
            "beef0001", "beef0002", "beef0003", "beef0005", "beef0007", "beef0008"
        ]
    );
    assert_eq!(
        feed.gone_ids().collect::<Vec<_>>(),
        ["beef0001", "beef0002", "beef0003"]
    );
    let screen = render(&m, 100, 24);
    assert!(
        screen.contains("3 items above are no longer on the service (evicted); kept here"),
        "{screen}"
    );
    assert!(!screen.contains("lost"), "nothing was lost: {screen}");
}

#[test]
fn unsupported_resync_is_said_plainly() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('r'));
    let unsupported = RequestError::Refused(
        Refusal::from_element(
            "<error xmlns='jabber:client' type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='retrieve-items'/></error>"
                .parse()
                .expect("xml"),
        )
        .expect("error"),
    );
    let r = last_req(&m);
    net(
        &mut m,
        NetEvent::Reply {
            req: r,
            result: Err(unsupported),
        },
    );
    let outcome = m.outcome.clone().expect("the answer to r");
    assert!(
        outcome.text.contains("cannot send stored items again"),
        "{outcome:?}"
    );
}

#[test]
fn paste_keeps_line_breaks_and_drops_control_characters() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    // Terminals paste a CR for each line break.
    let _ = update(
        &mut m,
        Msg::Paste("line1\rline2\r\nline3\u{1b}[2J\u{7}".into()),
    );
    assert_eq!(m.compose.value(), "line1\nline2\nline3[2J");
    // Shown with ⏎ in the one-row box.
    assert!(render(&m, 80, 24).contains("line1⏎line2⏎line3[2J"));
    // Alt-Enter adds one by hand; Enter publishes the text as it is.
    let _ = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)),
    );
    typed(&mut m, "four");
    let fx = key(&mut m, KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Net(Command::Publish {
            req: req_of(&fx),
            node: m.key("demo"),
            text: "line1\nline2\nline3[2J\nfour".into()
        })]
    );
}

#[test]
fn the_compose_cursor_is_at_the_insertion_point_in_both_layouts() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    typed(&mut m, "abc");
    // Full layout: the box has a left border, so text starts in column 1.
    let (x, _) = cursor(&m, 80, 24);
    assert_eq!(x, 1 + 3);
    // Compact layout: no side border, text starts in column 0.
    let _ = update(&mut m, Msg::Resize(40, 12));
    let (x, y) = cursor(&m, 40, 12);
    assert_eq!(x, 3, "right after the c");
    assert!(
        render(&m, 40, 12)
            .lines()
            .nth(usize::from(y))
            .is_some_and(|l| l.starts_with("abc"))
    );
    key(&mut m, KeyCode::Left);
    assert_eq!(cursor(&m, 40, 12).0, 2);
}

#[test]
fn text_over_the_item_limit_is_refused_and_kept() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    let limit = pubsub_tui::xmpp::proto::MAX_TEXT_XML_BYTES;
    let _ = update(&mut m, Msg::Paste("x".repeat(limit + 1)));
    assert_eq!(
        m.compose.value(),
        "",
        "the paste does not fit: refused whole"
    );
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text.contains("does not fit"))
    );
    let _ = update(&mut m, Msg::Paste("x".repeat(limit)));
    assert_eq!(m.compose.value().len(), limit, "exactly the limit fits");
    key(&mut m, KeyCode::Char('y'));
    assert_eq!(m.compose.value().len(), limit, "one more does not");
}

#[test]
fn a_failed_publish_keeps_its_text_and_p_sends_it_again() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    typed(&mut m, "my precious words");
    key(&mut m, KeyCode::Enter);
    let r = last_req(&m);
    net(
        &mut m,
        NetEvent::PublishSent {
            req: Some(r),
            node: "demo".into(),
            id: "s-9".into(),
            queued: false,
        },
    );
    let r = last_req(&m);
    net(
        &mut m,
        NetEvent::Reply {
            req: r,
            result: Err(refusal("forbidden")),
        },
    );
    assert_eq!(m.waiting(), 0);
    let screen = render(&m, 200, 24);
    assert!(screen.contains("1 failed (P puts back)"), "{screen}");
    assert!(
        screen.contains("publishing «my precious words» to demo failed: not allowed"),
        "{screen}"
    );
    // Quitting now would lose it: asked first.
    key(&mut m, KeyCode::Esc);
    assert!(key(&mut m, KeyCode::Char('q')).is_empty());
    assert!(render(&m, 80, 24).contains("1 failed item"));
    key(&mut m, KeyCode::Char('n'));
    // P puts it back in the compose box, to send again (to the selected node).
    let _ = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('P'), KeyModifiers::SHIFT)),
    );
    assert!(m.failed.is_empty());
    assert_eq!(m.focus, Focus::Compose);
    assert_eq!(m.compose.value(), "my precious words");
    let fx = key(&mut m, KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Net(Command::Publish {
            req: req_of(&fx),
            node: m.key("demo"),
            text: "my precious words".into()
        })]
    );
    // Control: a failed auto-publish is not kept for resending.
    net(
        &mut m,
        NetEvent::AutoPublishFailed {
            node: "demo".into(),
            id: "s-10".into(),
            error: refusal("forbidden"),
        },
    );
    assert!(m.failed.is_empty());
}

#[test]
fn notices_fade_errors_stay_longer_the_last_outcome_stays_and_m_shows_them_all() {
    let mut m = populated();
    net(
        &mut m,
        NetEvent::Gap {
            node: "demo".into(),
            sender: "bob@localhost/phone".into(),
            from: 3,
            to: 4,
        },
    );
    assert!(render(&m, 120, 24).contains("missing (seq 3–4)"));
    let _ = update(&mut m, Msg::Tick(at(7, 1, 11)));
    assert!(
        !render(&m, 120, 24).contains("missing (seq 3–4)"),
        "gone after 10 s"
    );
    net(
        &mut m,
        NetEvent::Subscription {
            node: "news".into(),
            state: SubState::Retrying {
                error: refusal("service-unavailable"),
                attempt: 1,
                retry_in: Duration::from_secs(2),
            },
        },
    );
    let _ = update(&mut m, Msg::Tick(at(7, 1, 25)));
    assert!(
        render(&m, 120, 24).contains("news: pubsub.localhost is not available"),
        "errors stay 30 s"
    );
    let _ = update(&mut m, Msg::Tick(at(7, 1, 42)));
    assert!(!render(&m, 120, 24).contains("news: pubsub.localhost is not available"));
    // The user's last action keeps its outcome until the next one.
    key(&mut m, KeyCode::Char('r'));
    let _ = update(&mut m, Msg::Tick(at(7, 9, 0)));
    assert!(render(&m, 120, 24).contains("resyncing demo…"));
    // m opens the log: all of it is there, with times.
    key(&mut m, KeyCode::Char('m'));
    let log = render(&m, 120, 40);
    assert!(log.contains("Messages"), "{log}");
    assert!(log.contains("missing (seq 3–4)"), "{log}");
    assert!(log.contains("trying again"), "{log}");
    assert!(log.contains("07:01:42 resyncing demo…"), "{log}");
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::None);
}

#[test]
fn quitting_with_items_not_yet_published_asks_first() {
    let mut m = populated();
    let r = last_req(&m);
    net(
        &mut m,
        NetEvent::PublishSent {
            req: Some(r),
            node: "demo".into(),
            id: "s-1".into(),
            queued: true,
        },
    );
    assert!(key(&mut m, KeyCode::Char('q')).is_empty(), "asks first");
    assert_eq!(m.overlay, Overlay::Confirm);
    assert!(render(&m, 80, 24).contains("1 item not confirmed by the service"));
    assert!(key(&mut m, KeyCode::Char('n')).is_empty());
    assert_eq!(m.overlay, Overlay::None);
    key(&mut m, KeyCode::Char('q'));
    assert_eq!(key(&mut m, KeyCode::Char('y')), [Effect::Quit]);
    // A draft in the compose box is asked about too.
    let mut m = populated();
    key(&mut m, KeyCode::Char('i'));
    typed(&mut m, "half a thought");
    key(&mut m, KeyCode::Esc);
    assert!(key(&mut m, KeyCode::Char('q')).is_empty());
    assert!(render(&m, 80, 24).contains("the draft in the compose box"));
    // Control: nothing to lose, q quits at once.
    let mut m = populated();
    assert_eq!(key(&mut m, KeyCode::Char('q')), [Effect::Quit]);
}

#[test]
fn a_paste_goes_to_the_compose_box_and_esc_typed_fast_still_leaves_it() {
    let mut m = populated();
    assert_eq!(m.focus, Focus::Feed);
    // A paste while the feed has the focus is text, not commands (no q quitting).
    let fx = update(&mut m, Msg::Paste("quite a paste".into()));
    assert!(fx.is_empty());
    assert_eq!(m.focus, Focus::Compose);
    assert_eq!(m.compose.value(), "quite a paste");
    // Esc and m typed together arrive as Alt-m: leave the box, and m opens the messages.
    let _ = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('m'), KeyModifiers::ALT)),
    );
    assert_eq!(m.focus, Focus::Feed);
    assert_eq!(m.overlay, Overlay::Messages { scroll: 0 });
    assert_eq!(m.compose.value(), "quite a paste", "the draft stays");
}

#[test]
fn toggling_auto_publish_says_so() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('a'));
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text == "auto-publish off")
    );
    key(&mut m, KeyCode::Char('a'));
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text == "auto-publish on: an item every 5 s to demo")
    );
    assert!(render(&m, 80, 24).contains("auto 5s → demo"));
}

#[test]
fn node_states_follow_the_connection() {
    let mut m = populated();
    assert!(render(&m, 80, 24).contains("demo live"));
    net(&mut m, NetEvent::Connection(ConnState::Suspended));
    let screen = render(&m, 80, 24);
    assert!(screen.contains("demo offline"), "{screen}");
    assert!(!screen.contains("live"), "{screen}");
    net(
        &mut m,
        NetEvent::Connection(ConnState::Failed {
            error: "the server rejected the credentials (not-authorized)".into(),
        }),
    );
    let screen = render(&m, 120, 24);
    assert!(screen.contains("demo not connected"), "{screen}");
    assert_eq!(
        screen.matches("connection failed").count(),
        1,
        "said once: {screen}"
    );
    // A node subscribing when the login fails does not say "subscribing" for ever, and the
    // failure (which the session reports for each node too) is told once.
    let mut m = model();
    net(
        &mut m,
        NetEvent::Subscription {
            node: "demo".into(),
            state: SubState::Failed(RequestError::Connection(
                "connection failed: bad password".into(),
            )),
        },
    );
    net(
        &mut m,
        NetEvent::Connection(ConnState::Failed {
            error: "bad password".into(),
        }),
    );
    let screen = render(&m, 80, 24);
    assert!(!screen.contains("subscribing"), "{screen}");
    assert_eq!(screen.matches("bad password").count(), 1, "{screen}");
}

#[test]
fn dates_show_when_not_today_and_days_are_separated() {
    let mut m = model();
    net(&mut m, online());
    let old = ItemParts {
        time: Some("2020-01-02T03:04:05Z".into()),
        ..item("demo", 1, "bob@localhost/phone", "from long ago").to_parts()
    }
    .into();
    net(&mut m, NetEvent::Item(old));
    let screen = render(&m, 80, 24);
    assert!(screen.contains("Thursday 2 January 2020"), "{screen}");
    assert!(
        screen.contains("· 2020-01-02"),
        "last activity with its date: {screen}"
    );
    net(
        &mut m,
        NetEvent::Item(item("demo", 2, "bob@localhost/phone", "today")),
    );
    let screen = render(&m, 80, 24);
    assert!(screen.contains("Tuesday 24 November 2026"), "{screen}");
    assert!(
        screen.contains("· 07:00:02"),
        "today: the time only: {screen}"
    );
    // One stored item is an item, not items.
    let mut m = model();
    net(
        &mut m,
        NetEvent::Snapshot {
            node: "demo".into(),
            items: vec![item("demo", 1, "bob@localhost/phone", "x")],
            reason: SnapshotReason::Initial,
            lost: Vec::new(),
            at: at(7, 0, 1),
        },
    );
    assert!(render(&m, 80, 24).contains("1 stored item retrieved"));
}

// ---- The service explorer ----

fn page(nodes: &[(&str, Option<&str>)]) -> Answer {
    Answer::Nodes(disco::Items {
        node: None,
        items: nodes
            .iter()
            .map(|(n, name)| disco::Listed {
                jid: "pubsub.localhost".into(),
                node: Some((*n).into()),
                name: name.map(str::to_owned),
            })
            .collect(),
        page: None,
    })
}

fn answer(m: &mut Model, req: RequestId, result: Result<Answer, RequestError>) -> Vec<Effect> {
    update(m, Msg::Net(NetEvent::Reply { req, result }))
}

/// The network commands among effects.
fn commands(fx: &[Effect]) -> Vec<&Command> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Net(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn leaf_info(node: &str, title: &str) -> Answer {
    Answer::Info(disco::Info {
        node: Some(node.into()),
        identities: vec![disco::Identity {
            category: "pubsub".into(),
            kind: "leaf".into(),
            name: None,
        }],
        features: Vec::new(),
        meta: Some(disco::NodeMeta {
            title: Some(title.into()),
            payload_type: Some("urn:example:weather".into()),
            ..disco::NodeMeta::default()
        }),
    })
}

#[test]
fn the_explorer_lists_describes_filters_follows_and_leaves() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Resize(100, 30));
    let fx = key(&mut m, KeyCode::Char('e'));
    let [
        Command::ListNodes {
            req,
            parent: None,
            after: None,
            ..
        },
    ] = commands(&fx)[..]
    else {
        panic!("{fx:?}")
    };
    let fx = answer(
        &mut m,
        *req,
        Ok(page(&[
            ("demo", None),
            ("weather", Some("Weather")),
            ("news", None),
        ])),
    );
    // Each listed node's meta-data is asked for.
    let infos: Vec<(RequestId, String)> = commands(&fx)
        .iter()
        .filter_map(|c| match c {
            Command::Info {
                req, node: Some(n), ..
            } => Some((*req, n.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 3, "{fx:?}");
    let weather = infos
        .iter()
        .find(|(_, n)| n == "weather")
        .expect("weather")
        .0;
    answer(&mut m, weather, Ok(leaf_info("weather", "Weather reports")));
    let screen = render(&m, 100, 30);
    assert!(
        screen.contains("Explore pubsub.localhost · 3 nodes, 1 described"),
        "{screen}"
    );
    assert!(screen.contains("Weather reports"), "{screen}");
    assert!(screen.contains("urn:example:weather"), "{screen}");
    // Followed nodes are marked; weather is not followed.
    assert!(screen.contains("● demo"), "{screen}");
    assert!(!screen.contains("● weather"), "{screen}");

    // Filter by title, then follow: it joins the subscriptions at once, kept for next time.
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "REPORTS");
    assert!(render(&m, 100, 30).contains("filter: REPORTS"));
    assert_eq!(m.explorer.visible().len(), 1);
    key(&mut m, KeyCode::Enter);
    let fx = key(&mut m, KeyCode::Char('s'));
    assert!(
        matches!(commands(&fx)[..], [Command::Follow { node, .. }] if node.node == "weather"),
        "{fx:?}"
    );
    assert!(fx.contains(&Effect::Remember {
        node: "weather".into(),
        follow: true
    }));
    assert!(m.follows("weather"));
    let r = req_of(&fx);
    answer(
        &mut m,
        r,
        Ok(Answer::Followed {
            node: "weather".into(),
            state: SubState::Subscribed,
        }),
    );
    assert!(render(&m, 100, 30).contains("following weather (subscribed)"));
    // Leave it again.
    let fx = key(&mut m, KeyCode::Char('u'));
    assert!(
        matches!(commands(&fx)[..], [Command::Unfollow { node, .. }] if node.node == "weather"),
        "{fx:?}"
    );
    assert!(fx.contains(&Effect::Remember {
        node: "weather".into(),
        follow: false
    }));
    assert!(!m.follows("weather"));
    // Esc clears the filter first, then closes.
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::Explorer);
    assert_eq!(m.explorer.visible().len(), 3);
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::None);
    // Opened again: the list is kept, not asked for again.
    assert!(commands(&key(&mut m, KeyCode::Char('e'))).is_empty());
}

#[test]
fn a_node_added_by_name_that_the_service_refuses_is_undone_and_a_retried_one_kept() {
    let mut m = populated();
    let fx = key(&mut m, KeyCode::Char('e'));
    answer(&mut m, req_of(&fx), Ok(page(&[])));
    key(&mut m, KeyCode::Char('+'));
    typed(&mut m, "nope");
    let fx = key(&mut m, KeyCode::Enter);
    assert!(m.follows("nope"), "shown at once");
    let fx = answer(&mut m, req_of(&fx), Err(refusal("item-not-found")));
    assert!(!m.follows("nope"), "undone");
    assert!(
        matches!(commands(&fx)[..], [Command::Unfollow { node, .. }] if node.node == "nope"),
        "{fx:?}"
    );
    assert!(fx.contains(&Effect::Remember {
        node: "nope".into(),
        follow: false
    }));
    let outcome = m.outcome.clone().expect("said");
    assert!(
        outcome
            .text
            .contains("cannot follow nope: no such node 'nope' at pubsub.localhost"),
        "{outcome:?}"
    );
    // Control: a temporary refusal keeps the node (the core tries again).
    key(&mut m, KeyCode::Char('+'));
    typed(&mut m, "later");
    let fx = key(&mut m, KeyCode::Enter);
    let wait = RequestError::Refused(
        Refusal::from_element(
            "<error xmlns='jabber:client' type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                .parse()
                .expect("xml"),
        )
        .expect("error"),
    );
    assert!(commands(&answer(&mut m, req_of(&fx), Err(wait))).is_empty());
    assert!(m.follows("later"));
}

#[test]
fn a_cut_list_a_refused_list_and_paging_are_handled() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Resize(120, 30));
    let fx = key(&mut m, KeyCode::Char('e'));
    let names: Vec<String> = (0..100).map(|i| format!("n{i:03}")).collect();
    let entries: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), None)).collect();
    let fx = answer(&mut m, req_of(&fx), Ok(page(&entries)));
    assert_eq!(commands(&fx).len(), 8, "meta-data a few at a time: {fx:?}");
    let screen = render(&m, 120, 30);
    assert!(
        screen.contains("the service stopped its list at 100 nodes; there may be more"),
        "{screen}"
    );
    // A paged answer (RSM) asks for the next page after the last entry.
    let fx = key(&mut m, KeyCode::Char('R'));
    let Answer::Nodes(mut first) = page(&[("a", None), ("b", None)]) else {
        unreachable!()
    };
    first.page = Some(xmpp_parsers::rsm::SetResult {
        first: None,
        last: Some("b".into()),
        count: Some(3),
    });
    let fx = answer(&mut m, req_of(&fx), Ok(Answer::Nodes(first)));
    assert!(
        commands(&fx).iter().any(|c| matches!(c,
            Command::ListNodes { parent: None, after: Some(a), .. } if a == "b")),
        "{fx:?}"
    );
    // A refused list says so in words.
    let fx = key(&mut m, KeyCode::Char('R'));
    answer(&mut m, req_of(&fx), Err(refusal("forbidden")));
    let screen = render(&m, 120, 30);
    assert!(
        screen.contains("pubsub.localhost does not list its nodes"),
        "{screen}"
    );
}

#[test]
fn the_capability_view_sets_advertised_features_against_the_xep() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Resize(100, 40));
    let fx = key(&mut m, KeyCode::Char('e'));
    answer(&mut m, req_of(&fx), Ok(page(&[])));
    let fx = key(&mut m, KeyCode::Char('c'));
    let [
        Command::Info {
            req, node: None, ..
        },
    ] = commands(&fx)[..]
    else {
        panic!("{fx:?}")
    };
    let features = [
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#subscribe",
        "http://jabber.org/protocol/pubsub#collections",
        "urn:xmpp:other",
    ];
    answer(
        &mut m,
        *req,
        Ok(Answer::Info(disco::Info {
            node: None,
            identities: vec![disco::Identity {
                category: "pubsub".into(),
                kind: "service".into(),
                name: Some("Test service".into()),
            }],
            features: features.iter().map(|f| (*f).to_owned()).collect(),
            meta: None,
        })),
    );
    let screen = render(&m, 100, 40);
    assert!(
        screen.contains("identity pubsub/service  Test service"),
        "{screen}"
    );
    assert!(
        screen.contains("XEP-0060 features: 2 of 44 advertised"),
        "{screen}"
    );
    assert!(screen.contains("✓ publish"), "{screen}");
    assert!(screen.contains("· access-authorize"), "{screen}");
    // Scrolled to the end: what the XEP does not define, and the rest.
    key(&mut m, KeyCode::End);
    let end = render(&m, 100, 40);
    assert!(end.contains("? collections"), "{end}");
    assert!(end.contains("urn:xmpp:other"), "{end}");
    key(&mut m, KeyCode::Char('c'));
    assert!(!render(&m, 100, 40).contains("XEP-0060 features"));
}

#[test]
fn typed_and_pasted_node_names_carry_no_control_characters() {
    let mut m = populated();
    let fx = key(&mut m, KeyCode::Char('e'));
    answer(&mut m, req_of(&fx), Ok(page(&[])));
    key(&mut m, KeyCode::Char('+'));
    let _ = update(&mut m, Msg::Paste("evil\u{1b}[2J\nname\u{7}".into()));
    let fx = key(&mut m, KeyCode::Enter);
    let [Command::Follow { node, .. }] = commands(&fx)[..] else {
        panic!("{fx:?}")
    };
    assert!(!node.node.chars().any(char::is_control), "{node:?}");
    assert!(node.node.starts_with("evil"), "{node:?}");
    // Only spaces: nothing is followed.
    key(&mut m, KeyCode::Char('+'));
    typed(&mut m, "   ");
    assert!(commands(&key(&mut m, KeyCode::Enter)).is_empty());
}

#[test]
fn the_selection_stays_through_filters_and_reloads_and_a_reload_says_when_done() {
    let mut m = populated();
    let fx = key(&mut m, KeyCode::Char('e'));
    answer(
        &mut m,
        req_of(&fx),
        Ok(page(&[("alpha", None), ("beta", None), ("gamma", None)])),
    );
    key(&mut m, KeyCode::End);
    let selected = |m: &Model| m.explorer.selected_entry().map(|e| e.node.clone());
    assert_eq!(selected(&m).as_deref(), Some("gamma"));
    // A filter that still shows it keeps it; Esc clears the filter and keeps it too.
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "a");
    assert_eq!(selected(&m).as_deref(), Some("gamma"));
    key(&mut m, KeyCode::Esc);
    assert_eq!(selected(&m).as_deref(), Some("gamma"));
    // Control: a filter that hides it moves to what is shown.
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "bet");
    assert_eq!(selected(&m).as_deref(), Some("beta"));
    key(&mut m, KeyCode::Esc);
    key(&mut m, KeyCode::End);
    // A reload (from the capability view too) keeps it, and says when the list is in.
    key(&mut m, KeyCode::Char('c'));
    let fx = key(&mut m, KeyCode::Char('R'));
    let reload = commands(&fx)
        .iter()
        .find_map(|c| match c {
            Command::ListNodes { req, .. } => Some(*req),
            _ => None,
        })
        .expect("listed again");
    answer(
        &mut m,
        reload,
        Ok(page(&[("alpha", None), ("beta", None), ("gamma", None)])),
    );
    assert_eq!(selected(&m).as_deref(), Some("gamma"));
    let outcome = m.outcome.clone().expect("said");
    assert_eq!(outcome.text, "3 nodes listed");
}

// ----- the owner's requests and the item actions ----------------------------------------------

use pubsub_tui::xmpp::proto::form::Form;
use pubsub_tui::xmpp::proto::owner::{Affiliation, Configure};
use pubsub_tui::xmpp::{OwnerDone, OwnerOp};

/// The one network command among the effects.
fn command(fx: &[Effect]) -> &Command {
    fx.iter()
        .find_map(|e| match e {
            Effect::Net(c) => Some(c),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a command among {fx:?}"))
}

/// Prosody 0.12's configuration form, as captured.
fn prosody_form() -> Form {
    let xml = include_str!("fixtures/captured/prosody_config.xml");
    Configure::parse_result(Some(&xml.trim().parse().expect("xml"))).expect("a form")
}

fn owned(done: OwnerDone) -> Answer {
    Answer::Owner {
        node: "demo".into(),
        done,
    }
}

fn ctrl(m: &mut Model, c: char) -> Vec<Effect> {
    update(
        m,
        Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)),
    )
}

/// Open the configuration form of the selected node (demo) with Prosody's form.
fn open_form(m: &mut Model) {
    let fx = key(m, KeyCode::Char('C'));
    let Command::Owner {
        req,
        node,
        op: OwnerOp::GetConfig,
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    assert_eq!(node.node, "demo");
    answer(m, *req, Ok(owned(OwnerDone::Config(prosody_form()))));
    assert_eq!(m.overlay, Overlay::Form);
}

/// Move the form's selection to the row of `var`.
fn to_field(m: &mut Model, var: &str) {
    key(m, KeyCode::Home);
    for _ in 0..100 {
        if m.form
            .as_ref()
            .and_then(|f| f.selected_field())
            .is_some_and(|f| f.var.as_deref() == Some(var))
        {
            return;
        }
        key(m, KeyCode::Down);
    }
    panic!("no row for {var}");
}

fn not_acceptable(text: &str) -> RequestError {
    let xml = format!(
        "<error xmlns='jabber:client' type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text></error>"
    );
    RequestError::Refused(Refusal::from_element(xml.parse().expect("xml")).expect("error"))
}

#[test]
fn configure_through_the_form_a_refusal_keeps_the_edits() {
    let mut m = populated();
    open_form(&mut m);
    insta::assert_snapshot!("form_80x24", render(&m, 80, 24));
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("form_40x12", render(&m, 40, 12));
    let _ = update(&mut m, Msg::Resize(80, 24));

    // max_items past the range the form gives (XEP-0122): refused as the edit ends, which
    // stays open.
    to_field(&mut m, "pubsub#max_items");
    key(&mut m, KeyCode::Enter);
    key(&mut m, KeyCode::Backspace);
    key(&mut m, KeyCode::Backspace);
    typed(&mut m, "100000");
    key(&mut m, KeyCode::Enter);
    assert!(
        render(&m, 80, 24).contains("\"100000\" is not a whole number from 1 to 10000, or max")
    );
    assert!(m.form.as_ref().is_some_and(|f| f.edit.is_some()));
    key(&mut m, KeyCode::Backspace);
    key(&mut m, KeyCode::Backspace);
    key(&mut m, KeyCode::Enter);
    // Within it, but the service refuses: the form stays with the edit and the reason.
    to_field(&mut m, "pubsub#notify_retract");
    key(&mut m, KeyCode::Char(' '));
    let fx = ctrl(&mut m, 's');
    let Command::Owner {
        req,
        op: OwnerOp::SetConfig(sent),
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    assert_eq!(
        sent.field("pubsub#max_items")
            .map(pubsub_tui::xmpp::proto::form::Field::value),
        Some("1000")
    );
    assert!(ctrl(&mut m, 's').is_empty(), "sent once");
    answer(
        &mut m,
        *req,
        Err(not_acceptable("max_items: out of bounds")),
    );
    assert_eq!(m.overlay, Overlay::Form);
    let screen = render(&m, 80, 24);
    assert!(screen.contains("max_items: out of bounds"), "{screen}");
    assert!(screen.contains("*Max # of items to persist"), "{screen}");
    let f = m.form.as_ref().expect("form");
    assert_eq!(f.changed(), ["pubsub#max_items", "pubsub#notify_retract"]);

    // Fixed and sent again: accepted; the form closes and says what changed.
    to_field(&mut m, "pubsub#max_items");
    key(&mut m, KeyCode::Enter);
    for _ in 0..6 {
        key(&mut m, KeyCode::Backspace);
    }
    typed(&mut m, "50");
    key(&mut m, KeyCode::Enter);
    let fx = ctrl(&mut m, 's');
    let Command::Owner { req, .. } = command(&fx) else {
        panic!()
    };
    answer(&mut m, *req, Ok(owned(OwnerDone::Configured)));
    assert_eq!(m.overlay, Overlay::None);
    assert!(
        m.outcome.as_ref().is_some_and(
            |o| o.text == "configured demo: changed pubsub#max_items, pubsub#notify_retract"
        ),
        "{:?}",
        m.outcome
    );
}

#[test]
fn leaving_the_form_sends_the_cancel_and_asks_first_when_something_changed() {
    let mut m = populated();
    open_form(&mut m);
    // A value typed, then left with Esc: nothing changed.
    to_field(&mut m, "pubsub#title");
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "New");
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.form.as_ref().map(|f| f.changed().len()), Some(0));
    let fx = key(&mut m, KeyCode::Esc);
    assert!(matches!(
        command(&fx),
        Command::Owner {
            op: OwnerOp::CancelConfig,
            ..
        }
    ));
    assert_eq!(m.overlay, Overlay::None);
    // With a change: the first Esc warns, the second leaves.
    open_form(&mut m);
    to_field(&mut m, "pubsub#persist_items");
    key(&mut m, KeyCode::Char(' '));
    assert!(key(&mut m, KeyCode::Esc).is_empty());
    assert_eq!(m.overlay, Overlay::Form);
    assert!(render(&m, 80, 24).contains("Esc again discards your changes"));
    assert!(!key(&mut m, KeyCode::Esc).is_empty());
    assert_eq!(m.overlay, Overlay::None);
}

#[test]
fn a_list_field_is_picked_from_its_options() {
    let mut m = populated();
    open_form(&mut m);
    to_field(&mut m, "pubsub#access_model");
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "white");
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("1 of 5") && screen.contains("whitelist"),
        "{screen}"
    );
    key(&mut m, KeyCode::Enter);
    assert_eq!(
        m.form
            .as_ref()
            .and_then(|f| f.form.field("pubsub#access_model"))
            .map(|f| f.value().to_owned()),
        Some("whitelist".into())
    );
}

/// Count answered for X or D: the question is up.
fn ask_count(m: &mut Model, letter: char, count: usize) {
    let fx = key(m, KeyCode::Char(letter));
    let Command::ListNodes {
        req,
        parent: Some(p),
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    assert_eq!(p, "demo");
    let page = disco::Items {
        node: Some("demo".into()),
        items: (0..count)
            .map(|i| disco::Listed {
                jid: "pubsub.localhost".into(),
                node: None,
                name: Some(format!("i{i}")),
            })
            .collect(),
        page: None,
    };
    answer(m, *req, Ok(Answer::Nodes(page)));
    assert_eq!(m.overlay, Overlay::Confirm);
}

#[test]
fn purge_and_delete_ask_first_naming_the_node_and_its_items() {
    let mut m = populated();
    ask_count(&mut m, 'X', 7);
    insta::assert_snapshot!("purge_80x24", render(&m, 80, 24));
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("purge_40x12", render(&m, 40, 12));
    let _ = update(&mut m, Msg::Resize(80, 24));
    // No: nothing sent. Ctrl-C in the question quits (it does not purge).
    assert!(key(&mut m, KeyCode::Char('n')).is_empty());
    assert_eq!(m.overlay, Overlay::None);
    ask_count(&mut m, 'X', 7);
    let fx = key(&mut m, KeyCode::Char('y'));
    let Command::Owner {
        req,
        op: OwnerOp::Purge,
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    // The service's refusal, in words from its condition.
    let mut forbidden = refusal("forbidden");
    if let RequestError::Refused(r) = &mut forbidden {
        r.text = Some("only the node's owners may purge it".into());
    }
    answer(&mut m, *req, Err(forbidden));
    assert!(
        m.outcome.as_ref().is_some_and(|o| o
            .text
            .starts_with("forbidden: only the owner of 'demo' may purge it")),
        "{:?}",
        m.outcome
    );
    // Delete, with a redirect typed.
    ask_count(&mut m, 'D', 1);
    assert!(render(&m, 80, 24).contains("(1 item)"));
    // Not an xmpp: URI: said, and asked again with the text kept.
    typed(&mut m, "not a uri");
    assert!(key(&mut m, KeyCode::Enter).is_empty());
    assert_eq!(m.overlay, Overlay::Confirm);
    assert!(render(&m, 80, 24).contains("is not an xmpp: URI"));
    for _ in 0.."not a uri".len() {
        key(&mut m, KeyCode::Backspace);
    }
    typed(&mut m, "xmpp:pubsub.localhost?;node=next");
    let fx = key(&mut m, KeyCode::Enter);
    assert!(
        matches!(command(&fx), Command::Owner { op: OwnerOp::Delete { redirect: Some(r) }, .. } if r == "xmpp:pubsub.localhost?;node=next"),
        "{fx:?}"
    );
    // Deleted: the next start does not follow it (a service that creates nodes on subscribe
    // would bring it back empty), and the pane says so.
    let req = req_of(&fx);
    let fx = answer(&mut m, req, Ok(owned(OwnerDone::Deleted)));
    assert!(
        fx.contains(&Effect::Remember {
            node: "demo".into(),
            follow: false
        }),
        "{fx:?}"
    );
    assert!(render(&m, 80, 24).contains("the node was deleted"));
    // Ctrl-C during a question does not say yes to it.
    ask_count(&mut m, 'X', 1);
    let fx = ctrl(&mut m, 'c');
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::Net(Command::Owner { .. }))),
        "{fx:?}"
    );
}

#[test]
fn the_selected_item_is_viewed_retracted_edited_and_its_id_copied() {
    let mut m = populated();
    // Make the newest item's XML hostile to a terminal.
    let mut hostile = item("demo", 9, "bob@localhost/phone", "nine").to_parts();
    hostile.tree = pubsub_tui::xmpp::proto::tree::tree_of(
        &"<item xmlns='http://jabber.org/protocol/pubsub' id='beef0009'><post xmlns='urn:x-pubsub-tui:item:0'>ni&#x9b;2Jne\u{202e}</post></item>"
            .parse()
            .expect("parses"),
    );
    net(&mut m, NetEvent::Item(hostile.into()));
    key(&mut m, KeyCode::Up);
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0009".into())
    );
    key(&mut m, KeyCode::Char('v'));
    assert_eq!(m.overlay, Overlay::Item);
    // Rendered, tree, raw XML.
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::Tab);
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("  <post xmlns='urn:x-pubsub-tui:item:0'>ni2Jne</post>"),
        "{screen}"
    );
    assert!(!screen.contains('\u{9b}') && !screen.contains('\u{202e}'));
    // Copy the id.
    let fx = key(&mut m, KeyCode::Char('y'));
    assert!(fx.contains(&Effect::Copy("beef0009".into())), "{fx:?}");
    // Edit: the payload goes to the editor; what comes back is published under the id.
    let fx = key(&mut m, KeyCode::Char('E'));
    let Some(Effect::Edit { node, id, xml }) = fx.first() else {
        panic!("{fx:?}")
    };
    assert_eq!((node.as_str(), id.as_str()), ("demo", "beef0009"));
    assert!(
        xml.starts_with("<post xmlns='urn:x-pubsub-tui:item:0'>"),
        "{xml}"
    );
    let fx = update(
        &mut m,
        Msg::Edited {
            node: "demo".into(),
            id: "beef0009".into(),
            result: Ok(Some(
                "<post xmlns='urn:x-pubsub-tui:item:0'>\n  nine, edited\n</post>\n".into(),
            )),
            kept: Some("/tmp/kept-edit.xml".into()),
        },
    );
    let Command::PublishItem { item, req, .. } = command(&fx) else {
        panic!("{fx:?}")
    };
    assert_eq!(item.attr("id"), Some("beef0009"));
    // Refused: the edit's file is named (kept); a later success removes it.
    let req = *req;
    assert!(answer(&mut m, req, Err(refusal("forbidden"))).is_empty());
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text.ends_with("your edit is kept in /tmp/kept-edit.xml")),
        "{:?}",
        m.outcome
    );
    // Not changed, or not XML: nothing is sent.
    let unchanged = update(
        &mut m,
        Msg::Edited {
            node: "demo".into(),
            id: "beef0009".into(),
            result: Ok(None),
            kept: None,
        },
    );
    assert!(unchanged.is_empty());
    let broken = update(
        &mut m,
        Msg::Edited {
            node: "demo".into(),
            id: "beef0009".into(),
            result: Ok(Some("<post>no namespace".into())),
            kept: None,
        },
    );
    assert!(broken.is_empty());
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text.contains("not published"))
    );
}

#[test]
fn affiliations_are_listed_and_changed() {
    let mut m = populated();
    let fx = key(&mut m, KeyCode::Char('A'));
    let Command::Owner {
        req,
        op: OwnerOp::Affiliations,
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    let list = vec![
        Affiliation {
            jid: "alice@localhost".into(),
            affiliation: "owner".into(),
        },
        Affiliation {
            jid: "bob@localhost".into(),
            affiliation: "member".into(),
        },
    ];
    answer(&mut m, *req, Ok(owned(OwnerDone::Affiliations(list))));
    assert_eq!(m.overlay, Overlay::Panel);
    assert!(render(&m, 80, 24).contains("bob@localhost"));
    key(&mut m, KeyCode::Down);
    let fx = key(&mut m, KeyCode::Char('p'));
    let Command::Owner {
        req,
        op: OwnerOp::SetAffiliations(set),
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    assert_eq!(set[0].jid, "bob@localhost");
    assert_eq!(set[0].affiliation, "publisher");
    // Done: the list is asked for again.
    let fx = answer(&mut m, *req, Ok(owned(OwnerDone::AffiliationsSet)));
    assert!(matches!(
        command(&fx),
        Command::Owner {
            op: OwnerOp::Affiliations,
            ..
        }
    ));
    // Taking rights away asks first; Home moves to the first row.
    key(&mut m, KeyCode::Home);
    assert_eq!(m.panel.as_ref().map(|p| p.selected), Some(0));
    key(&mut m, KeyCode::End);
    assert!(key(&mut m, KeyCode::Char('x')).is_empty());
    assert_eq!(m.overlay, Overlay::Confirm);
    assert!(render(&m, 80, 24).contains("Make bob@localhost an outcast of 'demo'?"));
    assert!(key(&mut m, KeyCode::Char('n')).is_empty());
    assert_eq!(m.overlay, Overlay::Panel, "back to the list");
    key(&mut m, KeyCode::Char('x'));
    let fx = key(&mut m, KeyCode::Char('y'));
    assert!(
        matches!(command(&fx), Command::Owner { op: OwnerOp::SetAffiliations(set), .. } if set[0].affiliation == "outcast"),
        "{fx:?}"
    );
    assert_eq!(m.overlay, Overlay::Panel);
    // A JID typed with a bad affiliation is caught here.
    key(&mut m, KeyCode::Char('+'));
    typed(&mut m, "carol@localhost king");
    assert!(key(&mut m, KeyCode::Enter).is_empty());
    assert!(render(&m, 80, 24).contains("\"king\" is not an affiliation"));
}

#[test]
fn odd_forms_stay_usable() {
    // Unknown field types, 10,000 options, control characters in labels and values.
    let mut xml = String::from(
        "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='demo'><x xmlns='jabber:x:data' type='form'><field var='odd' type='colour' label='Colour&#x9b;31m&#x202e;'><value>red&#x9b;</value></field><field var='many' type='list-single' label='Many'>",
    );
    for i in 0..10_000 {
        let _ = write!(xml, "<option><value>v{i}</value></option>");
    }
    xml.push_str("<value>v0</value></field></x></configure></pubsub>");
    let form = Configure::parse_result(Some(&xml.parse().expect("xml"))).expect("form");
    let mut m = populated();
    let fx = key(&mut m, KeyCode::Char('C'));
    let Command::Owner { req, .. } = command(&fx) else {
        panic!()
    };
    answer(&mut m, *req, Ok(owned(OwnerDone::Config(form))));
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("Colour31m") && !screen.contains('\u{9b}') && !screen.contains('\u{202e}'),
        "{screen}"
    );
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "blue");
    key(&mut m, KeyCode::Enter);
    key(&mut m, KeyCode::Down);
    key(&mut m, KeyCode::Enter);
    typed(&mut m, "v9876");
    key(&mut m, KeyCode::Enter);
    let f = m.form.as_ref().expect("form");
    assert_eq!(
        f.form
            .field("many")
            .map(pubsub_tui::xmpp::proto::form::Field::value),
        Some("v9876")
    );
    assert_eq!(f.changed(), ["odd", "many"]);
    let _ = render(&m, 40, 12);
}

#[test]
fn a_subscription_to_approve_is_listed_and_approved() {
    let mut m = populated();
    net(
        &mut m,
        NetEvent::AuthorizationRequest {
            node: "demo".into(),
            jid: "carol@localhost".into(),
            subid: Some("s9".into()),
        },
    );
    assert!(
        m.log.back().is_some_and(|e| e
            .text
            .starts_with("carol@localhost asks to subscribe to demo")),
        "{:?}",
        m.log.back()
    );
    let fx = key(&mut m, KeyCode::Char('S'));
    let Command::Owner {
        req,
        op: OwnerOp::Subscriptions,
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    // The service's list leaves pending subscriptions out (ejabberd): the request adds it.
    answer(
        &mut m,
        *req,
        Ok(owned(OwnerDone::Subscriptions(Vec::new()))),
    );
    assert!(render(&m, 80, 24).contains("pending"));
    let fx = key(&mut m, KeyCode::Char('y'));
    let Command::Owner {
        req,
        op: OwnerOp::SetSubscriptions(set),
        ..
    } = command(&fx)
    else {
        panic!("{fx:?}")
    };
    assert_eq!(
        (
            set[0].jid.as_str(),
            set[0].state.as_str(),
            set[0].subid.as_deref()
        ),
        ("carol@localhost", "subscribed", Some("s9"))
    );
    // Approved: no longer pending, and the list is asked for again.
    let fx = answer(&mut m, *req, Ok(owned(OwnerDone::SubscriptionsSet)));
    assert!(m.pending.is_empty());
    assert!(matches!(
        command(&fx),
        Command::Owner {
            op: OwnerOp::Subscriptions,
            ..
        }
    ));
}

#[test]
fn the_forms_of_every_server_are_edited_and_sent() {
    for server in ["prosody", "ejabberd", "serve"] {
        let path = format!(
            "{}/tests/fixtures/captured/{server}_config.xml",
            env!("CARGO_MANIFEST_DIR")
        );
        let xml = std::fs::read_to_string(&path).expect("fixture");
        let form = Configure::parse_result(Some(&xml.trim().parse().expect("xml"))).expect("form");
        let mut m = populated();
        let fx = key(&mut m, KeyCode::Char('C'));
        let Command::Owner { req, .. } = command(&fx) else {
            panic!()
        };
        answer(&mut m, *req, Ok(owned(OwnerDone::Config(form))));
        // Every row can be walked; a yes/no toggled; the title edited; sent.
        for _ in 0..40 {
            key(&mut m, KeyCode::Down);
        }
        to_field(&mut m, "pubsub#notify_retract");
        key(&mut m, KeyCode::Char(' '));
        to_field(&mut m, "pubsub#title");
        key(&mut m, KeyCode::Enter);
        typed(&mut m, " (edited)");
        key(&mut m, KeyCode::Enter);
        let _ = render(&m, 40, 12);
        let fx = ctrl(&mut m, 's');
        let Command::Owner {
            op: OwnerOp::SetConfig(sent),
            ..
        } = command(&fx)
        else {
            panic!("{server}: {fx:?}")
        };
        let sub = sent.submission();
        assert!(
            sub.field("pubsub#title")
                .is_some_and(|f| f.value().ends_with(" (edited)")),
            "{server}"
        );
        assert_eq!(
            sub.form_type(),
            Some("http://jabber.org/protocol/pubsub#node_config"),
            "{server}: the hidden FORM_TYPE is sent back"
        );
    }
}

#[test]
fn a_retraction_is_asked_then_shown_once() {
    let mut m = populated();
    net(
        &mut m,
        NetEvent::Item(item("demo", 9, "bob@localhost/phone", "nine")),
    );
    key(&mut m, KeyCode::Up);
    // Retract asks, then sends the item's id.
    let fx = key(&mut m, KeyCode::Char('x'));
    assert!(fx.is_empty());
    assert_eq!(m.overlay, Overlay::Confirm);
    assert!(render(&m, 80, 24).contains("Retract the item beef0009 from 'demo'?"));
    let fx = key(&mut m, KeyCode::Char('y'));
    assert!(
        matches!(command(&fx), Command::Retract { id, .. } if id == "beef0009"),
        "{fx:?}"
    );
    // Done: shown retracted at once (a node with notify_retract off says nothing more), and
    // the service's notification, if it comes, changes nothing more.
    let before = m.selected_node().map(|n| n.feed.item_count());
    answer(
        &mut m,
        req_of(&fx),
        Ok(Answer::Retracted {
            node: "demo".into(),
            id: "beef0009".into(),
        }),
    );
    let after = m.selected_node().map(|n| n.feed.item_count());
    assert_eq!(after, before.map(|b| b - 1));
    let rows = m.selected_node().map(|n| n.feed.len());
    net(
        &mut m,
        NetEvent::Retracted {
            node: "demo".into(),
            id: "beef0009".into(),
        },
    );
    assert_eq!(m.selected_node().map(|n| n.feed.item_count()), after);
    assert!(m.selected_node().map(|n| n.feed.len()) >= rows);
}

#[test]
fn quitting_with_changes_in_the_form_asks_first() {
    let mut m = populated();
    open_form(&mut m);
    to_field(&mut m, "pubsub#persist_items");
    key(&mut m, KeyCode::Char(' '));
    assert!(ctrl(&mut m, 'c').is_empty());
    assert_eq!(m.overlay, Overlay::Confirm);
    assert!(render(&m, 80, 24).contains("your changes in the configuration form"));
    // Stay: back in the form, with the change.
    assert!(key(&mut m, KeyCode::Char('n')).is_empty());
    assert_eq!(m.overlay, Overlay::Form);
    assert_eq!(m.form.as_ref().map(|f| f.changed().len()), Some(1));
    // Positive control: without changes, Ctrl-C quits at once.
    let mut m = populated();
    open_form(&mut m);
    assert!(ctrl(&mut m, 'c').contains(&Effect::Quit));
}

#[test]
fn a_change_of_ones_own_affiliation_asks_and_one_the_service_ignores_is_said() {
    let mut m = populated();
    let fx = key(&mut m, KeyCode::Char('A'));
    let Command::Owner { req, .. } = command(&fx) else {
        panic!()
    };
    let mine = Affiliation {
        jid: "alice@localhost".into(),
        affiliation: "owner".into(),
    };
    answer(
        &mut m,
        *req,
        Ok(owned(OwnerDone::Affiliations(vec![mine.clone()]))),
    );
    // Own JID: asked first, even for a member.
    assert!(key(&mut m, KeyCode::Char('m')).is_empty());
    assert!(render(&m, 80, 24).contains("Change your own affiliation with 'demo' to member?"));
    let fx = key(&mut m, KeyCode::Char('y'));
    let Command::Owner { req, .. } = command(&fx) else {
        panic!()
    };
    let fx = answer(&mut m, *req, Ok(owned(OwnerDone::AffiliationsSet)));
    let Command::Owner { req, .. } = command(&fx) else {
        panic!()
    };
    // The service's list still says owner: said so.
    answer(&mut m, *req, Ok(owned(OwnerDone::Affiliations(vec![mine]))));
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text.contains("the service kept alice@localhost owner")),
        "{:?}",
        m.outcome
    );
}

/// The node's subscription is in place.
fn subscribed(m: &mut Model, node: &str) {
    net(
        m,
        NetEvent::Subscription {
            node: node.into(),
            state: SubState::Subscribed,
        },
    );
}

/// A retrieve's items arrived.
fn snapshot(
    m: &mut Model,
    node: &str,
    items: Vec<FeedItem>,
    reason: SnapshotReason,
    at: chrono::DateTime<chrono::Utc>,
) {
    net(
        m,
        NetEvent::Snapshot {
            node: node.into(),
            items,
            reason,
            lost: Vec::new(),
            at,
        },
    );
}

/// An item as a service sends it (parsed as the network core does).
fn wire_item(node: &str, xml: &str) -> FeedItem {
    pubsub_tui::xmpp::proto::parse_item(node, &xml.parse().expect("fixture XML parses"))
}

const READING: &str = "<item xmlns='http://jabber.org/protocol/pubsub' id='r1'><reading xmlns='urn:example:sensor' at='lab'><temp unit='C'>21.5</temp><hum>40</hum><note>a long note that goes on and on so that it has to be wrapped at eighty columns, and further still at forty</note><calib><by>eve</by><on>2026-11-01</on></calib></reading></item>";

const ENTRY: &str = "<item xmlns='http://jabber.org/protocol/pubsub' id='e1'><entry xmlns='http://www.w3.org/2005/Atom'><author><name>Juliet</name><uri>xmpp:juliet@capulet.lit</uri></author><title>Release 2.0 is out</title><link rel='alternate' type='text/html' href='https://capulet.lit/r/2.0'/><published>2026-11-24T06:59:00Z</published><updated>2026-11-24T06:59:30Z</updated><content type='html'>&lt;p&gt;It &lt;b&gt;ships&lt;/b&gt; today.&lt;/p&gt;&lt;ul&gt;&lt;li&gt;faster&lt;/li&gt;&lt;li&gt;smaller&lt;/li&gt;&lt;/ul&gt;</content></entry></item>";

#[test]
fn an_items_line_reads_right_and_says_when_it_was_only_received() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Tick(at(7, 1, 2)));
    net(&mut m, NetEvent::Item(wire_item("demo", READING)));
    let screen = render(&m, 80, 24);
    // No time of its own: the time it was received, in its own style.
    assert!(screen.contains("07:01:02 ?"), "{screen}");
    assert!(screen.contains("reading · temp 21.5 C · hum …"), "{screen}");
    let node = m.selected_node().expect("node");
    let row = node.feed.row(node.feed.len() - 1).expect("row");
    let pubsub_tui::feed::RowKind::Item { item, .. } = &row.kind else {
        panic!("{row:?}")
    };
    assert_eq!(item.received, Some(at(7, 1, 2)));
    assert_eq!(item.display_time(m.offset), ("07:01:02".to_owned(), true));
    // Positive control: an item with a time shows its own.
    assert_eq!(
        self::item("demo", 5, "b", "t").display_time(m.offset),
        ("07:00:05".to_owned(), false)
    );
}

#[test]
fn snapshot_item_view_tree_rendered_and_raw() {
    let mut m = populated();
    let _ = update(&mut m, Msg::Tick(at(7, 1, 2)));
    net(&mut m, NetEvent::Item(wire_item("demo", READING)));
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    // An unknown payload opens on its tree.
    insta::assert_snapshot!("item_tree_80x24", render(&m, 80, 24));
    // Fold the <reading/>: down to it, ←.
    key(&mut m, KeyCode::Down);
    key(&mut m, KeyCode::Left);
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("▸ reading [sensor] at=\"lab\"  … "),
        "{screen}"
    );
    assert!(!screen.contains("temp"), "{screen}");
    key(&mut m, KeyCode::Enter);
    assert!(render(&m, 80, 24).contains("· temp unit=\"C\" = \"21.5\""));
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("item_tree_40x12", render(&m, 40, 12));
    key(&mut m, KeyCode::Tab);
    insta::assert_snapshot!("item_raw_40x12", render(&m, 40, 12));
    let _ = update(&mut m, Msg::Resize(80, 24));
    insta::assert_snapshot!("item_raw_80x24", render(&m, 80, 24));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::None);
    // An Atom entry opens rendered.
    net(&mut m, NetEvent::Item(wire_item("demo", ENTRY)));
    key(&mut m, KeyCode::Esc);
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    insta::assert_snapshot!("item_atom_80x24", render(&m, 80, 24));
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("item_atom_40x12", render(&m, 40, 12));
}

/// The populated model with the `news` node live and holding two items of its own.
fn two_nodes() -> Model {
    let mut m = populated();
    subscribed(&mut m, "news");
    let _ = update(&mut m, Msg::Tick(at(7, 1, 5)));
    net(&mut m, NetEvent::Item(wire_item("news", ENTRY)));
    let _ = update(&mut m, Msg::Tick(at(7, 1, 6)));
    net(
        &mut m,
        NetEvent::Item(item(
            "news",
            20,
            "carol@localhost",
            "number 20, on the news",
        )),
    );
    m
}

#[test]
fn the_filter_narrows_the_feed_as_it_is_typed() {
    let mut m = two_nodes();
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "number");
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("/number · filter · 6 of 8 match"),
        "{screen}"
    );
    assert!(!screen.contains("Hello!"), "{screen}");
    // Every term must match; the status follows each key.
    typed(&mut m, " 7");
    let screen = render(&m, 80, 24);
    assert!(screen.contains("1 of 8 match"), "{screen}");
    assert!(screen.contains("message number 7"), "{screen}");
    insta::assert_snapshot!("filter_80x24", screen);
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("filter_40x12", render(&m, 40, 12));
    let _ = update(&mut m, Msg::Resize(80, 24));
    // A bad regex says why, and the last good filter stays applied.
    for _ in 0.." 7".len() {
        key(&mut m, KeyCode::Backspace);
    }
    typed(&mut m, " ~(");
    let screen = render(&m, 80, 24);
    assert!(screen.contains("not a regular expression"), "{screen}");
    assert!(screen.contains("message number 3"), "{screen}");
    key(&mut m, KeyCode::Backspace);
    key(&mut m, KeyCode::Backspace);
    key(&mut m, KeyCode::Backspace);
    // Enter keeps it; the item keys act on the matches.
    key(&mut m, KeyCode::Enter);
    assert!(!m.search.as_ref().expect("kept").typing);
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Up);
    assert_eq!(
        m.selected_item().map(|i| i.text().to_owned()),
        Some("message number 7 with some text to fill the line".into())
    );
    // A new match arrives: the selection stays on the same item.
    net(
        &mut m,
        NetEvent::Item(item("demo", 30, "bob@localhost", "number 30")),
    );
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0007".into())
    );
    // Esc follows, then drops the filter.
    key(&mut m, KeyCode::Esc);
    assert!(m.search.is_some() && m.cursor.is_none());
    key(&mut m, KeyCode::Esc);
    assert!(m.search.is_none());
    assert!(render(&m, 80, 24).contains("Hello!"));
}

#[test]
fn the_filter_spans_every_node_and_matches_fields() {
    let mut m = two_nodes();
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "\"number 2\"");
    assert_eq!(
        m.search.as_ref().map(|s| s.hits.len()),
        Some(0),
        "demo has none"
    );
    ctrl(&mut m, 'a');
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("filter · all nodes · 1 of 10 match"),
        "{screen}"
    );
    assert!(screen.contains("[news] number 20, on the news"), "{screen}");
    // A field of the payload: the Atom title.
    for _ in 0.."\"number 2\"".len() {
        key(&mut m, KeyCode::Backspace);
    }
    typed(&mut m, "title:release");
    let screen = render(&m, 80, 24);
    assert!(screen.contains("1 of 10 match"), "{screen}");
    assert!(screen.contains("[news] Release 2.0 is out"), "{screen}");
    // Positive control of the scope: on this node alone, nothing.
    ctrl(&mut m, 'a');
    assert_eq!(m.search.as_ref().map(|s| s.hits.len()), Some(0));
    // Enter and `v` open the match.
    ctrl(&mut m, 'a');
    key(&mut m, KeyCode::Enter);
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    assert_eq!(
        m.item_view
            .as_ref()
            .and_then(|v| v.item.id().map(str::to_owned)),
        Some("e1".into())
    );
}

#[test]
fn find_marks_matches_and_n_jumps_between_them() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "@seq>0");
    let e = m.search.as_ref().and_then(|s| s.error.clone());
    assert_eq!(e, None);
    for _ in 0.."@seq>0".len() {
        key(&mut m, KeyCode::Backspace);
    }
    typed(&mut m, "from:bob");
    key(&mut m, KeyCode::Tab);
    key(&mut m, KeyCode::Enter);
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("/from:bob · find · 5 of 8 match"),
        "{screen}"
    );
    assert!(screen.contains("Hello!"), "find shows every row: {screen}");
    // n: the newest match, then older ones; N back.
    key(&mut m, KeyCode::Char('n'));
    assert_eq!(
        m.outcome.as_ref().map(|o| o.text.as_str()),
        Some("match 1 of 5")
    );
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0007".into())
    );
    key(&mut m, KeyCode::Char('n'));
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0005".into())
    );
    key(&mut m, KeyCode::Char('N'));
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0007".into())
    );
    // Past the newest, around to the oldest, said so; and back.
    key(&mut m, KeyCode::Char('N'));
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0001".into())
    );
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text.contains("back to the oldest")),
        "{:?}",
        m.outcome
    );
    key(&mut m, KeyCode::Char('n'));
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0007".into())
    );
    // Without a find, N is the owner's: create a node.
    key(&mut m, KeyCode::Esc);
    key(&mut m, KeyCode::Esc);
    assert!(m.search.is_none());
    let fx = key(&mut m, KeyCode::Char('N'));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Net(Command::Owner { .. })))
            || m.overlay != Overlay::None,
        "{fx:?} {:?}",
        m.overlay
    );
}

#[test]
fn w_writes_the_nodes_items_or_the_filters_matches_to_a_file() {
    let mut m = populated();
    key(&mut m, KeyCode::Char('w'));
    assert_eq!(m.overlay, Overlay::Confirm);
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("Write 7 items of demo to a new file."),
        "{screen}"
    );
    assert!(screen.contains("[ndjson] csv xml"), "{screen}");
    assert!(screen.contains("> demo-20261124-070100.ndjson"), "{screen}");
    key(&mut m, KeyCode::Tab);
    let screen = render(&m, 80, 24);
    assert!(screen.contains("> demo-20261124-070100.csv"), "{screen}");
    // The name can be typed over.
    ctrl(&mut m, 'u');
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("out.csv");
    let _ = update(&mut m, Msg::Paste(String::new()));
    typed(&mut m, &path.display().to_string());
    let fx = key(&mut m, KeyCode::Enter);
    let [
        Effect::Export {
            path: p,
            format,
            label,
            items,
        },
    ] = &fx[..]
    else {
        panic!("{fx:?}")
    };
    assert_eq!(p, &path);
    assert_eq!(*format, pubsub_tui::feed::export::Format::Csv);
    assert_eq!(items.len(), 7, "the retracted item is left out");
    // The shell's part writes a new file, never over one.
    let result = pubsub_tui::tui::export::write(p, *format, label, items);
    assert_eq!(result, Ok((7, 0)));
    let again = pubsub_tui::tui::export::write(p, *format, label, items);
    assert!(
        again.as_ref().is_err_and(|e| e.contains("exists")),
        "{again:?}"
    );
    let csv = std::fs::read_to_string(&path).expect("written");
    assert_eq!(csv.lines().count(), 8, "a header and 7 items: {csv}");
    let _ = update(
        &mut m,
        Msg::Exported {
            path: path.clone(),
            label: label.clone(),
            result,
            altered: 0,
        },
    );
    let said = m
        .outcome
        .as_ref()
        .map(|o| o.text.clone())
        .unwrap_or_default();
    assert_eq!(said, format!("wrote 7 items of demo to {}", path.display()));
    // Under a filter: its matches only.
    key(&mut m, KeyCode::Char('/'));
    typed(&mut m, "\"number 3\"");
    key(&mut m, KeyCode::Enter);
    key(&mut m, KeyCode::Char('w'));
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("Write 1 item of demo, filtered by \"number 3\""),
        "{screen}"
    );
    let fx = key(&mut m, KeyCode::Enter);
    assert!(
        matches!(&fx[..], [Effect::Export { items, .. }] if items.len() == 1),
        "{fx:?}"
    );
    // Esc asks nothing more.
    key(&mut m, KeyCode::Char('w'));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::None);
}

#[test]
fn the_memory_bound_evicts_the_oldest_items_of_any_node() {
    let mut m = two_nodes();
    let bytes = |m: &Model| m.nodes.iter().map(|n| n.feed.bytes()).sum::<usize>();
    let before = bytes(&m);
    let news_before = m.nodes[1].feed.item_count();
    // Room for what is there, less a little: the oldest rows go (demo's, received first).
    m.feed_memory = Some(before - 10);
    let _ = update(&mut m, Msg::Tick(at(7, 2, 0)));
    assert!(bytes(&m) <= before - 10);
    assert_eq!(
        m.nodes[1].feed.item_count(),
        news_before,
        "news's items are newer"
    );
    assert!(m.nodes[0].feed.evicted() > 0);
    assert!(
        render(&m, 80, 24).contains("older rows evicted (feed limit or memory bound)"),
        "{}",
        render(&m, 80, 24)
    );
    // New items keep within it: older ones of either node go, down to the newest five of
    // each.
    for n in 40..60 {
        let _ = update(&mut m, Msg::Tick(at(7, 3, n % 60)));
        net(
            &mut m,
            NetEvent::Item(item("news", n.into(), "carol@localhost", "a newer item")),
        );
        let at_floor = m.nodes.iter().all(|v| v.feed.item_count() <= 5);
        assert!(bytes(&m) <= before - 10 || at_floor, "after {n}");
    }
    assert!(bytes(&m) <= before - 10, "within the bound at the end");
    assert!(m.nodes[1].feed.item_count() > 5);
    assert_eq!(
        m.nodes[0].feed.item_count(),
        5,
        "demo keeps its newest five"
    );
    // Positive control: without a bound nothing goes.
    let mut free = two_nodes();
    for n in 40..60 {
        net(
            &mut free,
            NetEvent::Item(item("news", n, "carol@localhost", "a newer item")),
        );
    }
    assert_eq!(free.nodes[0].feed.evicted(), 0);
}

fn reading_at(n: u64, temp: &str) -> FeedItem {
    wire_item(
        "demo",
        &format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='t{n}'><reading xmlns='urn:example:sensor'><temp>{temp}</temp><time>2026-11-24T07:02:{n:02}Z</time></reading></item>"
        ),
    )
}

#[test]
fn snapshot_stats_and_a_chart_of_a_field() {
    let mut m = populated();
    // Twelve readings, one a second, each published 250 ms before it arrives.
    for n in 0..12u32 {
        let now = at(7, 2, n) + chrono::Duration::milliseconds(250);
        let _ = update(&mut m, Msg::Tick(now));
        let mut item = item("demo", 100 + u64::from(n), "bob@localhost/phone", "x").to_parts();
        item.time = Some(format!("2026-11-24T07:02:{n:02}Z"));
        item.id = Some(format!("x{n}"));
        net(&mut m, NetEvent::Item(item.into()));
        let temp = format!("{}.5 °C", 20 + n % 4);
        net(&mut m, NetEvent::Item(reading_at(n.into(), &temp)));
    }
    let _ = update(&mut m, Msg::Tick(at(7, 2, 14)));
    key(&mut m, KeyCode::Char('s'));
    let screen = render(&m, 80, 24);
    // 07:02:05 to 07:02:11 in the last ten seconds: 14 items.
    assert!(screen.contains("1.4/s (last 10 s)"), "{screen}");
    assert!(screen.contains("last item 2 s ago"), "{screen}");
    // The populated feed's items came before their own time: outvoted by the twelve.
    assert!(
        screen.contains("latency 250 ms (p95 250 ms, 18 items)"),
        "{screen}"
    );
    insta::assert_snapshot!("stats_80x24", screen);
    let _ = update(&mut m, Msg::Resize(40, 12));
    insta::assert_snapshot!("stats_40x12", render(&m, 40, 12));
    let _ = update(&mut m, Msg::Resize(80, 24));
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::None);
    // The newest reading's tree: down to <temp>, then c.
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    key(&mut m, KeyCode::Down);
    key(&mut m, KeyCode::Char('c'));
    assert_eq!(m.overlay, Overlay::Item, "<reading> holds no number itself");
    assert!(
        m.outcome
            .as_ref()
            .is_some_and(|o| o.text.starts_with("no number here"))
    );
    key(&mut m, KeyCode::Down);
    key(&mut m, KeyCode::Char('c'));
    assert_eq!(m.overlay, Overlay::Chart);
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("temp · demo · 12 points · last 23.5 °C"),
        "{screen}"
    );
    insta::assert_snapshot!("chart_80x24", screen);
    // Esc: back to the item.
    key(&mut m, KeyCode::Esc);
    assert_eq!(m.overlay, Overlay::Item);
}

#[test]
fn esc_and_a_key_typed_at_once_act_in_the_panes_too() {
    let mut m = populated();
    key(&mut m, KeyCode::Up);
    assert!(m.cursor.is_some());
    // Terminals send Esc and `/` typed quickly as Alt-/: Esc (follow), then `/`.
    let _ = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::ALT)),
    );
    assert!(m.cursor.is_none());
    assert!(
        m.search.as_ref().is_some_and(|s| s.typing),
        "the filter is open"
    );
    typed(&mut m, "build");
    assert_eq!(
        m.nodes.len(),
        2,
        "u was typed into the filter, not taken as unsubscribe"
    );
}

#[test]
fn a_feed_of_items_without_senders_gives_their_text_the_room() {
    let mut m = model();
    net(&mut m, online());
    subscribed(&mut m, "demo");
    let items = (1..=3).map(|n| reading_at(n, &format!("2{n}.5"))).collect();
    snapshot(&mut m, "demo", items, SnapshotReason::Initial, at(7, 0, 0));
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("07:00:00 ? reading · temp 23.5 · time 2026-11-24T07…"),
        "{screen}"
    );
    // Positive control: with a sender among the rows, the column is as wide as it.
    net(
        &mut m,
        NetEvent::Item(item("demo", 9, "bob@localhost/x", "hi")),
    );
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("07:00:00 ?             reading"),
        "{screen}"
    );
}

#[test]
fn only_new_items_after_the_first_retrieve_count_as_live() {
    let mut m = model();
    net(&mut m, online());
    subscribed(&mut m, "demo");
    // ejabberd sends the node's last item on subscribing, before the retrieve's answer.
    net(
        &mut m,
        NetEvent::Item(item("demo", 1, "bob@localhost", "old")),
    );
    snapshot(
        &mut m,
        "demo",
        vec![item("demo", 1, "bob@localhost", "old")],
        SnapshotReason::Initial,
        at(7, 0, 0),
    );
    let stats = |m: &Model| (m.nodes[0].stats.received, m.nodes[0].stats.resyncs);
    assert_eq!(
        stats(&m),
        (0, 0),
        "neither the replay nor the first retrieve"
    );
    net(
        &mut m,
        NetEvent::Item(item("demo", 2, "bob@localhost", "new")),
    );
    assert_eq!(stats(&m), (1, 0));
    // Sent again (a re-login): not new.
    net(
        &mut m,
        NetEvent::Item(item("demo", 2, "bob@localhost", "new")),
    );
    assert_eq!(stats(&m), (1, 0));
    snapshot(
        &mut m,
        "demo",
        Vec::new(),
        SnapshotReason::Manual,
        at(7, 0, 1),
    );
    assert_eq!(stats(&m), (1, 1));
}

#[test]
fn an_empty_filter_says_how_to_write_one_and_ctrl_a_goes_back_to_filtering() {
    let mut m = two_nodes();
    key(&mut m, KeyCode::Char('/'));
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("/ · filter · words, ~regex, name:text"),
        "{screen}"
    );
    assert!(!screen.contains("0 of 0 match"), "{screen}");
    assert!(screen.contains("Hello!"), "nothing filtered yet: {screen}");
    // Find, then Ctrl-A: every node's matches, which is a filter.
    key(&mut m, KeyCode::Tab);
    ctrl(&mut m, 'a');
    let s = m.search.as_ref().expect("search");
    assert!(s.all && !s.find, "{s:?}");
    // A long expression keeps its end (where one types) in view.
    typed(&mut m, &format!("{} tail-end", "x".repeat(80)));
    let screen = render(&m, 80, 24);
    assert!(screen.contains("tail-end"), "{screen}");
}

#[test]
fn an_open_item_says_when_it_is_retracted_and_a_dropped_stanza_says_why() {
    let mut m = populated();
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    assert!(!render(&m, 80, 24).contains("retracted since"));
    net(
        &mut m,
        NetEvent::Retracted {
            node: "demo".into(),
            id: "beef0008".into(),
        },
    );
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("Item beef0008 · demo · retracted since it was opened"),
        "{screen}"
    );
    net(
        &mut m,
        NetEvent::Dropped {
            total: 1,
            reason: "an event for a node not followed".into(),
        },
    );
    assert_eq!(m.dropped, 1);
    assert!(
        m.log
            .iter()
            .any(|e| e.text == "dropped a stanza: an event for a node not followed")
    );
}

#[test]
fn a_json_items_tree_is_its_json_and_a_number_in_it_charts() {
    let mut m = populated();
    for n in 0..4u32 {
        let _ = update(&mut m, Msg::Tick(at(7, 3, n * 2)));
        net(
            &mut m,
            NetEvent::Item(wire_item(
                "demo",
                &format!(
                    "<item xmlns='http://jabber.org/protocol/pubsub' id='j{n}'><json xmlns='urn:xmpp:json:0'>{{\"build\": {n}, \"tests\": {{\"passed\": {}, \"failed\": 0}}}}</json></item>",
                    300 + n
                ),
            )),
        );
    }
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    key(&mut m, KeyCode::Tab);
    let screen = render(&m, 80, 24);
    assert!(screen.contains("[tree]"), "{screen}");
    assert!(screen.contains("· {2 keys}"), "{screen}");
    assert!(screen.contains("    · passed: 303"), "{screen}");
    // Down to "passed" (the third row below the top), then c.
    for _ in 0..3 {
        key(&mut m, KeyCode::Down);
    }
    key(&mut m, KeyCode::Char('c'));
    assert_eq!(m.overlay, Overlay::Chart);
    let screen = render(&m, 80, 24);
    assert!(
        screen.contains("tests.passed · demo · 4 points · last 303"),
        "{screen}"
    );
}

#[test]
fn esc_typed_just_before_an_arrow_is_esc_and_the_arrow_not_a_command() {
    let mut m = populated();
    // What a terminal sends for Esc and ↑ typed together reads as Esc, `[`, `A`.
    key(&mut m, KeyCode::Esc);
    key(&mut m, KeyCode::Char('['));
    let fx = key(&mut m, KeyCode::Char('A'));
    assert_eq!(m.overlay, Overlay::None, "not the affiliations: {fx:?}");
    assert_eq!(
        m.selected_item().and_then(|i| i.id().map(str::to_owned)),
        Some("beef0008".into()),
        "↑ selected the newest item"
    );
    // Esc and ←: not the delete question.
    key(&mut m, KeyCode::Esc);
    key(&mut m, KeyCode::Char('['));
    key(&mut m, KeyCode::Char('D'));
    assert_eq!(m.overlay, Overlay::None);
    assert!(m.confirm.is_none());
    // Control: `A` on its own is the owner's key.
    let _ = key(&mut m, KeyCode::Char('A'));
    assert_eq!(m.overlay, Overlay::Panel);
    key(&mut m, KeyCode::Esc);
    // In an overlay too, Esc and a letter typed at once: close, then the letter.
    key(&mut m, KeyCode::Up);
    key(&mut m, KeyCode::Char('v'));
    assert_eq!(m.overlay, Overlay::Item);
    let _ = update(
        &mut m,
        Msg::Key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::ALT)),
    );
    assert_eq!(m.overlay, Overlay::Stats { scroll: 0 });
}

#[test]
fn the_written_file_is_named_with_its_directory() {
    let items: Vec<FeedItem> = (1..=2)
        .map(|n| item("demo", n, "bob@localhost", "x"))
        .collect();
    let name = format!("target/export-test-{}.ndjson", std::process::id());
    let msg = pubsub_tui::tui::export::run(
        std::path::PathBuf::from(&name),
        pubsub_tui::feed::export::Format::Ndjson,
        "demo".into(),
        &items,
    );
    let Msg::Exported { path, result, .. } = msg else {
        panic!("{msg:?}")
    };
    let _ = std::fs::remove_file(&name);
    assert_eq!(result, Ok((2, 0)));
    assert!(path.is_absolute() && path.ends_with(&name), "{path:?}");
}

#[test]
fn the_status_bar_names_the_server_when_there_is_a_choice_of_them() {
    let on_b = |m: &mut Model| {
        net(
            m,
            NetEvent::Connection(ConnState::Connecting {
                attempt: 2,
                server: Some("b.example:5222".into()),
            }),
        );
        let connecting = render(m, 100, 24);
        net(
            m,
            NetEvent::Connection(ConnState::Online {
                jid: "alice@localhost/pubsub-tui-3f2a".into(),
                resumed: false,
                server: Some("b.example:5222".into()),
            }),
        );
        (connecting, render(m, 100, 24))
    };
    // Several servers (or SRV): which one.
    let mut m = model();
    m.servers_given = 2;
    let (connecting, online) = on_b(&mut m);
    assert!(
        connecting.contains("connecting to b.example:5222 (attempt 2)"),
        "{connecting}"
    );
    assert!(
        online.contains("online as alice@localhost on b.example:5222"),
        "{online}"
    );
    // One server, named by the user: the room goes to the rest of the bar.
    let mut m = model();
    let (connecting, online) = on_b(&mut m);
    assert!(
        connecting.contains("connecting (attempt 2)"),
        "{connecting}"
    );
    assert!(online.contains("online as alice@localhost │"), "{online}");
    assert!(!online.contains("b.example"), "{online}");
}
