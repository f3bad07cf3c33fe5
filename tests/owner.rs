//! The owner's commands end to end against real services (Prosody's pubsub component,
//! ejabberd's, and `serve` on Prosody), through the `pubsub-tui` binary as a user runs it:
//! create with a configuration, read it back, change `max_items` and the title (and a refused
//! value), publish a given payload under an id, retract (a subscriber sees it), affiliations,
//! the owner's view of subscriptions, purge and delete behind their confirmations (a
//! subscriber sees both).

mod common;

use std::path::Path;

use std::time::Duration;

use common::cli::{Target, text};
use common::*;
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::xmpp::connect::ConnectConfig;
use pubsub_tui::xmpp::{self, NetEvent};
use serde_json::Value;

/// A field's first value in `node config --json` output.
fn field(lines: &[Value], var: &str) -> Option<String> {
    lines
        .iter()
        .find(|l| l["var"] == var)
        .and_then(|l| l["values"][0].as_str().map(str::to_owned))
}

fn write_payload(dir: &Path, xml: &str) -> String {
    let p = dir.join("payload.xml");
    std::fs::write(&p, xml).expect("write payload");
    p.display().to_string()
}

/// What differs between the services, as observed.
struct Differences {
    /// How a `max_items` over the bound is refused: Prosody's form gives the range (XEP-0122)
    /// and the value is refused before it is sent; serve refuses it itself; ejabberd takes it.
    huge_max_items: Option<&'static str>,
    /// More settings at creation (ejabberd tells subscribers of a delete only with
    /// `notify_delete`, off by default).
    create_with: &'static [&'static str],
    /// Subscribers are told where a deleted node's content went (serve; Prosody 0.12 and
    /// ejabberd 23.01 leave the redirect out of the event).
    redirects: bool,
}

/// Create with a configuration, read it back, refused values, changes.
async fn scenario(t: &Target, d: &Differences) {
    // Create with a configuration; read it back.
    let created = t.json(
        &vec![
            "node",
            "create",
            "news",
            "--set",
            "title=News of the day",
            "--set",
            "max_items=5",
            "--set",
            "publish_model=open",
        ]
        .into_iter()
        .chain(d.create_with.iter().flat_map(|s| ["--set", s]))
        .collect::<Vec<_>>(),
    );
    assert_eq!(created[0]["node"], "news", "{created:?}");
    let config = t.json(&["node", "config", "news"]);
    assert_eq!(
        field(&config, "pubsub#title").as_deref(),
        Some("News of the day"),
        "{config:?}"
    );
    assert_eq!(field(&config, "pubsub#max_items").as_deref(), Some("5"));

    // A value outside the allowed options is caught before anything is sent, and says
    // which are allowed.
    let bad = t.run(&["node", "config", "news", "--set", "access_model=everyone"]);
    assert!(!bad.status.success());
    let why = text(&bad.stderr);
    assert!(
        why.contains("is not one of the allowed values: ") && why.contains("open"),
        "{why}"
    );
    let unknown = t.run(&["node", "config", "news", "--set", "colour=red"]);
    assert!(
        text(&unknown.stderr).contains("no field \"colour\""),
        "{}",
        text(&unknown.stderr)
    );
    // A value the service refuses: its reason, non-zero, nothing changed.
    if let Some(why) = d.huge_max_items {
        let huge = t.run(&["node", "config", "news", "--set", "max_items=100000000"]);
        assert!(!huge.status.success(), "{}", text(&huge.stdout));
        assert!(text(&huge.stderr).contains(why), "{}", text(&huge.stderr));
    }
    let config = t.json(&["node", "config", "news"]);
    assert_eq!(field(&config, "pubsub#max_items").as_deref(), Some("5"));

    // Change max_items and the title.
    let changed = t.json(&[
        "node",
        "config",
        "news",
        "--set",
        "max_items=3",
        "--set",
        "pubsub#title=Tidings",
    ]);
    let vars: Vec<&str> = changed.iter().filter_map(|c| c["var"].as_str()).collect();
    assert!(
        vars.contains(&"pubsub#max_items") && vars.contains(&"pubsub#title"),
        "{changed:?}"
    );
    let config = t.json(&["node", "config", "news"]);
    assert_eq!(field(&config, "pubsub#title").as_deref(), Some("Tidings"));
    assert_eq!(field(&config, "pubsub#max_items").as_deref(), Some("3"));

    subscriber_sees(t, d).await;
}

/// bob made a publisher; the owner's view of subscriptions lists bob's.
fn affiliations_and_subscriptions(t: &Target) {
    // Affiliations: bob becomes a publisher.
    let set = t.json(&[
        "node",
        "affiliations",
        "news",
        "--set",
        &format!("{}=publisher", t.bob_bare),
    ]);
    assert_eq!(set[0]["to"], "publisher", "{set:?}");
    let affs = t.json(&["node", "affiliations", "news"]);
    assert!(
        affs.iter()
            .any(|a| a["jid"] == t.bob_bare.as_str() && a["affiliation"] == "publisher"),
        "{affs:?}"
    );
    assert!(
        affs.iter()
            .any(|a| a["jid"] == format!("{}@localhost", t.owner) && a["affiliation"] == "owner"),
        "{affs:?}"
    );
    let bad = t.run(&["node", "affiliations", "news", "--set", "x@localhost=king"]);
    assert_eq!(bad.status.code(), Some(2), "a bad value is a usage error");

    // The owner's view of subscriptions lists bob's.
    let subs = t.json(&["node", "subscriptions", "news"]);
    assert!(
        subs.iter().any(|s| s["jid"]
            .as_str()
            .is_some_and(|j| j.starts_with(&t.bob_bare))
            && s["state"] == "subscribed"),
        "{subs:?}"
    );
}

/// What the owner does that a subscriber (bob) sees: items under given ids, a retraction,
/// a purge and the delete; and the affiliations and subscriptions between.
async fn subscriber_sees(t: &Target, d: &Differences) {
    let dir = tempfile::tempdir().expect("dir");
    // bob follows the node and sees what the owner does.
    let mut bob = xmpp::spawn(
        t.bob.clone(),
        session_at(&t.service, &["news"], false, Duration::from_secs(3600)),
    );
    wait_for(&mut bob, 20, "bob's subscription", |e| {
        matches!(e, NetEvent::Snapshot { node, .. } if node == "news").then_some(())
    })
    .await;

    // A given payload under a given id, twice: the second replaces the first.
    let payload = write_payload(
        dir.path(),
        "<reading xmlns='urn:example:sensor'><temp unit='C'>21.5</temp></reading>",
    );
    let id = t.ok(&["publish", "--node", "news", "--id", "r1", "--xml", &payload]);
    assert_eq!(id.trim(), "r1");
    t.ok(&["publish", "--node", "news", "--id", "r1", "--xml", &payload]);
    t.ok(&["publish", "--node", "news", "--id", "t1", "plain text"]);
    let items = t.json(&["items", "--node", "news"]);
    let ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, ["r1", "t1"], "{items:?}");
    assert!(
        items[0]["xml"]
            .as_str()
            .unwrap_or_default()
            .contains("21.5")
    );

    // Retract: bob sees it.
    let out = t.ok(&["retract", "--node", "news", "r1"]);
    assert!(out.contains("retracted r1 from news"), "{out}");
    wait_for(&mut bob, 20, "the retraction", |e| {
        matches!(e, NetEvent::Retracted { node, id } if node == "news" && id == "r1").then_some(())
    })
    .await;

    affiliations_and_subscriptions(t);

    // Purge: refused without a terminal or --yes (nothing purged), then done; bob sees it.
    let no = t.run(&["node", "purge", "news"]);
    assert!(!no.status.success());
    assert!(
        text(&no.stderr).contains("add --yes"),
        "{}",
        text(&no.stderr)
    );
    assert_eq!(t.json(&["items", "--node", "news"]).len(), 1, "still there");
    t.ok(&["node", "purge", "news", "--yes"]);
    wait_for(&mut bob, 20, "the purge", |e| {
        matches!(e, NetEvent::Purged { node } if node == "news").then_some(())
    })
    .await;
    assert!(t.json(&["items", "--node", "news"]).is_empty());

    // Delete with a redirect: bob sees it.
    let out = t.ok(&[
        "node",
        "delete",
        "news",
        "--yes",
        "--redirect",
        "xmpp:pubsub.localhost?;node=olds",
    ]);
    assert!(out.contains("deleted news"), "{out}");
    let redirect = wait_for(&mut bob, 20, "the delete", |e| match e {
        NetEvent::Deleted { node, redirect } if node == "news" => Some(redirect.clone()),
        _ => None,
    })
    .await;
    let expected = d
        .redirects
        .then(|| "xmpp:pubsub.localhost?;node=olds".to_owned());
    assert_eq!(redirect, expected);
    let gone = t.run(&["node", "config", "news"]);
    assert!(!gone.status.success());
    assert!(
        text(&gone.stderr).contains("no such node"),
        "{}",
        text(&gone.stderr)
    );
    let _ = bob.commands.try_send(xmpp::Command::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_owner_commands() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (bob, _) = account(&server, "bob", "b");
    let t = Target {
        port: server.port,
        service: prosody::PUBSUB.into(),
        owner: prosody::ADMIN.into(),
        password: server.admin_password.clone(),
        bob,
        bob_bare: "bob@localhost".into(),
    };
    scenario(
        &t,
        &Differences {
            huge_max_items: Some("is not a whole number from 1 to 10000, or max"),
            create_with: &[],
            redirects: false,
        },
    )
    .await;
}

/// olga owns, bob watches, on ejabberd's pubsub component; olga's connection too.
fn ejabberd_target(server: &common::ejabberd::Ejabberd) -> (Target, ConnectConfig) {
    let owner = ejabberd_account(server, "olga", "o");
    let t = Target {
        port: server.port,
        service: "pubsub.localhost".into(),
        owner: "olga".into(),
        password: owner.password.expose().to_owned(),
        bob: ejabberd_account(server, "bob", "b"),
        bob_bare: "bob@localhost".into(),
    };
    (t, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_owner_commands() {
    let Some(server) = start_ejabberd(false) else {
        return;
    };
    let (t, _) = ejabberd_target(&server);
    scenario(
        &t,
        &Differences {
            huge_max_items: None,
            create_with: &["notify_delete=1"],
            redirects: false,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_owner_commands() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let relay = common::serve::Serve::start(&server, "relay", dir.path(), &[]);
    let (bob, _) = account(&server, "bob", "b");
    let password = prosody::random_password();
    server.register("olga", &password).expect("register");
    let t = Target {
        port: server.port,
        service: relay.jid.clone(),
        owner: "olga".into(),
        password,
        bob,
        bob_bare: "bob@localhost".into(),
    };
    scenario(
        &t,
        &Differences {
            huge_max_items: Some("not-acceptable: max_items: out of bounds"),
            create_with: &[],
            redirects: true,
        },
    )
    .await;
}

/// ejabberd holds a subscription to an `authorize` node pending until the owner approves it:
/// the owner, online, is asked (XEP-0060 §8.6: a message with a form; its list of the node's
/// subscriptions leaves pending ones out), and setting the subscription to `subscribed`
/// approves it; `none` denies another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_pending_subscriptions_are_asked_about_approved_and_denied() {
    let Some(server) = start_ejabberd(false) else {
        return;
    };
    let (t, owner) = ejabberd_target(&server);
    t.ok(&["node", "create", "club", "--set", "access_model=authorize"]);
    let quiet = || session_at(&t.service, &[], false, Duration::from_secs(3600));
    let mut olga = xmpp::spawn(owner.clone(), quiet());
    wait_online(&mut olga).await;
    let carol = ejabberd_account(&server, "carol", "c");
    for who in [t.bob.clone(), carol] {
        let mut net = xmpp::spawn(who, quiet());
        wait_online(&mut net).await;
        let key = xmpp::NodeKey::new(&net.service, "club");
        let r = send(&mut net, |req| xmpp::Command::Subscribe { req, node: key }).await;
        match reply(&mut net, 20, r).await {
            Ok(xmpp::Answer::Subscribed { state, .. }) => {
                assert_eq!(state, pubsub_tui::xmpp::proto::SubState::Pending);
            }
            other => panic!("{other:?}"),
        }
        let _ = net.commands.try_send(xmpp::Command::Shutdown);
    }
    // The owner is asked about each.
    let mut asked = Vec::new();
    while asked.len() < 2 {
        let jid = wait_for(&mut olga, 20, "an authorization request", |e| match e {
            NetEvent::AuthorizationRequest { node, jid, .. } if node == "club" => Some(jid.clone()),
            _ => None,
        })
        .await;
        asked.push(jid);
    }
    asked.sort();
    assert_eq!(asked, ["bob@localhost", "carol@localhost"]);
    let set = t.json(&[
        "node",
        "subscriptions",
        "club",
        "--set",
        "bob@localhost=subscribed",
    ]);
    assert_eq!(set[0]["to"], "subscribed", "{set:?}");
    t.ok(&[
        "node",
        "subscriptions",
        "club",
        "--set",
        "carol@localhost=none",
    ]);
    let subs = t.json(&["node", "subscriptions", "club"]);
    let states: Vec<(String, String)> = subs
        .iter()
        .map(|s| {
            (
                s["jid"].as_str().unwrap_or_default().to_owned(),
                s["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("bob@localhost".to_owned(), "subscribed".to_owned())],
        "approved, and carol denied"
    );
    let _ = olga.commands.try_send(xmpp::Command::Shutdown);
}

/// A run following an ejabberd `authorize` node waits as pending (its retrieve, refused until
/// then, does not make it fail), and gets the stored items once the owner approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_a_pending_follow_waits_then_gets_the_items() {
    use pubsub_tui::xmpp::proto::SubState;
    let Some(server) = start_ejabberd(false) else {
        return;
    };
    let (t, _) = ejabberd_target(&server);
    t.ok(&["node", "create", "club", "--set", "access_model=authorize"]);
    t.ok(&["publish", "--node", "club", "stored before"]);
    let mut bob = xmpp::spawn(
        t.bob.clone(),
        session_at(&t.service, &["club"], false, Duration::from_secs(3600)),
    );
    let me = wait_online(&mut bob).await;
    let mut states = Vec::new();
    wait_for(&mut bob, 20, "pending", |e| match e {
        NetEvent::Subscription { state, .. } => {
            states.push(state.name());
            (*state == SubState::Pending).then_some(())
        }
        _ => None,
    })
    .await;
    // A moment for the refused retrieve: it must not turn the state to failed.
    let later = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(NetEvent::Subscription { state, .. }) = bob.events.recv().await {
                return state;
            }
        }
    })
    .await;
    assert!(
        later.is_err(),
        "still pending, not {later:?} (before: {states:?})"
    );
    t.ok(&[
        "node",
        "subscriptions",
        "club",
        "--set",
        &format!("{me}=subscribed"),
    ]);
    let items = wait_for(
        &mut bob,
        20,
        "the stored items after approval",
        |e| match e {
            NetEvent::Snapshot { node, items, .. } if node == "club" => Some(
                items
                    .iter()
                    .map(|i| i.text().to_owned())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        },
    )
    .await;
    assert_eq!(items, ["stored before"]);
    let _ = bob.commands.try_send(xmpp::Command::Shutdown);
}

/// ejabberd answers yes to a change of the owner's own affiliation and keeps it: the command
/// says the change did not happen (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_a_change_the_service_ignores_is_not_reported_as_done() {
    let Some(server) = start_ejabberd(false) else {
        return;
    };
    let (t, _) = ejabberd_target(&server);
    t.ok(&["node", "create", "self"]);
    let o = t.run(&[
        "node",
        "affiliations",
        "self",
        "--set",
        "olga@localhost=member",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("did not change this: olga@localhost is still owner"),
        "{}",
        text(&o.stderr)
    );
    // Positive control: a change it makes is reported.
    let ok = t.json(&[
        "node",
        "affiliations",
        "self",
        "--set",
        "bob@localhost=publisher",
    ]);
    assert_eq!(ok[0]["to"], "publisher");
}
