//! The `http://jabber.org/protocol/pubsub` requests and their results: subscribe,
//! unsubscribe, subscriptions, items (with RSM paging), publish, retract and create.
//!
//! Each is a plain struct: the client builds the request and parses the result; `serve` parses
//! the request ([`Request::parse`]) and builds the result. Attributes a request may lack are
//! `Option`s, so the service can say what is missing.
//!
//! Read by hand rather than with xmpp-parsers' `PubSub`: it rejects an RSM `<set/>` beside
//! `<items/>` (STACK-NOTES), and its `Unsubscribe` and `SubscriptionElem` have private fields
//! and no constructor. The RSM `<set/>` itself is xmpp-parsers' (`SetQuery`, `SetResult`).

use xmpp_parsers::minidom::Element;
use xmpp_parsers::rsm::{First, SetQuery, SetResult};

use super::{NS_PUBSUB, NS_RSM, el, set_attr, wrap};
use crate::sanitize;
use crate::xmpp::error::RequestError;

/// Longest item id or node name kept from a peer's request (bytes).
const MAX_NAME: usize = 1024;

fn attr(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(str::to_owned)
}

fn pubsub(child: Element) -> Element {
    wrap("pubsub", NS_PUBSUB, child)
}

/// `<subscribe node='N' jid='J'/>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub node: Option<String>,
    pub jid: Option<String>,
}

impl Subscribe {
    pub fn new(node: &str, jid: &str) -> Self {
        Self {
            node: Some(node.to_owned()),
            jid: Some(jid.to_owned()),
        }
    }

    pub fn build(&self) -> Element {
        let mut s = el("subscribe", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut s, "node", n);
        }
        if let Some(j) = &self.jid {
            set_attr(&mut s, "jid", j);
        }
        pubsub(s)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: attr(e, "node"),
            jid: attr(e, "jid"),
        }
    }
}

/// `<unsubscribe node='N' jid='J' [subid='S']/>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub node: Option<String>,
    pub jid: Option<String>,
    pub subid: Option<String>,
}

impl Unsubscribe {
    pub fn new(node: &str, jid: &str, subid: Option<&str>) -> Self {
        Self {
            node: Some(node.to_owned()),
            jid: Some(jid.to_owned()),
            subid: subid.map(str::to_owned),
        }
    }

    pub fn build(&self) -> Element {
        let mut u = el("unsubscribe", NS_PUBSUB, &[]);
        for (k, v) in [
            ("node", &self.node),
            ("jid", &self.jid),
            ("subid", &self.subid),
        ] {
            if let Some(v) = v {
                set_attr(&mut u, k, v);
            }
        }
        pubsub(u)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: attr(e, "node"),
            jid: attr(e, "jid"),
            subid: attr(e, "subid"),
        }
    }
}

/// One `<subscription/>`: in a subscribe result, or in a list of subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub node: String,
    pub jid: String,
    pub subid: Option<String>,
    /// `subscribed`, `pending`, `unconfigured` or `none`.
    pub state: String,
}

impl Subscription {
    fn element(&self) -> Element {
        let mut s = el(
            "subscription",
            NS_PUBSUB,
            &[
                ("node", &self.node),
                ("jid", &self.jid),
                ("subscription", &self.state),
            ],
        );
        if let Some(id) = &self.subid {
            set_attr(&mut s, "subid", id);
        }
        s
    }

    /// Read one, taking the node from the list when the entry has none.
    fn read(e: &Element, list_node: Option<&str>) -> Option<Self> {
        Some(Self {
            node: sanitize::display(e.attr("node").or(list_node)?),
            jid: sanitize::display(e.attr("jid")?),
            subid: e.attr("subid").map(sanitize::display),
            state: sanitize::display_max(e.attr("subscription").unwrap_or("subscribed"), 32),
        })
    }

    /// The answer to a subscribe: `<pubsub><subscription …/></pubsub>`.
    pub fn build_result(&self) -> Element {
        pubsub(self.element())
    }
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
        retry_in: std::time::Duration,
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

    /// Read a subscribe result. An empty result means the subscription was accepted.
    pub fn from_result(payload: Option<&Element>) -> Self {
        let sub = payload.and_then(|p| p.get_child("subscription", NS_PUBSUB));
        match sub.and_then(|s| s.attr("subscription")) {
            Some("pending") => Self::Pending,
            Some("unconfigured") => Self::Unconfigured,
            Some("none") => Self::Failed(RequestError::Invalid(
                "the service answered with subscription='none'".into(),
            )),
            _ => Self::Subscribed,
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

/// `<subscriptions [node='N']/>`: the requester's subscriptions (of one node, or all).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionsQuery {
    pub node: Option<String>,
}

impl SubscriptionsQuery {
    pub fn build(&self) -> Element {
        let mut s = el("subscriptions", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut s, "node", n);
        }
        pubsub(s)
    }
}

/// The answer to [`SubscriptionsQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscriptions {
    pub node: Option<String>,
    pub list: Vec<Subscription>,
}

impl Subscriptions {
    pub fn build(&self) -> Element {
        let mut s = el("subscriptions", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut s, "node", n);
        }
        for sub in &self.list {
            s.append_child(sub.element());
        }
        pubsub(s)
    }

    /// Read a result (entries without a node or a JID are skipped).
    pub fn parse(payload: Option<&Element>) -> Self {
        let Some(list) = payload.and_then(|p| p.get_child("subscriptions", NS_PUBSUB)) else {
            return Self::default();
        };
        Self {
            node: list.attr("node").map(sanitize::display),
            list: list
                .children()
                .filter(|c| c.is("subscription", NS_PUBSUB))
                .filter_map(|c| Subscription::read(c, list.attr("node")))
                .collect(),
        }
    }
}

/// `<items node='N' [max_items='K']>[<item id='I'/>…]</items>` plus an optional RSM page
/// request beside it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemsQuery {
    pub node: Option<String>,
    pub max_items: Option<u64>,
    /// Items asked for by id.
    pub ids: Vec<String>,
    pub page: Option<SetQuery>,
}

impl ItemsQuery {
    /// Everything the node keeps.
    pub fn all(node: &str) -> Self {
        Self {
            node: Some(node.to_owned()),
            ..Self::default()
        }
    }

    /// One RSM page: `max` items after the item `after`. Services without RSM ignore it and
    /// answer with everything (Prosody does).
    pub fn page(node: &str, max: usize, after: Option<&str>) -> Self {
        Self {
            node: Some(node.to_owned()),
            page: Some(SetQuery {
                max: Some(max),
                after: after.map(str::to_owned),
                before: None,
                index: None,
            }),
            ..Self::default()
        }
    }

    pub fn build(&self) -> Element {
        let mut items = el("items", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut items, "node", n);
        }
        if let Some(k) = self.max_items {
            set_attr(&mut items, "max_items", k.to_string());
        }
        for id in &self.ids {
            items.append_child(el("item", NS_PUBSUB, &[("id", id)]));
        }
        let mut p = pubsub(items);
        if let Some(page) = &self.page {
            p.append_child(page.clone().into());
        }
        p
    }

    /// Read a request: `Err` says what is wrong with `max_items`.
    fn read(p: &Element, items: &Element) -> Result<Self, &'static str> {
        let max_items = match items.attr("max_items") {
            Some(k) => Some(k.trim().parse().map_err(|_| "max_items is not a number")?),
            None => None,
        };
        Ok(Self {
            node: attr(items, "node"),
            max_items,
            ids: items
                .children()
                .filter(|c| c.is("item", NS_PUBSUB))
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect(),
            page: p
                .get_child("set", NS_RSM)
                .and_then(|s| SetQuery::try_from(s.clone()).ok()),
        })
    }
}

/// The answer to [`ItemsQuery`]: the `<item/>` elements (to be read by
/// [`super::item::parse_item`]), the RSM page, and `serve`'s head number when it sends one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemsResult<T = Element> {
    pub node: String,
    pub items: Vec<T>,
    pub page: Option<SetResult>,
    pub head: Option<u64>,
}

impl<T> ItemsResult<T> {
    /// Read a result for `node`, each `<item/>` read by `read` where it lies (a retrieve of
    /// 100,000 items is not copied first).
    pub fn parse_with(node: &str, payload: Option<&Element>, read: impl Fn(&Element) -> T) -> Self {
        let Some(p) = payload else {
            return Self {
                node: node.to_owned(),
                items: Vec::new(),
                page: None,
                head: None,
            };
        };
        Self {
            node: node.to_owned(),
            items: p
                .get_child("items", NS_PUBSUB)
                .map(|items| {
                    items
                        .children()
                        .filter(|c| c.name() == "item")
                        .map(&read)
                        .collect()
                })
                .unwrap_or_default(),
            page: p
                .get_child("set", NS_RSM)
                .and_then(|s| SetResult::try_from(s.clone()).ok()),
            head: super::seq::read(p.children(), node, "head"),
        }
    }

    /// Where to ask for the next page: the last item's id, while the service says there is
    /// more than `so_far` (or does not say how many).
    pub fn next_after(&self, so_far: usize) -> Option<String> {
        let page = self.page.as_ref()?;
        let last = page
            .last
            .clone()
            .filter(|l| !l.is_empty() && l.len() <= MAX_NAME)?;
        (!self.items.is_empty() && page.count.is_none_or(|c| so_far < c)).then_some(last)
    }
}

impl ItemsResult {
    pub fn build(&self) -> Element {
        let mut items = el("items", NS_PUBSUB, &[("node", &self.node)]);
        for i in &self.items {
            items.append_child(i.clone());
        }
        let mut p = pubsub(items);
        if let Some(page) = &self.page {
            p.append_child(page.clone().into());
        }
        if let Some(head) = self.head {
            p.append_child(super::seq::head(&self.node, head));
        }
        p
    }

    /// Read a result for `node` (an answer without `<items/>` has none), the items as
    /// elements.
    pub fn parse(node: &str, payload: Option<&Element>) -> Self {
        Self::parse_with(node, payload, Element::clone)
    }

    /// The RSM answer for a page of `count` items in all, the first at `index`.
    pub fn page_of(first: Option<(&str, usize)>, last: Option<&str>, count: usize) -> SetResult {
        SetResult {
            first: first.map(|(id, index)| First {
                index: Some(index),
                item: id.to_owned(),
            }),
            last: last.map(str::to_owned),
            count: Some(count),
        }
    }
}

/// The `FORM_TYPE` of publish-options (XEP-0060 §7.1.5).
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// `<publish node='N'><item …/></publish>`, with publish-options beside it when given.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub node: Option<String>,
    /// The `<item/>` elements (a publish carries exactly one; more or none is an error the
    /// service reports).
    pub items: Vec<Element>,
    /// Preconditions (var, value): the service refuses the publish when the node's
    /// configuration differs (`pubsub#access_model=open`, …).
    pub options: Vec<(String, String)>,
}

impl Publish {
    pub fn new(node: &str, item: Element) -> Self {
        Self {
            node: Some(node.to_owned()),
            items: vec![item],
            options: Vec::new(),
        }
    }

    pub fn build(&self) -> Element {
        let mut publish = el("publish", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut publish, "node", n);
        }
        for i in &self.items {
            publish.append_child(i.clone());
        }
        let mut p = pubsub(publish);
        if !self.options.is_empty() {
            let form = super::form::Form::submit(PUBLISH_OPTIONS, &self.options);
            p.append_child(wrap("publish-options", NS_PUBSUB, form.build()));
        }
        p
    }

    fn read(p: &Element, e: &Element) -> Self {
        Self {
            node: attr(e, "node"),
            items: e
                .children()
                .filter(|c| c.is("item", NS_PUBSUB))
                .cloned()
                .collect(),
            options: form_values(p, "publish-options"),
        }
    }

    /// The answer: `<pubsub><publish node='N'><item id='I'/></publish></pubsub>`.
    pub fn build_result(node: &str, id: &str) -> Element {
        let mut publish = el("publish", NS_PUBSUB, &[("node", node)]);
        publish.append_child(el("item", NS_PUBSUB, &[("id", id)]));
        pubsub(publish)
    }

    /// The id in an answer, when the service says (a service-chosen one, for instance).
    pub fn result_id(payload: Option<&Element>) -> Option<String> {
        payload?
            .get_child("publish", NS_PUBSUB)?
            .get_child("item", NS_PUBSUB)?
            .attr("id")
            .map(sanitize::text)
    }
}

/// `<retract node='N' notify='true'><item id='I'/>…</retract>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retract {
    pub node: Option<String>,
    pub ids: Vec<String>,
    pub notify: bool,
}

impl Retract {
    pub fn new(node: &str, id: &str) -> Self {
        Self {
            node: Some(node.to_owned()),
            ids: vec![id.to_owned()],
            notify: true,
        }
    }

    pub fn build(&self) -> Element {
        let mut r = el("retract", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut r, "node", n);
        }
        if self.notify {
            set_attr(&mut r, "notify", "true");
        }
        for id in &self.ids {
            r.append_child(el("item", NS_PUBSUB, &[("id", id)]));
        }
        pubsub(r)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: attr(e, "node"),
            ids: e
                .children()
                .filter(|c| c.is("item", NS_PUBSUB))
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect(),
            notify: !matches!(e.attr("notify"), Some("false" | "0")),
        }
    }
}

/// The `FORM_TYPE` of node configuration (XEP-0060 §16.4.4).
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";

/// `<create node='N'/>` with an optional `<configure>` form beside it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Create {
    /// `None`: an instant node (the service picks the name).
    pub node: Option<String>,
    /// Configuration fields (var, value) to set at creation.
    pub config: Vec<(String, String)>,
}

impl Create {
    /// A node anyone may publish to and read (needs owner rights on Prosody).
    pub fn open(node: &str, max_items: u32) -> Self {
        Self {
            node: Some(node.to_owned()),
            config: vec![
                ("pubsub#publish_model".into(), "open".into()),
                ("pubsub#access_model".into(), "open".into()),
                ("pubsub#max_items".into(), max_items.to_string()),
            ],
        }
    }

    pub fn build(&self) -> Element {
        let mut create = el("create", NS_PUBSUB, &[]);
        if let Some(n) = &self.node {
            set_attr(&mut create, "node", n);
        }
        let mut p = pubsub(create);
        if !self.config.is_empty() {
            let form = super::form::Form::submit(NODE_CONFIG, &self.config);
            p.append_child(wrap("configure", NS_PUBSUB, form.build()));
        }
        p
    }

    fn read(p: &Element, create: &Element) -> Self {
        Self {
            node: attr(create, "node"),
            config: form_values(p, "configure"),
        }
    }

    /// The answer naming the node created (the service's choice for an instant node).
    pub fn build_result(node: &str) -> Element {
        pubsub(el("create", NS_PUBSUB, &[("node", node)]))
    }

    /// The node an answer names, when it does.
    pub fn result_node(payload: Option<&Element>) -> Option<String> {
        payload?
            .get_child("create", NS_PUBSUB)?
            .attr("node")
            .map(sanitize::display)
    }
}

/// The (var, value) pairs of the form in `p`'s child `name` (`configure`, `publish-options`),
/// without its `FORM_TYPE`; a field with several values gives several pairs.
fn form_values(p: &Element, name: &str) -> Vec<(String, String)> {
    p.get_child(name, NS_PUBSUB)
        .and_then(super::form::Form::find_in)
        .map(|f| {
            f.fields
                .into_iter()
                .filter(|f| f.var.as_deref() != Some("FORM_TYPE"))
                .flat_map(|f| {
                    let var = f.var.unwrap_or_default();
                    f.values.into_iter().map(move |v| (var.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A `<pubsub/>` request, as a service reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    Subscriptions(SubscriptionsQuery),
    Items(ItemsQuery),
    Publish(Publish),
    Retract(Retract),
    Create(Create),
    /// Something this service does not do (its element name).
    Other(String),
}

impl Request {
    /// Read the `<pubsub/>` payload of a request. `Err` says what is malformed.
    pub fn parse(p: &Element) -> Result<Self, &'static str> {
        // The action; `configure` and `options` go beside one (create, subscribe), but a
        // request of only those is one of its own.
        let ours = || p.children().filter(|c| c.ns() == NS_PUBSUB);
        let Some(action) = ours()
            .find(|c| !matches!(c.name(), "configure" | "options" | "publish-options"))
            .or_else(|| ours().next())
        else {
            return Err("an empty pubsub request");
        };
        Ok(match action.name() {
            "subscribe" => Self::Subscribe(Subscribe::read(action)),
            "unsubscribe" => Self::Unsubscribe(Unsubscribe::read(action)),
            "subscriptions" => Self::Subscriptions(SubscriptionsQuery {
                node: attr(action, "node"),
            }),
            "items" => Self::Items(ItemsQuery::read(p, action)?),
            "publish" => Self::Publish(Publish::read(p, action)),
            "retract" => Self::Retract(Retract::read(action)),
            "create" => Self::Create(Create::read(p, action)),
            other => Self::Other(sanitize::display_max(other, 64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_xml as parse, to_xml};

    /// Build, write, parse back: the request a service reads is the one the client built.
    fn round_trip(built: &Element) -> Request {
        Request::parse(&parse(&to_xml(built))).expect("a request")
    }

    #[test]
    fn requests_round_trip() {
        let sub = Subscribe::new("news", "bob@localhost/tui");
        assert_eq!(round_trip(&sub.build()), Request::Subscribe(sub));
        let unsub = Unsubscribe::new("news", "bob@localhost/tui", Some("s1"));
        assert_eq!(round_trip(&unsub.build()), Request::Unsubscribe(unsub));
        let q = SubscriptionsQuery::default();
        assert_eq!(round_trip(&q.build()), Request::Subscriptions(q));
        let items = ItemsQuery::page("feed", 200, Some("7037B7237A0BB"));
        assert_eq!(round_trip(&items.build()), Request::Items(items));
        let retract = Retract::new("news", "x1");
        assert_eq!(round_trip(&retract.build()), Request::Retract(retract));
        let create = Create::open("demo", 256);
        assert_eq!(round_trip(&create.build()), Request::Create(create));
        let item = parse("<item xmlns='http://jabber.org/protocol/pubsub' id='i1' message='m'/>");
        let mut publish = Publish::new("news", item);
        assert_eq!(
            round_trip(&publish.build()),
            Request::Publish(publish.clone())
        );
        publish.options = vec![("pubsub#access_model".into(), "open".into())];
        assert_eq!(round_trip(&publish.build()), Request::Publish(publish));
        assert_eq!(
            Request::parse(&parse(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><options node='n' jid='j'/></pubsub>"
            )),
            Ok(Request::Other("options".into()))
        );
        assert_eq!(
            Request::parse(&parse(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'/>"
            )),
            Err("an empty pubsub request")
        );
        assert_eq!(
            Request::parse(&parse(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><affiliations/></pubsub>"
            )),
            Ok(Request::Other("affiliations".into()))
        );
        let bad = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n' max_items='many'/></pubsub>",
        );
        assert_eq!(Request::parse(&bad), Err("max_items is not a number"));
    }

    #[test]
    fn a_prosody_subscribe_result_and_an_ejabberd_one() {
        // Prosody 0.12: the subscription echoed, no subid.
        let prosody = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription jid='bob@localhost/tui' node='store' subscription='subscribed'/></pubsub>",
        );
        assert_eq!(SubState::from_result(Some(&prosody)), SubState::Subscribed);
        // ejabberd: with a subid; pending when the owner must approve.
        let ejabberd = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription jid='bob@localhost/tui' subid='5A3A3F8C7B8C2' node='n' subscription='pending'/></pubsub>",
        );
        assert_eq!(SubState::from_result(Some(&ejabberd)), SubState::Pending);
        assert_eq!(SubState::from_result(None), SubState::Subscribed);
        // serve builds what both read.
        let served = Subscription {
            node: "test".into(),
            jid: "bob@localhost/b".into(),
            subid: Some("0123".into()),
            state: "subscribed".into(),
        };
        let back = Subscriptions::parse(Some(&wrap_list(&served)));
        assert_eq!(back.list, std::slice::from_ref(&served));
        assert_eq!(
            SubState::from_result(Some(&parse(&to_xml(&served.build_result())))),
            SubState::Subscribed
        );
    }

    fn wrap_list(s: &Subscription) -> Element {
        Subscriptions {
            node: None,
            list: vec![s.clone()],
        }
        .build()
    }

    #[test]
    fn subscription_lists_read_and_round_trip() {
        let reply = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions><subscription node='a' jid='u@x/pubsub-tui-1' subscription='subscribed' subid='s1'/><subscription node='b' jid='u@x/y'/><subscription jid='no-node@x'/></subscriptions></pubsub>",
        );
        let subs = Subscriptions::parse(Some(&reply));
        assert_eq!(subs.list.len(), 2);
        assert_eq!(subs.list[0].subid.as_deref(), Some("s1"));
        assert_eq!(subs.list[1].state, "subscribed");
        assert_eq!(
            Subscriptions::parse(Some(&parse(&to_xml(&subs.build())))),
            subs
        );
    }

    #[test]
    fn items_results_with_and_without_rsm() {
        // ejabberd 23.01: hex ids, RSM beside the items.
        let ejabberd = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='feed'><item id='7037B7237A0BA'/><item id='7037B7237A0BB'/></items><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>7037B7237A0BA</first><last>7037B7237A0BB</last><count>1000</count></set></pubsub>",
        );
        let r = ItemsResult::parse("feed", Some(&ejabberd));
        assert_eq!(r.items.len(), 2);
        assert_eq!(r.page.as_ref().and_then(|p| p.count), Some(1000));
        assert_eq!(r.next_after(2).as_deref(), Some("7037B7237A0BB"));
        assert_eq!(r.next_after(1000), None, "all there");
        // Prosody: no RSM, so no next page.
        let prosody = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='feed'><item id='a'/></items></pubsub>",
        );
        assert_eq!(
            ItemsResult::parse("feed", Some(&prosody)).next_after(1),
            None
        );
        // serve: RSM and its head number; what it builds reads back.
        let served = ItemsResult {
            node: "test".into(),
            items: vec![parse(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='i1'/>",
            )],
            page: Some(ItemsResult::page_of(Some(("i1", 0)), Some("i1"), 1)),
            head: Some(42),
        };
        assert_eq!(
            ItemsResult::parse("test", Some(&parse(&to_xml(&served.build())))),
            served
        );
    }

    #[test]
    fn publish_results_say_the_id() {
        let prosody = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item id='c5b0fd2d-0c88-4a4b-9a8f-3a0c35d7e1f1'/></publish></pubsub>",
        );
        assert_eq!(
            Publish::result_id(Some(&prosody)).as_deref(),
            Some("c5b0fd2d-0c88-4a4b-9a8f-3a0c35d7e1f1")
        );
        let served = Publish::build_result("test", "0123abcd");
        assert_eq!(
            Publish::result_id(Some(&served)).as_deref(),
            Some("0123abcd")
        );
        assert_eq!(Publish::result_id(None), None);
    }
}
