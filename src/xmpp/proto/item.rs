//! Items: the `<item/>` we publish (our `<post/>` payload plus the seed-era Wokkel attributes)
//! and how any item is read: ours, a Wokkel item, an Atom entry, or anything else.
//!
//! Read by hand with minidom: xmpp-parsers' pubsub `Item` keeps the payload but drops the
//! attributes the Wokkel format carries its data in.

use chrono::{DateTime, SecondsFormat, Utc};
use xmpp_parsers::minidom::Element;

use super::{NS_ATOM, NS_ITEM, NS_JSON, NS_PUBSUB, el, ncname};
use crate::feed::{FeedItem, ItemFormat, ItemParts, Seq};
use crate::sanitize;

/// The largest `<item/>` we publish, as XML. Prosody refuses stanzas over 256 KiB (262,144
/// bytes) and ends the stream; this leaves room for the `<iq/>` around the item.
pub const MAX_ITEM_XML_BYTES: usize = 260_000;
/// The most text one item carries: 250 KiB as XML (markup characters count as their escapes,
/// `<` as `&lt;`).
pub const MAX_TEXT_XML_BYTES: usize = 256_000;
/// The seed-era `message` attribute gets at most this much of the text (the whole text is in
/// the `<post/>` payload). Parsers limit attribute values (rxml: 8 KiB), so a long text there
/// would break other clients' connections.
const MESSAGE_ATTR_MAX_BYTES: usize = 1024;

/// The text's size once escaped as XML character data.
pub fn text_xml_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '<' | '>' => 4,
            '&' | '\r' => 5,
            c => c.len_utf8(),
        })
        .sum()
}

/// Refuse text that would make an item too big to publish, with the sizes in the message.
pub fn check_text_size(text: &str) -> Result<(), String> {
    let len = text_xml_len(text);
    if len > MAX_TEXT_XML_BYTES {
        return Err(format!(
            "the text is too long to publish: {len} bytes as XML, and an item carries at most \
             {MAX_TEXT_XML_BYTES} (250 KiB)"
        ));
    }
    Ok(())
}

/// At most `max` bytes of `s`, cut at a character boundary, with an ellipsis when cut.
fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Ranges as `a-b,c`.
pub fn format_ranges(ranges: &[(u64, u64)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Read `a-b,c` (bounded: at most [`crate::feed::MAX_VOID_RANGES`] ranges, each `a <= b`).
pub fn parse_ranges(s: &str) -> Vec<(u64, u64)> {
    s.split(',')
        .filter_map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        })
        .take(crate::feed::MAX_VOID_RANGES)
        .collect()
}

/// An item we are about to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingItem {
    pub node: String,
    pub sender: String,
    pub time: DateTime<Utc>,
    pub seq: Seq,
    /// Already filtered with [`sanitize::outgoing`].
    pub text: String,
}

impl OutgoingItem {
    /// Derived from the publisher session and sequence number, so a retry of the same item
    /// overwrites it on the service instead of adding a duplicate.
    pub fn id(&self) -> String {
        format!("{}-{}", self.seq.session, self.seq.n)
    }
}
/// The `<item/>` of a publish: seed-compatible attributes plus our namespaced payload, which
/// carries the whole text (the `message` attribute only its start).
pub fn item_element(item: &OutgoingItem) -> Element {
    let id = item.id();
    let short_time = item.time.format("%H:%M:%S").to_string();
    let message = cut_bytes(&item.text, MESSAGE_ATTR_MAX_BYTES);
    let mut it = el(
        "item",
        NS_PUBSUB,
        &[
            ("id", &id),
            ("sender", &item.sender),
            ("time", &short_time),
            ("message", &message),
        ],
    );
    let seq = item.seq.n.to_string();
    let full_time = item.time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut post = el(
        "post",
        NS_ITEM,
        &[
            ("sender", &item.sender),
            ("time", &full_time),
            ("session", &item.seq.session),
            ("seq", &seq),
        ],
    );
    if !item.seq.void.is_empty() {
        post.set_attr(
            xmpp_parsers::minidom::rxml::Namespace::NONE,
            ncname("void"),
            format_ranges(&item.seq.void),
        );
    }
    post.append_text(item.text.clone());
    it.append_child(post);
    it
}

/// An `<item/>` with this payload, and this id when given (the service picks one otherwise).
pub fn item_with(id: Option<&str>, payload: Element) -> Element {
    let mut it = el("item", NS_PUBSUB, &[]);
    if let Some(id) = id {
        super::set_attr(&mut it, "id", id);
    }
    it.append_child(payload);
    it
}

/// A text item of ours published as given (an id chosen by the user, publish-options): the
/// sender, the time and the text, but no sequence number, since it is not one of a
/// publisher session's numbered items.
pub fn text_item(id: Option<&str>, sender: &str, time: DateTime<Utc>, text: &str) -> Element {
    let text = sanitize::outgoing(text);
    let full_time = time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut post = el("post", NS_ITEM, &[("sender", sender), ("time", &full_time)]);
    post.append_text(text);
    item_with(id, post)
}

fn attr(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(sanitize::display)
}

/// JSON text on one line: compact when it parses, else as it came (whitespace collapsed);
/// bounded like a summary.
fn json_line(raw: &str) -> String {
    let line = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => v.to_string(),
        Err(_) => raw.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    sanitize::display_max(&line, crate::feed::payload::SUMMARY_CHARS)
}

/// Read one `<item/>` of node `node` (from an event or a retrieve result).
pub fn parse_item(node: &str, item: &Element) -> FeedItem {
    let id = item.attr("id").map(sanitize::text);
    let publisher = item
        .attr("publisher")
        .and_then(|p| xmpp_parsers::jid::Jid::new(p).ok())
        .map(|j| sanitize::display(j.to_bare().as_str()));
    let mut out = ItemParts {
        node: node.to_owned(),
        id,
        publisher,
        tree: super::tree::tree_of(item),
        ..ItemParts::default()
    };
    if let Some(post) = item.get_child("post", NS_ITEM) {
        out.format = ItemFormat::Native;
        out.sender = attr(post, "sender");
        out.time = attr(post, "time");
        out.text = sanitize::text(&post.text());
        let session = post.attr("session").map(sanitize::display);
        let n = post.attr("seq").and_then(|s| s.trim().parse::<u64>().ok());
        if let (Some(session), Some(n)) = (session, n) {
            let mut seq = Seq::new(session, n);
            seq.void = post.attr("void").map(parse_ranges).unwrap_or_default();
            seq.void.retain(|&(_, b)| b < n);
            out.seq = Some(seq);
        }
    } else if item.attr("message").is_some() || item.attr("sender").is_some() {
        out.format = ItemFormat::Wokkel;
        out.sender = attr(item, "sender");
        out.time = attr(item, "time");
        out.text = item.attr("message").map(sanitize::text).unwrap_or_default();
    } else if let Some(entry) = item.get_child("entry", NS_ATOM) {
        out.format = ItemFormat::Atom;
        let child_text = |name: &str| {
            entry
                .get_child(name, NS_ATOM)
                .map(|c| sanitize::text(c.text().trim()))
                .filter(|t| !t.is_empty())
        };
        out.sender = entry
            .get_child("author", NS_ATOM)
            .and_then(|a| a.get_child("name", NS_ATOM))
            .map(|n| sanitize::display(n.text().trim()));
        out.time = child_text("updated").or_else(|| child_text("published"));
        // Title and summary as text (an HTML or XHTML one reduced), the summary on one line.
        let (title, summary) = crate::feed::render::atom_title_summary(&out.tree);
        let summary = summary.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        out.text = match (title, summary) {
            (Some(t), Some(s)) => format!("{t} — {s}"),
            (Some(t), None) => t,
            (None, Some(s)) => s,
            (None, None) => "(empty Atom entry)".to_owned(),
        };
    } else if let Some(json) = item.get_child("json", NS_JSON) {
        out.format = ItemFormat::Json;
        out.text = json_line(&json.text());
    } else {
        out.text = out.tree.summary();
    }
    out.into()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::parse_xml as parse;
    use crate::xmpp::proto::to_xml;

    #[test]
    fn publish_round_trips_through_our_parser() {
        let item = OutgoingItem {
            node: "test".into(),
            sender: "alice@localhost/tui".into(),
            time: DateTime::parse_from_rfc3339("2026-11-24T07:56:57.123Z")
                .expect("valid time")
                .with_timezone(&Utc),
            seq: Seq {
                session: "ab12cd34".into(),
                n: 7,
                void: vec![(2, 3), (5, 5)],
            },
            text: "a<b>&c]]> \"quoted\" 'single'\nline two".into(),
        };
        let el = item_element(&item);
        // Serialise and parse back, as the wire would.
        let mut buf = Vec::new();
        el.write_to(&mut buf).expect("serialises");
        let back: Element = String::from_utf8(buf)
            .expect("utf8")
            .parse()
            .expect("parses");
        let parsed = parse_item("test", &back);
        assert_eq!(parsed.id(), Some("ab12cd34-7"));
        assert_eq!(parsed.text(), item.text);
        assert_eq!(parsed.sender(), Some("alice@localhost/tui"));
        assert_eq!(parsed.time(), Some("2026-11-24T07:56:57.123Z"));
        assert_eq!(parsed.seq().map(|s| s.to_seq()), Some(item.seq.clone()));
        assert_eq!(parsed.format, ItemFormat::Native);
        // Seed compatibility: the Wokkel attributes are there too (the writer escapes the
        // line break, so it survives attribute normalisation).
        assert_eq!(back.attr("message"), Some(item.text.as_str()));
        assert_eq!(back.attr("time"), Some("07:56:57"));
        assert_eq!(back.attr("sender"), Some("alice@localhost/tui"));
    }

    #[test]
    fn a_long_text_is_whole_in_the_payload_and_short_in_the_attribute() {
        let text = "日".repeat(3000); // 9,000 bytes: over rxml's 8 KiB attribute limit
        let item = OutgoingItem {
            node: "n".into(),
            sender: "a@b/c".into(),
            time: Utc::now(),
            seq: Seq::new("s", 1),
            text: text.clone(),
        };
        let el = item_element(&item);
        let message = el.attr("message").expect("message attribute");
        assert!(message.len() <= MESSAGE_ATTR_MAX_BYTES, "{}", message.len());
        assert!(message.ends_with('…'));
        let back: Element = to_xml(&el).parse().expect("parses");
        assert_eq!(parse_item("n", &back).text(), text);
        // The size check counts escapes.
        assert!(check_text_size(&"x".repeat(MAX_TEXT_XML_BYTES)).is_ok());
        assert!(check_text_size(&"x".repeat(MAX_TEXT_XML_BYTES + 1)).is_err());
        let err = check_text_size(&"<".repeat(MAX_TEXT_XML_BYTES / 4 + 1)).expect_err("escapes");
        assert!(err.contains("as XML"), "{err}");
        // The largest text fits Prosody's stanza limit in a whole publish.
        let mut big = item.clone();
        big.text = "z".repeat(MAX_TEXT_XML_BYTES);
        let iq_payload = to_xml(
            &crate::xmpp::proto::pubsub::Publish::new(&big.node, item_element(&big)).build(),
        );
        assert!(
            iq_payload.len() < MAX_ITEM_XML_BYTES,
            "{}",
            iq_payload.len()
        );
        const { assert!(MAX_ITEM_XML_BYTES + 1024 < 256 * 1024) };
    }

    #[test]
    fn unknown_and_empty_payloads() {
        let item = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='x'><geoloc xmlns='http://jabber.org/protocol/geoloc'><lat>45.44</lat><lon>12.33</lon></geoloc></item>",
        );
        let parsed = parse_item("n", &item);
        assert_eq!(parsed.format, ItemFormat::Unknown);
        assert_eq!(parsed.text(), "geoloc · lat 45.44 · lon 12.33");
        assert!(
            parsed.xml().contains("<lat>45.44</lat>"),
            "{}",
            parsed.xml()
        );
        // The issue's sensor reading: text of separate elements stays apart, units follow.
        let reading = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='r'><reading xmlns='urn:example:sensor'><temp unit='C'>21.5</temp><hum>40</hum></reading></item>",
        );
        assert_eq!(
            parse_item("n", &reading).text(),
            "reading · temp 21.5 C · hum 40"
        );
        // A payload holding only text reads as its name and text.
        let status = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='s'><status xmlns='urn:x'>  all\n good </status></item>",
        );
        assert_eq!(parse_item("n", &status).text(), "status · all good");
        let empty = parse("<item xmlns='http://jabber.org/protocol/pubsub' id='y'/>");
        assert_eq!(parse_item("n", &empty).text(), "(no payload)");
    }

    #[test]
    fn json_payloads_read_as_one_compact_line() {
        let item = parse(
            r#"<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{ "temp": 21.5,
  "tags": ["a", "b"] }</json></item>"#,
        );
        let parsed = parse_item("n", &item);
        assert_eq!(parsed.format, ItemFormat::Json);
        // In the document's order.
        assert_eq!(parsed.text(), r#"{"temp":21.5,"tags":["a","b"]}"#);
        let bad = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{not json\n  at all</json></item>",
        );
        assert_eq!(parse_item("n", &bad).text(), "{not json at all");
        // Numbers as written: no rounding through f64.
        let big = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='j'><json xmlns='urn:xmpp:json:0'>{\"big\": 12345678901234567890123, \"num\": 1.50}</json></item>",
        );
        assert_eq!(
            parse_item("n", &big).text(),
            r#"{"big":12345678901234567890123,"num":1.50}"#
        );
    }
}
