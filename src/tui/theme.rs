//! Colours and styles, in one place.

use ratatui::style::{Color, Modifier, Style};

pub fn border(focused: bool) -> Style {
    if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    }
}

pub fn title(focused: bool) -> Style {
    if focused {
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

pub const TIME: Style = Style::new().fg(Color::DarkGray);
/// A match of the feed's find.
pub const MATCH: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// When the item was received (it carries no time of its own).
pub const TIME_RECEIVED: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::ITALIC);
pub const SENDER: Style = Style::new().fg(Color::Cyan);
pub const RETRACTED: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::CROSSED_OUT);
pub const MARKER: Style = Style::new()
    .fg(Color::Yellow)
    .add_modifier(Modifier::ITALIC);
pub const DAY: Style = Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD);
pub const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
pub const SELECTED_UNFOCUSED: Style = Style::new().add_modifier(Modifier::BOLD);
pub const OK: Style = Style::new().fg(Color::Green);
pub const WARN: Style = Style::new().fg(Color::Yellow);
pub const ERROR: Style = Style::new().fg(Color::Red);
pub const DIM: Style = Style::new().fg(Color::DarkGray);
pub const KEY: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
