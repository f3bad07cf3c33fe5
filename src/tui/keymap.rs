//! Key bindings as data. The key handler, the footer hints and the help overlay all read this
//! one table, so they cannot disagree. Each mode has its scope here: the panes, the compose
//! box, the help and message overlays, and the quit question. A hint shows in the footer only
//! when its action can do something now ([`available`]).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::model::{Focus, Model, Overlay};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Messages,
    FocusNext,
    FocusPrev,
    Compose,
    ToggleAuto,
    Resync,
    ResendFailed,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Follow,
    Publish,
    NewLine,
    LeaveCompose,
    /// Close an overlay.
    Close,
    /// Answer the quit question.
    Yes,
    No,
    /// Quit, and drop the items waiting to be published (rather than keep them).
    Discard,
    /// Open the service explorer.
    Explore,
    /// Follow (subscribe to) the node selected in the explorer.
    Subscribe,
    /// Stop following the selected node.
    Unsubscribe,
    /// Open or close the selected collection; unfold an element of an item's tree.
    Expand,
    /// Fold an element of an item's tree.
    Collapse,
    /// The feed's filter over every followed node, or the selected one.
    AllNodes,
    /// Select the next match up (older) in the feed.
    NextMatch,
    /// Select the next match down (newer).
    PrevMatch,
    /// Write the feed's items (or the filter's matches) to a file.
    Export,
    /// Each node's live figures.
    Stats,
    /// Chart the selected field of the item over the node's items.
    Chart,
    /// Type a filter for the explorer's list.
    Filter,
    /// Type the name of a node to follow.
    AddNode,
    /// Switch between the node list and the service's capabilities.
    Capabilities,
    /// List the service's nodes again.
    Reload,
    /// End the line being typed (filter, node name) and use it.
    Accept,
    /// Drop the line being typed.
    Cancel,
    /// Toggle a boolean, or an option of a checklist.
    Toggle,
    /// Send the form.
    Submit,
    /// The selected node's configuration form.
    Configure,
    /// Create a node.
    CreateNode,
    /// Delete every item of the selected node.
    Purge,
    /// Delete the selected node.
    DeleteNode,
    /// The selected node's affiliations.
    Affiliations,
    /// The selected node's subscriptions (its owner's view).
    NodeSubscriptions,
    /// Show the selected item's XML.
    ViewItem,
    /// Retract the selected item.
    Retract,
    /// Edit the selected item in $EDITOR and publish it again under its id.
    EditItem,
    /// Copy the selected item's id to the clipboard.
    CopyId,
    /// Give the selected JID this affiliation.
    MakeOwner,
    MakePublisher,
    MakePublishOnly,
    MakeMember,
    MakeNone,
    MakeOutcast,
    /// Approve the selected subscription (subscribed).
    Approve,
    /// Deny or remove the selected subscription (none).
    Deny,
    /// Add a JID to the list.
    AddEntry,
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, the compose box included (not in an overlay).
    Global,
    /// In the subscriptions and feed panes (where letters are commands, not text).
    Panes,
    /// In the feed pane only.
    Feed,
    /// In the compose box.
    Compose,
    /// In the help and message overlays.
    Overlay,
    /// When asked whether to quit.
    Confirm,
    /// In the service explorer.
    Explorer,
    /// While typing a filter or a node name in the explorer.
    ExplorerTyping,
    /// In the subscriptions pane and the explorer: the owner's requests for the selected
    /// node.
    Owner,
    /// In the feed: the selected item.
    Item,
    /// In the node configuration form.
    Form,
    /// While editing a field (or the name) in the form.
    FormTyping,
    /// While choosing from a list field's options.
    FormPicker,
    /// In the list of a node's affiliations.
    AffiliationsPanel,
    /// In the list of a node's subscriptions.
    SubscriptionsPanel,
    /// In either list.
    Panel,
    /// While typing a JID to add.
    PanelTyping,
    /// In the view of an item's XML.
    ItemView,
    /// While typing the feed's filter.
    SearchTyping,
    /// Before writing the feed's items to a file.
    Export,
    /// Before deleting a node (the redirect is typed here).
    ConfirmTyped,
}

/// Where the keyboard is: a pane, or an overlay on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pane(Focus),
    Overlay,
    Confirm,
    ConfirmTyped,
    Explorer,
    ExplorerTyping,
    Form,
    FormTyping,
    FormPicker,
    /// `true`: the affiliations list, `false`: the subscriptions list.
    Panel(bool),
    PanelTyping,
    ItemView,
    SearchTyping,
    Export,
}

impl Mode {
    pub fn of(m: &Model) -> Self {
        use super::form::Edit;
        match m.overlay {
            Overlay::None if m.search.as_ref().is_some_and(|s| s.typing) => Self::SearchTyping,
            Overlay::None => Self::Pane(m.focus),
            Overlay::Help { .. }
            | Overlay::Messages { .. }
            | Overlay::Stats { .. }
            | Overlay::Chart => Self::Overlay,
            Overlay::Confirm if matches!(m.confirm, Some(super::owner::Confirm::Export(_))) => {
                Self::Export
            }
            Overlay::Confirm if m.confirm.as_ref().is_some_and(super::owner::Confirm::typed) => {
                Self::ConfirmTyped
            }
            Overlay::Confirm => Self::Confirm,
            Overlay::Explorer if m.explorer.typing.is_some() => Self::ExplorerTyping,
            Overlay::Explorer => Self::Explorer,
            Overlay::Form => match m.form.as_ref().and_then(|f| f.edit.as_ref()) {
                Some(Edit::Text(_)) => Self::FormTyping,
                Some(Edit::Pick(_)) => Self::FormPicker,
                None => Self::Form,
            },
            Overlay::Panel => match &m.panel {
                Some(p) if p.adding.is_some() => Self::PanelTyping,
                Some(p) => Self::Panel(p.kind == super::owner::PanelKind::Affiliations),
                None => Self::Panel(true),
            },
            Overlay::Item => Self::ItemView,
        }
    }
}

impl Scope {
    fn applies(self, mode: Mode) -> bool {
        match (self, mode) {
            (Self::Global, Mode::Pane(_))
            | (Self::Overlay, Mode::Overlay)
            | (Self::Confirm, Mode::Confirm)
            | (Self::Explorer | Self::Owner, Mode::Explorer)
            | (Self::ExplorerTyping, Mode::ExplorerTyping)
            | (Self::Form, Mode::Form)
            | (Self::FormTyping, Mode::FormTyping)
            | (Self::FormPicker, Mode::FormPicker)
            | (Self::AffiliationsPanel, Mode::Panel(true))
            | (Self::SubscriptionsPanel, Mode::Panel(false))
            | (Self::Panel, Mode::Panel(_))
            | (Self::PanelTyping, Mode::PanelTyping)
            | (Self::ItemView, Mode::ItemView)
            | (Self::SearchTyping, Mode::SearchTyping)
            | (Self::Export, Mode::Export)
            | (Self::ConfirmTyped, Mode::ConfirmTyped) => true,
            (Self::Panes | Self::Owner, Mode::Pane(focus)) => focus != Focus::Compose,
            (Self::Feed | Self::Item, Mode::Pane(focus)) => focus == Focus::Feed,
            (Self::Compose, Mode::Pane(focus)) => focus == Focus::Compose,
            _ => false,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Global => "Everywhere",
            Self::Panes => "Subscriptions and feed",
            Self::Feed => "Feed",
            Self::Compose => "Compose box",
            Self::Overlay => "Help, messages, live figures, the chart",
            Self::Confirm => "Answering a question (quit, purge, retract)",
            Self::Explorer => "Service explorer (e)",
            Self::ExplorerTyping => "Typing a filter or a node name",
            Self::Owner => "Owning the selected node (panes and explorer)",
            Self::Item => "The selected item (feed)",
            Self::Form => "Node configuration form",
            Self::FormTyping => "Editing a field",
            Self::FormPicker => "Choosing from a list",
            Self::AffiliationsPanel => "A node's affiliations",
            Self::SubscriptionsPanel => "A node's subscriptions",
            Self::Panel => "Affiliations and subscriptions",
            Self::PanelTyping => "Typing a JID to add",
            Self::ItemView => "An item: rendered, tree, raw XML",
            Self::SearchTyping => "Typing the feed's filter (/)",
            Self::Export => "Writing items to a file (w)",
            Self::ConfirmTyped => "Deleting a node",
        }
    }
}

/// Can the action do something now? (Hints of actions that cannot are not shown.)
pub fn available(action: Action, m: &Model) -> bool {
    let in_explorer = m.overlay == Overlay::Explorer;
    let entry = || {
        m.explorer
            .selected_entry()
            .filter(|_| m.explorer.view == super::explorer::View::Nodes)
    };
    match action {
        Action::Subscribe => !m.net_ended && entry().is_some_and(|e| !m.follows(&e.node)),
        Action::Unsubscribe if in_explorer => entry().is_some_and(|e| m.follows(&e.node)),
        Action::Unsubscribe | Action::ToggleAuto => !m.net_ended && m.selected_node().is_some(),
        Action::Expand if m.overlay == Overlay::Form => true,
        Action::Expand | Action::Collapse | Action::Toggle if m.overlay == Overlay::Item => m
            .item_view
            .as_ref()
            .is_some_and(|v| v.tab == super::itemview::Tab::Tree),
        Action::Expand => entry().is_some_and(super::explorer::Entry::may_have_children),
        Action::Toggle | Action::AllNodes if m.search.as_ref().is_some_and(|s| s.typing) => true,
        Action::Toggle if matches!(m.confirm, Some(super::owner::Confirm::Export(_))) => true,
        Action::Export => m.selected_node().is_some(),
        Action::Chart => m
            .item_view
            .as_ref()
            .is_some_and(|v| v.chart_field().is_some()),
        Action::Toggle => m.form.as_ref().is_some_and(|f| match &f.edit {
            Some(super::form::Edit::Pick(p)) => p.multi,
            Some(super::form::Edit::Text(_)) => false,
            None => f
                .selected_field()
                .is_some_and(|x| x.kind == crate::xmpp::proto::form::FieldKind::Boolean),
        }),
        Action::Reload | Action::CreateNode => m.is_online(),
        Action::Resync => m.is_online() && m.selected_node().is_some(),
        Action::ResendFailed => !m.failed.is_empty() && !m.net_ended,
        Action::Publish => !m.compose.value().trim().is_empty() && !m.net_ended,
        Action::Compose | Action::AddNode | Action::Explore => !m.net_ended,
        Action::Follow => !m.following(),
        Action::Cancel if m.overlay == Overlay::None => m.search.is_some(),
        Action::NextMatch | Action::PrevMatch => m
            .search
            .as_ref()
            .is_some_and(|s| s.find && !s.hits.is_empty()),
        Action::Configure
        | Action::Purge
        | Action::DeleteNode
        | Action::Affiliations
        | Action::NodeSubscriptions => m.is_online() && super::owner::target_node(m).is_some(),
        // In the feed, an item's keys are offered once an item is selected (they act on the
        // newest without one).
        Action::ViewItem | Action::CopyId => {
            (m.cursor.is_some() || m.overlay == Overlay::Item) && m.target_item().is_some()
        }
        Action::Retract | Action::EditItem => {
            (m.cursor.is_some() || m.overlay == Overlay::Item)
                && m.is_online()
                && m.target_item().is_some_and(|i| i.id().is_some())
        }
        Action::Submit => m.form.as_ref().is_some_and(|f| !f.sending),
        Action::MakeOwner
        | Action::MakePublisher
        | Action::MakePublishOnly
        | Action::MakeMember
        | Action::MakeNone
        | Action::MakeOutcast
        | Action::Approve
        | Action::Deny => {
            m.is_online() && m.panel.as_ref().is_some_and(|p| p.selected_jid().is_some())
        }
        _ => true,
    }
}

impl Action {
    /// One of the owner's requests on the selected node (C, N, A, S, X, D).
    pub fn is_owner(self) -> bool {
        matches!(
            self,
            Self::Configure
                | Self::CreateNode
                | Self::Purge
                | Self::DeleteNode
                | Self::Affiliations
                | Self::NodeSubscriptions
        )
    }

    /// One of the selected item's actions (v, x, E, y).
    pub fn is_item(self) -> bool {
        matches!(
            self,
            Self::ViewItem | Self::Retract | Self::EditItem | Self::CopyId
        )
    }

    /// Where a movement key takes a position in a list of `last + 1` rows (`page` rows a
    /// page); `None` for other actions.
    pub fn moved(self, at: usize, page: usize, last: usize) -> Option<usize> {
        Some(match self {
            Self::Up => at.saturating_sub(1),
            Self::Down => (at + 1).min(last),
            Self::PageUp => at.saturating_sub(page),
            Self::PageDown => (at + page).min(last),
            Self::Top => 0,
            Self::Bottom => last,
            _ => return None,
        })
    }
}

/// One key: a code plus the modifiers that must be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn key(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn alt(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::ALT,
    }
}

impl Key {
    fn matches(&self, ev: &KeyEvent) -> bool {
        // Shift is part of the character for letters and symbols ('G', '?'), and of Shift-Tab
        // (terminals report BackTab with SHIFT held), so ignore it there.
        let mods = if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
            ev.modifiers - KeyModifiers::SHIFT
        } else {
            ev.modifiers
        };
        self.code == ev.code && self.mods == mods
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_owned(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Tab => "Tab".to_owned(),
            KeyCode::BackTab => "Shift-Tab".to_owned(),
            KeyCode::Enter => "Enter".to_owned(),
            KeyCode::Esc => "Esc".to_owned(),
            KeyCode::Up => "↑".to_owned(),
            KeyCode::Down => "↓".to_owned(),
            KeyCode::Left => "←".to_owned(),
            KeyCode::Right => "→".to_owned(),
            KeyCode::PageUp => "PgUp".to_owned(),
            KeyCode::PageDown => "PgDn".to_owned(),
            KeyCode::Home => "Home".to_owned(),
            KeyCode::End => "End".to_owned(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        if self.mods.contains(KeyModifiers::CONTROL) {
            format!("Ctrl-{}", base.to_uppercase())
        } else if self.mods.contains(KeyModifiers::ALT) {
            format!("Alt-{base}")
        } else {
            base
        }
    }
}

pub struct Binding {
    pub keys: &'static [Key],
    pub scope: Scope,
    pub action: Action,
    pub help: &'static str,
    /// Shown in the footer (with this short text) when the binding applies.
    pub hint: Option<&'static str>,
}

pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::Global,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Tab)],
        scope: Scope::Global,
        action: Action::FocusNext,
        help: "focus the next pane",
        hint: Some("focus"),
    },
    Binding {
        keys: &[key(KeyCode::BackTab)],
        scope: Scope::Global,
        action: Action::FocusPrev,
        help: "focus the previous pane",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::F(1))],
        scope: Scope::Global,
        action: Action::Help,
        help: "show or hide this help",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::Compose,
        action: Action::Publish,
        help: "publish the text to the selected node",
        hint: Some("publish"),
    },
    Binding {
        keys: &[alt(KeyCode::Enter)],
        scope: Scope::Compose,
        action: Action::NewLine,
        help: "start a new line (pasted line breaks are kept too)",
        hint: Some("new line"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::Compose,
        action: Action::LeaveCompose,
        help: "leave the compose box (the text stays)",
        hint: Some("leave"),
    },
    Binding {
        keys: &[ch('q')],
        scope: Scope::Panes,
        action: Action::Quit,
        help: "quit",
        hint: Some("quit"),
    },
    Binding {
        keys: &[ch('?')],
        scope: Scope::Panes,
        action: Action::Help,
        help: "show or hide this help",
        hint: Some("help"),
    },
    Binding {
        keys: &[ch('e')],
        scope: Scope::Panes,
        action: Action::Explore,
        help: "explore the service: list its nodes, follow or leave them",
        hint: Some("explore"),
    },
    Binding {
        keys: &[ch('m')],
        scope: Scope::Panes,
        action: Action::Messages,
        help: "messages: every notice and error so far",
        hint: Some("messages"),
    },
    Binding {
        keys: &[ch('i'), key(KeyCode::Enter)],
        scope: Scope::Panes,
        action: Action::Compose,
        help: "write a message (compose box)",
        hint: Some("compose"),
    },
    Binding {
        keys: &[ch('a')],
        scope: Scope::Panes,
        action: Action::ToggleAuto,
        help: "toggle auto-publish (to the selected node)",
        hint: Some("auto"),
    },
    Binding {
        keys: &[ch('r')],
        scope: Scope::Panes,
        action: Action::Resync,
        help: "resync the selected node, or subscribe again",
        hint: Some("resync"),
    },
    Binding {
        keys: &[ch('P')],
        scope: Scope::Panes,
        action: Action::ResendFailed,
        help: "put the last failed item back in the compose box",
        hint: Some("failed item"),
    },
    Binding {
        keys: &[key(KeyCode::Up), ch('k')],
        scope: Scope::Panes,
        action: Action::Up,
        help: "move up (select node / scroll feed)",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down), ch('j')],
        scope: Scope::Panes,
        action: Action::Down,
        help: "move down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::Panes,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::Panes,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home), ch('g')],
        scope: Scope::Panes,
        action: Action::Top,
        help: "go to the first",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End), ch('G')],
        scope: Scope::Panes,
        action: Action::Bottom,
        help: "go to the last (the feed follows new items again)",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::Feed,
        action: Action::Follow,
        help: "follow the newest items again",
        hint: Some("follow"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::Feed,
        action: Action::Cancel,
        help: "drop the filter (when following)",
        hint: Some("unfilter"),
    },
    Binding {
        keys: &[ch('/')],
        scope: Scope::Panes,
        action: Action::Filter,
        help: "filter the feed, or find in it: words, \"a phrase\", ~regex (~\"a b\"), name:text, @name>20, !term (see the README)",
        hint: Some("filter"),
    },
    Binding {
        keys: &[ch('n')],
        scope: Scope::Feed,
        action: Action::NextMatch,
        help: "find: the next match up (older), around to the newest past the last",
        hint: Some("next"),
    },
    Binding {
        keys: &[ch('N')],
        scope: Scope::Feed,
        action: Action::PrevMatch,
        help: "find: the next match down (newer)",
        hint: None,
    },
    Binding {
        keys: &[ch('s')],
        scope: Scope::Panes,
        action: Action::Stats,
        help: "live figures: items a second, the last item, gaps, resyncs, latency",
        hint: Some("stats"),
    },
    Binding {
        keys: &[ch('w')],
        scope: Scope::Panes,
        action: Action::Export,
        help: "write the node's items (or the filter's matches) to a file: NDJSON, CSV or XML",
        hint: Some("write"),
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::Export,
        action: Action::Yes,
        help: "write the file (a new one: an existing file is never written over)",
        hint: Some("write"),
    },
    Binding {
        keys: &[key(KeyCode::Tab)],
        scope: Scope::Export,
        action: Action::Toggle,
        help: "the next format: NDJSON, CSV, XML",
        hint: Some("format"),
    },
    Binding {
        keys: &[key(KeyCode::Esc), ctrl('c')],
        scope: Scope::Export,
        action: Action::No,
        help: "do not write",
        hint: Some("cancel"),
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::SearchTyping,
        action: Action::Accept,
        help: "keep the filter and go back to the feed",
        hint: Some("keep"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::SearchTyping,
        action: Action::Cancel,
        help: "drop the filter",
        hint: Some("drop"),
    },
    Binding {
        keys: &[key(KeyCode::Tab)],
        scope: Scope::SearchTyping,
        action: Action::Toggle,
        help: "filter (only matches) or find (all, matches marked; n and N jump)",
        hint: Some("filter/find"),
    },
    Binding {
        keys: &[ctrl('a')],
        scope: Scope::SearchTyping,
        action: Action::AllNodes,
        help: "filter this node or every followed node (back to filtering)",
        hint: Some("all nodes"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::SearchTyping,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[ch('u')],
        scope: Scope::Panes,
        action: Action::Unsubscribe,
        help: "stop following the selected node (unsubscribe)",
        hint: None,
    },
    Binding {
        keys: &[ch('s')],
        scope: Scope::Explorer,
        action: Action::Subscribe,
        help: "follow the selected node: subscribe, and fetch its items",
        hint: Some("subscribe"),
    },
    Binding {
        keys: &[ch('u')],
        scope: Scope::Explorer,
        action: Action::Unsubscribe,
        help: "stop following the selected node",
        hint: Some("unsubscribe"),
    },
    Binding {
        keys: &[key(KeyCode::Enter), key(KeyCode::Right)],
        scope: Scope::Explorer,
        action: Action::Expand,
        help: "open or close the selected collection",
        hint: Some("open"),
    },
    Binding {
        keys: &[ch('/')],
        scope: Scope::Explorer,
        action: Action::Filter,
        help: "filter the list by name, title, type or description",
        hint: Some("filter"),
    },
    Binding {
        keys: &[ch('+'), ch('n')],
        scope: Scope::Explorer,
        action: Action::AddNode,
        help: "follow a node by its name (for nodes the service does not list)",
        hint: Some("add by name"),
    },
    Binding {
        keys: &[ch('c')],
        scope: Scope::Explorer,
        action: Action::Capabilities,
        help: "the service's identity and pubsub features (and back)",
        hint: Some("capabilities"),
    },
    Binding {
        keys: &[ch('R')],
        scope: Scope::Explorer,
        action: Action::Reload,
        help: "list the service's nodes again",
        hint: Some("reload"),
    },
    Binding {
        keys: &[key(KeyCode::Up), ch('k')],
        scope: Scope::Explorer,
        action: Action::Up,
        help: "move up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down), ch('j')],
        scope: Scope::Explorer,
        action: Action::Down,
        help: "move down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::Explorer,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::Explorer,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home), ch('g')],
        scope: Scope::Explorer,
        action: Action::Top,
        help: "to the first",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End), ch('G')],
        scope: Scope::Explorer,
        action: Action::Bottom,
        help: "to the last",
        hint: None,
    },
    Binding {
        keys: &[ch('?'), key(KeyCode::F(1))],
        scope: Scope::Explorer,
        action: Action::Help,
        help: "help (Esc comes back here)",
        hint: None,
    },
    Binding {
        keys: &[ch('m')],
        scope: Scope::Explorer,
        action: Action::Messages,
        help: "messages: every notice and error so far, whole",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Esc), ch('q'), ch('e')],
        scope: Scope::Explorer,
        action: Action::Close,
        help: "clear the filter, or close the explorer (the list is kept)",
        hint: Some("close"),
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::ExplorerTyping,
        action: Action::Accept,
        help: "use it (a filter stays; a node name is followed)",
        hint: Some("done"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::ExplorerTyping,
        action: Action::Cancel,
        help: "drop it (the filter is cleared)",
        hint: Some("cancel"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::ExplorerTyping,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::Explorer,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Esc), ch('q'), key(KeyCode::F(1))],
        scope: Scope::Overlay,
        action: Action::Close,
        help: "close",
        hint: Some("close"),
    },
    Binding {
        keys: &[key(KeyCode::Up), ch('k')],
        scope: Scope::Overlay,
        action: Action::Up,
        help: "scroll up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down), ch('j')],
        scope: Scope::Overlay,
        action: Action::Down,
        help: "scroll down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::Overlay,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::Overlay,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home), ch('g')],
        scope: Scope::Overlay,
        action: Action::Top,
        help: "to the top",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End), ch('G')],
        scope: Scope::Overlay,
        action: Action::Bottom,
        help: "to the end",
        hint: None,
    },
    Binding {
        keys: &[ch('y')],
        scope: Scope::Confirm,
        action: Action::Yes,
        help: "yes: do it (quit, purge, retract); quitting keeps unsent items for the next start (with --no-cache, they are lost)",
        hint: Some("yes"),
    },
    Binding {
        keys: &[ch('n'), key(KeyCode::Esc)],
        scope: Scope::Confirm,
        action: Action::No,
        help: "no: leave things as they are",
        hint: Some("no"),
    },
    Binding {
        keys: &[ch('d')],
        scope: Scope::Confirm,
        action: Action::Discard,
        help: "quitting with items waiting to be published: quit and discard them",
        hint: None,
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::Confirm,
        action: Action::Quit,
        help: "quit (asked whether to quit: yes)",
        hint: None,
    },
    Binding {
        keys: &[ch('C')],
        scope: Scope::Owner,
        action: Action::Configure,
        help: "configure the selected node (its form)",
        hint: Some("configure"),
    },
    Binding {
        keys: &[ch('N')],
        scope: Scope::Owner,
        action: Action::CreateNode,
        help: "create a node (a name, or none for the service to choose; its configuration)",
        hint: Some("new node"),
    },
    Binding {
        keys: &[ch('A')],
        scope: Scope::Owner,
        action: Action::Affiliations,
        help: "the selected node's affiliations: see and change them",
        hint: Some("affiliations"),
    },
    Binding {
        keys: &[ch('S')],
        scope: Scope::Owner,
        action: Action::NodeSubscriptions,
        help: "the selected node's subscriptions: see, approve, remove",
        hint: Some("subscribers"),
    },
    Binding {
        keys: &[ch('X')],
        scope: Scope::Owner,
        action: Action::Purge,
        help: "purge the selected node: delete all its items (asks first)",
        hint: None,
    },
    Binding {
        keys: &[ch('D')],
        scope: Scope::Owner,
        action: Action::DeleteNode,
        help: "delete the selected node (asks first)",
        hint: None,
    },
    Binding {
        keys: &[ch('v')],
        scope: Scope::Item,
        action: Action::ViewItem,
        help: "show the selected item's XML (the newest when none is selected)",
        hint: Some("view"),
    },
    Binding {
        keys: &[ch('x')],
        scope: Scope::Item,
        action: Action::Retract,
        help: "retract the selected item (asks first)",
        hint: Some("retract"),
    },
    Binding {
        keys: &[ch('E')],
        scope: Scope::Item,
        action: Action::EditItem,
        help: "edit the selected item's payload in $EDITOR and publish it again under its id",
        hint: Some("edit"),
    },
    Binding {
        keys: &[ch('y')],
        scope: Scope::Item,
        action: Action::CopyId,
        help: "copy the selected item's id (to the terminal's clipboard, OSC 52)",
        hint: Some("copy id"),
    },
    Binding {
        keys: &[key(KeyCode::Up), ch('k')],
        scope: Scope::Form,
        action: Action::Up,
        help: "the field above",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down), ch('j')],
        scope: Scope::Form,
        action: Action::Down,
        help: "the field below",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::Form,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::Form,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home), ch('g')],
        scope: Scope::Form,
        action: Action::Top,
        help: "the first field",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End), ch('G')],
        scope: Scope::Form,
        action: Action::Bottom,
        help: "the last field",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::Form,
        action: Action::Expand,
        help: "edit the field (text, a JID, a choice; a yes/no toggles)",
        hint: Some("edit"),
    },
    Binding {
        keys: &[ch(' ')],
        scope: Scope::Form,
        action: Action::Toggle,
        help: "toggle a yes/no field",
        hint: Some("toggle"),
    },
    Binding {
        keys: &[ctrl('s')],
        scope: Scope::Form,
        action: Action::Submit,
        help: "send the form to the service",
        hint: Some("submit"),
    },
    Binding {
        keys: &[key(KeyCode::Esc), ch('q')],
        scope: Scope::Form,
        action: Action::Close,
        help: "leave the form without a change (with changes: press twice)",
        hint: Some("cancel"),
    },
    Binding {
        keys: &[key(KeyCode::F(1)), ch('?')],
        scope: Scope::Form,
        action: Action::Help,
        help: "help (Esc comes back here)",
        hint: None,
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::Form,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::FormTyping,
        action: Action::Accept,
        help: "keep the value (it is checked first)",
        hint: Some("done"),
    },
    Binding {
        keys: &[alt(KeyCode::Enter)],
        scope: Scope::FormTyping,
        action: Action::NewLine,
        help: "a new line (fields of several lines)",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::FormTyping,
        action: Action::Cancel,
        help: "leave the value as it was",
        hint: Some("cancel"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::FormTyping,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Up)],
        scope: Scope::FormPicker,
        action: Action::Up,
        help: "the option above (letters filter the options)",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down)],
        scope: Scope::FormPicker,
        action: Action::Down,
        help: "the option below",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::FormPicker,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::FormPicker,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home)],
        scope: Scope::FormPicker,
        action: Action::Top,
        help: "the first option",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End)],
        scope: Scope::FormPicker,
        action: Action::Bottom,
        help: "the last option",
        hint: None,
    },
    Binding {
        keys: &[ch(' ')],
        scope: Scope::FormPicker,
        action: Action::Toggle,
        help: "check or uncheck the option (lists of several)",
        hint: Some("check"),
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::FormPicker,
        action: Action::Accept,
        help: "choose the option (lists of several: keep the checked ones)",
        hint: Some("choose"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::FormPicker,
        action: Action::Cancel,
        help: "leave the value as it was",
        hint: Some("cancel"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::FormPicker,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[ch('o')],
        scope: Scope::AffiliationsPanel,
        action: Action::MakeOwner,
        help: "make the selected JID an owner",
        hint: Some("owner"),
    },
    Binding {
        keys: &[ch('p')],
        scope: Scope::AffiliationsPanel,
        action: Action::MakePublisher,
        help: "make it a publisher",
        hint: Some("publisher"),
    },
    Binding {
        keys: &[ch('P')],
        scope: Scope::AffiliationsPanel,
        action: Action::MakePublishOnly,
        help: "make it publish-only",
        hint: Some("publish-only"),
    },
    Binding {
        keys: &[ch('m')],
        scope: Scope::AffiliationsPanel,
        action: Action::MakeMember,
        help: "make it a member",
        hint: Some("member"),
    },
    Binding {
        keys: &[ch('n')],
        scope: Scope::AffiliationsPanel,
        action: Action::MakeNone,
        help: "remove its affiliation (none)",
        hint: Some("none"),
    },
    Binding {
        keys: &[ch('x')],
        scope: Scope::AffiliationsPanel,
        action: Action::MakeOutcast,
        help: "ban it (outcast)",
        hint: Some("outcast"),
    },
    Binding {
        keys: &[ch('y')],
        scope: Scope::SubscriptionsPanel,
        action: Action::Approve,
        help: "approve the selected subscription (subscribed)",
        hint: Some("approve"),
    },
    Binding {
        keys: &[ch('n'), ch('x')],
        scope: Scope::SubscriptionsPanel,
        action: Action::Deny,
        help: "deny or remove the selected subscription (none)",
        hint: Some("deny/remove"),
    },
    Binding {
        keys: &[ch('+')],
        scope: Scope::Panel,
        action: Action::AddEntry,
        help: "add a JID (an affiliation: JID then its affiliation, member when left out)",
        hint: Some("add"),
    },
    Binding {
        keys: &[ch('R')],
        scope: Scope::Panel,
        action: Action::Reload,
        help: "ask the service again",
        hint: Some("reload"),
    },
    Binding {
        keys: &[key(KeyCode::Up), ch('k')],
        scope: Scope::Panel,
        action: Action::Up,
        help: "move up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down), ch('j')],
        scope: Scope::Panel,
        action: Action::Down,
        help: "move down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::Panel,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::Panel,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home), ch('g')],
        scope: Scope::Panel,
        action: Action::Top,
        help: "the first",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End), ch('G')],
        scope: Scope::Panel,
        action: Action::Bottom,
        help: "the last",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Esc), ch('q')],
        scope: Scope::Panel,
        action: Action::Close,
        help: "close",
        hint: Some("close"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::Panel,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::PanelTyping,
        action: Action::Accept,
        help: "add it",
        hint: Some("add"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::PanelTyping,
        action: Action::Cancel,
        help: "drop it",
        hint: Some("cancel"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::PanelTyping,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Up), ch('k')],
        scope: Scope::ItemView,
        action: Action::Up,
        help: "scroll up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Down), ch('j')],
        scope: Scope::ItemView,
        action: Action::Down,
        help: "scroll down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageUp)],
        scope: Scope::ItemView,
        action: Action::PageUp,
        help: "page up",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::PageDown)],
        scope: Scope::ItemView,
        action: Action::PageDown,
        help: "page down",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Home), ch('g')],
        scope: Scope::ItemView,
        action: Action::Top,
        help: "to the top",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::End), ch('G')],
        scope: Scope::ItemView,
        action: Action::Bottom,
        help: "to the end",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Tab)],
        scope: Scope::ItemView,
        action: Action::FocusNext,
        help: "next view: rendered, tree, raw XML",
        hint: Some("view"),
    },
    Binding {
        keys: &[key(KeyCode::BackTab)],
        scope: Scope::ItemView,
        action: Action::FocusPrev,
        help: "previous view",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Right), ch('l')],
        scope: Scope::ItemView,
        action: Action::Expand,
        help: "unfold the element (tree)",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Left), ch('h')],
        scope: Scope::ItemView,
        action: Action::Collapse,
        help: "fold the element, or go to its parent (tree)",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Enter), ch(' ')],
        scope: Scope::ItemView,
        action: Action::Toggle,
        help: "fold or unfold the element (tree)",
        hint: Some("fold"),
    },
    Binding {
        keys: &[ch('c')],
        scope: Scope::ItemView,
        action: Action::Chart,
        help: "chart the selected field (a number) over the node's items (tree)",
        hint: Some("chart"),
    },
    Binding {
        keys: &[ch('x')],
        scope: Scope::ItemView,
        action: Action::Retract,
        help: "retract the item (asks first)",
        hint: Some("retract"),
    },
    Binding {
        keys: &[ch('E')],
        scope: Scope::ItemView,
        action: Action::EditItem,
        help: "edit its payload in $EDITOR and publish it again under its id",
        hint: Some("edit"),
    },
    Binding {
        keys: &[ch('y')],
        scope: Scope::ItemView,
        action: Action::CopyId,
        help: "copy its id",
        hint: Some("copy id"),
    },
    Binding {
        keys: &[key(KeyCode::Esc), ch('q'), ch('v')],
        scope: Scope::ItemView,
        action: Action::Close,
        help: "close",
        hint: Some("close"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::ItemView,
        action: Action::Quit,
        help: "quit",
        hint: None,
    },
    Binding {
        keys: &[key(KeyCode::Enter)],
        scope: Scope::ConfirmTyped,
        action: Action::Yes,
        help: "delete the node (with the redirect typed, if any)",
        hint: Some("delete"),
    },
    Binding {
        keys: &[key(KeyCode::Esc)],
        scope: Scope::ConfirmTyped,
        action: Action::No,
        help: "keep the node",
        hint: Some("keep"),
    },
    Binding {
        keys: &[ctrl('c')],
        scope: Scope::ConfirmTyped,
        action: Action::No,
        help: "keep the node",
        hint: None,
    },
];

/// The action bound to `ev` in this mode, if any.
/// The action of a key in the model's mode: of the bindings of that key, the first that can
/// act now (so `N` finds the previous match while finding, and creates a node otherwise),
/// else the first.
pub fn action_in(ev: &KeyEvent, m: &Model) -> Option<Action> {
    let mode = Mode::of(m);
    let mut bound = BINDINGS
        .iter()
        .filter(|b| b.scope.applies(mode) && b.keys.iter().any(|k| k.matches(ev)));
    let first = bound.clone().next().map(|b| b.action);
    bound
        .find(|b| available(b.action, m))
        .map(|b| b.action)
        .or(first)
}

pub fn action_for(ev: &KeyEvent, mode: Mode) -> Option<Action> {
    BINDINGS
        .iter()
        .filter(|b| b.scope.applies(mode))
        .find(|b| b.keys.iter().any(|k| k.matches(ev)))
        .map(|b| b.action)
}

/// `(keys, hint)` pairs for the footer: the bindings of the current mode that can act now.
/// With a feed item selected, its keys come first (the footer is cut at the terminal's width).
pub fn hints(m: &Model) -> Vec<(String, &'static str)> {
    let mode = Mode::of(m);
    let item_first = m.cursor.is_some();
    let (first, rest): (Vec<&Binding>, Vec<&Binding>) = BINDINGS
        .iter()
        .partition(|b| item_first && b.scope == Scope::Item);
    first
        .into_iter()
        .chain(rest)
        .filter(|b| b.scope.applies(mode) && available(b.action, m))
        .filter_map(|b| {
            let hint = b.hint?;
            let first = b.keys.first()?;
            Some((first.label(), hint))
        })
        .collect()
}

/// Everything, grouped by scope, for the help overlay: `(scope title, [(keys, help)])`.
pub fn help_sections() -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let mut out: Vec<(&'static str, Vec<(String, &'static str)>)> = Vec::new();
    for b in BINDINGS {
        let keys = b
            .keys
            .iter()
            .map(Key::label)
            .collect::<Vec<_>>()
            .join(" / ");
        match out.iter_mut().find(|(t, _)| *t == b.scope.title()) {
            Some((_, rows)) => rows.push((keys, b.help)),
            None => out.push((b.scope.title(), vec![(keys, b.help)])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    const FEED: Mode = Mode::Pane(Focus::Feed);
    const COMPOSE: Mode = Mode::Pane(Focus::Compose);

    #[test]
    fn letters_are_commands_in_panes_and_text_in_compose() {
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(action_for(&q, FEED), Some(Action::Quit));
        assert_eq!(action_for(&q, COMPOSE), None);
        assert_eq!(action_for(&q, Mode::Overlay), Some(Action::Close));
        let ctrl_c = press(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_for(&ctrl_c, COMPOSE), Some(Action::Quit));
        assert_eq!(action_for(&ctrl_c, Mode::Confirm), Some(Action::Quit));
    }

    #[test]
    fn shifted_symbols_match() {
        let help = press(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(
            action_for(&help, Mode::Pane(Focus::Subscriptions)),
            Some(Action::Help)
        );
        let end = press(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(action_for(&end, FEED), Some(Action::Bottom));
    }

    #[test]
    fn shift_tab_as_terminals_report_it() {
        // crossterm reports Shift-Tab as BackTab with SHIFT held.
        let back = press(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(action_for(&back, FEED), Some(Action::FocusPrev));
        assert_eq!(action_for(&back, COMPOSE), Some(Action::FocusPrev));
        // Control: Shift on a key that is not a character still counts (Shift-Enter is
        // not Enter).
        let shift_up = press(KeyCode::Up, KeyModifiers::SHIFT);
        assert_eq!(action_for(&shift_up, FEED), None);
    }

    #[test]
    fn alt_enter_is_a_new_line_in_compose() {
        let alt_enter = press(KeyCode::Enter, KeyModifiers::ALT);
        assert_eq!(action_for(&alt_enter, COMPOSE), Some(Action::NewLine));
        let enter = press(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(action_for(&enter, COMPOSE), Some(Action::Publish));
    }

    #[test]
    fn every_binding_is_in_the_help() {
        let sections = help_sections();
        let total: usize = sections.iter().map(|(_, rows)| rows.len()).sum();
        assert_eq!(total, BINDINGS.len());
    }
}
