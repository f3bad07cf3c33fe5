//! The subscriptions pane: each node with its state, item count and last activity.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState};

use super::super::model::{Focus, Model, NodeView};
use super::super::theme;
use super::{fit, is_compact};
use crate::xmpp::protocol::SubState;

fn state_span(n: &NodeView) -> Span<'static> {
    if n.resyncing {
        let text = match n.progress {
            Some((k, Some(total))) => format!("resyncing {k} of {total}"),
            Some((k, None)) => format!("resyncing {k}"),
            None => "resyncing".to_owned(),
        };
        return Span::styled(text, theme::WARN);
    }
    let style = match n.state {
        SubState::Subscribed => theme::OK,
        SubState::Error(_) => theme::ERROR,
        _ => theme::WARN,
    };
    let text = match &n.state {
        SubState::Error(_) => "error".to_owned(),
        SubState::Subscribed => "live".to_owned(),
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

/// Compact form: one line, `demo ✓ 7 │ news error 0`, the selected node highlighted.
fn draw_line(frame: &mut Frame, area: Rect, m: &Model) {
    let focused = m.focus == Focus::Subscriptions;
    let mut spans = Vec::new();
    for (i, n) in m.nodes.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" │ ", theme::DIM));
        }
        let name_style = if i == m.selected {
            if focused {
                theme::SELECTED
            } else {
                theme::SELECTED_UNFOCUSED
            }
        } else {
            ratatui::style::Style::new()
        };
        spans.push(Span::styled(n.name.clone(), name_style));
        spans.push(Span::raw(" "));
        spans.push(state_span(n));
        spans.push(Span::styled(
            format!(" {}", n.feed.item_count()),
            theme::DIM,
        ));
    }
    frame.render_widget(ratatui::widgets::Paragraph::new(Line::from(spans)), area);
}

pub fn draw(frame: &mut Frame, area: Rect, m: &Model) {
    let screen = frame.area();
    if is_compact(screen.width, screen.height) {
        draw_line(frame, area, m);
        return;
    }
    let focused = m.focus == Focus::Subscriptions;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(focused))
        .title(Span::styled(" Subscriptions ", theme::title(focused)));
    let inner_width = usize::from(area.width.saturating_sub(2));
    let items: Vec<ListItem> = m
        .nodes
        .iter()
        .map(|n| {
            let name = fit(&n.name, inner_width.saturating_sub(12).max(4));
            let first = Line::from(vec![Span::raw(format!("{name} ")), state_span(n)]);
            let count = n.feed.item_count();
            let last = n.last_activity.as_deref().unwrap_or("--:--:--");
            let second = match &n.state {
                SubState::Error(reason) => {
                    Line::styled(fit(&format!(" {reason}"), inner_width), theme::ERROR)
                }
                _ => Line::styled(
                    fit(&format!(" {} · {last}", plural(count, "item")), inner_width),
                    theme::DIM,
                ),
            };
            let mut lines = vec![first, second];
            if n.gaps > 0 || n.last_resync.is_some() {
                let resync = n.last_resync.as_deref().unwrap_or("never");
                let style = if n.gaps > 0 { theme::WARN } else { theme::DIM };
                lines.push(Line::styled(
                    fit(
                        &format!(
                            " {} · sync {resync}",
                            plural(usize::try_from(n.gaps).unwrap_or(usize::MAX), "gap")
                        ),
                        inner_width,
                    ),
                    style,
                ));
            }
            ListItem::new(lines)
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
