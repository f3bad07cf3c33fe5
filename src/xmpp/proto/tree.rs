//! Reading an `<item/>` element into the feed's bounded, sanitised [`Tree`]. The walk keeps
//! its own stack, so a payload nested any depth cannot overflow ours; the tree's builder
//! applies the bounds.

use xmpp_parsers::minidom::{Element, Node};

use crate::feed::payload::{Builder, Tree};

const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// The element and everything in it, as a [`Tree`].
pub fn tree_of(root: &Element) -> Tree {
    // Children are pushed reversed, texts among them, so they come out in document order.
    // An element's namespace is an index into `namespaces`: most share their parent's, which
    // is then not copied again (minidom gives a namespace only as a new `String`).
    enum Step<'a> {
        Open(&'a Element, usize, usize),
        Text(&'a str, usize),
    }
    let mut b = Builder::new();
    let mut namespaces: Vec<String> = vec![root.ns()];
    let mut steps: Vec<Step> = vec![Step::Open(root, 0, 0)];
    while let Some(step) = steps.pop() {
        match step {
            Step::Text(t, depth) => b.text(depth, t),
            Step::Open(e, depth, parent) => {
                let ns = match namespaces.get(parent) {
                    Some(p) if e.has_ns(p.as_str()) => parent,
                    _ => {
                        namespaces.push(e.ns());
                        namespaces.len() - 1
                    }
                };
                // An attribute in a namespace keeps it: `xml:` ones (`xml:lang`) their prefix,
                // others a prefix of ours (`ns1`, declared on the element by an `xmlns:ns1`
                // attribute). They are rare, and only they take a `String`.
                let mut prefixed: Vec<String> = Vec::new();
                let mut declared: Vec<(String, &str)> = Vec::new();
                for ((ans, name), _) in e.attrs() {
                    let uri = ans.as_str();
                    if uri.is_empty() {
                        continue;
                    }
                    if uri == NS_XML {
                        prefixed.push(format!("xml:{}", name.as_str()));
                        continue;
                    }
                    let k = declared
                        .iter()
                        .position(|(_, u)| *u == uri)
                        .unwrap_or_else(|| {
                            declared.push((format!("xmlns:ns{}", declared.len() + 1), uri));
                            declared.len() - 1
                        });
                    prefixed.push(format!("ns{}:{}", k + 1, name.as_str()));
                }
                let mut prefixed_name = prefixed.iter();
                let attrs = e
                    .attrs()
                    .iter()
                    .map(|((ans, name), v)| {
                        let name = if ans.as_str().is_empty() {
                            name.as_str()
                        } else {
                            prefixed_name.next().map_or("", String::as_str)
                        };
                        (name, v.as_str())
                    })
                    .chain(declared.iter().map(|(k, uri)| (k.as_str(), *uri)));
                let kept = b.open(depth, &namespaces[ns], e.name(), attrs);
                if !kept {
                    continue;
                }
                for n in e.nodes().rev() {
                    steps.push(match n {
                        Node::Element(c) => Step::Open(c, depth + 1, ns),
                        Node::Text(t) => Step::Text(t, depth + 1),
                    });
                }
            }
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::feed::payload::{Cut, MAX_BYTES, MAX_DEPTH, MAX_NODES};
    use crate::xmpp::proto::parse_xml as parse;

    const ITEM: &str = "http://jabber.org/protocol/pubsub";

    fn item(inner: &str) -> Element {
        parse(&format!("<item xmlns='{ITEM}' id='i'>{inner}</item>"))
    }

    #[test]
    fn a_tree_reads_back_to_the_same_element() {
        let e = item(
            "<reading xmlns='urn:example:sensor' note='a &amp; &apos;b&apos; &lt;c&gt; &#10;d'><temp unit='C'>21.5</temp><x xmlns='urn:other'><y/></x><mixed>text <b>bold</b> tail</mixed></reading>",
        );
        let t = tree_of(&e);
        assert_eq!(t.cut(), None);
        let back: Element = t.to_xml().parse().expect("the tree's XML parses");
        assert_eq!(back, e, "{}", t.to_xml());
        // Mixed content keeps its order.
        let mixed = t
            .iter()
            .position(|n| n.name() == Some("mixed"))
            .expect("mixed");
        assert_eq!(t.deep_text(mixed), "text bold tail");
        assert_eq!(t.own_text(mixed), "text  tail");
        // Namespaces are declared where they change, and only there.
        let lines = t.pretty();
        assert_eq!(lines[0], format!("<item xmlns='{ITEM}' id='i'>"));
        assert!(lines.iter().any(|l| l == "  <reading xmlns='urn:example:sensor' note='a &amp; &apos;b&apos; &lt;c&gt; &#10;d'>"), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l == "    <temp unit='C'>21.5</temp>"),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l == "    <x xmlns='urn:other'>"),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l == "      <y/>"), "{lines:#?}");
        assert_eq!(lines.last().map(String::as_str), Some("</item>"));
    }

    #[test]
    fn xml_attributes_and_a_namespace_that_comes_back_read_the_same() {
        let e = item(
            "<entry xmlns='urn:a' xml:lang='fr' b='1'><x xmlns='urn:b' xml:space='preserve'><y xmlns='urn:a' c='2'>t</y></x><z/></entry>",
        );
        let t = tree_of(&e);
        let xml = t.to_xml();
        assert!(
            xml.contains("xml:lang='fr'") && xml.contains("xml:space='preserve'"),
            "{xml}"
        );
        let back: Element = xml.parse().expect("the tree's XML parses");
        assert_eq!(back, e, "{xml}");
        let ns_of = |name: &str| {
            let i = t.iter().position(|n| n.name() == Some(name)).expect(name);
            t.ns(i).to_owned()
        };
        assert_eq!(ns_of("y"), "urn:a");
        assert_eq!(ns_of("z"), "urn:a");
        assert_eq!(ns_of("x"), "urn:b");
    }

    #[test]
    fn attributes_in_namespaces_keep_them() {
        let e = item(
            "<root xmlns='urn:x-a' xmlns:b='urn:x-b' xmlns:c='urn:x-c'><b:child b:attr='v1' c:attr='v2' plain='p' xml:lang='en'><c:leaf c:x='1' b:y='2'/></b:child></root>",
        );
        let t = tree_of(&e);
        let xml = t.to_xml();
        let back: Element = xml.parse().expect("well-formed (no attribute twice)");
        assert_eq!(back, e, "{xml}");
        let child = back
            .get_child("root", "urn:x-a")
            .and_then(|r| r.get_child("child", "urn:x-b"));
        let child = child.expect("child");
        assert_eq!(child.attr_ns("urn:x-b", "attr"), Some("v1"));
        assert_eq!(child.attr_ns("urn:x-c", "attr"), Some("v2"));
        assert_eq!(child.attr("plain"), Some("p"));
        // Control: two attributes of one name in two namespaces, which lost them before.
        assert_eq!(xml.matches(":attr='").count(), 2, "{xml}");
    }

    #[test]
    fn strings_kept_with_a_tree_are_found_in_it_or_added_and_the_tree_reads_the_same() {
        let mut t = tree_of(&item(
            "<post xmlns='urn:p' sender='a@x/r' time='12:00'>hello world</post>",
        ));
        let before = (t.to_xml(), t.len(), t.weight());
        let [found, inside, added, again, none, empty] = t.keep([
            Some("a@x/r"),
            Some("world"),
            Some("not in the payload"),
            Some("payload"),
            None,
            Some(""),
        ]);
        assert_eq!(t.kept(found), Some("a@x/r"));
        assert_eq!(t.kept(inside), Some("world"));
        assert_eq!(t.kept(added), Some("not in the payload"));
        // A string found in one added before it is not added twice.
        assert_eq!(t.kept(again), Some("payload"));
        assert_eq!(t.kept(none), None);
        assert_eq!(t.kept(empty), Some(""));
        assert_eq!(
            (t.to_xml(), t.len()),
            (before.0, before.1),
            "the tree reads the same"
        );
        assert_eq!(
            t.weight(),
            before.2 + "not in the payload".len(),
            "only what was not there was added"
        );
        // Kept non-ASCII text lands on character boundaries.
        let mut other = tree_of(&item("<p xmlns='urn:p'>naïve café</p>"));
        let [cafe, unicode] = other.keep([Some("café"), Some("ünïcode")]);
        assert_eq!(
            (other.kept(cafe), other.kept(unicode)),
            (Some("café"), Some("ünïcode"))
        );
    }

    #[test]
    fn a_line_separator_is_a_change_the_tree_counts() {
        let t = tree_of(&item("<p xmlns='urn:p' a='x\u{2028}y'>a\u{2029}b</p>"));
        assert_eq!(t.removed(), 2);
        assert!(!t.is_whole(), "not the item the service holds");
        assert!(
            tree_of(&item("<p xmlns='urn:p'>a\nb</p>")).is_whole(),
            "control"
        );
    }

    #[test]
    fn deep_payloads_are_cut_at_the_depth_bound() {
        let depth = 200;
        let inner = format!(
            "{}leaf{}",
            "<d xmlns='urn:d'>".repeat(depth),
            "</d>".repeat(depth)
        );
        let t = tree_of(&item(&inner));
        assert_eq!(t.cut(), Some(Cut::Depth));
        let deepest = t.iter().map(|n| n.depth()).max().unwrap_or(0);
        assert_eq!(deepest, MAX_DEPTH);
        assert!(
            t.pretty()
                .last()
                .is_some_and(|l| l.contains("deeper than 32"))
        );
        // What was kept is well-formed.
        let back: Element = t.to_xml().parse().expect("parses");
        assert_eq!(back.name(), "item");
        // Positive control: a payload just within the bound is whole.
        let ok = format!(
            "{}leaf{}",
            "<d xmlns='urn:d'>".repeat(MAX_DEPTH - 1),
            "</d>".repeat(MAX_DEPTH - 1)
        );
        let t = tree_of(&item(&ok));
        assert_eq!(t.cut(), None);
        assert!(t.strings().any(|s| s == "leaf"));
    }

    #[test]
    fn wide_and_huge_payloads_are_cut_at_their_bounds() {
        let wide = format!(
            "<w xmlns='urn:w'>{}</w>",
            "<c a='1'>v</c>".repeat(MAX_NODES)
        );
        let t = tree_of(&item(&wide));
        assert_eq!(t.cut(), Some(Cut::Nodes));
        assert_eq!(t.len(), MAX_NODES);
        let huge = format!("<h xmlns='urn:h'>{}</h>", "é".repeat(400_000));
        let t = tree_of(&item(&huge));
        assert_eq!(t.cut(), Some(Cut::Bytes));
        let kept: usize = t.strings().map(str::len).sum();
        assert!(kept <= MAX_BYTES && kept > MAX_BYTES - 100, "{kept}");
        assert!(
            t.to_xml().parse::<Element>().is_ok(),
            "cut on a char boundary"
        );
    }

    #[test]
    fn long_names_are_shortened_and_said_to_be() {
        let long = "n".repeat(300);
        let t = tree_of(&item(&format!("<{long} xmlns='urn:x'>v</{long}>")));
        assert_eq!(t.cut(), Some(Cut::Names));
        assert!(t.pretty().iter().any(|l| l.contains("…")));
        let ns = format!("urn:{}", "x".repeat(2000));
        let t = tree_of(&item(&format!("<a xmlns='{ns}'/>")));
        assert_eq!(t.cut(), Some(Cut::Names));
        // Control: ordinary names are whole and uncut.
        assert_eq!(tree_of(&item("<a xmlns='urn:x' b='c'/>")).cut(), None);
        // Many namespaces count against the byte bound.
        let long = "y".repeat(200);
        let mut many = String::new();
        for i in 0..2000 {
            let _ = write!(many, "<e xmlns='urn:{long}:{i}'/>");
        }
        let t = tree_of(&item(&format!("<w xmlns='urn:w'>{many}</w>")));
        assert_eq!(t.cut(), Some(Cut::Bytes));
    }

    #[test]
    fn what_a_peer_sends_is_sanitised() {
        let t = tree_of(&item(
            "<p xmlns='urn:p' v='x&#x9b;31m&#x202e;y'>a&#x9b;]0;title&#x85;b&#x202e;c\nline two</p>",
        ));
        let all: Vec<&str> = t.strings().collect();
        assert!(all.contains(&"x31my"), "{all:?}");
        assert!(all.contains(&"a]0;titlebc\nline two"), "{all:?}");
        for line in t.pretty() {
            assert!(
                !line
                    .chars()
                    .any(|c| c.is_control() || crate::sanitize::is_format_char(c)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn fields_are_found_by_element_or_attribute_name() {
        let t = tree_of(&item(
            "<reading xmlns='urn:s' temp='19'><temp unit='C'> 21.5 </temp><hum>40</hum></reading>",
        ));
        let temps: Vec<String> = t.field_values("temp").collect();
        assert_eq!(temps, ["19", "21.5"]);
        assert_eq!(t.field_values("unit").collect::<Vec<_>>(), ["C"]);
        assert_eq!(t.field_values("nothing").count(), 0);
        // The <item/>'s own id is not a payload field.
        assert_eq!(t.field_values("item").count(), 0);
    }

    #[test]
    fn repeated_strings_are_kept_once_and_read_back_whole() {
        // The text also in `message`, and well-known names.
        let e = item(
            "<post xmlns='urn:x-pubsub-tui:item:0' sender='alice@example.org/tui' time='t' seq='1' message='hello there, world'>hello there, world</post>",
        );
        let t = tree_of(&e);
        let back: Element = t.to_xml().parse().expect("the tree's XML parses");
        assert_eq!(back, e, "{}", t.to_xml());
        // The same payload with a namespace of no renown and a `message` that differs by one
        // character: the buffer then holds the namespace, and the text twice.
        let unlike = tree_of(&item(
            "<post xmlns='urn:x-pubsub-tui:item:1' sender='alice@example.org/tuI' time='t' seq='1' message='hello there, worlD'>hello there, world</post>",
        ));
        let repeated = "urn:x-pubsub-tui:item:1".len() + "hello there, world".len();
        assert_eq!(unlike.weight(), t.weight() + repeated);
    }

    #[test]
    fn a_text_kept_once_still_joins_the_run_after_a_left_out_element() {
        let mut b = Builder::new();
        assert!(b.open(
            0,
            ITEM,
            "item",
            [("message", "a repeated text")].into_iter()
        ));
        b.text(1, "a repeated text");
        // Too deep: left out, and the text after it joins the run before it.
        assert!(!b.open(MAX_DEPTH + 1, "urn:x", "deep", std::iter::empty()));
        b.text(1, " and more");
        let t = b.finish();
        assert_eq!(t.cut(), Some(Cut::Depth));
        assert_eq!(t.attr(0, "message"), Some("a repeated text"));
        assert_eq!(t.own_text(0), "a repeated text and more");
        assert_eq!(t.len(), 2, "one element and one run of text");
    }

    #[test]
    fn a_run_kept_once_that_moves_to_grow_counts_against_the_byte_bound() {
        let third = "a".repeat(MAX_BYTES / 3);
        let mut b = Builder::new();
        let attrs = [("message", third.as_str()), ("other", "a later value")];
        assert!(b.open(0, ITEM, "item", attrs.into_iter()));
        b.text(1, &third); // kept once: the first attribute's value, not at the buffer's end
        assert!(!b.open(MAX_DEPTH + 1, "urn:x", "deep", std::iter::empty()));
        // Joining moves the run to the end of the buffer (a second copy of it): with that
        // copy, the new text no longer fits whole, and is cut at the bound.
        let more = "b".repeat(MAX_BYTES / 2);
        b.text(1, &more);
        let t = b.finish();
        assert_eq!(t.cut(), Some(Cut::Bytes));
        let text = t.own_text(0);
        assert!(text.starts_with(&third) && text.ends_with('b'));
        assert!(t.weight() <= MAX_BYTES + 100, "{}", t.weight());
    }
}
