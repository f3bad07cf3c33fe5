//! The `http://jabber.org/protocol/pubsub#owner` requests. Only purge is done so far; the others
//! are recognised by name so a service can say it does not do them.
//!
//! By hand: xmpp-parsers' `PubSubOwner` would build a purge, but `serve` must also read the
//! requests it does not do (by name, to refuse them), which that type rejects.

use xmpp_parsers::minidom::Element;

use super::{NS_PUBSUB_OWNER, el, wrap};

/// `<purge node='N'/>`: delete every item of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub node: Option<String>,
}

impl Purge {
    pub fn new(node: &str) -> Self {
        Self {
            node: Some(node.to_owned()),
        }
    }

    pub fn build(&self) -> Element {
        let mut purge = el("purge", NS_PUBSUB_OWNER, &[]);
        if let Some(n) = &self.node {
            super::set_attr(&mut purge, "node", n);
        }
        wrap("pubsub", NS_PUBSUB_OWNER, purge)
    }
}

/// A `<pubsub xmlns='…#owner'/>` request, as a service reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Purge(Purge),
    /// Another owner request, by its element name (`configure`, `delete`, …).
    Other(String),
}

impl Request {
    pub fn parse(p: &Element) -> Option<Self> {
        let action = p.children().find(|c| c.ns() == NS_PUBSUB_OWNER)?;
        Some(match action.name() {
            "purge" => Self::Purge(Purge {
                node: action.attr("node").map(str::to_owned),
            }),
            other => Self::Other(crate::sanitize::display_max(other, 64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_xml as parse, to_xml};

    #[test]
    fn purge_round_trips_and_others_are_named() {
        let purge = Purge::new("news");
        assert_eq!(
            Request::parse(&parse(&to_xml(&purge.build()))),
            Some(Request::Purge(purge))
        );
        let delete = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub>",
        );
        assert_eq!(
            Request::parse(&delete),
            Some(Request::Other("delete".into()))
        );
        let empty = parse("<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/>");
        assert_eq!(Request::parse(&empty), None);
    }
}
