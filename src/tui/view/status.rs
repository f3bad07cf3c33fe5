//! The status bar (connection, auto-publish, last error) and the footer of key hints.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::keymap;
use super::super::model::Model;
use super::super::theme;
use crate::xmpp::ConnState;

/// Longest connection error shown in the status bar (the log has it whole).
const MAX_CONN_ERROR_CHARS: usize = 30;

/// The connection, short enough to leave room for the rest of the bar.
fn conn_label(conn: &ConnState) -> String {
    match conn {
        // The error of a failed connection is shown once, in the error slot.
        ConnState::Failed { .. } => "connection failed".to_owned(),
        ConnState::Retrying {
            error, retry_in, ..
        } => {
            let mut e: String = error.chars().take(MAX_CONN_ERROR_CHARS).collect();
            if error.chars().count() > MAX_CONN_ERROR_CHARS {
                e.push('…');
            }
            format!("offline ({e}), retry in {} s", retry_in.as_secs().max(1))
        }
        other => other.to_string(),
    }
}

pub fn draw_status(frame: &mut Frame, area: Rect, m: &Model) {
    let conn_style = match m.conn {
        ConnState::Online { .. } => theme::OK,
        ConnState::Failed { .. } | ConnState::Closed => theme::ERROR,
        _ => theme::WARN,
    };
    let mut spans = vec![Span::styled(
        format!("● {}", conn_label(&m.conn)),
        conn_style,
    )];
    // What matters most comes first: the line is cut at the terminal's width.
    if !m.waiting.is_empty() {
        spans.push(Span::styled(
            format!(" │ {} waiting to publish", m.waiting.len()),
            theme::WARN,
        ));
    }
    if let Some(e) = &m.last_error {
        spans.push(Span::styled(format!(" │ {e}"), theme::ERROR));
    } else if let Some(n) = &m.notice {
        spans.push(Span::styled(format!(" │ {n}"), theme::DIM));
    }
    if m.dropped > 0 {
        spans.push(Span::styled(
            format!(" │ dropped {}", m.dropped),
            theme::WARN,
        ));
    }
    let auto = if m.auto_publish {
        format!(
            " │ auto on {}s → {}",
            m.interval.as_secs_f64(),
            m.auto_node.as_deref().unwrap_or("-")
        )
    } else {
        " │ auto off".to_owned()
    };
    spans.push(Span::raw(auto));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn draw_footer(frame: &mut Frame, area: Rect, m: &Model) {
    let mut spans = Vec::new();
    for (i, (key, hint)) in keymap::hints(m.focus).into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", theme::DIM));
        }
        spans.push(Span::styled(key, theme::KEY));
        spans.push(Span::raw(format!(" {hint}")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
