//! The live feed of the selected node. Only the visible rows are built, so a node holding
//! 10,000 items costs no more to draw than one holding 20.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::super::model::{Focus, Model};
use super::super::theme;
use super::{fit, fit_pad};
use crate::feed::{FeedItem, ItemState, MarkerKind, RowKind};

fn item_line(item: &FeedItem, state: ItemState, m: &Model, width: usize) -> Line<'static> {
    let (time, received) = item.display_time(m.offset);
    let sender_width = (width / 4).clamp(8, 22);
    // The bare JID: the resource is rarely worth its columns. When the service names another
    // publisher than the item claims, that one is shown, marked.
    let bare = |s: &str| s.split('/').next().unwrap_or(s).to_owned();
    let claimed = bare(item.sender.as_deref().unwrap_or("?"));
    let (who, forged) = match &item.publisher {
        Some(p) if item.is_forged() => (format!("{p} ≠ {claimed}"), true),
        Some(p) if item.sender.is_none() => (p.clone(), false),
        _ => (claimed, false),
    };
    let sender = fit_pad(&who, sender_width);
    let text_width = width.saturating_sub(time.len() + sender_width + 2);
    let text = fit(&item.text, text_width);
    match state {
        ItemState::Retracted => {
            return Line::styled(format!("{time} {sender} {text}"), theme::RETRACTED);
        }
        ItemState::Gone => return Line::styled(format!("{time} {sender} {text}"), theme::DIM),
        ItemState::Live => {}
    }
    Line::from(vec![
        Span::styled(
            time,
            if received {
                theme::TIME_RECEIVED
            } else {
                theme::TIME
            },
        ),
        Span::raw(" "),
        Span::styled(sender, if forged { theme::WARN } else { theme::SENDER }),
        Span::raw(" "),
        Span::raw(text),
    ])
}

pub fn draw(frame: &mut Frame, area: Rect, m: &Model) {
    let focused = m.focus == Focus::Feed;
    let width = usize::from(area.width.saturating_sub(2));
    let height = usize::from(area.height.saturating_sub(2));
    let Some(node) = m.selected_node() else {
        let block = Block::default().borders(Borders::ALL).title(" Feed ");
        frame.render_widget(Paragraph::new("no node").block(block), area);
        return;
    };
    let mut title = format!(
        " Feed · {} · {} ",
        node.name,
        super::super::update::plural(node.feed.item_count(), "item")
    );
    if node.sync != super::super::model::SyncState::Idle {
        title.push_str("· resyncing… ");
    }
    if !m.following() {
        match m.cursor {
            Some(c) => {
                let _ = write!(
                    title,
                    "· {} selected (Esc follows) ",
                    if c == 0 { "newest" } else { "an item" }
                );
            }
            None => {
                let _ = write!(title, "· ↑{} (Esc follows) ", m.feed_offset);
            }
        }
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(focused))
        .title(Span::styled(fit(&title, width), theme::title(focused)));

    let evicted = node.feed.evicted();
    let marker_rows = usize::from(evicted > 0);
    let total = node.feed.len() + marker_rows;
    let end = total.saturating_sub(m.feed_offset);
    let start = end.saturating_sub(height);
    let mut lines = Vec::with_capacity(end - start);
    let selected_row = m.cursor.and_then(|c| total.checked_sub(c + 1));
    for i in start..end {
        if i < marker_rows {
            lines.push(Line::styled(
                fit(
                    &format!("… {evicted} older rows evicted (feed limit)"),
                    width,
                ),
                theme::MARKER,
            ));
            continue;
        }
        let Some(row) = node.feed.row(i - marker_rows) else {
            continue;
        };
        lines.push(match &row.kind {
            RowKind::Item { item, state } if Some(i) == selected_row => {
                let line = item_line(item, *state, m, width);
                let style = if focused {
                    theme::SELECTED
                } else {
                    theme::SELECTED_UNFOCUSED
                };
                line.patch_style(style)
            }
            RowKind::Item { item, state } => item_line(item, *state, m, width),
            RowKind::Marker {
                kind: MarkerKind::Day,
                text,
            } => Line::styled(fit(&format!("─── {text} ───"), width), theme::DAY),
            RowKind::Marker { text, .. } => {
                Line::styled(fit(&format!("── {text} ──"), width), theme::MARKER)
            }
        });
    }
    if lines.is_empty() {
        lines.push(match node.state.error() {
            // A lost connection is the status bar's to tell.
            Some(e) if !matches!(e, crate::xmpp::error::RequestError::Connection(_)) => {
                Line::styled(
                    fit(
                        &crate::xmpp::error::explain(
                            e,
                            crate::xmpp::error::Op::Subscribe,
                            &node.name,
                            m.service.as_str(),
                        ),
                        width,
                    ),
                    theme::ERROR,
                )
            }
            _ => Line::styled("(no items yet)", theme::DIM),
        });
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
