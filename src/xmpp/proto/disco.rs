//! Service discovery (XEP-0030) as pubsub uses it: the nodes a service (or a collection node)
//! lists, with RSM paging (XEP-0059), and what a service or node says about itself: its
//! identity, its features, and a node's meta-data form (XEP-0060 §5.4).
//!
//! Requests and `serve`'s answers are built with xmpp-parsers' disco types. Answers are read
//! by hand, leniently: a service that adds an element xmpp-parsers does not expect must not
//! hide its whole node list. Forms are read with xmpp-parsers' `DataForm`.

use xmpp_parsers::data_forms::{DataForm, DataFormType, Field};
use xmpp_parsers::disco::{
    DiscoInfoQuery, DiscoInfoResult, DiscoItemsQuery, DiscoItemsResult, Identity as XIdentity,
    Item as XItem,
};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::rsm::{SetQuery, SetResult};

use super::{NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB_META, NS_RSM};
use crate::sanitize;

/// Longest title or description kept (characters).
const MAX_TEXT: usize = 500;

/// `<query xmlns='…#items' [node='N']/>`, with an optional RSM page request.
pub fn items_query(node: Option<&str>, page: Option<SetQuery>) -> Element {
    DiscoItemsQuery {
        node: node.map(str::to_owned),
        rsm: page,
    }
    .into()
}

/// One entry of a disco#items answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub jid: String,
    /// The node, for a pubsub service's entries.
    pub node: Option<String>,
    /// A human name: the node's title on most services.
    pub name: Option<String>,
}

/// A disco#items answer: the entries, and the RSM page when the service pages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Items {
    /// The node that was listed (`None`: the service's root).
    pub node: Option<String>,
    pub items: Vec<Listed>,
    pub page: Option<SetResult>,
}

impl Items {
    /// Read an answer (entries without a JID are skipped).
    pub fn parse(query: &Element) -> Option<Self> {
        if !query.is("query", NS_DISCO_ITEMS) {
            return None;
        }
        Some(Self {
            node: query.attr("node").map(sanitize::display),
            items: query
                .children()
                .filter(|c| c.is("item", NS_DISCO_ITEMS))
                .filter_map(|c| {
                    Some(Listed {
                        jid: sanitize::display(c.attr("jid")?),
                        node: c.attr("node").map(sanitize::display),
                        name: c
                            .attr("name")
                            .map(|n| sanitize::display_max(n.trim(), MAX_TEXT))
                            .filter(|n| !n.is_empty()),
                    })
                })
                .collect(),
            page: query
                .get_child("set", NS_RSM)
                .and_then(|s| SetResult::try_from(s.clone()).ok()),
        })
    }

    /// Build an answer (`serve`). Entries whose JID is invalid are left out.
    pub fn build(&self) -> Element {
        DiscoItemsResult {
            node: self.node.clone(),
            items: self
                .items
                .iter()
                .filter_map(|i| {
                    Some(XItem {
                        jid: Jid::new(&i.jid).ok()?,
                        node: i.node.clone(),
                        name: i.name.clone(),
                    })
                })
                .collect(),
            rsm: self.page.clone(),
        }
        .into()
    }

    /// Where the next page starts, when the service pages and says there is more than
    /// `so_far` (or does not say how many).
    pub fn next_after(&self, so_far: usize) -> Option<String> {
        let page = self.page.as_ref()?;
        let last = page.last.clone().filter(|l| !l.is_empty())?;
        (!self.items.is_empty() && page.count.is_none_or(|c| so_far < c)).then_some(last)
    }
}

/// A page of a node's item ids: the answer to disco#items on the node (XEP-0060 §5.5), where
/// each entry's `name` is an item id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemIds {
    pub ids: Vec<String>,
    pub page: Option<SetResult>,
}

/// Read the item ids of `node` from a disco#items answer (`None`: not an answer about that
/// node). Ids are cleaned as items' ids are (so they compare equal); nameless entries are
/// skipped.
pub fn item_ids(query: &Element, node: &str) -> Option<ItemIds> {
    if !query.is("query", NS_DISCO_ITEMS) || query.attr("node").is_some_and(|n| n != node) {
        return None;
    }
    Some(ItemIds {
        ids: query
            .children()
            .filter(|c| c.is("item", NS_DISCO_ITEMS) && c.attr("node").is_none())
            .filter_map(|c| c.attr("name"))
            .filter(|n| !n.is_empty() && n.len() <= 3071)
            .map(sanitize::text)
            .collect(),
        page: query
            .get_child("set", NS_RSM)
            .and_then(|s| SetResult::try_from(s.clone()).ok()),
    })
}

impl ItemIds {
    /// Where the next page starts, when the service pages and says there is more than
    /// `so_far` (or does not say how many).
    pub fn next_after(&self, so_far: usize) -> Option<String> {
        let page = self.page.as_ref()?;
        let last = page
            .last
            .clone()
            .filter(|l| !l.is_empty() && l.len() <= 3071)?;
        (!self.ids.is_empty() && page.count.is_none_or(|c| so_far < c)).then_some(last)
    }
}

/// `<query xmlns='…#info' [node='N']/>`
pub fn info_query(node: Option<&str>) -> Element {
    DiscoInfoQuery {
        node: node.map(str::to_owned),
    }
    .into()
}

/// What an entity says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub category: String,
    /// `service`, `leaf`, `collection`, …
    pub kind: String,
    pub name: Option<String>,
}

/// A node's meta-data form (`pubsub#meta-data`), the fields people read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeMeta {
    pub title: Option<String>,
    pub description: Option<String>,
    /// The payload namespace (`pubsub#type`).
    pub payload_type: Option<String>,
    pub creator: Option<String>,
    pub creation_date: Option<String>,
    pub owners: Vec<String>,
    pub num_subscribers: Option<u64>,
    pub max_items: Option<String>,
    pub access_model: Option<String>,
    pub publish_model: Option<String>,
}

impl NodeMeta {
    fn read(form: &DataForm) -> Self {
        let one = |var: &str| {
            form.fields
                .iter()
                .find(|f| f.var.as_deref() == Some(var))
                .and_then(|f| f.values.first())
                .map(|v| sanitize::display_max(v.trim(), MAX_TEXT))
                .filter(|v| !v.is_empty())
        };
        let all = |var: &str| {
            form.fields
                .iter()
                .find(|f| f.var.as_deref() == Some(var))
                .map(|f| f.values.iter().map(|v| sanitize::display(v)).collect())
                .unwrap_or_default()
        };
        Self {
            title: one("pubsub#title"),
            description: one("pubsub#description"),
            payload_type: one("pubsub#type"),
            creator: one("pubsub#creator"),
            creation_date: one("pubsub#creation_date"),
            owners: all("pubsub#owner"),
            num_subscribers: one("pubsub#num_subscribers").and_then(|n| n.parse().ok()),
            max_items: one("pubsub#max_items"),
            access_model: one("pubsub#access_model"),
            publish_model: one("pubsub#publish_model"),
        }
    }

    fn form(&self) -> DataForm {
        let field = |var: &str, values: Vec<String>| Field {
            var: Some(var.to_owned()),
            values,
            ..Field::text_single(var, "")
        };
        let mut fields = Vec::new();
        let mut add = |var: &str, v: &Option<String>| {
            if let Some(v) = v {
                fields.push(field(var, vec![v.clone()]));
            }
        };
        add("pubsub#title", &self.title);
        add("pubsub#description", &self.description);
        add("pubsub#type", &self.payload_type);
        add("pubsub#creator", &self.creator);
        add("pubsub#creation_date", &self.creation_date);
        add("pubsub#max_items", &self.max_items);
        add("pubsub#access_model", &self.access_model);
        add("pubsub#publish_model", &self.publish_model);
        add(
            "pubsub#num_subscribers",
            &self.num_subscribers.map(|n| n.to_string()),
        );
        if !self.owners.is_empty() {
            fields.push(field("pubsub#owner", self.owners.clone()));
        }
        DataForm::new(DataFormType::Result_, NS_PUBSUB_META, fields)
    }
}

/// A disco#info answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Info {
    pub node: Option<String>,
    pub identities: Vec<Identity>,
    pub features: Vec<String>,
    /// The node's meta-data, when the answer has the form.
    pub meta: Option<NodeMeta>,
}

impl Info {
    /// A node that holds other nodes (a collection, XEP-0248).
    pub fn is_collection(&self) -> bool {
        self.identities
            .iter()
            .any(|i| i.category == "pubsub" && i.kind == "collection")
    }

    /// Read an answer.
    pub fn parse(query: &Element) -> Option<Self> {
        if !query.is("query", NS_DISCO_INFO) {
            return None;
        }
        let meta = query
            .children()
            .filter(|c| c.is("x", NS_DATA))
            .filter_map(|x| DataForm::try_from(x.clone()).ok())
            .find(|f| f.form_type() == Some(NS_PUBSUB_META))
            .map(|f| NodeMeta::read(&f));
        Some(Self {
            node: query.attr("node").map(sanitize::display),
            identities: query
                .children()
                .filter(|c| c.is("identity", NS_DISCO_INFO))
                .map(|c| Identity {
                    category: sanitize::display_max(c.attr("category").unwrap_or(""), 64),
                    kind: sanitize::display_max(c.attr("type").unwrap_or(""), 64),
                    name: c
                        .attr("name")
                        .map(|n| sanitize::display_max(n, MAX_TEXT))
                        .filter(|n| !n.is_empty()),
                })
                .collect(),
            // A set (XEP-0030): kept sorted, each once, as xmpp-parsers builds it.
            features: query
                .children()
                .filter(|c| c.is("feature", NS_DISCO_INFO))
                .filter_map(|c| c.attr("var").map(|v| sanitize::display_max(v, 256)))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            meta,
        })
    }

    /// Build an answer (`serve`).
    pub fn build(&self) -> Element {
        DiscoInfoResult {
            node: self.node.clone(),
            identities: self
                .identities
                .iter()
                .map(|i| XIdentity {
                    category: i.category.clone(),
                    type_: i.kind.clone(),
                    lang: None,
                    name: i.name.clone(),
                })
                .collect(),
            features: self.features.iter().cloned().collect(),
            extensions: self.meta.iter().map(NodeMeta::form).collect(),
        }
        .into()
    }
}

/// ejabberd's default cap on a disco#items answer (`max_nodes_discoitems`): a list of this
/// many entries without RSM may have been cut.
pub const CUT_AT: usize = 100;

/// A list of `len` entries, answered without RSM: was it likely cut by the service?
pub fn looks_cut(len: usize) -> bool {
    len == CUT_AT
}

/// Every pubsub feature starts with this.
pub const PUBSUB_FEATURE_PREFIX: &str = "http://jabber.org/protocol/pubsub#";

/// The features XEP-0060 registers (§16.3, `pubsub#…`), with what each means, in a few
/// words of our own.
pub const XEP_0060_FEATURES: &[(&str, &str)] = &[
    ("access-authorize", "the authorize access model"),
    ("access-open", "the open access model"),
    ("access-presence", "the presence access model"),
    ("access-roster", "the roster access model"),
    ("access-whitelist", "the whitelist access model"),
    ("auto-create", "nodes are created on first publish"),
    ("auto-subscribe", "contacts are subscribed automatically"),
    ("config-node", "nodes can be configured"),
    ("config-node-max", "max_items may be 'max'"),
    ("create-and-configure", "create with a configuration"),
    ("create-nodes", "nodes can be created"),
    ("delete-items", "items can be deleted"),
    ("delete-nodes", "nodes can be deleted"),
    (
        "filtered-notifications",
        "notifications filtered by interest",
    ),
    ("get-pending", "pending subscriptions can be listed"),
    ("instant-nodes", "nodes named by the service"),
    ("item-ids", "publishers may name items"),
    ("last-published", "the last item is sent on subscribe"),
    ("leased-subscription", "subscriptions that expire"),
    ("manage-subscriptions", "owners manage subscriptions"),
    ("member-affiliation", "the member affiliation"),
    ("meta-data", "nodes give meta-data"),
    ("modify-affiliations", "owners change affiliations"),
    ("multi-items", "nodes keep more than one item"),
    ("multi-subscribe", "several subscriptions per JID"),
    ("outcast-affiliation", "the outcast affiliation"),
    ("persistent-items", "items are stored"),
    ("presence-notifications", "notifications follow presence"),
    ("presence-subscribe", "subscriptions from presence"),
    ("publish", "items can be published"),
    ("publish-node-full", "publish fails when a node is full"),
    ("publish-only-affiliation", "the publish-only affiliation"),
    ("publish-options", "publish with preconditions"),
    ("publisher-affiliation", "the publisher affiliation"),
    ("purge-nodes", "nodes can be purged"),
    ("retract-items", "items can be retracted"),
    ("retrieve-affiliations", "your affiliations can be listed"),
    ("retrieve-default", "the default node configuration"),
    ("retrieve-default-sub", "the default subscription options"),
    ("retrieve-items", "stored items can be retrieved"),
    ("retrieve-subscriptions", "your subscriptions can be listed"),
    ("subscribe", "nodes can be subscribed to"),
    (
        "subscription-notifications",
        "you are told of subscription changes",
    ),
    ("subscription-options", "subscriptions can be configured"),
];

/// Whether a service advertises a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertised {
    Yes,
    No,
}

impl Advertised {
    pub fn name(self) -> &'static str {
        match self {
            Self::Yes => "advertised",
            Self::No => "not advertised",
        }
    }
}

/// Every XEP-0060 feature, in the XEP's order, with whether `features` (a disco#info
/// answer's) has it.
pub fn pubsub_features(features: &[String]) -> Vec<(&'static str, Advertised)> {
    XEP_0060_FEATURES
        .iter()
        .map(|(name, _)| {
            let has = features
                .iter()
                .any(|f| f.strip_prefix(PUBSUB_FEATURE_PREFIX) == Some(name));
            (*name, if has { Advertised::Yes } else { Advertised::No })
        })
        .collect()
}

/// The features that are not `pubsub#…` ones (disco, ping, a service's own).
pub fn other_features(features: &[String]) -> Vec<&str> {
    features
        .iter()
        .filter(|f| !f.starts_with(PUBSUB_FEATURE_PREFIX))
        .map(String::as_str)
        .collect()
}

/// The `pubsub#…` features a service advertises that XEP-0060 does not define (XEP-0248's
/// collections, a service's own): known to it, unknown to us.
pub fn unknown_pubsub_features(features: &[String]) -> Vec<&str> {
    features
        .iter()
        .filter_map(|f| f.strip_prefix(PUBSUB_FEATURE_PREFIX))
        .filter(|f| !XEP_0060_FEATURES.iter().any(|(n, _)| n == f))
        .collect()
}

impl NodeMeta {
    /// The fields that are there, as (label, value), in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut add = |label, v: &Option<String>| {
            if let Some(v) = v {
                out.push((label, v.clone()));
            }
        };
        add("title", &self.title);
        add("description", &self.description);
        add("payload type", &self.payload_type);
        add("creator", &self.creator);
        add("created", &self.creation_date);
        add("access model", &self.access_model);
        add("publish model", &self.publish_model);
        add("max items", &self.max_items);
        add("subscribers", &self.num_subscribers.map(|n| n.to_string()));
        if !self.owners.is_empty() {
            out.push(("owners", self.owners.join(", ")));
        }
        out
    }

    /// As a JSON object of the fields that are there.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        let mut add = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                map.insert(key.into(), v.clone().into());
            }
        };
        add("title", &self.title);
        add("description", &self.description);
        add("type", &self.payload_type);
        add("creator", &self.creator);
        add("creation_date", &self.creation_date);
        add("access_model", &self.access_model);
        add("publish_model", &self.publish_model);
        add("max_items", &self.max_items);
        if let Some(n) = self.num_subscribers {
            map.insert("num_subscribers".into(), n.into());
        }
        if !self.owners.is_empty() {
            map.insert("owners".into(), self.owners.clone().into());
        }
        map.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_xml as xml, to_xml};

    #[test]
    fn node_lists_read_page_and_round_trip() {
        // ejabberd 23.01 lists nodes with their titles as names.
        let ejabberd = xml(
            "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='pubsub.localhost' node='news' name='All the news'/><item jid='pubsub.localhost' node='demo'/><item node='no-jid'/></query>",
        );
        let items = Items::parse(&ejabberd).expect("items");
        assert_eq!(items.items.len(), 2, "the entry without a JID is skipped");
        assert_eq!(items.items[0].name.as_deref(), Some("All the news"));
        assert_eq!(items.next_after(2), None, "no RSM, no more pages");
        let paged = Items {
            node: None,
            items: items.items.clone(),
            page: Some(SetResult {
                first: None,
                last: Some("demo".into()),
                count: Some(150),
            }),
        };
        let back = Items::parse(&xml(&to_xml(&paged.build()))).expect("items");
        assert_eq!(back, paged);
        assert_eq!(back.next_after(2).as_deref(), Some("demo"));
        let q = items_query(Some("coll"), None);
        assert_eq!(q.attr("node"), Some("coll"));
    }

    #[test]
    fn node_meta_data_reads_and_round_trips() {
        // The shape Prosody 0.12 answers for a node.
        let prosody = xml(
            "<query xmlns='http://jabber.org/protocol/disco#info' node='news'><identity category='pubsub' type='leaf'/><feature var='http://jabber.org/protocol/pubsub'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#meta-data</value></field><field var='pubsub#title' type='text-single'><value>News\u{202e}!</value></field><field var='pubsub#type' type='text-single'><value>http://www.w3.org/2005/Atom</value></field><field var='pubsub#owner' type='jid-multi'><value>admin@localhost</value><value>boss@localhost</value></field></x></query>",
        );
        let info = Info::parse(&prosody).expect("info");
        assert!(!info.is_collection());
        let meta = info.meta.clone().expect("meta-data");
        assert_eq!(meta.title.as_deref(), Some("News!"), "sanitised");
        assert_eq!(
            meta.payload_type.as_deref(),
            Some("http://www.w3.org/2005/Atom")
        );
        assert_eq!(meta.owners, ["admin@localhost", "boss@localhost"]);
        let back = Info::parse(&xml(&to_xml(&info.build()))).expect("info");
        assert_eq!(back.meta, info.meta);
        assert_eq!(back.identities, info.identities);
        let collection = xml(
            "<query xmlns='http://jabber.org/protocol/disco#info' node='c'><identity category='pubsub' type='collection'/></query>",
        );
        assert!(Info::parse(&collection).expect("info").is_collection());
        assert!(Info::parse(&xml("<query xmlns='urn:other'/>")).is_none());
    }
}
