//! The relay service's state machine with an in-memory (or temp-dir) store: the XEP-0060
//! surface it answers, verbatim forwarding with the node-wide number, bounces, persistence,
//! and exact gap detection when our client session is wired to it and notifications are lost.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::Utc;
use pubsub_tui::serve::{ServeCommand, ServeConfig, ServeEvent, Service, Store};
use pubsub_tui::xmpp::NetEvent;
use pubsub_tui::xmpp::session::{Input, Now, Output, SERVICE_NUMBERING, Session, SessionConfig};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza::Stanza;

const SVC: &str = "relay@localhost/server";
const PS: &str = "http://jabber.org/protocol/pubsub";
const EV: &str = "http://jabber.org/protocol/pubsub#event";
const SEQ: &str = "urn:x-pubsub-tui:seq:0";
const RSM: &str = "http://jabber.org/protocol/rsm";

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: Utc::now(),
    }
}

fn cfg() -> ServeConfig {
    ServeConfig {
        max_items: 100,
        max_nodes: 10,
        admins: vec![],
        probe_interval: Duration::from_secs(60),
        seed: 7,
    }
}

fn online(store: Store) -> Service {
    let mut s = Service::new(cfg(), store).expect("service");
    s.handle(
        Input::Online {
            bound: Jid::new(SVC).expect("jid"),
            server: None,
        },
        now(),
    );
    s
}

fn stanza<C>(xml: &str) -> Input<C> {
    let el: Element = xml.trim().parse().expect("test XML parses");
    Input::Stanza(Box::new(Stanza::try_from(el).expect("a stanza")))
}

/// What one input made the service send and report.
struct Reply {
    /// The IQ answer, as an element.
    iq: Option<Element>,
    /// Notifications, as elements.
    messages: Vec<Element>,
    other: Vec<Element>,
    events: Vec<ServeEvent>,
}

fn run(s: &mut Service, input: Input<ServeCommand>) -> Reply {
    let mut r = Reply {
        iq: None,
        messages: Vec::new(),
        other: Vec::new(),
        events: Vec::new(),
    };
    for o in s.handle(input, now()) {
        match o {
            Output::Send(st) => match *st {
                Stanza::Iq(iq @ (Iq::Result { .. } | Iq::Error { .. })) => r.iq = Some(iq.into()),
                Stanza::Message(m) => r.messages.push(m.into()),
                Stanza::Iq(other) => r.other.push(other.into()),
                Stanza::Presence(p) => r.other.push(p.into()),
            },
            Output::Event(e) => r.events.push(e),
            Output::Stop => {}
        }
    }
    r
}

fn iq(s: &mut Service, from: &str, kind: &str, body: &str) -> Element {
    let xml = format!(
        "<iq xmlns='jabber:client' type='{kind}' id='q' from='{from}' to='{SVC}'>{body}</iq>"
    );
    run(s, stanza(&xml)).iq.expect("an answer")
}

fn is_error(reply: &Element, condition: &str) -> bool {
    reply.attr("type") == Some("error")
        && reply
            .get_child("error", "jabber:client")
            .is_some_and(|e| e.children().any(|c| c.name() == condition))
}

fn pubsub_error_detail(reply: &Element) -> Option<String> {
    reply
        .get_child("error", "jabber:client")?
        .children()
        .find(|c| c.ns() == "http://jabber.org/protocol/pubsub#errors")
        .map(|c| c.name().to_owned())
}

fn subscribe(s: &mut Service, jid: &str) -> Element {
    iq(
        s,
        jid,
        "set",
        &format!("<pubsub xmlns='{PS}'><subscribe node='test' jid='{jid}'/></pubsub>"),
    )
}

fn items_of(reply: &Element) -> Vec<Element> {
    reply
        .get_child("pubsub", PS)
        .and_then(|p| p.get_child("items", PS))
        .map(|i| i.children().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn publish_forwards_verbatim_with_the_node_wide_number() {
    let mut s = online(Store::open_in_memory().expect("store"));
    let sub = subscribe(&mut s, "bob@localhost/b");
    let subscription = sub
        .get_child("pubsub", PS)
        .and_then(|p| p.get_child("subscription", PS))
        .expect("subscription in the reply");
    assert_eq!(subscription.attr("subscription"), Some("subscribed"));
    assert!(subscription.attr("subid").is_some());
    // A bare-JID subscription is fine too.
    assert_eq!(
        subscribe(&mut s, "carol@localhost").attr("type"),
        Some("result")
    );

    // The Wokkel client's item: attributes only, no id, no payload.
    let wokkel = "<item sender='alice@localhost/w' time='07:56:57' message='Hello!'/>";
    let r = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='set' id='p1' from='alice@localhost/w' to='{SVC}'>\
             <pubsub xmlns='{PS}'><publish node='test'>{wokkel}</publish></pubsub></iq>"
        )),
    );
    let reply = r.iq.expect("answer");
    let id = reply
        .get_child("pubsub", PS)
        .and_then(|p| p.get_child("publish", PS))
        .and_then(|p| p.get_child("item", PS))
        .and_then(|i| i.attr("id"))
        .expect("the reply names the generated id")
        .to_owned();
    assert_eq!(r.messages.len(), 2, "both subscribers are notified");
    let m = &r.messages[0];
    assert_eq!(m.attr("type"), Some("headline"));
    let item = m
        .get_child("event", EV)
        .and_then(|e| e.get_child("items", EV))
        .and_then(|i| i.get_child("item", EV))
        .expect("the item, in the event namespace");
    assert_eq!(item.attr("sender"), Some("alice@localhost/w"));
    assert_eq!(item.attr("time"), Some("07:56:57"));
    assert_eq!(item.attr("message"), Some("Hello!"));
    assert_eq!(item.attr("id"), Some(id.as_str()));
    assert_eq!(item.children().count(), 0, "nothing added inside the item");
    let seq = m.get_child("seq", SEQ).expect("the node-wide number");
    assert_eq!(seq.attr("n"), Some("1"));
    assert_eq!(seq.attr("node"), Some("test"));

    // With an id and a payload: kept as published, numbered 2.
    let r = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='set' id='p2' from='alice@localhost/w' to='{SVC}'>\
             <pubsub xmlns='{PS}'><publish node='test'><item id='x1'>\
             <entry xmlns='http://www.w3.org/2005/Atom'><title>t &amp; &lt;u&gt;</title></entry>\
             </item></publish></pubsub></iq>"
        )),
    );
    let item = r.messages[0]
        .get_child("event", EV)
        .and_then(|e| e.get_child("items", EV))
        .and_then(|i| i.get_child("item", EV))
        .expect("item");
    assert_eq!(item.attr("id"), Some("x1"));
    let title = item
        .get_child("entry", "http://www.w3.org/2005/Atom")
        .and_then(|e| e.get_child("title", "http://www.w3.org/2005/Atom"))
        .map(Element::text);
    assert_eq!(title.as_deref(), Some("t & <u>"));
    assert_eq!(
        r.messages[0]
            .get_child("seq", SEQ)
            .and_then(|s| s.attr("n")),
        Some("2")
    );
    // No item at all, and two items, are refused.
    let none = iq(
        &mut s,
        "alice@localhost/w",
        "set",
        &format!("<pubsub xmlns='{PS}'><publish node='test'/></pubsub>"),
    );
    assert!(is_error(&none, "bad-request"));
    assert_eq!(pubsub_error_detail(&none).as_deref(), Some("item-required"));
}

#[test]
fn retrieve_all_newest_by_id_and_pages() {
    let mut s = online(Store::open_in_memory().expect("store"));
    for i in 1..=5 {
        iq(
            &mut s,
            "alice@localhost/a",
            "set",
            &format!(
                "<pubsub xmlns='{PS}'><publish node='n'><item id='i{i}'><p xmlns='urn:t'>{i}</p></item></publish></pubsub>"
            ),
        );
    }
    let ids = |reply: &Element| -> Vec<String> {
        items_of(reply)
            .iter()
            .filter_map(|i| i.attr("id").map(str::to_owned))
            .collect()
    };
    let all = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='n'/></pubsub>"),
    );
    assert_eq!(ids(&all), ["i1", "i2", "i3", "i4", "i5"]);
    let head = all
        .get_child("pubsub", PS)
        .and_then(|p| p.get_child("seq", SEQ))
        .and_then(|s| s.attr("head"));
    assert_eq!(head, Some("5"));
    let newest = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='n' max_items='2'/></pubsub>"),
    );
    assert_eq!(ids(&newest), ["i4", "i5"]);
    let by_id = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!(
            "<pubsub xmlns='{PS}'><items node='n'><item id='i3'/><item id='nope'/></items></pubsub>"
        ),
    );
    assert_eq!(ids(&by_id), ["i3"]);
    let page = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!(
            "<pubsub xmlns='{PS}'><items node='n'/><set xmlns='{RSM}'><max>2</max><after>i2</after></set></pubsub>"
        ),
    );
    assert_eq!(ids(&page), ["i3", "i4"]);
    let set = page
        .get_child("pubsub", PS)
        .and_then(|p| p.get_child("set", RSM))
        .expect("an RSM set");
    assert_eq!(
        set.get_child("count", RSM).map(Element::text).as_deref(),
        Some("5")
    );
    assert_eq!(
        set.get_child("last", RSM).map(Element::text).as_deref(),
        Some("i4")
    );
    assert_eq!(
        set.get_child("first", RSM).and_then(|f| f.attr("index")),
        Some("2")
    );
    let bad_after = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!(
            "<pubsub xmlns='{PS}'><items node='n'/><set xmlns='{RSM}'><max>2</max><after>gone</after></set></pubsub>"
        ),
    );
    assert!(is_error(&bad_after, "item-not-found"));
    let unknown = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='nothing'/></pubsub>"),
    );
    assert!(is_error(&unknown, "item-not-found"));
    // Our client reads it all back the same way (parser shared with the client).
    let result =
        pubsub_tui::xmpp::proto::pubsub::ItemsResult::parse("n", all.get_child("pubsub", PS));
    let parsed: Vec<_> = result
        .items
        .iter()
        .map(|i| pubsub_tui::xmpp::proto::parse_item("n", i))
        .collect();
    assert_eq!(parsed[4].text(), "p · 5");
}

#[test]
fn retract_purge_and_their_rights() {
    let mut s = online(Store::open_in_memory().expect("store"));
    subscribe(&mut s, "bob@localhost/b");
    iq(
        &mut s,
        "alice@localhost/a",
        "set",
        &format!("<pubsub xmlns='{PS}'><publish node='test'><item id='a1'/></publish></pubsub>"),
    );
    let retract = format!(
        "<pubsub xmlns='{PS}'><retract node='test' notify='true'><item id='a1'/></retract></pubsub>"
    );
    // bob created the node (by subscribing), so bob may; carol may not.
    let carol = iq(&mut s, "carol@localhost/c", "set", &retract);
    assert!(is_error(&carol, "forbidden"));
    let r = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='set' id='r' from='alice@localhost/a' to='{SVC}'>{retract}</iq>"
        )),
    );
    assert_eq!(r.iq.expect("answer").attr("type"), Some("result"));
    let retracted = r.messages[0]
        .get_child("event", EV)
        .and_then(|e| e.get_child("items", EV))
        .and_then(|i| i.get_child("retract", EV))
        .and_then(|x| x.attr("id"));
    assert_eq!(retracted, Some("a1"));
    let again = iq(&mut s, "alice@localhost/a", "set", &retract);
    assert!(is_error(&again, "item-not-found"));

    let purge =
        "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='test'/></pubsub>";
    assert!(is_error(
        &iq(&mut s, "alice@localhost/a", "set", purge),
        "forbidden"
    ));
    let r = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='set' id='p' from='bob@localhost/other' to='{SVC}'>{purge}</iq>"
        )),
    );
    assert_eq!(r.iq.expect("answer").attr("type"), Some("result"));
    assert!(
        r.messages[0]
            .get_child("event", EV)
            .and_then(|e| e.get_child("purge", EV))
            .is_some()
    );
}

#[test]
fn discovery_and_errors() {
    let mut s = online(Store::open_in_memory().expect("store"));
    subscribe(&mut s, "bob@localhost/b");
    let info = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    );
    let q = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("query");
    let identity = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .expect("identity");
    assert_eq!(
        (identity.attr("category"), identity.attr("type")),
        (Some("pubsub"), Some("service"))
    );
    let features: Vec<&str> = q.children().filter_map(|f| f.attr("var")).collect();
    for f in [
        "http://jabber.org/protocol/pubsub#retrieve-items",
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#auto-create",
        "http://jabber.org/protocol/rsm",
        "http://jabber.org/protocol/pubsub#config-node",
        "http://jabber.org/protocol/pubsub#delete-nodes",
        "http://jabber.org/protocol/pubsub#modify-affiliations",
        SEQ,
    ] {
        assert!(features.contains(&f), "{f} announced");
    }
    assert!(
        !features.contains(&"http://jabber.org/protocol/pubsub#subscription-options"),
        "only what is implemented"
    );
    let node_info = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='test'/>",
    );
    assert_eq!(
        node_info
            .get_child("query", "http://jabber.org/protocol/disco#info")
            .and_then(|q| q.get_child("identity", "http://jabber.org/protocol/disco#info"))
            .and_then(|i| i.attr("type")),
        Some("leaf")
    );
    let items = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    );
    let nodes: Vec<&str> = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .expect("query")
        .children()
        .filter_map(|i| i.attr("node"))
        .collect();
    assert_eq!(nodes, ["test"]);
}

#[test]
fn unknown_and_wrong_requests_get_proper_errors() {
    let mut s = online(Store::open_in_memory().expect("store"));
    subscribe(&mut s, "bob@localhost/b");
    let options = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!("<pubsub xmlns='{PS}'><options node='test' jid='bob@localhost/b'/></pubsub>"),
    );
    assert!(is_error(&options, "feature-not-implemented"));
    assert_eq!(
        pubsub_error_detail(&options).as_deref(),
        Some("unsupported")
    );
    let version = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        "<query xmlns='jabber:iq:version'/>",
    );
    assert!(is_error(&version, "service-unavailable"));
    let other_jid = iq(
        &mut s,
        "bob@localhost/b",
        "set",
        &format!("<pubsub xmlns='{PS}'><subscribe node='test' jid='carol@localhost/c'/></pubsub>"),
    );
    assert!(is_error(&other_jid, "bad-request"));
    assert_eq!(
        pubsub_error_detail(&other_jid).as_deref(),
        Some("invalid-jid")
    );
    let not_sub = iq(
        &mut s,
        "carol@localhost/c",
        "set",
        &format!(
            "<pubsub xmlns='{PS}'><unsubscribe node='test' jid='carol@localhost/c'/></pubsub>"
        ),
    );
    assert!(is_error(&not_sub, "unexpected-request"));
    let unsub = iq(
        &mut s,
        "bob@localhost/b",
        "set",
        &format!("<pubsub xmlns='{PS}'><unsubscribe node='test' jid='bob@localhost/b'/></pubsub>"),
    );
    assert_eq!(unsub.attr("type"), Some("result"));
    assert!(s.subscriptions().is_empty());
    let ping = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        "<ping xmlns='urn:xmpp:ping'/>",
    );
    assert_eq!(ping.attr("type"), Some("result"));
    // The node limit.
    for i in 0..20 {
        let r = iq(
            &mut s,
            "bob@localhost/b",
            "set",
            &format!("<pubsub xmlns='{PS}'><create node='n{i}'/></pubsub>"),
        );
        if i >= 9 {
            assert!(is_error(&r, "resource-constraint"), "node {i}");
        }
    }
}

#[test]
fn bounces_pause_and_requests_resume() {
    let mut s = online(Store::open_in_memory().expect("store"));
    subscribe(&mut s, "bob@localhost/b");
    subscribe(&mut s, "carol@localhost/c");
    let publish = |s: &mut Service| {
        run(
            s,
            stanza(&format!(
                "<iq xmlns='jabber:client' type='set' id='p' from='carol@localhost/c' to='{SVC}'>\
                 <pubsub xmlns='{PS}'><publish node='test'><item/></publish></pubsub></iq>"
            )),
        )
    };
    let r = publish(&mut s);
    let deliver_to_bob = r
        .messages
        .iter()
        .find(|m| m.attr("to") == Some("bob@localhost/b"))
        .expect("bob notified");
    let id = deliver_to_bob.attr("id").expect("id").to_owned();
    let bounce = run(
        &mut s,
        stanza(&format!(
            "<message xmlns='jabber:client' type='error' id='{id}' from='bob@localhost/b' to='{SVC}'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )),
    );
    assert!(
        matches!(bounce.events.as_slice(), [ServeEvent::Paused { jid, .. }] if jid == "bob@localhost/b")
    );
    let r = publish(&mut s);
    assert_eq!(r.messages.len(), 1, "a paused subscriber gets nothing");
    assert!(
        s.subscriptions()
            .contains(&("test".into(), "bob@localhost/b".into(), true)),
        "but is kept"
    );
    // Any request from bob resumes him; a stale bounce (sent before that) changes nothing.
    iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='test'/></pubsub>"),
    );
    let stale = run(
        &mut s,
        stanza(&format!(
            "<message xmlns='jabber:client' type='error' id='{id}' from='bob@localhost/b' to='{SVC}'/>"
        )),
    );
    assert!(stale.events.is_empty(), "{:?}", stale.events);
    assert_eq!(publish(&mut s).messages.len(), 2);

    // A probe answered by the server with service-unavailable pauses; one answered resumes.
    let mut later = now();
    later.mono += Duration::from_secs(3600);
    let probes = s.handle(Input::Tick, later);
    let probe_ids: Vec<(String, String)> = probes
        .into_iter()
        .filter_map(|o| match o {
            Output::Send(st) => match *st {
                Stanza::Iq(Iq::Get { id, to, .. }) => {
                    Some((id, to.map(|t| t.to_string()).unwrap_or_default()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(probe_ids.len(), 2, "one ping per full-JID subscriber");
    let (bob_probe, _) = probe_ids
        .iter()
        .find(|(_, to)| to == "bob@localhost/b")
        .expect("bob probed");
    let gone = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='error' id='{bob_probe}' from='bob@localhost/b' to='{SVC}'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        )),
    );
    assert!(matches!(
        gone.events.as_slice(),
        [ServeEvent::Paused { .. }]
    ));
}

#[test]
fn everything_survives_reopening_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = online(Store::open_dir(dir.path()).expect("store"));
        subscribe(&mut s, "bob@localhost/b");
        for _ in 0..3 {
            iq(
                &mut s,
                "alice@localhost/a",
                "set",
                &format!("<pubsub xmlns='{PS}'><publish node='test'><item/></publish></pubsub>"),
            );
        }
    }
    let mut s = online(Store::open_dir(dir.path()).expect("store reopens"));
    assert_eq!(
        s.subscriptions(),
        [("test".into(), "bob@localhost/b".into(), false)]
    );
    let r = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='set' id='p' from='alice@localhost/a' to='{SVC}'>\
             <pubsub xmlns='{PS}'><publish node='test'><item/></publish></pubsub></iq>"
        )),
    );
    assert_eq!(
        r.messages[0]
            .get_child("seq", SEQ)
            .and_then(|s| s.attr("n")),
        Some("4"),
        "the numbering continues"
    );
    let all = iq(
        &mut s,
        "bob@localhost/b",
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='test'/></pubsub>"),
    );
    assert_eq!(items_of(&all).len(), 4);
}

const BOB: &str = "bob@localhost/b";

/// Our client session (bob) wired to the service with no network in between.
struct Wire {
    svc: Service,
    bob: Session,
    events: Vec<NetEvent>,
}

impl Wire {
    /// Handle bob's outputs: his stanzas go to the service, its answers back to him, until
    /// nothing is left to deliver.
    fn carry_from_bob(&mut self, outs: Vec<Output>) {
        let mut queue: VecDeque<Output> = outs.into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Event(e) => self.events.push(e),
                Output::Send(st) => {
                    let Stanza::Iq(mut iq) = *st else { continue };
                    set_from(&mut iq, BOB);
                    for answer in self
                        .svc
                        .handle(Input::Stanza(Box::new(Stanza::Iq(iq))), now())
                    {
                        if let Output::Send(back) = answer {
                            queue.extend(self.deliver_to_bob(*back));
                        }
                    }
                }
                Output::Stop => {}
            }
        }
    }

    /// Deliver a stanza from the service to bob, if it is addressed to him.
    fn deliver_to_bob(&mut self, st: Stanza) -> Vec<Output> {
        let st = with_from(st, SVC);
        if stanza_to(&st).as_deref() == Some(BOB) {
            self.bob.handle(Input::Stanza(Box::new(st)), now())
        } else {
            Vec::new()
        }
    }
}

/// Notifications lost on the way are reported as exactly the missing numbers, across
/// publishers, and one resync brings them back.
#[test]
fn client_gap_detection_is_exact_across_publishers() {
    let mut w = Wire {
        svc: online(Store::open_in_memory().expect("store")),
        bob: Session::new(SessionConfig {
            service: Jid::new(SVC).expect("jid"),
            nodes: vec!["test".into()],
            subscribe: true,
            auto_publish: false,
            interval: Duration::from_secs(5),
            iq_timeout: Duration::from_secs(30),
            resync_min_interval: Duration::from_secs(0),
            publisher_session: "b0b".into(),
            keep_unsent: false,
            retry: pubsub_tui::xmpp::session::RetryPolicy::DEFAULT,
        }),
        events: Vec::new(),
    };
    let outs = w.bob.handle(
        Input::Online {
            bound: Jid::new(BOB).expect("jid"),
            server: None,
        },
        now(),
    );
    w.carry_from_bob(outs);
    // Alice and carol publish 8 items between them; numbers 3, 6 and 7 never reach bob.
    for i in 1..=8 {
        let from = if i % 2 == 0 {
            "alice@localhost/a"
        } else {
            "carol@localhost/c"
        };
        let outs = w.svc.handle(
            stanza(&format!(
                "<iq xmlns='jabber:client' type='set' id='p{i}' from='{from}' to='{SVC}'>\
                 <pubsub xmlns='{PS}'><publish node='test'><item id='i{i}' sender='{from}' message='m{i}'/></publish></pubsub></iq>"
            )),
            now(),
        );
        for o in outs {
            if let Output::Send(st) = o
                && matches!(*st, Stanza::Message(_))
                && ![3, 6, 7].contains(&i)
            {
                let reply = w.deliver_to_bob(*st);
                w.carry_from_bob(reply);
            }
        }
    }
    let gaps: Vec<(u64, u64, String)> = w
        .events
        .iter()
        .filter_map(|e| match e {
            NetEvent::Gap {
                from, to, sender, ..
            } => Some((*from, *to, sender.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        gaps,
        [
            (3, 3, SERVICE_NUMBERING.to_owned()),
            (6, 7, SERVICE_NUMBERING.to_owned())
        ],
        "exactly the lost numbers, whoever published them"
    );
    let Some(NetEvent::Snapshot { items, lost, .. }) = w
        .events
        .iter()
        .rev()
        .find(|e| matches!(e, NetEvent::Snapshot { .. }))
    else {
        panic!("no resync after the gaps");
    };
    assert_eq!(items.len(), 8, "the resync brought everything back");
    assert!(lost.is_empty());
}

fn set_from(iq: &mut Iq, from: &str) {
    let jid = Some(Jid::new(from).expect("jid"));
    match iq {
        Iq::Get { from, .. }
        | Iq::Set { from, .. }
        | Iq::Result { from, .. }
        | Iq::Error { from, .. } => *from = jid,
    }
}

fn with_from(st: Stanza, from: &str) -> Stanza {
    let jid = Some(Jid::new(from).expect("jid"));
    match st {
        Stanza::Iq(mut iq) => {
            set_from(&mut iq, from);
            Stanza::Iq(iq)
        }
        Stanza::Message(mut m) => {
            m.from = jid;
            Stanza::Message(m)
        }
        Stanza::Presence(mut p) => {
            p.from = jid;
            Stanza::Presence(p)
        }
    }
}

fn stanza_to(st: &Stanza) -> Option<String> {
    let to = match st {
        Stanza::Iq(
            Iq::Get { to, .. } | Iq::Set { to, .. } | Iq::Result { to, .. } | Iq::Error { to, .. },
        ) => to.clone(),
        Stanza::Message(m) => m.to.clone(),
        Stanza::Presence(p) => p.to.clone(),
    };
    to.map(|t| t.to_string())
}

/// The service names the publisher on every item it forwards and stores, replacing whatever
/// the client wrote there: subscribers can check the item's own claim against it.
#[test]
fn items_carry_the_publisher_the_service_saw() {
    let mut s = online(Store::open_in_memory().expect("store"));
    let r = run(
        &mut s,
        stanza(&format!(
            "<iq xmlns='jabber:client' type='set' id='q' from='bob@localhost/b' to='{SVC}'><pubsub xmlns='{PS}'><publish node='test'><item id='x' publisher='alice@localhost'><post xmlns='urn:x-pubsub-tui:item:0' sender='alice@localhost/a' session='s' seq='1'>I am alice</post></item></publish></pubsub></iq>"
        )),
    );
    assert!(r.iq.is_some_and(|i| i.attr("type") == Some("result")));
    let sub = subscribe(&mut s, "carol@localhost/c");
    assert_eq!(sub.attr("type"), Some("result"));
    let stored = iq(
        &mut s,
        "carol@localhost/c",
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='test'/></pubsub>"),
    );
    let items = items_of(&stored);
    assert_eq!(items[0].attr("publisher"), Some("bob@localhost"));
    let item = pubsub_tui::xmpp::proto::parse_item("test", &items[0]);
    assert!(
        item.is_forged(),
        "the claim (alice) is not the publisher (bob)"
    );
    assert_eq!(
        item.shown_sender(),
        "bob@localhost (claims alice@localhost/a)"
    );
}
