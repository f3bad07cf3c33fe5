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

/// Append `s` as a JSON string, escaped as [`json_line`] escapes a line: what serde escapes,
/// and every other terminal-active character, and the line and paragraph separators.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        // Printable ASCII, the usual byte, goes in runs; so do other characters not escaped.
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        let c = if b < 0x80 {
            char::from(b)
        } else {
            s[i..].chars().next().unwrap_or_default()
        };
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            c if c < ' '
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || crate::sanitize::is_format_char(c)
                || matches!(
                    c,
                    crate::sanitize::LINE_SEPARATOR | crate::sanitize::PARAGRAPH_SEPARATOR
                ) =>
            {
                Some("")
            }
            _ => None,
        };
        let next = i + c.len_utf8();
        if let Some(e) = escape {
            out.push_str(&s[run..i]);
            if e.is_empty() {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            } else {
                out.push_str(e);
            }
            run = next;
        }
        i = next;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Append `"key":` and `value` (a JSON string, or `null`) to an object being written.
fn push_str_field(out: &mut String, key: &str, value: Option<&str>) {
    push_key(out, key);
    match value {
        Some(v) => push_json_str(out, v),
        None => out.push_str("null"),
    }
}

/// Append `,"key":` (no comma after the `{`). Keys are ours: nothing to escape.
fn push_key(out: &mut String, key: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

/// The fields of [`item_record`], appended to an object being written.
fn push_record_fields(out: &mut String, item: &FeedItem) {
    push_str_field(out, "node", Some(item.node()));
    push_str_field(out, "id", item.id());
    push_str_field(out, "time", item_time(item).as_deref());
    push_str_field(out, "sender", item.sender());
    push_str_field(out, "publisher", item.publisher());
    push_str_field(out, "format", Some(item.format.name()));
    push_str_field(out, "text", Some(item.text()));
    push_str_field(out, "xml", Some(&item.xml()));
}

/// An item as `watch` prints it, one JSON object without its line break, written straight
/// into `out` (a `serde_json::Value` built and printed cost a flood about as much again):
/// `kind`, the fields of [`item_record`], `forged`, `seq`, `session`, and `partial` and
/// `removed` when the item's tree was cut or had characters taken out.
pub fn push_item_line(out: &mut String, kind: &str, item: &FeedItem) {
    out.push('{');
    push_str_field(out, "kind", Some(kind));
    push_record_fields(out, item);
    push_key(out, "forged");
    out.push_str(if item.is_forged() { "true" } else { "false" });
    let seq = item.seq();
    push_key(out, "seq");
    match &seq {
        Some(s) => {
            let _ = write!(out, "{}", s.n);
        }
        None => out.push_str("null"),
    }
    push_str_field(out, "session", seq.as_ref().map(|s| s.session));
    if let Some(cut) = item.tree().cut() {
        push_str_field(out, "partial", Some(&cut.to_string()));
    }
    let removed = item.tree().removed();
    if removed > 0 {
        push_key(out, "removed");
        let _ = write!(out, "{removed}");
    }
    out.push('}');
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
            Format::Ndjson => {
                let mut line = String::from("{");
                push_record_fields(&mut line, item);
                line.push_str("}\n");
                out.write_all(line.as_bytes())?;
            }
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

    /// What `watch` printed for an item before [`push_item_line`]: a `serde_json::Value`
    /// built, printed and escaped by [`json_line`]. The reference the writer is held to.
    fn line_by_value(kind: &str, item: &FeedItem) -> String {
        let mut v = json!({ "kind": kind });
        if let (Value::Object(line), Value::Object(record)) = (&mut v, item_record(item)) {
            line.extend(record);
        }
        v["forged"] = json!(item.is_forged());
        v["seq"] = json!(item.seq().map(|s| s.n));
        v["session"] = json!(item.seq().map(|s| s.session));
        if let Some(cut) = item.tree().cut() {
            v["partial"] = json!(cut.to_string());
        }
        if item.tree().removed() > 0 {
            v["removed"] = json!(item.tree().removed());
        }
        json_line(&v)
    }

    fn written(kind: &str, item: &FeedItem) -> String {
        let mut out = String::new();
        push_item_line(&mut out, kind, item);
        out
    }

    #[test]
    fn an_item_line_is_what_the_value_gave_for_every_kind_of_item() {
        let node = "n\u{1b}[31m";
        let parse = |xml: &str| {
            let el: xmpp_parsers::minidom::Element = xml.parse().expect("xml");
            crate::xmpp::proto::parse_item(node, &el)
        };
        let deep = format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='d'>{}{}</item>",
            "<a xmlns='urn:x'>".repeat(80),
            "</a>".repeat(80)
        );
        let items = [
            // Ours, with a sequence number, a time and a sender.
            crate::xmpp::proto::parse_item(
                node,
                &crate::xmpp::proto::item::item_element(&crate::xmpp::proto::OutgoingItem {
                    node: "n".into(),
                    sender: "alice@x/r".into(),
                    time: chrono::Utc::now(),
                    seq: crate::feed::Seq::new("s1", 7),
                    text: "say \"hi\" \\ \u{7}\u{9b}\u{202e}\u{2028} ünï 日本 \u{1F600}".into(),
                }),
            ),
            // Wokkel's, Atom, JSON, and nothing known; a publisher that is not the sender.
            parse(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='w' publisher='eve@x' sender='alice@x' time='12:00:00' message='m&#9;\u{85}'/>",
            ),
            parse(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='a'><entry xmlns='http://www.w3.org/2005/Atom'><title>T\u{200b}</title><summary>S</summary></entry></item>",
            ),
            parse(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{\"k\": \"v\\u0007\"}</json></item>",
            ),
            parse(
                "<item xmlns='http://jabber.org/protocol/pubsub'><x xmlns='urn:y' a='&apos;&quot;'>t</x></item>",
            ),
            // Cut at the depth bound: partial.
            parse(&deep),
        ];
        assert!(items[5].tree().cut().is_some(), "control: one is cut");
        assert!(
            items.iter().any(|i| i.tree().removed() > 0),
            "control: one had characters removed"
        );
        assert!(
            items.iter().any(FeedItem::is_forged),
            "control: one is forged"
        );
        for item in &items {
            for kind in ["item", "stored", "cached"] {
                assert_eq!(written(kind, item), line_by_value(kind, item));
            }
        }
    }

    /// Strings of the characters JSON and the terminal care about, and any others.
    fn tricky(len: usize) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let special = proptest::sample::select(vec![
            '"',
            '\\',
            '/',
            '\n',
            '\r',
            '\t',
            '\u{0}',
            '\u{7}',
            '\u{8}',
            '\u{c}',
            '\u{1b}',
            '\u{1f}',
            '\u{7f}',
            '\u{85}',
            '\u{9b}',
            '\u{9f}',
            '\u{a0}',
            '\u{200b}',
            '\u{202e}',
            '\u{2028}',
            '\u{2029}',
            '\u{feff}',
            'é',
            '日',
            '\u{1F600}',
        ]);
        proptest::collection::vec(
            prop_oneof![
                special,
                proptest::char::range('a', 'z'),
                proptest::char::any()
            ],
            0..len,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest::proptest! {
        #[test]
        fn a_json_string_is_what_serde_and_the_line_escape_give(s in tricky(40)) {
            let mut out = String::from("x");
            push_json_str(&mut out, &s);
            proptest::prop_assert_eq!(out, format!("x{}", json_line(&Value::String(s))));
        }

        #[test]
        fn an_item_line_is_what_the_value_gave(
            text in tricky(30),
            id in proptest::option::of(tricky(12)),
            sender in proptest::option::of("[a-z]{1,5}@x(/[a-z\\PC]{1,5})?"),
            publisher in proptest::option::of("[a-z]{1,5}@x"),
            time in proptest::option::of("(2026-11-29T10:00:0[0-9](\\.[0-9]{1,6})?Z|[0-9:]{1,8}|\\PC{0,4})"),
        ) {
            let el: xmpp_parsers::minidom::Element =
                "<item xmlns='http://jabber.org/protocol/pubsub' id='i'><r xmlns='urn:x'>v</r></item>"
                    .parse()
                    .expect("xml");
            let mut parts = crate::xmpp::proto::parse_item("n", &el).to_parts();
            parts.text = text;
            parts.id = id;
            parts.sender = sender;
            parts.publisher = publisher;
            parts.time = time;
            let item: FeedItem = parts.into();
            proptest::prop_assert_eq!(written("item", &item), line_by_value("item", &item));
        }
    }

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
