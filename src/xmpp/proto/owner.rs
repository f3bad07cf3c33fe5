//! The `http://jabber.org/protocol/pubsub#owner` requests (XEP-0060 §8): configure, delete,
//! purge, affiliations and subscriptions, with their results. The client builds the requests
//! and reads the results; `serve` reads the requests ([`Request::parse`]) and builds the
//! results, with the same types.
//!
//! By hand: xmpp-parsers' `PubSubOwner` has no delete redirect and its `Affiliation` has
//! private fields and no constructor (STACK-NOTES), and `serve` must also read requests it does
//! not do (by name, to refuse them), which that type rejects.

use xmpp_parsers::minidom::Element;

use super::form::Form;
use super::{NS_PUBSUB_OWNER, el, set_attr, wrap};
use crate::sanitize;

fn owner(child: Element) -> Element {
    wrap("pubsub", NS_PUBSUB_OWNER, child)
}

fn node_attr(e: &Element) -> Option<String> {
    e.attr("node").map(str::to_owned)
}

fn with_node(name: &str, node: Option<&String>) -> Element {
    let mut e = el(name, NS_PUBSUB_OWNER, &[]);
    if let Some(n) = node {
        set_attr(&mut e, "node", n);
    }
    e
}

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
        owner(with_node("purge", self.node.as_ref()))
    }
}

/// `<delete node='N'><redirect uri='U'/></delete>`: delete a node; its subscribers are told,
/// and pointed to `redirect` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub node: Option<String>,
    pub redirect: Option<String>,
}

impl Delete {
    pub fn new(node: &str, redirect: Option<&str>) -> Self {
        Self {
            node: Some(node.to_owned()),
            redirect: redirect.map(str::to_owned),
        }
    }

    pub fn build(&self) -> Element {
        let mut d = with_node("delete", self.node.as_ref());
        if let Some(uri) = &self.redirect {
            d.append_child(el("redirect", NS_PUBSUB_OWNER, &[("uri", uri)]));
        }
        owner(d)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: node_attr(e),
            redirect: e
                .get_child("redirect", NS_PUBSUB_OWNER)
                .and_then(|r| r.attr("uri"))
                .map(|u| sanitize::display_max(u, 1024)),
        }
    }
}

/// Is this a redirect a delete may point subscribers to: an `xmpp:` URI (XEP-0060 §8.4.1),
/// at most 1,024 bytes, without spaces or control characters?
pub fn is_redirect(uri: &str) -> bool {
    uri.starts_with("xmpp:")
        && uri.len() > 5
        && uri.len() <= 1024
        && !uri.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `<configure node='N'/>`: without a form, asks for the node's configuration form; with one,
/// submits it (or cancels); the result carries the form to fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configure {
    pub node: Option<String>,
    pub form: Option<Form>,
}

impl Configure {
    pub fn get(node: &str) -> Self {
        Self {
            node: Some(node.to_owned()),
            form: None,
        }
    }

    pub fn set(node: &str, form: Form) -> Self {
        Self {
            node: Some(node.to_owned()),
            form: Some(form),
        }
    }

    pub fn build(&self) -> Element {
        let mut c = with_node("configure", self.node.as_ref());
        if let Some(f) = &self.form {
            c.append_child(f.build());
        }
        owner(c)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: node_attr(e),
            form: Form::find_in(e),
        }
    }

    /// Read a result (of a configure or a default request): the form, if there is one.
    pub fn parse_result(payload: Option<&Element>) -> Option<Form> {
        let p = payload?;
        let holder = p
            .get_child("configure", NS_PUBSUB_OWNER)
            .or_else(|| p.get_child("default", NS_PUBSUB_OWNER))?;
        Form::find_in(holder)
    }
}

/// `<default/>`: the configuration form a new node gets (XEP-0060 §8.3); the answer is read
/// like a configure result.
pub fn default_query() -> Element {
    owner(el("default", NS_PUBSUB_OWNER, &[]))
}

/// The answer to [`default_query`]: the form in `<default/>`.
pub fn default_result(form: &Form) -> Element {
    let mut d = el("default", NS_PUBSUB_OWNER, &[]);
    d.append_child(form.build());
    owner(d)
}

/// The affiliations a node's owner may give (XEP-0060 §4.1).
pub const AFFILIATIONS: &[&str] = &[
    "owner",
    "publisher",
    "publish-only",
    "member",
    "none",
    "outcast",
];

/// One `<affiliation jid='J' affiliation='A'/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affiliation {
    pub jid: String,
    pub affiliation: String,
}

/// `<affiliations node='N'>…</affiliations>`: empty asks for the list, with entries changes
/// it; the result lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Affiliations {
    pub node: Option<String>,
    pub list: Vec<Affiliation>,
}

impl Affiliations {
    pub fn new(node: &str, list: Vec<Affiliation>) -> Self {
        Self {
            node: Some(node.to_owned()),
            list,
        }
    }

    pub fn build(&self) -> Element {
        let mut a = with_node("affiliations", self.node.as_ref());
        for x in &self.list {
            a.append_child(el(
                "affiliation",
                NS_PUBSUB_OWNER,
                &[("jid", &x.jid), ("affiliation", &x.affiliation)],
            ));
        }
        owner(a)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: node_attr(e),
            list: e
                .children()
                .filter(|c| c.is("affiliation", NS_PUBSUB_OWNER))
                .filter_map(|c| {
                    Some(Affiliation {
                        jid: sanitize::display_max(c.attr("jid")?, 3071),
                        affiliation: sanitize::display_max(c.attr("affiliation")?, 32),
                    })
                })
                .take(100_000)
                .collect(),
        }
    }

    /// Read a result (an empty list when there is none).
    pub fn parse_result(payload: Option<&Element>) -> Self {
        payload
            .and_then(|p| p.get_child("affiliations", NS_PUBSUB_OWNER))
            .map(Self::read)
            .unwrap_or_default()
    }
}

/// The subscription states an owner may set (XEP-0060 §8.8.2).
pub const SUB_STATES: &[&str] = &["subscribed", "pending", "unconfigured", "none"];

/// One `<subscription jid='J' subscription='S' [subid='I']/>` in the owner's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSub {
    pub jid: String,
    pub state: String,
    pub subid: Option<String>,
}

/// `<subscriptions node='N'>…</subscriptions>` (owner): empty asks for the node's
/// subscriptions, with entries changes them (`none` removes one, `subscribed` approves a
/// pending one); the result lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSubs {
    pub node: Option<String>,
    pub list: Vec<NodeSub>,
}

impl NodeSubs {
    pub fn new(node: &str, list: Vec<NodeSub>) -> Self {
        Self {
            node: Some(node.to_owned()),
            list,
        }
    }

    pub fn build(&self) -> Element {
        let mut s = with_node("subscriptions", self.node.as_ref());
        for x in &self.list {
            let mut e = el(
                "subscription",
                NS_PUBSUB_OWNER,
                &[("jid", &x.jid), ("subscription", &x.state)],
            );
            if let Some(id) = &x.subid {
                set_attr(&mut e, "subid", id);
            }
            s.append_child(e);
        }
        owner(s)
    }

    fn read(e: &Element) -> Self {
        Self {
            node: node_attr(e),
            list: e
                .children()
                .filter(|c| c.is("subscription", NS_PUBSUB_OWNER))
                .filter_map(|c| {
                    Some(NodeSub {
                        jid: sanitize::display_max(c.attr("jid")?, 3071),
                        state: sanitize::display_max(
                            c.attr("subscription").unwrap_or("subscribed"),
                            32,
                        ),
                        subid: c.attr("subid").map(|i| sanitize::display_max(i, 256)),
                    })
                })
                .take(100_000)
                .collect(),
        }
    }

    /// Read a result (an empty list when there is none).
    pub fn parse_result(payload: Option<&Element>) -> Self {
        payload
            .and_then(|p| p.get_child("subscriptions", NS_PUBSUB_OWNER))
            .map(Self::read)
            .unwrap_or_default()
    }
}

/// The `FORM_TYPE` of a subscription authorization request (XEP-0060 §8.6).
pub const SUBSCRIBE_AUTHORIZATION: &str =
    "http://jabber.org/protocol/pubsub#subscribe_authorization";

/// A service asks a node's owner to approve a subscription (an `authorize` node): a message
/// holding a data form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub node: String,
    pub jid: String,
    pub subid: Option<String>,
}

impl AuthorizationRequest {
    /// Read a message's payloads: the request, if one of them is its form.
    pub fn find(payloads: &[Element]) -> Option<Self> {
        let form = payloads
            .iter()
            .filter(|p| p.is("x", super::NS_DATA))
            .filter_map(Form::parse)
            .find(|f| f.form_type() == Some(SUBSCRIBE_AUTHORIZATION))?;
        let value = |var: &str| {
            form.field(var)
                .map(|f| f.value().trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Some(Self {
            node: sanitize::display_max(&value("pubsub#node")?, 1024),
            jid: sanitize::display_max(&value("pubsub#subscriber_jid")?, 3071),
            subid: value("pubsub#subid").map(|i| sanitize::display_max(&i, 256)),
        })
    }
}

/// A `<pubsub xmlns='…#owner'/>` request, as a service reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Purge(Purge),
    Delete(Delete),
    Configure(Configure),
    Affiliations(Affiliations),
    Subscriptions(NodeSubs),
    /// Another owner request, by its element name (`default`, …).
    Other(String),
}

impl Request {
    pub fn parse(p: &Element) -> Option<Self> {
        let action = p.children().find(|c| c.ns() == NS_PUBSUB_OWNER)?;
        Some(match action.name() {
            "purge" => Self::Purge(Purge {
                node: node_attr(action),
            }),
            "delete" => Self::Delete(Delete::read(action)),
            "configure" => Self::Configure(Configure::read(action)),
            "affiliations" => Self::Affiliations(Affiliations::read(action)),
            "subscriptions" => Self::Subscriptions(NodeSubs::read(action)),
            other => Self::Other(crate::sanitize::display_max(other, 64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::form::{Field, FieldKind, FormKind};
    use crate::xmpp::proto::{parse_xml as parse, to_xml};

    fn round_trip(built: &Element) -> Option<Request> {
        Request::parse(&parse(&to_xml(built)))
    }

    #[test]
    fn requests_round_trip() {
        let purge = Purge::new("news");
        assert_eq!(round_trip(&purge.build()), Some(Request::Purge(purge)));
        let delete = Delete::new("news", Some("xmpp:pubsub.x?;node=new"));
        assert_eq!(round_trip(&delete.build()), Some(Request::Delete(delete)));
        let get = Configure::get("news");
        assert_eq!(round_trip(&get.build()), Some(Request::Configure(get)));
        let form = Form::new(
            FormKind::Submit,
            vec![
                Field::new(
                    "FORM_TYPE",
                    FieldKind::Hidden,
                    &["http://jabber.org/protocol/pubsub#node_config"],
                ),
                Field::new("pubsub#max_items", FieldKind::TextSingle, &["5"]),
            ],
        );
        let set = Configure::set("news", form);
        assert_eq!(round_trip(&set.build()), Some(Request::Configure(set)));
        let affs = Affiliations::new(
            "news",
            vec![Affiliation {
                jid: "bob@x".into(),
                affiliation: "publisher".into(),
            }],
        );
        assert_eq!(round_trip(&affs.build()), Some(Request::Affiliations(affs)));
        let subs = NodeSubs::new(
            "news",
            vec![NodeSub {
                jid: "bob@x/r".into(),
                state: "none".into(),
                subid: Some("s1".into()),
            }],
        );
        assert_eq!(
            round_trip(&subs.build()),
            Some(Request::Subscriptions(subs))
        );
        let other =
            parse("<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><default/></pubsub>");
        assert_eq!(
            Request::parse(&other),
            Some(Request::Other("default".into()))
        );
        let empty = parse("<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/>");
        assert_eq!(Request::parse(&empty), None);
    }

    #[test]
    fn an_authorization_request_reads() {
        // As XEP-0060 §8.6 shows it (ejabberd sends this shape).
        let form = parse(
            "<x xmlns='jabber:x:data' type='form'><title>PubSub subscriber request</title><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#subscribe_authorization</value></field><field var='pubsub#subid' type='hidden'><value>123-abc</value></field><field var='pubsub#node' type='text-single'><value>club</value></field><field var='pubsub#subscriber_jid' type='jid-single'><value>bob@localhost</value></field><field var='pubsub#allow' type='boolean'><value>false</value></field></x>",
        );
        assert_eq!(
            AuthorizationRequest::find(&[form]),
            Some(AuthorizationRequest {
                node: "club".into(),
                jid: "bob@localhost".into(),
                subid: Some("123-abc".into()),
            })
        );
        let other = parse(
            "<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>urn:other</value></field></x>",
        );
        assert_eq!(AuthorizationRequest::find(&[other]), None);
    }

    #[test]
    fn results_of_prosody_and_ejabberd() {
        // Prosody 0.12: affiliations and subscriptions of a node.
        let affs = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='n'><affiliation jid='admin@localhost' affiliation='owner'/><affiliation jid='bob@localhost' affiliation='publisher'/><affiliation affiliation='member'/></affiliations></pubsub>",
        );
        let a = Affiliations::parse_result(Some(&affs));
        assert_eq!(a.node.as_deref(), Some("n"));
        assert_eq!(a.list.len(), 2, "an entry without a JID is skipped");
        assert_eq!(a.list[1].affiliation, "publisher");
        // ejabberd: a subid on each subscription.
        let subs = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><subscriptions node='n'><subscription jid='bob@localhost/r' subscription='pending' subid='5A3A'/></subscriptions></pubsub>",
        );
        let s = NodeSubs::parse_result(Some(&subs));
        assert_eq!(s.list[0].state, "pending");
        assert_eq!(s.list[0].subid.as_deref(), Some("5A3A"));
        assert_eq!(NodeSubs::parse_result(None), NodeSubs::default());
        let config = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='form'><field var='pubsub#title'><value>T</value></field></x></configure></pubsub>",
        );
        let form = Configure::parse_result(Some(&config)).expect("a form");
        assert_eq!(form.field("pubsub#title").map(Field::value), Some("T"));
        assert_eq!(Configure::parse_result(None), None);
    }
}
