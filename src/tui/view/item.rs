//! An item's XML, pretty-printed and made safe to show (control and bidi characters gone),
//! long lines wrapped.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::super::model::Model;

pub fn draw(frame: &mut Frame, full: Rect, m: &Model) {
    let Some(v) = &m.item_view else {
        return;
    };
    let area = super::explorer::area(full);
    frame.render_widget(Clear, area);
    let title = format!(
        " Item {} of {} · {} lines ",
        v.id.as_deref().unwrap_or("(no id)"),
        v.node,
        v.lines.len()
    );
    let block = super::overlay_block(&title, area);
    let height = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line> = v
        .lines
        .iter()
        .skip(v.scroll)
        .take(height)
        .map(|l| Line::raw(l.clone()))
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
}
