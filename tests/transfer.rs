//! Export and import end to end, through the binary: a node on Prosody holding items of
//! several shapes (ours, an Atom entry, JSON, a payload with commas, quotes, line breaks and a
//! spreadsheet formula) is exported in each format, imported into `serve` and into ejabberd,
//! and exported again: the ids and payloads are the same. A second import publishes nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::cli::{Target, text};
use common::*;
use pubsub_tui::prosody::Options;

/// What the items carry: id → payload (as the tree writes it).
fn payloads(ndjson: &str) -> BTreeMap<String, String> {
    ndjson
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let el: xmpp_parsers::minidom::Element =
                v["xml"].as_str().expect("xml").parse().expect("item XML");
            let tree = pubsub_tui::xmpp::proto::tree::tree_of(&el);
            (
                v["id"].as_str().expect("id").to_owned(),
                tree.payload_xml().expect("a payload"),
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p.display().to_string()
}

const PAYLOADS: [(&str, &str); 3] = [
    (
        "atom-1",
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>Release 2.0, \"finally\"</title><content type='html'>&lt;p&gt;a, b&lt;/p&gt;</content><updated>2026-11-29T07:00:00Z</updated></entry>",
    ),
    (
        "json-1",
        "<json xmlns='urn:xmpp:json:0'>{\"temp\": 21.5, \"note\": \"a, \\\"b\\\"\"}</json>",
    ),
    (
        "-odd,id",
        "<reading xmlns='urn:example:sensor' note='=HYPERLINK(\"x\")'><temp unit='C'>21.5</temp><log>line one\nline, two\n\"three\"</log></reading>",
    ),
];

/// Fill `src` on Prosody: the given payloads and two text items of ours.
fn fill(src: &Target, dir: &Path) {
    src.ok(&["node", "create", "src", "--set", "max_items=100"]);
    for (id, xml) in PAYLOADS {
        let f = write(dir, "p.xml", xml);
        src.ok(&[
            "publish",
            "--node",
            "src",
            &format!("--id={id}"),
            "--xml",
            &f,
        ]);
    }
    for t in ["plain text, with a comma", "=1+1 looks like a formula"] {
        src.ok(&["publish", "--node", "src", t]);
    }
}

fn import(t: &Target, node: &str, file: &str) -> String {
    let o = t.run(&["import", "--node", node, file]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "import {file} into {node}: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trips_between_prosody_serve_and_ejabberd() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let Some(ejabberd) = start_ejabberd(false) else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let relay = common::serve::Serve::start(&server, "relay", dir.path(), &[]);
    let (bob, _) = account(&server, "bob", "b");
    let src = Target::prosody_admin(&server, bob.clone());
    fill(&src, dir.path());
    let original = src.ok(&["items", "--node", "src", "--format", "ndjson"]);
    let want = payloads(&original);
    assert_eq!(want.len(), 5, "{original}");
    assert!(want.contains_key("-odd,id"));

    let files: Vec<String> = ["ndjson", "csv", "xml"]
        .iter()
        .map(|f| {
            let body = src.ok(&["items", "--node", "src", "--format", f]);
            write(dir.path(), &format!("src.{f}"), &body)
        })
        .collect();
    let csv = std::fs::read_to_string(&files[1]).expect("csv");
    assert!(
        csv.starts_with("node,id,time,sender,publisher,format,text,xml\n"),
        "{csv}"
    );
    assert!(
        csv.contains(",\"'-odd,id\","),
        "the id is quoted and neutralised: {csv}"
    );
    assert!(csv.contains(",'=1+1 looks like a formula,"), "{csv}");

    let to_serve = Target::prosody_user(&server, "olga", &relay.jid, bob.clone());
    let eja = ejabberd_account(&ejabberd, "olga", "o");
    let to_ejabberd = Target {
        port: ejabberd.port,
        service: "pubsub.localhost".into(),
        owner: "olga".into(),
        password: eja.password.expose().to_owned(),
        bob: ejabberd_account(&ejabberd, "bob", "b"),
        bob_bare: "bob@localhost".into(),
    };
    for (target, name) in [(&to_serve, "serve"), (&to_ejabberd, "ejabberd")] {
        for (file, format) in files.iter().zip(["ndjson", "csv", "xml"]) {
            let node = format!("copy-{format}");
            let said = import(target, &node, file);
            assert!(
                said.contains("5 published, 0 already there"),
                "{name} {format}: {said}"
            );
            let back = target.ok(&["items", "--node", &node, "--format", "ndjson"]);
            assert_eq!(payloads(&back), want, "{name}, {format}");
            // Again: nothing is published twice.
            let said = import(target, &node, file);
            assert!(
                said.contains("0 published, 5 already there"),
                "{name} {format}: {said}"
            );
        }
    }
    // An import that stopped half way: the node has some of the items, one of them changed.
    let half = original.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";
    let half = write(dir.path(), "half.ndjson", &half);
    import(&to_serve, "resume", &half);
    let said = import(&to_serve, "resume", &files[0]);
    assert!(said.contains("3 published, 2 already there"), "{said}");
    // Same id, another payload: published again.
    let changed = write(
        dir.path(),
        "changed.ndjson",
        "{\"id\":\"atom-1\",\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='atom-1'><changed xmlns='urn:x'/></item>\"}\n",
    );
    let said = import(&to_serve, "resume", &changed);
    assert!(said.contains("1 published, 0 already there"), "{said}");
}

#[test]
fn import_refuses_bad_files_before_connecting_and_names_the_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let good = "{\"id\":\"a\",\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='a'><p xmlns='urn:x'/></item>\"}";
    for (name, body, why) in [
        (
            "bad.ndjson",
            format!("{good}\nnot json\n"),
            "line 2: not a JSON object",
        ),
        (
            "noxml.ndjson",
            "{\"id\":\"a\"}\n".to_owned(),
            "line 1: no \"xml\" field",
        ),
        (
            "empty-item.ndjson",
            "{\"xml\":\"<item xmlns='urn:x' id='a'/>\"}\n".to_owned(),
            "holds no payload element",
        ),
        (
            "nohead.csv",
            "a,b\n1,2\n".to_owned(),
            "the header has no \"xml\" column",
        ),
        ("open.csv", "id,xml\na,\"<p\n".to_owned(), "is not closed"),
        (
            "root.xml",
            "<other xmlns='urn:x'/>".to_owned(),
            "the root element is <other>",
        ),
        ("bin.csv", "\u{0}\u{1}x".to_owned(), "header has no"),
        (
            "mismatch.ndjson",
            "{\"id\":\"b\",\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='a'><p xmlns='urn:x'/></item>\"}\n".to_owned(),
            "the id field says \"b\" and the item's XML says \"a\"",
        ),
        (
            "wrong-root.xml",
            "<items xmlns='urn:wrong'><item id='a'><p xmlns='urn:x'/></item></items>".to_owned(),
            "an export's is <items xmlns='urn:x-pubsub-tui:export:0'>",
        ),
        ("empty.ndjson", "\n\n".to_owned(), "no items in it"),
        (
            "deep.ndjson",
            format!(
                "{{\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='d'><p xmlns='urn:x'>{}</p></item>\"}}\n",
                "<a>".repeat(5000)
            ),
            "line 1: the XML is nested 5002 levels deep",
        ),
        (
            "deep.xml",
            format!(
                "<items xmlns='urn:x-pubsub-tui:export:0'><item xmlns='http://jabber.org/protocol/pubsub' id='d'><p xmlns='urn:x'>{}</p></item></items>",
                "<a>".repeat(5000)
            ),
            "the XML is nested 5003 levels deep",
        ),
    ] {
        let f = write(dir.path(), name, &body);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_pubsub-tui"))
            .args(["import", "--node", "n", &f])
            .args([
                "--jid",
                "a@localhost",
                "--server",
                "127.0.0.1:9",
                "--insecure-plain-tcp",
            ])
            .env("PUBSUB_TUI_PASSWORD", "x")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("XDG_STATE_HOME", dir.path()).env("XDG_DATA_HOME", dir.path())
            .output()
            .expect("runs");
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{name}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(
            err.contains("nothing was published") || name.starts_with("empty"),
            "{name}: {err}"
        );
        // Refused before connecting: port 9 would say "connection refused".
        assert!(!err.contains("connect"), "{name}: {err}");
    }
}

/// `node` created, and bob subscribed to it: his handle and account.
async fn subscribed_bob(
    server: &pubsub_tui::prosody::Prosody,
    node: &str,
) -> (
    pubsub_tui::xmpp::NetHandle,
    pubsub_tui::xmpp::connect::ConnectConfig,
) {
    create_nodes(server, &[node]).await;
    let (bob_cfg, _) = account(server, "bob", "b");
    let mut bob = pubsub_tui::xmpp::spawn(
        bob_cfg.clone(),
        session(&[node], false, std::time::Duration::from_secs(3600)),
    );
    wait_online(&mut bob).await;
    wait_for(&mut bob, 20, "subscribed", |e| match e {
        pubsub_tui::xmpp::NetEvent::Subscription {
            state: pubsub_tui::xmpp::proto::SubState::Subscribed,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    (bob, bob_cfg)
}

/// The next two items bob gets; it fails if his connection is lost first.
async fn two_items_on_one_link(
    bob: &mut pubsub_tui::xmpp::NetHandle,
) -> Vec<pubsub_tui::feed::FeedItem> {
    let mut got = Vec::new();
    while got.len() < 2 {
        let ev = wait_for(bob, 20, "the two items", |e| match e {
            pubsub_tui::xmpp::NetEvent::Item(i) => Some(Some(i.clone())),
            pubsub_tui::xmpp::NetEvent::Connection(pubsub_tui::xmpp::ConnState::Suspended) => {
                Some(None)
            }
            _ => None,
        })
        .await;
        got.push(ev.expect("the connection stayed up"));
    }
    got
}

/// An attribute holding `&#13;` comes back from Prosody as a carriage return alone, which the
/// XML parser refused: the connection dropped at each delivery, and every fresh session
/// fetched the item again, without end. Now the item arrives and the link stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attribute_with_a_carriage_return_is_read_and_the_link_stays_up() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (mut bob, bob_cfg) = subscribed_bob(&server, "cr").await;
    let dir = tempfile::tempdir().expect("dir");
    let src = Target::prosody_admin(&server, bob_cfg);
    let f = write(
        dir.path(),
        "cr.xml",
        "<status xmlns='urn:x-s' note='a&#13;b'>fine</status>",
    );
    src.ok(&["publish", "--node", "cr", "--id", "cr", "--xml", &f]);
    src.ok(&["publish", "--node", "cr", "after it"]);
    let got = two_items_on_one_link(&mut bob).await;
    assert_eq!(got[0].id(), Some("cr"));
    assert!(got[0].text().contains("fine"), "{}", got[0].text());
    assert!(got[0].xml().contains("note='a"), "{}", got[0].xml());
    assert_eq!(got[1].text(), "after it");
    // The CLI reads the node too (it used to lose its connection and wait).
    let lines = src.json(&["items", "--node", "cr"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let _ = bob.commands.try_send(pubsub_tui::xmpp::Command::Shutdown);
}

/// A publisher can store an item nested 100 levels deep (Prosody takes it): subscribers and
/// the CLI read it cut at the parser's bound, and the connection stays up (it used to be
/// dropped at each delivery, and every fresh session fetched the item again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_nested_100_levels_deep_is_read_cut_and_the_link_stays_up() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let (mut bob, bob_cfg) = subscribed_bob(&server, "deep").await;
    let dir = tempfile::tempdir().expect("dir");
    let deep = format!(
        "<d xmlns='urn:x'>{}bottom{}</d>",
        "<l>".repeat(100),
        "</l>".repeat(100)
    );
    let src = Target::prosody_admin(&server, bob_cfg);
    // Published by another client (ours refuses a payload nested past 60 levels).
    let (carol_cfg, _) = account(&server, "carol", "c");
    let mut carol = pubsub_tui::xmpp::spawn(
        carol_cfg,
        session(&[], false, std::time::Duration::from_secs(3600)),
    );
    wait_online(&mut carol).await;
    let item = pubsub_tui::xmpp::proto::item::item_with(Some("deep"), deep.parse().expect("xml"));
    let key = pubsub_tui::xmpp::NodeKey::new(&carol.service, "deep");
    let r = send(&mut carol, |req| pubsub_tui::xmpp::Command::PublishItem {
        req,
        node: key,
        item,
        options: Vec::new(),
    })
    .await;
    assert!(reply(&mut carol, 20, r).await.is_ok());
    let f = write(dir.path(), "deep.xml", &deep);
    let refused = src.run(&["publish", "--node", "deep", "--id", "deep2", "--xml", &f]);
    assert!(
        text(&refused.stderr).contains("nested 101 levels deep"),
        "{}",
        text(&refused.stderr)
    );
    src.ok(&["publish", "--node", "deep", "after the deep one"]);
    // The subscriber gets both, and never loses its link.
    let got = two_items_on_one_link(&mut bob).await;
    assert_eq!(got[0].id(), Some("deep"));
    assert_eq!(
        got[0].tree().cut(),
        Some(pubsub_tui::feed::payload::Cut::Depth)
    );
    assert_eq!(got[1].text(), "after the deep one");
    // The CLI reads the node (it used to fail with a reset connection).
    let lines = src.json(&["items", "--node", "deep"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["id"], "deep");
    assert_eq!(
        lines[0]["partial"], "nested deeper than 32 levels",
        "{lines:?}"
    );
    // An item kept only in part cannot be compared: importing it again publishes it, never
    // "already there" (its difference may lie past the cut).
    let forty = format!(
        "{{\"id\":\"forty\",\"xml\":\"<item xmlns='http://jabber.org/protocol/pubsub' id='forty'><d xmlns='urn:x'>{}x{}</d></item>\"}}\n",
        "<l>".repeat(40),
        "</l>".repeat(40)
    );
    let f = write(dir.path(), "forty.ndjson", &forty);
    for _ in 0..2 {
        let o = src.run(&["import", "--node", "deep", &f]);
        let err = text(&o.stderr);
        assert!(err.contains("1 published, 0 already there"), "{err}");
    }
    let _ = bob.commands.try_send(pubsub_tui::xmpp::Command::Shutdown);
}
