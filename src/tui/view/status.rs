//! The status bar (connection, auto-publish, last error) and the footer of key hints.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::keymap;
use super::super::model::Model;
use super::super::theme;
use crate::xmpp::ConnState;

pub fn draw_status(frame: &mut Frame, area: Rect, m: &Model) {
    let conn_style = match m.conn {
        ConnState::Online { .. } => theme::OK,
        ConnState::Failed { .. } | ConnState::Closed => theme::ERROR,
        _ => theme::WARN,
    };
    let conn = match &m.conn {
        // The error of a failed connection is shown once, in the error slot.
        ConnState::Failed { .. } => "connection failed".to_owned(),
        other => other.to_string(),
    };
    let mut spans = vec![Span::styled(format!("● {conn}"), conn_style)];
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
    if m.dropped > 0 {
        spans.push(Span::styled(
            format!(" │ dropped {}", m.dropped),
            theme::WARN,
        ));
    }
    if let Some(e) = &m.last_error {
        spans.push(Span::styled(format!(" │ {e}"), theme::ERROR));
    } else if let Some(n) = &m.notice {
        spans.push(Span::styled(format!(" │ {n}"), theme::DIM));
    }
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
