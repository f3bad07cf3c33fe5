//! Front ends without a terminal UI, on the same network core as the TUI.
//!
//! - `watch`: subscribe and print every event as one JSON object per line.
//! - `publish`: publish one item, print its id, exit.
//!
//! JSON lines carry the values whole (text, ids, the item's XML as received); only the TUI
//! cuts them to fit. Characters that could act on a terminal (C0 and C1 controls, bidi and
//! invisible format characters) are written as `\uXXXX` escapes, so printing a line as it
//! is cannot move the cursor or reorder text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::feed::FeedItem;
use crate::xmpp::error::{Op, RequestError, explain};
use crate::xmpp::proto::{self, SubState};
use crate::xmpp::{self, Command, ConnState, NetEvent};

/// One timestamp format for everything: RFC 3339 in UTC, with milliseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An item's own time: normalised when it is a full timestamp, else as it came (a Wokkel
/// item's `HH:MM:SS`).
fn item_time(item: &FeedItem) -> Option<String> {
    item.timestamp()
        .map(timestamp)
        .or_else(|| item.time.clone())
}

fn item_json(kind: &str, item: &FeedItem) -> Value {
    json!({
        "kind": kind,
        "node": item.node,
        "id": item.id,
        "sender": item.sender,
        "publisher": item.publisher,
        "forged": item.is_forged(),
        "time": item_time(item),
        "seq": item.seq.as_ref().map(|s| s.n),
        "session": item.seq.as_ref().map(|s| &s.session),
        "text": item.text,
        "format": item.format,
        "xml": item.xml,
    })
}

/// A JSON line with every terminal-active character escaped (serde escapes only C0).
pub fn json_line(v: &Value) -> String {
    let raw = v.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) || crate::sanitize::is_format_char(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON lines for one event (a snapshot gives one line per item, then a summary).
/// `service` is the service's JID, for the words of errors.
pub fn event_json(ev: &NetEvent, service: &str) -> Vec<Value> {
    match ev {
        NetEvent::Item(item) => vec![item_json("item", item)],
        NetEvent::Snapshot {
            node,
            items,
            reason,
            lost,
            at,
        } => {
            let mut lines: Vec<Value> = items.iter().map(|i| item_json("stored", i)).collect();
            lines.extend(lost.iter().map(|l| {
                json!({"kind": "lost", "node": node, "sender": l.sender, "session": l.session,
                       "from": l.from, "to": l.to, "count": l.count(), "text": l.to_string()})
            }));
            let lost_total: u64 = lost.iter().map(crate::feed::gap::Lost::count).sum();
            lines.push(
                json!({"kind": "resync", "node": node, "reason": reason, "count": items.len(),
                              "lost": lost_total, "at": timestamp(*at)}),
            );
            lines
        }
        NetEvent::Gap {
            node,
            sender,
            from,
            to,
        } => vec![json!({"kind": "gap", "node": node, "sender": sender, "from": from, "to": to})],
        NetEvent::ResyncProgress {
            node,
            received,
            total,
        } => vec![
            json!({"kind": "resync_progress", "node": node, "received": received, "total": total}),
        ],
        NetEvent::Retracted { node, id } => {
            vec![json!({"kind": "retract", "node": node, "id": id})]
        }
        NetEvent::Purged { node } => vec![json!({"kind": "purge", "node": node})],
        NetEvent::Deleted { node } => vec![json!({"kind": "delete", "node": node})],
        NetEvent::Connection(state) => {
            let name = match state {
                ConnState::Connecting { .. } => "connecting",
                ConnState::Retrying { .. } => "retrying",
                ConnState::Online { .. } => "online",
                ConnState::Suspended => "suspended",
                ConnState::Failed { .. } => "failed",
                ConnState::Closed => "closed",
            };
            vec![json!({"kind": "connection", "state": name, "detail": state.to_string()})]
        }
        NetEvent::Subscription { node, state } => {
            let reason = state
                .error()
                .map(|e| explain(e, Op::Subscribe, node, service));
            let retry_in = match state {
                SubState::Retrying { retry_in, .. } => Some(retry_in.as_secs_f64()),
                _ => None,
            };
            vec![
                json!({"kind": "subscription", "node": node, "state": state.name(),
                        "reason": reason, "retry_in": retry_in}),
            ]
        }
        NetEvent::ResyncFailed { node, error } => vec![json!({
            "kind": "resync_failed", "node": node,
            "reason": explain(error, Op::Retrieve, node, service),
            "unsupported": error.is_unsupported(),
        })],
        NetEvent::PublishFailed {
            node, id, error, ..
        } => vec![json!({"kind": "publish_failed", "node": node, "id": id,
                         "reason": explain(error, Op::Publish, node, service)})],
        NetEvent::RequestFailed {
            op,
            node,
            id,
            error,
        } => vec![
            json!({"kind": "error", "what": op.verb(), "node": node, "id": id,
                         "reason": explain(error, *op, node, service)}),
        ],
        NetEvent::StaleSubscriptionRemoved { node, jid } => {
            vec![json!({"kind": "stale_subscription_removed", "node": node, "jid": jid})]
        }
        NetEvent::Dropped { total, reason } => {
            vec![json!({"kind": "dropped", "total": total, "reason": reason})]
        }
        NetEvent::ResyncStarted { .. }
        | NetEvent::PublishSent { .. }
        | NetEvent::PublishRetrying { .. }
        | NetEvent::Published { .. }
        | NetEvent::AutoPublish { .. }
        | NetEvent::NodeCreated { .. }
        | NetEvent::Done { .. } => Vec::new(),
    }
}

/// How long a front end waits for the core to unsubscribe and close when it quits.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// `pubsub-tui watch`: print events until Ctrl-C or SIGTERM (exit 0), a final connection
/// error, or until no node can be subscribed (exit 1).
pub async fn watch(mut settings: Settings) -> anyhow::Result<()> {
    settings.session.auto_publish = false;
    let service = settings.session.service.to_string();
    let nodes = settings.session.nodes.clone();
    let mut net = xmpp::spawn(settings.connect, settings.session);
    let mut failed = None;
    let mut states: HashMap<String, SubState> = HashMap::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdout = std::io::stdout();
    loop {
        let ev = tokio::select! {
            ev = net.events.recv() => ev,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let Some(ev) = ev else { break };
        if let NetEvent::Connection(ConnState::Failed { error }) = &ev {
            failed = Some(format!("connection failed: {error}"));
        }
        if let NetEvent::Subscription { node, state } = &ev {
            states.insert(node.clone(), state.clone());
        }
        let mut out = stdout.lock();
        for line in event_json(&ev, &service) {
            if writeln!(out, "{}", json_line(&line))
                .and_then(|()| out.flush())
                .is_err()
            {
                // The reader went away (a closed pipe): stop quietly.
                let _ = net.commands.try_send(Command::Shutdown);
                return Ok(());
            }
        }
        drop(out);
        if failed.is_none()
            && let Some(why) = none_subscribable(&nodes, &states, &service)
        {
            failed = Some(why);
            break;
        }
    }
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(CLOSE_WAIT, net.task).await;
    match failed {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

/// When every node has failed for good (not for a lost connection, which says so itself):
/// why, node by node.
fn none_subscribable(
    nodes: &[String],
    states: &HashMap<String, SubState>,
    service: &str,
) -> Option<String> {
    let mut reasons = Vec::new();
    for node in nodes {
        match states.get(node) {
            Some(SubState::Failed(e)) if !matches!(e, RequestError::Connection(_)) => {
                reasons.push(format!(
                    "{node}: {}",
                    explain(e, Op::Subscribe, node, service)
                ));
            }
            _ => return None,
        }
    }
    Some(format!(
        "no node could be subscribed at {service}: {}",
        reasons.join("; ")
    ))
}

/// How long `publish` waits for the whole exchange.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(45);

/// `pubsub-tui publish`: publish `text` (or stdin) to the one `--node`, print the item id.
pub async fn publish(mut settings: Settings, text: Option<String>) -> anyhow::Result<String> {
    let text = if let Some(t) = text {
        t
    } else {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprintln!("pubsub-tui: reading the text to publish; end it with Ctrl-D");
        }
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the text from standard input")?;
        s
    };
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.trim().is_empty() {
        bail!("nothing to publish: the text is empty");
    }
    if let Err(why) = proto::check_text_size(&crate::sanitize::outgoing(&text)) {
        bail!(why);
    }
    let [node] = settings.session.nodes.as_slice() else {
        bail!(
            "publish takes exactly one --node (the config file names {})",
            settings.session.nodes.len()
        );
    };
    let node = node.clone();
    let service = settings.session.service.to_string();
    settings.session.subscribe = false;
    settings.session.auto_publish = false;
    settings.connect.max_attempts = Some(2);
    let mut net = xmpp::spawn(settings.connect, settings.session);
    let result = tokio::time::timeout(PUBLISH_TIMEOUT, async {
        let mut sent = false;
        while let Some(ev) = net.events.recv().await {
            match ev {
                NetEvent::Connection(ConnState::Online { .. }) if !sent => {
                    sent = true;
                    net.commands
                        .send(Command::Publish {
                            node: node.clone(),
                            text: text.clone(),
                        })
                        .await
                        .context("the network task ended")?;
                }
                NetEvent::Connection(ConnState::Failed { error }) => {
                    bail!("connection failed: {error}")
                }
                NetEvent::Published { id, .. } => return Ok(id),
                NetEvent::PublishFailed { error, .. } => {
                    bail!(
                        "publish to {node} failed: {}",
                        explain(&error, Op::Publish, &node, &service)
                    )
                }
                _ => {}
            }
        }
        bail!("the connection closed before the service answered")
    })
    .await
    .unwrap_or_else(|_| bail!("no answer within {} s", PUBLISH_TIMEOUT.as_secs()));
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(CLOSE_WAIT, net.task).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::gap::Lost;
    use crate::xmpp::SnapshotReason;

    #[test]
    fn watch_prints_gaps_lost_items_and_resyncs() {
        let gap = event_json(
            &NetEvent::Gap {
                node: "n".into(),
                sender: "alice@x/y".into(),
                from: 5,
                to: 6,
            },
            "pubsub.x",
        );
        assert_eq!(
            gap,
            [json!({"kind": "gap", "node": "n", "sender": "alice@x/y", "from": 5, "to": 6})]
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T07:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let lines = event_json(
            &NetEvent::Snapshot {
                node: "n".into(),
                items: Vec::new(),
                reason: SnapshotReason::Gap,
                lost: vec![Lost {
                    sender: "alice@x/y".into(),
                    session: "s1".into(),
                    from: 1,
                    to: 30,
                }],
                at,
            },
            "pubsub.x",
        );
        assert_eq!(lines[0]["kind"], "lost");
        assert_eq!(lines[0]["count"], 30);
        assert_eq!(lines[0]["text"], "30 items from alice@x/y lost (seq 1–30)");
        assert_eq!(lines[1]["kind"], "resync");
        assert_eq!(lines[1]["reason"], "gap");
        assert_eq!(lines[1]["lost"], 30);
        assert_eq!(lines[1]["at"], "2026-11-24T07:00:00.000Z");
    }

    #[test]
    fn json_carries_whole_values_and_escapes_terminal_controls() {
        let xml = "<item xmlns='http://jabber.org/protocol/pubsub' id='i'><reading xmlns='urn:x'><lat>45.44</lat><lon>12.33</lon></reading></item>";
        let el: xmpp_parsers::minidom::Element = xml.parse().expect("xml");
        let mut item = proto::parse_item("n", &el);
        item.text = format!("{}\nline two \u{9b}31m \u{202e}", "x".repeat(10_000));
        item.id = Some("i".repeat(1000));
        let line = json_line(&item_json("item", &item));
        assert!(
            line.contains("\\u009b") && line.contains("\\u202e"),
            "escaped"
        );
        assert!(!line.contains('\u{9b}') && !line.contains('\u{202e}'));
        let back: Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(back["text"], item.text.as_str(), "the whole text, exactly");
        assert_eq!(back["id"].as_str().map(str::len), Some(1000));
        assert!(
            back["xml"]
                .as_str()
                .is_some_and(|x| x.contains("<lat>45.44</lat><lon>12.33</lon>")),
            "{back}"
        );
    }
}
