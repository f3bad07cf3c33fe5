//! The session state machine, driven by inputs (real XML captured from Prosody, the Wokkel
//! relay's notification, hand-written ejabberd shapes) with no network and a fake clock.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use pubsub_tui::feed::ItemFormat;
use pubsub_tui::xmpp::error::RequestError;
use pubsub_tui::xmpp::proto::SubState;
use pubsub_tui::xmpp::session::{Input, Now, Output, RetryPolicy, Session, SessionConfig};
use pubsub_tui::xmpp::{Answer, Command, ConnState, NetEvent, NodeKey, RequestId, SnapshotReason};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza::Stanza;

/// The service of [`config`]'s sessions in these tests.
fn svc() -> Jid {
    Jid::new("pubsub.localhost").expect("jid")
}

/// A node at [`svc`].
fn key(node: &str) -> NodeKey {
    NodeKey::new(&svc(), node)
}

/// A request id (unique in this test binary).
fn req() -> RequestId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    RequestId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture exists")
}

fn stanza(xml: &str) -> Input {
    let el: Element = xml.trim().parse().expect("fixture parses as XML");
    Input::Stanza(Box::new(Stanza::try_from(el).expect("fixture is a stanza")))
}

struct Clock(Instant);

impl Clock {
    fn now(&self) -> Now {
        Now {
            mono: self.0,
            wall: Utc
                .with_ymd_and_hms(2026, 11, 24, 7, 56, 57)
                .single()
                .expect("valid"),
        }
    }
    fn advance(&mut self, d: Duration) {
        self.0 += d;
    }
}

fn config(service: &str, nodes: &[&str]) -> SessionConfig {
    SessionConfig {
        service: Jid::new(service).expect("jid"),
        nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        subscribe: true,
        auto_publish: true,
        interval: Duration::from_secs(5),
        iq_timeout: Duration::from_secs(30),
        resync_min_interval: Duration::from_secs(5),
        publisher_session: "cafe0001".into(),
        keep_unsent: false,
        retry: RetryPolicy {
            first: Duration::from_secs(2),
            max: Duration::from_secs(8),
            attempts: 3,
        },
    }
}

fn sends(out: &[Output]) -> Vec<&Stanza> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(s) => Some(s.as_ref()),
            _ => None,
        })
        .collect()
}

fn events(out: Vec<Output>) -> Vec<NetEvent> {
    out.into_iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn iq_ids(out: &[Output]) -> Vec<String> {
    sends(out)
        .into_iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Get { id, .. } | Iq::Set { id, .. }) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn online(s: &mut Session, clock: &Clock, jid: &str) -> Vec<Output> {
    s.handle(
        Input::Online {
            bound: Jid::new(jid).expect("jid"),
            server: None,
        },
        clock.now(),
    )
}

/// A result IQ for request `id` from `from`, with an optional payload.
fn result(from: &str, id: &str, payload: &str) -> Input {
    stanza(&format!(
        "<iq xmlns='jabber:client' type='result' from='{from}' to='bob@localhost/tui' id='{id}'>{payload}</iq>"
    ))
}

#[test]
fn fresh_session_sends_presence_subscribes_and_retrieves_every_node() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a", "b"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let sent = sends(&out);
    assert!(
        matches!(sent[0], Stanza::Presence(_)),
        "initial presence first"
    );
    assert_eq!(
        iq_ids(&out).len(),
        5,
        "subscribe + retrieve for each of 2 nodes, and the list of our subscriptions"
    );
    assert_eq!(retrieve_ids(&out).len(), 2);
    let subs: Vec<_> = sent
        .iter()
        .filter_map(|st| match st {
            Stanza::Iq(Iq::Set { payload, to, .. }) => {
                assert_eq!(
                    to.as_ref().map(ToString::to_string).as_deref(),
                    Some("pubsub.localhost")
                );
                payload
                    .get_child("subscribe", "http://jabber.org/protocol/pubsub")
                    .map(|c| {
                        (
                            c.attr("node").map(str::to_owned),
                            c.attr("jid").map(str::to_owned),
                        )
                    })
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        subs,
        [
            (Some("a".into()), Some("bob@localhost/tui".into())),
            (Some("b".into()), Some("bob@localhost/tui".into())),
        ],
        "subscribes with the full JID"
    );
}

#[test]
fn prosody_subscription_and_stored_items_become_state_and_snapshot() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["store"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let ids = iq_ids(&out);
    let sub =
        fixture("prosody_subscribe_result.xml").replace("id='pt1'", &format!("id='{}'", ids[0]));
    let ev = events(s.handle(stanza(&sub), clock.now()));
    assert_eq!(
        ev,
        [NetEvent::Subscription {
            node: "store".into(),
            state: SubState::Subscribed
        }]
    );
    let items =
        fixture("prosody_items_result.xml").replace("id='pt2'", &format!("id='{}'", ids[1]));
    let ev = events(s.handle(stanza(&items), clock.now()));
    let [
        NetEvent::Snapshot {
            node,
            items,
            reason: SnapshotReason::Initial,
            ..
        },
    ] = ev.as_slice()
    else {
        panic!("expected one initial snapshot, got {ev:?}");
    };
    assert_eq!(node, "store");
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].text(), "stored 1");
    assert_eq!(items[1].seq().map(|q| q.n), Some(2));
    assert_eq!(items[1].format, ItemFormat::Native);
    // Left: the list of our subscriptions (to clean up what earlier runs left behind).
    assert_eq!(s.pending_requests(), 1);
    let list = result(
        "pubsub.localhost",
        &ids[2],
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions/></pubsub>",
    );
    assert!(events(s.handle(list, clock.now())).is_empty());
    assert_eq!(s.pending_requests(), 0);
}

#[test]
fn live_events_only_from_the_service_and_for_our_nodes() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["store"]));
    let out = online(&mut s, &clock, "alice@localhost/tui");
    settle(&mut s, &clock, &out, &["store"]);
    let real = fixture("prosody_event.xml");
    let ev = events(s.handle(stanza(&real), clock.now()));
    let [NetEvent::Item(item)] = ev.as_slice() else {
        panic!("expected one item, got {ev:?}")
    };
    assert_eq!(item.sender(), Some("alice@localhost/tui"));
    assert_eq!(item.text(), "stored 0");

    let forged = real.replace("from='pubsub.localhost'", "from='mallory@evil.example/x'");
    let ev = events(s.handle(stanza(&forged), clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Dropped { total: 1, .. }]),
        "{ev:?}"
    );

    let other_node = real.replace("node='store'", "node='secret'");
    let ev = events(s.handle(stanza(&other_node), clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Dropped { total: 2, .. }]),
        "{ev:?}"
    );
}

#[test]
fn replies_are_accepted_only_from_where_the_request_went() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["store"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let id = iq_ids(&out)[0].clone();
    let forged = result("mallory@evil.example/x", &id, "");
    let ev = events(s.handle(forged, clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Dropped { .. }]),
        "{ev:?}"
    );
    assert_eq!(
        s.pending_requests(),
        3,
        "the forged reply did not consume the request"
    );
    let ev = events(s.handle(result("pubsub.localhost", &id, ""), clock.now()));
    assert_eq!(
        ev,
        [NetEvent::Subscription {
            node: "store".into(),
            state: SubState::Subscribed
        }]
    );
}

#[test]
fn answers_pings_and_refuses_unknown_requests() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let ping = stanza(
        "<iq xmlns='jabber:client' type='get' from='localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let out = s.handle(ping, clock.now());
    assert!(matches!(sends(&out).as_slice(), [Stanza::Iq(Iq::Result { id, .. })] if id == "p1"));
    let unknown = stanza(
        "<iq xmlns='jabber:client' type='get' from='x@y/z' id='q1'><query xmlns='jabber:iq:version'/></iq>",
    );
    let out = s.handle(unknown, clock.now());
    let [Stanza::Iq(Iq::Error { id, error, .. })] = sends(&out).as_slice() else {
        panic!("expected an error reply")
    };
    assert_eq!(id, "q1");
    assert_eq!(
        error.defined_condition,
        xmpp_parsers::stanza_error::DefinedCondition::ServiceUnavailable
    );
    // Results and errors are never answered (no loops).
    let out = s.handle(
        stanza("<iq xmlns='jabber:client' type='result' from='x@y/z' id='zz'/>"),
        clock.now(),
    );
    assert!(sends(&out).is_empty());
}

#[test]
fn typed_text_waits_offline_and_in_flight_publishes_are_resent_with_the_same_id() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let ev = events(
        s.handle(
            Command::Publish {
                req: req(),
                node: key("n"),
                text: "early".into(),
            }
            .into_input(),
            clock.now(),
        ),
    );
    assert!(
        matches!(ev.as_slice(), [NetEvent::PublishSent { id, queued: true, .. }] if id == "cafe0001-1")
    );
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let publish_ids: Vec<String> = sends(&out)
        .iter()
        .filter_map(|st| item_id_of_publish(st))
        .collect();
    assert_eq!(publish_ids, ["cafe0001-1"]);
    // The connection resets before the answer: the same item goes out again, same item id.
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let publish_ids: Vec<String> = sends(&out)
        .iter()
        .filter_map(|st| item_id_of_publish(st))
        .collect();
    assert_eq!(
        publish_ids,
        ["cafe0001-1"],
        "re-sent once, with the derived id"
    );
}

fn item_id_of_publish(st: &Stanza) -> Option<String> {
    let Stanza::Iq(Iq::Set { payload, .. }) = st else {
        return None;
    };
    let publish = payload.get_child("publish", "http://jabber.org/protocol/pubsub")?;
    let item = publish.get_child("item", "http://jabber.org/protocol/pubsub")?;
    item.attr("id").map(str::to_owned)
}

trait IntoInput {
    fn into_input(self) -> Input;
}

impl IntoInput for Command {
    fn into_input(self) -> Input {
        Input::Command(self)
    }
}

/// Online on node `n`, with one typed publish sent and not answered.
fn online_with_a_publish_in_flight(clock: &Clock) -> Session {
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    online(&mut s, clock, "bob@localhost/tui");
    s.handle(
        Command::Publish {
            req: req(),
            node: key("n"),
            text: "x".into(),
        }
        .into_input(),
        clock.now(),
    );
    s
}

#[test]
fn unanswered_requests_are_tried_again_then_fail_for_good() {
    let mut clock = Clock(Instant::now());
    let mut s = online_with_a_publish_in_flight(&clock);
    clock.advance(Duration::from_secs(29));
    assert!(events(s.handle(Input::Tick, clock.now())).is_empty());
    clock.advance(Duration::from_secs(2));
    let ev = events(s.handle(Input::Tick, clock.now()));
    assert!(
        ev.iter().any(|e| matches!(e,
            NetEvent::PublishRetrying { id, error: RequestError::Timeout(_), retry_in, .. }
                if id == "cafe0001-1" && *retry_in == Duration::from_secs(2))),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| matches!(
            e,
            NetEvent::Subscription {
                state: SubState::Retrying { attempt: 1, .. },
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(s.pending_requests(), 0);
    // Each try goes out again with the same item id, until the tries run out (3 here).
    let mut publish_ids = Vec::new();
    let mut failed = None;
    for _ in 0..6 {
        clock.advance(Duration::from_secs(31));
        let out = s.handle(Input::Tick, clock.now());
        publish_ids.extend(sends(&out).iter().filter_map(|st| item_id_of_publish(st)));
        for e in events(out) {
            if let NetEvent::Reply {
                result: Err(error), ..
            } = e
            {
                failed = Some(error);
            }
        }
    }
    assert_eq!(publish_ids, ["cafe0001-1", "cafe0001-1"], "two more tries");
    let error = failed.expect("failed for good");
    assert_eq!(error, RequestError::Timeout(Duration::from_secs(30)));
    assert!(
        matches!(
            s.node_states()[0].1,
            SubState::Failed(RequestError::Timeout(_))
        ),
        "{:?}",
        s.node_states()
    );
}

#[test]
fn requests_do_not_time_out_while_the_link_is_down_and_restart_their_time_on_resumption() {
    let mut clock = Clock(Instant::now());
    let mut s = online_with_a_publish_in_flight(&clock);
    clock.advance(Duration::from_secs(20));
    s.handle(Input::Suspended, clock.now());
    clock.advance(Duration::from_secs(60));
    let ev = events(s.handle(Input::Tick, clock.now()));
    assert!(
        !ev.iter().any(|e| matches!(e, NetEvent::Reply { .. })),
        "{ev:?}"
    );
    s.handle(Input::Resumed { server: None }, clock.now());
    clock.advance(Duration::from_secs(29));
    assert!(events(s.handle(Input::Tick, clock.now())).is_empty());
    clock.advance(Duration::from_secs(2));
    let ev = events(s.handle(Input::Tick, clock.now()));
    assert!(
        ev.iter()
            .any(|e| matches!(e, NetEvent::PublishRetrying { .. })),
        "{ev:?}"
    );
}

#[test]
fn resync_requests_coalesce_and_live_items_during_it_are_kept() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["store"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let retrieve_id = iq_ids(&out)[1].clone();
    let out = s.handle(
        Command::Resync {
            req: req(),
            node: key("store"),
        }
        .into_input(),
        clock.now(),
    );
    assert!(
        iq_ids(&out).is_empty(),
        "a retrieve is already in flight: no second one"
    );
    // A live item arrives before the answer, and the answer does not contain it.
    let live = fixture("prosody_event.xml")
        .replace("10435999-1", "10435999-9")
        .replace("seq='1'", "seq='9'")
        .replace("08:40:54.570Z", "08:40:59.000Z");
    s.handle(stanza(&live), clock.now());
    let items =
        fixture("prosody_items_result.xml").replace("id='pt2'", &format!("id='{retrieve_id}'"));
    let ev = events(s.handle(stanza(&items), clock.now()));
    let Some(NetEvent::Snapshot { items, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    let ids: Vec<_> = items.iter().filter_map(|i| i.id()).collect();
    assert_eq!(ids, ["10435999-1", "10435999-2", "10435999-9"]);
}

#[test]
fn a_relay_that_cannot_retrieve_says_so() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("test@localhost/server", &["test"]));
    let out = online(&mut s, &clock, "alice@localhost/client1");
    let retrieve_id = iq_ids(&out)[1].clone();
    let err = format!(
        "<iq xmlns='jabber:client' type='error' from='test@localhost/server' id='{retrieve_id}'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='retrieve-items'/></error></iq>"
    );
    let ev = events(s.handle(stanza(&err), clock.now()));
    let [NetEvent::ResyncFailed { error, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert!(error.is_unsupported());
    assert!(error.to_string().contains("retrieve-items"), "{error}");
    // The relay's attribute-only items still show.
    let ev = events(s.handle(stanza(&fixture("wokkel_event.xml")), clock.now()));
    let [NetEvent::Item(item)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (item.format, item.sender(), item.time(), item.text()),
        (
            ItemFormat::Wokkel,
            Some("bob@localhost/client2"),
            Some("07:56:57"),
            "Hello!"
        )
    );
    assert_eq!(item.id(), None);
}

#[test]
fn ejabberd_rsm_result_with_atom_and_native_items() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["feed"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let id = iq_ids(&out)[1].clone();
    // Page 1 of 3 (the service says it has 3): the session asks for the next page after the
    // last id it got.
    let xml = fixture("ejabberd_items_rsm.xml")
        .replace("id='pt9'", &format!("id='{id}'"))
        .replace("<count>1000</count>", "<count>3</count>");
    let out = s.handle(stanza(&xml), clock.now());
    let next = sends(&out)
        .into_iter()
        .find_map(|st| match st {
            Stanza::Iq(Iq::Get { id, payload, .. }) => {
                let set = payload.get_child("set", "http://jabber.org/protocol/rsm")?;
                let after = set.get_child("after", "http://jabber.org/protocol/rsm")?;
                Some((id.clone(), after.text()))
            }
            _ => None,
        })
        .expect("a request for the next page");
    assert_eq!(next.1, "7037B7237A0BB");
    let ev = events(out);
    assert!(
        matches!(
            ev.as_slice(),
            [NetEvent::ResyncProgress {
                received: 2,
                total: Some(3),
                ..
            }]
        ),
        "{ev:?}"
    );
    // The last page: one more item, and the snapshot holds all three in (time, seq) order.
    let last_page = format!(
        "<iq xmlns='jabber:client' type='result' from='pubsub.localhost' id='{}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='feed'><item id='7037B7237A0BC'><post xmlns='urn:x-pubsub-tui:item:0' sender='alice@localhost/tui' seq='5' session='abcd0123' time='2026-11-24T07:02:00Z'>third</post></item></items><set xmlns='http://jabber.org/protocol/rsm'><first index='2'>7037B7237A0BC</first><last>7037B7237A0BC</last><count>3</count></set></pubsub></iq>",
        next.0
    );
    let ev = events(s.handle(stanza(&last_page), clock.now()));
    let Some(NetEvent::Snapshot { items, lost, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        items.len(),
        3,
        "the RSM <set/> does not break parsing, and pages add up"
    );
    assert_eq!(items[0].format, ItemFormat::Atom);
    assert_eq!(items[0].text(), "Release 2.0 — Now with pubsub");
    assert_eq!(items[0].sender(), Some("Carol"));
    assert_eq!(items[1].format, ItemFormat::Native);
    assert_eq!(items[2].text(), "third");
    // alice's session abcd0123 has seq 4 and 5 on the service: 1–3 are gone.
    assert_eq!(lost.len(), 1);
    assert_eq!(
        lost[0].to_string(),
        "3 items from alice@localhost lost (seq 1–3)"
    );
}

#[test]
fn retract_purge_delete_events() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    online(&mut s, &clock, "bob@localhost/tui");
    let wrap = |inner: &str| {
        format!(
            "<message xmlns='jabber:client' from='pubsub.localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'>{inner}</event></message>"
        )
    };
    let ev = events(s.handle(
        stanza(&wrap("<items node='n'><retract id='x1'/></items>")),
        clock.now(),
    ));
    assert_eq!(
        ev,
        [NetEvent::Retracted {
            node: "n".into(),
            id: "x1".into()
        }]
    );
    let ev = events(s.handle(stanza(&wrap("<purge node='n'/>")), clock.now()));
    assert_eq!(ev, [NetEvent::Purged { node: "n".into() }]);
    let ev = events(s.handle(stanza(&wrap("<delete node='n'/>")), clock.now()));
    assert_eq!(
        ev,
        [NetEvent::Deleted {
            node: "n".into(),
            redirect: None
        }]
    );
}

#[test]
fn what_arrives_during_a_resync_comes_once_in_its_snapshot_or_as_it_was_if_it_fails() {
    let clock = Clock(Instant::now());
    let mut s = synced(&clock, 1);
    assert_eq!(
        item_ids_of(&mut s, &clock, live("n", "alice@localhost/a", "s1", 2)),
        ["s1-2"]
    );
    // Outside a resync the same again is delivered: a publisher may re-publish as it was.
    assert_eq!(
        item_ids_of(&mut s, &clock, live("n", "alice@localhost/a", "s1", 2)),
        ["s1-2"]
    );

    // A fresh session. While its resync is in flight, ejabberd re-sends the node's last item
    // (at presence and at subscribe), and a new item comes: all wait for the snapshot.
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let id = retrieve_ids(&out)[0].clone();
    for input in [
        live("n", "alice@localhost/a", "s1", 2),
        live("n", "alice@localhost/a", "s1", 2),
        live("n", "alice@localhost/a", "s1", 3),
    ] {
        assert_eq!(item_ids_of(&mut s, &clock, input), Vec::<String>::new());
    }
    let ev = events(s.handle(
        items_result(&id, "n", "alice@localhost/a", "s1", &[1, 2]),
        clock.now(),
    ));
    let ids = snapshot_ids(&ev);
    assert_eq!(ids, ["s1-1", "s1-2", "s1-3"], "each once, in the snapshot");
    assert!(!ev.iter().any(|e| matches!(e, NetEvent::Item(_))), "{ev:?}");

    // When the resync's retrieve fails, what waited for it is delivered as it came.
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let id = retrieve_ids(&out)[0].clone();
    assert_eq!(
        item_ids_of(&mut s, &clock, live("n", "alice@localhost/a", "s1", 4)),
        Vec::<String>::new()
    );
    let failed = item_ids_of(
        &mut s,
        &clock,
        error_reply("pubsub.localhost", &id, "item-not-found"),
    );
    assert_eq!(failed, ["s1-4"]);
}

/// The ids of the items of the snapshot `ev` starts with.
fn snapshot_ids(ev: &[NetEvent]) -> Vec<String> {
    let Some(NetEvent::Snapshot { items, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    items
        .iter()
        .filter_map(|i| i.id().map(str::to_owned))
        .collect()
}

#[test]
fn live_items_wait_for_a_slow_snapshot_only_so_long() {
    let mut clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let id = retrieve_ids(&out)[0].clone();
    let none = Vec::<String>::new();
    let item = |n| live("n", "alice@localhost/a", "s1", n);
    assert_eq!(item_ids_of(&mut s, &clock, item(3)), none);
    assert_eq!(item_ids_of(&mut s, &clock, item(3)), none);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        item_ids_of(&mut s, &clock, Input::Tick),
        none,
        "still waiting"
    );
    // The snapshot is slow: what waited goes out, once, and what comes now goes out at once;
    // an exact repeat of what went out does not.
    clock.advance(Duration::from_secs(3));
    assert_eq!(item_ids_of(&mut s, &clock, Input::Tick), ["s1-3"]);
    assert_eq!(item_ids_of(&mut s, &clock, item(3)), none);
    assert_eq!(item_ids_of(&mut s, &clock, item(4)), ["s1-4"]);
    // The snapshot, when it comes, has them all.
    let ev = events(s.handle(
        items_result(&id, "n", "alice@localhost/a", "s1", &[1, 2]),
        clock.now(),
    ));
    let ids = snapshot_ids(&ev);
    assert_eq!(ids, ["s1-1", "s1-2", "s1-3", "s1-4"]);
}

#[test]
fn only_a_subscribe_s_resync_holds_live_items_and_a_new_stream_lets_them_out() {
    let clock = Clock(Instant::now());
    let mut s = synced(&clock, 1);
    // The user's resync: live items come at once (no re-sends to fold in).
    s.handle(
        Command::Resync {
            req: req(),
            node: key("n"),
        }
        .into_input(),
        clock.now(),
    );
    assert_eq!(
        item_ids_of(&mut s, &clock, live("n", "alice@localhost/a", "s1", 2)),
        ["s1-2"]
    );
    // A new stream while items are held for a subscribe's snapshot: they come out, once.
    online(&mut s, &clock, "bob@localhost/tui");
    assert_eq!(
        item_ids_of(&mut s, &clock, live("n", "alice@localhost/a", "s1", 3)),
        Vec::<String>::new()
    );
    let out = online(&mut s, &clock, "bob@localhost/tui");
    assert_eq!(item_ids(out), ["s1-3"]);
    // A purge while items are held: they are gone with it.
    assert_eq!(
        item_ids_of(&mut s, &clock, live("n", "alice@localhost/a", "s1", 4)),
        Vec::<String>::new()
    );
    let purge = stanza(
        "<message xmlns='jabber:client' from='pubsub.localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='n'/></event></message>",
    );
    s.handle(purge, clock.now());
    let out = online(&mut s, &clock, "bob@localhost/tui");
    assert!(
        !events(out).iter().any(|e| matches!(e, NetEvent::Item(_))),
        "nothing held after the purge"
    );
}

#[test]
fn hostile_event_text_is_sanitised_and_odd_shapes_do_not_panic() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    settle(&mut s, &clock, &out, &["n"]);
    let wrap = |inner: &str| {
        format!(
            "<message xmlns='jabber:client' from='pubsub.localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'>{inner}</event></message>"
        )
    };
    let hostile = wrap(
        "<items node='n'><item id='a&#x9b;b' sender='x&#x202e;y' message='hi&#xd;&#x85;there'/></items>",
    );
    let ev = events(s.handle(stanza(&hostile), clock.now()));
    let [NetEvent::Item(item)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(item.id(), Some("ab"));
    assert_eq!(item.sender(), Some("xy"));
    assert_eq!(
        item.text(),
        "hi\nthere",
        "a CR is a line break; C1 controls go"
    );
    for odd in [
        "<items/>",
        "<items node='n'/>",
        "<items node='n'><item/><retract/></items>",
        "<items node='n'><item><post xmlns='urn:x-pubsub-tui:item:0' seq='99999999999999999999999' session=''/></item></items>",
        "<purge/>",
        "<unknown node='n'/>",
    ] {
        let _ = s.handle(stanza(&wrap(odd)), clock.now());
    }
    // As before the odd shapes (the retrieve was answered by `settle`).
    assert_eq!(s.pending_requests(), 2);
}

#[test]
fn a_final_connection_error_fails_what_is_waiting() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    s.handle(
        Command::Publish {
            req: req(),
            node: key("n"),
            text: "x".into(),
        }
        .into_input(),
        clock.now(),
    );
    let ev = events(s.handle(
        Input::Connection(ConnState::Failed {
            error: "bad password".into(),
        }),
        clock.now(),
    ));
    assert!(
        ev.iter()
            .any(|e| matches!(e, NetEvent::Reply { result: Err(error), .. }
            if error.to_string().contains("bad password"))),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, NetEvent::Connection(ConnState::Failed { .. })))
    );
}

#[test]
fn auto_publish_only_when_on_and_online() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n", "m"]));
    assert!(
        sends(&s.handle(Input::AutoPublishTick, clock.now())).is_empty(),
        "offline: nothing"
    );
    online(&mut s, &clock, "bob@localhost/tui");
    let out = s.handle(Input::AutoPublishTick, clock.now());
    let ids: Vec<String> = sends(&out)
        .iter()
        .filter_map(|st| item_id_of_publish(st))
        .collect();
    assert_eq!(ids, ["cafe0001-1"]);
    s.handle(
        Command::SetAutoPublish {
            enabled: false,
            node: None,
        }
        .into_input(),
        clock.now(),
    );
    assert!(sends(&s.handle(Input::AutoPublishTick, clock.now())).is_empty());
}

// ---- integrity: gaps and automatic resyncs ----

fn live(node: &str, sender: &str, session: &str, n: u64) -> Input {
    stanza(&format!(
        "<message xmlns='jabber:client' from='pubsub.localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{node}'><item id='{session}-{n}'><post xmlns='urn:x-pubsub-tui:item:0' sender='{sender}' seq='{n}' session='{session}' time='2026-11-24T07:00:{:02}Z'>m{n}</post></item></items></event></message>",
        n % 60
    ))
}

fn items_result(id: &str, node: &str, sender: &str, session: &str, ns: &[u64]) -> Input {
    let mut items = String::new();
    for n in ns {
        let _ = std::fmt::Write::write_fmt(
            &mut items,
            format_args!(
                "<item id='{session}-{n}'><post xmlns='urn:x-pubsub-tui:item:0' sender='{sender}' seq='{n}' session='{session}' time='2026-11-24T07:00:{:02}Z'>m{n}</post></item>",
                n % 60
            ),
        );
    }
    stanza(&format!(
        "<iq xmlns='jabber:client' type='result' from='pubsub.localhost' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{node}'>{items}</items></pubsub></iq>"
    ))
}

fn retrieve_ids(out: &[Output]) -> Vec<String> {
    sends(out)
        .into_iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Get { id, payload, .. })
                if payload
                    .get_child("items", "http://jabber.org/protocol/pubsub")
                    .is_some() =>
            {
                Some(id.clone())
            }
            _ => None,
        })
        .collect()
}

/// The ids of the live items delivered in `out`.
fn item_ids(out: Vec<Output>) -> Vec<String> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            NetEvent::Item(i) => Some(i.id().unwrap_or_default().to_owned()),
            _ => None,
        })
        .collect()
}

/// [`item_ids`] of what `input` makes the session do now.
fn item_ids_of(s: &mut Session, clock: &Clock, input: Input) -> Vec<String> {
    item_ids(s.handle(input, clock.now()))
}

/// Answer the initial retrieves in `out` (one per node of `nodes`, in order) with no items:
/// until then, live items wait for the snapshot.
fn settle(s: &mut Session, clock: &Clock, out: &[Output], nodes: &[&str]) {
    for (id, node) in retrieve_ids(out).iter().zip(nodes) {
        s.handle(
            items_result(id, node, "x@localhost/x", "s0", &[]),
            clock.now(),
        );
    }
}

/// Online with the initial snapshot answered (the node holds 1..=upto from alice).
fn synced(clock: &Clock, upto: u64) -> Session {
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, clock, "bob@localhost/tui");
    let id = retrieve_ids(&out)[0].clone();
    let ns: Vec<u64> = (1..=upto).collect();
    s.handle(
        items_result(&id, "n", "alice@localhost/a", "s1", &ns),
        clock.now(),
    );
    s
}

#[test]
fn a_gap_triggers_exactly_one_resync_and_more_gaps_meanwhile_do_not_pile_up() {
    let clock = Clock(Instant::now() + Duration::from_secs(100));
    let mut s = synced(&clock, 3);
    let out = s.handle(live("n", "alice@localhost/a", "s1", 4), clock.now());
    assert!(retrieve_ids(&out).is_empty(), "in order: no resync");
    let out = s.handle(live("n", "alice@localhost/a", "s1", 7), clock.now());
    // The initial retrieve was at the same instant: the rate limit defers this one.
    assert!(retrieve_ids(&out).is_empty());
    let ev = events(out);
    assert!(
        ev.iter()
            .any(|e| matches!(e, NetEvent::Gap { from: 5, to: 6, .. })),
        "{ev:?}"
    );
    let mut later = Clock(clock.0 + Duration::from_secs(6));
    let out = s.handle(Input::Tick, later.now());
    let ids = retrieve_ids(&out);
    assert_eq!(ids.len(), 1, "one resync once the rate limit allows");
    // More gaps while it is in flight: nothing more is sent.
    for n in [10, 20, 30] {
        let out = s.handle(live("n", "alice@localhost/a", "s1", n), later.now());
        assert!(retrieve_ids(&out).is_empty());
    }
    later.advance(Duration::from_secs(10));
    assert!(retrieve_ids(&s.handle(Input::Tick, later.now())).is_empty());
    // The answer: the service has everything but 5; one lost marker, and the tracker restarts.
    let ev = events(s.handle(
        items_result(
            &ids[0],
            "n",
            "alice@localhost/a",
            "s1",
            &[1, 2, 3, 4, 6, 7, 10, 20, 30],
        ),
        later.now(),
    ));
    let Some(NetEvent::Snapshot {
        reason: SnapshotReason::Gap,
        lost,
        items,
        ..
    }) = ev.first()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(items.len(), 9);
    let lost: Vec<String> = lost.iter().map(ToString::to_string).collect();
    assert_eq!(
        lost,
        [
            "1 item from alice@localhost lost (seq 5)",
            "2 items from alice@localhost lost (seq 8–9)",
            "9 items from alice@localhost lost (seq 11–19)",
            "9 items from alice@localhost lost (seq 21–29)",
        ]
    );
    // After the resync, the next item in order is no gap.
    let out = s.handle(live("n", "alice@localhost/a", "s1", 31), later.now());
    assert!(
        events(out)
            .iter()
            .all(|e| !matches!(e, NetEvent::Gap { .. }))
    );
}

#[test]
fn a_resumed_stream_does_not_resync_a_fresh_one_does() {
    let clock = Clock(Instant::now());
    let mut s = synced(&clock, 2);
    s.handle(Input::Suspended, clock.now());
    let out = s.handle(Input::Resumed { server: None }, clock.now());
    assert!(
        retrieve_ids(&out).is_empty(),
        "resumption: nothing was lost"
    );
    s.handle(Input::Suspended, clock.now());
    let out = online(&mut s, &clock, "bob@localhost/tui");
    assert_eq!(
        retrieve_ids(&out).len(),
        1,
        "fresh session: resync every node"
    );
}

#[test]
fn duplicates_out_of_order_and_restarts_are_not_gaps() {
    let clock = Clock(Instant::now());
    let mut s = synced(&clock, 2);
    let mut gaps = 0;
    for input in [
        live("n", "alice@localhost/a", "s1", 2), // duplicate
        live("n", "alice@localhost/a", "s2", 1), // restarted publisher
        live("n", "alice@localhost/a", "s2", 2),
        live("n", "carol@localhost/c", "s9", 40), // first sight of another publisher
    ] {
        gaps += events(s.handle(input, clock.now()))
            .iter()
            .filter(|e| matches!(e, NetEvent::Gap { .. }))
            .count();
    }
    assert_eq!(gaps, 0);
}

#[test]
fn ejabberds_last_item_at_login_is_neither_a_duplicate_nor_a_gap() {
    let clock = Clock(Instant::now());
    let mut s = synced(&clock, 3);
    // Reconnect; while the initial retrieve is in flight, the service re-sends its last item
    // (ejabberd's send_last_published_item) – and items 4 and 5 were published meanwhile.
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let id = retrieve_ids(&out)[0].clone();
    let ev = events(s.handle(live("n", "alice@localhost/a", "s1", 5), clock.now()));
    assert!(
        !ev.iter().any(|e| matches!(e, NetEvent::Gap { .. })),
        "{ev:?}"
    );
    let ev = events(s.handle(
        items_result(&id, "n", "alice@localhost/a", "s1", &[1, 2, 3, 4, 5]),
        clock.now(),
    ));
    let Some(NetEvent::Snapshot { items, lost, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    let ids: Vec<_> = items.iter().filter_map(|i| i.id()).collect();
    assert_eq!(ids, ["s1-1", "s1-2", "s1-3", "s1-4", "s1-5"], "once each");
    assert!(lost.is_empty());
}

#[test]
fn an_absurd_sequence_jump_is_one_gap_and_one_resync() {
    let clock = Clock(Instant::now());
    let mut s = synced(&clock, 1);
    let out = s.handle(
        live("n", "alice@localhost/a", "s1", 1_000_000_000_000),
        clock.now(),
    );
    let ev = events(out);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            NetEvent::Gap {
                from: 2,
                to: 999_999_999_999,
                ..
            }
        )),
        "{ev:?}"
    );
    // After the rate limit, exactly one retrieve; further jumps meanwhile add none.
    let later = Clock(clock.0 + Duration::from_secs(6));
    let out = s.handle(Input::Tick, later.now());
    assert_eq!(retrieve_ids(&out).len(), 1);
    let out = s.handle(live("n", "alice@localhost/a", "s1", u64::MAX), later.now());
    assert!(retrieve_ids(&out).is_empty(), "{out:?}");
    assert!(retrieve_ids(&s.handle(Input::Tick, later.now())).is_empty());
}

// ---- temporary failures, retries, and what a run leaves behind ----

/// An error reply to request `id` from `from` with the given condition.
fn error_reply(from: &str, id: &str, condition: &str) -> Input {
    stanza(&format!(
        "<iq xmlns='jabber:client' type='error' from='{from}' to='bob@localhost/tui' id='{id}'><error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ))
}

/// The ids of the subscribe requests in `out`.
fn subscribe_ids(out: &[Output]) -> Vec<String> {
    sends(out)
        .into_iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Set { id, payload, .. })
                if payload
                    .get_child("subscribe", "http://jabber.org/protocol/pubsub")
                    .is_some() =>
            {
                Some(id.clone())
            }
            _ => None,
        })
        .collect()
}

fn states(out: Vec<Output>) -> Vec<SubState> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            NetEvent::Subscription { state, .. } => Some(state),
            _ => None,
        })
        .collect()
}

#[test]
fn a_relay_that_is_not_online_yet_is_subscribed_again_with_backoff() {
    const RELAY: &str = "relay@localhost/server";
    let mut clock = Clock(Instant::now());
    let mut s = Session::new(config(RELAY, &["test"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let (sub, get) = (
        subscribe_ids(&out)[0].clone(),
        retrieve_ids(&out)[0].clone(),
    );
    // The server answers for the relay's full JID: not there (yet).
    let st = states(s.handle(error_reply(RELAY, &sub, "service-unavailable"), clock.now()));
    assert!(
        matches!(st.as_slice(), [SubState::Retrying { attempt: 1, retry_in, .. }] if *retry_in == Duration::from_secs(2)),
        "{st:?}"
    );
    // The retrieve fails the same way: one try, one count.
    let st = states(s.handle(error_reply(RELAY, &get, "service-unavailable"), clock.now()));
    assert!(st.is_empty(), "{st:?}");
    clock.advance(Duration::from_secs(1));
    assert!(
        subscribe_ids(&s.handle(Input::Tick, clock.now())).is_empty(),
        "not yet"
    );
    clock.advance(Duration::from_secs(1));
    let out = s.handle(Input::Tick, clock.now());
    let (sub, get) = (
        subscribe_ids(&out)[0].clone(),
        retrieve_ids(&out)[0].clone(),
    );
    // The relay is back.
    let st = states(s.handle(result(RELAY, &sub, ""), clock.now()));
    assert_eq!(st, [SubState::Subscribed]);
    let ev = events(s.handle(
        result(
            RELAY,
            &get,
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='test'/></pubsub>",
        ),
        clock.now(),
    ));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Snapshot { .. }]),
        "{ev:?}"
    );
    // Control: a permanent refusal is not retried.
    let mut s = Session::new(config(RELAY, &["gone"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let sub = subscribe_ids(&out)[0].clone();
    let st = states(s.handle(error_reply(RELAY, &sub, "item-not-found"), clock.now()));
    assert!(matches!(st.as_slice(), [SubState::Failed(_)]), "{st:?}");
    clock.advance(Duration::from_secs(60));
    assert!(subscribe_ids(&s.handle(Input::Tick, clock.now())).is_empty());
}

#[test]
fn items_arriving_show_a_failed_node_is_live_and_r_subscribes_again() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let (sub, get) = (
        subscribe_ids(&out)[0].clone(),
        retrieve_ids(&out)[0].clone(),
    );
    s.handle(
        error_reply("pubsub.localhost", &sub, "forbidden"),
        clock.now(),
    );
    s.handle(
        error_reply("pubsub.localhost", &get, "forbidden"),
        clock.now(),
    );
    assert!(matches!(s.node_states()[0].1, SubState::Failed(_)));
    // `r` on a failed node subscribes again (and retrieves).
    let out = s.handle(
        Command::Resync {
            req: req(),
            node: key("n"),
        }
        .into_input(),
        clock.now(),
    );
    assert_eq!(subscribe_ids(&out).len(), 1, "subscribed again");
    assert_eq!(retrieve_ids(&out).len(), 1);
    let sub = subscribe_ids(&out)[0].clone();
    s.handle(
        error_reply("pubsub.localhost", &sub, "forbidden"),
        clock.now(),
    );
    // An item arrives after all: the node is live, and its items are fetched.
    let out = s.handle(live("n", "alice@localhost/a", "s1", 1), clock.now());
    let ev = events(out);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            NetEvent::Subscription {
                state: SubState::Subscribed,
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(s.node_states()[0].1, SubState::Subscribed);
}

#[test]
fn a_refused_publish_is_declared_never_published_by_the_next_item() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    online(&mut s, &clock, "bob@localhost/tui");
    let publish = |s: &mut Session, text: &str| {
        let r = req();
        let out = s.handle(
            Command::Publish {
                req: r,
                node: key("n"),
                text: text.into(),
            }
            .into_input(),
            clock.now(),
        );
        sends(&out)
            .into_iter()
            .find_map(|st| match st {
                Stanza::Iq(Iq::Set { id, payload, .. }) => Some((id.clone(), payload.clone(), r)),
                _ => None,
            })
            .expect("a publish")
    };
    let (id1, _, req1) = publish(&mut s, "one");
    let ev = events(s.handle(
        error_reply("pubsub.localhost", &id1, "forbidden"),
        clock.now(),
    ));
    assert!(
        ev.iter()
            .any(|e| matches!(e, NetEvent::Reply { req, result: Err(_) } if *req == req1)),
        "{ev:?}"
    );
    let (_, payload, _) = publish(&mut s, "two");
    let post = payload
        .get_child("publish", "http://jabber.org/protocol/pubsub")
        .and_then(|p| p.get_child("item", "http://jabber.org/protocol/pubsub"))
        .and_then(|i| i.get_child("post", "urn:x-pubsub-tui:item:0"))
        .expect("our payload");
    assert_eq!(post.attr("seq"), Some("2"));
    assert_eq!(post.attr("void"), Some("1"), "number 1 was never published");
    // Control: a first item carries no such list.
    let mut fresh = Session::new(config("pubsub.localhost", &["n"]));
    online(&mut fresh, &clock, "bob@localhost/tui");
    let (_, payload, _) = publish(&mut fresh, "first");
    assert!(!to_string(&payload).contains("void="));
}

fn to_string(e: &Element) -> String {
    let mut buf = Vec::new();
    e.write_to(&mut buf).expect("writes");
    String::from_utf8(buf).expect("utf8")
}

#[test]
fn auto_publish_counts_its_own_items_and_follows_the_chosen_node() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n", "m"]));
    online(&mut s, &clock, "bob@localhost/tui");
    let auto_text = |out: &[Output]| -> Vec<(String, String)> {
        sends(out)
            .into_iter()
            .filter_map(|st| match st {
                Stanza::Iq(Iq::Set { payload, .. }) => {
                    let p = payload.get_child("publish", "http://jabber.org/protocol/pubsub")?;
                    let item = p.get_child("item", "http://jabber.org/protocol/pubsub")?;
                    Some((p.attr("node")?.to_owned(), item.attr("message")?.to_owned()))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        auto_text(&s.handle(Input::AutoPublishTick, clock.now())),
        [("n".to_owned(), "auto-publish #1".to_owned())]
    );
    // A publish by hand in between does not move the auto-publish count.
    s.handle(
        Command::Publish {
            req: req(),
            node: key("n"),
            text: "by hand".into(),
        }
        .into_input(),
        clock.now(),
    );
    s.handle(
        Command::SetAutoPublish {
            enabled: true,
            node: Some("m".into()),
        }
        .into_input(),
        clock.now(),
    );
    assert_eq!(
        auto_text(&s.handle(Input::AutoPublishTick, clock.now())),
        [("m".to_owned(), "auto-publish #2".to_owned())]
    );
}

#[test]
fn shutdown_unsubscribes_then_stops() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let sub = subscribe_ids(&out)[0].clone();
    s.handle(result("pubsub.localhost", &sub, ""), clock.now());
    let out = s.handle(Input::Command(Command::Shutdown), clock.now());
    assert!(
        !out.iter().any(|o| matches!(o, Output::Stop)),
        "waits for the answer"
    );
    let unsub: Vec<(String, Option<String>)> = sends(&out)
        .into_iter()
        .filter_map(|st| match st {
            Stanza::Iq(Iq::Set { id, payload, .. }) => {
                let u = payload.get_child("unsubscribe", "http://jabber.org/protocol/pubsub")?;
                Some((id.clone(), u.attr("jid").map(str::to_owned)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(unsub.len(), 1);
    assert_eq!(unsub[0].1.as_deref(), Some("bob@localhost/tui"));
    let out = s.handle(result("pubsub.localhost", &unsub[0].0, ""), clock.now());
    assert!(out.iter().any(|o| matches!(o, Output::Stop)));
    // Offline there is nothing to unsubscribe: it stops at once.
    let mut offline = Session::new(config("pubsub.localhost", &["n"]));
    let out = offline.handle(Input::Command(Command::Shutdown), clock.now());
    assert!(out.iter().any(|o| matches!(o, Output::Stop)));
    // A service that never answers: it stops after the wait anyway.
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let sub = subscribe_ids(&out)[0].clone();
    s.handle(result("pubsub.localhost", &sub, ""), clock.now());
    s.handle(Input::Command(Command::Shutdown), clock.now());
    let later = Clock(clock.0 + Duration::from_secs(3));
    let out = s.handle(Input::Tick, later.now());
    assert!(out.iter().any(|o| matches!(o, Output::Stop)));
}

#[test]
fn subscriptions_left_behind_by_earlier_runs_are_removed_and_others_left_alone() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/pubsub-tui-aaaa");
    let list_id = sends(&out)
        .into_iter()
        .find_map(|st| match st {
            Stanza::Iq(Iq::Get { id, payload, .. })
                if payload
                    .get_child("subscriptions", "http://jabber.org/protocol/pubsub")
                    .is_some() =>
            {
                Some(id.clone())
            }
            _ => None,
        })
        .expect("the list of our subscriptions is asked for");
    let list = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions>\
        <subscription node='n' jid='bob@localhost/pubsub-tui-aaaa' subscription='subscribed'/>\
        <subscription node='old' jid='bob@localhost/pubsub-tui-aaaa' subscription='subscribed'/>\
        <subscription node='n' jid='bob@localhost/pubsub-tui-dead' subscription='subscribed' subid='x1'/>\
        <subscription node='n' jid='bob@localhost/pubsub-tui-live' subscription='subscribed'/>\
        <subscription node='n' jid='bob@localhost/phone' subscription='subscribed'/>\
        <subscription node='n' jid='carol@localhost/pubsub-tui-zz' subscription='subscribed'/>\
        </subscriptions></pubsub>";
    let out = s.handle(
        stanza(&format!(
            "<iq xmlns='jabber:client' type='result' from='pubsub.localhost' id='{list_id}'>{list}</iq>"
        )),
        clock.now(),
    );
    let mut unsubscribed = Vec::new();
    let mut pinged = Vec::new();
    for st in sends(&out) {
        match st {
            Stanza::Iq(Iq::Set { payload, .. }) => {
                let u = payload
                    .get_child("unsubscribe", "http://jabber.org/protocol/pubsub")
                    .expect("only unsubscribes");
                unsubscribed.push(format!(
                    "{} {}",
                    u.attr("node").unwrap_or(""),
                    u.attr("jid").unwrap_or("")
                ));
            }
            Stanza::Iq(Iq::Get {
                id, to, payload, ..
            }) => {
                assert!(payload.is("ping", "urn:xmpp:ping"));
                pinged.push((
                    id.clone(),
                    to.as_ref().map(ToString::to_string).unwrap_or_default(),
                ));
            }
            other => panic!("{other:?}"),
        }
    }
    // This run's own JID, for a node it no longer follows; not phone's, not carol's.
    assert_eq!(unsubscribed, ["old bob@localhost/pubsub-tui-aaaa"]);
    let targets: Vec<&str> = pinged.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        targets,
        [
            "bob@localhost/pubsub-tui-dead",
            "bob@localhost/pubsub-tui-live"
        ]
    );
    // The server answers for the gone resource; the live one answers itself.
    let out = s.handle(
        error_reply(
            "bob@localhost/pubsub-tui-dead",
            &pinged[0].0,
            "service-unavailable",
        ),
        clock.now(),
    );
    let removed: Vec<String> = sends(&out)
        .into_iter()
        .filter_map(|st| match st {
            Stanza::Iq(Iq::Set { payload, .. }) => {
                let u = payload.get_child("unsubscribe", "http://jabber.org/protocol/pubsub")?;
                Some(format!(
                    "{} {} {}",
                    u.attr("node")?,
                    u.attr("jid")?,
                    u.attr("subid")?
                ))
            }
            _ => None,
        })
        .collect();
    assert_eq!(removed, ["n bob@localhost/pubsub-tui-dead x1"]);
    let out = s.handle(
        result("bob@localhost/pubsub-tui-live", &pinged[1].0, ""),
        clock.now(),
    );
    assert!(
        sends(&out).is_empty(),
        "a resource that answers keeps its subscriptions"
    );
}

#[test]
fn items_this_run_received_are_not_lost_when_the_service_evicts_them() {
    let clock = Clock(Instant::now() + Duration::from_secs(100));
    let mut s = synced(&clock, 0);
    for n in 1..=5 {
        s.handle(live("n", "alice@localhost/a", "s1", n), clock.now());
    }
    let later = Clock(clock.0 + Duration::from_secs(10));
    let out = s.handle(
        Command::Resync {
            req: req(),
            node: key("n"),
        }
        .into_input(),
        later.now(),
    );
    let id = retrieve_ids(&out)[0].clone();
    // The service keeps only 4 and 5 now.
    let ev = events(s.handle(
        items_result(&id, "n", "alice@localhost/a", "s1", &[4, 5]),
        later.now(),
    ));
    let Some(NetEvent::Snapshot { lost, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert!(
        lost.is_empty(),
        "1-3 were received: evicted, not lost ({lost:?})"
    );
    // Control: a new run that never saw them reports them lost.
    let mut fresh = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut fresh, &later, "bob@localhost/tui");
    let id = retrieve_ids(&out)[0].clone();
    let ev = events(fresh.handle(
        items_result(&id, "n", "alice@localhost/a", "s1", &[4, 5]),
        later.now(),
    ));
    let Some(NetEvent::Snapshot { lost, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        lost.iter().map(|l| (l.from, l.to)).collect::<Vec<_>>(),
        [(1, 3)]
    );
}

#[test]
fn forged_items_and_our_own_session_do_not_make_gaps() {
    let clock = Clock(Instant::now() + Duration::from_secs(100));
    let mut s = synced(&clock, 0);
    let gaps = |out: Vec<Output>| {
        events(out)
            .into_iter()
            .filter(|e| matches!(e, NetEvent::Gap { .. }))
            .count()
    };
    // Someone publishes items claiming our own publisher session, far ahead: ignored.
    assert_eq!(
        gaps(s.handle(live("n", "bob@localhost/tui", "cafe0001", 1), clock.now())),
        0
    );
    assert_eq!(
        gaps(s.handle(
            live("n", "bob@localhost/tui", "cafe0001", 5000),
            clock.now()
        )),
        0
    );
    // An item whose claimed sender the service contradicts (publisher attribute): ignored.
    let forged = stanza(
        "<message xmlns='jabber:client' from='pubsub.localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><item id='f' publisher='mallory@localhost'><post xmlns='urn:x-pubsub-tui:item:0' sender='alice@localhost/a' seq='900' session='s1' time='2026-11-24T07:00:00Z'>x</post></item></items></event></message>",
    );
    assert_eq!(
        gaps(s.handle(live("n", "alice@localhost/a", "s1", 1), clock.now())),
        0
    );
    assert_eq!(gaps(s.handle(forged, clock.now())), 0);
    // Control: the same jump from another session, unforged, is a gap.
    assert_eq!(
        gaps(s.handle(live("n", "alice@localhost/a", "s1", 900), clock.now())),
        1
    );
}

// ---- Requests from the front end: each answered exactly once ----

/// The replies among events, as (request, result).
fn replies(ev: &[NetEvent]) -> Vec<(RequestId, Result<Answer, RequestError>)> {
    ev.iter()
        .filter_map(|e| match e {
            NetEvent::Reply { req, result } => Some((*req, result.clone())),
            _ => None,
        })
        .collect()
}

/// The one reply among events.
fn one_reply(ev: &[NetEvent]) -> (RequestId, Result<Answer, RequestError>) {
    let mut r = replies(ev);
    assert_eq!(r.len(), 1, "one reply in {ev:?}");
    r.remove(0)
}

/// The one IQ in `out` whose payload has a child named `name`: (id, payload).
fn iq_with(out: &[Output], name: &str) -> (String, Element) {
    let found: Vec<_> = sends(out)
        .into_iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Get { id, payload, .. } | Iq::Set { id, payload, .. })
                if payload.children().any(|c| c.name() == name) || payload.name() == name =>
            {
                Some((id.clone(), payload.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one {name} request in {out:?}");
    found.into_iter().next().expect("one")
}

const SUBSCRIBED_B: &str = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='b' jid='bob@localhost/tui' subscription='subscribed'/></pubsub>";

fn item_event(node: &str, id: &str) -> Input {
    stanza(&format!(
        "<message xmlns='jabber:client' from='pubsub.localhost' to='bob@localhost/tui'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{node}'><item id='{id}'><entry xmlns='http://www.w3.org/2005/Atom'><title>hi</title></entry></item></items></event></message>"
    ))
}

#[test]
fn a_node_followed_at_run_time_is_subscribed_retrieved_and_answered_once() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a"]));
    online(&mut s, &clock, "bob@localhost/tui");
    // Control: before it is followed, an event for b is dropped.
    let ev = events(s.handle(item_event("b", "early"), clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Dropped { .. }]),
        "{ev:?}"
    );

    let r = req();
    let out = s.handle(
        Command::Follow {
            req: r,
            node: key("b"),
        }
        .into_input(),
        clock.now(),
    );
    let (sub_id, sub) = iq_with(&out, "subscribe");
    assert_eq!(
        sub.get_child("subscribe", "http://jabber.org/protocol/pubsub")
            .and_then(|c| c.attr("node")),
        Some("b")
    );
    let (items_id, _) = iq_with(&out, "items");
    let ev = events(out);
    assert!(
        ev.contains(&NetEvent::Subscription {
            node: "b".into(),
            state: SubState::Subscribing
        }),
        "shown at once: {ev:?}"
    );
    assert!(replies(&ev).is_empty(), "not answered before the service");
    assert_eq!(
        s.node_states()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"],
        "one list of followed nodes"
    );

    let ev = events(s.handle(
        result("pubsub.localhost", &sub_id, SUBSCRIBED_B),
        clock.now(),
    ));
    assert_eq!(
        replies(&ev),
        [(
            r,
            Ok(Answer::Followed {
                node: "b".into(),
                state: SubState::Subscribed
            })
        )]
    );
    let ev = events(s.handle(
        result(
            "pubsub.localhost",
            &items_id,
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='b'><item id='old'><entry xmlns='http://www.w3.org/2005/Atom'><title>stored</title></entry></item></items></pubsub>",
        ),
        clock.now(),
    ));
    assert!(
        ev.iter().any(
            |e| matches!(e, NetEvent::Snapshot { node, items, reason: SnapshotReason::Initial, .. }
            if node == "b" && items.len() == 1)
        ),
        "{ev:?}"
    );
    assert!(replies(&ev).is_empty(), "answered once only");
    // Now its events are accepted.
    let ev = events(s.handle(item_event("b", "live"), clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Item(i)] if i.id() == Some("live")),
        "{ev:?}"
    );
}

#[test]
fn an_unfollowed_node_is_unsubscribed_and_its_events_are_dropped() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a", "b"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    settle(&mut s, &clock, &out, &["a", "b"]);
    let sub_b = subscribe_ids(&out)[1].clone();
    s.handle(
        result("pubsub.localhost", &sub_b, SUBSCRIBED_B),
        clock.now(),
    );
    // Control: b's events are taken while it is followed.
    let ev = events(s.handle(item_event("b", "one"), clock.now()));
    assert!(matches!(ev.as_slice(), [NetEvent::Item(_)]), "{ev:?}");

    let r = req();
    let out = s.handle(
        Command::Unfollow {
            req: r,
            node: key("b"),
        }
        .into_input(),
        clock.now(),
    );
    let (unsub_id, unsub) = iq_with(&out, "unsubscribe");
    let u = unsub
        .get_child("unsubscribe", "http://jabber.org/protocol/pubsub")
        .expect("unsubscribe");
    assert_eq!(
        (u.attr("node"), u.attr("jid")),
        (Some("b"), Some("bob@localhost/tui"))
    );
    assert_eq!(
        s.node_states()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "gone from the followed set at once"
    );
    let ev = events(s.handle(item_event("b", "two"), clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Dropped { .. }]),
        "{ev:?}"
    );
    let ev = events(s.handle(result("pubsub.localhost", &unsub_id, ""), clock.now()));
    assert_eq!(
        replies(&ev),
        [(
            r,
            Ok(Answer::Unfollowed {
                node: "b".into(),
                account: false
            })
        )]
    );
    // Unfollowing what is not followed says so.
    let r2 = req();
    let ev = events(
        s.handle(
            Command::Unfollow {
                req: r2,
                node: key("b"),
            }
            .into_input(),
            clock.now(),
        ),
    );
    assert!(
        matches!(replies(&ev).as_slice(), [(id, Err(RequestError::Invalid(why)))] if *id == r2 && why.contains("not followed")),
        "{ev:?}"
    );
}

#[test]
fn each_request_is_answered_once_across_a_fresh_session() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a"]));
    online(&mut s, &clock, "bob@localhost/tui");
    let (list, follow) = (req(), req());
    let out = s.handle(
        Command::ListNodes {
            req: list,
            service: svc(),
            parent: None,
            after: None,
        }
        .into_input(),
        clock.now(),
    );
    let (list_iq, query) = iq_with(&out, "query");
    assert_eq!(query.ns(), "http://jabber.org/protocol/disco#items");
    s.handle(
        Command::Follow {
            req: follow,
            node: key("b"),
        }
        .into_input(),
        clock.now(),
    );
    // The link drops and a fresh session starts: the listing may never be answered, so it is
    // answered now with the reset; the follow is redone and waits for the new subscribe.
    s.handle(Input::Suspended, clock.now());
    let out = online(&mut s, &clock, "bob@localhost/tui");
    let sub_b = subscribe_ids(&out)[1].clone();
    let ev = events(out);
    let r = replies(&ev);
    assert_eq!(r.len(), 1, "{ev:?}");
    assert_eq!(r[0].0, list);
    assert!(matches!(&r[0].1, Err(RequestError::Connection(_))), "{r:?}");
    // The old answer arriving late is dropped, not a second reply.
    let ev = events(s.handle(
        result(
            "pubsub.localhost",
            &list_iq,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        ),
        clock.now(),
    ));
    assert!(replies(&ev).is_empty(), "{ev:?}");
    let ev = events(s.handle(
        result("pubsub.localhost", &sub_b, SUBSCRIBED_B),
        clock.now(),
    ));
    assert_eq!(
        replies(&ev),
        [(
            follow,
            Ok(Answer::Followed {
                node: "b".into(),
                state: SubState::Subscribed
            })
        )]
    );
}

#[test]
fn requests_that_need_the_link_are_refused_offline_and_a_shutdown_answers_the_rest() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a"]));
    let r = req();
    let ev = events(
        s.handle(
            Command::Subscriptions {
                req: r,
                service: svc(),
            }
            .into_input(),
            clock.now(),
        ),
    );
    assert_eq!(replies(&ev), [(r, Err(RequestError::Offline))]);
    online(&mut s, &clock, "bob@localhost/tui");
    let info = req();
    let out = s.handle(
        Command::Info {
            req: info,
            service: svc(),
            node: Some("a".into()),
        }
        .into_input(),
        clock.now(),
    );
    assert_eq!(iq_with(&out, "query").1.attr("node"), Some("a"));
    // Shutdown with the info unanswered: nothing subscribed yet, so it stops at once, and
    // the info request is answered first.
    let out = s.handle(Command::Shutdown.into_input(), clock.now());
    assert!(out.iter().any(|o| matches!(o, Output::Stop)));
    let r = replies(&events(out));
    assert!(
        matches!(r.as_slice(), [(id, Err(RequestError::Connection(_)))] if *id == info),
        "{r:?}"
    );
}

#[test]
fn node_names_with_control_characters_or_nothing_are_refused_before_sending() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a"]));
    online(&mut s, &clock, "bob@localhost/tui");
    for bad in ["", "  ", "a\u{7}b", "line\nbreak"] {
        let r = req();
        let out = s.handle(
            Command::Follow {
                req: r,
                node: key(bad),
            }
            .into_input(),
            clock.now(),
        );
        assert!(sends(&out).is_empty(), "nothing sent for {bad:?}");
        let ev = events(out);
        assert!(
            matches!(replies(&ev).as_slice(), [(id, Err(RequestError::Invalid(_)))] if *id == r),
            "{bad:?}: {ev:?}"
        );
    }
    // Control: a name with spaces inside is a name.
    let out = s.handle(
        Command::Follow {
            req: req(),
            node: key("with spaces"),
        }
        .into_input(),
        clock.now(),
    );
    assert_eq!(subscribe_ids(&out).len(), 1);
}

#[test]
fn listing_info_items_and_subscriptions_come_back_as_typed_answers() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a"]));
    online(&mut s, &clock, "bob@localhost/tui");
    let r = req();
    let out = s.handle(
        Command::ListNodes {
            req: r,
            service: svc(),
            parent: None,
            after: None,
        }
        .into_input(),
        clock.now(),
    );
    let (id, _) = iq_with(&out, "query");
    let ev = events(s.handle(
        result(
            "pubsub.localhost",
            &id,
            "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='pubsub.localhost' node='news' name='The news'/><item jid='pubsub.localhost' node='x'/></query>",
        ),
        clock.now(),
    ));
    let (got, Ok(Answer::Nodes(list))) = one_reply(&ev) else {
        panic!("{ev:?}")
    };
    assert_eq!(got, r);
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.items[0].name.as_deref(), Some("The news"));

    let r = req();
    let out = s.handle(
        Command::Subscriptions {
            req: r,
            service: svc(),
        }
        .into_input(),
        clock.now(),
    );
    let (id, _) = iq_with(&out, "subscriptions");
    let ev = events(s.handle(
        result(
            "pubsub.localhost",
            &id,
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions><subscription node='a' jid='bob@localhost' subscription='pending'/></subscriptions></pubsub>",
        ),
        clock.now(),
    ));
    let (_, Ok(Answer::Subscriptions(subs))) = one_reply(&ev) else {
        panic!("{ev:?}")
    };
    assert_eq!(subs[0].state, "pending");

    // An error comes back typed, with its condition.
    let r = req();
    let out = s.handle(
        Command::Items {
            req: r,
            node: key("nope"),
            max: Some(3),
        }
        .into_input(),
        clock.now(),
    );
    let (id, q) = iq_with(&out, "items");
    assert_eq!(
        q.get_child("items", "http://jabber.org/protocol/pubsub")
            .and_then(|i| i.attr("max_items")),
        Some("3")
    );
    let ev = events(s.handle(
        error_reply("pubsub.localhost", &id, "item-not-found"),
        clock.now(),
    ));
    let (_, Err(e)) = one_reply(&ev) else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.condition(),
        Some(pubsub_tui::xmpp::error::Condition::ItemNotFound)
    );
}

#[test]
fn subscription_events_change_the_state_of_our_own_subscription_only() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    let out = online(&mut s, &clock, "bob@localhost/tui");
    // Subscribed (the service's answer to the subscribe).
    let sub_id = iq_ids(&out).into_iter().next().expect("the subscribe");
    s.handle(
        result(
            "pubsub.localhost",
            &sub_id,
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscription node='n' jid='bob@localhost/tui' subscription='pending'/></pubsub>",
        ),
        clock.now(),
    );
    let wrap = |inner: &str| {
        stanza(&format!(
            "<message xmlns='jabber:client' from='pubsub.localhost' to='bob@localhost/tui'><event xmlns='http://jabber.org/protocol/pubsub#event'>{inner}</event></message>"
        ))
    };
    let state = |ev: Vec<NetEvent>| {
        ev.into_iter().find_map(|e| match e {
            NetEvent::Subscription { state, .. } => Some(state),
            _ => None,
        })
    };
    // Someone else's change: nothing (positive control below).
    let ev = events(s.handle(
        wrap("<subscription node='n' jid='carol@localhost' subscription='none'/>"),
        clock.now(),
    ));
    assert_eq!(state(ev), None);
    // Approved: live.
    let ev = events(s.handle(
        wrap("<subscription node='n' jid='bob@localhost/tui' subscription='subscribed'/>"),
        clock.now(),
    ));
    assert_eq!(state(ev), Some(SubState::Subscribed));
    // Removed by the owner: down, said why.
    let ev = events(s.handle(
        wrap("<subscription node='n' jid='bob@localhost/tui' subscription='none'/>"),
        clock.now(),
    ));
    match state(ev) {
        Some(SubState::Failed(e)) => assert!(e.to_string().contains("ended this subscription")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_connecting_report_that_comes_after_the_stream_is_up_is_stale() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["n"]));
    online(&mut s, &clock, "bob@localhost/tui");
    let late = events(s.handle(
        Input::Connection(ConnState::Connecting {
            attempt: 1,
            server: None,
        }),
        clock.now(),
    ));
    assert!(late.is_empty(), "{late:?}");
    assert!(s.is_online());
    // Positive control: after a loss, the connector's reports are news.
    s.handle(Input::Suspended, clock.now());
    let news = events(s.handle(
        Input::Connection(ConnState::Connecting {
            attempt: 2,
            server: None,
        }),
        clock.now(),
    ));
    assert_eq!(
        news,
        [NetEvent::Connection(ConnState::Connecting {
            attempt: 2,
            server: None
        })]
    );
}

#[test]
fn the_librarys_keepalive_answer_is_not_a_dropped_stanza() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(config("pubsub.localhost", &["a"]));
    online(&mut s, &clock, "bob@localhost/tui");
    // ejabberd answers tokio-xmpp's liveness probe (an iq to our own account).
    let probe = stanza(
        "<iq xmlns='jabber:client' from='bob@localhost' to='bob@localhost/tui' type='result' id='xmpp-rs-stanzastream-liveness-probe-7449707682441908682'/>",
    );
    let ev = events(s.handle(probe, clock.now()));
    assert!(ev.is_empty(), "{ev:?}");
    // Control: a reply to nothing we asked is counted.
    let stray = stanza(
        "<iq xmlns='jabber:client' from='bob@localhost' to='bob@localhost/tui' type='result' id='nothing-we-sent'/>",
    );
    let ev = events(s.handle(stray, clock.now()));
    assert!(
        matches!(ev.as_slice(), [NetEvent::Dropped { .. }]),
        "{ev:?}"
    );
}
