//! Front ends without a terminal UI, on the same network core as the TUI.
//!
//! - `watch`: subscribe and print every event as one JSON object per line.
//! - `publish`: publish one item, print its id, exit.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::feed::FeedItem;
use crate::xmpp::protocol::SubState;
use crate::xmpp::{self, Command, ConnState, NetEvent};

fn item_json(kind: &str, item: &FeedItem) -> Value {
    json!({
        "kind": kind,
        "node": item.node,
        "id": item.id,
        "sender": item.sender,
        "time": item.time,
        "seq": item.seq.as_ref().map(|s| s.n),
        "session": item.seq.as_ref().map(|s| &s.session),
        "text": item.text,
        "format": item.format,
    })
}

/// The JSON lines for one event (a snapshot gives one line per item, then a summary).
pub fn event_json(ev: &NetEvent) -> Vec<Value> {
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
                              "lost": lost_total, "at": at.to_rfc3339()}),
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
            let reason = match state {
                SubState::Error(r) => Some(r.as_str()),
                _ => None,
            };
            let name = match state {
                SubState::Error(_) => "error".to_owned(),
                other => other.to_string(),
            };
            vec![json!({"kind": "subscription", "node": node, "state": name, "reason": reason})]
        }
        NetEvent::ResyncFailed {
            node,
            reason,
            unsupported,
        } => vec![
            json!({"kind": "resync_failed", "node": node, "reason": reason, "unsupported": unsupported}),
        ],
        NetEvent::PublishFailed { node, id, reason } => {
            vec![json!({"kind": "publish_failed", "node": node, "id": id, "reason": reason})]
        }
        NetEvent::RequestFailed { what, reason } => {
            vec![json!({"kind": "error", "what": what, "reason": reason})]
        }
        NetEvent::Dropped { total, reason } => {
            vec![json!({"kind": "dropped", "total": total, "reason": reason})]
        }
        NetEvent::ResyncStarted { .. }
        | NetEvent::PublishQueued { .. }
        | NetEvent::Published { .. }
        | NetEvent::AutoPublish { .. }
        | NetEvent::NodeCreated { .. }
        | NetEvent::Done { .. } => Vec::new(),
    }
}

/// `pubsub-tui watch`: print events until Ctrl-C (exit 0) or a final connection error (exit 1).
pub async fn watch(mut settings: Settings) -> anyhow::Result<()> {
    settings.session.auto_publish = false;
    let mut net = xmpp::spawn(settings.connect, settings.session);
    let mut failed = None;
    let stdout = std::io::stdout();
    loop {
        let ev = tokio::select! {
            ev = net.events.recv() => ev,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(ev) = ev else { break };
        if let NetEvent::Connection(ConnState::Failed { error }) = &ev {
            failed = Some(error.clone());
        }
        let mut out = stdout.lock();
        for line in event_json(&ev) {
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // The reader went away (a closed pipe): stop quietly.
                let _ = net.commands.try_send(Command::Shutdown);
                return Ok(());
            }
        }
    }
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(Duration::from_secs(2), net.task).await;
    match failed {
        Some(e) => bail!("connection failed: {e}"),
        None => Ok(()),
    }
}

/// How long `publish` waits for the whole exchange.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(45);

/// `pubsub-tui publish`: publish `text` (or stdin) to the one `--node`, print the item id.
pub async fn publish(mut settings: Settings, text: Option<String>) -> anyhow::Result<String> {
    let text = if let Some(t) = text {
        t
    } else {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the text from standard input")?;
        s
    };
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.trim().is_empty() {
        bail!("nothing to publish: the text is empty");
    }
    let [node] = settings.session.nodes.as_slice() else {
        bail!("publish takes exactly one --node");
    };
    let node = node.clone();
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
                NetEvent::PublishFailed { reason, .. } => {
                    bail!("publish to {node} failed: {reason}")
                }
                _ => {}
            }
        }
        bail!("the connection closed before the service answered")
    })
    .await
    .unwrap_or_else(|_| bail!("no answer within {} s", PUBLISH_TIMEOUT.as_secs()));
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(Duration::from_secs(2), net.task).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::gap::Lost;
    use crate::xmpp::SnapshotReason;

    #[test]
    fn watch_prints_gaps_lost_items_and_resyncs() {
        let gap = event_json(&NetEvent::Gap {
            node: "n".into(),
            sender: "alice@x/y".into(),
            from: 5,
            to: 6,
        });
        assert_eq!(
            gap,
            [json!({"kind": "gap", "node": "n", "sender": "alice@x/y", "from": 5, "to": 6})]
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T07:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let lines = event_json(&NetEvent::Snapshot {
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
        });
        assert_eq!(lines[0]["kind"], "lost");
        assert_eq!(lines[0]["count"], 30);
        assert_eq!(lines[0]["text"], "30 items from alice@x/y lost (seq 1–30)");
        assert_eq!(lines[1]["kind"], "resync");
        assert_eq!(lines[1]["reason"], "gap");
        assert_eq!(lines[1]["lost"], 30);
    }
}
