//! `w`: write the feed's items to a file: the selected node's, or the filter's matches. The
//! question names how many and whose; Tab picks the format (NDJSON, CSV, XML, as
//! [`crate::feed::export`] writes them); the file name can be typed over. The shell writes the
//! file ([`Effect::Export`]) and says how it went ([`Msg::Exported`]).
//!
//! [`Msg::Exported`]: super::update::Msg::Exported

use crossterm::event::KeyEvent;
use tui_input::Input;

use super::keymap::Action;
use super::model::{Level, Model, Overlay};
use super::owner::Confirm;
use super::update::Effect;
use crate::feed::export::Format;
use crate::feed::{FeedItem, ItemState, RowKind};

/// The question before writing.
#[derive(Debug, Clone)]
pub struct Export {
    /// Whose items: a node's name, or the filter's words.
    pub label: String,
    pub count: usize,
    /// Of those, the items only partly kept here (left out).
    pub partial: usize,
    pub format: Format,
    pub path: Input,
}

const FORMATS: [Format; 3] = [Format::Ndjson, Format::Csv, Format::Xml];

/// The items `w` writes: the filter's matches while it hides the rest, else the selected
/// node's (retracted ones left out), oldest first.
fn items(m: &Model) -> Vec<FeedItem> {
    if let Some(hits) = m.shown_hits() {
        return hits
            .iter()
            .filter_map(|h| m.hit_item(*h))
            .cloned()
            .collect();
    }
    let Some(node) = m.selected_node() else {
        return Vec::new();
    };
    node.feed
        .rows(0, node.feed.len())
        .filter_map(|r| match &r.kind {
            RowKind::Item { item, state } if *state != ItemState::Retracted => Some(item.clone()),
            _ => None,
        })
        .collect()
}

/// A file name made of the label: letters, digits, `.`, `-` and `_` kept, the rest `_`.
fn file_stem(label: &str) -> String {
    let s: String = label
        .chars()
        .take(60)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() {
        "items".to_owned()
    } else {
        s.to_owned()
    }
}

/// `w`: ask where to write.
pub fn start(m: &mut Model) {
    let label = match &m.search {
        Some(s) if s.hides() => {
            let scope = if s.spans_nodes() {
                "every node".to_owned()
            } else {
                m.selected_node()
                    .map(|n| n.name.clone())
                    .unwrap_or_default()
            };
            format!("{scope}, filtered by {}", s.input.value().trim())
        }
        _ => {
            let Some(n) = m.selected_node() else {
                m.outcome(Level::Error, "no node selected: nothing to write");
                return;
            };
            n.name.clone()
        }
    };
    let all = items(m);
    let count = all.len();
    let partial = all.iter().filter(|i| i.tree().cut().is_some()).count();
    if count == 0 {
        m.outcome(Level::Error, format!("{label}: no items to write"));
        return;
    }
    let stem = match &m.search {
        Some(s) if s.hides() => format!(
            "{}-filtered",
            file_stem(
                &label
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .replace(' ', "-")
            )
        ),
        _ => file_stem(&label),
    };
    let when = m.now.with_timezone(&m.offset).format("%Y%m%d-%H%M%S");
    let format = Format::Ndjson;
    let path = format!("{stem}-{when}.{}", format.extension());
    m.confirm = Some(Confirm::Export(Export {
        label,
        count,
        partial,
        format,
        path: Input::new(path),
    }));
    m.under = None;
    m.overlay = Overlay::Confirm;
}

/// A key while asked.
pub fn key(m: &mut Model, key: KeyEvent, action: Option<Action>) -> Vec<Effect> {
    let Some(Confirm::Export(e)) = m.confirm.as_mut() else {
        return Vec::new();
    };
    match action {
        Some(Action::Toggle) => {
            let at = FORMATS.iter().position(|f| *f == e.format).unwrap_or(0);
            let next = FORMATS[(at + 1) % FORMATS.len()];
            // The extension follows, when the name has the old one.
            let old = format!(".{}", e.format.extension());
            if let Some(stem) = e.path.value().strip_suffix(&old) {
                e.path = Input::new(format!("{stem}.{}", next.extension()));
            }
            e.format = next;
        }
        Some(Action::Yes) => {
            let path = std::path::PathBuf::from(e.path.value().trim());
            if path.as_os_str().is_empty() {
                m.outcome(Level::Error, "give a file name to write to");
                return Vec::new();
            }
            let (format, label) = (e.format, e.label.clone());
            m.confirm = None;
            m.overlay = Overlay::None;
            return vec![Effect::Export {
                path,
                format,
                label,
                items: items(m),
            }];
        }
        Some(Action::No | Action::Quit) => {
            m.confirm = None;
            m.overlay = Overlay::None;
        }
        _ => super::update::edit_line(&mut e.path, key),
    }
    Vec::new()
}

/// The shell wrote the file (or could not).
pub fn done(
    m: &mut Model,
    path: &std::path::Path,
    label: &str,
    result: Result<(usize, usize), String>,
) {
    match result {
        Ok((written, 0)) => m.outcome(
            Level::Info,
            format!(
                "wrote {} of {label} to {}",
                super::update::plural(written, "item"),
                path.display()
            ),
        ),
        Ok((written, skipped)) => m.outcome(
            Level::Error,
            format!(
                "wrote {written} of {} items ({skipped} left out: only partly kept here) of {label} to {}",
                written + skipped,
                path.display()
            ),
        ),
        Err(e) => m.outcome(Level::Error, format!("writing {}: {e}", path.display())),
    }
}

/// The shell's part: write, and say how it went.
pub fn run(
    path: std::path::PathBuf,
    format: Format,
    label: String,
    items: &[FeedItem],
) -> super::update::Msg {
    let result = write(&path, format, &label, items);
    // Said with the directory: the TUI's working directory is not on screen.
    let path = std::path::absolute(&path).unwrap_or(path);
    let altered = crate::feed::export::altered(items);
    super::update::Msg::Exported {
        path,
        label,
        result,
        altered,
    }
}

/// Write the file: a new file only, never over another.
pub fn write(
    path: &std::path::Path,
    format: Format,
    label: &str,
    items: &[FeedItem],
) -> Result<(usize, usize), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => "the file exists: give another name".to_owned(),
            _ => e.to_string(),
        })?;
    let mut out = std::io::BufWriter::new(file);
    let result = crate::feed::export::write_items(&mut out, label, items, format)
        .and_then(|r| std::io::Write::flush(&mut out).map(|()| r));
    match result {
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(e.to_string())
        }
        Ok((0, skipped)) => {
            let _ = std::fs::remove_file(path);
            Err(format!(
                "nothing written: the {skipped} items are all only partly kept here"
            ))
        }
        Ok(done) => Ok(done),
    }
}
