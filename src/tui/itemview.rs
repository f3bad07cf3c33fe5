//! The item view: one item in three tabs, all read from its tree.
//!
//! - **Tree:** the XML as a collapsible outline (namespaces shortened, shown where they
//!   change), a cursor on one element, long text wrapped.
//! - **Rendered:** the fields of its format ([`crate::feed::render`]): Atom, JSON, ours and
//!   Wokkel's, or the payload's leaves.
//! - **Raw:** the XML, pretty-printed (and sanitised, as the whole tree is).
//!
//! The view's lines are built here for a given width ([`ItemView::lines`]), so the keys and
//! the drawing agree on what is where.

use std::collections::HashSet;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

use crate::feed::payload::{Node, Tree};
use crate::feed::{FeedItem, ItemFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Tree,
    Rendered,
    Raw,
}

impl Tab {
    pub const ALL: [Self; 3] = [Self::Rendered, Self::Tree, Self::Raw];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tree => "tree",
            Self::Rendered => "rendered",
            Self::Raw => "raw XML",
        }
    }

    #[must_use]
    pub fn next(self) -> Self {
        match self {
            Self::Rendered => Self::Tree,
            Self::Tree => Self::Raw,
            Self::Raw => Self::Rendered,
        }
    }

    #[must_use]
    pub fn prev(self) -> Self {
        self.next().next()
    }
}

/// What a line of the view is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An element of the tree (or a field's label).
    Element,
    /// Text, a value.
    Text,
    /// A note (a cut, an empty payload).
    Note,
    /// A field label with its value after it (`label_width` columns of label).
    Labelled { label_width: usize },
}

/// One line on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The tree row it belongs to (tree tab).
    pub row: Option<usize>,
    pub text: String,
    pub kind: Kind,
}

/// An item's view state.
#[derive(Debug, Clone)]
pub struct ItemView {
    pub item: FeedItem,
    pub tab: Tab,
    /// Tree elements folded, by node index.
    pub collapsed: HashSet<usize>,
    /// The selected row of the tree tab (an index into [`Self::rows`]).
    pub cursor: usize,
    /// The first line shown.
    pub scroll: usize,
    /// Retracted since it was opened.
    pub retracted: bool,
    /// A JSON item's outline, shown in the tree tab instead of its one XML element.
    pub json: Option<Vec<crate::feed::render::JsonRow>>,
}

/// A visible row of the tree tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The tree node.
    pub index: usize,
    /// Its parent's node (itself for the root).
    pub parent: usize,
    pub depth: usize,
    pub has_children: bool,
    pub collapsed: bool,
}

impl ItemView {
    pub fn new(item: FeedItem) -> Self {
        let tab = match item.format {
            ItemFormat::Unknown => Tab::Tree,
            _ => Tab::Rendered,
        };
        let json = (item.format == ItemFormat::Json)
            .then(|| crate::feed::render::json_value(item.tree()))
            .flatten()
            .map(|v| crate::feed::render::json_rows(&v));
        Self {
            item,
            tab,
            collapsed: HashSet::new(),
            cursor: 0,
            scroll: 0,
            retracted: false,
            json,
        }
    }

    /// Rows the tree tab's cursor moves over.
    pub fn tree_len(&self) -> usize {
        match &self.json {
            Some(rows) => rows.len(),
            None => self.rows().len(),
        }
    }

    pub fn tree(&self) -> &Tree {
        self.item.tree()
    }

    /// The tree's visible rows: elements, and texts that are not an element's only content
    /// (those show on their element's row).
    pub fn rows(&self) -> Vec<Row> {
        let t = self.tree();
        let mut out = Vec::new();
        // The open elements: (depth, index).
        let mut open: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < t.len() {
            let depth = t.node(i).depth();
            while open.last().is_some_and(|&(d, _)| d >= depth) {
                open.pop();
            }
            let parent = open.last().map_or(i, |&(_, p)| p);
            let end = t.subtree_end(i);
            let only_text = inline_text(t, i).is_some();
            let has_children = end > i + 1 && !only_text;
            let collapsed = has_children && self.collapsed.contains(&i);
            out.push(Row {
                index: i,
                parent,
                depth,
                has_children,
                collapsed,
            });
            open.push((depth, i));
            i = if collapsed || only_text { end } else { i + 1 };
        }
        out
    }

    /// The field a chart of the selected row would plot: the element's name (a text's
    /// element), when the item has a number in it.
    pub fn chart_field(&self) -> Option<String> {
        if self.tab != Tab::Tree {
            return None;
        }
        if let Some(json) = &self.json {
            let path = json.get(self.cursor)?.path.clone()?;
            return self
                .item
                .field_values(&path)
                .iter()
                .any(|v| crate::feed::filter::number(v).is_some())
                .then_some(path);
        }
        let rows = self.rows();
        let row = rows.get(self.cursor)?;
        let t = self.tree();
        let name = match t.node(row.index).name() {
            Some(n) => n,
            None => t.node(row.parent).name()?,
        };
        t.field_values(name)
            .any(|v| crate::feed::filter::number(&v).is_some())
            .then(|| name.to_owned())
    }

    /// Fold or unfold the element under the cursor (`Some(true)`: fold).
    pub fn fold(&mut self, fold: Option<bool>) {
        if self.json.is_some() {
            return;
        }
        let rows = self.rows();
        let Some(row) = rows.get(self.cursor) else {
            return;
        };
        if !row.has_children {
            // Folding a leaf goes to its parent's row.
            if fold == Some(true)
                && let Some(p) = rows
                    .iter()
                    .rposition(|r| r.depth < row.depth && r.index < row.index)
            {
                self.cursor = p;
            }
            return;
        }
        let fold = fold.unwrap_or(!row.collapsed);
        if fold {
            self.collapsed.insert(row.index);
        } else {
            self.collapsed.remove(&row.index);
        }
    }

    /// The lines of the current tab at this width.
    pub fn lines(&self, width: usize) -> Vec<Line> {
        match self.tab {
            Tab::Tree => self.tree_lines(width),
            Tab::Rendered => rendered_lines(&self.item, width),
            Tab::Raw => {
                let mut out = Vec::new();
                for l in self.tree().pretty() {
                    wrap_into(&mut out, None, &l, width, 4, Kind::Text);
                }
                out
            }
        }
    }

    fn tree_lines(&self, width: usize) -> Vec<Line> {
        if let Some(json) = &self.json {
            let mut out = Vec::new();
            for (n, r) in json.iter().enumerate() {
                let line = format!("{}· {}", "  ".repeat(r.depth), r.text);
                let kind = if r.path.is_some() {
                    Kind::Text
                } else {
                    Kind::Element
                };
                wrap_into(&mut out, Some(n), &line, width, r.depth * 2 + 4, kind);
            }
            return out;
        }
        let t = self.tree();
        let mut out = Vec::new();
        for (n, row) in self.rows().iter().enumerate() {
            let pad = "  ".repeat(row.depth);
            let mark = if row.collapsed {
                "▸ "
            } else if row.has_children {
                "▾ "
            } else {
                "· "
            };
            match t.node(row.index) {
                Node::Text { text, .. } => {
                    wrap_into(
                        &mut out,
                        Some(n),
                        &format!("{pad}{mark}{}", quote(text)),
                        width,
                        row.depth * 2 + 2,
                        Kind::Text,
                    );
                }
                Node::Element { name, attrs, .. } => {
                    let mut s = format!("{pad}{mark}{name}");
                    let ns = t.ns(row.index);
                    let parent_ns = (row.index > 0).then(|| t.ns(row.parent));
                    if parent_ns != Some(ns) {
                        let _ = write!(s, " [{}]", short_ns(ns));
                    }
                    for (k, v) in attrs {
                        let _ = write!(s, " {k}={}", quote(v));
                    }
                    if let Some(text) = inline_text(t, row.index) {
                        let _ = write!(s, " = {}", quote(text));
                    }
                    if row.collapsed {
                        let inside = (row.index + 1..t.subtree_end(row.index))
                            .filter(|&j| t.node(j).is_element())
                            .count();
                        let _ = write!(s, "  … {inside} inside");
                    }
                    wrap_into(
                        &mut out,
                        Some(n),
                        &s,
                        width,
                        row.depth * 2 + 4,
                        Kind::Element,
                    );
                }
            }
        }
        if let Some(cut) = t.cut() {
            out.push(Line {
                row: None,
                text: format!("… the rest was left out: {cut}"),
                kind: Kind::Note,
            });
        }
        out
    }
}

/// The text of an element holding only text (one run).
fn inline_text(t: &Tree, i: usize) -> Option<&str> {
    if !t.get(i)?.is_element() {
        return None;
    }
    match (t.get(i + 1), t.subtree_end(i) == i + 2) {
        (Some(Node::Text { text, .. }), true) => Some(text),
        _ => None,
    }
}

/// A namespace in a few letters: the well-known ones by name, others by their last part.
pub fn short_ns(ns: &str) -> String {
    let known = [
        ("http://jabber.org/protocol/pubsub", "pubsub"),
        ("http://jabber.org/protocol/pubsub#event", "pubsub#event"),
        ("http://www.w3.org/2005/Atom", "atom"),
        ("http://www.w3.org/1999/xhtml", "xhtml"),
        ("urn:xmpp:json:0", "json"),
        ("urn:x-pubsub-tui:item:0", "pubsub-tui"),
    ];
    if let Some((_, short)) = known.iter().find(|(n, _)| *n == ns) {
        return (*short).to_owned();
    }
    if ns.is_empty() {
        return "no namespace".to_owned();
    }
    ns.trim_end_matches(['/', ':', '#'])
        .rsplit(['/', ':'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(ns)
        .to_owned()
}

/// A value in quotes, its line breaks shown as `⏎`.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.trim().replace('\n', "⏎").replace('\t', " "))
}

/// The item's rendered fields as lines: `Label  value`, values wrapped under themselves.
fn rendered_lines(item: &FeedItem, width: usize) -> Vec<Line> {
    let fields = crate::feed::render::render(item);
    let label_width = fields
        .iter()
        .map(|f| f.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(width / 3)
        + 2;
    let mut out = Vec::new();
    for f in &fields {
        let mut first = true;
        if f.label.chars().count() + 2 > label_width {
            // Too long for the column: on a line of its own, the value under it.
            wrap_into(&mut out, None, &f.label, width, 2, Kind::Element);
            first = false;
        }
        for line in f.value.split('\n') {
            let label = if first {
                format!("{:<label_width$}", f.label)
            } else {
                " ".repeat(label_width)
            };
            first = false;
            let start = out.len();
            wrap_into(
                &mut out,
                None,
                &format!("{label}{line}"),
                width,
                label_width,
                Kind::Text,
            );
            if let Some(l) = out.get_mut(start) {
                l.kind = Kind::Labelled { label_width };
            }
        }
    }
    if out.is_empty() {
        out.push(Line {
            row: None,
            text: "(nothing to show)".to_owned(),
            kind: Kind::Note,
        });
    }
    out
}

/// Push `s` as lines of at most `width` columns, broken at spaces where there are some (else
/// anywhere); continuation lines start `indent` columns in.
fn wrap_into(
    out: &mut Vec<Line>,
    row: Option<usize>,
    s: &str,
    width: usize,
    indent: usize,
    kind: Kind,
) {
    let width = width.max(8);
    let indent = indent.min(width / 2);
    let mut line = String::new();
    let mut used = 0;
    // Where the last space of this line is (byte offset), past the indentation.
    let mut space: Option<usize> = None;
    let mut first = true;
    for c in s.chars() {
        let c = if c == '\t' { ' ' } else { c };
        let w = c.width().unwrap_or(0);
        if used + w > width {
            // Break at the last space when what follows it fits on the next line with this
            // character; else here.
            let fits = |at: usize| {
                let rest_width: usize =
                    line[at + 1..].chars().map(|c| c.width().unwrap_or(0)).sum();
                indent + rest_width + w <= width
            };
            let rest = match space.filter(|&at| fits(at)) {
                Some(at) => {
                    let rest = line[at + 1..].to_owned();
                    line.truncate(at);
                    rest
                }
                None => String::new(),
            };
            out.push(Line {
                row,
                text: std::mem::take(&mut line),
                kind,
            });
            line.push_str(&" ".repeat(indent));
            line.push_str(&rest);
            used = indent + rest.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
            space = None;
            first = false;
        }
        let floor = if first { 0 } else { indent };
        if c == ' ' && line.len() > floor && !line.ends_with(' ') {
            space = Some(line.len());
        }
        line.push(c);
        used += w;
    }
    out.push(Line {
        row,
        text: line,
        kind,
    });
}

/// Columns and rows of the item view's body at this terminal size (the overlay leaves the
/// status and footer lines; borders, the header and the tab line take the rest).
pub fn body_size(size: (u16, u16)) -> (usize, usize) {
    let width = usize::from(size.0.saturating_sub(2));
    let height = usize::from(size.1.saturating_sub(2 + 2 + HEADER_LINES + 1));
    (width, height.max(1))
}

/// Lines above the tabs: node and id, sender and time.
pub const HEADER_LINES: u16 = 2;

/// A key in the item view.
pub fn key(
    m: &mut super::model::Model,
    action: Option<super::keymap::Action>,
) -> Vec<super::update::Effect> {
    use super::keymap::Action;
    let (width, height) = body_size(m.size);
    let Some(v) = m.item_view.as_mut() else {
        m.overlay = super::model::Overlay::None;
        return Vec::new();
    };
    match action {
        Some(Action::FocusNext) => {
            v.tab = v.tab.next();
            v.scroll = 0;
        }
        Some(Action::FocusPrev) => {
            v.tab = v.tab.prev();
            v.scroll = 0;
        }
        Some(a @ (Action::Expand | Action::Collapse | Action::Toggle)) if v.tab == Tab::Tree => {
            v.fold(match a {
                Action::Expand => Some(false),
                Action::Collapse => Some(true),
                _ => None,
            });
            let last = v.tree_len().saturating_sub(1);
            v.cursor = v.cursor.min(last);
            keep_cursor_shown(v, width, height);
        }
        Some(a) if v.tab == Tab::Tree => {
            let last = v.tree_len().saturating_sub(1);
            if let Some(at) = a.moved(v.cursor, height, last) {
                v.cursor = at;
                keep_cursor_shown(v, width, height);
            } else {
                return other_key(m, a);
            }
        }
        Some(a) => {
            let last = v.lines(width).len().saturating_sub(height);
            match a.moved(v.scroll, height, last) {
                Some(at) => v.scroll = at,
                None => return other_key(m, a),
            }
        }
        None => {}
    }
    Vec::new()
}

fn other_key(
    m: &mut super::model::Model,
    action: super::keymap::Action,
) -> Vec<super::update::Effect> {
    use super::keymap::Action;
    match action {
        Action::Close => {
            m.item_view = None;
            m.overlay = super::model::Overlay::None;
        }
        Action::Quit => return super::update::on_quit(m),
        a @ (Action::Retract | Action::EditItem | Action::CopyId) => {
            return super::owner::item_action(m, a);
        }
        Action::Chart => {
            let Some(v) = m.item_view.as_ref() else {
                return Vec::new();
            };
            match v.chart_field() {
                Some(field) => {
                    m.chart = Some(super::model::ChartView {
                        node: v.item.node().to_owned(),
                        field,
                    });
                    m.under = Some(super::model::Overlay::Item);
                    m.overlay = super::model::Overlay::Chart;
                }
                None => m.outcome(
                    super::model::Level::Error,
                    "no number here to chart: select an element holding one (such as 21.5 °C)",
                ),
            }
        }
        _ => {}
    }
    Vec::new()
}

/// Scroll so the cursor's lines are on screen.
fn keep_cursor_shown(v: &mut ItemView, width: usize, height: usize) {
    let lines = v.lines(width);
    let first = lines.iter().position(|l| l.row == Some(v.cursor));
    let last = lines.iter().rposition(|l| l.row == Some(v.cursor));
    let (Some(first), Some(last)) = (first, last) else {
        return;
    };
    if first < v.scroll {
        v.scroll = first;
    } else if last >= v.scroll + height {
        v.scroll = (last + 1).saturating_sub(height).min(first);
    }
    // On the last row, the lines after it (a note that part was left out) show too.
    if v.cursor + 1 >= v.tree_len() {
        v.scroll = v.scroll.max(lines.len().saturating_sub(height)).min(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(s: &str, width: usize, indent: usize) -> Vec<String> {
        let mut out = Vec::new();
        wrap_into(&mut out, None, s, width, indent, Kind::Text);
        out.into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn wrapping_loses_no_character_and_keeps_to_the_width() {
        for width in [20, 36, 38, 45, 60] {
            for s in [
                "    · averyveryverylongelementnamethatgoesonandon = \"x\"",
                "a long note that goes on and on so that it has to be wrapped at eighty columns",
                "nospacesatallinthislinewhichisverylongindeedandmore",
                "日本語のテキスト 日本語のテキスト 日本語のテキスト",
            ] {
                let lines = wrapped(s, width, 8);
                let kept: String = lines.concat().chars().filter(|c| *c != ' ').collect();
                let given: String = s.chars().filter(|c| *c != ' ').collect();
                assert_eq!(kept, given, "{width}: {lines:?}");
                for l in &lines {
                    assert!(
                        unicode_width::UnicodeWidthStr::width(l.as_str()) <= width,
                        "{width}: {l:?}"
                    );
                }
            }
        }
        // Words stay whole where they fit.
        assert_eq!(
            wrapped("one two three four", 9, 2),
            ["one two", "  three", "  four"]
        );
    }
}
