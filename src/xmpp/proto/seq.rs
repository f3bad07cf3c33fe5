//! `serve`'s node-wide sequence numbers: `<seq xmlns='urn:x-pubsub-tui:seq:0' node='N'
//! n='42'/>` beside each notification, and `<seq … head='42'/>` beside each retrieve result.
//! Other clients ignore the element; pubsub-tui checks it for exact gap detection.

use xmpp_parsers::minidom::Element;

use super::{NS_SEQ, el};

/// `<seq node='N' n='42'/>`: the number of the notification it goes with.
pub fn number(node: &str, n: u64) -> Element {
    el("seq", NS_SEQ, &[("node", node), ("n", &n.to_string())])
}

/// `<seq node='N' head='42'/>`: the node's last number, beside a retrieve result.
pub fn head(node: &str, head: u64) -> Element {
    el(
        "seq",
        NS_SEQ,
        &[("node", node), ("head", &head.to_string())],
    )
}

/// Read the number (`which`: `n` or `head`) for `node` among `elements`.
pub fn read<'a>(
    mut elements: impl Iterator<Item = &'a Element>,
    node: &str,
    which: &str,
) -> Option<u64> {
    elements
        .find(|e| e.is("seq", NS_SEQ) && e.attr("node") == Some(node))
        .and_then(|e| e.attr(which))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_belong_to_their_node() {
        let both = [number("a", 7), head("a", 9), number("b", 1)];
        assert_eq!(read(both.iter(), "a", "n"), Some(7));
        assert_eq!(
            read(both.iter(), "a", "head"),
            None,
            "the first for the node counts"
        );
        assert_eq!(read([head("a", 9)].iter(), "a", "head"), Some(9));
        assert_eq!(read(both.iter(), "c", "n"), None);
        let odd = el("seq", NS_SEQ, &[("node", "a"), ("n", "-3")]);
        assert_eq!(read([odd].iter(), "a", "n"), None);
    }
}
