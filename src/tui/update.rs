//! `update(&mut Model, Msg) -> Vec<Effect>`: all of the TUI's behaviour, with no I/O.

pub use crate::feed::render::plural;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use tui_input::InputRequest;

use super::keymap::{self, Action, Mode};
use super::model::{Asked, Failed, Focus, Level, Model, Overlay, SyncState, Unconfirmed};
use crate::feed::{MarkerKind, PushOutcome};
use crate::sanitize;
use crate::xmpp::error::{Op, RequestError, explain};
use crate::xmpp::proto::{self, SubState};
use crate::xmpp::{Answer, Command, ConnState, NetEvent, RequestId, SnapshotReason};

/// Rows one mouse-wheel step scrolls.
const WHEEL_ROWS: usize = 3;

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a message is moved once, into update; most are network events"
)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    Net(NetEvent),
    /// The network core has stopped (its event channel closed).
    NetEnded,
    /// The time now (the shell sends one a second).
    Tick(DateTime<Utc>),
    /// `$EDITOR` is done with an item's payload: the new text (`None`: not changed), or why
    /// it could not run.
    Edited {
        node: String,
        id: String,
        result: Result<Option<String>, String>,
        /// The file the edit is in, kept until the service has it (then removed).
        kept: Option<std::path::PathBuf>,
    },
    /// The items were written (how many, and how many left out), or why not; `altered`: how
    /// many of them had hidden characters removed where they came in.
    Exported {
        path: std::path::PathBuf,
        label: String,
        result: Result<(usize, usize), String>,
        altered: usize,
    },
}

/// What the shell should do after an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Net(Command),
    /// Keep (or forget) a followed node for the next start.
    Remember {
        node: String,
        follow: bool,
    },
    /// Let the user edit this payload of an item in `$EDITOR` (answered with
    /// [`Msg::Edited`]).
    Edit {
        node: String,
        id: String,
        xml: String,
    },
    /// Put this text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// Remove a file of ours (an edit the service now has).
    RemoveFile(std::path::PathBuf),
    /// Write these items to a new file (answered with [`Msg::Exported`]).
    Export {
        path: std::path::PathBuf,
        format: crate::feed::export::Format,
        label: String,
        items: Vec<crate::feed::FeedItem>,
    },
    Quit,
}

pub fn update(m: &mut Model, msg: Msg) -> Vec<Effect> {
    let fx = dispatch(m, msg);
    bound_memory(m);
    super::search::refresh(m);
    fx
}

/// Items of each node the memory bound leaves, so a busy node does not empty a quiet one.
const MEMORY_FLOOR_ITEMS: usize = 5;

/// Keep the feeds within `--feed-memory`: the oldest rows go, across every node (the feed's
/// eviction marker says so), down to each node's newest [`MEMORY_FLOOR_ITEMS`].
fn bound_memory(m: &mut Model) {
    let Some(max) = m.feed_memory else {
        return;
    };
    let mut total: usize = m.nodes.iter().map(|n| n.feed.bytes()).sum();
    while total > max {
        let Some(i) = (0..m.nodes.len())
            .filter(|&i| m.nodes[i].feed.item_count() > MEMORY_FLOOR_ITEMS)
            .min_by_key(|&i| m.nodes[i].feed.oldest_received())
        else {
            break;
        };
        let before = m.nodes[i].feed.bytes();
        if !m.nodes[i].feed.evict_oldest() {
            break;
        }
        total -= before.saturating_sub(m.nodes[i].feed.bytes());
    }
}

fn dispatch(m: &mut Model, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) if key.kind != KeyEventKind::Release => key_event(m, key),
        Msg::Key(_) => Vec::new(),
        Msg::Mouse(mouse) => {
            match mouse.kind {
                MouseEventKind::ScrollUp => wheel(m, true),
                MouseEventKind::ScrollDown => wheel(m, false),
                _ => {}
            }
            Vec::new()
        }
        Msg::Paste(text) => {
            // A paste is text: it goes to the compose box, whichever pane has the focus.
            if m.overlay == Overlay::Form {
                super::owner::paste(m, &text);
            } else if let Some(s) = m
                .search
                .as_mut()
                .filter(|s| s.typing && m.overlay == Overlay::None)
            {
                // One line, added to the expression.
                let line = sanitize::display(&text.replace(['\r', '\n'], " "));
                let v = format!("{}{}", s.input.value(), line.trim());
                s.input =
                    tui_input::Input::new(v.chars().take(crate::feed::filter::MAX_EXPR).collect());
                s.retype();
            } else if m.overlay == Overlay::None {
                m.focus = Focus::Compose;
                paste(m, &text);
            } else if m.overlay == Overlay::Explorer {
                // One line: a filter or a node name.
                let line: String = sanitize::display(&text.replace(['\r', '\n'], " "));
                let line = line.trim().chars().take(1023).collect::<String>();
                if m.explorer.typing.is_none() {
                    m.explorer.view = super::explorer::View::Nodes;
                    m.explorer.typing = Some(super::explorer::Typing::Filter);
                }
                match &mut m.explorer.typing {
                    Some(super::explorer::Typing::Filter) => {
                        let v = format!("{}{line}", m.explorer.filter.value());
                        m.explorer.filter = tui_input::Input::new(v);
                    }
                    Some(super::explorer::Typing::AddNode(input)) => {
                        let v = format!("{}{line}", input.value());
                        *input = tui_input::Input::new(v);
                    }
                    None => {}
                }
            }
            Vec::new()
        }
        Msg::Resize(w, h) => {
            m.size = (w, h);
            clamp_offset(m);
            clamp_overlay(m);
            Vec::new()
        }
        Msg::Net(ev) => on_net(m, ev),
        Msg::NetEnded => {
            m.net_ended = true;
            if !matches!(m.conn, ConnState::Failed { .. }) {
                m.conn = ConnState::Closed;
            }
            Vec::new()
        }
        Msg::Tick(now) => {
            m.now = now;
            Vec::new()
        }
        Msg::Edited {
            node,
            id,
            result,
            kept,
        } => super::owner::edited(m, node, id, result, kept),
        Msg::Exported {
            path,
            label,
            result,
            altered,
        } => {
            super::export::done(m, &path, &label, result);
            if altered > 0 {
                m.quiet(
                    Level::Info,
                    format!(
                        "{altered} of the items written had hidden characters (controls, bidi) removed where they came in; the file has them without"
                    ),
                );
            }
            Vec::new()
        }
    }
}

/// Rows of text the overlay has, and rows it shows, at the current size.
fn overlay_extent(m: &Model) -> u16 {
    match m.overlay {
        Overlay::Help { .. } => super::view::help::max_scroll(m.size),
        Overlay::Stats { .. } => super::view::stats::max_scroll(m),
        Overlay::Messages { .. } => super::view::messages::max_scroll(m),
        _ => 0,
    }
}

fn clamp_overlay(m: &mut Model) {
    let max = overlay_extent(m);
    match &mut m.overlay {
        Overlay::Help { scroll } | Overlay::Messages { scroll } | Overlay::Stats { scroll } => {
            *scroll = (*scroll).min(max);
        }
        _ => {}
    }
}

/// Scroll the help or message overlay (the movement keys are its own while it is open).
/// Help counts rows down from its top; the message log counts rows up from its newest line.
fn scroll_overlay(m: &mut Model, action: Action) {
    let max = overlay_extent(m);
    let page = m.size.1.saturating_sub(4).max(1);
    let (scroll, from_end) = match &mut m.overlay {
        Overlay::Help { scroll } | Overlay::Stats { scroll } => (scroll, false),
        Overlay::Messages { scroll } => (scroll, true),
        _ => return,
    };
    // Rows towards the top (negative) or the bottom (positive) of the text.
    let towards_bottom: i32 = match action {
        Action::Up => -1,
        Action::Down => 1,
        Action::PageUp => -i32::from(page),
        Action::PageDown => i32::from(page),
        Action::Top => -i32::from(u16::MAX),
        Action::Bottom => i32::from(u16::MAX),
        _ => 0,
    };
    let delta = if from_end {
        -towards_bottom
    } else {
        towards_bottom
    };
    let new = (i32::from(*scroll) + delta).clamp(0, i32::from(max));
    *scroll = u16::try_from(new).unwrap_or(max);
}

/// A key in an overlay: its own handler.
fn overlay_key(m: &mut Model, key: KeyEvent, mode: Mode, action: Option<Action>) -> Vec<Effect> {
    match mode {
        Mode::Overlay => {
            match action {
                Some(Action::Close) => m.overlay = m.under.take().unwrap_or(Overlay::None),
                Some(a) => scroll_overlay(m, a),
                None => {}
            }
            Vec::new()
        }
        Mode::Confirm | Mode::ConfirmTyped => super::owner::confirm_key(m, key, action),
        Mode::Explorer => explorer_key(m, action),
        Mode::ExplorerTyping => explorer_typing(m, key, action),
        Mode::Form | Mode::FormTyping | Mode::FormPicker => super::owner::form_key(m, key, action),
        Mode::Panel(_) | Mode::PanelTyping => super::owner::panel_key(m, key, action),
        Mode::ItemView => super::itemview::key(m, action),
        Mode::SearchTyping => super::search::typing_key(m, key, action),
        Mode::Export => super::export::key(m, key, action),
        Mode::Pane(_) => Vec::new(),
    }
}

/// Where a key stands in what a terminal sends for Esc typed just before an arrow key: the
/// two ESC bytes read as Esc, then `[` (or `O`) and a letter, which would run the letter's
/// command (`A`: affiliations, `D`: delete the node) instead of the arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscSeq {
    #[default]
    None,
    /// Esc came last.
    Esc,
    /// Esc and `[` (or `O`): the letter that follows is an arrow.
    Intro,
}

fn key_event(m: &mut Model, key: KeyEvent) -> Vec<Effect> {
    let plain = key.modifiers.difference(KeyModifiers::SHIFT).is_empty();
    let intro = matches!(key.code, KeyCode::Char('[' | 'O'));
    match m.esc_seq {
        EscSeq::Esc if intro && plain => {
            m.esc_seq = EscSeq::Intro;
            return Vec::new();
        }
        EscSeq::Intro => {
            m.esc_seq = EscSeq::None;
            let arrow = match key.code {
                KeyCode::Char('A') => Some(KeyCode::Up),
                KeyCode::Char('B') => Some(KeyCode::Down),
                KeyCode::Char('C') => Some(KeyCode::Right),
                KeyCode::Char('D') => Some(KeyCode::Left),
                KeyCode::Char('H') => Some(KeyCode::Home),
                KeyCode::Char('F') => Some(KeyCode::End),
                _ => None,
            };
            if let Some(code) = arrow {
                return on_key(m, KeyEvent::new(code, KeyModifiers::NONE));
            }
        }
        _ => {}
    }
    if intro && key.modifiers == KeyModifiers::ALT {
        // Esc and `[` read as one key: Esc now, the letter next is an arrow.
        m.esc_seq = EscSeq::Intro;
        return on_key(m, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    }
    m.esc_seq = if key.code == KeyCode::Esc {
        EscSeq::Esc
    } else {
        EscSeq::None
    };
    on_key(m, key)
}

/// A key with no binding in the panes: text for the compose box, or Esc and a key typed at
/// once (which terminals send as Alt and the key).
fn unbound_key(m: &mut Model, key: KeyEvent) -> Vec<Effect> {
    if m.focus == Focus::Compose {
        if let KeyCode::Char(c) = key.code
            && key.modifiers == KeyModifiers::ALT
        {
            // Esc and a key typed quickly arrive as Alt and the key: leave the compose
            // box, and let the key act in the panes.
            m.focus = Focus::Feed;
            return on_key(m, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        edit_compose(m, key);
    } else if let KeyCode::Char(c) = key.code
        && key.modifiers == KeyModifiers::ALT
    {
        // In the panes too: Esc, then the key.
        let mut fx = on_key(m, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        fx.extend(on_key(
            m,
            KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
        ));
        return fx;
    }
    Vec::new()
}

fn on_key(m: &mut Model, key: KeyEvent) -> Vec<Effect> {
    let mode = Mode::of(m);
    let action = keymap::action_in(&key, m);
    if !matches!(mode, Mode::Pane(_)) {
        if action.is_none()
            && key.modifiers == KeyModifiers::ALT
            && let KeyCode::Char(c) = key.code
        {
            // Esc and a key typed at once: in an overlay or a line being typed too.
            let mut fx = on_key(m, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            fx.extend(on_key(
                m,
                KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
            ));
            return fx;
        }
        return overlay_key(m, key, mode, action);
    }
    let Some(action) = action else {
        return unbound_key(m, key);
    };
    if action.is_owner() {
        return super::owner::start(m, action);
    }
    if action.is_item() {
        return super::owner::item_action(m, action);
    }
    match action {
        Action::Quit => return on_quit(m),
        Action::Help => m.overlay = Overlay::Help { scroll: 0 },
        Action::Messages => m.overlay = Overlay::Messages { scroll: 0 },
        Action::Stats => m.overlay = Overlay::Stats { scroll: 0 },
        Action::FocusNext => m.focus = m.focus.next(),
        Action::FocusPrev => m.focus = m.focus.prev(),
        Action::Compose => m.focus = Focus::Compose,
        Action::LeaveCompose => m.focus = Focus::Feed,
        Action::ToggleAuto => return toggle_auto(m),
        Action::Resync => return resync(m),
        Action::ResendFailed => restore_failed(m),
        Action::Publish => return publish(m),
        Action::NewLine => insert_text(m, "\n"),
        Action::Follow => {
            m.feed_offset = 0;
            m.cursor = None;
        }
        Action::Filter => super::search::open(m),
        Action::Export => super::export::start(m),
        Action::Cancel => super::search::close(m),
        Action::NextMatch => super::search::jump(m, true),
        Action::PrevMatch => super::search::jump(m, false),

        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom => return navigate(m, action),
        Action::Explore => return open_explorer(m),
        Action::Unsubscribe => {
            if let Some(node) = m.selected_node().map(|n| n.name.clone()) {
                return unfollow(m, &node);
            }
        }
        Action::Close
        | Action::Yes
        | Action::No
        | Action::Discard
        | Action::Subscribe
        | Action::Expand
        | Action::Collapse
        | Action::Chart
        | Action::AllNodes
        | Action::AddNode
        | Action::Capabilities
        | Action::Reload
        | Action::Accept
        | Action::Toggle
        | Action::Submit
        | Action::MakeOwner
        | Action::MakePublisher
        | Action::MakePublishOnly
        | Action::MakeMember
        | Action::MakeNone
        | Action::MakeOutcast
        | Action::Approve
        | Action::Deny
        | Action::AddEntry
        // Handled above (on the selected node, on the selected item).
        | Action::Configure
        | Action::CreateNode
        | Action::Purge
        | Action::DeleteNode
        | Action::Affiliations
        | Action::NodeSubscriptions
        | Action::ViewItem
        | Action::Retract
        | Action::EditItem
        | Action::CopyId => {}
    }
    Vec::new()
}

/// `a`: auto-publish on or off (to the selected node).
fn toggle_auto(m: &mut Model) -> Vec<Effect> {
    if m.selected_node().is_none() {
        m.outcome(
            Level::Error,
            "no node to auto-publish to: follow one first (e opens the explorer)",
        );
        return Vec::new();
    }
    m.auto_publish = !m.auto_publish;
    let node = m.selected_node().map(|n| n.name.clone());
    let text = match (&node, m.auto_publish) {
        (Some(n), true) => format!(
            "auto-publish on: an item every {} s to {n}",
            m.interval.as_secs_f64()
        ),
        _ => "auto-publish off".to_owned(),
    };
    m.outcome(Level::Info, text);
    vec![Effect::Net(Command::SetAutoPublish {
        enabled: m.auto_publish,
        node,
    })]
}

/// Follow a node from now on: it shows in the subscriptions pane at once (subscribing), the
/// core subscribes and fetches its items, and the next start follows it too.
fn follow(m: &mut Model, node: String) -> Vec<Effect> {
    if m.follows(&node) {
        m.outcome(Level::Info, format!("{node} is followed already"));
        return Vec::new();
    }
    if let Err(e) = crate::xmpp::session::check_node_name(&node) {
        m.outcome(Level::Error, format!("cannot follow that: {e}"));
        return Vec::new();
    }
    m.add_node(&node);
    m.outcome(Level::Info, format!("following {node}: subscribing…"));
    let asked = Asked::Follow { node: node.clone() };
    let key = m.key(&node);
    let cmd = m.ask(asked, |req| Command::Follow { req, node: key });
    vec![Effect::Net(cmd), Effect::Remember { node, follow: true }]
}

/// Stop following a node: it leaves the subscriptions pane at once; the core unsubscribes.
fn unfollow(m: &mut Model, node: &str) -> Vec<Effect> {
    if !m.follows(node) {
        return Vec::new();
    }
    m.outcome(Level::Info, format!("stopped following {node}"));
    leave(m, node)
}

/// Take a node out of the followed set (the service is asked to unsubscribe).
fn leave(m: &mut Model, node: &str) -> Vec<Effect> {
    let was_auto = m.auto_node.as_deref() == Some(node);
    m.remove_node(node);
    m.unconfirmed.retain(|_, u| u.node != node);
    let key = m.key(node);
    let asked = Asked::Unfollow {
        node: node.to_owned(),
    };
    let mut fx = vec![
        Effect::Net(m.ask(asked, |req| Command::Unfollow { req, node: key })),
        Effect::Remember {
            node: node.to_owned(),
            follow: false,
        },
    ];
    if m.auto_publish && was_auto {
        // Auto-publish went to this node: it follows the selection.
        fx.push(Effect::Net(Command::SetAutoPublish {
            enabled: true,
            node: m.selected_node().map(|n| n.name.clone()),
        }));
    }
    fx
}

/// Open the explorer; the first time (or after a reload), list the service's nodes.
fn open_explorer(m: &mut Model) -> Vec<Effect> {
    m.overlay = Overlay::Explorer;
    m.explorer.view = super::explorer::View::Nodes;
    let selected = m.selected_node().map(|n| n.name.clone());
    if m.explorer.opened {
        m.explorer.select(selected.as_deref());
        return Vec::new();
    }
    let fx = list_root(m);
    m.explorer.select_when_listed = selected;
    fx
}

fn list_root(m: &mut Model) -> Vec<Effect> {
    if !m.is_online() {
        m.explorer.error = Some("not connected: the list comes once online (R)".into());
        return Vec::new();
    }
    let keep = m.explorer.selected_entry().map(|e| e.node.clone());
    m.explorer.clear();
    m.explorer.select_when_listed = keep;
    m.explorer.opened = true;
    vec![ask_list(m, None, None)]
}

/// Ask for a page of the nodes under `parent` (`None`: the root), after `after` (RSM); the
/// list counts as being fetched until its last page is in.
fn ask_list(m: &mut Model, parent: Option<String>, after: Option<String>) -> Effect {
    m.explorer.listing.insert(parent.clone());
    let asked = Asked::ListNodes {
        parent: parent.clone(),
    };
    let service = m.service.clone();
    Effect::Net(m.ask(asked, |req| Command::ListNodes {
        req,
        service,
        parent,
        after,
    }))
}

/// The meta-data requests the explorer's window allows now.
pub(super) fn ask_infos(m: &mut Model) -> Vec<Effect> {
    let nodes = m.explorer.next_infos();
    nodes
        .into_iter()
        .map(|node| {
            let asked = Asked::NodeInfo { node: node.clone() };
            let service = m.service.clone();
            Effect::Net(m.ask(asked, |req| Command::Info {
                req,
                service,
                node: Some(node),
            }))
        })
        .collect()
}

/// A key in the capability view: scroll, or go back to the list (typing keys type there).
fn capability_key(m: &mut Model, action: Action) -> Vec<Effect> {
    use super::explorer::{Typing, View};
    let max = super::view::explorer::capability_max_scroll(m);
    let View::Capabilities { scroll } = &mut m.explorer.view else {
        return Vec::new();
    };
    let page = m.size.1.saturating_sub(6).max(1);
    match action {
        Action::Up => *scroll = scroll.saturating_sub(1),
        Action::Down => *scroll = scroll.saturating_add(1).min(max),
        Action::PageUp => *scroll = scroll.saturating_sub(page),
        Action::PageDown => *scroll = scroll.saturating_add(page).min(max),
        Action::Top => *scroll = 0,
        Action::Bottom => *scroll = max,
        Action::Capabilities | Action::Close => m.explorer.view = View::Nodes,
        Action::Quit => return on_quit(m),
        Action::Reload => {
            m.explorer.view = View::Nodes;
            m.outcome(Level::Info, "listing the service's nodes again…");
            let fx = list_root(m);
            m.explorer.announce = true;
            return fx;
        }
        Action::Help | Action::Messages => over_explorer(m, action),
        // Typing keys are the list's: back to it, and type.
        Action::Filter => {
            m.explorer.view = View::Nodes;
            m.explorer.typing = Some(Typing::Filter);
        }
        Action::AddNode => {
            m.explorer.view = View::Nodes;
            m.explorer.typing = Some(Typing::AddNode(tui_input::Input::default()));
        }
        _ => {}
    }
    Vec::new()
}

fn explorer_key(m: &mut Model, action: Option<Action>) -> Vec<Effect> {
    use super::explorer::{ServiceInfo, Typing, View};
    let Some(action) = action else {
        return Vec::new();
    };
    if matches!(m.explorer.view, View::Capabilities { .. }) {
        return capability_key(m, action);
    }
    let rows = m.explorer.visible().len();
    let page = super::view::explorer::list_rows(m.size).max(1);
    let x = &mut m.explorer;
    if let Some(at) = action.moved(x.selected, page, rows.saturating_sub(1)) {
        x.selected = at;
        return Vec::new();
    }
    match action {
        // A filter goes first, then the explorer.
        Action::Close if !x.filter.value().is_empty() => {
            let keep = x.selected_entry().map(|e| e.node.clone());
            x.filter.reset();
            x.select(keep.as_deref());
        }
        Action::Close => m.overlay = Overlay::None,
        Action::Quit => return on_quit(m),
        Action::Help | Action::Messages => over_explorer(m, action),
        Action::Filter => x.typing = Some(Typing::Filter),
        Action::AddNode => x.typing = Some(Typing::AddNode(tui_input::Input::default())),
        Action::Capabilities => {
            x.view = View::Capabilities { scroll: 0 };
            if matches!(x.service, ServiceInfo::Unknown | ServiceInfo::Refused(_)) && m.is_online()
            {
                m.explorer.service = ServiceInfo::Loading;
                let service = m.service.clone();
                return vec![Effect::Net(m.ask(Asked::ServiceInfo, |req| {
                    Command::Info {
                        req,
                        service,
                        node: None,
                    }
                }))];
            }
        }
        Action::Reload => {
            m.outcome(Level::Info, "listing the service's nodes again…");
            let fx = list_root(m);
            m.explorer.announce = true;
            return fx;
        }
        Action::Expand => {
            if let Some(e) = x.selected_entry().filter(|e| !e.may_have_children()) {
                let text = format!("{} is not a collection: it has no nodes inside", e.node);
                m.outcome(Level::Info, text);
                return Vec::new();
            }
            if let Some(node) = x.toggle_selected() {
                return vec![ask_list(m, Some(node), None)];
            }
        }
        Action::Subscribe => {
            if let Some(node) = x.selected_entry().map(|e| e.node.clone()) {
                return follow(m, node);
            }
        }
        Action::Unsubscribe => {
            if let Some(node) = x.selected_entry().map(|e| e.node.clone()) {
                return unfollow(m, &node);
            }
        }
        a if a.is_owner() => return super::owner::start(m, a),
        _ => {}
    }
    Vec::new()
}

fn explorer_typing(m: &mut Model, key: KeyEvent, action: Option<Action>) -> Vec<Effect> {
    use super::explorer::Typing;
    if let KeyCode::Char(c) = key.code
        && key.modifiers == KeyModifiers::ALT
    {
        // Esc and a key typed quickly arrive as Alt and the key: end the typing as Esc
        // does, and let the key act in the explorer.
        let _ = explorer_typing(
            m,
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
            Some(Action::Cancel),
        );
        return on_key(m, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    let keep = m.explorer.selected_entry().map(|e| e.node.clone());
    let Some(typing) = m.explorer.typing.as_mut() else {
        return Vec::new();
    };
    match action {
        Some(Action::Quit) => return on_quit(m),
        Some(Action::Accept) => {
            let typing = m.explorer.typing.take();
            if let Some(Typing::AddNode(input)) = typing {
                let node = input.value().trim().to_owned();
                if !node.is_empty() {
                    return follow(m, node);
                }
            }
        }
        Some(Action::Cancel) => {
            if matches!(typing, Typing::Filter) {
                m.explorer.filter.reset();
            }
            m.explorer.typing = None;
            m.explorer.select(keep.as_deref());
        }
        _ => {
            let input = match typing {
                Typing::Filter => &mut m.explorer.filter,
                Typing::AddNode(input) => input,
            };
            edit_line(input, key);
            m.explorer.select(keep.as_deref());
        }
    }
    Vec::new()
}

/// Help or the message log over the explorer; closing it goes back to the explorer.
fn over_explorer(m: &mut Model, action: Action) {
    m.overlay = if action == Action::Help {
        Overlay::Help { scroll: 0 }
    } else {
        Overlay::Messages { scroll: 0 }
    };
    m.under = Some(Overlay::Explorer);
}

/// Quit, or ask first when text would be lost.
pub(super) fn on_quit(m: &mut Model) -> Vec<Effect> {
    if m.would_lose_text() || m.unsent_to_keep() > 0 {
        m.confirm = Some(super::owner::Confirm::Quit);
        // "Stay" goes back to where the user was (the form, with its changes).
        m.under = match m.overlay {
            Overlay::None | Overlay::Confirm | Overlay::Help { .. } | Overlay::Messages { .. } => {
                m.under.take()
            }
            other => Some(other),
        };
        m.overlay = Overlay::Confirm;
        Vec::new()
    } else {
        m.quit = true;
        vec![Effect::Quit]
    }
}

fn resync(m: &mut Model) -> Vec<Effect> {
    let Some(node) = m.selected_node().map(|n| n.name.clone()) else {
        return Vec::new();
    };
    if !m.is_online() {
        m.outcome(Level::Error, format!("cannot resync {node}: not connected"));
        return Vec::new();
    }
    m.outcome(Level::Info, format!("resyncing {node}…"));
    let asked = Asked::Resync { node: node.clone() };
    let key = m.key(&node);
    vec![Effect::Net(
        m.ask(asked, |req| Command::Resync { req, node: key }),
    )]
}

/// Put the newest failed item's text back in the compose box, to send it again (to the
/// selected node, which may be another one than it failed on).
fn restore_failed(m: &mut Model) {
    if m.failed.is_empty() {
        return;
    }
    if !m.compose.value().is_empty() {
        m.outcome(
            Level::Error,
            "the compose box holds a draft: publish or clear it (Ctrl-U) first, then P",
        );
        return;
    }
    let Some(f) = m.failed.pop() else { return };
    let len = f.text.chars().count();
    m.compose = tui_input::Input::new(f.text).with_cursor(len);
    m.focus = Focus::Compose;
    let more = if m.failed.is_empty() {
        String::new()
    } else {
        format!("; {} more failed", m.failed.len())
    };
    m.outcome(
        Level::Info,
        format!(
            "the item that failed on {} is back in the compose box: Enter publishes it to the \
             selected node{more}",
            f.node
        ),
    );
}

fn publish(m: &mut Model) -> Vec<Effect> {
    let text = m.compose.value().trim_end().to_owned();
    if text.trim().is_empty() {
        if !m.compose.value().is_empty() {
            m.outcome(Level::Error, "nothing to publish: the text is only spaces");
        }
        return Vec::new();
    }
    let Some(node) = m.selected_node().map(|n| n.name.clone()) else {
        m.outcome(Level::Error, "no node selected");
        return Vec::new();
    };
    if m.net_ended {
        m.outcome(Level::Error, "cannot publish: the connection has ended");
        return Vec::new();
    }
    if let Err(why) = proto::check_text_size(&sanitize::outgoing(&text)) {
        m.outcome(Level::Error, why);
        return Vec::new();
    }
    m.compose.reset();
    m.outcome(Level::Info, format!("publishing to {node}…"));
    let asked = Asked::Publish {
        node: node.clone(),
        text: text.clone(),
        id: None,
    };
    let key = m.key(&node);
    vec![Effect::Net(m.ask(asked, |req| Command::Publish {
        req,
        node: key,
        text,
    }))]
}

/// Insert text at the cursor, if the item would still fit; say so if not.
fn insert_text(m: &mut Model, text: &str) {
    let now = proto::text_xml_len(m.compose.value());
    let more = proto::text_xml_len(text);
    if now + more > proto::MAX_TEXT_XML_BYTES {
        m.outcome(
            Level::Error,
            format!(
                "that does not fit: an item carries at most {} bytes of text as XML, and this \
                 would make {} bytes",
                proto::MAX_TEXT_XML_BYTES,
                now + more
            ),
        );
        return;
    }
    // One splice, not a char at a time: inserting by char index is linear, so a 250 KiB
    // paste a char at a time would take minutes.
    let cursor = m.compose.cursor();
    let value = m.compose.value();
    let at = value
        .char_indices()
        .nth(cursor)
        .map_or(value.len(), |(i, _)| i);
    let mut new = String::with_capacity(value.len() + text.len());
    new.push_str(&value[..at]);
    new.push_str(text);
    new.push_str(&value[at..]);
    m.compose = tui_input::Input::new(new).with_cursor(cursor + text.chars().count());
}

/// Pasted text goes in whole, line breaks kept (terminals paste a CR for each).
fn paste(m: &mut Model, text: &str) {
    insert_text(m, &sanitize::outgoing(text));
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
                insert_text(m, c.encode_utf8(&mut [0; 4]));
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

/// Edit a one-line input (the explorer's filter, a node name): printable characters, the
/// usual movement and deletion keys.
pub(super) fn edit_line(input: &mut tui_input::Input, key: KeyEvent) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let req = match key.code {
        KeyCode::Char(c) if !ctrl && !c.is_control() => InputRequest::InsertChar(c),
        KeyCode::Char('u') if ctrl => InputRequest::DeleteLine,
        KeyCode::Char('w') if ctrl => InputRequest::DeletePrevWord,
        KeyCode::Backspace => InputRequest::DeletePrevChar,
        KeyCode::Delete => InputRequest::DeleteNextChar,
        KeyCode::Left => InputRequest::GoToPrevChar,
        KeyCode::Right => InputRequest::GoToNextChar,
        KeyCode::Home => InputRequest::GoToStart,
        KeyCode::End => InputRequest::GoToEnd,
        _ => return,
    };
    // A line this long is no filter and no node name.
    if matches!(req, InputRequest::InsertChar(_)) && input.value().len() >= 1023 {
        return;
    }
    input.handle(req);
}

fn navigate(m: &mut Model, action: Action) -> Vec<Effect> {
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
                m.cursor = None;
                // Auto-publish follows the selected node.
                if m.auto_publish {
                    return vec![Effect::Net(Command::SetAutoPublish {
                        enabled: true,
                        node: m.selected_node().map(|n| n.name.clone()),
                    })];
                }
            }
        }
        Focus::Feed | Focus::Compose => {
            let page = m.feed_height().max(1);
            let last = m.feed_total().saturating_sub(1);
            // The selected row moves; the view scrolls to keep it in sight (a page moves
            // both by a page).
            match action {
                Action::Up => m.cursor = Some(next_item_row(m, m.cursor, true)),
                Action::Down => m.cursor = Some(next_item_row(m, m.cursor, false)),
                Action::PageUp => {
                    scroll_feed_up(m, page);
                    m.cursor = Some(m.cursor.map_or(page, |c| c + page).min(last));
                }
                Action::PageDown => {
                    scroll_feed_down(m, page);
                    m.cursor = Some(m.cursor.unwrap_or(0).saturating_sub(page));
                }
                Action::Top => {
                    m.feed_offset = max_offset(m);
                    m.cursor = Some(last);
                }
                _ => {
                    m.feed_offset = 0;
                    m.cursor = None;
                }
            }
            if m.feed_total() == 0 {
                m.cursor = None;
            }
            keep_cursor_in_view(m, true);
        }
    }
    Vec::new()
}

/// The next item row (in rows up from the newest) older (`up`) or newer than `from`, skipping
/// markers; `from` itself when there is none; the newest item when nothing is selected.
fn next_item_row(m: &Model, from: Option<usize>, up: bool) -> usize {
    if let Some(hits) = m.shown_hits() {
        // Every row of a filter's list is an item.
        let last = hits.len().saturating_sub(1);
        return match (from, up) {
            (None, _) => 0,
            (Some(c), true) => (c + 1).min(last),
            (Some(c), false) => c.saturating_sub(1),
        };
    }
    let Some(node) = m.selected_node() else {
        return 0;
    };
    let marker_rows = usize::from(node.feed.evicted() > 0);
    let total = node.feed.len() + marker_rows;
    let is_item = |c: usize| {
        total
            .checked_sub(c + 1)
            .and_then(|i| i.checked_sub(marker_rows))
            .and_then(|i| node.feed.row(i))
            .is_some_and(|r| matches!(r.kind, crate::feed::RowKind::Item { .. }))
    };
    let candidates: Box<dyn Iterator<Item = usize>> = match (from, up) {
        (None, _) => Box::new(0..total),
        (Some(c), true) => Box::new(c + 1..total),
        (Some(c), false) => Box::new((0..c).rev()),
    };
    candidates
        .take(10_000)
        .find(|&c| is_item(c))
        .or(from)
        .unwrap_or(0)
}

/// Keep the selected feed row visible: by scrolling the view to it (`scroll`), or by
/// moving it into the view (the mouse wheel moved the view).
fn keep_cursor_in_view(m: &mut Model, scroll: bool) {
    let Some(c) = m.cursor else {
        return;
    };
    let height = m.feed_height().max(1);
    let (top, bottom) = (m.feed_offset + height - 1, m.feed_offset);
    if scroll {
        if c < bottom {
            m.feed_offset = c;
        } else if c > top {
            m.feed_offset = c + 1 - height;
        }
        clamp_offset(m);
    } else {
        m.cursor = Some(c.clamp(bottom, top));
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

/// The mouse wheel scrolls the view; a selected row stays in it.
fn wheel(m: &mut Model, up: bool) {
    if up {
        scroll_feed_up(m, WHEEL_ROWS);
    } else {
        scroll_feed_down(m, WHEEL_ROWS);
    }
    keep_cursor_in_view(m, false);
}

fn on_connection(m: &mut Model, state: ConnState) {
    match &state {
        ConnState::Failed { error } => m.quiet(Level::Error, format!("connection failed: {error}")),
        ConnState::Retrying { .. } => m.quiet(Level::Error, state.to_string()),
        ConnState::Online { .. } | ConnState::Suspended | ConnState::Closed => {
            m.quiet(Level::Info, state.to_string());
        }
        ConnState::Connecting { .. } => {}
    }
    m.conn = state;
    m.conn_since = m.now;
}

fn on_subscription(m: &mut Model, node: &str, state: SubState) {
    let service = m.service.to_string();
    // A follow the user just asked for is answered in its own words (see `on_reply`).
    let asked = m
        .asked
        .values()
        .any(|a| matches!(a, Asked::Follow { node: n } if n == node));
    let was_down = m.nodes.iter().any(|n| {
        n.name == node && matches!(n.state, SubState::Retrying { .. } | SubState::Failed(_))
    });
    match &state {
        // A lost connection says so in the status bar, once.
        SubState::Failed(RequestError::Connection(_)) => {}
        SubState::Retrying {
            error, retry_in, ..
        } => m.error(format!(
            "{node}: {}; trying again in {} s",
            explain(error, Op::Subscribe, node, &service),
            retry_in.as_secs().max(1)
        )),
        SubState::Failed(_) if asked => {}
        SubState::Failed(error) => m.error(format!(
            "{node}: cannot subscribe: {} (r tries again)",
            explain(error, Op::Subscribe, node, &service)
        )),
        SubState::Subscribed if was_down => m.info(format!("{node}: live again")),
        _ => {}
    }
    if let Some(n) = m.node_mut(node) {
        n.state = state;
    }
}

fn on_net(m: &mut Model, ev: NetEvent) -> Vec<Effect> {
    let mut fx = Vec::new();
    match ev {
        NetEvent::AuthorizationRequest { node, jid, subid } => {
            super::owner::authorization_request(m, &node, jid, subid);
        }
        NetEvent::Connection(state) => on_connection(m, state),
        NetEvent::Subscription { node, state } => on_subscription(m, &node, state),
        NetEvent::Item(item) => on_item(m, item),
        NetEvent::ResyncStarted { node } => {
            if let Some(n) = m.node_mut(&node) {
                n.sync = SyncState::Resyncing { progress: None };
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
                n.sync = SyncState::Resyncing {
                    progress: Some((received, total)),
                };
            }
        }
        NetEvent::Gap {
            node,
            sender,
            from,
            to,
        } => on_gap(m, &node, &sender, from, to),
        NetEvent::Reply { req, result } => fx = on_reply(m, req, result),
        NetEvent::ResyncFailed { node, error } => on_resync_failed(m, &node, &error),
        NetEvent::Retracted { node, id } => {
            if let Some(n) = m.node_mut(&node) {
                n.feed.retract(&id);
            }
            // An open view of it says so.
            if let Some(v) = m.item_view.as_mut()
                && v.item.node() == node
                && v.item.id() == Some(id.as_str())
            {
                v.retracted = true;
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
        NetEvent::Deleted { node, redirect } => {
            fx.extend(node_gone(m, &node, redirect.as_deref()));
        }
        NetEvent::Incremental {
            node,
            kept,
            fetched,
            ..
        } => {
            if let Some(n) = m.node_mut(&node) {
                n.incremental = Some((kept, fetched));
            }
        }
        NetEvent::Store(text) => {
            // The store stopped keeping: items waiting are lost at quit from now on.
            m.unsent = crate::tui::model::Unsent::Lost;
            m.error(format!("cache: {text}"));
        }
        ev @ (NetEvent::PublishSent { .. }
        | NetEvent::PublishRetrying { .. }
        | NetEvent::AutoPublished { .. }
        | NetEvent::AutoPublishFailed { .. }) => on_publish_event(m, ev),
        NetEvent::AutoPublish {
            enabled,
            interval,
            node,
        } => {
            m.auto_publish = enabled;
            m.interval = interval;
            m.auto_node = node;
        }
        NetEvent::StaleSubscriptionRemoved { node, jid } => m.info(format!(
            "removed the subscription of {jid} to {node}, left behind by an earlier run"
        )),
        NetEvent::Dropped { total, reason } => {
            // The status bar counts them; the message log says why.
            m.dropped = total;
            m.quiet(Level::Info, format!("dropped a stanza: {reason}"));
        }
    }
    clamp_offset(m);
    fx
}

/// What became of a publish on its way: the user's own are tracked until answered
/// (auto-published items only say when they fail).
/// A node was deleted (the service said so, or this run deleted it): its feed says so, it
/// is down, the explorer forgets it, and the next start does not follow it (a service that
/// creates nodes on subscribe would bring it back empty).
pub(super) fn node_gone(m: &mut Model, node: &str, redirect: Option<&str>) -> Vec<Effect> {
    let what = match redirect {
        Some(uri) => format!("the node was deleted; its content moved to {uri}"),
        None => "the node was deleted".to_owned(),
    };
    m.explorer.forget(node);
    let Some(n) = m.node_mut(node) else {
        return Vec::new();
    };
    if !matches!(&n.state, SubState::Failed(RequestError::Invalid(w)) if w.starts_with("the node was deleted"))
    {
        n.feed.clear_with_marker(MarkerKind::Delete, &what);
        n.state = SubState::Failed(RequestError::Invalid(format!(
            "{what} (u takes it out of the list)"
        )));
    }
    m.error(format!("{node}: {what}"));
    vec![Effect::Remember {
        node: node.to_owned(),
        follow: false,
    }]
}

fn on_publish_event(m: &mut Model, ev: NetEvent) {
    let service = m.service.to_string();
    match ev {
        NetEvent::PublishSent {
            req: Some(req),
            node,
            id,
            queued,
        } => {
            if queued {
                m.outcome(
                    Level::Info,
                    format!("offline: {id} waits to be published to {node}"),
                );
            }
            if let Some(Asked::Publish { id: slot, .. }) = m.asked.get_mut(&req) {
                *slot = Some(id.clone());
            }
            m.unconfirmed.insert(id, Unconfirmed { node, queued });
        }
        // Auto-publishes, and the items an earlier run left unsent, sent again now.
        NetEvent::PublishSent {
            req: None,
            node,
            id,
            queued,
        } => {
            m.unconfirmed.insert(id, Unconfirmed { node, queued });
        }
        NetEvent::AutoPublished { id, .. } => {
            m.unconfirmed.remove(&id);
        }
        NetEvent::PublishRetrying {
            req,
            node,
            id,
            error,
            retry_in,
        } => {
            let text = format!(
                "publishing {id} to {node}: {}; trying again in {} s",
                explain(&error, Op::Publish, &node, &service),
                retry_in.as_secs().max(1)
            );
            if req.is_some() {
                m.outcome(Level::Error, text);
            } else {
                m.quiet(Level::Error, text);
            }
        }
        NetEvent::AutoPublishFailed { node, error, id } => {
            m.unconfirmed.remove(&id);
            let why = explain(&error, Op::Publish, &node, &service);
            m.error(format!("auto-publish to {node} failed: {why}"));
        }
        _ => {}
    }
}

/// The answer to one of the TUI's requests; what to ask next (pages, meta-data).
fn on_reply(m: &mut Model, req: RequestId, result: Result<Answer, RequestError>) -> Vec<Effect> {
    use super::explorer::{Meta, ServiceInfo};
    let service = m.service.to_string();
    let Some(asked) = m.asked.remove(&req) else {
        return Vec::new();
    };
    match (asked, result) {
        (Asked::Publish { id, .. }, Ok(Answer::Published { node, id: done })) => {
            m.unconfirmed.remove(id.as_deref().unwrap_or(&done));
            m.outcome(Level::Info, format!("published {done} to {node}"));
        }
        (Asked::Publish { node, text, id }, Err(error)) => {
            publish_failed(m, node, text, id.as_deref(), &error);
        }
        (Asked::Resync { node }, Err(error)) => {
            let text = resync_error(m, &node, &error);
            m.outcome(Level::Error, text);
        }
        (Asked::Follow { node }, Ok(Answer::Followed { state, .. })) => {
            m.outcome(Level::Info, format!("following {node} ({state})"));
        }
        (Asked::Follow { node }, Err(error)) if m.follows(&node) => {
            let why = explain(&error, Op::Subscribe, &node, &service);
            if error.is_temporary() {
                // The core tries again; the node stays, shown as retrying.
                m.outcome(Level::Error, format!("following {node}: {why}"));
            } else {
                // Refused for good (no such node, not allowed): the follow is undone.
                let fx = leave(m, &node);
                m.outcome(Level::Error, format!("cannot follow {node}: {why}"));
                return fx;
            }
        }
        (
            Asked::Unfollow { .. },
            Ok(Answer::Unfollowed {
                node,
                account: true,
            }),
        ) => m.outcome(
            Level::Info,
            format!(
                "stopped following {node}; your account itself is still subscribed to it \
                 (pubsub-tui unsubscribe --node {node} ends that)"
            ),
        ),
        (Asked::Unfollow { node }, Err(error)) => m.outcome(
            Level::Error,
            format!(
                "unsubscribing from {node}: {}",
                explain(&error, Op::Unsubscribe, &node, &service)
            ),
        ),
        (Asked::ListNodes { parent }, Ok(Answer::Nodes(page))) => {
            return on_node_page(m, parent, &page);
        }
        (Asked::ListNodes { parent }, Err(error)) => {
            m.explorer.listing.remove(&parent);
            let node = parent.clone().unwrap_or_default();
            let why = explain(&error, Op::ListNodes, &node, &service);
            match parent {
                None => m.explorer.error = Some(why),
                Some(p) => m.outcome(Level::Error, format!("cannot list the nodes in {p}: {why}")),
            }
        }
        (Asked::NodeInfo { node }, result) => {
            let meta = match result {
                Ok(Answer::Info(info)) => Meta::Known(Box::new(info)),
                Ok(other) => Meta::Refused(format!("unexpected answer: {other:?}")),
                Err(e) => Meta::Refused(explain(&e, Op::Info, &node, &service)),
            };
            m.explorer.set_meta(&node, meta);
            return ask_infos(m);
        }
        (Asked::ServiceInfo, result) => {
            m.explorer.service = match result {
                Ok(Answer::Info(info)) => ServiceInfo::Known(Box::new(info)),
                Ok(other) => ServiceInfo::Refused(format!("unexpected answer: {other:?}")),
                Err(e) => ServiceInfo::Refused(explain(&e, Op::Info, "", &service)),
            };
        }
        (Asked::Owner { node, what }, result) => {
            return super::owner::on_reply(m, &node, what, result);
        }
        (asked @ (Asked::Retract { .. } | Asked::Republish { .. }), result) => {
            return super::owner::on_item_reply(m, asked, result);
        }
        // A resync's outcome is told with its snapshot; an unfollow's when it was asked.
        (Asked::Resync { .. } | Asked::Unfollow { .. } | Asked::Follow { .. }, _) => {}
        (asked, Ok(answer)) => {
            tracing::debug!(?asked, ?answer, "an answer that does not fit the request");
        }
    }
    Vec::new()
}

/// The user's publish failed for good: it goes to the failed list (P puts it back).
fn publish_failed(
    m: &mut Model,
    node: String,
    text: String,
    id: Option<&str>,
    error: &RequestError,
) {
    if let Some(id) = id {
        m.unconfirmed.remove(id);
    }
    let why = explain(error, Op::Publish, &node, m.service.as_str());
    let start: String = text.chars().take(40).collect();
    let cut = if text.chars().count() > 40 { "…" } else { "" };
    m.outcome(
        Level::Error,
        format!(
            "publishing «{start}{cut}» to {node} failed: {why} (P puts it back in the compose box)"
        ),
    );
    m.failed.push(Failed { node, text });
}

fn on_snapshot(
    m: &mut Model,
    node: &str,
    mut items: Vec<crate::feed::FeedItem>,
    reason: SnapshotReason,
    lost: &[crate::feed::gap::Lost],
    at: DateTime<Utc>,
) {
    for i in &mut items {
        i.received.get_or_insert(m.now);
    }
    let selected = m.node_index(node) == Some(m.selected);
    let count = items.len();
    let stored = plural(count, "item");
    let mut incremental = None;
    if let Some(n) = m.node_mut(node) {
        n.cached = reason == SnapshotReason::Cached;
        incremental = n.incremental.take();
    }
    let mut text = match reason {
        SnapshotReason::Cached => format!(
            "{} kept from earlier runs (cached); the service has not confirmed them yet",
            plural(count, "item")
        ),
        SnapshotReason::Initial if count == 0 => "no stored items on the service".to_owned(),
        SnapshotReason::Initial => format!(
            "{} retrieved from the service",
            plural(count, "stored item")
        ),
        SnapshotReason::Manual => format!("resynced: {stored} from the service"),
        SnapshotReason::Gap => format!("resynced after a gap: {stored} from the service"),
    };
    if let Some((kept, fetched)) = incremental {
        // Most of them did not come from the service this time: say so.
        let what = format!(
            "{} on the service ({kept} kept here, {fetched} fetched)",
            plural(count, "stored item")
        );
        text = match reason {
            SnapshotReason::Gap => format!("resynced after a gap: {what}"),
            _ => what,
        };
    }
    let newest = items.last().map(|i| i.timestamp().unwrap_or(m.now));
    if let Some(n) = m.node_mut(node) {
        n.sync = SyncState::Idle;
        if newest.is_some() {
            n.last_activity = newest;
        }
        let gone = n.feed.resync(items, text.clone());
        if gone > 0 {
            text = format!(
                "{text}; {} no longer on the service (evicted), kept here",
                plural(gone, "older item")
            );
        }
        for l in lost {
            n.feed.push_marker(MarkerKind::Lost, l.to_string());
        }
        if reason != SnapshotReason::Cached {
            n.last_resync = Some(at);
        }
        if !matches!(reason, SnapshotReason::Initial | SnapshotReason::Cached) {
            n.stats.resyncs += 1;
        }
    }
    if selected {
        m.feed_offset = 0;
        m.cursor = None;
    }
    let lost_total = crate::feed::gap::Lost::total(lost);
    if lost_total > 0 {
        text = format!(
            "{text}; {} lost (never received)",
            plural(usize::try_from(lost_total).unwrap_or(usize::MAX), "item")
        );
    }
    match reason {
        SnapshotReason::Manual => m.outcome(Level::Info, format!("{node}: {text}")),
        SnapshotReason::Gap => m.info(format!("{node}: {text}")),
        SnapshotReason::Initial | SnapshotReason::Cached => {
            m.quiet(Level::Info, format!("{node}: {text}"));
        }
    }
}

/// A page of the explorer's node list: add it, ask for the next page (RSM) or say the list
/// is done, and ask for the new nodes' meta-data.
fn on_node_page(
    m: &mut Model,
    parent: Option<String>,
    page: &crate::xmpp::proto::disco::Items,
) -> Vec<Effect> {
    let x = &mut m.explorer;
    let count = x.add_page(parent.as_deref(), page);
    if page.page.is_none() && crate::xmpp::proto::disco::looks_cut(page.items.len()) {
        x.cut.insert(parent.clone());
    }
    let mut fx = Vec::new();
    if let Some(after) = page.next_after(count).filter(|_| !page.items.is_empty()) {
        fx.push(ask_list(m, parent, Some(after)));
    } else {
        m.explorer.listing.remove(&parent);
        if parent.is_none() && std::mem::take(&mut m.explorer.announce) {
            let text = format!("{} listed", plural(m.explorer.entries.len(), "node"));
            m.outcome(Level::Info, text);
        }
    }
    m.explorer.clamp();
    fx.extend(ask_infos(m));
    fx
}

/// A resync the core started by itself (at a fresh session, after a gap) failed.
fn on_resync_failed(m: &mut Model, node: &str, error: &RequestError) {
    if !m.follows(node) {
        // Left meanwhile (a follow the service refused is undone).
        return;
    }
    let text = resync_error(m, node, error);
    m.error(text);
}

fn resync_error(m: &mut Model, node: &str, error: &RequestError) -> String {
    if let Some(n) = m.node_mut(node) {
        n.sync = SyncState::Idle;
    }
    if error.is_unsupported() {
        format!(
            "{node}: this service cannot send stored items again, so resync is not possible ({error})"
        )
    } else {
        format!(
            "resync of {node} failed: {}",
            explain(error, Op::Retrieve, node, m.service.as_str())
        )
    }
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
    m.info(format!(
        "{node}: items from {sender} missing (seq {range}); resyncing"
    ));
}

fn on_item(m: &mut Model, mut item: crate::feed::FeedItem) {
    item.received.get_or_insert(m.now);
    let selected = m.node_index(item.node()) == Some(m.selected);
    let at = item.timestamp().unwrap_or(m.now);
    let now = m.now;
    let Some(n) = m.node_mut(item.node()) else {
        return;
    };
    n.last_activity = Some(n.last_activity.map_or(at, |t| t.max(at)));
    let own_time = item.timestamp();
    let outcome = n.feed.push_item(item);
    // Live: a new item after the node's first retrieve. (ejabberd sends the node's last item
    // again on each subscribe, before the retrieve's answer: not live.)
    if outcome == PushOutcome::Added && n.last_resync.is_some() {
        n.stats.on_item(now, own_time);
    }
    // Under a filter, the selection is kept by the filter's refresh.
    let filtered = m.shown_hits().is_some();
    if selected && outcome == PushOutcome::Added && !filtered {
        // Keep the rows the user is reading, and the selected one, in place while new ones
        // arrive below.
        // A selected row pins the view too, even when it was following: else the first
        // key of a flood selects a row that scrolls away at once.
        if m.feed_offset > 0 || m.cursor.is_some() {
            m.feed_offset += 1;
        }
        if let Some(c) = m.cursor.as_mut() {
            *c += 1;
        }
    }
}
