//! The help overlay, generated from the key table. It scrolls when the terminal is too small
//! to show it whole.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::keymap;
use super::super::theme;

/// Columns of the key column (with its margins).
const KEYS: usize = 13;

/// `text` in lines of at most `width` columns, broken at spaces where it can be.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let used = line.chars().count();
        if used > 0 && used + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        } else if used > 0 {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// The help text for an overlay `inner` columns wide: a help that does not fit goes on under
/// itself, not under the keys.
fn content(inner: usize) -> Paragraph<'static> {
    let mut lines = Vec::new();
    for (title, rows) in keymap::help_sections() {
        lines.push(Line::styled(title, theme::title(true)));
        for (keys, help) in rows {
            for (i, part) in wrap(help, inner.saturating_sub(KEYS))
                .into_iter()
                .enumerate()
            {
                let keys = if i == 0 { keys.as_str() } else { "" };
                lines.push(Line::from(vec![
                    Span::styled(format!(" {keys:<11} "), theme::KEY),
                    Span::raw(part),
                ]));
            }
        }
    }
    Paragraph::new(lines).wrap(Wrap { trim: false })
}

/// Where the overlay goes in a terminal of `area`, and how many rows its text takes.
fn layout(area: Rect) -> (Rect, u16) {
    let w = area.width.saturating_sub(2).min(66);
    let inner = w.saturating_sub(2);
    let rows = u16::try_from(content(usize::from(inner)).line_count(inner)).unwrap_or(u16::MAX);
    let h = area.height.min(rows.saturating_add(2));
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    (popup, rows)
}

/// How far the help can scroll in a terminal of `size` (0 when it fits).
pub fn max_scroll(size: (u16, u16)) -> u16 {
    let (popup, rows) = layout(Rect::new(0, 0, size.0, size.1));
    rows.saturating_sub(popup.height.saturating_sub(2))
}

pub fn draw(frame: &mut Frame, area: Rect, scroll: u16) {
    let (popup, rows) = layout(area);
    let max = rows.saturating_sub(popup.height.saturating_sub(2));
    let scroll = scroll.min(max);
    let hint = if max == 0 {
        " Esc closes · mouse wheel scrolls the feed "
    } else if scroll < max {
        " ↓ more · ↑↓ PgUp PgDn scroll · Esc closes "
    } else {
        " ↑↓ PgUp PgDn scroll · Esc closes "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(" Help ", theme::title(true)))
        .title_bottom(Span::styled(hint, theme::DIM));
    frame.render_widget(Clear, popup);
    let inner = usize::from(popup.width.saturating_sub(2));
    frame.render_widget(content(inner).scroll((scroll, 0)).block(block), popup);
}
