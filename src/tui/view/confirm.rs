//! The question before quitting with items the service has not confirmed yet.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::model::Model;
use super::super::theme;

pub fn draw(frame: &mut Frame, area: Rect, m: &Model) {
    let n = m.waiting();
    let queued = m.unconfirmed.values().filter(|u| u.queued).count();
    let mut parts = Vec::new();
    if n > 0 && !m.net_ended {
        let mut p = if n == 1 {
            "1 item not confirmed by the service yet".to_owned()
        } else {
            format!("{n} items not confirmed by the service yet")
        };
        if queued > 0 {
            let _ = write!(p, " ({queued} waiting for the connection)");
        }
        parts.push(p);
    }
    match m.failed.len() {
        0 => {}
        1 => parts.push("1 failed item (P puts it back in the compose box)".to_owned()),
        k => parts.push(format!("{k} failed items (P puts them back, one by one)")),
    }
    if !m.compose.value().trim().is_empty() {
        parts.push("the draft in the compose box".to_owned());
    }
    let text = format!("Quitting now loses {}.", parts.join(", and "));
    let lines = vec![
        Line::raw(text),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", theme::KEY),
            Span::raw(" quit anyway · "),
            Span::styled("n", theme::KEY),
            Span::raw(" / "),
            Span::styled("Esc", theme::KEY),
            Span::raw(" stay"),
        ]),
    ];
    let w = area.width.saturating_sub(2).min(60);
    let h = area.height.min(7);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(" Quit? ", theme::title(true)));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
        popup,
    );
}
