//! Building and reading the XEP-0060 elements we use.
//!
//! We build and read `<pubsub/>` payloads with minidom rather than xmpp-parsers' typed structs,
//! because we need what those structs drop: attributes on `<item/>` (the seed-era Wokkel
//! format), an RSM `<set/>` next to `<items/>`, and tolerance for what real services send.
//! Every parser here returns sanitised domain values and never panics on odd input.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;
use xmpp_parsers::minidom::{Element, rxml::NcName};

use crate::feed::{FeedItem, ItemFormat, Seq};
use crate::sanitize;
use crate::xmpp::error::RequestError;

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
pub const NS_DATA: &str = "jabber:x:data";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_ATOM: &str = "http://www.w3.org/2005/Atom";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// Our own payload namespace. Other clients can ignore the element; the Wokkel-style attributes
/// on `<item/>` carry the same sender, time and text.
pub const NS_ITEM: &str = "urn:x-pubsub-tui:item:0";
/// The node-wide sequence number our relay service (`serve`) adds beside each notification
/// (`<seq node='N' n='42'/>` in the `<message/>`) and each retrieve result (`<seq node='N'
/// head='42'/>` in the `<pubsub/>`). Clients that do not know it ignore it.
pub const NS_SEQ: &str = "urn:x-pubsub-tui:seq:0";

/// Longest text derived from an item of an unknown format (its element text, joined).
const MAX_UNKNOWN_CHARS: usize = 4096;
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
fn format_ranges(ranges: &[(u64, u64)]) -> String {
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
fn parse_ranges(s: &str) -> Vec<(u64, u64)> {
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

fn ncname(name: &str) -> NcName {
    NcName::try_from(name).expect("attribute names in this module are valid XML names")
}

/// An element with attributes (names must be valid XML names).
pub(crate) fn el(name: &str, ns: &str, attrs: &[(&str, &str)]) -> Element {
    let mut b = Element::builder(name, ns);
    for (k, v) in attrs {
        b = b.attr(ncname(k), *v);
    }
    b.build()
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

/// `<pubsub><subscribe node='N' jid='J'/></pubsub>`
pub fn subscribe(node: &str, jid: &str) -> Element {
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    p.append_child(el("subscribe", NS_PUBSUB, &[("node", node), ("jid", jid)]));
    p
}

/// `<pubsub><items node='N'/></pubsub>`: retrieve everything the service keeps.
pub fn retrieve_items(node: &str) -> Element {
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    p.append_child(el("items", NS_PUBSUB, &[("node", node)]));
    p
}

/// A retrieve with an RSM page request (XEP-0059): `max` items, after the item `after`.
/// Services without RSM ignore the `<set/>` and answer with everything (Prosody does).
pub fn retrieve_page(node: &str, max: u32, after: Option<&str>) -> Element {
    let mut p = retrieve_items(node);
    let mut set = el("set", NS_RSM, &[]);
    let mut m = el("max", NS_RSM, &[]);
    m.append_text(max.to_string());
    set.append_child(m);
    if let Some(after) = after {
        let mut a = el("after", NS_RSM, &[]);
        a.append_text(after.to_owned());
        set.append_child(a);
    }
    p.append_child(set);
    p
}

/// What an RSM `<set/>` in a reply says about the page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The id to ask for the next page after.
    pub last: Option<String>,
    /// How many items the service has in all, if it says.
    pub count: Option<u64>,
}

/// Read the `<set/>` beside `<items/>` (by hand: xmpp-parsers' `PubSub` rejects it).
pub fn parse_page(payload: Option<&Element>) -> Option<Page> {
    let set = payload?.get_child("set", NS_RSM)?;
    Some(Page {
        last: set
            .get_child("last", NS_RSM)
            .map(tokio_xmpp::minidom::Element::text)
            .filter(|t| !t.is_empty() && t.len() <= 1024),
        count: set
            .get_child("count", NS_RSM)
            .and_then(|c| c.text().trim().parse().ok()),
    })
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

/// `<pubsub><publish node='N'><item …/></publish></pubsub>`
pub fn publish(item: &OutgoingItem) -> Element {
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    let mut publish = el("publish", NS_PUBSUB, &[("node", &item.node)]);
    publish.append_child(item_element(item));
    p.append_child(publish);
    p
}

/// `<pubsub><retract node='N' notify='true'><item id='I'/></retract></pubsub>`
pub fn retract(node: &str, id: &str) -> Element {
    let mut r = el("retract", NS_PUBSUB, &[("node", node), ("notify", "true")]);
    r.append_child(el("item", NS_PUBSUB, &[("id", id)]));
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    p.append_child(r);
    p
}

/// `<pubsub xmlns='…#owner'><purge node='N'/></pubsub>` (owner only).
pub fn purge(node: &str) -> Element {
    let mut p = el("pubsub", NS_PUBSUB_OWNER, &[]);
    p.append_child(el("purge", NS_PUBSUB_OWNER, &[("node", node)]));
    p
}

/// Create a node with an open publish model (owner/admin only on Prosody).
pub fn create_node(node: &str, max_items: u32) -> Element {
    let field = |var: &str, value: &str, hidden: bool| {
        let mut f = if hidden {
            el("field", NS_DATA, &[("var", var), ("type", "hidden")])
        } else {
            el("field", NS_DATA, &[("var", var)])
        };
        let mut v = el("value", NS_DATA, &[]);
        v.append_text(value.to_owned());
        f.append_child(v);
        f
    };
    let mut x = el("x", NS_DATA, &[("type", "submit")]);
    x.append_child(field(
        "FORM_TYPE",
        "http://jabber.org/protocol/pubsub#node_config",
        true,
    ));
    x.append_child(field("pubsub#publish_model", "open", false));
    x.append_child(field("pubsub#access_model", "open", false));
    x.append_child(field("pubsub#max_items", &max_items.to_string(), false));
    let mut configure = el("configure", NS_PUBSUB, &[]);
    configure.append_child(x);
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    p.append_child(el("create", NS_PUBSUB, &[("node", node)]));
    p.append_child(configure);
    p
}

fn attr(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(sanitize::display)
}

/// The text of an element and its descendants, bounded in length and depth-safe
/// (iterative, so a deeply nested payload cannot overflow the stack here). Text of separate
/// elements is joined with a space, so `<lat>45.44</lat><lon>12.33</lon>` reads `45.44 12.33`.
fn deep_text(root: &Element, max_chars: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut len = 0;
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        if len > max_chars * 4 {
            break;
        }
        let t = e.text();
        let t = t.trim();
        if !t.is_empty() {
            len += t.len() + 1;
            parts.push(t.to_owned());
        }
        let children: Vec<&Element> = e.children().collect();
        stack.extend(children.into_iter().rev());
    }
    sanitize::display_max(&parts.join(" "), max_chars)
}

/// The element as XML text (what was received; empty if it cannot be written).
pub fn to_xml(e: &Element) -> String {
    let mut buf = Vec::new();
    match e.write_to(&mut buf) {
        Ok(()) => String::from_utf8(buf).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Read one `<item/>` of node `node` (from an event or a retrieve result).
pub fn parse_item(node: &str, item: &Element) -> FeedItem {
    let id = item.attr("id").map(sanitize::text);
    let publisher = item
        .attr("publisher")
        .and_then(|p| xmpp_parsers::jid::Jid::new(p).ok())
        .map(|j| sanitize::display(j.to_bare().as_str()));
    let mut out = FeedItem {
        node: node.to_owned(),
        id,
        sender: None,
        publisher,
        time: None,
        seq: None,
        service_seq: None,
        text: String::new(),
        format: ItemFormat::Unknown,
        xml: to_xml(item),
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
        let title = child_text("title");
        let summary = child_text("summary").or_else(|| child_text("content"));
        out.text = match (title, summary) {
            (Some(t), Some(s)) => format!("{t} — {s}"),
            (Some(t), None) => t,
            (None, Some(s)) => s,
            (None, None) => "(empty Atom entry)".to_owned(),
        };
    } else if let Some(payload) = item.children().next() {
        let name = sanitize::display_max(payload.name(), 64);
        let text = deep_text(payload, MAX_UNKNOWN_CHARS);
        out.text = if text.is_empty() {
            format!("<{name}/>")
        } else {
            format!("<{name}> {text}")
        };
    } else {
        "(no payload)".clone_into(&mut out.text);
    }
    out
}

/// One thing a `<event/>` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPart {
    Items { node: String, items: Vec<FeedItem> },
    Retract { node: String, id: String },
    Purge { node: String },
    Delete { node: String },
}

impl EventPart {
    pub fn node(&self) -> &str {
        match self {
            Self::Items { node, .. }
            | Self::Retract { node, .. }
            | Self::Purge { node }
            | Self::Delete { node } => node,
        }
    }
}

/// Read a pubsub `<event/>` payload. Unknown children are skipped.
pub fn parse_event(event: &Element) -> Vec<EventPart> {
    let mut parts = Vec::new();
    for child in event.children() {
        if child.ns() != NS_PUBSUB_EVENT {
            continue;
        }
        let Some(node) = child.attr("node").map(sanitize::display) else {
            continue;
        };
        match child.name() {
            "items" => {
                let mut items = Vec::new();
                for c in child.children() {
                    match c.name() {
                        "item" => items.push(parse_item(&node, c)),
                        "retract" => {
                            if let Some(id) = c.attr("id") {
                                parts.push(EventPart::Retract {
                                    node: node.clone(),
                                    id: sanitize::text(id),
                                });
                            }
                        }
                        _ => {}
                    }
                }
                if !items.is_empty() {
                    parts.push(EventPart::Items { node, items });
                }
            }
            "purge" => parts.push(EventPart::Purge { node }),
            "delete" => parts.push(EventPart::Delete { node }),
            _ => {}
        }
    }
    parts
}

/// The event payload of a message, if it has one.
pub fn event_payload(payloads: &[Element]) -> Option<&Element> {
    payloads.iter().find(|p| p.is("event", NS_PUBSUB_EVENT))
}

/// The node-wide number a `serve` relay put beside a notification (`n`) or a retrieve
/// result (`head`) for `node`.
pub fn parse_service_seq<'a>(
    mut elements: impl Iterator<Item = &'a Element>,
    node: &str,
    attr: &str,
) -> Option<u64> {
    elements
        .find(|e| e.is("seq", NS_SEQ) && e.attr("node") == Some(node))
        .and_then(|e| e.attr(attr))
        .and_then(|n| n.trim().parse().ok())
}

/// Read the items of a retrieve result (`<pubsub><items node='N'>…</items></pubsub>`).
/// An RSM `<set/>` beside `<items/>` is allowed and ignored here.
pub fn parse_items_result(node: &str, payload: Option<&Element>) -> Vec<FeedItem> {
    let Some(items) = payload.and_then(|p| p.get_child("items", NS_PUBSUB)) else {
        return Vec::new();
    };
    items
        .children()
        .filter(|c| c.name() == "item")
        .map(|c| parse_item(node, c))
        .collect()
}

/// The state of one followed node's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// Asked; no answer yet (or not connected yet).
    Subscribing,
    Subscribed,
    /// The node's owner must approve the subscription first.
    Pending,
    /// The service wants the subscription configured before it delivers.
    Unconfigured,
    /// A temporary failure (the service is not online, no answer): attempt `attempt` failed
    /// and the next one follows after `retry_in`.
    Retrying {
        error: RequestError,
        attempt: u32,
        retry_in: Duration,
    },
    /// Failed for good; `r` (a resync) tries again.
    Failed(RequestError),
}

impl SubState {
    /// A short word for lists and JSON: `subscribing`, `subscribed`, `retrying`, `failed`, …
    pub fn name(&self) -> &'static str {
        match self {
            Self::Subscribing => "subscribing",
            Self::Subscribed => "subscribed",
            Self::Pending => "pending",
            Self::Unconfigured => "unconfigured",
            Self::Retrying { .. } => "retrying",
            Self::Failed(_) => "failed",
        }
    }

    pub fn error(&self) -> Option<&RequestError> {
        match self {
            Self::Retrying { error, .. } | Self::Failed(error) => Some(error),
            _ => None,
        }
    }
}

impl std::fmt::Display for SubState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retrying {
                error, retry_in, ..
            } => write!(f, "retrying in {} s ({error})", retry_in.as_secs().max(1)),
            Self::Failed(e) => write!(f, "failed: {e}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Read a subscribe result. An empty result means the subscription was accepted.
pub fn parse_subscription_result(payload: Option<&Element>) -> SubState {
    let sub = payload.and_then(|p| p.get_child("subscription", NS_PUBSUB));
    match sub.and_then(|s| s.attr("subscription")) {
        Some("pending") => SubState::Pending,
        Some("unconfigured") => SubState::Unconfigured,
        Some("none") => SubState::Failed(RequestError::Invalid(
            "the service answered with subscription='none'".into(),
        )),
        _ => SubState::Subscribed,
    }
}

/// `<pubsub><unsubscribe node='N' jid='J' [subid='S']/></pubsub>`
pub fn unsubscribe(node: &str, jid: &str, subid: Option<&str>) -> Element {
    let mut u = el("unsubscribe", NS_PUBSUB, &[("node", node), ("jid", jid)]);
    if let Some(subid) = subid {
        u.set_attr(
            xmpp_parsers::minidom::rxml::Namespace::NONE,
            ncname("subid"),
            subid,
        );
    }
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    p.append_child(u);
    p
}

/// `<pubsub><subscriptions/></pubsub>`: every subscription of our account at the service.
pub fn subscriptions() -> Element {
    let mut p = el("pubsub", NS_PUBSUB, &[]);
    p.append_child(el("subscriptions", NS_PUBSUB, &[]));
    p
}

/// `<ping xmlns='urn:xmpp:ping'/>`
pub fn ping() -> Element {
    el("ping", NS_PING, &[])
}

/// One subscription a service listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub node: String,
    pub jid: String,
    pub subid: Option<String>,
    /// `subscribed`, `pending`, `unconfigured` or `none`.
    pub state: String,
}

/// Read a `<subscriptions/>` result (entries without a node or a JID are skipped).
pub fn parse_subscriptions(payload: Option<&Element>) -> Vec<Subscription> {
    let Some(list) = payload.and_then(|p| p.get_child("subscriptions", NS_PUBSUB)) else {
        return Vec::new();
    };
    list.children()
        .filter(|c| c.is("subscription", NS_PUBSUB))
        .filter_map(|c| {
            Some(Subscription {
                node: c.attr("node").or(list.attr("node"))?.to_owned(),
                jid: c.attr("jid")?.to_owned(),
                subid: c.attr("subid").map(str::to_owned),
                state: c.attr("subscription").unwrap_or("subscribed").to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().expect("fixture XML parses")
    }

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
        assert_eq!(parsed.id.as_deref(), Some("ab12cd34-7"));
        assert_eq!(parsed.text, item.text);
        assert_eq!(parsed.sender.as_deref(), Some("alice@localhost/tui"));
        assert_eq!(parsed.time.as_deref(), Some("2026-11-24T07:56:57.123Z"));
        assert_eq!(parsed.seq, Some(item.seq.clone()));
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
        assert_eq!(parse_item("n", &back).text, text);
        // The size check counts escapes.
        assert!(check_text_size(&"x".repeat(MAX_TEXT_XML_BYTES)).is_ok());
        assert!(check_text_size(&"x".repeat(MAX_TEXT_XML_BYTES + 1)).is_err());
        let err = check_text_size(&"<".repeat(MAX_TEXT_XML_BYTES / 4 + 1)).expect_err("escapes");
        assert!(err.contains("as XML"), "{err}");
        // The largest text fits Prosody's stanza limit in a whole publish.
        let mut big = item.clone();
        big.text = "z".repeat(MAX_TEXT_XML_BYTES);
        let iq_payload = to_xml(&publish(&big));
        assert!(
            iq_payload.len() < MAX_ITEM_XML_BYTES,
            "{}",
            iq_payload.len()
        );
        const { assert!(MAX_ITEM_XML_BYTES + 1024 < 256 * 1024) };
    }

    #[test]
    fn subscriptions_lists_read() {
        let reply = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions><subscription node='a' jid='u@x/pubsub-tui-1' subscription='subscribed' subid='s1'/><subscription node='b' jid='u@x/y'/><subscription jid='no-node@x'/></subscriptions></pubsub>",
        );
        let subs = parse_subscriptions(Some(&reply));
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].subid.as_deref(), Some("s1"));
        assert_eq!(subs[1].state, "subscribed");
        let unsub = unsubscribe("a", "u@x/y", Some("s1"));
        let u = unsub.get_child("unsubscribe", NS_PUBSUB).expect("child");
        assert_eq!(u.attr("subid"), Some("s1"));
    }

    #[test]
    fn builders_produce_expected_xml() {
        let sub = subscribe("test", "bob@localhost/x");
        let child = sub
            .get_child("subscribe", NS_PUBSUB)
            .expect("subscribe child");
        assert_eq!(child.attr("node"), Some("test"));
        assert_eq!(child.attr("jid"), Some("bob@localhost/x"));
        let items = retrieve_items("n1");
        assert_eq!(
            items
                .get_child("items", NS_PUBSUB)
                .and_then(|c| c.attr("node")),
            Some("n1")
        );
        let create = create_node("demo", 256);
        assert!(create.get_child("create", NS_PUBSUB).is_some());
        let x = create
            .get_child("configure", NS_PUBSUB)
            .and_then(|c| c.get_child("x", NS_DATA))
            .expect("data form");
        let vars: Vec<_> = x.children().filter_map(|f| f.attr("var")).collect();
        assert!(vars.contains(&"pubsub#publish_model"));
    }

    #[test]
    fn unknown_and_empty_payloads() {
        let item = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='x'><geoloc xmlns='http://jabber.org/protocol/geoloc'><lat>45.44</lat><lon>12.33</lon></geoloc></item>",
        );
        let parsed = parse_item("n", &item);
        assert_eq!(parsed.format, ItemFormat::Unknown);
        assert_eq!(parsed.text, "<geoloc> 45.44 12.33");
        assert!(parsed.xml.contains("<lat>45.44</lat>"), "{}", parsed.xml);
        let empty = parse("<item xmlns='http://jabber.org/protocol/pubsub' id='y'/>");
        assert_eq!(parse_item("n", &empty).text, "(no payload)");
    }

    #[test]
    fn rsm_page_requests_and_replies() {
        let req = retrieve_page("feed", 100, Some("7037B7237A0BB"));
        let set = req.get_child("set", NS_RSM).expect("set");
        assert_eq!(
            set.get_child("max", NS_RSM).map(Element::text).as_deref(),
            Some("100")
        );
        assert_eq!(
            set.get_child("after", NS_RSM).map(Element::text).as_deref(),
            Some("7037B7237A0BB")
        );
        let reply = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='feed'/><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a</first><last>b</last><count>1000</count></set></pubsub>",
        );
        assert_eq!(
            parse_page(Some(&reply)),
            Some(Page {
                last: Some("b".into()),
                count: Some(1000)
            })
        );
        let plain = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='feed'/></pubsub>",
        );
        assert_eq!(parse_page(Some(&plain)), None);
    }

    #[test]
    fn subscription_results() {
        assert_eq!(parse_subscription_result(None), SubState::Subscribed);
        let pending = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='a@b/c' subscription='pending'/></pubsub>",
        );
        assert_eq!(parse_subscription_result(Some(&pending)), SubState::Pending);
    }
}
