//! Key bindings as data. The key handler, the footer hints and the help overlay all read this
//! one table, so they cannot disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::model::Focus;

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    FocusNext,
    FocusPrev,
    Compose,
    ToggleAuto,
    Resync,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Follow,
    Publish,
    LeaveCompose,
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, the compose box included.
    Global,
    /// In the subscriptions and feed panes (where letters are commands, not text).
    Panes,
    /// In the feed pane only.
    Feed,
    /// In the compose box.
    Compose,
}

impl Scope {
    fn applies(self, focus: Focus) -> bool {
        match self {
            Self::Global => true,
            Self::Panes => focus != Focus::Compose,
            Self::Feed => focus == Focus::Feed,
            Self::Compose => focus == Focus::Compose,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Global => "Everywhere",
            Self::Panes => "Subscriptions and feed",
            Self::Feed => "Feed",
            Self::Compose => "Compose box",
        }
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

impl Key {
    fn matches(&self, ev: &KeyEvent) -> bool {
        // Shift is part of the character for letters and symbols ('G', '?'), so ignore it there.
        let mods = if matches!(ev.code, KeyCode::Char(_)) {
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
            KeyCode::PageUp => "PgUp".to_owned(),
            KeyCode::PageDown => "PgDn".to_owned(),
            KeyCode::Home => "Home".to_owned(),
            KeyCode::End => "End".to_owned(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        if self.mods.contains(KeyModifiers::CONTROL) {
            format!("Ctrl-{}", base.to_uppercase())
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
        help: "toggle auto-publish",
        hint: Some("auto"),
    },
    Binding {
        keys: &[ch('r')],
        scope: Scope::Panes,
        action: Action::Resync,
        help: "resync the selected node from the service",
        hint: Some("resync"),
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
];

/// The action bound to `ev` with the given focus, if any.
pub fn action_for(ev: &KeyEvent, focus: Focus) -> Option<Action> {
    BINDINGS
        .iter()
        .filter(|b| b.scope.applies(focus))
        .find(|b| b.keys.iter().any(|k| k.matches(ev)))
        .map(|b| b.action)
}

/// `(keys, hint)` pairs for the footer, for the given focus.
pub fn hints(focus: Focus) -> Vec<(String, &'static str)> {
    BINDINGS
        .iter()
        .filter(|b| b.scope.applies(focus))
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

    #[test]
    fn letters_are_commands_in_panes_and_text_in_compose() {
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(action_for(&q, Focus::Feed), Some(Action::Quit));
        assert_eq!(action_for(&q, Focus::Compose), None);
        let ctrl_c = press(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_for(&ctrl_c, Focus::Compose), Some(Action::Quit));
    }

    #[test]
    fn shifted_symbols_match() {
        let help = press(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(action_for(&help, Focus::Subscriptions), Some(Action::Help));
        let end = press(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(action_for(&end, Focus::Feed), Some(Action::Bottom));
    }

    #[test]
    fn every_binding_is_in_the_help() {
        let sections = help_sections();
        let total: usize = sections.iter().map(|(_, rows)| rows.len()).sum();
        assert_eq!(total, BINDINGS.len());
    }
}
