//! `s`: each followed node's live figures: the rate now and as a sparkline over the last ten
//! minutes, the time since the last item, gaps and resyncs, and the latency where the items'
//! own times allow it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Sparkline};

use super::super::model::{Model, NodeView};
use super::super::stats::{Latency, WINDOW_SECS};
use super::super::theme;
use super::fit;

/// Lines one node takes: its name, two of figures, and the sparkline.
const ROWS_PER_NODE: u16 = 4;

fn ago(m: &Model, t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    let Some(t) = t else {
        return "no live item yet".to_owned();
    };
    let secs = m.now.signed_duration_since(t).num_seconds().max(0);
    match secs {
        0..=59 => format!("last item {secs} s ago"),
        60..=3599 => format!("last item {} min ago", secs / 60),
        _ => format!("last item {} h ago", secs / 3600),
    }
}

fn latency(l: Latency) -> String {
    match l {
        Latency::Unknown => "latency: no live item with its own time yet".to_owned(),
        Latency::Known { median, p95, n } => {
            format!("latency {median} ms (p95 {p95} ms, {n} items)")
        }
        Latency::ClocksDiffer { median } => format!(
            "latency unknown: items arrive {} ms before their own time (the clocks differ)",
            -median
        ),
    }
}

fn figures(m: &Model, n: &NodeView) -> String {
    let s = &n.stats;
    format!(
        "{:.1}/s (last 10 s) · {} · {} gap{} · {} resync{}",
        s.rate(m.now, 10),
        ago(m, s.last_received),
        n.gaps,
        if n.gaps == 1 { "" } else { "s" },
        s.resyncs,
        if s.resyncs == 1 { "" } else { "s" },
    )
}

pub fn draw(frame: &mut Frame, full: Rect, m: &Model, scroll: u16) {
    let area = super::explorer::area(full);
    frame.render_widget(Clear, area);
    let block = super::overlay_block(
        " Live figures · items a second over the last 10 minutes (newest right) ",
        area,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let mut y = inner.y;
    for n in m.nodes.iter().skip(usize::from(scroll)) {
        if y + ROWS_PER_NODE > inner.bottom() {
            break;
        }
        let head = format!(
            "{} · {} · {} received live",
            n.name,
            n.state,
            super::super::update::plural(
                usize::try_from(n.stats.received).unwrap_or(usize::MAX),
                "item"
            )
        );
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(fit(&head, width), theme::SENDER),
                Line::raw(fit(&figures(m, n), width)),
                Line::raw(fit(&latency(n.stats.latency()), width)),
            ]),
            Rect::new(inner.x, y, inner.width, 3),
        );
        let bars = usize::from(inner.width).max(1);
        let bucket = (WINDOW_SECS / i64::try_from(bars).unwrap_or(1)).max(1);
        let data = n.stats.buckets(m.now, bars, bucket);
        frame.render_widget(
            Sparkline::default().data(&data).style(theme::KEY),
            Rect::new(inner.x, y + 3, inner.width, 1),
        );
        y += ROWS_PER_NODE;
    }
    if m.nodes.is_empty() {
        frame.render_widget(Paragraph::new("no node followed"), inner);
    }
}

/// Rows the figures scroll at most.
pub fn max_scroll(m: &Model) -> u16 {
    u16::try_from(m.nodes.len().saturating_sub(1)).unwrap_or(u16::MAX)
}
