//! The questions before something that loses data: quitting with text not yet published,
//! purging or deleting a node (named, with how many items it holds), retracting an item.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::model::Model;
use super::super::owner::Confirm;
use super::super::theme;
use crate::sanitize;

fn quit_text(m: &Model) -> String {
    let n = m.waiting();
    let queued = m.unconfirmed.values().filter(|u| u.queued).count();
    let mut parts = Vec::new();
    if n > 0 && !m.net_ended && m.unsent == crate::tui::model::Unsent::Lost {
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
    if m.form.as_ref().is_some_and(|f| !f.changed().is_empty()) {
        parts.push("your changes in the configuration form".to_owned());
    }
    let mut text = if parts.is_empty() {
        String::new()
    } else {
        format!("Quitting now loses {}. ", parts.join(", and "))
    };
    match m.unsent_to_keep() {
        0 => {}
        1 => text.push_str(
            "1 item is not confirmed by the service yet: y keeps it for the next start (sent \
             then, with the same id), d discards it.",
        ),
        k => {
            let _ = write!(
                text,
                "{k} items are not confirmed by the service yet: y keeps them for the next start \
                 (sent then, with the same ids), d discards them."
            );
        }
    }
    text.trim_end().to_owned()
}

/// The answers when unsent items can be kept: keep them, discard them, or stay.
fn keep_or_discard(count: usize) -> Line<'static> {
    let them = if count == 1 { "it" } else { "them" };
    Line::from(vec![
        Span::styled("y", theme::KEY),
        Span::raw(format!(" quit, keep {them} · ")),
        Span::styled("d", theme::KEY),
        Span::raw(format!(" quit, discard {them} · ")),
        Span::styled("n", theme::KEY),
        Span::raw(" / "),
        Span::styled("Esc", theme::KEY),
        Span::raw(" stay"),
    ])
}

fn answer(yes: &str, no: &str, typed: bool) -> Line<'static> {
    let (y, n) = if typed { ("Enter", "Esc") } else { ("y", "n") };
    let mut spans = vec![
        Span::styled(y, theme::KEY),
        Span::raw(format!(" {yes} · ")),
        Span::styled(n, theme::KEY),
    ];
    if !typed {
        spans.push(Span::raw(" / "));
        spans.push(Span::styled("Esc", theme::KEY));
    }
    spans.push(Span::raw(format!(" {no}")));
    Line::from(spans)
}

/// The question before taking a JID's affiliation or subscription away.
fn change_question(model: &Model, jid: &str, to: &str) -> String {
    let node = model
        .panel
        .as_ref()
        .map(|p| p.node.clone())
        .unwrap_or_default();
    let subscriptions = model
        .panel
        .as_ref()
        .is_some_and(|p| p.kind == super::super::owner::PanelKind::Subscriptions);
    let own = model
        .account_bare()
        .is_some_and(|me| jid.split('/').next() == Some(me.as_str()));
    let (jid, node) = (sanitize::display(jid), sanitize::display(&node));
    if own && !subscriptions {
        return format!(
            "Change your own affiliation with '{node}' to {to}? You may lose the right to change it back."
        );
    }
    match (to, subscriptions) {
        (_, true) => format!("Remove (or deny) {jid}'s subscription to '{node}'?"),
        ("outcast", _) => format!(
            "Make {jid} an outcast of '{node}'? Its subscriptions end, and it may do nothing there."
        ),
        _ => format!("Remove {jid}'s affiliation with '{node}'?"),
    }
}

/// The title, the lines, and the line typed in (the third), if one is.
fn question(model: &Model) -> (&'static str, Vec<Line<'static>>, Option<&tui_input::Input>) {
    let service = model.service.to_string();
    match &model.confirm {
        Some(Confirm::Purge { node, count }) => (
            " Purge? ",
            vec![
                Line::raw(format!(
                    "Delete every item of '{}' at {service} ({count})? Subscribers are told.",
                    sanitize::display(node)
                )),
                Line::raw(""),
                answer("purge", "keep them", false),
            ],
            None,
        ),
        Some(Confirm::Delete {
            node,
            count,
            redirect,
        }) => (
            " Delete the node? ",
            vec![
                Line::raw(format!(
                    "Delete '{}' at {service} ({count}) with its items and subscriptions?",
                    sanitize::display(node)
                )),
                Line::raw("Where its content went, for its subscribers (optional, an xmpp: URI):"),
                Line::styled(format!("> {}", redirect.value()), theme::SENDER),
                answer("delete", "keep it", true),
            ],
            Some(redirect),
        ),
        Some(Confirm::Retract { node, id }) => (
            " Retract? ",
            vec![
                Line::raw(format!(
                    "Retract the item {} from '{}'? Subscribers are told.",
                    sanitize::display(id),
                    sanitize::display(node)
                )),
                Line::raw(""),
                answer("retract", "keep it", false),
            ],
            None,
        ),
        Some(Confirm::Change { jid, to, .. }) => (
            " Sure? ",
            vec![
                Line::raw(change_question(model, jid, to)),
                Line::raw(""),
                answer("yes", "no", false),
            ],
            None,
        ),
        Some(Confirm::Export(e)) => export_question(e),
        Some(Confirm::Quit) | None => (
            " Quit? ",
            vec![
                Line::raw(quit_text(model)),
                Line::raw(""),
                if model.unsent_to_keep() > 0 {
                    keep_or_discard(model.unsent_to_keep())
                } else {
                    answer("quit anyway", "stay", false)
                },
            ],
            None,
        ),
    }
}

pub fn draw(frame: &mut Frame, area: Rect, model: &Model) {
    let (title, lines, typed) = question(model);
    let width = area.width.saturating_sub(2).min(64);
    let needed = Paragraph::new(lines.clone())
        .wrap(Wrap { trim: true })
        .line_count(width.saturating_sub(2));
    let height = area
        .height
        .min(u16::try_from(needed + 2).unwrap_or(u16::MAX));
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(title, theme::title(true)));
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    // Where the typed line (the third) ends up once the two before it wrap: for the cursor.
    let before =
        Paragraph::new(lines.iter().take(2).cloned().collect::<Vec<_>>()).wrap(Wrap { trim: true });
    let rows_before = u16::try_from(before.line_count(inner.width)).unwrap_or(0);
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: true }).block(block);
    frame.render_widget(paragraph, popup);
    if let Some(input) = typed {
        let col = u16::try_from(input.visual_cursor() + 2).unwrap_or(u16::MAX);
        let x = inner
            .x
            .saturating_add(col)
            .min(inner.right().saturating_sub(1));
        let y = inner
            .y
            .saturating_add(rows_before)
            .min(inner.bottom().saturating_sub(1));
        frame.set_cursor_position(Position::new(x, y));
    }
}

/// Where and how to write the items (`w`).
fn export_question(
    e: &super::super::export::Export,
) -> (&'static str, Vec<Line<'static>>, Option<&tui_input::Input>) {
    let formats: Vec<String> = [
        crate::feed::export::Format::Ndjson,
        crate::feed::export::Format::Csv,
        crate::feed::export::Format::Xml,
    ]
    .iter()
    .map(|f| {
        if *f == e.format {
            format!("[{}]", f.extension())
        } else {
            f.extension().to_owned()
        }
    })
    .collect();
    (
        " Write to a file ",
        vec![
            Line::raw(format!(
                "Write {} of {} to a new file{}.",
                super::super::update::plural(e.count, "item"),
                sanitize::display(&e.label),
                if e.partial > 0 {
                    format!(" ({} only partly kept here will be left out)", e.partial)
                } else {
                    String::new()
                }
            )),
            Line::raw(format!("Format (Tab): {}", formats.join(" "))),
            Line::styled(format!("> {}", e.path.value()), theme::SENDER),
            answer("write", "cancel", true),
        ],
        Some(&e.path),
    )
}
