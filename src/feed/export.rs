//! Writing items to a file: NDJSON, CSV or an XML document of `<item/>`s. Each format
//! carries every item's id and its whole `<item/>` as XML, so `pubsub-tui import` can publish
//! them again (see `headless::transfer`).
//!
//! - **NDJSON:** one object per line: `node`, `id`, `time`, `sender`, `publisher`, `format`,
//!   `text`, `xml`.
//! - **CSV** (RFC 4180): a header row, then the same columns. A field with a comma, a quote
//!   or a line break is quoted, quotes doubled. A field that a spreadsheet would run as a
//!   formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a `'` before
//!   it; import takes it off again.
//! - **XML:** `<items xmlns='urn:x-pubsub-tui:export:0' node='…'>` holding the `<item/>`s.
//!
//! Items only partly kept (their tree was cut at a bound) are left out: publishing what is
//! left of one would change it.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::{Value, json};

use super::FeedItem;

/// The namespace of the XML export's root element.
pub const NS_EXPORT: &str = "urn:x-pubsub-tui:export:0";

/// The columns of the CSV export, in order.
pub const CSV_COLUMNS: [&str; 8] = [
    "node",
    "id",
    "time",
    "sender",
    "publisher",
    "format",
    "text",
    "xml",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
    Xml,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Xml => "xml",
        }
    }

    /// The format a file's name says, if it says one.
    pub fn of_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            "xml" => Some(Self::Xml),
            _ => None,
        }
    }
}

/// A JSON line with every terminal-active character escaped (serde escapes only C0), and the
/// line and paragraph separators, which some readers take as line ends.
pub fn json_line(v: &Value) -> String {
    let raw = v.to_string();
    // ASCII without DEL has nothing to escape (the usual line): no second copy.
    if raw.bytes().all(|b| b < 0x7f) {
        return raw;
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c)
            || crate::sanitize::is_format_char(c)
            || matches!(
                c,
                crate::sanitize::LINE_SEPARATOR | crate::sanitize::PARAGRAPH_SEPARATOR
            )
        {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// An item's own time: RFC 3339 in UTC with milliseconds when it is a full timestamp, else as
/// it came (a Wokkel item's `HH:MM:SS`).
pub fn item_time(item: &FeedItem) -> Option<String> {
    item.timestamp()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .or_else(|| item.time().map(str::to_owned))
}

/// The item as one NDJSON object.
pub fn item_record(item: &FeedItem) -> Value {
    json!({
        "node": item.node(),
        "id": item.id(),
        "time": item_time(item),
        "sender": item.sender(),
        "publisher": item.publisher(),
        "format": item.format,
        "text": item.text(),
        "xml": item.xml(),
    })
}

/// A CSV field: quoted when it must be, formulas neutralised.
pub fn csv_field(s: &str) -> String {
    // A value that already looks neutralised (quotes before a formula) gets one more `'`
    // too, so import gives every value back.
    let s = if looks_like_formula(s) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// How many of the items an export writes (not cut) had hidden characters removed where they
/// came in: the file has them without.
pub fn altered<'a>(items: impl IntoIterator<Item = &'a FeedItem>) -> usize {
    items
        .into_iter()
        .filter(|i| i.tree().cut().is_none() && i.tree().removed() > 0)
        .count()
}

/// Escape text for a single-quoted XML attribute.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
}

/// Write the items of `node` (oldest first) in `format`. Returns how many were written and
/// how many were left out (only partly kept).
pub fn write_items<'a>(
    out: &mut impl Write,
    node: &str,
    items: impl IntoIterator<Item = &'a FeedItem>,
    format: Format,
) -> std::io::Result<(usize, usize)> {
    let (mut written, mut skipped) = (0, 0);
    match format {
        Format::Csv => writeln!(out, "{}", CSV_COLUMNS.join(","))?,
        Format::Xml => writeln!(
            out,
            "<?xml version='1.0' encoding='UTF-8'?>\n<items xmlns='{NS_EXPORT}' node='{}'>",
            attr(node)
        )?,
        Format::Ndjson => {}
    }
    for item in items {
        if item.tree().cut().is_some() {
            skipped += 1;
            continue;
        }
        match format {
            Format::Ndjson => writeln!(out, "{}", json_line(&item_record(item)))?,
            Format::Csv => {
                let record = item_record(item);
                let fields: Vec<String> = CSV_COLUMNS
                    .iter()
                    .map(|c| match &record[*c] {
                        Value::String(s) => csv_field(s),
                        Value::Null => String::new(),
                        other => csv_field(&other.to_string()),
                    })
                    .collect();
                writeln!(out, "{}", fields.join(","))?;
            }
            Format::Xml => writeln!(out, "{}", item.xml())?,
        }
        written += 1;
    }
    if format == Format::Xml {
        writeln!(out, "</items>")?;
    }
    Ok((written, skipped))
}

/// Read CSV (RFC 4180) into rows of fields. `Err` names the line of a quote left open.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut opened_at = 0;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if field.is_empty() => {
                quoted = true;
                opened_at = line;
            }
            ',' if !quoted => row.push(std::mem::take(&mut field)),
            '\r' if !quoted && chars.peek() == Some(&'\n') => {}
            '\n' if !quoted => {
                line += 1;
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
        }
    }
    if quoted {
        return Err(format!(
            "a quoted field opened on line {opened_at} is not closed"
        ));
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Take off the `'` that [`csv_field`] put before a formula.
pub fn csv_unneutralise(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if looks_like_formula(rest) => rest,
        _ => s,
    }
}

/// A formula character, after any number of `'`.
fn looks_like_formula(s: &str) -> bool {
    s.trim_start_matches('\'')
        .starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_survive_hostile_content_and_read_back() {
        let hostile = [
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "cr\r\nlf",
            "=cmd|' /C calc'!A0",
            "+1+1",
            "-2",
            "@SUM(A1)",
            "\tTAB",
            "",
            "'quoted already",
            "'=looks neutralised",
            "''=twice",
            "'''@thrice",
            "ünïcödé, 日本",
        ];
        let line: Vec<String> = hostile.iter().map(|s| csv_field(s)).collect();
        let text = format!("{}\n{}\n", line.join(","), line.join(","));
        let rows = parse_csv(&text).expect("parses");
        assert_eq!(rows.len(), 2);
        for row in rows {
            let back: Vec<&str> = row.iter().map(|f| csv_unneutralise(f)).collect();
            assert_eq!(back, hostile);
        }
        // What a spreadsheet sees: no cell starts with a formula character.
        for f in &line {
            let cell = f.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{f:?}");
        }
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1"), "'=1");
        assert!(
            parse_csv("a,\"open\nb")
                .expect_err("open")
                .contains("line 1")
        );
    }
}
