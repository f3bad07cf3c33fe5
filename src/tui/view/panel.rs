//! A node's affiliations or subscriptions, as its owner sees them: one JID a row with its
//! affiliation or subscription state; the keys to change them are in the footer.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::super::model::Model;
use super::super::owner::PanelKind;
use super::super::theme;
use super::{fit, fit_pad};

pub fn draw(frame: &mut Frame, full: Rect, m: &Model) {
    let Some(p) = &m.panel else {
        return;
    };
    let area = super::explorer::area(full);
    frame.render_widget(Clear, area);
    let what = match p.kind {
        PanelKind::Affiliations => "Affiliations",
        PanelKind::Subscriptions => "Subscriptions",
    };
    let mut title = format!(" {what} of {} at {} ", p.node, m.service);
    if p.loading {
        title.push_str("· asking… ");
    }
    let block = super::overlay_block(&title, area);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let mut lines = Vec::new();
    if let Some(e) = &p.error {
        lines.push(Line::styled(e.clone(), theme::ERROR));
    }
    let mut cursor = None;
    if let Some(input) = &p.adding {
        let prompt = match p.kind {
            PanelKind::Affiliations => "JID and affiliation (member if left out): ",
            PanelKind::Subscriptions => "JID to subscribe: ",
        };
        cursor = Some((prompt.chars().count() + input.visual_cursor(), lines.len()));
        lines.push(Line::from(vec![
            Span::styled(prompt, theme::DIM),
            Span::raw(input.value().to_owned()),
        ]));
    }
    let reserved = lines.len();
    let height = usize::from(inner.height).saturating_sub(reserved).max(1);
    let first = p.selected.saturating_sub(height.saturating_sub(1));
    let jid_w = (width * 3 / 5).max(10);
    for (n, r) in p.rows.iter().enumerate().skip(first).take(height) {
        let style = if n == p.selected {
            theme::SELECTED
        } else {
            ratatui::style::Style::new()
        };
        let state_style = match r.state.as_str() {
            "owner" | "subscribed" => theme::OK,
            "outcast" | "none" => theme::ERROR,
            "pending" | "unconfigured" => theme::WARN,
            _ => theme::SENDER,
        };
        let mut state = r.state.clone();
        if let Some(id) = &r.subid {
            let _ = write!(state, "  (subid {id})");
        }
        lines.push(Line::from(vec![
            Span::styled(fit_pad(&r.jid, jid_w), style),
            Span::raw(" "),
            Span::styled(fit(&state, width.saturating_sub(jid_w + 1)), state_style),
        ]));
    }
    if p.rows.is_empty() && !p.loading {
        lines.push(Line::styled("(none listed; + adds one)", theme::DIM));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    if let Some((col, row)) = cursor {
        let x = inner
            .x
            .saturating_add(u16::try_from(col).unwrap_or(u16::MAX));
        let y = inner
            .y
            .saturating_add(u16::try_from(row).unwrap_or(u16::MAX));
        frame.set_cursor_position(Position::new(x.min(inner.right().saturating_sub(1)), y));
    }
}
