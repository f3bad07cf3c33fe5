//! The protocol pairs over XML captured from real servers (`tests/fixtures/captured/`:
//! Prosody 0.12, ejabberd 23.01 and `serve`, answering the same requests): each answer is
//! parsed, checked, built again and parsed back to the same value.

use pubsub_tui::xmpp::proto::{self, SubState, disco, pubsub};
use xmpp_parsers::minidom::Element;

const SERVERS: [&str; 3] = ["prosody", "ejabberd", "serve"];

fn captured(server: &str, what: &str) -> Element {
    let path = format!(
        "{}/tests/fixtures/captured/{server}_{what}.xml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parse, build, parse again: the same value.
fn round_trip<T: PartialEq + std::fmt::Debug>(
    value: &T,
    build: impl Fn(&T) -> Element,
    parse: impl Fn(&Element) -> T,
) {
    let xml = proto::to_xml(&build(value));
    let back = parse(&xml.parse().expect("built XML parses"));
    assert_eq!(&back, value, "after a round trip through {xml}");
}

#[test]
fn node_lists_from_every_server() {
    for server in SERVERS {
        let items = disco::Items::parse(&captured(server, "nodes")).expect(server);
        let mut nodes: Vec<(Option<&str>, Option<&str>)> = items
            .items
            .iter()
            .map(|i| (i.node.as_deref(), i.name.as_deref()))
            .collect();
        nodes.sort_unstable();
        assert_eq!(
            nodes,
            [(Some("demo"), None), (Some("news"), Some("All the news"))],
            "{server}"
        );
        // Only serve pages its list (RSM); the others answer all at once.
        assert_eq!(items.page.is_some(), server == "serve", "{server}");
        assert_eq!(
            items.next_after(items.items.len()),
            None,
            "{server}: one page"
        );
        round_trip(&items, disco::Items::build, |e| {
            disco::Items::parse(e).expect("items")
        });
    }
}

#[test]
fn service_identity_and_features_from_every_server() {
    for (server, name) in [
        ("prosody", "Prosody PubSub Service"),
        ("ejabberd", "Publish-Subscribe"),
        ("serve", "pubsub-tui relay"),
    ] {
        let info = disco::Info::parse(&captured(server, "info")).expect(server);
        let id = &info.identities[0];
        assert_eq!(
            (id.category.as_str(), id.kind.as_str(), id.name.as_deref()),
            ("pubsub", "service", Some(name))
        );
        let features = disco::pubsub_features(&info.features);
        let has = |f: &str| {
            features
                .iter()
                .any(|(n, a)| *n == f && *a == disco::Advertised::Yes)
        };
        assert!(has("publish") && has("retrieve-items"), "{server}");
        round_trip(&info, disco::Info::build, |e| {
            disco::Info::parse(e).expect("info")
        });
    }
    // What each says it lacks, and what it has beyond XEP-0060.
    let prosody = disco::Info::parse(&captured("prosody", "info")).expect("prosody");
    assert!(
        disco::pubsub_features(&prosody.features).contains(&("get-pending", disco::Advertised::No))
    );
    let ejabberd = disco::Info::parse(&captured("ejabberd", "info")).expect("ejabberd");
    assert!(disco::unknown_pubsub_features(&ejabberd.features).contains(&"collections"));
}

#[test]
fn node_meta_data_from_every_server() {
    for server in SERVERS {
        let info = disco::Info::parse(&captured(server, "info_node")).expect(server);
        assert_eq!(info.node.as_deref(), Some("news"), "{server}");
        assert!(!info.is_collection(), "{server}");
        let meta = info
            .meta
            .clone()
            .unwrap_or_else(|| panic!("{server}: meta-data"));
        assert_eq!(meta.title.as_deref(), Some("All the news"), "{server}");
        match server {
            // An empty field is no value.
            "prosody" => {
                assert_eq!(meta.description, None);
                assert_eq!(meta.access_model.as_deref(), Some("open"));
            }
            "ejabberd" => {
                assert_eq!(meta.owners, ["alice@localhost"]);
                assert_eq!(meta.num_subscribers, Some(0));
            }
            _ => assert_eq!(meta.creator.as_deref(), Some("alice@localhost")),
        }
        round_trip(&info, disco::Info::build, |e| {
            disco::Info::parse(e).expect("info")
        });
    }
}

#[test]
fn subscribe_answers_and_subscription_lists_from_every_server() {
    for server in SERVERS {
        let answer = captured(server, "subscribe");
        assert_eq!(SubState::from_result(Some(&answer)), SubState::Subscribed);
        let subs = pubsub::Subscriptions::parse(Some(&captured(server, "subscriptions")));
        let [sub] = subs.list.as_slice() else {
            panic!("{server}: {subs:?}")
        };
        assert_eq!(
            (sub.node.as_str(), sub.jid.as_str(), sub.state.as_str()),
            ("news", "alice@localhost", "subscribed"),
            "{server}"
        );
        // Prosody gives no subscription ids; ejabberd and serve do.
        assert_eq!(sub.subid.is_some(), server != "prosody", "{server}");
        round_trip(&subs, pubsub::Subscriptions::build, |e| {
            pubsub::Subscriptions::parse(Some(e))
        });
    }
}

#[test]
fn stored_items_from_every_server() {
    for server in SERVERS {
        let result = pubsub::ItemsResult::parse("news", Some(&captured(server, "items")));
        let [item] = result.items.as_slice() else {
            panic!("{server}: {result:?}")
        };
        let parsed = proto::parse_item("news", item);
        assert_eq!(parsed.text(), "hello", "{server}");
        assert_eq!(parsed.sender(), Some("alice@localhost/a"), "{server}");
        // ejabberd and serve page (RSM); serve also numbers its items (the head).
        assert_eq!(result.page.is_some(), server != "prosody", "{server}");
        assert_eq!(result.head.is_some(), server == "serve", "{server}");
        round_trip(&result, pubsub::ItemsResult::build, |e| {
            pubsub::ItemsResult::parse("news", Some(e))
        });
    }
}

#[test]
fn configuration_forms_from_every_server() {
    use proto::form::{FieldKind, Form};
    use proto::owner::Configure;
    for server in SERVERS {
        for what in ["config", "default"] {
            let reply = captured(server, what);
            let form = Configure::parse_result(Some(&reply))
                .unwrap_or_else(|| panic!("{server} {what}: a form"));
            assert_eq!(
                form.form_type(),
                Some("http://jabber.org/protocol/pubsub#node_config"),
                "{server} {what}"
            );
            // Every server has these, typed as the XEP says.
            let access = form.field("pubsub#access_model").expect("access_model");
            assert_eq!(access.kind, FieldKind::ListSingle, "{server}");
            assert!(
                access.options.iter().any(|o| o.value == "open")
                    && access.options.iter().any(|o| o.value == "whitelist"),
                "{server}: {access:?}"
            );
            let max = form.field("pubsub#max_items").expect("max_items");
            assert_eq!(max.kind, FieldKind::TextSingle, "{server}");
            let expected = if what == "config" { "10" } else { max.value() };
            assert_eq!(max.value(), expected, "{server}: the node keeps 10");
            assert_eq!(
                form.field("pubsub#notify_retract").map(|f| f.kind.clone()),
                Some(FieldKind::Boolean),
                "{server}"
            );
            // ejabberd's default form has no title; the node's form has one everywhere.
            if what == "config" {
                assert!(form.field("pubsub#title").is_some(), "{server}");
            }
            // Edited and submitted: only vars and values, the changes in.
            let mut edited = form.clone();
            let changed = edited
                .apply(&[("max_items".into(), "3".into())])
                .expect("valid");
            assert_eq!(changed, ["pubsub#max_items"], "{server}");
            let sent = Form::parse(&edited.submission().build()).expect("a form");
            assert_eq!(
                sent.field("pubsub#max_items")
                    .map(proto::form::Field::value),
                Some("3")
            );
            assert!(
                sent.fields
                    .iter()
                    .all(|f| f.label.is_none() && f.options.is_empty())
            );
            assert_eq!(
                Form::parse(&form.build()),
                Some(form.clone()),
                "{server}: round trip"
            );
        }
    }
}

#[test]
fn affiliations_and_node_subscriptions_from_every_server() {
    use proto::owner::{Affiliations, NodeSubs};
    for server in SERVERS {
        let affs = Affiliations::parse_result(Some(&captured(server, "affiliations")));
        assert_eq!(affs.node.as_deref(), Some("news"), "{server}");
        let owner = if server == "prosody" {
            "admin@localhost"
        } else {
            "alice@localhost"
        };
        assert!(
            affs.list
                .iter()
                .any(|a| a.jid == owner && a.affiliation == "owner"),
            "{server}: {affs:?}"
        );
        round_trip(&affs, Affiliations::build, |e| {
            Affiliations::parse_result(Some(e))
        });
        let subs = NodeSubs::parse_result(Some(&captured(server, "node_subscriptions")));
        assert!(
            subs.list
                .iter()
                .any(|s| s.jid.starts_with("alice@localhost") && s.state == "subscribed"),
            "{server}: {subs:?}"
        );
        // Only Prosody gives no subscription id.
        assert_eq!(
            subs.list.iter().all(|s| s.subid.is_some()),
            server != "prosody",
            "{server}"
        );
        round_trip(&subs, NodeSubs::build, |e| NodeSubs::parse_result(Some(e)));
    }
}
