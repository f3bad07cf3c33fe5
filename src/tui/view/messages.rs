//! The message log (`m`): every notice and error so far, newest at the bottom, with its time.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::model::{Level, Model};
use super::super::theme;

fn lines(m: &Model) -> Vec<Line<'static>> {
    if m.log.is_empty() {
        return vec![Line::styled("(no messages yet)", theme::DIM)];
    }
    m.log
        .iter()
        .map(|e| {
            let time = e.at.with_timezone(&m.offset).format("%H:%M:%S").to_string();
            let style = match e.level {
                Level::Info => ratatui::style::Style::new(),
                Level::Error => theme::ERROR,
            };
            let text: String = e
                .text
                .chars()
                .map(|c| if c == '\n' { '⏎' } else { c })
                .collect();
            Line::from(vec![
                Span::styled(time, theme::TIME),
                Span::raw(" "),
                Span::styled(text, style),
            ])
        })
        .collect()
}

/// Where the overlay goes, and how many rows its text takes.
fn layout(area: Rect, m: &Model) -> (Rect, u16) {
    let w = area.width.saturating_sub(2).min(100);
    let rows = Paragraph::new(lines(m))
        .wrap(Wrap { trim: false })
        .line_count(w.saturating_sub(2));
    let rows = u16::try_from(rows).unwrap_or(u16::MAX);
    let h = area
        .height
        .saturating_sub(2)
        .min(rows.saturating_add(2))
        .max(3.min(area.height));
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    (popup, rows)
}

/// How far the log can scroll up from its newest line.
pub fn max_scroll(m: &Model) -> u16 {
    let (popup, rows) = layout(Rect::new(0, 0, m.size.0, m.size.1), m);
    rows.saturating_sub(popup.height.saturating_sub(2))
}

/// `scroll`: rows up from the newest.
pub fn draw(frame: &mut Frame, area: Rect, m: &Model, scroll: u16) {
    let (popup, rows) = layout(area, m);
    let max = rows.saturating_sub(popup.height.saturating_sub(2));
    let scroll = scroll.min(max);
    let hint = if max == 0 {
        " Esc closes "
    } else {
        " ↑↓ PgUp PgDn scroll · Esc closes "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(" Messages ", theme::title(true)))
        .title_bottom(Span::styled(hint, theme::DIM));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines(m))
            .wrap(Wrap { trim: false })
            .scroll((max - scroll, 0))
            .block(block),
        popup,
    );
}
