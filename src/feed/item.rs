//! One item as the front ends hold it: [`FeedItem`], its strings kept in its tree's buffer.

use super::{ItemFormat, Seq, SeqRef, payload, render};

/// One pubsub item, parsed and sanitised.
///
/// Its strings (node, id, sender, publisher, time, text) are kept in its tree's buffer
/// ([`payload::Tree::keep`]), where the payload mostly holds them already: with 100,000 items
/// held, one buffer an item instead of six strings is about a quarter of the memory. Build one
/// from [`ItemParts`]; read them with the accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    node: payload::Kept,
    id: payload::Kept,
    sender: payload::Kept,
    publisher: payload::Kept,
    time: payload::Kept,
    text: payload::Kept,
    /// Our sequence, its session kept in the tree's buffer.
    seq: Option<ItemSeq>,
    /// The node-wide number our relay service (`serve`) gives each item, when it came with
    /// a live notification from such a service.
    pub service_seq: Option<u64>,
    pub format: ItemFormat,
    /// The `<item/>` element as received, as a bounded and sanitised tree.
    tree: payload::Tree,
    /// When this program received it (set by the front end that shows it).
    pub received: Option<chrono::DateTime<chrono::Utc>>,
}

/// A [`Seq`] as an item keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ItemSeq {
    session: payload::Kept,
    n: u64,
    void: Box<[(u64, u64)]>,
}

/// A [`FeedItem`] as plain fields, to build one or to change one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemParts {
    pub node: String,
    /// The item id, if the service sent one (the Wokkel relay does not).
    pub id: Option<String>,
    /// Who the item says sent it (its payload's claim: any publisher can write any name).
    pub sender: Option<String>,
    /// Who the service says published it (the `publisher` attribute some services put on
    /// items: ejabberd, `serve`), a bare JID. Prosody sends none.
    pub publisher: Option<String>,
    /// The timestamp as the item carried it (RFC 3339 for ours, `HH:MM:SS` for Wokkel).
    pub time: Option<String>,
    pub seq: Option<Seq>,
    pub service_seq: Option<u64>,
    /// The text: whole, cleaned of control and bidi characters; newlines and tabs kept.
    pub text: String,
    pub format: ItemFormat,
    pub tree: payload::Tree,
    pub received: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ItemParts> for FeedItem {
    fn from(p: ItemParts) -> Self {
        let mut tree = p.tree;
        let [node, id, sender, publisher, time, text, session] = tree.keep([
            Some(p.node.as_str()),
            p.id.as_deref(),
            p.sender.as_deref(),
            p.publisher.as_deref(),
            p.time.as_deref(),
            Some(p.text.as_str()),
            p.seq.as_ref().map(|s| s.session.as_str()),
        ]);
        Self {
            node,
            id,
            sender,
            publisher,
            time,
            text,
            seq: p.seq.map(|s| ItemSeq {
                session,
                n: s.n,
                void: s.void.into_boxed_slice(),
            }),
            service_seq: p.service_seq,
            format: p.format,
            tree,
            received: p.received,
        }
    }
}

impl FeedItem {
    /// Its fields as plain values, to change some and build it again.
    pub fn to_parts(&self) -> ItemParts {
        let own = |s: Option<&str>| s.map(str::to_owned);
        ItemParts {
            node: self.node().to_owned(),
            id: own(self.id()),
            sender: own(self.sender()),
            publisher: own(self.publisher()),
            time: own(self.time()),
            seq: self.seq().map(|s| s.to_seq()),
            service_seq: self.service_seq,
            text: self.text().to_owned(),
            format: self.format,
            tree: self.tree.clone(),
            received: self.received,
        }
    }

    /// The node it was published to.
    pub fn node(&self) -> &str {
        self.tree.kept(self.node).unwrap_or_default()
    }

    /// The item id, if the service sent one (the Wokkel relay does not).
    pub fn id(&self) -> Option<&str> {
        self.tree.kept(self.id)
    }

    /// Who the item says sent it (its payload's claim: any publisher can write any name).
    pub fn sender(&self) -> Option<&str> {
        self.tree.kept(self.sender)
    }

    /// Who the service says published it (the `publisher` attribute some services put on
    /// items: ejabberd, `serve`), a bare JID. Prosody sends none.
    pub fn publisher(&self) -> Option<&str> {
        self.tree.kept(self.publisher)
    }

    /// The timestamp as the item carried it (RFC 3339 for ours, `HH:MM:SS` for Wokkel).
    pub fn time(&self) -> Option<&str> {
        self.tree.kept(self.time)
    }

    /// The text: whole, cleaned of control and bidi characters; newlines and tabs kept.
    pub fn text(&self) -> &str {
        self.tree.kept(self.text).unwrap_or_default()
    }

    /// Our sequence, when the item carries one.
    pub fn seq(&self) -> Option<SeqRef<'_>> {
        let s = self.seq.as_ref()?;
        Some(SeqRef {
            session: self.tree.kept(s.session).unwrap_or_default(),
            n: s.n,
            void: &s.void,
        })
    }

    /// The `<item/>` element as received, as a bounded and sanitised tree.
    pub fn tree(&self) -> &payload::Tree {
        &self.tree
    }

    /// The claimed sender contradicts the publisher the service names.
    pub fn is_forged(&self) -> bool {
        match (self.publisher(), self.sender()) {
            (Some(p), Some(s)) => s.split('/').next() != Some(p),
            _ => false,
        }
    }

    /// The sender to show: the claimed one, unless the service names another publisher, then
    /// that one with the claim (`bob@x (claims alice@x)`).
    pub fn shown_sender(&self) -> String {
        let claimed = self.sender().unwrap_or("?");
        match self.publisher() {
            Some(p) if self.is_forged() => format!("{p} (claims {claimed})"),
            Some(p) if self.sender().is_none() => p.to_owned(),
            _ => claimed.to_owned(),
        }
    }

    /// The item's own time, when it carries a full (RFC 3339) timestamp.
    pub fn timestamp(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.time()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The bytes this item holds, roughly: itself and its tree, which holds its strings (for
    /// the feed's memory bound).
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.seq.as_ref().map_or(0, |s| s.void.len() * 16)
            + self.tree.weight()
    }

    /// The values of its fields called `name`: elements and attributes of its payload, and
    /// for JSON (XEP-0335) the keys (or dotted paths, `tests.passed`) of the JSON.
    pub fn field_values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self.tree.field_values(name).collect();
        if self.format == ItemFormat::Json {
            v.extend(render::json_field_values(&self.tree, name));
        }
        v
    }

    /// The item as XML, from its tree.
    pub fn xml(&self) -> String {
        self.tree.to_xml()
    }

    /// The time to show in a narrow column, and whether it is when the item was received
    /// (`true`: the item carries no time of its own). `HH:MM:SS` in the given offset when the
    /// item carries an RFC 3339 timestamp, otherwise the first 8 characters of what it carried.
    pub fn display_time(&self, offset: chrono::FixedOffset) -> (String, bool) {
        let Some(raw) = self.time() else {
            return match self.received {
                Some(t) => (
                    t.with_timezone(&offset).format("%H:%M:%S").to_string(),
                    true,
                ),
                None => ("--:--:--".to_owned(), false),
            };
        };
        let shown = match chrono::DateTime::parse_from_rfc3339(raw) {
            Ok(t) => t.with_timezone(&offset).format("%H:%M:%S").to_string(),
            Err(_) => raw.chars().take(8).collect(),
        };
        (shown, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_gives_back_the_parts_it_was_built_from() {
        let tree = crate::xmpp::proto::tree::tree_of(&crate::xmpp::proto::parse_xml(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='s1-3'><post xmlns='urn:x-pubsub-tui:item:0' sender='a@x/r' session='s1' seq='3'>hi</post></item>",
        ));
        let parts = ItemParts {
            node: "sensors".into(),
            id: Some("s1-3".into()),
            sender: Some("a@x/r".into()),
            publisher: Some("b@x".into()),
            time: Some("2026-11-29T10:00:00Z".into()),
            seq: Some(Seq {
                session: "s1".into(),
                n: 3,
                void: vec![(1, 2)],
            }),
            service_seq: Some(9),
            text: "hi".into(),
            format: ItemFormat::Native,
            tree,
            received: None,
        };
        let item = FeedItem::from(parts.clone());
        assert_eq!(item.node(), "sensors");
        assert_eq!(item.id(), Some("s1-3"));
        assert_eq!(item.publisher(), Some("b@x"));
        assert_eq!(item.time(), Some("2026-11-29T10:00:00Z"));
        assert_eq!(item.text(), "hi");
        let seq = item.seq().expect("a sequence");
        assert_eq!((seq.session, seq.n, seq.void), ("s1", 3, &[(1, 2)][..]));
        assert!(seq.is_void(2) && !seq.is_void(3));
        let back = item.to_parts();
        assert_eq!(
            (back.node, back.id, back.sender, back.publisher, back.time),
            (
                parts.node,
                parts.id,
                parts.sender,
                parts.publisher,
                parts.time
            )
        );
        assert_eq!((back.seq, back.text), (parts.seq, parts.text));
        assert!(
            item.is_forged(),
            "a@x claims what the service says b@x sent"
        );
        let none = FeedItem::from(ItemParts::default());
        assert_eq!((none.id(), none.sender(), none.seq()), (None, None, None));
        assert_eq!(none.text(), "");
    }
}
