//! Why a request failed, as data: the stanza error's defined condition, the pubsub detail and
//! the service's text, or a local reason (no answer in time, the connection went away).
//!
//! Front ends match on [`Condition`] and [`RequestError`], never on text, and turn them into
//! plain words with [`explain`], which knows what was asked ([`Op`]) of which node and service.

use std::time::Duration;

use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::proto::NS_PUBSUB_ERRORS;
use crate::sanitize;

/// The defined conditions of RFC 6120 §8.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl Condition {
    pub fn from_defined(c: &DefinedCondition) -> Self {
        match c {
            DefinedCondition::BadRequest => Self::BadRequest,
            DefinedCondition::Conflict => Self::Conflict,
            DefinedCondition::FeatureNotImplemented => Self::FeatureNotImplemented,
            DefinedCondition::Forbidden => Self::Forbidden,
            DefinedCondition::Gone { .. } => Self::Gone,
            DefinedCondition::InternalServerError => Self::InternalServerError,
            DefinedCondition::ItemNotFound => Self::ItemNotFound,
            DefinedCondition::JidMalformed => Self::JidMalformed,
            DefinedCondition::NotAcceptable => Self::NotAcceptable,
            DefinedCondition::NotAllowed => Self::NotAllowed,
            DefinedCondition::NotAuthorized => Self::NotAuthorized,
            DefinedCondition::PolicyViolation => Self::PolicyViolation,
            DefinedCondition::RecipientUnavailable => Self::RecipientUnavailable,
            DefinedCondition::Redirect { .. } => Self::Redirect,
            DefinedCondition::RegistrationRequired => Self::RegistrationRequired,
            DefinedCondition::RemoteServerNotFound => Self::RemoteServerNotFound,
            DefinedCondition::RemoteServerTimeout => Self::RemoteServerTimeout,
            DefinedCondition::ResourceConstraint => Self::ResourceConstraint,
            DefinedCondition::ServiceUnavailable => Self::ServiceUnavailable,
            DefinedCondition::SubscriptionRequired => Self::SubscriptionRequired,
            DefinedCondition::UndefinedCondition => Self::UndefinedCondition,
            DefinedCondition::UnexpectedRequest => Self::UnexpectedRequest,
        }
    }

    /// The element name on the wire (`item-not-found`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Conflict => "conflict",
            Self::FeatureNotImplemented => "feature-not-implemented",
            Self::Forbidden => "forbidden",
            Self::Gone => "gone",
            Self::InternalServerError => "internal-server-error",
            Self::ItemNotFound => "item-not-found",
            Self::JidMalformed => "jid-malformed",
            Self::NotAcceptable => "not-acceptable",
            Self::NotAllowed => "not-allowed",
            Self::NotAuthorized => "not-authorized",
            Self::PolicyViolation => "policy-violation",
            Self::RecipientUnavailable => "recipient-unavailable",
            Self::Redirect => "redirect",
            Self::RegistrationRequired => "registration-required",
            Self::RemoteServerNotFound => "remote-server-not-found",
            Self::RemoteServerTimeout => "remote-server-timeout",
            Self::ResourceConstraint => "resource-constraint",
            Self::ServiceUnavailable => "service-unavailable",
            Self::SubscriptionRequired => "subscription-required",
            Self::UndefinedCondition => "undefined-condition",
            Self::UnexpectedRequest => "unexpected-request",
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reply, read into plain values (sanitised: they come from a peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub condition: Condition,
    /// The error type said to wait and retry.
    pub wait: bool,
    /// The pubsub#errors child: its name (`unsupported`, `payload-too-big`, …).
    pub pubsub: Option<String>,
    /// The `feature` attribute of a pubsub `<unsupported/>`.
    pub feature: Option<String>,
    /// The human text the service sent, if any.
    pub text: Option<String>,
}

impl Refusal {
    pub fn from_stanza_error(e: &StanzaError) -> Self {
        let (pubsub, feature) = match &e.other {
            Some(other) if other.ns() == NS_PUBSUB_ERRORS => (
                Some(sanitize::display_max(other.name(), 64)),
                other.attr("feature").map(|f| sanitize::display_max(f, 128)),
            ),
            _ => (None, None),
        };
        let text = e
            .texts
            .get("en")
            .or_else(|| e.texts.values().next())
            .map(|t| sanitize::display_max(t.trim(), 300))
            .filter(|t| !t.is_empty());
        Self {
            condition: Condition::from_defined(&e.defined_condition),
            wait: e.type_ == ErrorType::Wait,
            pubsub,
            feature,
            text,
        }
    }

    /// Read an `<error/>` element (for tests and fixtures).
    pub fn from_element(e: Element) -> Option<Self> {
        StanzaError::try_from(e)
            .ok()
            .map(|e| Self::from_stanza_error(&e))
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The service (or the server on its behalf) answered with an error.
    Refused(Refusal),
    /// No answer within this long while the link was up.
    Timeout(Duration),
    /// The connection ended, or was reset, before an answer came.
    Connection(String),
    /// Not connected, and the request cannot wait for the link.
    Offline,
    /// Refused here, before anything was sent (too big, invalid).
    Invalid(String),
}

impl RequestError {
    pub fn from_stanza_error(e: &StanzaError) -> Self {
        Self::Refused(Refusal::from_stanza_error(e))
    }

    pub fn condition(&self) -> Option<Condition> {
        match self {
            Self::Refused(r) => Some(r.condition),
            _ => None,
        }
    }

    /// Worth trying again after a while: the peer is not there right now, or said to wait,
    /// or did not answer.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Refused(r) => {
                r.wait
                    || matches!(
                        r.condition,
                        Condition::ServiceUnavailable
                            | Condition::RecipientUnavailable
                            | Condition::RemoteServerTimeout
                            | Condition::RemoteServerNotFound
                            | Condition::InternalServerError
                            | Condition::ResourceConstraint
                    )
            }
            Self::Timeout(_) | Self::Connection(_) => true,
            Self::Offline | Self::Invalid(_) => false,
        }
    }

    /// The pubsub#errors detail (`not-subscribed`, `payload-too-big`, …).
    pub fn pubsub_detail(&self) -> Option<&str> {
        match self {
            Self::Refused(r) => r.pubsub.as_deref(),
            _ => None,
        }
    }

    /// The service cannot do this kind of request at all.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::Refused(r)
            if r.condition == Condition::FeatureNotImplemented
                || r.pubsub.as_deref() == Some("unsupported"))
    }
}

/// `condition (pubsub detail): text` — the error as the service gave it.
impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(r) => {
                write!(f, "{}", r.condition)?;
                match (&r.pubsub, &r.feature) {
                    (Some(p), Some(feat)) => write!(f, " ({p} {feat})")?,
                    (Some(p), None) => write!(f, " ({p})")?,
                    _ => {}
                }
                if let Some(t) = &r.text {
                    write!(f, ": {t}")?;
                }
                Ok(())
            }
            Self::Timeout(d) => write!(f, "no answer within {} s", d.as_secs().max(1)),
            Self::Connection(why) | Self::Invalid(why) => f.write_str(why),
            Self::Offline => f.write_str("not connected"),
        }
    }
}

/// What was asked, for the words of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Subscribe,
    Unsubscribe,
    Retrieve,
    Publish,
    Retract,
    Purge,
    Create,
    Configure,
    Delete,
    Affiliations,
    /// A node's subscriptions, as its owner sees and changes them.
    NodeSubscriptions,
    Subscriptions,
    ListNodes,
    Info,
}

impl Op {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Retrieve => "retrieve items",
            Self::Publish => "publish",
            Self::Retract => "retract",
            Self::Purge => "purge",
            Self::Create => "create the node",
            Self::Configure => "configure the node",
            Self::Delete => "delete the node",
            Self::Affiliations => "manage the node's affiliations",
            Self::NodeSubscriptions => "manage the node's subscriptions",
            Self::Subscriptions => "list subscriptions",
            Self::ListNodes => "list its nodes",
            Self::Info => "describe itself",
        }
    }
}

/// The error in plain words: what it means for this request, then what the service said.
/// `service` is the JID the request went to; a full JID (with a resource) is a relay that
/// runs as an ordinary account.
pub fn explain(error: &RequestError, op: Op, node: &str, service: &str) -> String {
    let RequestError::Refused(r) = error else {
        return error.to_string();
    };
    let relay = service.contains('/');
    let meaning = match (r.condition, op) {
        (Condition::NotAuthorized | Condition::Forbidden, Op::Retrieve)
            if r.pubsub.as_deref() == Some("pending-subscription") =>
        {
            Some(format!(
                "your subscription to '{node}' waits for its owner's approval; its items come then"
            ))
        }
        (Condition::ItemNotFound, Op::Retract) => Some(format!("no such item in '{node}'")),
        (Condition::ItemNotFound, Op::ListNodes | Op::Info) if node.is_empty() => Some(format!(
            "{service} does not exist or is not a pubsub service"
        )),
        (
            Condition::Forbidden | Condition::FeatureNotImplemented | Condition::NotAuthorized,
            Op::ListNodes,
        ) if node.is_empty() => Some(format!("{service} does not list its nodes")),
        (Condition::UnexpectedRequest, Op::Unsubscribe)
            if r.pubsub.as_deref() == Some("not-subscribed") =>
        {
            Some(format!("you are not subscribed to '{node}' at {service}"))
        }
        (Condition::ItemNotFound, Op::Subscriptions) => Some(format!(
            "{service} does not exist or is not a pubsub service"
        )),
        (Condition::ItemNotFound, _) => Some(format!("no such node '{node}' at {service}")),
        (Condition::Forbidden, Op::Publish) => Some(format!(
            "not allowed: the node '{node}' may not exist, or you may not publish to it"
        )),
        (Condition::Forbidden, Op::Subscribe) => Some(format!(
            "not allowed: you may not subscribe to '{node}' (it may not exist)"
        )),
        (Condition::Forbidden, Op::Purge) => Some(format!(
            "forbidden: only the owner of '{node}' may purge it"
        )),
        (Condition::Forbidden, Op::Configure) => Some(format!(
            "forbidden: only the owner of '{node}' may configure it"
        )),
        (Condition::Forbidden, Op::Delete) => Some(format!(
            "forbidden: only the owner of '{node}' may delete it"
        )),
        (Condition::Forbidden, Op::Affiliations) => Some(format!(
            "forbidden: only the owner of '{node}' may see or change its affiliations"
        )),
        (Condition::Forbidden, Op::NodeSubscriptions) => Some(format!(
            "forbidden: only the owner of '{node}' may see or change its subscriptions"
        )),
        (Condition::NotAcceptable, Op::Configure) => {
            Some(format!("{service} does not accept that configuration"))
        }
        (Condition::Conflict, Op::Publish)
            if r.pubsub.as_deref() == Some("precondition-not-met") =>
        {
            Some(format!(
                "the configuration of '{node}' does not match the publish-options"
            ))
        }
        (Condition::Forbidden, Op::Retract) => Some(
            "forbidden: only the item's publisher, the node's publishers or its owners may \
             retract it"
                .to_owned(),
        ),
        (Condition::Forbidden, Op::Create) => {
            Some(format!("forbidden: you may not create nodes at {service}"))
        }
        (Condition::ServiceUnavailable | Condition::RecipientUnavailable, _) if relay => {
            Some(format!("the service {service} is not online"))
        }
        (Condition::ServiceUnavailable, _) => Some(format!(
            "{service} is not available (it may not be a pubsub service)"
        )),
        (Condition::RemoteServerNotFound | Condition::RemoteServerTimeout, _) => {
            Some(format!("the server of {service} cannot be reached"))
        }
        (Condition::Conflict, Op::Create) => Some(format!("the node '{node}' exists already")),
        (Condition::NotAcceptable, Op::Publish)
            if r.pubsub.as_deref() == Some("payload-too-big") =>
        {
            Some(format!("the item is too big for {service}"))
        }
        (Condition::FeatureNotImplemented, _) => Some(match &r.feature {
            Some(feat) => format!("{service} does not support {feat}"),
            None => format!("{service} cannot {}", op.verb()),
        }),
        _ => None,
    };
    match meaning {
        Some(m) => format!("{m} ({error})"),
        // About a service as a whole: say which one answered.
        None if matches!(op, Op::ListNodes | Op::Info | Op::Subscriptions) => {
            format!("{service}: {error}")
        }
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(xml: &str) -> RequestError {
        let e: Element = xml.parse().expect("xml");
        RequestError::Refused(Refusal::from_element(e).expect("an error element"))
    }

    #[test]
    fn reads_condition_detail_and_text() {
        let e = refusal(
            "<error xmlns='jabber:client' type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='retrieve-items'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>nope\u{9b}2J</text></error>",
        );
        assert_eq!(e.condition(), Some(Condition::FeatureNotImplemented));
        assert!(e.is_unsupported());
        assert!(!e.is_temporary());
        assert_eq!(
            e.to_string(),
            "feature-not-implemented (unsupported retrieve-items): nope2J"
        );
        assert_eq!(
            explain(&e, Op::Retrieve, "n", "relay@x/server"),
            "relay@x/server does not support retrieve-items (feature-not-implemented (unsupported retrieve-items): nope2J)"
        );
    }

    #[test]
    fn plain_words_depend_on_what_was_asked() {
        let forbidden = refusal(
            "<error xmlns='jabber:client' type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
        );
        assert!(
            explain(&forbidden, Op::Publish, "news", "pubsub.x")
                .starts_with("not allowed: the node 'news' may not exist, or you may not publish")
        );
        let missing = refusal(
            "<error xmlns='jabber:client' type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
        );
        assert!(
            explain(&missing, Op::Subscribe, "x", "pubsub.example.org")
                .starts_with("no such node 'x' at pubsub.example.org")
        );
        let down = refusal(
            "<error xmlns='jabber:client' type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
        );
        assert!(down.is_temporary());
        assert!(
            explain(&down, Op::Subscribe, "x", "relay@localhost/server")
                .starts_with("the service relay@localhost/server is not online")
        );
        let wait = refusal(
            "<error xmlns='jabber:client' type='wait'><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
        );
        assert!(wait.is_temporary(), "type='wait' means try again");
        assert!(RequestError::Timeout(Duration::from_secs(30)).is_temporary());
        assert!(!RequestError::Offline.is_temporary());
    }
}
