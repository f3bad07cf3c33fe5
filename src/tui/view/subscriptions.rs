//! The subscriptions pane: each node with its state, item count and last activity.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState};

use super::super::model::{Focus, Model, NodeView};
use super::super::theme;
use super::{NARROW_WIDTH, fit};
use crate::xmpp::protocol::SubState;

fn state_span(n: &NodeView) -> Span<'static> {
    if n.resyncing {
        return Span::styled("resyncing", theme::WARN);
    }
    let style = match n.state {
        SubState::Subscribed => theme::OK,
        SubState::Error(_) => theme::ERROR,
        _ => theme::WARN,
    };
    let text = match &n.state {
        SubState::Error(_) => "error".to_owned(),
        other => other.to_string(),
    };
    Span::styled(text, style)
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn draw(frame: &mut Frame, area: Rect, m: &Model) {
    let focused = m.focus == Focus::Subscriptions;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(focused))
        .title(Span::styled(" Subscriptions ", theme::title(focused)));
    let inner_width = usize::from(area.width.saturating_sub(2));
    let narrow = frame.area().width < NARROW_WIDTH;
    let items: Vec<ListItem> = m
        .nodes
        .iter()
        .map(|n| {
            let name = fit(&n.name, inner_width.saturating_sub(12).max(4));
            let first = Line::from(vec![Span::raw(format!("{name} ")), state_span(n)]);
            let count = n.feed.item_count();
            let last = n.last_activity.as_deref().unwrap_or("--:--:--");
            let second = Line::styled(
                fit(&format!(" {} · {last}", plural(count, "item")), inner_width),
                theme::DIM,
            );
            if narrow {
                ListItem::new(Line::from(vec![
                    Span::raw(format!("{name} ")),
                    state_span(n),
                    Span::styled(format!(" {count}"), theme::DIM),
                ]))
            } else {
                ListItem::new(vec![first, second])
            }
        })
        .collect();
    let list = List::new(items).block(block).highlight_style(if focused {
        theme::SELECTED
    } else {
        theme::SELECTED_UNFOCUSED
    });
    let mut state = ListState::default().with_selected(Some(m.selected));
    frame.render_stateful_widget(list, area, &mut state);
}
