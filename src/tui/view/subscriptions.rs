//! The subscriptions pane: each node with its state, item count and last activity.
//!
//! A node's state as shown follows the connection too: while offline no node is "live".

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState};

use super::super::model::{Focus, Model, NodeView, SyncState};
use super::super::theme;
use super::super::update::plural;
use super::{fit, is_compact};
use crate::xmpp::ConnState;
use crate::xmpp::error::{Op, RequestError, explain};
use crate::xmpp::proto::SubState;

/// The word for a node's state, and its style.
fn state_span(n: &NodeView, conn: &ConnState) -> Span<'static> {
    if let SyncState::Resyncing { progress } = n.sync
        && matches!(conn, ConnState::Online { .. })
    {
        let text = match progress {
            Some((k, Some(total))) => format!("resyncing {k} of {total}"),
            Some((k, None)) => format!("resyncing {k}"),
            None => "resyncing".to_owned(),
        };
        return Span::styled(text, theme::WARN);
    }
    let (text, style) = match (&n.state, conn) {
        // The connection's failure is the status bar's to tell, once.
        (SubState::Failed(RequestError::Connection(_)), _) => {
            ("not connected".to_owned(), theme::ERROR)
        }
        (SubState::Failed(_), _) => ("failed".to_owned(), theme::ERROR),
        (_, ConnState::Failed { .. } | ConnState::Closed) => {
            ("not connected".to_owned(), theme::ERROR)
        }
        (_, ConnState::Online { .. }) => match &n.state {
            SubState::Subscribed => ("live".to_owned(), theme::OK),
            SubState::Retrying { retry_in, .. } => (
                format!("retrying in {} s", retry_in.as_secs().max(1)),
                theme::WARN,
            ),
            other => (other.name().to_owned(), theme::WARN),
        },
        _ => ("offline".to_owned(), theme::WARN),
    };
    Span::styled(text, style)
}

/// `HH:MM:SS` today, the date on other days.
pub fn when(t: DateTime<Utc>, m: &Model) -> String {
    let local = t.with_timezone(&m.offset);
    if local.date_naive() == m.now.with_timezone(&m.offset).date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d").to_string()
    }
}

/// Compact form: one line, `demo live 7 │ news failed 0`, the selected node highlighted.
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
        spans.push(state_span(n, &m.conn));
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
            let first = Line::from(vec![Span::raw(format!("{name} ")), state_span(n, &m.conn)]);
            let count = n.feed.item_count();
            let last = n
                .last_activity
                .map_or_else(|| "--:--:--".to_owned(), |t| when(t, m));
            let second = match &n.state {
                SubState::Failed(e) | SubState::Retrying { error: e, .. }
                    if !matches!(e, RequestError::Connection(_)) =>
                {
                    let why = explain(e, Op::Subscribe, &n.name, m.service.as_str());
                    Line::styled(fit(&format!(" {why}"), inner_width), theme::ERROR)
                }
                _ => Line::styled(
                    fit(&format!(" {} · {last}", plural(count, "item")), inner_width),
                    theme::DIM,
                ),
            };
            let mut lines = vec![first, second];
            if n.gaps > 0 || n.last_resync.is_some() {
                let resync = n
                    .last_resync
                    .map_or_else(|| "never".to_owned(), |t| when(t, m));
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
