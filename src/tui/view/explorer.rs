//! The service explorer (`e`): the service's nodes as a tree with their titles and types,
//! which of them are followed, the selected node's meta-data, and the capability view.
//!
//! It covers the panes and leaves the status bar and the footer (with its keys) visible.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::super::explorer::{Entry, Explorer, Meta, ServiceInfo, Typing, View};
use super::super::model::Model;
use super::super::theme;
use super::{fit, fit_pad};
use crate::xmpp::proto::SubState;
use crate::xmpp::proto::disco::{self, Advertised};

/// Rows of the details box under the list.
const DETAILS: u16 = 7;

/// The area the explorer takes: everything above the status bar and the footer.
pub fn area(full: Rect) -> Rect {
    Rect::new(
        full.x,
        full.y,
        full.width,
        full.height.saturating_sub(2).max(1.min(full.height)),
    )
}

/// Rows of the node list at this terminal size (for paging).
pub fn list_rows(size: (u16, u16)) -> usize {
    usize::from(size.1.saturating_sub(2 + 2 + 1 + DETAILS))
}

/// How a followed node's state shows in the list: a mark and a word.
fn follow_mark(m: &Model, node: &str) -> (&'static str, ratatui::style::Style) {
    let Some(n) = m.nodes.iter().find(|n| n.name == node) else {
        return ("  ", theme::DIM);
    };
    match &n.state {
        SubState::Subscribed => ("● ", theme::OK),
        SubState::Subscribing => ("◌ ", theme::WARN),
        SubState::Pending => ("◐ ", theme::WARN),
        SubState::Unconfigured => ("◑ ", theme::WARN),
        SubState::Retrying { .. } => ("↻ ", theme::WARN),
        SubState::Failed(_) => ("✗ ", theme::ERROR),
    }
}

fn title_line(x: &Explorer, m: &Model) -> String {
    let (listed, described) = x.counts();
    let mut t = format!(" Explore {} · {listed} nodes", m.service);
    if !x.filter.value().trim().is_empty() {
        let n = x.visible().len();
        let _ = write!(t, " ({n} {})", if n == 1 { "match" } else { "matches" });
    }
    if described < listed {
        let _ = write!(t, ", {described} described");
    }
    if !x.listing.is_empty() {
        t.push_str(" · listing…");
    }
    t.push(' ');
    t
}

pub fn draw(frame: &mut Frame, full: Rect, m: &Model) {
    let area = area(full);
    frame.render_widget(Clear, area);
    let x = &m.explorer;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(title_line(x, m), theme::title(true)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    match x.view {
        View::Nodes => draw_nodes(frame, inner, m),
        View::Capabilities { scroll } => draw_capabilities(frame, inner, m, scroll),
    }
}

fn draw_nodes(frame: &mut Frame, inner: Rect, m: &Model) {
    let x = &m.explorer;
    let details = if inner.height > DETAILS + 4 {
        DETAILS
    } else {
        0
    };
    let [top, list, bottom] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(details),
        ])
        .areas(inner);
    let width = usize::from(inner.width);

    // The line being typed, or the filter, or what to type.
    let (prompt, text, typing) = match &x.typing {
        Some(Typing::AddNode(input)) => ("follow the node named: ", input.value(), true),
        Some(Typing::Filter) => ("filter: ", x.filter.value(), true),
        None if !x.filter.value().is_empty() => ("filter: ", x.filter.value(), false),
        None => ("", "", false),
    };
    let top_line = if prompt.is_empty() {
        Line::styled(
            fit(
                "/ filters · + follows a node by name · c shows what the service can do",
                width,
            ),
            theme::DIM,
        )
    } else {
        Line::from(vec![
            Span::styled(prompt, theme::KEY),
            Span::raw(fit(text, width.saturating_sub(prompt.chars().count() + 1))),
        ])
    };
    frame.render_widget(Paragraph::new(top_line), top);
    if typing {
        let used = prompt.chars().count() + unicode_width::UnicodeWidthStr::width(text);
        let col = u16::try_from(used.min(width.saturating_sub(1))).unwrap_or(0);
        frame.set_cursor_position(Position::new(top.x + col, top.y));
    }

    let rows = x.visible();
    let mut lines: Vec<Line> = Vec::new();
    if let Some(err) = &x.error {
        lines.push(Line::styled(fit(err, width), theme::ERROR));
    } else if rows.is_empty() {
        let text = if !x.listing.is_empty() {
            "listing the service's nodes…"
        } else if !x.filter.value().is_empty() {
            "no node matches the filter (Esc clears it)"
        } else if x.opened {
            "the service lists no nodes; + follows one by its name"
        } else {
            "not listed yet: R lists the service's nodes"
        };
        lines.push(Line::styled(text, theme::DIM));
    }
    let height = usize::from(list.height).saturating_sub(usize::from(x.cut.contains(&None)));
    let selected = x.selected.min(rows.len().saturating_sub(1));
    let first = (selected + 1).saturating_sub(height.max(1));
    for (k, &i) in rows.iter().enumerate().skip(first).take(height) {
        lines.push(entry_line(&x.entries[i], m, width, k == selected));
    }
    if x.cut.contains(&None) && x.filter.value().is_empty() {
        lines.push(Line::styled(
            fit(
                &format!(
                    "⚠ the service stopped its list at {} nodes; there may be more (+ follows one by name)",
                    disco::CUT_AT
                ),
                width,
            ),
            theme::WARN,
        ));
    }
    frame.render_widget(Paragraph::new(lines), list);
    if details > 0 {
        draw_details(frame, bottom, m);
    }
}

fn entry_line(e: &Entry, m: &Model, width: usize, selected: bool) -> Line<'static> {
    let (mark, mark_style) = follow_mark(m, &e.node);
    let tree = if e.is_collection() || e.expanded {
        if e.expanded { "▾ " } else { "▸ " }
    } else {
        "  "
    };
    let indent = "  ".repeat(e.depth.min(8));
    let name_width = (width / 3).max(12);
    let name = fit_pad(&e.node, name_width);
    let title = e.title().unwrap_or("");
    let kind = match &e.meta {
        Meta::Known(info) => info
            .meta
            .as_ref()
            .and_then(|m| m.payload_type.clone())
            .unwrap_or_default(),
        Meta::Loading => "…".to_owned(),
        Meta::Refused(_) => "(no meta-data)".to_owned(),
        Meta::Unknown => String::new(),
    };
    let rest = width.saturating_sub(indent.len() + 2 + 2 + name_width + 1);
    let kind_width = (rest / 3).min(40);
    let title_width = rest.saturating_sub(kind_width + 1);
    let style = if selected {
        theme::SELECTED
    } else {
        ratatui::style::Style::new()
    };
    Line::from(vec![
        Span::raw(format!("{indent}{tree}")),
        Span::styled(mark, mark_style),
        Span::styled(name, style),
        Span::raw(" "),
        Span::raw(fit_pad(title, title_width)),
        Span::raw(" "),
        Span::styled(fit(&kind, kind_width), theme::DIM),
    ])
}

fn draw_details(frame: &mut Frame, area: Rect, m: &Model) {
    let width = usize::from(area.width);
    let mut lines = vec![Line::styled("─".repeat(width), theme::DIM)];
    let Some(e) = m.explorer.selected_entry() else {
        frame.render_widget(Paragraph::new(lines), area);
        return;
    };
    let followed = match m.nodes.iter().find(|n| n.name == e.node) {
        Some(n) => format!("followed ({})", n.state),
        None => "not followed (s subscribes)".to_owned(),
    };
    lines.push(Line::from(vec![
        Span::styled(fit(&e.node, width / 2), theme::title(false)),
        Span::raw("  "),
        Span::styled(followed, theme::DIM),
    ]));
    match &e.meta {
        Meta::Known(info) => {
            let kind = if info.is_collection() {
                "collection"
            } else {
                "leaf"
            };
            let mut fields = vec![("kind", kind.to_owned())];
            if let Some(meta) = &info.meta {
                fields.extend(meta.fields());
            } else {
                fields.push(("meta-data", "the service gives none".to_owned()));
            }
            for (label, value) in fields.into_iter().take(usize::from(area.height) - 2) {
                lines.push(Line::from(vec![
                    Span::styled(format!("{label}: "), theme::DIM),
                    Span::raw(fit(&value, width.saturating_sub(label.len() + 2))),
                ]));
            }
        }
        Meta::Refused(why) => lines.push(Line::styled(fit(why, width), theme::ERROR)),
        Meta::Loading | Meta::Unknown => {
            lines.push(Line::styled("asking the service…", theme::DIM));
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// The capability view's text.
pub fn capability_lines(m: &Model) -> Vec<Line<'static>> {
    let info = match &m.explorer.service {
        ServiceInfo::Known(info) => info,
        ServiceInfo::Refused(why) => {
            return vec![Line::styled(
                format!("the service would not say: {why}"),
                theme::ERROR,
            )];
        }
        ServiceInfo::Loading | ServiceInfo::Unknown => {
            return vec![Line::styled("asking the service…", theme::DIM)];
        }
    };
    let mut lines = Vec::new();
    for i in &info.identities {
        lines.push(Line::from(vec![
            Span::styled("identity ", theme::DIM),
            Span::raw(format!("{}/{}", i.category, i.kind)),
            Span::styled(
                i.name
                    .as_deref()
                    .map(|n| format!("  {n}"))
                    .unwrap_or_default(),
                theme::DIM,
            ),
        ]));
    }
    let features = disco::pubsub_features(&info.features);
    let yes = features
        .iter()
        .filter(|(_, a)| *a == Advertised::Yes)
        .count();
    lines.push(Line::styled(
        format!(
            "XEP-0060 features: {yes} of {} advertised",
            disco::XEP_0060_FEATURES.len()
        ),
        theme::title(false),
    ));
    for ((name, state), (_, what)) in features.iter().zip(disco::XEP_0060_FEATURES) {
        let (mark, style) = match state {
            Advertised::Yes => ("✓ ", theme::OK),
            Advertised::No => ("· ", theme::DIM),
        };
        lines.push(Line::from(vec![
            Span::styled(mark, style),
            Span::styled(format!("{name:<27}"), style),
            Span::styled(format!("{what} ({})", state.name()), theme::DIM),
        ]));
    }
    let unknown = disco::unknown_pubsub_features(&info.features);
    if !unknown.is_empty() {
        lines.push(Line::styled(
            format!(
                "advertised, not in XEP-0060 (unknown here): {}",
                unknown.len()
            ),
            theme::title(false),
        ));
        for f in unknown {
            lines.push(Line::from(vec![
                Span::styled("? ", theme::WARN),
                Span::raw(f.to_owned()),
            ]));
        }
    }
    let others = disco::other_features(&info.features);
    if !others.is_empty() {
        lines.push(Line::styled(
            format!("other features: {}", others.len()),
            theme::title(false),
        ));
        for f in others {
            lines.push(Line::raw(format!("  {f}")));
        }
    }
    lines
}

/// How far the capability view scrolls at the model's terminal size.
pub fn capability_max_scroll(m: &Model) -> u16 {
    let inner = area(Rect::new(0, 0, m.size.0, m.size.1))
        .height
        .saturating_sub(2);
    u16::try_from(capability_lines(m).len())
        .unwrap_or(u16::MAX)
        .saturating_sub(inner)
}

fn draw_capabilities(frame: &mut Frame, inner: Rect, m: &Model, scroll: u16) {
    let lines = capability_lines(m);
    let max = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_sub(inner.height);
    let width = usize::from(inner.width);
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| {
            // One row each: cut what does not fit.
            let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            if unicode_width::UnicodeWidthStr::width(text.as_str()) > width {
                Line::raw(fit(&text, width))
            } else {
                l
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
}
