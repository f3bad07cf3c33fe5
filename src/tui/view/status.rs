//! The status bar (connection, auto-publish, what waits or failed, the outcome of the last
//! action, recent news, dropped stanzas) and the footer of key hints.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::keymap;
use super::super::model::{Level, LogEntry, Model};
use super::super::theme;
use crate::xmpp::ConnState;

/// Longest retry error shown in the status bar (the message log has it whole).
const MAX_CONN_ERROR_CHARS: usize = 60;

/// The connection, short enough to leave room for the rest of the bar. A final failure says
/// why, whole, until the user does something; then the outcome of that comes first and the
/// reason is cut (the message log keeps it whole).
fn conn_label(conn: &ConnState, short: bool, show_server: bool) -> String {
    match conn {
        ConnState::Failed { error } if short => {
            super::fit(&format!("connection failed: {error}"), 40)
        }
        ConnState::Retrying {
            error, retry_in, ..
        } => {
            let mut e: String = error.chars().take(MAX_CONN_ERROR_CHARS).collect();
            if error.chars().count() > MAX_CONN_ERROR_CHARS {
                e.push('…');
            }
            format!("offline ({e}), retry in {} s", retry_in.as_secs().max(1))
        }
        // Said once, here, with its reason (the message log keeps it too).
        ConnState::Failed { error } => format!("connection failed: {error}"),
        // The bare JID: the resource (new each run) is in the message log.
        // With a choice of servers, which one (with one, the user named it).
        ConnState::Online { jid, server, .. } => {
            let bare = jid.split('/').next().unwrap_or(jid);
            match server {
                Some(server) if show_server => format!("online as {bare} on {server}"),
                _ => format!("online as {bare}"),
            }
        }
        ConnState::Connecting { attempt, server } if !show_server => ConnState::Connecting {
            attempt: *attempt,
            server: None,
        }
        .to_string(),
        other => other.to_string(),
    }
}

fn entry_span(e: &LogEntry) -> Span<'static> {
    let text: String = e
        .text
        .chars()
        .map(|c| if c == '\n' { '⏎' } else { c })
        .collect();
    let style = match e.level {
        Level::Info => theme::DIM,
        Level::Error => theme::ERROR,
    };
    Span::styled(format!(" │ {text}"), style)
}

pub fn draw_status(frame: &mut Frame, area: Rect, m: &Model) {
    let conn_style = match m.conn {
        ConnState::Online { .. } => theme::OK,
        ConnState::Failed { .. } | ConnState::Closed => theme::ERROR,
        _ => theme::WARN,
    };
    let newer_outcome = m.outcome.as_ref().is_some_and(|o| o.at >= m.conn_since);
    let mut spans = vec![Span::styled(
        format!(
            "● {}",
            conn_label(&m.conn, newer_outcome, m.servers_given != 1)
        ),
        conn_style,
    )];
    if m.quit {
        spans.push(Span::styled(" │ quitting: unsubscribing…", theme::WARN));
    }
    if let Some(s) = m.search.as_ref().filter(|s| s.active()) {
        spans.push(Span::styled(format!(" │ {}", s.count_text()), theme::KEY));
    }
    spans.push(Span::raw(if m.auto_publish {
        format!(
            " │ auto {}s → {}",
            m.interval.as_secs_f64(),
            m.auto_node.as_deref().unwrap_or("-")
        )
    } else {
        " │ auto off".to_owned()
    }));
    // What matters most comes first: the line is cut at the terminal's width.
    let waiting = m.waiting();
    if waiting > 0 {
        let text = if m.is_online() {
            format!(" │ {waiting} publishing")
        } else {
            format!(" │ {waiting} waiting to publish")
        };
        spans.push(Span::styled(text, theme::WARN));
    }
    if !m.failed.is_empty() {
        spans.push(Span::styled(
            format!(" │ {} failed (P puts back)", m.failed.len()),
            theme::ERROR,
        ));
    }
    if let Some(o) = &m.outcome {
        spans.push(entry_span(o));
    }
    if let Some(r) = m.recent()
        && m.outcome.as_ref().is_none_or(|o| o.at <= r.at)
    {
        spans.push(entry_span(r));
    }
    if m.dropped > 0 {
        spans.push(Span::styled(
            format!(" │ dropped {}", m.dropped),
            theme::WARN,
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn draw_footer(frame: &mut Frame, area: Rect, m: &Model) {
    let mut spans = Vec::new();
    for (i, (key, hint)) in keymap::hints(m).into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", theme::DIM));
        }
        spans.push(Span::styled(key, theme::KEY));
        spans.push(Span::raw(format!(" {hint}")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
