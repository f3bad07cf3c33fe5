//! The help overlay, generated from the key table.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::keymap;
use super::super::theme;

pub fn draw(frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for (title, rows) in keymap::help_sections() {
        lines.push(Line::styled(title, theme::title(true)));
        for (keys, help) in rows {
            lines.push(Line::from(vec![
                Span::styled(format!(" {keys:<11} "), theme::KEY),
                Span::raw(help),
            ]));
        }
    }
    let content_height = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2);
    let w = area.width.saturating_sub(2).min(66);
    let h = area.height.min(content_height);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(" Help ", theme::title(true)))
        .title_bottom(Span::styled(
            " Esc closes · mouse wheel scrolls the feed ",
            theme::DIM,
        ));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        popup,
    );
}
