//! `serve`'s owner requests and its access control, on the state machine with an in-memory
//! store: configuration through a real form, delete with its notification, affiliations and
//! the owner's view of subscriptions, and an access matrix (every access model, publish model
//! and affiliation against every request) where each refused request is checked to have
//! changed nothing.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use pubsub_tui::serve::{ServeCommand, ServeConfig, ServeEvent, Service, Store};
use pubsub_tui::xmpp::session::{Input, Now, Output};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza::Stanza;

const SVC: &str = "relay@localhost/server";
const PS: &str = "http://jabber.org/protocol/pubsub";
const OWN: &str = "http://jabber.org/protocol/pubsub#owner";
const EV: &str = "http://jabber.org/protocol/pubsub#event";
const DATA: &str = "jabber:x:data";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// The node's owner (its creator) and the user whose rights are checked.
const OWNER: &str = "own@localhost/o";
const USER: &str = "u@localhost/r";

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: Utc::now(),
    }
}

fn service(store: Store) -> Service {
    let cfg = ServeConfig {
        max_items: 100,
        max_nodes: 50,
        admins: vec!["admin@localhost".into()],
        probe_interval: Duration::from_secs(3600),
        seed: 11,
    };
    let mut s = Service::new(cfg, store).expect("service");
    s.handle(
        Input::Online {
            bound: Jid::new(SVC).expect("jid"),
            server: None,
        },
        now(),
    );
    s
}

/// The answer to one IQ, and the notifications and events it caused.
struct Answer {
    iq: Element,
    messages: Vec<Element>,
    events: Vec<ServeEvent>,
}

impl Answer {
    fn ok(&self) -> bool {
        self.iq.attr("type") == Some("result")
    }

    /// The defined condition of an error answer.
    fn condition(&self) -> Option<String> {
        self.iq
            .get_child("error", "jabber:client")?
            .children()
            .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
            .map(|c| c.name().to_owned())
    }

    fn detail(&self) -> Option<String> {
        self.iq
            .get_child("error", "jabber:client")?
            .children()
            .find(|c| c.ns() == ERRORS)
            .map(|c| c.name().to_owned())
    }

    fn text(&self) -> String {
        self.iq
            .get_child("error", "jabber:client")
            .and_then(|e| e.get_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas"))
            .map(Element::text)
            .unwrap_or_default()
    }

    #[track_caller]
    fn expect_ok(self) -> Self {
        assert!(self.ok(), "expected a result: {:?}", String::from(&self.iq));
        self
    }
}

fn ask(s: &mut Service, from: &str, kind: &str, body: &str) -> Answer {
    let xml = format!(
        "<iq xmlns='jabber:client' type='{kind}' id='q' from='{from}' to='{SVC}'>{body}</iq>"
    );
    let el: Element = xml.parse().expect("test XML parses");
    let input = Input::<ServeCommand>::Stanza(Box::new(Stanza::try_from(el).expect("stanza")));
    let mut a = Answer {
        iq: Element::builder("none", "x").build(),
        messages: Vec::new(),
        events: Vec::new(),
    };
    for o in s.handle(input, now()) {
        match o {
            Output::Send(st) => match *st {
                Stanza::Iq(iq @ (Iq::Result { .. } | Iq::Error { .. })) => a.iq = iq.into(),
                Stanza::Message(m) => a.messages.push(m.into()),
                _ => {}
            },
            Output::Event(e) => a.events.push(e),
            Output::Stop => {}
        }
    }
    a
}

fn config_submit(node: &str, fields: &[(&str, &str)]) -> String {
    let mut x = format!(
        "<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PS}#node_config</value></field>"
    );
    for (var, v) in fields {
        let _ = write!(x, "<field var='{var}'><value>{v}</value></field>");
    }
    x.push_str("</x>");
    format!("<pubsub xmlns='{OWN}'><configure node='{node}'>{x}</configure></pubsub>")
}

fn create(s: &mut Service, from: &str, node: &str, config: &[(&str, &str)]) -> Answer {
    let mut body = format!("<pubsub xmlns='{PS}'><create node='{node}'/>");
    if !config.is_empty() {
        body.push_str("<configure>");
        body.push_str(
            config_submit(node, config)
                .split_once("<configure node='")
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(_, x)| x.trim_end_matches("</configure></pubsub>"))
                .expect("form"),
        );
        body.push_str("</configure>");
    }
    body.push_str("</pubsub>");
    ask(s, from, "set", &body)
}

fn publish(s: &mut Service, from: &str, node: &str, id: &str, text: &str) -> Answer {
    ask(
        s,
        from,
        "set",
        &format!(
            "<pubsub xmlns='{PS}'><publish node='{node}'><item id='{id}'><entry xmlns='urn:t'>{text}</entry></item></publish></pubsub>"
        ),
    )
}

fn retract(s: &mut Service, from: &str, node: &str, id: &str) -> Answer {
    ask(
        s,
        from,
        "set",
        &format!(
            "<pubsub xmlns='{PS}'><retract node='{node}' notify='true'><item id='{id}'/></retract></pubsub>"
        ),
    )
}

fn owner_req(s: &mut Service, from: &str, kind: &str, inner: &str) -> Answer {
    ask(
        s,
        from,
        kind,
        &format!("<pubsub xmlns='{OWN}'>{inner}</pubsub>"),
    )
}

fn set_affiliation(s: &mut Service, from: &str, node: &str, jid: &str, aff: &str) -> Answer {
    owner_req(
        s,
        from,
        "set",
        &format!(
            "<affiliations node='{node}'><affiliation jid='{jid}' affiliation='{aff}'/></affiliations>"
        ),
    )
}

/// The node's form fields (var -> first value), as its owner reads them.
fn config_of(s: &mut Service, node: &str) -> Vec<(String, String)> {
    let a = owner_req(s, OWNER, "get", &format!("<configure node='{node}'/>")).expect_ok();
    let x =
        a.iq.get_child("pubsub", OWN)
            .and_then(|p| p.get_child("configure", OWN))
            .and_then(|c| c.get_child("x", DATA))
            .expect("a form");
    x.children()
        .filter(|f| f.is("field", DATA))
        .map(|f| {
            (
                f.attr("var").unwrap_or_default().to_owned(),
                f.get_child("value", DATA)
                    .map(Element::text)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Everything a request could change: the items (id and content), the subscriptions, the
/// affiliations and the configuration, read with the owner's rights.
fn state(s: &mut Service, node: &str) -> String {
    let items = ask(
        s,
        OWNER,
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='{node}'/></pubsub>"),
    );
    let affs = owner_req(s, OWNER, "get", &format!("<affiliations node='{node}'/>"));
    let config = if items.ok() {
        format!("{:?}", config_of(s, node))
    } else {
        String::new()
    };
    format!(
        "items: {}\nsubs: {:?}\naffs: {}\nconfig: {config}",
        String::from(&items.iq),
        s.subscriptions(),
        String::from(&affs.iq)
    )
}

#[test]
fn the_two_step_erase_fails_at_step_two() {
    let mut s = service(Store::open_in_memory().expect("store"));
    create(&mut s, "alice@localhost/a", "notes", &[]).expect_ok();
    publish(&mut s, "alice@localhost/a", "notes", "a1", "alice's").expect_ok();
    let before = state_as(&mut s, "alice@localhost/a", "notes");
    let replace = publish(&mut s, "carol@localhost/c", "notes", "a1", "carol's");
    assert_eq!(
        replace.condition().as_deref(),
        Some("forbidden"),
        "{}",
        replace.text()
    );
    let erase = retract(&mut s, "carol@localhost/c", "notes", "a1");
    assert_eq!(erase.condition().as_deref(), Some("forbidden"));
    assert_eq!(
        state_as(&mut s, "alice@localhost/a", "notes"),
        before,
        "nothing changed"
    );
    // Positive controls: carol may publish her own item and retract it; alice may replace
    // hers.
    publish(&mut s, "carol@localhost/c", "notes", "c1", "carol's").expect_ok();
    retract(&mut s, "carol@localhost/c", "notes", "c1").expect_ok();
    publish(
        &mut s,
        "alice@localhost/other",
        "notes",
        "a1",
        "alice again",
    )
    .expect_ok();
}

fn state_as(s: &mut Service, from: &str, node: &str) -> String {
    let items = ask(
        s,
        from,
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='{node}'/></pubsub>"),
    );
    String::from(&items.iq)
}

#[test]
fn configuration_through_a_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = service(Store::open_dir(dir.path()).expect("store"));
    create(
        &mut s,
        OWNER,
        "n",
        &[("pubsub#title", "Readings"), ("pubsub#max_items", "10")],
    )
    .expect_ok();
    let config = config_of(&mut s, "n");
    let get = |c: &[(String, String)], var: &str| {
        c.iter().find(|(v, _)| v == var).map(|(_, x)| x.clone())
    };
    assert_eq!(get(&config, "pubsub#title").as_deref(), Some("Readings"));
    assert_eq!(get(&config, "pubsub#max_items").as_deref(), Some("10"));
    assert_eq!(get(&config, "pubsub#access_model").as_deref(), Some("open"));
    // The form says what each field is: labels, list options, booleans.
    let form = owner_req(&mut s, OWNER, "get", "<configure node='n'/>").expect_ok();
    let xml = String::from(&form.iq);
    assert!(
        xml.contains("type='list-single'") && xml.contains("<option>"),
        "{xml}"
    );
    assert!(
        xml.contains("type='boolean'") && xml.contains("label="),
        "{xml}"
    );

    for i in 0..8 {
        publish(&mut s, OWNER, "n", &format!("i{i}"), "x").expect_ok();
    }
    // A refused value: the XEP's condition, the field named, nothing changed.
    let before = state(&mut s, "n");
    let bad = owner_req(
        &mut s,
        OWNER,
        "set",
        &config_submit(
            "n",
            &[("pubsub#title", "New"), ("pubsub#max_items", "100000")],
        )
        .replace(&format!("<pubsub xmlns='{OWN}'>"), "")
        .replace("</pubsub>", ""),
    );
    assert_eq!(bad.condition().as_deref(), Some("not-acceptable"));
    assert_eq!(bad.text(), "max_items: out of bounds (1 to 100, or max)");
    assert_eq!(state(&mut s, "n"), before);
    for (var, v, why) in [
        (
            "pubsub#access_model",
            "authorize",
            "is not supported (open, whitelist)",
        ),
        ("pubsub#notify_retract", "maybe", "is not a boolean"),
        ("pubsub#max_items", "ten", "is not a number"),
        ("pubsub#colour", "red", "no such setting"),
    ] {
        let a = ask(&mut s, OWNER, "set", &config_submit("n", &[(var, v)]));
        assert_eq!(a.condition().as_deref(), Some("not-acceptable"), "{var}");
        assert!(a.text().contains(why), "{var}: {}", a.text());
    }
    assert_eq!(state(&mut s, "n"), before);

    // A lowered max_items trims at once; the title changes; a cancel changes nothing.
    ask(
        &mut s,
        OWNER,
        "set",
        &config_submit("n", &[("pubsub#title", "Fewer"), ("pubsub#max_items", "3")]),
    )
    .expect_ok();
    let ids = item_ids(&mut s, "n");
    assert_eq!(ids, ["i5", "i6", "i7"]);
    let cancelled = state(&mut s, "n");
    owner_req(
        &mut s,
        OWNER,
        "set",
        &format!("<configure node='n'><x xmlns='{DATA}' type='cancel'/></configure>"),
    )
    .expect_ok();
    assert_eq!(state(&mut s, "n"), cancelled);
    // Only owners; an admin is one.
    let a = owner_req(&mut s, USER, "get", "<configure node='n'/>");
    assert_eq!(a.condition().as_deref(), Some("forbidden"));
    assert_eq!(a.text(), "only the node's owners may configure it");
    owner_req(&mut s, "admin@localhost/x", "get", "<configure node='n'/>").expect_ok();

    // Settings persist.
    drop(s);
    let mut s = service(Store::open_dir(dir.path()).expect("reopens"));
    let config = config_of(&mut s, "n");
    assert_eq!(get(&config, "pubsub#title").as_deref(), Some("Fewer"));
    assert_eq!(get(&config, "pubsub#max_items").as_deref(), Some("3"));
    // The limit holds for new items.
    publish(&mut s, OWNER, "n", "i8", "x").expect_ok();
    assert_eq!(item_ids(&mut s, "n"), ["i6", "i7", "i8"]);
}

fn item_ids(s: &mut Service, node: &str) -> Vec<String> {
    let a = ask(
        s,
        OWNER,
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='{node}'/></pubsub>"),
    )
    .expect_ok();
    a.iq.get_child("pubsub", PS)
        .and_then(|p| p.get_child("items", PS))
        .map(|i| {
            i.children()
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn subscribe(s: &mut Service, jid: &str, node: &str) -> Answer {
    ask(
        s,
        jid,
        "set",
        &format!("<pubsub xmlns='{PS}'><subscribe node='{node}' jid='{jid}'/></pubsub>"),
    )
}

#[test]
fn notifications_follow_the_configuration() {
    let mut s = service(Store::open_in_memory().expect("store"));
    create(
        &mut s,
        OWNER,
        "n",
        &[
            ("pubsub#deliver_payloads", "0"),
            ("pubsub#notify_retract", "false"),
        ],
    )
    .expect_ok();
    subscribe(&mut s, "sub@localhost/s", "n").expect_ok();
    let p = publish(&mut s, OWNER, "n", "i1", "secret").expect_ok();
    let item = p.messages[0]
        .get_child("event", EV)
        .and_then(|e| e.get_child("items", EV))
        .and_then(|i| i.get_child("item", EV))
        .expect("an item notification");
    assert_eq!(item.attr("id"), Some("i1"));
    assert_eq!(item.children().count(), 0, "no payload");
    let r = retract(&mut s, OWNER, "n", "i1").expect_ok();
    assert!(r.messages.is_empty(), "notify_retract off");
    // Positive control: with notify_retract on, the retraction is told.
    ask(
        &mut s,
        OWNER,
        "set",
        &config_submit("n", &[("pubsub#notify_retract", "1")]),
    )
    .expect_ok();
    publish(&mut s, OWNER, "n", "i2", "x").expect_ok();
    assert_eq!(
        retract(&mut s, OWNER, "n", "i2").expect_ok().messages.len(),
        1
    );

    // Delete: subscribers are told, with the redirect; the node and its subscriptions go.
    let d = owner_req(
        &mut s,
        OWNER,
        "set",
        "<delete node='n'><redirect uri='xmpp:relay@localhost/server?;node=m'/></delete>",
    )
    .expect_ok();
    let deleted = d.messages[0]
        .get_child("event", EV)
        .and_then(|e| e.get_child("delete", EV))
        .expect("a delete event");
    assert_eq!(deleted.attr("node"), Some("n"));
    assert_eq!(
        deleted
            .get_child("redirect", EV)
            .and_then(|r| r.attr("uri")),
        Some("xmpp:relay@localhost/server?;node=m")
    );
    assert!(s.subscriptions().is_empty());
    assert!(
        d.events
            .iter()
            .any(|e| matches!(e, ServeEvent::Unsubscribed { .. }))
    );
    let gone = ask(
        &mut s,
        OWNER,
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='n'/></pubsub>"),
    );
    assert_eq!(gone.condition().as_deref(), Some("item-not-found"));
}

#[test]
fn instant_nodes_publish_options_and_own_affiliations() {
    let mut s = service(Store::open_in_memory().expect("store"));
    let a = ask(
        &mut s,
        OWNER,
        "set",
        &format!("<pubsub xmlns='{PS}'><create/></pubsub>"),
    )
    .expect_ok();
    let name =
        a.iq.get_child("pubsub", PS)
            .and_then(|p| p.get_child("create", PS))
            .and_then(|c| c.attr("node"))
            .expect("the service names an instant node")
            .to_owned();
    assert_eq!(config_of(&mut s, &name)[0].1, format!("{PS}#node_config"));
    // Publish-options: met, and not met (nothing stored then).
    let with = |opt: &str| {
        format!(
            "<pubsub xmlns='{PS}'><publish node='{name}'><item id='p1'><x xmlns='urn:t'/></item></publish><publish-options><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PS}#publish-options</value></field><field var='pubsub#access_model'><value>{opt}</value></field></x></publish-options></pubsub>"
        )
    };
    let unmet = ask(&mut s, OWNER, "set", &with("whitelist"));
    assert_eq!(unmet.condition().as_deref(), Some("conflict"));
    assert_eq!(unmet.detail().as_deref(), Some("precondition-not-met"));
    assert!(item_ids(&mut s, &name).is_empty());
    ask(&mut s, OWNER, "set", &with("open")).expect_ok();
    assert_eq!(item_ids(&mut s, &name), ["p1"]);
    // A node that does not exist is created with the publish-options as its configuration.
    let fresh = format!(
        "<pubsub xmlns='{PS}'><publish node='made'><item id='m1'><x xmlns='urn:t'/></item></publish><publish-options><x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PS}#publish-options</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>"
    );
    ask(&mut s, OWNER, "set", &fresh).expect_ok();
    let made = config_of(&mut s, "made");
    assert!(
        made.contains(&("pubsub#access_model".to_owned(), "whitelist".to_owned())),
        "{made:?}"
    );
    // A name that shows differently from what it is (a bidi override) is refused.
    let bidi = create(&mut s, OWNER, "rlo\u{202e}x", &[]);
    assert_eq!(bidi.condition().as_deref(), Some("not-acceptable"));
    // The requester's own affiliations.
    let mine = ask(
        &mut s,
        OWNER,
        "get",
        &format!("<pubsub xmlns='{PS}'><affiliations/></pubsub>"),
    )
    .expect_ok();
    let xml = String::from(&mine.iq);
    assert!(
        xml.contains(&format!("node='{name}'")) && xml.contains("affiliation='owner'"),
        "{xml}"
    );
}

#[test]
fn affiliations_and_owner_subscriptions() {
    let mut s = service(Store::open_in_memory().expect("store"));
    create(&mut s, OWNER, "n", &[]).expect_ok();
    subscribe(&mut s, "bad@localhost/1", "n").expect_ok();
    subscribe(&mut s, "bad@localhost/2", "n").expect_ok();
    subscribe(&mut s, "good@localhost/1", "n").expect_ok();
    // Unknown affiliations, bad JIDs and an ownerless node are refused, changing nothing.
    let before = state(&mut s, "n");
    for (jid, aff, cond) in [
        ("x@localhost", "king", "bad-request"),
        ("@bad", "member", "bad-request"),
        ("own@localhost", "none", "not-acceptable"),
    ] {
        let a = set_affiliation(&mut s, OWNER, "n", jid, aff);
        assert_eq!(
            a.condition().as_deref(),
            Some(cond),
            "{jid} {aff}: {}",
            a.text()
        );
    }
    let a = set_affiliation(&mut s, USER, "n", "u@localhost", "owner");
    assert_eq!(
        a.condition().as_deref(),
        Some("forbidden"),
        "no self-promotion"
    );
    assert_eq!(state(&mut s, "n"), before);
    // An outcast loses every subscription of its bare JID, and cannot come back.
    let made = set_affiliation(&mut s, OWNER, "n", "bad@localhost", "outcast").expect_ok();
    // Each of its subscriptions is told it ended.
    let mut told: Vec<String> = made
        .messages
        .iter()
        .filter(|m| {
            m.get_child("event", EV)
                .and_then(|e| e.get_child("subscription", EV))
                .is_some_and(|x| x.attr("subscription") == Some("none"))
        })
        .filter_map(|m| m.attr("to").map(str::to_owned))
        .collect();
    told.sort();
    assert_eq!(told, ["bad@localhost/1", "bad@localhost/2"]);
    let subs: Vec<String> = s.subscriptions().into_iter().map(|x| x.1).collect();
    assert_eq!(subs, ["good@localhost/1"]);
    assert_eq!(
        subscribe(&mut s, "bad@localhost/3", "n")
            .condition()
            .as_deref(),
        Some("forbidden")
    );
    // The owner's view of subscriptions, and changes to them.
    let list = owner_req(&mut s, OWNER, "get", "<subscriptions node='n'/>").expect_ok();
    let xml = String::from(&list.iq);
    assert!(
        xml.contains("jid='good@localhost/1'") && xml.contains("subscription='subscribed'"),
        "{xml}"
    );
    let set = |jid: &str, state: &str| {
        format!(
            "<subscriptions node='n'><subscription jid='{jid}' subscription='{state}'/></subscriptions>"
        )
    };
    owner_req(&mut s, OWNER, "set", &set("good@localhost/1", "none")).expect_ok();
    owner_req(&mut s, OWNER, "set", &set("new@localhost/1", "subscribed")).expect_ok();
    let subs: Vec<String> = s.subscriptions().into_iter().map(|x| x.1).collect();
    assert_eq!(subs, ["new@localhost/1"]);
    // Made a whitelist: those it does not admit lose their subscriptions, and are told;
    // members keep theirs.
    subscribe(&mut s, "mem@localhost/1", "n").expect_ok();
    set_affiliation(&mut s, OWNER, "n", "mem@localhost", "member").expect_ok();
    let w = ask(
        &mut s,
        OWNER,
        "set",
        &config_submit("n", &[("pubsub#access_model", "whitelist")]),
    )
    .expect_ok();
    let told: Vec<&str> = w.messages.iter().filter_map(|m| m.attr("to")).collect();
    assert_eq!(told, ["new@localhost/1"]);
    let subs: Vec<String> = s.subscriptions().into_iter().map(|x| x.1).collect();
    assert_eq!(subs, ["mem@localhost/1"]);
    let before = state(&mut s, "n");
    let pending = owner_req(&mut s, OWNER, "set", &set("x@localhost", "pending"));
    assert_eq!(pending.condition().as_deref(), Some("not-acceptable"));
    let outcast = owner_req(&mut s, OWNER, "set", &set("bad@localhost/9", "subscribed"));
    assert_eq!(outcast.condition().as_deref(), Some("not-acceptable"));
    let theirs = owner_req(&mut s, USER, "get", "<subscriptions node='n'/>");
    assert_eq!(theirs.condition().as_deref(), Some("forbidden"));
    assert_eq!(state(&mut s, "n"), before);
}

/// What XEP-0060 §4.1 (and the publish and access models) allow, written out from the XEP's
/// table rather than computed the way the service does.
fn may_read(aff: &str, access: &str) -> bool {
    match aff {
        "outcast" => false,
        "owner" | "publisher" | "member" => true,
        _ => access == "open",
    }
}

fn may_publish(aff: &str, model: &str, subscribed: bool) -> bool {
    match aff {
        "outcast" => false,
        "owner" | "publisher" | "publish-only" => true,
        _ => model == "open" || (model == "subscribers" && subscribed),
    }
}

/// One cell of the matrix: a request, whether the XEP allows it, the conditions a refusal
/// may carry.
struct Case {
    name: String,
    checked: usize,
}

impl Case {
    fn check(
        &mut self,
        s: &mut Service,
        what: &str,
        allowed: bool,
        conds: &[&str],
        ask: impl FnOnce(&mut Service) -> Answer,
    ) {
        self.checked += 1;
        let case = &self.name;
        let before = state(s, "n");
        let a = ask(s);
        if allowed {
            assert!(a.ok(), "{case}: {what} should be allowed: {}", a.text());
        } else {
            let c = a.condition().unwrap_or_default();
            assert!(
                conds.contains(&c.as_str()),
                "{case}: {what} refused with {c:?} ({}), wanted {conds:?}",
                a.text()
            );
            assert_eq!(
                state(s, "n"),
                before,
                "{case}: a refused {what} changed state"
            );
        }
    }
}

/// Every request of a user with `aff` at a node with these models; the number of checks.
fn one_case(access: &str, model: &str, aff: &str) -> usize {
    let mut case = Case {
        name: format!("access={access} publish={model} affiliation={aff}"),
        checked: 0,
    };
    let mut s = service(Store::open_in_memory().expect("store"));
    create(
        &mut s,
        OWNER,
        "n",
        &[
            ("pubsub#access_model", access),
            ("pubsub#publish_model", model),
        ],
    )
    .expect_ok();
    publish(&mut s, OWNER, "n", "o1", "owner's").expect_ok();
    subscribe(&mut s, OWNER, "n").expect_ok();
    if aff != "none" {
        set_affiliation(&mut s, OWNER, "n", "u@localhost", aff).expect_ok();
    }
    let read_refusal: &[&str] = if aff == "outcast" {
        &["forbidden"]
    } else {
        &["not-allowed"]
    };
    let forbidden: &[&str] = &["forbidden"];
    let published = may_publish(aff, model, false);
    case.check(&mut s, "publish", published, forbidden, |s| {
        publish(s, USER, "n", "u1", "user's")
    });
    let readable = may_read(aff, access);
    case.check(&mut s, "retrieve", readable, read_refusal, |s| {
        ask(
            s,
            USER,
            "get",
            &format!("<pubsub xmlns='{PS}'><items node='n'/></pubsub>"),
        )
    });
    case.check(&mut s, "subscribe", readable, read_refusal, |s| {
        subscribe(s, USER, "n")
    });
    let may_publish_now = may_publish(aff, model, readable);
    case.check(
        &mut s,
        "publish when subscribed",
        may_publish_now,
        forbidden,
        |s| publish(s, USER, "n", "u2", "user's second"),
    );
    let strong = matches!(aff, "owner" | "publisher");
    case.check(
        &mut s,
        "replace the owner's item",
        may_publish_now && strong,
        forbidden,
        |s| publish(s, USER, "n", "o1", "replaced"),
    );
    if published {
        case.check(&mut s, "retract its own item", true, &[], |s| {
            retract(s, USER, "n", "u1")
        });
    }
    case.check(&mut s, "retract the owner's item", strong, forbidden, |s| {
        retract(s, USER, "n", "o1")
    });
    let configure = config_submit("n", &[("pubsub#title", "mine")])
        .replace(&format!("<pubsub xmlns='{OWN}'>"), "")
        .replace("</pubsub>", "");
    for (what, kind, inner) in [
        ("configure (get)", "get", "<configure node='n'/>".to_owned()),
        ("configure (set)", "set", configure),
        ("affiliations (get)", "get", "<affiliations node='n'/>".to_owned()),
        (
            "affiliations (set)",
            "set",
            "<affiliations node='n'><affiliation jid='x@localhost' affiliation='member'/></affiliations>".to_owned(),
        ),
        ("subscriptions (get)", "get", "<subscriptions node='n'/>".to_owned()),
        (
            "subscriptions (set)",
            "set",
            format!("<subscriptions node='n'><subscription jid='{OWNER}' subscription='none'/></subscriptions>"),
        ),
        ("purge", "set", "<purge node='n'/>".to_owned()),
        ("delete", "set", "<delete node='n'/>".to_owned()),
    ] {
        case.check(&mut s, what, aff == "owner", forbidden, |s| owner_req(s, USER, kind, &inner));
    }
    case.checked
}

#[test]
fn access_matrix() {
    let mut checked = 0;
    for access in ["open", "whitelist"] {
        for model in ["open", "publishers", "subscribers"] {
            for aff in [
                "owner",
                "publisher",
                "publish-only",
                "member",
                "none",
                "outcast",
            ] {
                checked += one_case(access, model, aff);
            }
        }
    }
    assert!(checked > 400, "{checked} checks");
}

#[test]
fn items_as_big_as_a_client_sends_are_kept_and_bigger_ones_refused() {
    let mut s = service(Store::open_in_memory().expect("store"));
    create(&mut s, OWNER, "n", &[]).expect_ok();
    let big = "x".repeat(240_000);
    publish(&mut s, OWNER, "n", "big", &big).expect_ok();
    let huge = "x".repeat(pubsub_tui::serve::service::MAX_ITEM_BYTES);
    let refused = publish(&mut s, OWNER, "n", "huge", &huge);
    assert_eq!(refused.condition().as_deref(), Some("not-acceptable"));
    assert_eq!(refused.detail().as_deref(), Some("payload-too-big"));
    assert_eq!(item_ids(&mut s, "n"), ["big"]);
}

#[test]
fn a_retrieve_of_big_items_comes_in_pages_under_the_stanza_limit() {
    let mut s = service(Store::open_in_memory().expect("store"));
    create(&mut s, OWNER, "n", &[]).expect_ok();
    for i in 0..3 {
        publish(&mut s, OWNER, "n", &format!("b{i}"), &"y".repeat(200_000)).expect_ok();
    }
    let size = |a: &Answer| String::from(&a.iq).len();
    // All asked for, without RSM: the first that fits, and a page saying there are more.
    let all = ask(
        &mut s,
        OWNER,
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='n'/></pubsub>"),
    );
    assert!(size(&all) < 256 * 1024, "{}", size(&all));
    let xml = String::from(&all.iq);
    assert!(
        xml.contains("id='b0'") && !xml.contains("id='b1'"),
        "one item"
    );
    assert!(
        xml.contains("<count>3</count>") && xml.contains("<last>b0</last>"),
        "a page"
    );
    // Paged on: one at a time.
    let next = ask(
        &mut s,
        OWNER,
        "get",
        &format!(
            "<pubsub xmlns='{PS}'><items node='n'/><set xmlns='http://jabber.org/protocol/rsm'><max>200</max><after>b0</after></set></pubsub>"
        ),
    );
    assert!(size(&next) < 256 * 1024);
    assert!(String::from(&next.iq).contains("id='b1'"));
    // The newest, asked with max_items: the newest that fit.
    let newest = ask(
        &mut s,
        OWNER,
        "get",
        &format!("<pubsub xmlns='{PS}'><items node='n' max_items='3'/></pubsub>"),
    );
    let xml = String::from(&newest.iq);
    assert!(
        xml.contains("id='b2'") && !xml.contains("id='b0'"),
        "the newest"
    );
    // Small items are not cut (positive control).
    create(&mut s, OWNER, "small", &[]).expect_ok();
    for i in 0..5 {
        publish(&mut s, OWNER, "small", &format!("s{i}"), "tiny").expect_ok();
    }
    assert_eq!(item_ids(&mut s, "small").len(), 5);
}
