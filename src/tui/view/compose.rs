//! The compose box: one line of text, published to the selected node with Enter.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::super::model::{Focus, Model};
use super::super::theme;

pub fn draw(frame: &mut Frame, area: Rect, m: &Model) {
    let focused = m.focus == Focus::Compose;
    let node = m.selected_node().map_or("?", |n| n.name.as_str());
    let title = if focused {
        format!(" Compose → {node} (Enter publishes) ")
    } else {
        format!(" Compose → {node} (i to write) ")
    };
    let screen = frame.area();
    let compact = super::is_compact(screen.width, screen.height);
    let block = Block::default()
        .borders(if compact { Borders::TOP } else { Borders::ALL })
        .border_style(theme::border(focused))
        .title(Span::styled(title, theme::title(focused)));
    let inset = u16::from(!compact);
    let width = usize::from(area.width.saturating_sub(2 * inset)).max(1);
    let scroll = m.compose.visual_scroll(width.saturating_sub(1));
    let paragraph = Paragraph::new(m.compose.value())
        .scroll((0, u16::try_from(scroll).unwrap_or(0)))
        .block(block);
    frame.render_widget(paragraph, area);
    if focused {
        let cursor = m.compose.visual_cursor().saturating_sub(scroll);
        let x = area.x + 1 + u16::try_from(cursor).unwrap_or(0);
        frame.set_cursor_position(Position::new(
            x.min(area.right().saturating_sub(2)),
            area.y + 1,
        ));
    }
}
