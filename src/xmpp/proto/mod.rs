//! The protocol elements we send and read: one module per element family, each a typed value
//! with `build` (to an element) and `parse` (from one). The client session and `serve` use
//! the same pairs, so what one builds the other reads. The modules' tests round-trip literal
//! XML; `tests/proto_captured.rs` parses, checks and round-trips the answers of Prosody,
//! ejabberd and `serve` to the same requests, captured on the wire.
//!
//! - [`pubsub`]: the `…/pubsub` requests and results (subscribe, unsubscribe, subscriptions,
//!   items, publish, retract, create), with RSM paging.
//! - [`owner`]: the `…/pubsub#owner` requests (configure, delete, purge, affiliations,
//!   subscriptions).
//! - [`form`]: data forms (XEP-0004), for node configuration and publish-options.
//! - [`event`]: `…/pubsub#event` notifications.
//! - [`disco`]: service discovery (XEP-0030): nodes and their meta-data.
//! - [`item`]: the items themselves: our format, the seed-era Wokkel attributes, Atom, and
//!   anything else.
//! - [`seq`]: `serve`'s node-wide sequence numbers beside notifications and results.
//!
//! Where xmpp-parsers' types fit they are used inside (disco, RSM, data forms). Where they do
//! not, minidom is read by hand, and the module says why: xmpp-parsers' `PubSub` rejects an
//! RSM `<set/>` beside `<items/>` and drops attributes of `<item/>` (the Wokkel format), and
//! several of its pubsub structs have private fields and no constructor.
//!
//! Every parser returns sanitised values ([`crate::sanitize`]) and never panics on odd input.

pub mod disco;
pub mod event;
pub mod form;
pub mod item;
pub mod owner;
pub mod pubsub;
pub mod seq;
pub mod tree;

use xmpp_parsers::minidom::{Element, rxml::NcName};

use std::fmt::Write as _;

use crate::sanitize;

pub use item::{
    MAX_ITEM_XML_BYTES, MAX_TEXT_XML_BYTES, OutgoingItem, check_text_size, parse_item, text_xml_len,
};
pub use pubsub::SubState;

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
pub const NS_PUBSUB_META: &str = "http://jabber.org/protocol/pubsub#meta-data";
pub const NS_DATA: &str = "jabber:x:data";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_ATOM: &str = "http://www.w3.org/2005/Atom";
/// JSON carried in XML (XEP-0335).
pub const NS_JSON: &str = "urn:xmpp:json:0";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Our own payload namespace. Other clients can ignore the element; the Wokkel-style attributes
/// on `<item/>` carry the same sender, time and text.
pub const NS_ITEM: &str = "urn:x-pubsub-tui:item:0";
/// The node-wide sequence number our relay service (`serve`) adds beside each notification
/// (`<seq node='N' n='42'/>` in the `<message/>`) and each retrieve result (`<seq node='N'
/// head='42'/>` in the `<pubsub/>`). Clients that do not know it ignore it.
pub const NS_SEQ: &str = "urn:x-pubsub-tui:seq:0";

/// A name for an attribute or element (the names in this module tree are all valid).
pub(crate) fn ncname(name: &str) -> NcName {
    NcName::try_from(name).expect("names in the proto modules are valid XML names")
}

/// An element with attributes (names must be valid XML names).
pub(crate) fn el(name: &str, ns: &str, attrs: &[(&str, &str)]) -> Element {
    let mut b = Element::builder(name, ns);
    for (k, v) in attrs {
        b = b.attr(ncname(k), *v);
    }
    b.build()
}

/// Set an attribute with no namespace.
pub(crate) fn set_attr(e: &mut Element, name: &str, value: impl Into<String>) {
    e.set_attr(
        xmpp_parsers::minidom::rxml::Namespace::NONE,
        ncname(name),
        value.into(),
    );
}

/// `<parent><child/></parent>` in one namespace.
pub(crate) fn wrap(parent: &str, ns: &str, child: Element) -> Element {
    let mut p = el(parent, ns, &[]);
    p.append_child(child);
    p
}

/// An element holding only text.
pub(crate) fn text_el(name: &str, ns: &str, text: &str) -> Element {
    let mut e = el(name, ns, &[]);
    e.append_text(text.to_owned());
    e
}

/// The element as XML text (what was received; empty if it cannot be written).
pub fn to_xml(e: &Element) -> String {
    let mut buf = Vec::new();
    match e.write_to(&mut buf) {
        Ok(()) => String::from_utf8(buf).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Deepest element [`pretty`] shows (deeper ones are elided).
const PRETTY_DEPTH: usize = 64;
/// Lines [`pretty`] gives at most.
const PRETTY_LINES: usize = 20_000;

/// An element as indented lines of XML for a person to read, each line safe to show on a
/// terminal (control and bidi characters gone; text kept whole, on one line). Namespaces are
/// declared where they change, as in the source. Depth and length are bounded, and the walk
/// does not recurse, so any element a peer sends can be shown.
pub fn pretty(root: &Element) -> Vec<String> {
    enum Step<'a> {
        Open(&'a Element, usize, Option<String>),
        Close(&'a Element, usize),
    }
    let mut out = Vec::new();
    let mut stack = vec![Step::Open(root, 0, None)];
    while let Some(step) = stack.pop() {
        if out.len() >= PRETTY_LINES {
            out.push("… (cut: too long to show)".to_owned());
            break;
        }
        match step {
            Step::Close(e, depth) => {
                out.push(format!("{}</{}>", "  ".repeat(depth), e.name()));
            }
            Step::Open(e, depth, parent_ns) => {
                let pad = "  ".repeat(depth);
                if depth >= PRETTY_DEPTH {
                    out.push(format!("{pad}… (nested too deep to show)"));
                    continue;
                }
                let mut tag = format!("<{}", e.name());
                let ns = e.ns();
                if parent_ns.as_deref() != Some(ns.as_str()) {
                    let _ = write!(tag, " xmlns='{}'", sanitize::display_max(&ns, 300));
                }
                for ((_, name), v) in e.attrs() {
                    let _ = write!(
                        tag,
                        " {}='{}'",
                        name.as_str(),
                        sanitize::display_max(v, 100_000)
                    );
                }
                let children: Vec<&Element> = e.children().collect();
                let text = e.text();
                let text = text.trim();
                if children.is_empty() && text.is_empty() {
                    out.push(format!("{pad}{tag}/>"));
                } else if children.is_empty() && !text.contains('\n') {
                    out.push(format!(
                        "{pad}{tag}>{}</{}>",
                        sanitize::display_max(text, 100_000),
                        e.name()
                    ));
                } else {
                    out.push(format!("{pad}{tag}>"));
                    // Text of several lines shows as its lines.
                    for line in sanitize::text(text).lines() {
                        out.push(format!("{pad}  {}", sanitize::display_max(line, 100_000)));
                    }
                    if children.is_empty() {
                        out.push(format!("{pad}</{}>", e.name()));
                        continue;
                    }
                    stack.push(Step::Close(e, depth));
                    for c in children.into_iter().rev() {
                        stack.push(Step::Open(c, depth + 1, Some(ns.clone())));
                    }
                }
            }
        }
    }
    out
}

/// An element as XML to edit: indented between child elements where that changes nothing
/// (an element holding only elements), and written exactly as it is everywhere else (text,
/// with its line breaks, and attribute values, whole). [`parse_payload`] reads it back to the
/// same element. Bounded like [`pretty`], without recursion.
pub fn editable(root: &Element) -> String {
    enum Step<'a> {
        Open(&'a Element, usize, Option<String>),
        Close(&'a Element, usize),
    }
    let mut out = String::new();
    let mut stack = vec![Step::Open(root, 0, None)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Close(e, depth) => {
                let _ = writeln!(out, "{}</{}>", "  ".repeat(depth), e.name());
            }
            Step::Open(e, depth, parent_ns) => {
                let pad = "  ".repeat(depth);
                let only_elements = e.children().next().is_some()
                    && e.texts().all(|t| t.trim().is_empty())
                    && depth < PRETTY_DEPTH;
                if !only_elements {
                    // Exactly as it is (minidom declares its namespace on it).
                    let _ = writeln!(out, "{pad}{}", to_xml(e));
                    continue;
                }
                let ns = e.ns();
                let _ = write!(out, "{pad}<{}", e.name());
                if parent_ns.as_deref() != Some(ns.as_str()) {
                    let _ = write!(out, " xmlns='{}'", escape_attr(&ns));
                }
                for ((_, name), v) in e.attrs() {
                    let _ = write!(out, " {}='{}'", name.as_str(), escape_attr(v));
                }
                out.push_str(">\n");
                stack.push(Step::Close(e, depth));
                for c in e.children().collect::<Vec<_>>().into_iter().rev() {
                    stack.push(Step::Open(c, depth + 1, Some(ns.clone())));
                }
            }
        }
    }
    out
}

/// An attribute value, escaped for single quotes.
fn escape_attr(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// The deepest payload a person may give (a file to publish or import, an edit): with the
/// `<iq/>`, `<pubsub/>`, `<publish/>` and `<item/>` around it, it still arrives whole
/// through the stream guard's 64 levels. Deeper XML would also crash the XML parser's
/// recursion a few hundred levels down.
pub const MAX_PAYLOAD_DEPTH: usize = 60;

/// Refuse XML nested deeper than `max` levels, before any parser sees it.
pub fn check_depth(text: &str, max: usize) -> Result<(), String> {
    let mut scanner = super::guard::Scanner::for_document();
    // What the scanner refuses (comments, non-XML) the parser says better: depth only here.
    let _ = scanner.feed(text.trim_start_matches('\u{feff}').trim_start().as_bytes());
    let depth = scanner.deepest();
    if depth > max {
        return Err(format!(
            "the XML is nested {depth} levels deep; a payload may be nested {max} at most"
        ));
    }
    Ok(())
}

/// A payload typed or edited by a person: one XML element with its namespace (an XML
/// declaration and a byte-order mark before it are fine), nothing after it, the indentation
/// between its child elements dropped (text of elements holding only text stays as it is).
/// `Err` says in words what is wrong.
pub fn parse_payload(text: &str) -> Result<Element, String> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err("it is empty: give one XML element, such as <reading xmlns='urn:example:sensor'>…</reading>".into());
    }
    check_depth(text, MAX_PAYLOAD_DEPTH)?;
    let mut e: Element = text.parse().map_err(|err| {
        let err = format!("{err:?}");
        if err.contains("long name or reference") {
            "a name or an attribute value is over 8 KiB, which XMPP's parsers refuse".to_owned()
        } else if err.contains("MissingNamespace") {
            "the element has no namespace: give it one, as in <reading xmlns='urn:example:sensor'>…</reading>".to_owned()
        } else if err.contains("RestrictedXml") || text.contains("<!") {
            "XMPP carries no comments, DTDs or CDATA sections: take them out".to_owned()
        } else {
            format!("not one well-formed XML element: {}", xml_error_words(&err))
        }
    })?;
    // Nothing may follow the element: read it again inside a wrapper, which sees the rest.
    let body = match text.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or("", |(_, after)| after),
        None => text,
    };
    let wrapped: Result<Element, _> =
        format!("<w xmlns='urn:x-pubsub-tui:wrap'>{body}</w>").parse();
    if let Ok(w) = wrapped {
        let extra_elements = w.children().count() > 1;
        let extra_text = w.texts().any(|t| !t.trim().is_empty());
        if extra_elements || extra_text {
            return Err(
                "there is more after the element (another element, or text): a payload is one element"
                    .into(),
            );
        }
    }
    strip_indentation(&mut e);
    Ok(e)
}

/// What the XML parser's error (its debug form) means, in words; its own name only when
/// there are none.
fn xml_error_words(err: &str) -> String {
    let said = [
        (
            "ElementMismatch",
            "a closing tag does not match the element it closes",
        ),
        ("Eof", "the text ends before the element is closed"),
        (
            "Undeclared",
            "a namespace prefix is used without being declared",
        ),
        ("InvalidChar", "a character that XML does not allow there"),
        (
            "UnexpectedToken",
            "markup where it cannot be (a stray <, > or quote?)",
        ),
    ];
    said.iter()
        .find(|(name, _)| err.contains(name))
        .map_or_else(
            || format!("the parser says {err}"),
            |(_, words)| (*words).to_owned(),
        )
}

/// Drop indentation (whitespace-only text with a line break) between child elements, all
/// the way down (without recursing).
fn strip_indentation(root: &mut Element) {
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        if e.children().next().is_some() {
            let nodes: Vec<xmpp_parsers::minidom::Node> = e
                .nodes()
                // Indentation goes; a space between inline elements stays.
                .filter(|n| {
                    !matches!(n, xmpp_parsers::minidom::Node::Text(t)
                        if t.trim().is_empty() && t.contains(['\n', '\r']))
                })
                .cloned()
                .collect();
            let mut copy = Element::builder(e.name(), e.ns()).build();
            *copy.attrs_mut() = e.attrs().clone();
            for n in nodes {
                copy.append_node(n);
            }
            *e = copy;
        }
        stack.extend(e.children_mut());
    }
}

/// `<ping xmlns='urn:xmpp:ping'/>`
pub fn ping() -> Element {
    el("ping", NS_PING, &[])
}

/// Parse literal XML in tests.
#[cfg(test)]
pub(crate) fn parse_xml(xml: &str) -> Element {
    xml.trim().parse().expect("fixture XML parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_one_element_and_says_what_is_wrong() {
        let ok = |t: &str| parse_payload(t).map(|e| e.name().to_owned());
        assert_eq!(ok("<a xmlns='u'/>"), Ok("a".into()));
        assert_eq!(
            ok("\u{feff}<?xml version='1.0'?>\n<a xmlns='u'/>\n"),
            Ok("a".into())
        );
        for (bad, why) in [
            ("", "it is empty"),
            ("  \n", "it is empty"),
            ("<a/>", "has no namespace"),
            ("<a xmlns='u'/><b/>", "more after the element"),
            ("<a xmlns='u'/>junk", "more after the element"),
            ("<!-- c --><a xmlns='u'/>", "no comments"),
            ("<!DOCTYPE a><a xmlns='u'/>", "no comments, DTDs"),
            ("<a xmlns='u'>", "not one well-formed XML element"),
            ("<a xmlns='u'>", "ends before the element is closed"),
            ("<a xmlns='u'><b></a>", "a closing tag does not match"),
            (
                &format!("<a xmlns='u' v='{}'/>", "A".repeat(8193)),
                "over 8 KiB",
            ),
        ] {
            let e = parse_payload(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(
                !e.contains("XmlError"),
                "words, not the parser's names: {e}"
            );
        }
    }

    #[test]
    fn deep_payloads_are_refused_before_the_parser_sees_them() {
        let nested = |n: usize| {
            format!(
                "<d xmlns='u'>{}x{}</d>",
                "<a>".repeat(n - 1),
                "</a>".repeat(n - 1)
            )
        };
        assert!(parse_payload(&nested(MAX_PAYLOAD_DEPTH)).is_ok());
        for n in [MAX_PAYLOAD_DEPTH + 1, 500, 5000] {
            let e = parse_payload(&nested(n)).expect_err("too deep");
            assert!(e.contains(&format!("nested {n} levels deep")), "{e}");
        }
        // Unclosed, too: counted as it opens.
        assert!(parse_payload(&"<a xmlns='u'>".repeat(100_000)).is_err());
    }

    #[test]
    fn an_edit_reads_back_to_the_same_payload() {
        let long = "x".repeat(7000);
        let payload = parse_xml(&format!(
            "<reading xmlns='urn:example:sensor' note='a &amp; &apos;b&apos; &lt;c&gt; &#10;d'><temp unit='C'>21.5</temp><log>first line\nsecond line\n  indented</log><x xmlns='urn:other' v='{long}'><y/></x><mixed>text <b>bold</b> tail</mixed></reading>"
        ));
        let text = editable(&payload);
        assert!(
            text.contains("first line\nsecond line\n  indented"),
            "{text}"
        );
        assert!(text.contains(&long), "attributes whole");
        assert!(
            text.starts_with("<reading xmlns='urn:example:sensor'"),
            "{text}"
        );
        assert_eq!(parse_payload(&text), Ok(payload.clone()), "{text}");
        // The view keeps the lines apart, and cuts nothing.
        let shown = pretty(&payload);
        assert!(shown.iter().any(|l| l.trim() == "second line"), "{shown:?}");
        assert!(shown.iter().any(|l| l.contains(&long)));
    }
}
