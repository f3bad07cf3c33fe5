//! `http://jabber.org/protocol/pubsub#event` notifications: what a service sends subscribers
//! (items, retractions, purges, deletions), read into [`EventPart`]s, and built by `serve`.
//!
//! Read by hand: xmpp-parsers' `Event` parses items with its pubsub `Item`, which drops the
//! attributes the seed-era Wokkel items carry their data in.

use xmpp_parsers::minidom::Element;

use super::item::parse_item;
use super::{NS_PUBSUB_EVENT, el, wrap};
use crate::feed::FeedItem;
use crate::sanitize;

/// One thing an `<event/>` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPart {
    Items {
        node: String,
        items: Vec<FeedItem>,
    },
    Retract {
        node: String,
        id: String,
    },
    Purge {
        node: String,
    },
    /// The node is gone; `redirect` is where its content went, if the owner said.
    Delete {
        node: String,
        redirect: Option<String>,
    },
    /// A subscription changed (XEP-0060 §8.8.4, §8.6): the owner approved, denied or
    /// removed it.
    Subscription {
        node: String,
        jid: String,
        state: String,
    },
}

impl EventPart {
    pub fn node(&self) -> &str {
        match self {
            Self::Items { node, .. }
            | Self::Retract { node, .. }
            | Self::Purge { node }
            | Self::Delete { node, .. }
            | Self::Subscription { node, .. } => node,
        }
    }
}

/// Read a pubsub `<event/>` payload. Unknown children are skipped.
pub fn parse(event: &Element) -> Vec<EventPart> {
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
            "subscription" => {
                if let Some(jid) = child.attr("jid") {
                    parts.push(EventPart::Subscription {
                        node,
                        jid: sanitize::display_max(jid, 3071),
                        state: sanitize::display_max(
                            child.attr("subscription").unwrap_or("none"),
                            32,
                        ),
                    });
                }
            }
            "delete" => parts.push(EventPart::Delete {
                node,
                redirect: child
                    .get_child("redirect", NS_PUBSUB_EVENT)
                    .and_then(|r| r.attr("uri"))
                    .map(|u| sanitize::display_max(u, 1024)),
            }),
            _ => {}
        }
    }
    parts
}

/// The event payload of a message, if it has one.
pub fn find(payloads: &[Element]) -> Option<&Element> {
    payloads.iter().find(|p| p.is("event", NS_PUBSUB_EVENT))
}

/// `<event><items node='N'><item …/></items></event>`: `item` is the published `<item/>`
/// (in any namespace; it is copied into the event's).
pub fn items(node: &str, item: &Element) -> Element {
    let mut copy = Element::builder("item", NS_PUBSUB_EVENT).build();
    *copy.attrs_mut() = item.attrs().clone();
    for n in item.nodes() {
        copy.append_node(n.clone());
    }
    let mut items = el("items", NS_PUBSUB_EVENT, &[("node", node)]);
    items.append_child(copy);
    wrap("event", NS_PUBSUB_EVENT, items)
}

/// `<event><items node='N'><retract id='I'/>…</items></event>`
pub fn retracts(node: &str, ids: &[String]) -> Element {
    let mut items = el("items", NS_PUBSUB_EVENT, &[("node", node)]);
    for id in ids {
        items.append_child(el("retract", NS_PUBSUB_EVENT, &[("id", id)]));
    }
    wrap("event", NS_PUBSUB_EVENT, items)
}

/// `<event><purge node='N'/></event>`
pub fn purge(node: &str) -> Element {
    wrap(
        "event",
        NS_PUBSUB_EVENT,
        el("purge", NS_PUBSUB_EVENT, &[("node", node)]),
    )
}

/// `<event><subscription node='N' jid='J' subscription='S'/></event>`
pub fn subscription(node: &str, jid: &str, state: &str) -> Element {
    wrap(
        "event",
        NS_PUBSUB_EVENT,
        el(
            "subscription",
            NS_PUBSUB_EVENT,
            &[("node", node), ("jid", jid), ("subscription", state)],
        ),
    )
}

/// `<event><delete node='N'><redirect uri='U'/></delete></event>`
pub fn delete(node: &str, redirect: Option<&str>) -> Element {
    let mut d = el("delete", NS_PUBSUB_EVENT, &[("node", node)]);
    if let Some(uri) = redirect {
        d.append_child(el("redirect", NS_PUBSUB_EVENT, &[("uri", uri)]));
    }
    wrap("event", NS_PUBSUB_EVENT, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_xml as xml, to_xml};

    #[test]
    fn a_prosody_notification_reads() {
        // Prosody 0.12.3, captured (tests/fixtures/prosody_event.xml).
        let msg = xml(&std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prosody_event.xml"
        ))
        .expect("fixture"));
        let payloads: Vec<Element> = msg.children().cloned().collect();
        let parts = parse(find(&payloads).expect("an event"));
        let [EventPart::Items { node, items }] = parts.as_slice() else {
            panic!("{parts:?}")
        };
        assert_eq!(node, "store");
        assert_eq!(items[0].text(), "stored 0");
    }

    #[test]
    fn what_serve_builds_reads_back() {
        let item = xml(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='w1' sender='bob@localhost/client2' time='07:56:57' message='Hello!'/>",
        );
        let parts = parse(&xml(&to_xml(&items("test", &item))));
        let [EventPart::Items { items, .. }] = parts.as_slice() else {
            panic!("{parts:?}")
        };
        assert_eq!(
            items[0].text(),
            "Hello!",
            "the Wokkel attributes are copied"
        );
        assert_eq!(
            parse(&retracts("test", &["a".into(), "b".into()])),
            [
                EventPart::Retract {
                    node: "test".into(),
                    id: "a".into()
                },
                EventPart::Retract {
                    node: "test".into(),
                    id: "b".into()
                }
            ]
        );
        assert_eq!(
            parse(&purge("test")),
            [EventPart::Purge {
                node: "test".into()
            }]
        );
        assert_eq!(
            parse(&xml(&to_xml(&delete(
                "test",
                Some("xmpp:pubsub.x?;node=new")
            )))),
            [EventPart::Delete {
                node: "test".into(),
                redirect: Some("xmpp:pubsub.x?;node=new".into())
            }]
        );
    }

    #[test]
    fn odd_events_do_not_panic() {
        for odd in [
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><items/></event>",
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><retract/></items></event>",
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><unknown node='n'/></event>",
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><x xmlns='urn:other' node='n'/></event>",
        ] {
            assert!(parse(&xml(odd)).is_empty(), "{odd}");
        }
    }
}
