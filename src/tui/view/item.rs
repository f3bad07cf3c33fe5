//! One item: a header (sender, times, format), the tabs, and the current tab's lines (built by
//! [`crate::tui::itemview`], already wrapped and safe to show).

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::super::itemview::{self, Kind, Tab};
use super::super::model::Model;
use super::super::theme;
use super::fit;
use crate::feed::{FeedItem, ItemFormat};

fn format_name(f: ItemFormat) -> &'static str {
    match f {
        ItemFormat::Native => "pubsub-tui item",
        ItemFormat::Wokkel => "Wokkel item",
        ItemFormat::Atom => "Atom entry",
        ItemFormat::Json => "JSON (XEP-0335)",
        ItemFormat::Unknown => "XML payload",
    }
}

/// The two header lines.
fn header(item: &FeedItem, m: &Model) -> [String; 2] {
    let mut who = if item.sender().is_none() && item.publisher().is_none() {
        "sender unknown: neither the item nor the service names one".to_owned()
    } else {
        format!("from {}", item.shown_sender())
    };
    if item.is_forged() {
        who.push_str(" (the service names another publisher than the item claims)");
    }
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&m.offset)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    // What was left out first: it is what a cut line would hide.
    let mut when = String::new();
    if let Some(cut) = item.tree().cut() {
        let _ = write!(when, "partly kept ({cut}) · ");
    }
    if item.tree().removed() > 0 {
        let n = item.tree().removed();
        let _ = write!(
            when,
            "{n} hidden character{} removed (controls, bidi) · ",
            if n == 1 { "" } else { "s" }
        );
    }
    let _ = match (item.timestamp(), &item.time()) {
        (Some(t), _) => write!(when, "time {}", local(t)),
        (None, Some(raw)) => write!(when, "time {raw}"),
        (None, None) => write!(when, "carries no time"),
    };
    if let Some(r) = item.received {
        let _ = write!(when, " · received {}", local(r));
    }
    let _ = write!(when, " · {}", format_name(item.format));
    [who, when]
}

pub fn draw(frame: &mut Frame, full: Rect, m: &Model) {
    let Some(v) = &m.item_view else {
        return;
    };
    let area = super::explorer::area(full);
    frame.render_widget(Clear, area);
    let title = format!(
        " Item {} · {}{} ",
        v.item.id().unwrap_or("(no id)"),
        v.item.node(),
        if v.retracted {
            " · retracted since it was opened"
        } else {
            ""
        }
    );
    let block = super::overlay_block(&title, area);
    let (width, height) = itemview::body_size(m.size);
    let mut lines: Vec<Line> = header(&v.item, m)
        .iter()
        .map(|h| Line::styled(fit(h, width), theme::DIM))
        .collect();
    let mut tabs = Vec::new();
    for t in Tab::ALL {
        tabs.push(if t == v.tab {
            Span::styled(format!("[{}]", t.name()), theme::SELECTED)
        } else {
            Span::raw(format!(" {} ", t.name()))
        });
        tabs.push(Span::raw(" "));
    }
    tabs.push(Span::styled("(Tab)", theme::DIM));
    lines.push(Line::from(tabs));
    let body = v.lines(width);
    let cursor = (v.tab == Tab::Tree).then_some(v.cursor);
    for l in body.iter().skip(v.scroll).take(height) {
        let selected = cursor.is_some() && l.row == cursor;
        let line = match l.kind {
            Kind::Element => Line::styled(l.text.clone(), theme::SENDER),
            Kind::Text => Line::raw(l.text.clone()),
            Kind::Note => Line::styled(l.text.clone(), theme::DIM),
            Kind::Labelled { label_width } => {
                let split = l
                    .text
                    .char_indices()
                    .nth(label_width)
                    .map_or(l.text.len(), |(i, _)| i);
                Line::from(vec![
                    Span::styled(
                        l.text[..split].to_owned(),
                        theme::TIME.add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(l.text[split..].to_owned()),
                ])
            }
        };
        lines.push(if selected {
            line.patch_style(theme::SELECTED)
        } else {
            line
        });
    }
    let more = body.len().saturating_sub(v.scroll + height);
    let block = if more > 0 {
        block.title_bottom(Span::styled(format!(" {more} more lines ↓ "), theme::DIM))
    } else {
        block
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
