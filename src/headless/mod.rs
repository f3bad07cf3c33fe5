//! Front ends without a terminal UI, on the same network core as the TUI.
//!
//! - `watch`: subscribe and print every event as one JSON object per line.
//! - `publish`: publish one item, print its id, exit.
//! - `nodes`, `info`, `items`, `subscribe`, `unsubscribe`, `subscriptions`: one request (or a
//!   few pages) each, printed as readable lines or, with `--json`, one object per line.
//!
//! - `node …` and `retract`: the owner's requests ([`owner`]).
//!
//! JSON lines carry the values whole (text, ids, the item's XML as received); only the TUI
//! cuts them to fit. Characters that could act on a terminal (C0 and C1 controls, bidi and
//! invisible format characters) are written as `\uXXXX` escapes, so printing a line as it
//! is cannot move the cursor or reorder text.

pub mod owner;
pub mod transfer;

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::feed::FeedItem;
use crate::xmpp::error::{Op, RequestError, explain};
use crate::xmpp::proto::{self, SubState, disco};
use xmpp_parsers::jid::Jid;

use crate::xmpp::{self, Answer, Command, ConnState, NetEvent, NetHandle, NodeKey, RequestId};

/// One timestamp format for everything: RFC 3339 in UTC, with milliseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

use crate::feed::export::item_time;

pub use crate::feed::export::json_line;

fn connection_json(state: &ConnState) -> Value {
    let name = match state {
        ConnState::Connecting { .. } => "connecting",
        ConnState::Retrying { .. } => "retrying",
        ConnState::Online { .. } => "online",
        ConnState::Suspended => "suspended",
        ConnState::Failed { .. } => "failed",
        ConnState::Closed => "closed",
    };
    let mut v = json!({"kind": "connection", "state": name, "detail": state.to_string(),
                       "at": timestamp(Utc::now())});
    if let ConnState::Online {
        server: Some(server),
        ..
    }
    | ConnState::Connecting {
        server: Some(server),
        ..
    } = state
    {
        v["server"] = json!(server);
    }
    v
}

/// The lines after a snapshot's items: one per run of lost items, then the summary.
fn snapshot_end(
    node: &str,
    count: usize,
    reason: crate::xmpp::SnapshotReason,
    lost: &[crate::feed::gap::Lost],
    at: DateTime<Utc>,
) -> Vec<Value> {
    let mut lines: Vec<Value> = lost
        .iter()
        .map(|l| {
            json!({"kind": "lost", "node": node, "sender": l.sender, "session": l.session,
                   "from": l.from, "to": l.to, "count": l.count(), "text": l.to_string()})
        })
        .collect();
    let lost_total = crate::feed::gap::Lost::total(lost);
    lines.push(
        json!({"kind": "resync", "node": node, "reason": reason, "count": count,
                      "lost": lost_total, "at": timestamp(at)}),
    );
    lines
}

/// The JSON lines for one event (a snapshot gives one line per item, then a summary).
/// `service` is the service's JID, for the words of errors.
/// Only the items that match `filter` are written (the other events whole). Items are written
/// straight into `out` ([`crate::feed::export::push_item_line`]), the rest through a
/// `serde_json::Value`.
pub fn push_event_lines(
    out: &mut String,
    ev: &NetEvent,
    service: &str,
    filter: Option<&crate::feed::filter::Filter>,
) {
    let wanted = |i: &FeedItem| filter.is_none_or(|f| f.matches(i));
    let mut items = |kind: &str, items: &[FeedItem]| {
        for item in items.iter().filter(|i| wanted(i)) {
            crate::feed::export::push_item_line(out, kind, item);
            out.push('\n');
        }
    };
    let rest = match ev {
        NetEvent::Item(item) => {
            items("item", std::slice::from_ref(item));
            return;
        }
        NetEvent::Snapshot {
            items: list,
            reason: crate::xmpp::SnapshotReason::Cached,
            ..
        } => {
            items("cached", list);
            return;
        }
        NetEvent::Snapshot {
            node,
            items: list,
            reason,
            lost,
            at,
        } => {
            items("stored", list);
            snapshot_end(node, list.len(), *reason, lost, *at)
        }
        _ => other_event_json(ev, service),
    };
    for line in rest {
        out.push_str(&json_line(&line));
        out.push('\n');
    }
}

/// The JSON lines of an event that carries no items.
fn other_event_json(ev: &NetEvent, service: &str) -> Vec<Value> {
    match ev {
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
        NetEvent::Deleted { node, redirect } => {
            vec![json!({"kind": "delete", "node": node, "redirect": redirect})]
        }
        NetEvent::Connection(state) => vec![connection_json(state)],
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
        NetEvent::AutoPublishFailed { node, id, error } => {
            vec![json!({"kind": "publish_failed", "node": node, "id": id,
                         "reason": explain(error, Op::Publish, node, service)})]
        }
        NetEvent::AuthorizationRequest { node, jid, subid } => {
            vec![json!({"kind": "authorization_request", "node": node, "jid": jid, "subid": subid})]
        }
        NetEvent::StaleSubscriptionRemoved { node, jid } => {
            vec![json!({"kind": "stale_subscription_removed", "node": node, "jid": jid})]
        }
        NetEvent::Dropped { total, reason } => {
            vec![json!({"kind": "dropped", "total": total, "reason": reason})]
        }
        NetEvent::Store(text) => vec![json!({"kind": "cache", "text": text})],
        NetEvent::Incremental {
            node,
            kept,
            fetched,
            dropped,
        } => vec![json!({"kind": "incremental", "node": node, "kept": kept,
                         "fetched": fetched, "dropped": dropped})],
        // Items are written apart; watch asks nothing, so no reply is its own.
        NetEvent::Item(_)
        | NetEvent::Snapshot { .. }
        | NetEvent::ResyncStarted { .. }
        | NetEvent::PublishSent { .. }
        | NetEvent::PublishRetrying { .. }
        | NetEvent::AutoPublished { .. }
        | NetEvent::AutoPublish { .. }
        | NetEvent::Reply { .. } => Vec::new(),
    }
}

/// Start the network core with the store `settings` name (none with `--no-cache`): the
/// handle, and what to tell the user about the store.
pub fn start(settings: Settings) -> (NetHandle, Option<String>) {
    let (store, notice) = crate::cache::open(
        settings.cache.as_ref(),
        settings.session.service.as_str(),
        &settings.session.publisher_session,
    );
    let net = xmpp::task::spawn_with_store(settings.connect, settings.session, store);
    (net, notice)
}

/// The bytes of JSON lines `watch` gathers from the events at hand before it writes them.
const OUT_BATCH: usize = 64 * 1024;

/// How long a front end waits for the core to unsubscribe and close when it quits.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// `pubsub-tui watch`: print events until Ctrl-C or SIGTERM (exit 0), a final connection
/// error, or until no node can be subscribed (exit 1).
pub async fn watch(
    mut settings: Settings,
    filter: Option<crate::feed::filter::Filter>,
    cached: bool,
) -> anyhow::Result<()> {
    settings.session.auto_publish = false;
    let service = settings.session.service.to_string();
    let nodes = settings.session.nodes.clone();
    let (mut net, notice) = start(settings);
    if let Some(notice) = notice {
        let line = json!({"kind": "cache", "text": notice});
        let _ = writeln!(std::io::stdout(), "{}", json_line(&line));
    }
    let mut failed = None;
    let mut states: HashMap<String, SubState> = HashMap::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The lines of every event at hand go out in one write: a flood costs a write per batch,
    // not per line, and a lone event still goes out at once.
    let mut out = String::with_capacity(OUT_BATCH);
    loop {
        let ev = tokio::select! {
            ev = net.events.recv() => ev,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let Some(first) = ev else { break };
        let mut at_hand = Some(first);
        let mut end = false;
        while let Some(ev) = at_hand.take() {
            if let NetEvent::Connection(ConnState::Failed { error }) = &ev {
                failed = Some(format!("connection failed: {error}"));
            }
            if let NetEvent::Subscription { node, state } = &ev {
                states.insert(node.clone(), state.clone());
            }
            let shown = cached
                || !matches!(
                    &ev,
                    NetEvent::Snapshot {
                        reason: crate::xmpp::SnapshotReason::Cached,
                        ..
                    }
                );
            if shown {
                push_event_lines(&mut out, &ev, &service, filter.as_ref());
            }
            if failed.is_none()
                && let Some(why) = none_subscribable(&nodes, &states, &service)
            {
                failed = Some(why);
                end = true;
                break;
            }
            if out.len() < OUT_BATCH {
                at_hand = net.events.try_recv().ok();
            }
        }
        // A blocking write on the one thread: a reader that stalls (a paused pager) holds
        // up the network core too, as a full event queue did before. A hop to another
        // thread per batch would cost what the current-thread runtime saves.
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            let _ = net.commands.try_send(Command::Shutdown);
            // The reader went away (a closed pipe): stop quietly. Anything else (a full
            // disk) loses lines: say so, and fail.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            bail!("cannot write to standard output: {e}");
        }
        out.clear();
        if end {
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

/// What `publish` was given besides the text.
#[derive(Debug, Clone, Default)]
pub struct PublishExtra {
    /// The item's id (replacing an item with it).
    pub id: Option<String>,
    /// A file with the payload (`-`: standard input).
    pub xml: Option<std::path::PathBuf>,
    /// Publish-options (var, value).
    pub options: Vec<(String, String)>,
    /// Keep the item in the outbox when the service cannot be reached.
    pub queue: bool,
}

/// The `<item/>` for `--xml FILE`: the file's element as the payload, or, when it is an
/// `<item/>` itself, its payload and (unless `id` is given) its id.
pub fn item_from_xml(
    path: &std::path::Path,
    id: Option<&str>,
) -> anyhow::Result<xmpp_parsers::minidom::Element> {
    let limit = proto::MAX_ITEM_XML_BYTES;
    let too_big = |len: usize| {
        anyhow::anyhow!(
            "{}: {len} bytes or more; an item is at most {limit} bytes of XML",
            path.display()
        )
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), limit as u64 + 1),
            &mut bytes,
        )
        .context("reading the XML from standard input")?;
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        // Not read whole when it is too big.
        let len = file.metadata().map_or(0, |m| m.len());
        if len > limit as u64 {
            return Err(too_big(usize::try_from(len).unwrap_or(usize::MAX)));
        }
        std::io::Read::read_to_end(&mut std::io::Read::take(file, limit as u64 + 1), &mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if bytes.len() > limit {
        return Err(too_big(bytes.len()));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("reading {}: it is not UTF-8 text", path.display()))?;
    let root =
        proto::parse_payload(&text).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    let (payload, own_id) = if root.name() == "item" {
        let mut children = root.children();
        let Some(payload) = children.next() else {
            bail!("{}: the <item/> holds no payload element", path.display());
        };
        if children.next().is_some() {
            bail!(
                "{}: an item holds one payload element, this one more",
                path.display()
            );
        }
        (payload.clone(), root.attr("id").map(str::to_owned))
    } else {
        (root, None)
    };
    Ok(proto::item::item_with(
        id.map(str::to_owned).or(own_id).as_deref(),
        payload,
    ))
}

/// `pubsub-tui publish`: publish `text` (or stdin) to the one `--node`, print the item id.
/// With an id, a payload file or publish-options, the item is sent as given (a text gets our
/// payload without a sequence number).
pub async fn publish(
    settings: Settings,
    text: Option<String>,
    extra: PublishExtra,
) -> anyhow::Result<String> {
    let given = if let Some(path) = &extra.xml {
        Some(item_from_xml(path, extra.id.as_deref())?)
    } else {
        None
    };
    let text = if given.is_some() {
        String::new()
    } else {
        text_to_publish(text)?
    };
    let [node] = settings.session.nodes.as_slice() else {
        bail!(
            "publish takes exactly one --node (the config file names {})",
            settings.session.nodes.len()
        );
    };
    let node = node.clone();
    let key = NodeKey::new(&settings.session.service, node.clone());
    let service = settings.session.service.to_string();
    let mut settings = one_shot_settings(settings);
    let (store, notice) = crate::cache::open(
        settings.cache.as_ref(),
        settings.session.service.as_str(),
        &settings.session.publisher_session,
    );
    if let Some(notice) = notice {
        eprintln!("pubsub-tui: cache: {notice}");
    }
    // Without a store, nothing can be kept: --queue cannot keep its promise.
    let queue = extra.queue && store.keeps_items();
    if extra.queue && !queue {
        eprintln!(
            "pubsub-tui: --queue: there is no cache this run, so the item is not kept if the \
             service cannot be reached"
        );
    }
    settings.session.keep_unsent = queue;
    let mut net = xmpp::task::spawn_with_store(settings.connect, settings.session, store);
    let mut left = Leftovers::default();
    let mut sender = String::new();
    if queue {
        // Asked at once: offline, they wait in the outbox (and in the store, for a later
        // run, when the connection fails for good).
        left.ask(&mut net, &node).await;
    } else {
        match wait_online(&mut net).await {
            Ok(jid) => sender = jid,
            Err(e) => {
                close(net).await;
                return Err(e);
            }
        }
        left.ask(&mut net, &node).await;
    }
    let as_given = given.or_else(|| {
        (extra.id.is_some() || !extra.options.is_empty()).then(|| {
            proto::item::text_item(extra.id.as_deref(), &sender, chrono::Utc::now(), &text)
        })
    });
    let (result, queued_id) = match as_given {
        Some(item) => {
            let options = extra.options;
            let r = net
                .request(
                    |req| Command::PublishItem {
                        req,
                        node: key,
                        item,
                        options,
                    },
                    |ev| left.note(&ev),
                )
                .await;
            (r, None)
        }
        None => publish_text(&mut net, key, text, &mut left).await,
    };
    left.wait(&mut net).await;
    close(net).await;
    left.report();
    match result {
        Ok(Answer::Published { id, .. }) => Ok(id),
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(error @ RequestError::Connection(_)) if queue && queued_id.is_some() => {
            let id = queued_id.unwrap_or_default();
            eprintln!(
                "pubsub-tui: not published now ({}); {id} is kept, and the next run of this \
                 account that publishes to {node} (publish, or the TUI) sends it",
                explain(&error, Op::Publish, &node, &service)
            );
            Ok(id)
        }
        Err(error) => bail!(
            "publish to {node} failed: {}",
            explain(&error, Op::Publish, &node, &service)
        ),
    }
}

/// The text to publish: given, or read from standard input; checked.
fn text_to_publish(text: Option<String>) -> anyhow::Result<String> {
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
    Ok(text)
}

/// Publish a text item of ours: the answer, and the item's id (known also when it was only
/// queued).
async fn publish_text(
    net: &mut NetHandle,
    key: NodeKey,
    text: String,
    left: &mut Leftovers,
) -> (Result<Answer, RequestError>, Option<String>) {
    let mut id = None;
    let r = net
        .request(
            |req| Command::Publish {
                req,
                node: key,
                text,
            },
            |ev| {
                if let NetEvent::PublishSent {
                    req: Some(_),
                    id: i,
                    ..
                } = &ev
                {
                    id = Some(i.clone());
                }
                left.note(&ev);
            },
        )
        .await;
    (r, id)
}

/// The items earlier runs left unsent, sent by a one-shot `publish`: which they are, and which
/// the service has confirmed.
#[derive(Debug, Default)]
struct Leftovers {
    ids: Vec<String>,
    texts: HashMap<String, String>,
    done: Vec<String>,
    failed: Vec<(String, String)>,
    /// Not sent: the connection failed (they stay in the store).
    waiting: Vec<String>,
}

impl Leftovers {
    async fn ask(&mut self, net: &mut NetHandle, node: &str) {
        let node = Some(node.to_owned());
        let mut early = Vec::new();
        if let Ok(Answer::Leftovers(ids)) = net
            .request(
                |req| Command::SendLeftovers { req, node },
                |ev| early.push(ev),
            )
            .await
        {
            for (_, id, text) in ids {
                self.ids.push(id.clone());
                self.texts.insert(id, text);
            }
        }
        for ev in early {
            self.note(&ev);
        }
    }

    fn note(&mut self, ev: &NetEvent) {
        match ev {
            NetEvent::AutoPublished { id, .. } if self.ids.contains(id) => {
                self.done.push(id.clone());
            }
            NetEvent::AutoPublishFailed {
                id,
                error: RequestError::Connection(_),
                ..
            } if self.ids.contains(id) => self.waiting.push(id.clone()),
            NetEvent::AutoPublishFailed { id, error, node } if self.ids.contains(id) => {
                self.failed
                    .push((id.clone(), explain(error, Op::Publish, node, "the service")));
            }
            _ => {}
        }
    }

    fn pending(&self) -> bool {
        self.done.len() + self.failed.len() + self.waiting.len() < self.ids.len()
    }

    /// Wait (a while) for the service's word on each.
    async fn wait(&mut self, net: &mut NetHandle) {
        let deadline = tokio::time::Instant::now() + ONE_SHOT_TIMEOUT;
        while self.pending() {
            match tokio::time::timeout_at(deadline, net.events.recv()).await {
                Ok(
                    Some(NetEvent::Connection(ConnState::Failed { .. } | ConnState::Closed)) | None,
                )
                | Err(_) => return,
                Ok(Some(ev)) => self.note(&ev),
            }
        }
    }

    fn report(&self) {
        if self.ids.is_empty() {
            return;
        }
        if !self.done.is_empty() {
            eprintln!(
                "pubsub-tui: also published {} left unsent by an earlier run: {}",
                crate::feed::render::plural(self.done.len(), "item"),
                self.done.join(", ")
            );
        }
        for (id, why) in &self.failed {
            // The text is said: it is not kept anywhere any more.
            let text = self.texts.get(id).map_or("", String::as_str);
            eprintln!(
                "pubsub-tui: {id}, left unsent by an earlier run, failed: {why}; its text was: {}",
                crate::sanitize::display(text)
            );
        }
        let waiting = self.ids.len() - self.done.len() - self.failed.len();
        if waiting > 0 {
            eprintln!(
                "pubsub-tui: {} left by an earlier run still waiting: the next run sends {}",
                crate::feed::render::plural(waiting, "item"),
                if waiting == 1 { "it" } else { "them" }
            );
        }
    }
}

/// A one-shot run's settings: no subscriptions, no auto-publish, two connection attempts.
fn one_shot_settings(mut settings: Settings) -> Settings {
    settings.session.subscribe = false;
    settings.session.auto_publish = false;
    settings.session.nodes.clear();
    settings.connect.max_attempts = Some(2);
    settings
}

/// Wait for the session to be online: its JID, or why it could not connect.
async fn wait_online(net: &mut NetHandle) -> anyhow::Result<String> {
    tokio::time::timeout(ONE_SHOT_TIMEOUT, async {
        loop {
            match net.events.recv().await {
                Some(NetEvent::Connection(ConnState::Online { jid, .. })) => return Ok(jid),
                Some(NetEvent::Connection(ConnState::Failed { error })) => {
                    bail!("connection failed: {error}")
                }
                Some(_) => {}
                None => bail!("the connection closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| bail!("no connection within {} s", ONE_SHOT_TIMEOUT.as_secs()))
}

/// How long a one-shot command waits for the whole exchange.
const ONE_SHOT_TIMEOUT: Duration = Duration::from_secs(45);

/// Connect for a one-shot command (no subscriptions, no auto-publish, two connection
/// attempts) and wait until the session is online; the JID it is bound to.
pub(crate) async fn connect_once(mut settings: Settings) -> anyhow::Result<(NetHandle, String)> {
    // A query keeps nothing between runs.
    settings.cache = None;
    let (mut net, _) = start(one_shot_settings(settings));
    match wait_online(&mut net).await {
        Ok(jid) => Ok((net, jid)),
        Err(e) => {
            close(net).await;
            Err(e)
        }
    }
}

/// End a one-shot session: close the stream and wait (a little) for it.
pub(crate) async fn close(net: NetHandle) {
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(CLOSE_WAIT, net.task).await;
}

/// A one-shot query or change at the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The service's nodes (recursing into collections with `tree`).
    Nodes { tree: bool },
    /// The service's (or a node's) identity, features and meta-data.
    Info { node: Option<String> },
    /// A node's stored items (the newest `max`), as lines or in an export format.
    Items {
        node: String,
        max: Option<u64>,
        format: Option<crate::feed::export::Format>,
    },
    /// Subscribe the account.
    Subscribe { node: String },
    /// Remove the account's subscription.
    Unsubscribe { node: String },
    /// The account's subscriptions.
    Subscriptions,
    /// An owner's request, or a retract.
    Node(owner::NodeQuery),
}

/// Collections deeper than this are not listed (a bound against a service that loops).
const MAX_TREE_DEPTH: usize = 16;
/// Pages of one node list followed at most.
const MAX_LIST_PAGES: usize = 200;

/// Where a query's lines go: readable text, or one JSON object per line.
struct Printer {
    json: bool,
    out: std::io::Stdout,
}

impl Printer {
    fn line(&mut self, text: &str, v: &Value) -> anyhow::Result<()> {
        let mut out = self.out.lock();
        if self.json {
            writeln!(out, "{}", json_line(v))?;
        } else {
            writeln!(out, "{text}")?;
        }
        out.flush()?;
        Ok(())
    }

    /// An item: its readable line, or its JSON line of `kind`.
    fn item(&mut self, kind: &str, item: &FeedItem) -> anyhow::Result<()> {
        let mut out = self.out.lock();
        if self.json {
            let mut line = String::new();
            crate::feed::export::push_item_line(&mut line, kind, item);
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", item_line(item))?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Run a [`Query`] and print its result; `Err` (exit 1) says in plain words what failed.
/// `state` records what `subscribe` and `unsubscribe` change, for the TUI's next start.
pub async fn query(
    settings: Settings,
    q: Query,
    json: bool,
    state: Option<crate::state::FollowState>,
) -> anyhow::Result<()> {
    let service = settings.session.service.clone();
    let (mut net, _) = connect_once(settings).await?;
    let mut p = Printer {
        json,
        out: std::io::stdout(),
    };
    let result = if let Query::Node(nq) = &q {
        // Each request has the core's answer timeout; a confirmation waits for the user.
        owner::run(&mut net, nq, &service, &mut p).await
    } else {
        tokio::time::timeout(
            ONE_SHOT_TIMEOUT * 4,
            run_query(&mut net, &q, &service, &mut p),
        )
        .await
        .unwrap_or_else(|_| bail!("no answer within {} s", ONE_SHOT_TIMEOUT.as_secs() * 4))
    };
    close(net).await;
    if let Err(e) = &result
        && e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    {
        // The reader went away (`| head`): what it wanted it has.
        return Ok(());
    }
    result?;
    let change = match &q {
        Query::Subscribe { node } => Some((node, true)),
        Query::Unsubscribe { node } => Some((node, false)),
        _ => None,
    };
    if let (Some((node, follow)), Some(state)) = (change, state) {
        state
            .record(node, follow)
            .context("done at the service, but the TUI's list of followed nodes was not changed")?;
    }
    Ok(())
}

async fn ask(
    net: &mut NetHandle,
    make: impl FnOnce(RequestId) -> Command,
    op: Op,
    node: &str,
    service: &str,
) -> anyhow::Result<Answer> {
    net.request(make, drop)
        .await
        .map_err(|e| anyhow::anyhow!(explain(&e, op, node, service)))
}

async fn run_query(
    net: &mut NetHandle,
    q: &Query,
    service: &Jid,
    p: &mut Printer,
) -> anyhow::Result<()> {
    match q {
        Query::Nodes { tree } => list_nodes(net, *tree, service, p).await,
        Query::Info { node } => {
            let n = node.clone();
            let answer = ask(
                net,
                |req| Command::Info {
                    req,
                    service: service.clone(),
                    node: n,
                },
                Op::Info,
                node.as_deref().unwrap_or(""),
                service.as_str(),
            )
            .await?;
            let Answer::Info(info) = answer else {
                bail!("unexpected answer: {answer:?}")
            };
            print_info(&info, service.as_str(), p)
        }
        Query::Items { node, max, format } => {
            let (n, max) = (node.clone(), *max);
            let answer = ask(
                net,
                |req| Command::Items {
                    req,
                    node: NodeKey::new(service, n),
                    max,
                },
                Op::Retrieve,
                node,
                service.as_str(),
            )
            .await?;
            let Answer::Items { items, .. } = answer else {
                bail!("unexpected answer: {answer:?}")
            };
            if let Some(format) = format {
                let mut out = p.out.lock();
                let (_, skipped) =
                    crate::feed::export::write_items(&mut out, node, &items, *format)?;
                out.flush()?;
                let altered = crate::feed::export::altered(&items);
                if altered > 0 {
                    eprintln_quiet(&format!(
                        "{altered} item(s) had hidden characters (controls, bidi) removed where \
                         they came in; the export has them without"
                    ));
                }
                if skipped > 0 {
                    bail!(
                        "{skipped} item(s) were left out of the export: only partly kept here (nested \
                         too deep, or too big; see the README's Limits), and publishing what is left \
                         would change them"
                    );
                }
                return Ok(());
            }
            for item in &items {
                p.item("stored", item)?;
            }
            if !p.json && items.is_empty() {
                eprintln_quiet(&format!("{node} at {service} has no stored items"));
            }
            Ok(())
        }
        Query::Subscribe { node } => subscribe(net, node, service, p).await,
        Query::Unsubscribe { node } => {
            let n = node.clone();
            let answer = ask(
                net,
                |req| Command::Unsubscribe {
                    req,
                    node: NodeKey::new(service, n),
                },
                Op::Unsubscribe,
                node,
                service.as_str(),
            )
            .await?;
            let Answer::Unsubscribed { node, jid } = answer else {
                bail!("unexpected answer: {answer:?}")
            };
            p.line(
                &format!("unsubscribed {jid} from {node} at {service}"),
                &json!({"kind": "unsubscribed", "node": node, "jid": jid}),
            )
        }
        Query::Subscriptions => subscriptions(net, service, p).await,
        Query::Node(nq) => owner::run(net, nq, service, p).await,
    }
}

/// `subscriptions`: the account's subscriptions at the service, one per line.
async fn subscriptions(net: &mut NetHandle, service: &Jid, p: &mut Printer) -> anyhow::Result<()> {
    let answer = ask(
        net,
        |req| Command::Subscriptions {
            req,
            service: service.clone(),
        },
        Op::Subscriptions,
        "",
        service.as_str(),
    )
    .await?;
    let Answer::Subscriptions(list) = answer else {
        bail!("unexpected answer: {answer:?}")
    };
    for s in &list {
        let subid = subid_note(s.subid.as_deref());
        p.line(
            &format!("{}  {}  {}{subid}", s.node, s.jid, s.state),
            &json!({"kind": "subscription", "node": s.node, "jid": s.jid,
                    "state": s.state, "subid": s.subid}),
        )?;
    }
    if !p.json && list.is_empty() {
        eprintln_quiet(&format!("no subscriptions at {service}"));
    }
    Ok(())
}

/// `subscribe`: the account's subscription, in words that say what its state means.
async fn subscribe(
    net: &mut NetHandle,
    node: &str,
    service: &Jid,
    p: &mut Printer,
) -> anyhow::Result<()> {
    let n = node.to_owned();
    let answer = ask(
        net,
        |req| Command::Subscribe {
            req,
            node: NodeKey::new(service, n),
        },
        Op::Subscribe,
        node,
        service.as_str(),
    )
    .await?;
    let Answer::Subscribed { node, jid, state } = answer else {
        bail!("unexpected answer: {answer:?}")
    };
    let text = match state {
        SubState::Pending => {
            format!("asked to subscribe {jid} to {node} at {service}: the owner must approve it")
        }
        SubState::Unconfigured => format!(
            "subscribed {jid} to {node} at {service}; the service wants the subscription configured"
        ),
        _ => format!("subscribed {jid} to {node} at {service}"),
    };
    p.line(
        &text,
        &json!({"kind": "subscribed", "node": node, "jid": jid, "state": state.name()}),
    )
}

/// `  (subid X)` after a subscription, when it has an id.
fn subid_note(subid: Option<&str>) -> String {
    subid.map(|i| format!("  (subid {i})")).unwrap_or_default()
}

/// A note for a person on stderr (stdout stays the data).
fn eprintln_quiet(text: &str) {
    let _ = writeln!(std::io::stderr(), "pubsub-tui: {text}");
}

/// One readable line for a stored item.
fn item_line(item: &FeedItem) -> String {
    let time = item_time(item).unwrap_or_else(|| "-".into());
    let who = item.publisher().or(item.sender()).unwrap_or("-");
    let text = crate::sanitize::display(&item.text().replace('\n', " ⏎ "));
    format!(
        "{time}  {}  {}  {text}",
        item.id().unwrap_or("-"),
        crate::sanitize::display(who)
    )
}

/// Every page of the list under `parent` (`None`: the root): its new nodes, and whether the
/// service seems to have cut it. `None` when a node below the root will not list (a leaf).
async fn list_pages(
    net: &mut NetHandle,
    parent: Option<&str>,
    service: &Jid,
    seen: &mut std::collections::HashSet<String>,
) -> anyhow::Result<Option<(Vec<disco::Listed>, bool)>> {
    let mut after: Option<String> = None;
    let mut listed: Vec<disco::Listed> = Vec::new();
    let mut cut = false;
    for _ in 0..MAX_LIST_PAGES {
        let (par, aft) = (parent.map(str::to_owned), after.clone());
        let answer = ask(
            net,
            |req| Command::ListNodes {
                req,
                service: service.clone(),
                parent: par,
                after: aft,
            },
            Op::ListNodes,
            parent.unwrap_or(""),
            service.as_str(),
        )
        .await;
        let answer = match answer {
            Ok(a) => a,
            // A leaf (or a node whose listing is refused) below the root: no children.
            Err(_) if parent.is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Answer::Nodes(page) = answer else {
            bail!("unexpected answer: {answer:?}")
        };
        let before = listed.len();
        // Entries without a node are a leaf's items, not nodes; a node seen before (a
        // service that loops) is not listed again.
        listed.extend(
            page.items
                .iter()
                .filter(|i| i.node.as_ref().is_some_and(|n| seen.insert(n.clone())))
                .cloned(),
        );
        cut = page.page.is_none() && disco::looks_cut(page.items.len());
        match page.next_after(listed.len()) {
            Some(last) if listed.len() > before => after = Some(last),
            _ => break,
        }
    }
    Ok(Some((listed, cut)))
}

/// All nodes, page by page, into collections with `tree` (depth first).
async fn list_nodes(
    net: &mut NetHandle,
    tree: bool,
    service: &Jid,
    p: &mut Printer,
) -> anyhow::Result<()> {
    // Depth first: a node's line, then its subtree, then its next sibling.
    enum Work {
        List(Option<String>, usize),
        Print(disco::Listed, Option<String>, usize),
    }
    let mut stack = vec![Work::List(None, 0)];
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    while let Some(work) = stack.pop() {
        let (parent, depth) = match work {
            Work::List(parent, depth) => (parent, depth),
            Work::Print(entry, parent, depth) => {
                let Some(node) = entry.node.clone() else {
                    continue;
                };
                total += 1;
                let name = entry.name.clone().filter(|n| *n != node);
                let text = format!(
                    "{}{node}{}",
                    "  ".repeat(depth),
                    name.as_deref()
                        .map(|n| format!("  {n}"))
                        .unwrap_or_default()
                );
                p.line(
                    &text,
                    &json!({"kind": "node", "node": node, "name": name, "parent": parent,
                            "depth": depth}),
                )?;
                if tree && depth + 1 < MAX_TREE_DEPTH {
                    stack.push(Work::List(Some(node), depth + 1));
                }
                continue;
            }
        };
        let Some((listed, cut)) = list_pages(net, parent.as_deref(), service, &mut seen).await?
        else {
            continue;
        };
        if cut {
            let listed_under = parent
                .as_deref()
                .map_or_else(|| "its root".to_owned(), |n| format!("'{n}'"));
            let text = format!(
                "{service} stopped its list of {listed_under} at {} nodes; there may be more \
                 (ejabberd lists at most 100: see max_nodes_discoitems)",
                disco::CUT_AT
            );
            if p.json {
                p.line(
                    "",
                    &json!({"kind": "cut", "parent": parent, "listed": disco::CUT_AT}),
                )?;
            } else {
                eprintln_quiet(&text);
            }
        }
        stack.extend(
            listed
                .into_iter()
                .rev()
                .map(|entry| Work::Print(entry, parent.clone(), depth)),
        );
    }
    if !p.json && total == 0 {
        eprintln_quiet(&format!("{service} lists no nodes"));
    }
    Ok(())
}

fn print_info(info: &disco::Info, service: &str, p: &mut Printer) -> anyhow::Result<()> {
    let features = disco::pubsub_features(&info.features);
    if p.json {
        return p.line(
            "",
            &json!({
                "kind": "info",
                "service": service,
                "node": info.node,
                "identities": info.identities.iter().map(|i| json!({
                    "category": i.category, "type": i.kind, "name": i.name})).collect::<Vec<_>>(),
                "features": info.features,
                // A service's features against XEP-0060; a node's answer has none to set.
                "pubsub_features": info.node.is_none().then(|| features.iter().map(|(name, state)| json!({
                    "feature": name, "state": state.name()})).collect::<Vec<_>>()),
                "meta": info.meta.as_ref().map(disco::NodeMeta::to_json),
            }),
        );
    }
    let mut lines = Vec::new();
    match &info.node {
        Some(n) => lines.push(format!("node {n} at {service}")),
        None => lines.push(format!("service {service}")),
    }
    for i in &info.identities {
        lines.push(format!(
            "  identity: {}/{}{}",
            i.category,
            i.kind,
            i.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ));
    }
    if let Some(meta) = &info.meta {
        for (label, value) in meta.fields() {
            lines.push(format!("  {label}: {value}"));
        }
    }
    if info.node.is_none() {
        let yes = features
            .iter()
            .filter(|(_, a)| *a == disco::Advertised::Yes)
            .count();
        lines.push(format!(
            "  XEP-0060 features: {yes} of {} advertised",
            features.len()
        ));
        for ((name, state), (_, what)) in features.iter().zip(disco::XEP_0060_FEATURES) {
            let mark = match state {
                disco::Advertised::Yes => "✓",
                disco::Advertised::No => "·",
            };
            lines.push(format!("    {mark} {name:<27}{what} ({})", state.name()));
        }
        let unknown = disco::unknown_pubsub_features(&info.features);
        if !unknown.is_empty() {
            lines.push(format!(
                "  pubsub features not in XEP-0060 ({}):",
                unknown.len()
            ));
            for f in unknown {
                lines.push(format!("    {f}"));
            }
        }
        let others = disco::other_features(&info.features);
        if !others.is_empty() {
            lines.push(format!("  other features ({}):", others.len()));
            for f in others {
                lines.push(format!("    {f}"));
            }
        }
    } else if !info.features.is_empty() {
        lines.push(format!("  features: {}", info.features.len()));
    }
    for l in lines {
        p.line(&l, &Value::Null)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::gap::Lost;
    use crate::xmpp::SnapshotReason;

    /// The lines `watch` prints for `ev`, read back.
    fn lines(ev: &NetEvent, filter: Option<&crate::feed::filter::Filter>) -> Vec<Value> {
        let mut out = String::new();
        push_event_lines(&mut out, ev, "pubsub.x", filter);
        out.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn watch_prints_gaps_lost_items_and_resyncs() {
        let gap = lines(
            &NetEvent::Gap {
                node: "n".into(),
                sender: "alice@x/y".into(),
                from: 5,
                to: 6,
            },
            None,
        );
        assert_eq!(
            gap,
            [json!({"kind": "gap", "node": "n", "sender": "alice@x/y", "from": 5, "to": 6})]
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T07:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let got = lines(
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
            None,
        );
        assert_eq!(got[0]["kind"], "lost");
        assert_eq!(got[0]["count"], 30);
        assert_eq!(got[0]["text"], "30 items from alice@x/y lost (seq 1–30)");
        assert_eq!(got[1]["kind"], "resync");
        assert_eq!(got[1]["reason"], "gap");
        assert_eq!(got[1]["lost"], 30);
        assert_eq!(got[1]["at"], "2026-11-24T07:00:00.000Z");
    }

    #[test]
    fn watch_filter_keeps_only_matching_items_and_every_other_event() {
        let xml = |id: &str, t: &str| {
            let el: xmpp_parsers::minidom::Element = format!(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='{id}'><r xmlns='urn:x'><temp>{t}</temp></r></item>"
            )
            .parse()
            .expect("xml");
            proto::parse_item("n", &el)
        };
        let f = crate::feed::filter::Filter::parse("@temp>20").expect("filter");
        let hot = NetEvent::Item(xml("a", "25 °C"));
        let cold = NetEvent::Item(xml("b", "5 °C"));
        assert_eq!(lines(&hot, Some(&f)).len(), 1);
        assert!(lines(&cold, Some(&f)).is_empty());
        assert_eq!(lines(&cold, None).len(), 1, "control");
        let snap = NetEvent::Snapshot {
            node: "n".into(),
            items: vec![xml("a", "25"), xml("b", "5"), xml("c", "21")],
            reason: SnapshotReason::Initial,
            lost: Vec::new(),
            at: chrono::Utc::now(),
        };
        let got = lines(&snap, Some(&f));
        let ids: Vec<&Value> = got.iter().map(|l| &l["id"]).collect();
        assert_eq!(ids, [&json!("a"), &json!("c"), &Value::Null]);
        assert_eq!(got[2]["kind"], "resync");
        assert_eq!(
            got[2]["count"], 3,
            "the resync says how many the service has"
        );
    }

    #[test]
    fn json_carries_whole_values_and_escapes_terminal_controls() {
        let xml = "<item xmlns='http://jabber.org/protocol/pubsub' id='i'><reading xmlns='urn:x'><lat>45.44</lat><lon>12.33</lon></reading></item>";
        let el: xmpp_parsers::minidom::Element = xml.parse().expect("xml");
        let mut parts = proto::parse_item("n", &el).to_parts();
        parts.text = format!("{}\nline two \u{9b}31m \u{202e}", "x".repeat(10_000));
        parts.id = Some("i".repeat(1000));
        let item: FeedItem = parts.into();
        let mut line = String::new();
        crate::feed::export::push_item_line(&mut line, "item", &item);
        assert!(
            line.contains("\\u009b") && line.contains("\\u202e"),
            "escaped"
        );
        assert!(!line.contains('\u{9b}') && !line.contains('\u{202e}'));
        let back: Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(back["text"], item.text(), "the whole text, exactly");
        assert_eq!(back["id"].as_str().map(str::len), Some(1000));
        assert!(
            back["xml"]
                .as_str()
                .is_some_and(|x| x.contains("<lat>45.44</lat><lon>12.33</lon>")),
            "{back}"
        );
    }
}
