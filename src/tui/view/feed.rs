//! The live feed of the selected node. Only the visible rows are built, so a node holding
//! 10,000 items costs no more to draw than one holding 20.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::super::model::{Focus, Model};
use super::super::search::{Hit, Search};
use super::super::theme;
use super::{fit, fit_pad};
use crate::feed::{FeedItem, ItemState, MarkerKind, RowKind};

/// Who the row names, and whether the service contradicts the item's claim. The bare JID: the
/// resource is rarely worth its columns. When the service names another publisher than the
/// item claims, that one is shown, marked.
fn who(item: &FeedItem) -> (String, bool) {
    let bare = |s: &str| s.split('/').next().unwrap_or(s).to_owned();
    let claimed = bare(item.sender().unwrap_or("?"));
    match item.publisher() {
        Some(p) if item.is_forged() => (format!("{p} ≠ {claimed}"), true),
        Some(p) if item.sender().is_none() => (p.to_owned(), false),
        _ => (claimed, false),
    }
}

/// The sender column's width for these rows: as wide as the widest sender shown, at most a
/// quarter of the pane (so a feed whose items name no sender gives the text the room).
fn sender_width<'a>(width: usize, items: impl Iterator<Item = &'a FeedItem>) -> usize {
    let most = (width / 4).clamp(8, 22);
    items
        .map(|i| unicode_width::UnicodeWidthStr::width(who(i).0.as_str()))
        .max()
        .unwrap_or(most)
        .clamp(1, most)
}

fn item_line(
    item: &FeedItem,
    state: ItemState,
    m: &Model,
    width: usize,
    sender_width: usize,
) -> Line<'static> {
    item_line_in(item, state, m, (width, sender_width), None)
}

/// An item's row; `node`: its node's name before the text (a filter over every node).
fn item_line_in(
    item: &FeedItem,
    state: ItemState,
    m: &Model,
    (width, sender_width): (usize, usize),
    node: Option<&str>,
) -> Line<'static> {
    let (time, received) = item.display_time(m.offset);
    let (who, forged) = who(item);
    let sender = fit_pad(&who, sender_width);
    let text_width = width.saturating_sub(time.len() + sender_width + 2);
    let text = match node {
        Some(n) => fit(&format!("[{n}] {}", item.text()), text_width),
        None => fit(item.text(), text_width),
    };
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
    if let Some(s) = m.search.as_ref().filter(|s| s.hides() || s.spans_nodes()) {
        draw_hits(frame, area, m, s);
        return;
    }
    let Some(node) = m.selected_node() else {
        let block = Block::default().borders(Borders::ALL).title(" Feed ");
        frame.render_widget(Paragraph::new("no node").block(block), area);
        return;
    };
    let title = feed_title(m, node);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(focused))
        .title(Span::styled(fit(&title, width), theme::title(focused)));
    let block = search_line(frame, area, m, block);
    // While finding: the matches of this node, by row number, to mark.
    let marked: &[Hit] = m
        .search
        .as_ref()
        .filter(|s| s.find)
        .map_or(&[], |s| s.hits.as_slice());
    let first_number = node.feed.first_number();

    let evicted = node.feed.evicted();
    let marker_rows = usize::from(evicted > 0);
    let total = node.feed.len() + marker_rows;
    let end = total.saturating_sub(m.feed_offset);
    let start = end.saturating_sub(height);
    let mut lines = Vec::with_capacity(end - start);
    let selected_row = m.cursor.and_then(|c| total.checked_sub(c + 1));
    let senders = sender_width(
        width,
        (start.max(marker_rows)..end).filter_map(|i| match &node.feed.row(i - marker_rows)?.kind {
            RowKind::Item { item, .. } => Some(item),
            RowKind::Marker { .. } => None,
        }),
    );
    for i in start..end {
        if i < marker_rows {
            lines.push(Line::styled(
                fit(
                    &format!("… {evicted} older rows evicted (feed limit or memory bound)"),
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
                let line = item_line(item, *state, m, width, senders);
                let style = if focused {
                    theme::SELECTED
                } else {
                    theme::SELECTED_UNFOCUSED
                };
                line.patch_style(style)
            }
            RowKind::Item { item, state }
                if marked
                    .binary_search_by_key(&(first_number + (i - marker_rows) as u64), |h| h.row)
                    .is_ok() =>
            {
                item_line(item, *state, m, width, senders).patch_style(theme::MATCH)
            }
            RowKind::Item { item, state } => item_line(item, *state, m, width, senders),
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

fn feed_title(m: &Model, node: &super::super::model::NodeView) -> String {
    let mut title = format!(
        " Feed · {} · {} ",
        node.name,
        super::super::update::plural(node.feed.item_count(), "item")
    );
    if node.sync != super::super::model::SyncState::Idle {
        title.push_str("· resyncing… ");
    }
    if node.cached {
        title.push_str("· cached, not yet confirmed ");
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
    title
}

/// The filter's line in the feed's bottom border: the expression, the mode and scope, and
/// the count (or why the expression does not compile). The cursor sits in it while typing.
fn search_line(frame: &mut Frame, area: Rect, m: &Model, block: Block<'static>) -> Block<'static> {
    let Some(s) = &m.search else {
        return block;
    };
    let width = usize::from(area.width.saturating_sub(4));
    let mode = match (s.find, s.spans_nodes()) {
        (true, _) => "find",
        (false, true) => "filter · all nodes",
        (false, false) => "filter",
    };
    let typed = s.input.value();
    let tail = match &s.error {
        Some(e) => format!(" · {e}"),
        None if !s.active() => format!(" · {mode} · words, ~regex, name:text, @name>20"),
        None => format!(" · {mode} · {}", s.count_text()),
    };
    let style = if s.error.is_some() {
        theme::ERROR
    } else {
        theme::KEY
    };
    // The typed line gets at least half the room; the rest says how it went.
    let tail_width = unicode_width::UnicodeWidthStr::width(tail.as_str());
    let room = width.saturating_sub(tail_width.min(width / 2)).max(4);
    let (shown, col) = window(typed, s.input.cursor(), room.saturating_sub(1));
    let text = format!("/{shown}");
    let rest = fit(
        &tail,
        width.saturating_sub(unicode_width::UnicodeWidthStr::width(text.as_str())),
    );
    if s.typing {
        frame.set_cursor_position(ratatui::layout::Position::new(
            area.x + 2 + u16::try_from(col + 1).unwrap_or(0),
            area.bottom().saturating_sub(1),
        ));
    }
    block.title_bottom(Line::from(vec![
        Span::raw(" "),
        Span::styled(text, theme::KEY),
        Span::styled(rest, style),
        Span::raw(" "),
    ]))
}

/// The matches of a filter instead of the rows (of every node, with their names, when it
/// spans them).
fn draw_hits(frame: &mut Frame, area: Rect, m: &Model, s: &Search) {
    let focused = m.focus == Focus::Feed;
    let width = usize::from(area.width.saturating_sub(2));
    let height = usize::from(area.height.saturating_sub(2));
    let scope = if s.spans_nodes() {
        "all nodes".to_owned()
    } else {
        m.selected_node()
            .map_or_else(String::new, |n| n.name.clone())
    };
    let mut title = format!(" Feed · {scope} · {} ", s.count_text());
    if let Some(c) = m.cursor {
        let _ = write!(
            title,
            "· {} selected (Esc follows) ",
            if c == 0 { "newest" } else { "an item" }
        );
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(focused))
        .title(Span::styled(fit(&title, width), theme::title(focused)));
    let block = search_line(frame, area, m, block);
    let total = s.hits.len();
    let end = total.saturating_sub(m.feed_offset);
    let start = end.saturating_sub(height);
    let selected_row = m.cursor.and_then(|c| total.checked_sub(c + 1));
    let mut lines = Vec::with_capacity(end - start);
    let senders = sender_width(
        width,
        s.hits[start..end].iter().filter_map(|h| m.hit_item(*h)),
    );
    for (i, hit) in s.hits.iter().enumerate().take(end).skip(start) {
        let Some(node) = m.nodes.get(hit.node) else {
            continue;
        };
        let Some(RowKind::Item { item, state }) = node.feed.row_numbered(hit.row).map(|r| &r.kind)
        else {
            continue;
        };
        let name = s.spans_nodes().then_some(node.name.as_str());
        let line = item_line_in(item, *state, m, (width, senders), name);
        lines.push(if Some(i) == selected_row {
            line.patch_style(if focused {
                theme::SELECTED
            } else {
                theme::SELECTED_UNFOCUSED
            })
        } else {
            line
        });
    }
    if lines.is_empty() {
        let text = if s
            .compiled
            .as_ref()
            .is_none_or(crate::feed::filter::Filter::is_empty)
        {
            "(type to filter)"
        } else {
            "(nothing matches)"
        };
        lines.push(Line::styled(text, theme::DIM));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The part of `text` that fits `room` columns and holds the cursor (at char `cursor`), with
/// `…` where it is cut, and the cursor's column in it.
fn window(text: &str, cursor: usize, room: usize) -> (String, usize) {
    use unicode_width::UnicodeWidthChar as _;
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let w = |c: &char| c.width().unwrap_or(0);
    let cursor = cursor.min(chars.len());
    if chars.iter().map(w).sum::<usize>() < room {
        let col = chars[..cursor].iter().map(w).sum();
        return (chars.iter().collect(), col);
    }
    // Room for an ellipsis at each end, and the cursor itself.
    let inner = room.saturating_sub(3);
    let (mut start, mut end, mut used) = (cursor, cursor, 0);
    while start > 0 && used + w(&chars[start - 1]) <= inner {
        start -= 1;
        used += w(&chars[start]);
    }
    while end < chars.len() && used + w(&chars[end]) <= inner {
        used += w(&chars[end]);
        end += 1;
    }
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    let col = usize::from(start > 0) + chars[start..cursor].iter().map(w).sum::<usize>();
    (shown, col)
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn the_typed_line_scrolls_to_keep_the_cursor_in_view() {
        assert_eq!(window("short", 5, 20), ("short".to_owned(), 5));
        let long = "reading station:lab-1 unit:C @temp>10 @hum<100";
        // At the end: its end shows.
        let (shown, col) = window(long, long.len(), 20);
        assert!(
            shown.starts_with('…') && shown.ends_with("@hum<100"),
            "{shown}"
        );
        assert_eq!(col, unicode_width::UnicodeWidthStr::width(shown.as_str()));
        // At the start: its start shows, and where the cursor is.
        let (shown, col) = window(long, 0, 20);
        assert!(
            shown.starts_with("reading") && shown.ends_with('…'),
            "{shown}"
        );
        assert_eq!(col, 0);
        // In the middle: both ends cut, the cursor's column inside.
        let (shown, col) = window(long, 25, 20);
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(col > 0 && col < 20, "{col}");
        assert!(unicode_width::UnicodeWidthStr::width(shown.as_str()) <= 20);
    }
}
