//! `update(&mut Model, Msg) -> Vec<Effect>`: all of the TUI's behaviour, with no I/O.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use tui_input::InputRequest;

use super::keymap::{self, Action};
use super::model::{Focus, Model};
use crate::feed::{MarkerKind, PushOutcome};
use crate::sanitize;
use crate::xmpp::protocol::SubState;
use crate::xmpp::{Command, ConnState, NetEvent, SnapshotReason};

/// Longest text the compose box takes (characters).
pub const MAX_COMPOSE_CHARS: usize = 4000;
/// Rows one mouse-wheel step scrolls.
const WHEEL_ROWS: usize = 3;

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    Net(NetEvent),
    /// The network core has stopped (its event channel closed).
    NetEnded,
}

/// What the shell should do after an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Net(Command),
    Quit,
}

pub fn update(m: &mut Model, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) if key.kind != KeyEventKind::Release => on_key(m, key),
        Msg::Key(_) => Vec::new(),
        Msg::Mouse(mouse) => {
            match mouse.kind {
                MouseEventKind::ScrollUp => scroll_feed_up(m, WHEEL_ROWS),
                MouseEventKind::ScrollDown => scroll_feed_down(m, WHEEL_ROWS),
                _ => {}
            }
            Vec::new()
        }
        Msg::Paste(text) => {
            if m.focus == Focus::Compose {
                for c in sanitize::outgoing(&text).chars() {
                    insert_char(m, if c == '\n' || c == '\t' { ' ' } else { c });
                }
            }
            Vec::new()
        }
        Msg::Resize(w, h) => {
            m.size = (w, h);
            clamp_offset(m);
            Vec::new()
        }
        Msg::Net(ev) => {
            on_net(m, ev);
            Vec::new()
        }
        Msg::NetEnded => {
            m.net_ended = true;
            if !matches!(m.conn, ConnState::Failed { .. }) {
                m.conn = ConnState::Closed;
            }
            Vec::new()
        }
    }
}

/// Scroll the help overlay (it is modal, so the movement keys are its own).
fn scroll_help(m: &mut Model, code: KeyCode) {
    let max = super::view::help::max_scroll(m.size);
    let page = m.size.1.saturating_sub(4).max(1);
    m.help_scroll = match code {
        KeyCode::Up | KeyCode::Char('k') => m.help_scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => m.help_scroll.saturating_add(1),
        KeyCode::PageUp => m.help_scroll.saturating_sub(page),
        KeyCode::PageDown => m.help_scroll.saturating_add(page),
        KeyCode::Home | KeyCode::Char('g') => 0,
        KeyCode::End | KeyCode::Char('G') => max,
        _ => m.help_scroll,
    }
    .min(max);
}

fn on_key(m: &mut Model, key: KeyEvent) -> Vec<Effect> {
    let action = keymap::action_for(&key, m.focus);
    if m.show_help {
        // The help overlay is modal: it closes on its own keys; Ctrl-C still quits.
        match action {
            Some(Action::Quit) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                m.quit = true;
                return vec![Effect::Quit];
            }
            _ if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::F(1)
            ) =>
            {
                m.show_help = false;
            }
            _ => scroll_help(m, key.code),
        }
        return Vec::new();
    }
    let Some(action) = action else {
        if m.focus == Focus::Compose {
            edit_compose(m, key);
        }
        return Vec::new();
    };
    match action {
        Action::Quit => {
            m.quit = true;
            return vec![Effect::Quit];
        }
        Action::Help => {
            m.show_help = !m.show_help;
            m.help_scroll = 0;
        }
        Action::FocusNext => m.focus = m.focus.next(),
        Action::FocusPrev => m.focus = m.focus.prev(),
        Action::Compose => m.focus = Focus::Compose,
        Action::LeaveCompose => m.focus = Focus::Feed,
        Action::ToggleAuto => {
            m.auto_publish = !m.auto_publish;
            return vec![Effect::Net(Command::SetAutoPublish(m.auto_publish))];
        }
        Action::Resync => return resync(m),
        Action::Publish => return publish(m),
        Action::Follow => m.feed_offset = 0,
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom => {
            navigate(m, action);
        }
    }
    Vec::new()
}

fn resync(m: &mut Model) -> Vec<Effect> {
    let Some(node) = m.selected_node().map(|n| n.name.clone()) else {
        return Vec::new();
    };
    m.notice = Some(format!("resyncing {node}…"));
    vec![Effect::Net(Command::Resync { node })]
}

fn publish(m: &mut Model) -> Vec<Effect> {
    let text = m.compose.value().trim().to_owned();
    if text.is_empty() {
        return Vec::new();
    }
    let Some(node) = m.selected_node().map(|n| n.name.clone()) else {
        m.last_error = Some("no node selected".into());
        return Vec::new();
    };
    if m.net_ended {
        m.last_error = Some("cannot publish: the connection has ended".into());
        return Vec::new();
    }
    m.compose.reset();
    m.notice = Some(format!("publishing to {node}…"));
    vec![Effect::Net(Command::Publish { node, text })]
}

fn insert_char(m: &mut Model, c: char) {
    if m.compose.value().chars().count() < MAX_COMPOSE_CHARS {
        m.compose.handle(InputRequest::InsertChar(c));
    }
}

fn edit_compose(m: &mut Model, key: KeyEvent) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let req = match key.code {
        KeyCode::Char('a') if ctrl => InputRequest::GoToStart,
        KeyCode::Char('e') if ctrl => InputRequest::GoToEnd,
        KeyCode::Char('u') if ctrl => InputRequest::DeleteLine,
        KeyCode::Char('w') if ctrl => InputRequest::DeletePrevWord,
        KeyCode::Char(c) if !ctrl && !alt => {
            if !c.is_control() {
                insert_char(m, c);
            }
            return;
        }
        KeyCode::Backspace => InputRequest::DeletePrevChar,
        KeyCode::Delete => InputRequest::DeleteNextChar,
        KeyCode::Left if ctrl => InputRequest::GoToPrevWord,
        KeyCode::Right if ctrl => InputRequest::GoToNextWord,
        KeyCode::Left => InputRequest::GoToPrevChar,
        KeyCode::Right => InputRequest::GoToNextChar,
        KeyCode::Home => InputRequest::GoToStart,
        KeyCode::End => InputRequest::GoToEnd,
        _ => return,
    };
    m.compose.handle(req);
}

fn navigate(m: &mut Model, action: Action) {
    match m.focus {
        Focus::Subscriptions => {
            let last = m.nodes.len().saturating_sub(1);
            let new = match action {
                Action::Up => m.selected.saturating_sub(1),
                Action::Down => (m.selected + 1).min(last),
                Action::PageUp | Action::Top => 0,
                Action::PageDown | Action::Bottom => last,
                _ => m.selected,
            };
            if new != m.selected {
                m.selected = new;
                m.feed_offset = 0;
            }
        }
        Focus::Feed | Focus::Compose => {
            let page = m.feed_height().max(1);
            match action {
                Action::Up => scroll_feed_up(m, 1),
                Action::Down => scroll_feed_down(m, 1),
                Action::PageUp => scroll_feed_up(m, page),
                Action::PageDown => scroll_feed_down(m, page),
                Action::Top => m.feed_offset = max_offset(m),
                _ => m.feed_offset = 0,
            }
        }
    }
}

fn max_offset(m: &Model) -> usize {
    m.feed_total().saturating_sub(m.feed_height())
}

fn clamp_offset(m: &mut Model) {
    m.feed_offset = m.feed_offset.min(max_offset(m));
}

fn scroll_feed_up(m: &mut Model, rows: usize) {
    m.feed_offset = (m.feed_offset + rows).min(max_offset(m));
}

fn scroll_feed_down(m: &mut Model, rows: usize) {
    m.feed_offset = m.feed_offset.saturating_sub(rows);
}

fn on_net(m: &mut Model, ev: NetEvent) {
    match ev {
        NetEvent::Connection(state) => {
            if let ConnState::Failed { error } = &state {
                m.last_error = Some(format!("connection failed: {error}"));
            }
            m.conn = state;
        }
        NetEvent::Subscription { node, state } => {
            if let SubState::Error(reason) = &state {
                m.last_error = Some(format!("subscribing to {node}: {reason}"));
            }
            if let Some(n) = m.node_mut(&node) {
                n.state = state;
            }
        }
        NetEvent::Item(item) => on_item(m, item),
        NetEvent::ResyncStarted { node } => {
            if let Some(n) = m.node_mut(&node) {
                n.resyncing = true;
            }
        }
        NetEvent::Snapshot {
            node,
            items,
            reason,
            lost,
            at,
        } => on_snapshot(m, &node, items, reason, &lost, at),
        NetEvent::ResyncProgress {
            node,
            received,
            total,
        } => {
            if let Some(n) = m.node_mut(&node) {
                n.progress = Some((received, total));
            }
        }
        NetEvent::Gap {
            node,
            sender,
            from,
            to,
        } => on_gap(m, &node, &sender, from, to),
        NetEvent::Done { what } => m.notice = Some(format!("done: {what}")),
        NetEvent::ResyncFailed {
            node,
            reason,
            unsupported,
        } => on_resync_failed(m, &node, &reason, unsupported),
        NetEvent::Retracted { node, id } => {
            if let Some(n) = m.node_mut(&node) {
                n.feed.retract(&id);
            }
        }
        NetEvent::Purged { node } => {
            if let Some(n) = m.node_mut(&node) {
                n.feed.clear_with_marker(
                    MarkerKind::Purge,
                    "all items were purged by the node owner",
                );
            }
        }
        NetEvent::Deleted { node } => {
            if let Some(n) = m.node_mut(&node) {
                n.feed
                    .clear_with_marker(MarkerKind::Delete, "the node was deleted");
                n.state = SubState::Error("node deleted".into());
            }
        }
        NetEvent::PublishQueued { node, id } => {
            m.notice = Some(format!("offline: {id} waits to be published to {node}"));
            m.waiting.insert(id);
        }
        NetEvent::Published { node, id, auto } => {
            if !auto {
                m.notice = Some(format!("published {id} to {node}"));
            }
            m.waiting.remove(&id);
        }
        NetEvent::PublishFailed { node, id, reason } => {
            m.last_error = Some(format!("publishing {id} to {node} failed: {reason}"));
            m.waiting.remove(&id);
        }
        NetEvent::AutoPublish {
            enabled,
            interval,
            node,
        } => {
            m.auto_publish = enabled;
            m.interval = interval;
            m.auto_node = node;
        }
        NetEvent::NodeCreated { node } => m.notice = Some(format!("node {node} created")),
        NetEvent::RequestFailed { what, reason } => {
            m.last_error = Some(format!("{what}: {reason}"));
        }
        NetEvent::Dropped { total, .. } => m.dropped = total,
    }
    clamp_offset(m);
}

fn on_snapshot(
    m: &mut Model,
    node: &str,
    items: Vec<crate::feed::FeedItem>,
    reason: SnapshotReason,
    lost: &[crate::feed::gap::Lost],
    at: chrono::DateTime<chrono::Utc>,
) {
    let selected = m.node_index(node) == Some(m.selected);
    let offset = m.offset;
    let count = items.len();
    let text = match reason {
        SnapshotReason::Initial if count == 0 => "no stored items on the service".to_owned(),
        SnapshotReason::Initial => format!("{count} stored items retrieved from the service"),
        SnapshotReason::Manual => format!("resynced: {count} items from the service"),
        SnapshotReason::Gap => format!("resynced after a gap: {count} items from the service"),
    };
    if let Some(n) = m.node_mut(node) {
        n.resyncing = false;
        if let Some(last) = items.last() {
            n.last_activity = Some(last.display_time(offset));
        }
        n.feed.replace_all(items, text.clone());
        for l in lost {
            n.feed.push_marker(MarkerKind::Lost, l.to_string());
        }
        n.progress = None;
        n.last_resync = Some(at.with_timezone(&offset).format("%H:%M:%S").to_string());
    }
    if selected {
        m.feed_offset = 0;
    }
    if reason != SnapshotReason::Initial {
        m.notice = Some(format!("{node}: {text}"));
    }
}

fn on_resync_failed(m: &mut Model, node: &str, reason: &str, unsupported: bool) {
    if let Some(n) = m.node_mut(node) {
        n.resyncing = false;
    }
    m.last_error = Some(if unsupported {
        format!(
            "{node}: this service cannot send stored items again, so resync is not possible ({reason})"
        )
    } else {
        format!("resync of {node} failed: {reason}")
    });
}

fn on_gap(m: &mut Model, node: &str, sender: &str, from: u64, to: u64) {
    if let Some(n) = m.node_mut(node) {
        n.gaps += 1;
    }
    let range = if from == to {
        from.to_string()
    } else {
        format!("{from}–{to}")
    };
    m.notice = Some(format!(
        "{node}: items from {sender} missing (seq {range}); resyncing"
    ));
}

fn on_item(m: &mut Model, item: crate::feed::FeedItem) {
    let selected = m.node_index(&item.node) == Some(m.selected);
    let offset = m.offset;
    let Some(n) = m.node_mut(&item.node) else {
        return;
    };
    n.last_activity = Some(item.display_time(offset));
    let outcome = n.feed.push_item(item);
    if selected && outcome == PushOutcome::Added && m.feed_offset > 0 {
        // Keep the rows the user is reading in place while new ones arrive below.
        m.feed_offset += 1;
    }
}
