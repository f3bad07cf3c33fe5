//! The store against a reference model: the session machine, with a real SQLite store, in
//! front of a simulated service that answers what the machine asks (subscribe, item ids by
//! disco#items, items by id, every item). Random publishes (delivered live or not), retracts,
//! purges, evictions (the node keeps few items), restarts (a new process: the store opened
//! again, a fresh session, an incremental resync), manual resyncs (in full) and a second process
//! writing to the same database. Property: after each resync, the snapshot and the store both
//! equal the service's set.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use proptest::prelude::*;
use pubsub_tui::cache::Persist as _;
use pubsub_tui::cache::db::{Db, Limits};
use pubsub_tui::xmpp::session::{Input, Now, Output, RetryPolicy, Session, SessionConfig};
use pubsub_tui::xmpp::{Command, NetEvent, NodeKey, RequestId, SnapshotReason};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza::Stanza;

const SERVICE: &str = "pubsub.localhost";
const NODE: &str = "n";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

#[derive(Debug, Clone)]
enum Op {
    /// Another publisher's item; the notification reaches us or not.
    Publish {
        delivered: bool,
    },
    /// The owner retracts the k-th item the service holds (if any); told to us or not.
    Retract {
        k: usize,
        delivered: bool,
    },
    Purge {
        delivered: bool,
    },
    /// This process ends and a new one starts (the store opened again).
    Restart,
    /// The user asks for a resync (in full).
    ManualResync,
    /// Another process of the account keeps an item in the same database (one the service
    /// had, or never had).
    OtherProcess {
        known: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<bool>().prop_map(|d| Op::Publish { delivered: d }),
        2 => (0usize..12, any::<bool>()).prop_map(|(k, d)| Op::Retract { k, delivered: d }),
        1 => any::<bool>().prop_map(|d| Op::Purge { delivered: d }),
        2 => Just(Op::Restart),
        1 => Just(Op::ManualResync),
        1 => any::<bool>().prop_map(|known| Op::OtherProcess { known }),
    ]
}

/// The simulated service's node: ids in publish order, at most `max` kept.
struct Service {
    items: VecDeque<String>,
    max: usize,
    next: u64,
}

impl Service {
    fn item_xml(id: &str) -> String {
        format!(
            "<item xmlns='{PUBSUB}' id='{id}'><entry xmlns='urn:example:e'><v>{id}</v></entry></item>"
        )
    }

    fn set(&self) -> BTreeSet<String> {
        self.items.iter().cloned().collect()
    }

    /// The answer to one request of the machine (`None`: not a request to answer).
    fn answer(&self, stanza: &Stanza) -> Option<Input> {
        let Stanza::Iq(iq) = stanza else { return None };
        let (id, payload, get) = match iq {
            Iq::Get { id, payload, .. } => (id, payload, true),
            Iq::Set { id, payload, .. } => (id, payload, false),
            _ => return None,
        };
        let body = if get && payload.is("query", DISCO_ITEMS) {
            let mut list = String::new();
            for i in &self.items {
                let _ = write!(list, "<item jid='{SERVICE}' name='{i}'/>");
            }
            format!("<query xmlns='{DISCO_ITEMS}' node='{NODE}'>{list}</query>")
        } else if get && let Some(items) = payload.get_child("items", PUBSUB) {
            let asked: Vec<&str> = items
                .children()
                .filter(|c| c.is("item", PUBSUB))
                .filter_map(|c| c.attr("id"))
                .collect();
            let list: String = self
                .items
                .iter()
                .filter(|i| asked.is_empty() || asked.contains(&i.as_str()))
                .map(|i| Self::item_xml(i))
                .collect();
            format!("<pubsub xmlns='{PUBSUB}'><items node='{NODE}'>{list}</items></pubsub>")
        } else if !get && payload.get_child("subscribe", PUBSUB).is_some() {
            format!(
                "<pubsub xmlns='{PUBSUB}'><subscription node='{NODE}' jid='bob@localhost/t' subscription='subscribed'/></pubsub>"
            )
        } else {
            String::new()
        };
        Some(stanza_input(&format!(
            "<iq xmlns='jabber:client' type='result' from='{SERVICE}' to='bob@localhost/t' id='{id}'>{body}</iq>"
        )))
    }
}

fn stanza_input(xml: &str) -> Input {
    let el: Element = xml.parse().expect("XML");
    Input::Stanza(Box::new(Stanza::try_from(el).expect("a stanza")))
}

fn event(inner: &str) -> Input {
    stanza_input(&format!(
        "<message xmlns='jabber:client' from='{SERVICE}' to='bob@localhost/t'>\
         <event xmlns='{PUBSUB}#event'>{inner}</event></message>"
    ))
}

fn config() -> SessionConfig {
    SessionConfig {
        service: Jid::new(SERVICE).expect("jid"),
        nodes: vec![NODE.into()],
        subscribe: true,
        auto_publish: false,
        interval: Duration::from_secs(5),
        iq_timeout: Duration::from_secs(30),
        resync_min_interval: Duration::ZERO,
        publisher_session: "cafe".into(),
        retry: RetryPolicy::DEFAULT,
        keep_unsent: true,
    }
}

struct Snap {
    ids: BTreeSet<String>,
    reason: SnapshotReason,
    service: BTreeSet<String>,
    store: BTreeSet<String>,
}

struct Run {
    session: Session,
    mono: Instant,
    db: std::path::PathBuf,
    /// Snapshots not yet checked: their ids, their reason, and at that moment the service's set
    /// and the store's.
    snapshots: Vec<Snap>,
    incremental: usize,
    /// The ids of the publishes sent, in order.
    published: Vec<String>,
}

impl Run {
    fn start(db: &std::path::Path) -> Self {
        let store = Db::open(db, SERVICE, Limits::default()).db.expect("store");
        let mut run = Self {
            session: Session::with_store(config(), Box::new(store)),
            db: db.to_owned(),
            mono: Instant::now(),
            snapshots: Vec::new(),
            incremental: 0,
            published: Vec::new(),
        };
        let now = run.now();
        let out = run.session.start(now);
        run.take(out, None);
        run
    }

    fn now(&mut self) -> Now {
        self.mono += Duration::from_millis(10);
        Now {
            mono: self.mono,
            wall: Utc::now(),
        }
    }

    /// Feed an input; answer what the machine asks until it asks nothing more.
    fn feed(&mut self, input: Input, service: &Service) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let now = self.now();
            let out = self.session.handle(input, now);
            self.take(out, Some((service, &mut queue)));
        }
    }

    fn take(&mut self, out: Vec<Output>, mut reply: Option<(&Service, &mut VecDeque<Input>)>) {
        for o in out {
            match o {
                Output::Send(s) => {
                    if let Stanza::Iq(Iq::Set { payload, .. }) = s.as_ref()
                        && let Some(item) = payload
                            .get_child("publish", PUBSUB)
                            .and_then(|p| p.get_child("item", PUBSUB))
                    {
                        self.published
                            .push(item.attr("id").unwrap_or_default().to_owned());
                    }
                    if let Some((service, queue)) = reply.as_mut()
                        && let Some(answer) = service.answer(&s)
                    {
                        queue.push_back(answer);
                    }
                }
                Output::Event(NetEvent::Snapshot { items, reason, .. }) => {
                    self.snapshots.push(Snap {
                        ids: items
                            .iter()
                            .filter_map(|i| i.id().map(str::to_owned))
                            .collect(),
                        reason,
                        service: reply.as_ref().map(|(s, _)| s.set()).unwrap_or_default(),
                        store: store_ids(&self.db),
                    });
                }
                Output::Event(NetEvent::Incremental { .. }) => self.incremental += 1,
                Output::Event(NetEvent::Store(problem)) => panic!("the store failed: {problem}"),
                _ => {}
            }
        }
    }

    /// Take outputs gathered from several inputs, then answer until nothing more is asked.
    fn answer_all(&mut self, out: Vec<Output>, service: &Service) {
        let mut queue = VecDeque::new();
        self.take(out, Some((service, &mut queue)));
        while let Some(input) = queue.pop_front() {
            self.feed(input, service);
        }
    }

    /// Send what earlier runs left (its outputs, not answered yet).
    fn ask_leftovers(&mut self) -> Vec<Output> {
        let now = self.now();
        let cmd = Command::SendLeftovers {
            req: RequestId(7),
            node: None,
        };
        self.session.handle(Input::Command(cmd), now)
    }

    fn online(&mut self, service: &Service) {
        self.feed(
            Input::Online {
                bound: Jid::new("bob@localhost/t").expect("jid"),
                server: None,
            },
            service,
        );
    }
}

fn store_ids(db: &std::path::Path) -> BTreeSet<String> {
    let mut store = Db::open(db, SERVICE, Limits::default()).db.expect("store");
    store.cached_ids(NODE).into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_store_equals_the_services_set_after_every_resync(
        ops in proptest::collection::vec(op(), 1..40),
        max in 3usize..10,
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("bob@localhost.sqlite");
        let mut service = Service { items: VecDeque::new(), max, next: 0 };
        let mut run = Run::start(&db);
        run.online(&service);
        let mut other = Db::open(&db, SERVICE, Limits::default()).db.expect("a second process");
        for op in ops {
            match op {
                Op::Publish { delivered } => {
                    service.next += 1;
                    let id = format!("i{}", service.next);
                    service.items.push_back(id.clone());
                    while service.items.len() > service.max {
                        service.items.pop_front();
                    }
                    if delivered {
                        let item = Service::item_xml(&id).replace(&format!(" xmlns='{PUBSUB}'"), "");
                        run.feed(event(&format!("<items node='{NODE}'>{item}</items>")), &service);
                    }
                }
                Op::Retract { k, delivered } => {
                    if k < service.items.len() {
                        let id = service.items.remove(k).expect("there");
                        if delivered {
                            run.feed(
                                event(&format!("<items node='{NODE}'><retract id='{id}'/></items>")),
                                &service,
                            );
                        }
                    }
                }
                Op::Purge { delivered } => {
                    service.items.clear();
                    if delivered {
                        run.feed(event(&format!("<purge node='{NODE}'/>")), &service);
                    }
                }
                Op::Restart => {
                    drop(run);
                    run = Run::start(&db);
                    run.online(&service);
                }
                Op::ManualResync => {
                    let cmd = Command::Resync {
                        req: RequestId(1),
                        node: NodeKey::new(&Jid::new(SERVICE).expect("jid"), NODE),
                    };
                    run.feed(Input::Command(cmd), &service);
                }
                Op::OtherProcess { known } => {
                    let id = if known {
                        service.items.back().cloned().unwrap_or_else(|| "gone".into())
                    } else {
                        format!("stray{}", service.next)
                    };
                    let xml = Service::item_xml(&id);
                    let el = pubsub_tui::xmpp::proto::parse_payload(&xml).expect("xml");
                    other.add(&pubsub_tui::xmpp::proto::parse_item(NODE, &el));
                    other.flush();
                }
            }
            for snap in std::mem::take(&mut run.snapshots) {
                if snap.reason == SnapshotReason::Cached {
                    continue;
                }
                prop_assert_eq!(&snap.ids, &snap.service, "the snapshot ({:?})", snap.reason);
                prop_assert_eq!(&snap.store, &snap.service, "the store ({:?})", snap.reason);
            }
        }
    }
}

/// The positive control for the property: a restart after items were kept resyncs
/// incrementally, and fetches only what it lacks.
#[test]
fn a_restart_with_items_kept_is_incremental() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bob@localhost.sqlite");
    let mut service = Service {
        items: VecDeque::new(),
        max: 10,
        next: 0,
    };
    for k in 1..=4 {
        service.items.push_back(format!("i{k}"));
    }
    let mut run = Run::start(&db);
    run.online(&service);
    assert_eq!(run.incremental, 0, "nothing kept: in full");
    assert_eq!(store_ids(&db), service.set());
    drop(run);
    service.items.pop_front();
    service.items.push_back("i5".into());
    let mut run = Run::start(&db);
    assert_eq!(
        run.snapshots.first().map(|s| s.reason),
        Some(SnapshotReason::Cached),
        "the kept items first"
    );
    run.snapshots.clear();
    run.online(&service);
    assert_eq!(run.incremental, 1);
    assert_eq!(run.snapshots[0].ids, service.set());
    assert_eq!(store_ids(&db), service.set());
}

/// An item an earlier run left unsent, written to the store as that run would have.
fn leave_unsent(db: &std::path::Path, text: &str) -> String {
    let mut store = Db::open(db, SERVICE, Limits::default()).db.expect("store");
    let n = store.number(NODE);
    let item = pubsub_tui::xmpp::proto::OutgoingItem {
        node: NODE.into(),
        sender: "bob@localhost/old".into(),
        time: Utc::now(),
        seq: pubsub_tui::feed::Seq::new(n.session, n.n),
        text: text.into(),
    };
    store.outbox_put(&item);
    item.id()
}

fn key() -> NodeKey {
    NodeKey::new(&Jid::new(SERVICE).expect("jid"), NODE)
}

/// Items of this run wait behind those an earlier run left: the numbers go out in order, so
/// no subscriber sees a gap (and reports a loss) that is not one.
#[test]
fn new_items_wait_behind_the_leftovers() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bob@localhost.sqlite");
    let left = leave_unsent(&db, "left behind");
    let service = Service {
        items: VecDeque::new(),
        max: 10,
        next: 0,
    };
    let mut run = Run::start(&db);
    run.online(&service);
    // Asked for, then a new item at once: the check of the leftover is still to be answered
    // when the new one is published (both inputs before any answer).
    let mut out = run.ask_leftovers();
    let now = run.now();
    out.extend(run.session.handle(
        Input::Command(Command::Publish {
            req: RequestId(8),
            node: key(),
            text: "new".into(),
        }),
        now,
    ));
    run.answer_all(out, &service);
    assert_eq!(run.published.len(), 2, "{:?}", run.published);
    assert_eq!(run.published[0], left, "the leftover first");
    let (s0, n0) = run.published[0].rsplit_once('-').expect("id");
    let (s1, n1) = run.published[1].rsplit_once('-').expect("id");
    assert_eq!(s0, s1, "one session continues");
    assert!(n0.parse::<u64>().expect("n") < n1.parse::<u64>().expect("n"));
}

/// Leftovers the user discards while their check is in flight are never sent.
#[test]
fn leftovers_discarded_during_their_check_are_not_sent() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bob@localhost.sqlite");
    leave_unsent(&db, "to be discarded");
    let service = Service {
        items: VecDeque::new(),
        max: 10,
        next: 0,
    };
    let mut run = Run::start(&db);
    run.online(&service);
    let mut out = run.ask_leftovers();
    let now = run.now();
    out.extend(run.session.handle(
        Input::Command(Command::DiscardUnsent { req: RequestId(9) }),
        now,
    ));
    run.answer_all(out, &service);
    assert!(run.published.is_empty(), "{:?}", run.published);
    // The positive control: without the discard, it goes out.
    let db2 = dir.path().join("other@localhost.sqlite");
    leave_unsent(&db2, "sent");
    let mut run = Run::start(&db2);
    run.online(&service);
    run.feed(
        Input::Command(Command::SendLeftovers {
            req: RequestId(7),
            node: None,
        }),
        &service,
    );
    assert_eq!(run.published.len(), 1);
}
