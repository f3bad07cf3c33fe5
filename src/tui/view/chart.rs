//! A chart of one numeric field of a node's items over time (chosen with `c` in the item
//! view's tree). Units after the number are stripped (`21.6 °C` plots 21.6) and shown on the
//! axis when the values agree on one. It follows the feed as items come.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Clear, Dataset, GraphType, Paragraph};

use super::super::model::Model;
use super::super::theme;
use crate::feed::RowKind;
use crate::feed::filter::number;

/// The newest items plotted at most.
const MAX_POINTS: usize = 5000;

/// What is plotted.
pub struct Series {
    /// (seconds since the first, value), oldest first.
    pub points: Vec<(f64, f64)>,
    /// The time of the first point.
    pub first: Option<chrono::DateTime<chrono::Utc>>,
    /// The unit, when the values agree on one.
    pub unit: Option<String>,
    /// The points are in the items' order, not by time (most came at once, as a resync
    /// brings them, so their times say nothing).
    pub by_order: bool,
}

/// The number in a value and the unit after it.
fn value_and_unit(s: &str) -> Option<(f64, String)> {
    let value = number(s)?;
    let unit = s
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit() || "+-.eE".contains(c))
        .trim()
        .to_owned();
    Some((value, unit))
}

/// The field's numbers in the node's newest items, by time.
pub fn series(m: &Model, node: &str, field: &str) -> Series {
    let empty = Series {
        points: Vec::new(),
        first: None,
        unit: None,
        by_order: false,
    };
    let Some(feed) = m.nodes.iter().find(|v| v.name == node).map(|v| &v.feed) else {
        return empty;
    };
    let len = feed.len();
    let mut raw = Vec::new();
    let mut unit: Option<Option<String>> = None;
    for row in feed.rows(len.saturating_sub(MAX_POINTS * 2), len) {
        let RowKind::Item { item, .. } = &row.kind else {
            continue;
        };
        let Some(when) = item.timestamp().or(item.received) else {
            continue;
        };
        let Some((value, mut this_unit)) = item
            .field_values(field)
            .iter()
            .find_map(|s| value_and_unit(s))
        else {
            continue;
        };
        if this_unit.is_empty() {
            item.tree()
                .field_unit(field)
                .unwrap_or_default()
                .clone_into(&mut this_unit);
        }
        unit = match unit {
            None => Some(Some(this_unit)),
            Some(Some(prev)) if prev == this_unit => Some(Some(prev)),
            _ => Some(None),
        };
        raw.push((when, value));
    }
    let skip = raw.len().saturating_sub(MAX_POINTS);
    let mut raw = raw.split_off(skip);
    let mut seconds: Vec<i64> = raw.iter().map(|(when, _)| when.timestamp()).collect();
    seconds.sort_unstable();
    seconds.dedup();
    let by_order = seconds.len() * 2 < raw.len();
    if !by_order {
        raw.sort_by_key(|(when, _)| *when);
    }
    let first = raw.first().map(|(when, _)| *when);
    let points = raw
        .iter()
        .enumerate()
        .map(|(n, (when, value))| {
            if by_order {
                return (f64::from(u32::try_from(n).unwrap_or(u32::MAX)), *value);
            }
            let ms = first.map_or(0, |f| when.signed_duration_since(f).num_milliseconds());
            // Seconds and milliseconds apart: an i32 of seconds spans 68 years.
            let secs = f64::from(i32::try_from(ms.div_euclid(1000)).unwrap_or(i32::MAX));
            let frac = f64::from(i32::try_from(ms.rem_euclid(1000)).unwrap_or(0)) / 1000.0;
            (secs + frac, *value)
        })
        .collect();
    Series {
        points,
        first,
        unit: unit.flatten().filter(|u| !u.is_empty()),
        by_order,
    }
}

pub fn draw(frame: &mut Frame, full: Rect, m: &Model) {
    let Some(c) = &m.chart else {
        return;
    };
    let area = super::explorer::area(full);
    frame.render_widget(Clear, area);
    let Series {
        points: pts,
        first,
        unit,
        by_order,
    } = series(m, &c.node, &c.field);
    let unit_text = unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
    let title = match pts.last() {
        Some((_, last)) => format!(
            " {} · {} · {} points · last {last}{unit_text} ",
            c.field,
            c.node,
            pts.len()
        ),
        None => format!(" {} · {} · no numbers yet ", c.field, c.node),
    };
    let block = super::overlay_block(&title, area);
    if pts.is_empty() {
        frame.render_widget(
            Paragraph::new(format!(
                "No item of {} has a number in {}.",
                c.node, c.field
            ))
            .block(block),
            area,
        );
        return;
    }
    let (lo, hi) = pts.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| {
        (lo.min(*v), hi.max(*v))
    });
    let pad = ((hi - lo) * 0.05).max(0.5);
    let x_end = pts.last().map_or(1.0, |(x, _)| x.max(1.0));
    let time = |secs: f64| {
        if by_order {
            return if secs == 0.0 {
                "oldest".to_owned()
            } else {
                "newest".to_owned()
            };
        }
        first.map_or_else(String::new, |f| {
            (f + chrono::Duration::from_std(std::time::Duration::from_secs_f64(secs.max(0.0)))
                .unwrap_or_default())
            .with_timezone(&m.offset)
            .format("%H:%M:%S")
            .to_string()
        })
    };
    let dataset = Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(theme::KEY)
        .data(&pts);
    let chart = Chart::new(vec![dataset])
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([0.0, x_end])
                .labels([Span::raw(time(0.0)), Span::raw(time(x_end))])
                .style(theme::DIM),
        )
        .y_axis(
            Axis::default()
                .title(unit.unwrap_or_default())
                .bounds([lo - pad, hi + pad])
                .labels([Span::raw(format!("{lo:.1}")), Span::raw(format!("{hi:.1}"))])
                .style(theme::DIM),
        );
    frame.render_widget(chart, area);
}
