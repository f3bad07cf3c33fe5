//! The service explorer's requests against real servers: listing nodes (with their titles and
//! meta-data, paged or cut), following and leaving nodes at run time, the account's
//! subscriptions, and the headless commands (`nodes`, `info`, `items`, `subscribe`,
//! `unsubscribe`, `subscriptions`) with their errors. A scripted service covers what the
//! real ones here do not do: a collection tree, and a refused node list.

mod common;

use std::path::Path;
use std::process::{Command as Process, Output};
use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::{self, Options};
use pubsub_tui::xmpp::proto::SubState;
use pubsub_tui::xmpp::{self, Answer, Command, NetEvent, NetHandle, NodeKey, OwnerOp};
use serde_json::Value;
use xmpp_parsers::jid::Jid;

const BIN: &str = env!("CARGO_BIN_EXE_pubsub-tui");

/// `pubsub-tui SUB ARGS` as `user` on `server` at `service`, with its own state dir.
fn cli(
    port: u16,
    service: &str,
    user: &str,
    password: &str,
    state: &Path,
    args: &[&str],
) -> Output {
    Process::new(BIN)
        .args(&args[..1])
        .args(["--jid", &format!("{user}@localhost")])
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--insecure-plain-tcp",
        ])
        .args(["--service", service])
        .args(&args[1..])
        .env("PUBSUB_TUI_PASSWORD", password)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", state)
        .env("XDG_DATA_HOME", state)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON lines of a successful run.
fn json_lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The `node` field of each `kind: node` line.
fn listed(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["kind"] == "node")
        .filter_map(|l| l["node"].as_str().map(str::to_owned))
        .collect()
}

/// The TUI's state file for `dir`.
fn state_file(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("pubsub-tui/followed.json")).expect("state file");
    serde_json::from_str(&text).expect("JSON")
}

/// Send a request (made with its id and the session's service) and wait for its answer.
async fn ask(net: &mut NetHandle, make: impl FnOnce(xmpp::RequestId, &Jid) -> Command) -> Answer {
    let service = net.service.clone();
    let r = send(net, |req| make(req, &service)).await;
    match reply(net, 20, r).await {
        Ok(a) => a,
        Err(e) => panic!("request failed: {e}"),
    }
}

/// Follow `node`; the answer's state.
async fn follow(net: &mut NetHandle, node: &str) -> SubState {
    match ask(net, |req, at| Command::Follow {
        req,
        node: NodeKey::new(at, node),
    })
    .await
    {
        Answer::Followed { state, .. } => state,
        other => panic!("{other:?}"),
    }
}

/// The stored items the follow of `node` brought (its initial snapshot).
async fn initial_items(net: &mut NetHandle, node: &str) -> Vec<String> {
    wait_for(net, 20, "the node's stored items", |e| match e {
        NetEvent::Snapshot { node: n, items, .. } if n == node => {
            Some(items.iter().map(|i| i.text().to_owned()).collect())
        }
        _ => None,
    })
    .await
}

/// Run-time follow and leave, as the explorer does them, against any service: `node` has
/// `stored` items; the publisher `pubr` publishes to it and to `control` (followed from the
/// start by `net`).
async fn follow_then_leave(
    net: &mut NetHandle,
    pubr: &mut NetHandle,
    node: &str,
    control: &str,
    stored: &str,
) {
    // Listed, and not followed yet: its events are not taken.
    let Answer::Nodes(list) = ask(net, |req, at| Command::ListNodes {
        req,
        service: at.clone(),
        parent: None,
        after: None,
    })
    .await
    else {
        panic!("a node list")
    };
    assert!(
        list.items.iter().any(|i| i.node.as_deref() == Some(node)),
        "{node} is listed: {list:?}"
    );
    assert_eq!(follow(net, node).await, SubState::Subscribed);
    let items = initial_items(net, node).await;
    assert!(items.iter().any(|t| t == stored), "{items:?}");
    publish(pubr, node, "live after follow").await;
    wait_for(net, 20, "the live item", |e| {
        matches!(e, NetEvent::Item(i) if i.node() == node && i.text() == "live after follow")
            .then_some(())
    })
    .await;

    assert_eq!(
        ask(net, |req, at| Command::Unfollow {
            req,
            node: NodeKey::new(at, node),
        })
        .await,
        Answer::Unfollowed {
            node: node.into(),
            account: false
        }
    );
    no_events_after_leaving(net, pubr, node, control).await;
}

/// After leaving `node`: an item to it, then one to `control` (followed). The control
/// arrives; the first must not (it would come before the control).
async fn no_events_after_leaving(
    net: &mut NetHandle,
    pubr: &mut NetHandle,
    node: &str,
    control: &str,
) {
    publish(pubr, node, "after leaving").await;
    publish(pubr, control, "control").await;
    let mut leaked = Vec::new();
    wait_for(net, 20, "the control item", |e| match e {
        NetEvent::Item(i) if i.node() == control && i.text() == "control" => Some(()),
        NetEvent::Item(i) if i.node() == node => {
            leaked.push(i.text().to_owned());
            None
        }
        _ => None,
    })
    .await;
    assert!(leaked.is_empty(), "events after leaving: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_nodes_of_another_client_are_listed_followed_and_left_at_run_time() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    pubsub_tui::demo::create_titled_nodes(
        &server,
        &[("control", None), ("gamma", Some("Gamma rays"))],
        100,
    )
    .await
    .expect("nodes");
    let (bob_cfg, _) = account(&server, "bob", "pub");
    let mut bob = xmpp::spawn(bob_cfg, session(&[], false, Duration::from_secs(3600)));
    wait_online(&mut bob).await;
    publish(&mut bob, "gamma", "stored before").await;
    let (alice_cfg, _) = account(&server, "alice", "tui");
    let mut alice = xmpp::spawn(
        alice_cfg,
        session(&["control"], false, Duration::from_secs(3600)),
    );
    wait_online(&mut alice).await;
    // Meta-data from the node itself.
    let Answer::Info(info) = ask(&mut alice, |req, at| Command::Info {
        req,
        service: at.clone(),
        node: Some("gamma".into()),
    })
    .await
    else {
        panic!("info")
    };
    assert_eq!(
        info.meta.and_then(|m| m.title).as_deref(),
        Some("Gamma rays")
    );
    follow_then_leave(&mut alice, &mut bob, "gamma", "control", "stored before").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_headless_commands_list_describe_read_and_change_subscriptions() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    pubsub_tui::demo::create_titled_nodes(
        &server,
        &[("alpha", Some("Alpha news")), ("beta", None)],
        100,
    )
    .await
    .expect("nodes");
    let (alice_cfg, _) = account(&server, "alice", "pub");
    let mut alice = xmpp::spawn(alice_cfg, session(&[], false, Duration::from_secs(3600)));
    wait_online(&mut alice).await;
    for i in 1..=3 {
        let r = publish(&mut alice, "alpha", &format!("alpha {i}")).await;
        assert!(reply(&mut alice, 20, r).await.is_ok());
    }
    let password = prosody::random_password();
    server.register("bob", &password).expect("register");
    let state = state_home();
    let run = |args: &[&str]| cli(server.port, prosody::PUBSUB, "bob", &password, &state, args);

    let nodes = json_lines(&run(&["nodes", "--json"]));
    let mut names = listed(&nodes);
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    let plain = run(&["nodes"]);
    assert!(
        stdout(&plain).lines().any(|l| l.starts_with("alpha")),
        "{}",
        stdout(&plain)
    );

    let info = json_lines(&run(&["info", "--node", "alpha", "--json"]));
    assert_eq!(info[0]["meta"]["title"], "Alpha news");
    let service = json_lines(&run(&["info", "--json"]));
    assert_eq!(service[0]["identities"][0]["category"], "pubsub");
    let features = service[0]["pubsub_features"].as_array().expect("features");
    assert_eq!(
        features.len(),
        44,
        "every XEP-0060 feature, advertised or not"
    );
    assert!(
        features
            .iter()
            .any(|f| f["feature"] == "publish" && f["state"] == "advertised"),
        "{features:?}"
    );

    let items = json_lines(&run(&["items", "--node", "alpha", "--max", "2", "--json"]));
    let texts: Vec<&str> = items.iter().filter_map(|i| i["text"].as_str()).collect();
    assert_eq!(
        texts,
        ["alpha 2", "alpha 3"],
        "the newest two, oldest first"
    );
    let all = json_lines(&run(&["items", "--node", "alpha", "--json"]));
    assert_eq!(all.len(), 3);

    // Subscribe the account, see it listed, leave again; the TUI's list follows.
    let sub = run(&["subscribe", "--node", "beta"]);
    assert!(sub.status.success(), "{}", stderr(&sub));
    assert!(
        stdout(&sub).contains("subscribed bob@localhost to beta"),
        "{}",
        stdout(&sub)
    );
    let subs = json_lines(&run(&["subscriptions", "--json"]));
    assert!(
        subs.iter().any(|s| s["node"] == "beta"
            && s["jid"] == "bob@localhost"
            && s["state"] == "subscribed"),
        "{subs:?}"
    );
    assert_eq!(
        state_file(&state)["accounts"]["bob@localhost pubsub.localhost"]["added"],
        serde_json::json!(["beta"])
    );
    let unsub = run(&["unsubscribe", "--node", "beta"]);
    assert!(unsub.status.success(), "{}", stderr(&unsub));
    let subs = json_lines(&run(&["subscriptions", "--json"]));
    assert!(!subs.iter().any(|s| s["node"] == "beta"), "{subs:?}");
    assert_eq!(
        state_file(&state)["accounts"]["bob@localhost pubsub.localhost"]["removed"],
        serde_json::json!(["beta"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_headless_errors_are_words_with_a_non_zero_exit() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let password = prosody::random_password();
    server.register("bob", &password).expect("register");
    let state = state_home();
    let run = |args: &[&str]| cli(server.port, prosody::PUBSUB, "bob", &password, &state, args);
    // Errors: in words, with a non-zero exit, and quickly.
    let missing = run(&["items", "--node", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no such node 'nope' at pubsub.localhost"),
        "{}",
        stderr(&missing)
    );
    let bad = run(&["subscribe", "--node", "bad\u{7}name"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("control characters"),
        "{}",
        stderr(&bad)
    );
    let started = Instant::now();
    let nowhere = cli(
        server.port,
        "pubsub.nowhere.invalid",
        "bob",
        &password,
        &state,
        &["nodes"],
    );
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        stderr(&nowhere).contains("pubsub.nowhere.invalid"),
        "{}",
        stderr(&nowhere)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a missing service is an error, not a hang"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_lists_over_100_nodes_says_its_list_is_cut_and_follows_at_run_time() {
    let Some(server) = start_ejabberd(false) else {
        return;
    };
    let alice_cfg = ejabberd_account(&server, "alice", "a");
    let password = alice_cfg.password.expose().to_owned();
    let mut alice = xmpp::spawn(
        alice_cfg,
        session_at("pubsub.localhost", &[], false, Duration::from_secs(3600)),
    );
    wait_online(&mut alice).await;
    // 120 nodes, created by alice, with titles; "control" is followed, "gamma" is to follow.
    let mut names: Vec<String> = (0..118).map(|i| format!("n{i:03}")).collect();
    names.extend(["control".into(), "gamma".into()]);
    for name in &names {
        let title = format!("Title of {name}");
        ask(&mut alice, |req, at| Command::Owner {
            req,
            node: NodeKey::new(at, name),
            op: OwnerOp::open_node(10, Some(&title)),
        })
        .await;
    }
    // ejabberd answers the root list with 100 nodes and no RSM: the list says it is cut.
    let state = state_home();
    let out = cli(
        server.port,
        "pubsub.localhost",
        "alice",
        &password,
        &state,
        &["nodes", "--json"],
    );
    let lines = json_lines(&out);
    assert_eq!(listed(&lines).len(), 100, "ejabberd stops at 100");
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "cut" && l["listed"] == 100),
        "{lines:?}"
    );
    let plain = cli(
        server.port,
        "pubsub.localhost",
        "alice",
        &password,
        &state,
        &["nodes"],
    );
    assert!(
        stderr(&plain).contains("there may be more"),
        "{}",
        stderr(&plain)
    );
    // A node's meta-data: its title.
    let info = json_lines(&cli(
        server.port,
        "pubsub.localhost",
        "alice",
        &password,
        &state,
        &["info", "--node", "n007", "--json"],
    ));
    assert_eq!(info[0]["meta"]["title"], "Title of n007");

    // Follow a node (listed or not, by name) and leave it again.
    let bob_cfg = ejabberd_account(&server, "bob", "b");
    let mut bob = xmpp::spawn(
        bob_cfg,
        session_at("pubsub.localhost", &[], false, Duration::from_secs(3600)),
    );
    wait_online(&mut bob).await;
    let r = publish(&mut bob, "gamma", "stored before").await;
    assert!(reply(&mut bob, 20, r).await.is_ok());
    assert_eq!(follow(&mut alice, "control").await, SubState::Subscribed);
    assert_eq!(follow(&mut alice, "gamma").await, SubState::Subscribed);
    let items = initial_items(&mut alice, "gamma").await;
    assert_eq!(items, ["stored before"]);
    assert_eq!(
        ask(&mut alice, |req, at| Command::Unfollow {
            req,
            node: NodeKey::new(at, "gamma"),
        })
        .await,
        Answer::Unfollowed {
            node: "gamma".into(),
            account: false
        }
    );
    no_events_after_leaving(&mut alice, &mut bob, "gamma", "control").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_lists_titles_gives_meta_data_and_subscriptions_and_follows_at_run_time() {
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let relay = common::serve::Serve::start(&server, "relay", dir.path(), &[]);
    let service = relay.jid.clone();
    let (bob_cfg, _) = account(&server, "bob", "pub");
    let mut bob = xmpp::spawn(
        bob_cfg,
        session_at(&service, &[], false, Duration::from_secs(3600)),
    );
    wait_online(&mut bob).await;
    for (node, title) in [("control", None), ("gamma", Some("Gamma rays"))] {
        ask(&mut bob, |req, at| Command::Owner {
            req,
            node: NodeKey::new(at, node),
            op: OwnerOp::open_node(100, title),
        })
        .await;
    }
    let r = publish(&mut bob, "gamma", "stored before").await;
    assert!(reply(&mut bob, 20, r).await.is_ok());
    let (alice_cfg, alice_pw) = account(&server, "alice", "tui");
    let mut alice = xmpp::spawn(
        alice_cfg,
        session_at(&service, &["control"], false, Duration::from_secs(3600)),
    );
    wait_online(&mut alice).await;
    let Answer::Nodes(list) = ask(&mut alice, |req, at| Command::ListNodes {
        req,
        service: at.clone(),
        parent: None,
        after: None,
    })
    .await
    else {
        panic!("nodes")
    };
    let gamma = list
        .items
        .iter()
        .find(|i| i.node.as_deref() == Some("gamma"))
        .expect("gamma listed");
    assert_eq!(gamma.name.as_deref(), Some("Gamma rays"), "titles as names");
    let Answer::Info(info) = ask(&mut alice, |req, at| Command::Info {
        req,
        service: at.clone(),
        node: Some("gamma".into()),
    })
    .await
    else {
        panic!("info")
    };
    let meta = info.meta.expect("meta-data");
    assert_eq!(meta.title.as_deref(), Some("Gamma rays"));
    assert_eq!(meta.creator.as_deref(), Some("bob@localhost"));
    follow_then_leave(&mut alice, &mut bob, "gamma", "control", "stored before").await;
    // The account's subscriptions: the control node, by this run's full JID.
    let Answer::Subscriptions(subs) = ask(&mut alice, |req, at| Command::Subscriptions {
        req,
        service: at.clone(),
    })
    .await
    else {
        panic!("subscriptions")
    };
    assert!(
        subs.iter()
            .any(|s| s.node == "control" && s.jid == "alice@localhost/tui"),
        "{subs:?}"
    );
    assert!(!subs.iter().any(|s| s.node == "gamma"), "left: {subs:?}");
    // The headless command reads the same.
    let state = state_home();
    let out = cli(
        server.port,
        &service,
        "alice",
        &alice_pw,
        &state,
        &["subscriptions", "--json"],
    );
    let lines = json_lines(&out);
    assert!(lines.iter().any(|l| l["node"] == "control"), "{lines:?}");
}

/// The scripted service: a collection tree (leaves list their items, not nodes).
fn scripted_answer(iq: &str) -> String {
    use common::fake_server::attr;
    let node = attr(iq, "node");
    let items = |entries: &[(&str, &str)]| {
        let body = entries
            .iter()
            .map(|(n, name)| format!("<item jid='pubsub.localhost' node='{n}' name='{name}'/>"))
            .collect::<Vec<_>>()
            .concat();
        format!(
            "<iq type='result' id='ID' from='pubsub.localhost'><query xmlns='http://jabber.org/protocol/disco#items'>{body}</query></iq>"
        )
    };
    if iq.contains("disco#items") {
        match node.as_deref() {
            None => items(&[("top", "A collection"), ("leaf1", "Leaf one")]),
            Some("top") => items(&[("child1", "Child one"), ("child2", "Child two")]),
            Some("child2") => items(&[("grandchild", "Deep down")]),
            // A leaf lists its items (no node attribute): not children.
            Some(_) => "<iq type='result' id='ID' from='pubsub.localhost'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='pubsub.localhost' name='item-1'/></query></iq>".into(),
        }
    } else {
        "<iq type='error' id='ID' from='pubsub.localhost'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>".into()
    }
}

fn refusing_answer(_iq: &str) -> String {
    "<iq type='error' id='ID' from='pubsub.localhost'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>".into()
}

/// Run `nodes ARGS` against a scripted service answering with `answer`.
async fn nodes_at_scripted(answer: fn(&str) -> String, args: &[&str]) -> Output {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let buf = common::fake_server::login_bound(&mut sock).await;
        common::fake_server::serve_iqs(&mut sock, buf, answer).await;
    });
    let state = state_home();
    let mut all = vec!["nodes".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        cli(port, "pubsub.localhost", "alice", "pw", &state, &all)
    })
    .await
    .expect("runs");
    server.abort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_tree_is_listed_depth_first_and_a_refused_list_says_so() {
    let out = nodes_at_scripted(scripted_answer, &["--tree", "--json"]).await;
    let lines = json_lines(&out);
    let tree: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["node"].as_str().expect("node").to_owned(),
                l["depth"].as_u64().expect("depth"),
            )
        })
        .collect();
    assert_eq!(
        tree,
        [
            ("top".to_owned(), 0),
            ("child1".to_owned(), 1),
            ("child2".to_owned(), 1),
            ("grandchild".to_owned(), 2),
            ("leaf1".to_owned(), 0),
        ]
    );
    // Control: without --tree, only the root.
    let flat = nodes_at_scripted(scripted_answer, &["--json"]).await;
    assert_eq!(listed(&json_lines(&flat)), ["top", "leaf1"]);
    // Readable lines indent the tree.
    let plain = nodes_at_scripted(scripted_answer, &["--tree"]).await;
    assert!(
        stdout(&plain).contains("    grandchild  Deep down"),
        "{}",
        stdout(&plain)
    );

    let refused = nodes_at_scripted(refusing_answer, &[]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("pubsub.localhost does not list its nodes"),
        "{}",
        stderr(&refused)
    );
}
