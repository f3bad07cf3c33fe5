//! The configuration form: one row per field (label, value; changed ones marked), the
//! selected field's description and type below, and the reason for the last refusal in red
//! beside it. A list field's options open in a picker over it. Like the explorer, it covers
//! the panes and leaves the status bar and the footer (with its keys) visible.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::form::{Edit, FormEditor, Purpose, Row};
use super::super::model::Model;
use super::super::theme;
use super::{fit, fit_pad};
use crate::xmpp::proto::form::{Field, FieldKind};

/// Rows of the box under the list (description, type, error).
const DETAILS: u16 = 5;

/// A field's value as one line.
fn shown(f: &Field) -> String {
    match &f.kind {
        FieldKind::Boolean => match f.bool_value() {
            Some(true) => "[x] yes".into(),
            Some(false) => "[ ] no".into(),
            None => "[ ] (unset)".into(),
        },
        FieldKind::TextPrivate if !f.values.is_empty() => "••••••".into(),
        FieldKind::ListSingle => f
            .values
            .first()
            .map(|v| match f.option_label(v) {
                Some(l) if l != v => format!("{v} ({l})"),
                _ => v.clone(),
            })
            .unwrap_or_default(),
        FieldKind::TextMulti => f.values.join("\n"),
        _ => f.values.join(", "),
    }
}

fn row_text(e: &FormEditor, row: Row) -> (String, String, bool) {
    match row {
        Row::Name => {
            let name = e.node_name();
            let value = if name.is_empty() {
                "(none: the service names it)".to_owned()
            } else {
                name
            };
            ("Node name".to_owned(), value, false)
        }
        Row::Field(i) => {
            let f = &e.form.fields[i];
            let changed = e
                .original
                .fields
                .get(i)
                .is_some_and(|o| o.values != f.values);
            (f.title().to_owned(), shown(f), changed)
        }
    }
}

fn title(e: &FormEditor, m: &Model) -> String {
    let mut t = match &e.purpose {
        Purpose::Configure { node } => format!(" Configure {node} at {} ", m.service),
        Purpose::Create => format!(" New node at {} ", m.service),
    };
    let changed = e.changed().len();
    if changed > 0 {
        let _ = write!(t, "· {changed} changed ");
    }
    if e.sending {
        t.push_str("· sending… ");
    }
    t
}

pub fn draw(frame: &mut Frame, full: Rect, m: &Model) {
    let Some(e) = &m.form else {
        return;
    };
    let area = super::explorer::area(full);
    frame.render_widget(Clear, area);
    let block = super::overlay_block(&title(e, m), area);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // A small terminal keeps most rows for the fields.
    let details = DETAILS
        .min((inner.height / 3).max(2))
        .min(inner.height.saturating_sub(1));
    let [list, info] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(1), Constraint::Length(details)])
        .areas(inner);
    draw_rows(frame, list, e);
    draw_details(frame, info, e);
    if let Some(Edit::Pick(_)) = &e.edit {
        draw_picker(frame, list, e);
    }
}

fn draw_rows(frame: &mut Frame, area: Rect, e: &FormEditor) {
    let width = usize::from(area.width);
    let height = usize::from(area.height).max(1);
    let label_w = (width * 2 / 5).clamp(8, 40);
    let value_w = width.saturating_sub(label_w + 3);
    // Keep the selected row in view.
    let first = e.selected.saturating_sub(height.saturating_sub(1));
    let mut lines = Vec::new();
    let mut cursor = None;
    for (n, row) in e.rows.iter().enumerate().skip(first).take(height) {
        let (label, value, changed) = row_text(e, *row);
        let selected = n == e.selected;
        let mark = if changed { "*" } else { " " };
        let value = match (&e.edit, selected) {
            (Some(Edit::Text(input)), true) => {
                let col = label_w + 3 + input.visual_cursor().min(value_w.saturating_sub(1));
                cursor = Some((col, lines.len()));
                let scroll = input.visual_scroll(value_w.max(1));
                fit(
                    &input.value().chars().skip(scroll).collect::<String>(),
                    value_w,
                )
            }
            _ => fit(&value, value_w),
        };
        let fixed = matches!(row, Row::Field(i) if e.form.fields[*i].kind == FieldKind::Fixed);
        let style = if selected {
            theme::SELECTED
        } else if fixed {
            theme::DIM
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(mark, theme::WARN),
            Span::styled(fit_pad(&label, label_w), style),
            Span::raw("  "),
            Span::styled(
                value,
                if selected {
                    theme::SENDER
                } else {
                    ratatui::style::Style::new()
                },
            ),
        ]));
    }
    if e.rows.is_empty() {
        lines.push(Line::styled("(the form has no fields)", theme::DIM));
    }
    frame.render_widget(Paragraph::new(lines), area);
    if let Some((col, row)) = cursor {
        let x = area
            .x
            .saturating_add(u16::try_from(col).unwrap_or(u16::MAX));
        let y = area
            .y
            .saturating_add(u16::try_from(row).unwrap_or(u16::MAX));
        frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), y));
    }
}

fn draw_details(frame: &mut Frame, area: Rect, e: &FormEditor) {
    if area.height == 0 {
        return;
    }
    let mut lines = Vec::new();
    if let Some(err) = &e.error {
        lines.push(Line::styled(err.clone(), theme::ERROR));
    }
    match e.selected_row() {
        Some(Row::Name) => lines.push(Line::styled(
            "The new node's name; leave it empty for the service to choose one (an instant node).",
            theme::DIM,
        )),
        Some(Row::Field(i)) => {
            let f = &e.form.fields[i];
            let mut about = format!(
                "{} [{}]",
                f.var.as_deref().unwrap_or("(text)"),
                f.kind.as_str()
            );
            if f.required {
                about.push_str(" · required");
            }
            if !f.options.is_empty() {
                let _ = write!(about, " · {} options", f.options.len());
            }
            if let Some(v) = &f.validate {
                let _ = write!(about, " · {}", v.describe());
            }
            if matches!(f.kind, FieldKind::JidMulti) {
                about.push_str(" · JIDs, separated by commas");
            }
            if matches!(f.kind, FieldKind::TextMulti) {
                about.push_str(" · several lines (Alt-Enter)");
            }
            lines.push(Line::styled(about, theme::DIM));
            if let Some(d) = &f.desc {
                lines.push(Line::raw(d.clone()));
            }
        }
        None => {}
    }
    if e.form.cut {
        lines.push(Line::styled(
            "The service's form was too big: only its first fields are shown and sent.",
            theme::WARN,
        ));
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(theme::DIM);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
        area,
    );
}

fn draw_picker(frame: &mut Frame, list: Rect, editor: &FormEditor) {
    let (Some(Edit::Pick(picker)), Some(field)) = (&editor.edit, editor.selected_field()) else {
        return;
    };
    let matches = editor.matches();
    let box_w = list.width.saturating_sub(4).clamp(10.min(list.width), 70);
    let box_h = list.height.clamp(3.min(list.height), 18);
    let area = Rect::new(
        list.x + (list.width - box_w) / 2,
        list.y + (list.height - box_h) / 2,
        box_w,
        box_h,
    );
    let (p, f) = (picker, field);
    let title = format!(
        " {} · {} of {} · type to filter ",
        f.title(),
        matches.len(),
        f.options.len()
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(Span::styled(
            fit(&title, usize::from(box_w.saturating_sub(2))),
            theme::title(true),
        ));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let height = usize::from(inner.height.saturating_sub(1)).max(1);
    let mut lines = vec![Line::from(vec![
        Span::styled("filter: ", theme::DIM),
        Span::raw(fit(p.filter.value(), width.saturating_sub(8))),
    ])];
    let first = p.cursor.saturating_sub(height.saturating_sub(1));
    for (n, &o) in matches.iter().enumerate().skip(first).take(height) {
        let opt = &f.options[o];
        let check = if p.multi {
            if p.chosen.contains(&opt.value) {
                "[x] "
            } else {
                "[ ] "
            }
        } else if f.values.first() == Some(&opt.value) {
            "● "
        } else {
            "  "
        };
        let text = match &opt.label {
            Some(l) if l != &opt.value => format!("{check}{} — {l}", opt.value),
            _ => format!("{check}{}", opt.value),
        };
        let style = if n == p.cursor {
            theme::SELECTED
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::styled(fit_pad(&text, width), style));
    }
    if matches.is_empty() {
        lines.push(Line::styled("(no option matches)", theme::DIM));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    let col = u16::try_from(8 + p.filter.visual_cursor()).unwrap_or(u16::MAX);
    frame.set_cursor_position(Position::new(
        inner
            .x
            .saturating_add(col)
            .min(inner.right().saturating_sub(1)),
        inner.y,
    ));
}
