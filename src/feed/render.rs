//! An item rendered for reading: labelled fields for the formats people publish, read from
//! the item's tree ([`super::payload::Tree`]).
//!
//! - Atom entries (XEP-0277 microblogs, XEP-0472 social feeds): title, author, times, links,
//!   summary and content, HTML reduced to text.
//! - JSON in XML (XEP-0335): the JSON as an indented tree.
//! - Our items and the Wokkel items: sender, time, sequence and message.
//! - Anything else: each leaf of the payload as `path: value`.

use super::payload::{Node, Tree};
use super::{FeedItem, ItemFormat};

const NS_ATOM: &str = "http://www.w3.org/2005/Atom";
const NS_XHTML: &str = "http://www.w3.org/1999/xhtml";
/// Deepest JSON value shown (deeper ones are summarised).
const JSON_DEPTH: usize = 32;
/// Most lines a rendering gives.
const MAX_LINES: usize = 20_000;

/// One labelled field; its value may have several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: String,
    pub value: String,
}

fn field(label: &str, value: impl Into<String>) -> Field {
    Field {
        label: label.to_owned(),
        value: value.into(),
    }
}

/// The item's fields, for its format.
pub fn render(item: &FeedItem) -> Vec<Field> {
    let mut out = match item.format {
        ItemFormat::Atom => atom(item.tree()),
        ItemFormat::Json => json(item.tree()),
        ItemFormat::Native | ItemFormat::Wokkel => {
            let mut f = vec![field("From", item.sender().unwrap_or("?"))];
            if let Some(p) = item.publisher() {
                f.push(field("Publisher", p));
            }
            if let Some(t) = item.time() {
                f.push(field("Time", t));
            }
            if let Some(s) = item.seq() {
                f.push(field(
                    "Sequence",
                    format!("{} of publisher session {}", s.n, s.session),
                ));
            }
            f.push(field("Message", item.text().to_owned()));
            f
        }
        ItemFormat::Unknown => leaves(item.tree()),
    };
    out.truncate(MAX_LINES);
    out
}

/// Atom entry fields (see the module doc).
fn atom(t: &Tree) -> Vec<Field> {
    let Some(entry) = t.payload() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let text_of = |name: &str| t.child(entry, name, NS_ATOM).map(|i| atom_text(t, i));
    if let Some(title) = text_of("title") {
        out.push(field("Title", title));
    }
    for i in t.child_elements(entry) {
        if t.ns(i) != NS_ATOM || t.node(i).name() != Some("author") {
            continue;
        }
        let part = |n: &str| {
            t.child(i, n, NS_ATOM)
                .map(|c| t.deep_text(c).trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let who = match (part("name"), part("uri").or_else(|| part("email"))) {
            (Some(n), Some(u)) => format!("{n} <{u}>"),
            (Some(n), None) => n,
            (None, Some(u)) => u,
            (None, None) => continue,
        };
        out.push(field("Author", who));
    }
    for (label, name) in [
        ("Published", "published"),
        ("Updated", "updated"),
        ("Id", "id"),
    ] {
        if let Some(v) = text_of(name).filter(|v| !v.is_empty()) {
            out.push(field(label, v));
        }
    }
    for i in t.child_elements(entry) {
        if t.ns(i) != NS_ATOM || t.node(i).name() != Some("link") {
            continue;
        }
        let Some(href) = t.attr(i, "href") else {
            continue;
        };
        let rel = t.attr(i, "rel").unwrap_or("alternate");
        let kind = t
            .attr(i, "type")
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        out.push(field("Link", format!("{rel}: {href}{kind}")));
    }
    for i in t.child_elements(entry) {
        if t.ns(i) == NS_ATOM
            && t.node(i).name() == Some("category")
            && let Some(term) = t.attr(i, "term")
        {
            out.push(field("Category", term));
        }
    }
    if let Some(s) = text_of("summary") {
        out.push(field("Summary", s));
    }
    if let Some(c) = text_of("content") {
        out.push(field("Content", c));
    }
    out
}

/// An Atom entry's title, and its summary (or else its content), as text; empty ones are
/// `None`.
pub fn atom_title_summary(t: &Tree) -> (Option<String>, Option<String>) {
    let Some(entry) = t.payload() else {
        return (None, None);
    };
    let text_of = |name: &str| {
        t.child(entry, name, NS_ATOM)
            .map(|i| atom_text(t, i))
            .filter(|s| !s.trim().is_empty())
    };
    (
        text_of("title"),
        text_of("summary").or_else(|| text_of("content")),
    )
}

/// An Atom text construct as plain text: `type='html'` reduced from HTML, `type='xhtml'` read
/// from its `<div/>`, text as it is.
fn atom_text(t: &Tree, i: usize) -> String {
    match t.attr(i, "type") {
        Some("html") => html_to_text(&t.own_text(i)),
        Some("xhtml") => {
            let div = t
                .child_elements(i)
                .find(|&j| t.ns(j) == NS_XHTML)
                .unwrap_or(i);
            xhtml_text(t, div)
        }
        _ => t.own_text(i).trim().to_owned(),
    }
}

/// Elements that end a line of text.
fn is_block(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "p" | "div"
            | "br"
            | "li"
            | "ul"
            | "ol"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "tr"
            | "hr"
            | "section"
            | "article"
    )
}

/// The text of an XHTML tree, blocks on their own lines.
fn xhtml_text(t: &Tree, root: usize) -> String {
    let mut out = String::new();
    let end = t.subtree_end(root);
    let mut open: Vec<(usize, bool)> = Vec::new();
    for i in root + 1..end {
        let depth = t.node(i).depth();
        while open.last().is_some_and(|&(d, _)| d >= depth) {
            if open.pop().is_some_and(|(_, block)| block) {
                out.push('\n');
            }
        }
        match t.node(i) {
            // Line breaks in (X)HTML text are spaces; blocks make lines.
            Node::Text { text, .. } => out.push_str(&text.replace(['\n', '\t'], " ")),
            Node::Element { name, .. } => {
                let block = is_block(name);
                if block && !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                open.push((depth, block));
            }
        }
    }
    tidy(&out)
}

/// HTML as text: tags dropped (block tags end lines), entities decoded, scripts and styles
/// left out, whitespace tidied.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                out.push_str(&decode_entities(rest));
            }
            break;
        };
        if skip_until.is_none() {
            out.push_str(&decode_entities(&rest[..lt]));
        }
        rest = &rest[lt..];
        let Some(gt) = rest.find('>') else {
            // A `<` that opens no tag is text.
            if skip_until.is_none() {
                out.push_str(&decode_entities(rest));
            }
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(until) = skip_until {
            if closing && name == until {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "script" if !closing => skip_until = Some("script"),
            "style" if !closing => skip_until = Some("style"),
            n if is_block(n) => {
                while out.ends_with(' ') {
                    out.pop();
                }
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                if n == "li" && !closing {
                    out.push_str("• ");
                }
            }
            _ => {}
        }
    }
    tidy(&out)
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;` and numeric references decoded;
/// unknown ones kept as they are.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // `;` is one byte: looked for in the bytes, the cut cannot split a character.
        let Some(semi) = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';')
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        if let Some(c) = decoded {
            out.push(c);
            rest = &rest[semi + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    crate::sanitize::text(&out).replace(['\n', '\t'], " ")
}

/// Runs of spaces become one, lines are trimmed, and at most one empty line stays between
/// paragraphs.
fn tidy(s: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in s.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() && lines.last().is_none_or(String::is_empty) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n")
}

/// The JSON of a XEP-0335 item as an indented tree of `key: value` lines.
fn json(t: &Tree) -> Vec<Field> {
    let Some(p) = t.payload() else {
        return Vec::new();
    };
    let raw = t.own_text(p);
    match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(v) => vec![field("JSON", json_tree(&v))],
        Err(e) => {
            let why = if e.to_string().contains("recursion limit") {
                "it is nested deeper than the 128 levels read here".to_owned()
            } else {
                format!("this is not valid JSON: {e}")
            };
            vec![field("JSON", raw.trim().to_owned()), field("Note", why)]
        }
    }
}

/// A JSON value as indented lines (its outline's rows, see [`json_rows`]).
pub fn json_tree(v: &serde_json::Value) -> String {
    json_rows(v)
        .iter()
        .map(|r| format!("{}{}", "  ".repeat(r.depth), r.text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of a JSON item's outline: its depth, its text (`key: value`, or `key: {2 keys}`),
/// and for a number or a string, its path (`tests.passed`, `tags.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRow {
    pub depth: usize,
    pub text: String,
    pub path: Option<String>,
}

/// The JSON text of a JSON item, parsed (`None`: not JSON, or nested past serde's bound).
pub fn json_value(t: &Tree) -> Option<serde_json::Value> {
    let p = t.payload()?;
    serde_json::from_str(&t.own_text(p)).ok()
}

/// A JSON value as outline rows (iterative, bounded in depth and in rows).
pub fn json_rows(v: &serde_json::Value) -> Vec<JsonRow> {
    use serde_json::Value;
    let mut out = Vec::new();
    let mut stack: Vec<(Option<String>, String, &Value, usize)> = vec![(None, String::new(), v, 0)];
    while let Some((key, path, v, depth)) = stack.pop() {
        if out.len() >= MAX_LINES {
            out.push(JsonRow {
                depth: 0,
                text: "…".to_owned(),
                path: None,
            });
            break;
        }
        let label = key.map(|k| format!("{k}: ")).unwrap_or_default();
        let child = |k: &str| {
            if path.is_empty() {
                k.to_owned()
            } else {
                format!("{path}.{k}")
            }
        };
        let (text, leaf) = match v {
            Value::Object(map) if depth < JSON_DEPTH => {
                for (k, c) in map.iter().rev() {
                    let k = crate::sanitize::display(k);
                    stack.push((Some(k.clone()), child(&k), c, depth + 1));
                }
                (format!("{label}{{{}}}", plural(map.len(), "key")), false)
            }
            Value::Array(items) if depth < JSON_DEPTH => {
                for (n, c) in items.iter().enumerate().rev() {
                    stack.push((Some(n.to_string()), child(&n.to_string()), c, depth + 1));
                }
                (format!("{label}[{}]", plural(items.len(), "item")), false)
            }
            Value::Object(_) | Value::Array(_) => {
                (format!("{label}… (nested too deep to show)"), false)
            }
            Value::String(s) => (format!("{label}{:?}", crate::sanitize::display(s)), true),
            other => (format!("{label}{other}"), !other.is_null()),
        };
        out.push(JsonRow {
            depth,
            text,
            path: (leaf && !path.is_empty()).then_some(path),
        });
    }
    out
}

/// The values of a JSON item's fields called `name`: a key anywhere, or a dotted path from
/// the top (`tests.passed`).
pub fn json_field_values(t: &Tree, name: &str) -> Vec<String> {
    let Some(v) = json_value(t) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack: Vec<(String, &serde_json::Value, usize)> = vec![(String::new(), &v, 0)];
    while let Some((path, v, depth)) = stack.pop() {
        let last = path.rsplit('.').next().unwrap_or_default();
        if !path.is_empty() && (path == name || last == name) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Number(n) => out.push(n.to_string()),
                serde_json::Value::Bool(b) => out.push(b.to_string()),
                _ => {}
            }
        }
        if depth >= JSON_DEPTH {
            continue;
        }
        let join = |k: &str| {
            if path.is_empty() {
                k.to_owned()
            } else {
                format!("{path}.{k}")
            }
        };
        match v {
            serde_json::Value::Object(map) => {
                for (k, c) in map.iter().rev() {
                    stack.push((join(k), c, depth + 1));
                }
            }
            serde_json::Value::Array(items) => {
                for (n, c) in items.iter().enumerate().rev() {
                    stack.push((join(&n.to_string()), c, depth + 1));
                }
            }
            _ => {}
        }
    }
    out
}

/// `1 item`, `2 items`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Each leaf of the payload as `path: value` (attributes as `path/@name`).
fn leaves(t: &Tree) -> Vec<Field> {
    let Some(p) = t.payload() else {
        return vec![field("Payload", "(none)")];
    };
    let mut out = Vec::new();
    let mut path: Vec<&str> = Vec::new();
    let base = t.node(p).depth();
    for i in p..t.subtree_end(p) {
        let node = t.node(i);
        let Some(name) = node.name() else {
            continue;
        };
        path.truncate(node.depth() - base);
        path.push(name);
        let joined = path.join("/");
        for (k, v) in node.attrs() {
            out.push(field(&format!("{joined}/@{k}"), v.to_string()));
        }
        if t.child_elements(i).next().is_none() {
            let text = t.own_text(i);
            let text = text.trim();
            if !text.is_empty() {
                out.push(field(&joined, text));
            }
        }
        if out.len() > MAX_LINES {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_item, parse_xml};

    fn get<'a>(fields: &'a [Field], label: &str) -> Vec<&'a str> {
        fields
            .iter()
            .filter(|f| f.label == label)
            .map(|f| f.value.as_str())
            .collect()
    }

    #[test]
    fn a_microblog_entry_renders_its_fields() {
        // The shape of XEP-0277's examples, and a content in escaped HTML as blogs send it.
        let item = parse_xml(
            "<item xmlns='http://jabber.org/protocol/pubsub#event' id='1cb57d9c'>
              <entry xmlns='http://www.w3.org/2005/Atom'>
                <author><name>Juliet Capulet</name><uri>xmpp:juliet@capulet.lit</uri></author>
                <title type='text'>At the Caf&#233; Napolitano</title>
                <link rel='alternate' type='text/html' href='http://capulet.lit/posts/1cb57d9c'/>
                <link href='xmpp:juliet@capulet.lit?;node=urn%3Axmpp%3Amicroblog%3A0;item=1cb57d9c'/>
                <id>tag:capulet.lit,2026-11-29:posts-1cb57d9c</id>
                <published>2026-11-29T08:30:02Z</published>
                <updated>2026-11-29T09:00:00Z</updated>
                <category term='travel'/>
                <summary type='html'>&lt;p&gt;Coffee &amp;amp; &lt;b&gt;cake&lt;/b&gt;&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;ul&gt;&lt;li&gt;one&lt;/li&gt;&lt;li&gt;two&amp;#x21;&lt;/li&gt;&lt;/ul&gt;</summary>
                <content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'><p>First <em>para</em>.</p><p>Hello <em>world</em> <b>&amp;</b> co</p><p>Second
                   para.</p></div></content>
              </entry>
            </item>",
        );
        let parsed = parse_item("urn:xmpp:microblog:0", &item);
        // The feed's line: the summary reduced from its HTML, on one line.
        assert_eq!(
            parsed.text(),
            "At the Café Napolitano — Coffee & cake • one • two!"
        );
        let f = render(&parsed);
        assert_eq!(get(&f, "Title"), ["At the Café Napolitano"]);
        assert_eq!(
            get(&f, "Author"),
            ["Juliet Capulet <xmpp:juliet@capulet.lit>"]
        );
        assert_eq!(get(&f, "Published"), ["2026-11-29T08:30:02Z"]);
        assert_eq!(get(&f, "Updated"), ["2026-11-29T09:00:00Z"]);
        assert_eq!(
            get(&f, "Link"),
            [
                "alternate: http://capulet.lit/posts/1cb57d9c (text/html)",
                "alternate: xmpp:juliet@capulet.lit?;node=urn%3Axmpp%3Amicroblog%3A0;item=1cb57d9c"
            ]
        );
        assert_eq!(get(&f, "Category"), ["travel"]);
        assert_eq!(get(&f, "Summary"), ["Coffee & cake\n• one\n• two!"]);
        assert_eq!(
            get(&f, "Content"),
            ["First para.\nHello world & co\nSecond para."]
        );
    }

    #[test]
    fn html_is_reduced_to_text_whatever_it_holds() {
        assert_eq!(html_to_text("a<br>b<br/>c"), "a\nb\nc");
        assert_eq!(
            html_to_text("1 &lt; 2 &amp;&amp; 3 &gt; 2"),
            "1 < 2 && 3 > 2"
        );
        assert_eq!(html_to_text("x < y and no tag"), "x < y and no tag");
        assert_eq!(html_to_text("<style>p{}</style>kept"), "kept");
        assert_eq!(
            html_to_text("&unknown; &#999999999; &"),
            "&unknown; &#999999999; &"
        );
        // An `&` before multi-byte text (the entity window ends inside a character).
        assert_eq!(html_to_text("Q&amp;A: 日本語"), "Q&A: 日本語");
        assert_eq!(html_to_text("&A: 日本語 &x"), "&A: 日本語 &x");
        // What would act on a terminal is gone, even when written as a reference.
        assert_eq!(html_to_text("a&#27;[2Jb&#x202e;c"), "a[2Jbc");
        assert_eq!(
            html_to_text("<p>\n\n  spaced   out \n</p>\n\n\n<p>next</p>"),
            "spaced out\nnext"
        );
    }

    #[test]
    fn json_renders_as_a_tree() {
        let item = parse_xml(
            r#"<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{"sensor": {"temp": 21.5, "ok": true}, "tags": ["a", null]}</json></item>"#,
        );
        let f = render(&parse_item("n", &item));
        assert_eq!(
            get(&f, "JSON"),
            [
                "{2 keys}\n  sensor: {2 keys}\n    temp: 21.5\n    ok: true\n  tags: [2 items]\n    0: \"a\"\n    1: null"
            ]
        );
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let v: serde_json::Value = serde_json::from_str(&deep).expect("serde allows 128 levels");
        let shown = json_tree(&v);
        assert!(shown.ends_with("… (nested too deep to show)"), "{shown}");
        let bad = parse_xml(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{oops</json></item>",
        );
        let f = render(&parse_item("n", &bad));
        assert!(
            get(&f, "Note")[0].starts_with("this is not valid JSON"),
            "{f:?}"
        );
        let deep = parse_xml(&format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{}1{}</json></item>",
            "[".repeat(200),
            "]".repeat(200)
        ));
        let f = render(&parse_item("n", &deep));
        assert_eq!(
            get(&f, "Note"),
            ["it is nested deeper than the 128 levels read here"]
        );
    }

    #[test]
    fn other_payloads_render_their_leaves() {
        let item = parse_xml(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='r'><reading xmlns='urn:example:sensor' at='lab'><temp unit='C'>21.5</temp><hum>40</hum><deep><er>x</er></deep></reading></item>",
        );
        let f = render(&parse_item("n", &item));
        let shown: Vec<String> = f
            .iter()
            .map(|f| format!("{}: {}", f.label, f.value))
            .collect();
        assert_eq!(
            shown,
            [
                "reading/@at: lab",
                "reading/temp/@unit: C",
                "reading/temp: 21.5",
                "reading/hum: 40",
                "reading/deep/er: x"
            ]
        );
    }
}
