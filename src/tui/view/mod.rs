//! Drawing the model. `draw` is a pure function of the model (and the frame size).
//!
//! One file per pane; `layout` decides where they go, and the model uses the same layout to
//! know how many feed rows a page is.

pub mod chart;
pub mod compose;
mod confirm;
pub mod explorer;
mod feed;
mod form;
pub mod help;
mod item;
pub mod messages;
mod panel;
pub mod stats;
mod status;
mod subscriptions;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::widgets::{Block, Borders};
use unicode_width::UnicodeWidthChar;

use super::model::{Model, Overlay};
use super::theme;

/// Below this width (or [`COMPACT_HEIGHT`]) the layout is compact: the subscriptions become
/// one line above the feed, and the compose box loses its side borders.
pub const NARROW_WIDTH: u16 = 60;
pub const COMPACT_HEIGHT: u16 = 16;

pub fn is_compact(width: u16, height: u16) -> bool {
    width < NARROW_WIDTH || height < COMPACT_HEIGHT
}

/// Where each pane goes.
#[derive(Debug, Clone, Copy)]
pub struct Areas {
    pub subscriptions: Rect,
    pub feed: Rect,
    pub compose: Rect,
    pub status: Rect,
    pub footer: Rect,
    /// Rows inside the feed pane's borders.
    pub feed_rows: u16,
}

pub fn areas(area: Rect, _nodes: usize) -> Areas {
    let compact = is_compact(area.width, area.height);
    let [main, compose, status, footer] = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(3),
            Constraint::Length(if compact { 2 } else { 3 }),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
    let (subscriptions, feed) = if compact {
        let [s, f] = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(1), Constraint::Min(0)])
            .areas(main);
        (s, f)
    } else {
        let side = (area.width / 4).clamp(26, 36);
        let [s, f] = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(side), Constraint::Min(10)])
            .areas(main);
        (s, f)
    };
    Areas {
        subscriptions,
        feed,
        compose,
        status,
        footer,
        feed_rows: feed.height.saturating_sub(2),
    }
}

/// The layout for a terminal of `width` x `height`.
pub fn layout_for(width: u16, height: u16, nodes: usize) -> Areas {
    areas(Rect::new(0, 0, width, height), nodes)
}

pub fn draw(frame: &mut Frame, model: &Model) {
    let a = areas(frame.area(), model.nodes.len());
    subscriptions::draw(frame, a.subscriptions, model);
    feed::draw(frame, a.feed, model);
    compose::draw(frame, a.compose, model);
    status::draw_status(frame, a.status, model);
    status::draw_footer(frame, a.footer, model);
    // What an overlay was opened over (the explorer, the form, an item) is drawn under it.
    match model.under {
        Some(Overlay::Explorer) => explorer::draw(frame, frame.area(), model),
        Some(Overlay::Form) => form::draw(frame, frame.area(), model),
        Some(Overlay::Item) => item::draw(frame, frame.area(), model),
        _ => {}
    }
    match model.overlay {
        Overlay::None => {}
        Overlay::Help { scroll } => help::draw(frame, frame.area(), scroll),
        Overlay::Messages { scroll } => messages::draw(frame, frame.area(), model, scroll),
        Overlay::Confirm => confirm::draw(frame, frame.area(), model),
        Overlay::Explorer => explorer::draw(frame, frame.area(), model),
        Overlay::Form => form::draw(frame, frame.area(), model),
        Overlay::Panel => panel::draw(frame, frame.area(), model),
        Overlay::Item => item::draw(frame, frame.area(), model),
        Overlay::Stats { scroll } => stats::draw(frame, frame.area(), model, scroll),
        Overlay::Chart => chart::draw(frame, frame.area(), model),
    }
}

/// The focused frame of an overlay, with its title cut to fit `area`.
pub fn overlay_block(title: &str, area: Rect) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme::border(true))
        .title(ratatui::text::Span::styled(
            fit(title, usize::from(area.width.saturating_sub(2))),
            theme::title(true),
        ))
}

/// A character as a one-line cell shows it: a line break as `⏎`, a tab as a space.
fn one_line(c: char) -> char {
    match c {
        '\n' => '⏎',
        '\t' => ' ',
        c => c,
    }
}

/// Cut `s` to at most `width` terminal columns, on one line (line breaks shown as `⏎`), with
/// an ellipsis when cut.
pub fn fit(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    let mut cut = false;
    for c in s.chars().map(one_line) {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            cut = true;
            break;
        }
        out.push(c);
        used += w;
    }
    if cut && width > 0 {
        // Make room for the ellipsis.
        while used + 1 > width {
            let Some(c) = out.pop() else { break };
            used -= c.width().unwrap_or(0);
        }
        out.push('…');
    }
    out
}

/// `fit`, then pad with spaces to exactly `width` columns.
pub fn fit_pad(s: &str, width: usize) -> String {
    let mut out = fit(s, width);
    let used: usize = out.chars().map(|c| c.width().unwrap_or(0)).sum();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}
