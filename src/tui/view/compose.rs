//! The compose box: one row of text, published to the selected node with Enter. Line breaks
//! (pasted, or Alt-Enter) are kept in the text and shown as `⏎`.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthChar as _;

use super::super::model::{Focus, Model};
use super::super::theme;

/// How a character of the text is shown in the one-row box.
fn shown(c: char) -> char {
    match c {
        '\n' => '⏎',
        '\t' => ' ',
        c => c,
    }
}

fn width_of(c: char) -> usize {
    shown(c).width().unwrap_or(0)
}

/// The columns to skip so the cursor stays visible in `width` columns, and the cursor's
/// column after skipping them.
pub fn scroll_and_cursor(value: &str, cursor: usize, width: usize) -> (usize, usize) {
    let before: usize = value.chars().take(cursor).map(width_of).sum();
    let room = width.saturating_sub(1).max(1);
    let scroll = before.saturating_sub(room);
    (scroll, before - scroll)
}

pub fn draw(frame: &mut Frame, area: Rect, m: &Model) {
    let focused = m.focus == Focus::Compose && m.overlay == super::super::model::Overlay::None;
    let title = match m.selected_node() {
        None => " Compose (no node followed: e to follow one) ".to_owned(),
        Some(n) if focused => format!(" Compose → {} (Enter publishes) ", n.name),
        Some(n) => format!(" Compose → {} (i to write) ", n.name),
    };
    let screen = frame.area();
    let compact = super::is_compact(screen.width, screen.height);
    let block = Block::default()
        .borders(if compact { Borders::TOP } else { Borders::ALL })
        .border_style(theme::border(focused))
        .title(Span::styled(title, theme::title(focused)));
    // The compact box has a top border only: the text starts in the first column.
    let inset = u16::from(!compact);
    let width = usize::from(area.width.saturating_sub(2 * inset)).max(1);
    let value = m.compose.value();
    let (scroll, cursor) = scroll_and_cursor(value, m.compose.cursor(), width);
    let mut spans = Vec::new();
    let mut col = 0usize;
    for c in value.chars() {
        let w = width_of(c);
        if col + w <= scroll {
            col += w;
            continue;
        }
        if col >= scroll + width {
            break;
        }
        col += w;
        let style = if c == '\n' {
            theme::DIM
        } else {
            ratatui::style::Style::new()
        };
        spans.push(Span::styled(shown(c).to_string(), style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).block(block), area);
    if focused {
        let x = area.x + inset + u16::try_from(cursor).unwrap_or(0);
        frame.set_cursor_position(Position::new(
            x.min(area.right().saturating_sub(1 + inset)),
            area.y + 1,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_stays_in_view() {
        assert_eq!(scroll_and_cursor("hello", 5, 20), (0, 5));
        assert_eq!(scroll_and_cursor("hello", 2, 20), (0, 2));
        // 30 columns of text in a 10-column box: scrolled so the cursor is in the last one.
        assert_eq!(scroll_and_cursor(&"x".repeat(30), 30, 10), (21, 9));
        // A line break takes one column (⏎), a wide character two.
        assert_eq!(scroll_and_cursor("a\n日", 3, 20), (0, 4));
    }
}
