//! The owner's commands (`node create|config|purge|delete|affiliations|subscriptions`) and
//! `retract`: the same requests the TUI sends, printed as readable lines or JSON.
//!
//! What can be checked before anything is sent is: node names, affiliation and subscription
//! values and JIDs here ([`NodeQuery::check`]), configuration keys and values against the
//! service's own form (fetched first; a get changes nothing). Purge and delete ask first on a
//! terminal, naming the node and how many items it holds.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};

use anyhow::bail;
use serde_json::json;
use xmpp_parsers::jid::Jid;

use super::{Printer, eprintln_quiet};
use crate::xmpp::error::{Op, explain};
use crate::xmpp::proto::form::{Field, FieldKind, Form};
use crate::xmpp::proto::owner::{AFFILIATIONS, Affiliation, NodeSub, SUB_STATES};
use crate::xmpp::{Answer, Command, NetHandle, NodeKey, OwnerDone, OwnerOp};

/// One owner's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeQuery {
    /// `None`: an instant node.
    Create {
        node: Option<String>,
        set: Vec<(String, String)>,
    },
    Config {
        node: String,
        set: Vec<(String, String)>,
    },
    Purge {
        node: String,
        yes: bool,
    },
    Delete {
        node: String,
        redirect: Option<String>,
        yes: bool,
    },
    Affiliations {
        node: String,
        set: Vec<(String, String)>,
    },
    Subscriptions {
        node: String,
        set: Vec<(String, String)>,
    },
    Retract {
        node: String,
        id: String,
    },
}

impl NodeQuery {
    /// The node named, if one is.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::Create { node, .. } => node.as_deref(),
            Self::Config { node, .. }
            | Self::Purge { node, .. }
            | Self::Delete { node, .. }
            | Self::Affiliations { node, .. }
            | Self::Subscriptions { node, .. }
            | Self::Retract { node, .. } => Some(node),
        }
    }

    /// What is wrong with the command line, before connecting.
    pub fn check(&self) -> Result<(), String> {
        if let Some(n) = self.node() {
            crate::xmpp::session::check_node_name(n)
                .map_err(|e| format!("node {:?}: {e}", crate::sanitize::display_max(n, 60)))?;
        }
        match self {
            Self::Affiliations { set, .. } | Self::Subscriptions { set, .. }
                if set
                    .iter()
                    .enumerate()
                    .any(|(i, (j, _))| set[..i].iter().any(|(k, _)| k == j)) =>
            {
                return Err("--set names a JID twice: give each JID once".into());
            }
            Self::Affiliations { set, .. } => {
                for (jid, a) in set {
                    check_jid(jid)?;
                    if !AFFILIATIONS.contains(&a.as_str()) {
                        return Err(format!(
                            "--set {jid}={a}: {a:?} is not an affiliation; use one of: {}",
                            AFFILIATIONS.join(", ")
                        ));
                    }
                }
            }
            Self::Subscriptions { set, .. } => {
                for (jid, state) in set {
                    check_jid(jid)?;
                    if !SUB_STATES.contains(&state.as_str()) {
                        return Err(format!(
                            "--set {jid}={state}: {state:?} is not a subscription state; use one of: {}",
                            SUB_STATES.join(", ")
                        ));
                    }
                }
            }
            Self::Delete {
                redirect: Some(uri),
                ..
            } if !crate::xmpp::proto::owner::is_redirect(uri) => {
                return Err(format!(
                    "--redirect {uri:?}: give an xmpp: URI (at most 1,024 bytes), such as \
                     xmpp:pubsub.example.org?;node=new"
                ));
            }
            Self::Retract { id, .. }
                if id.trim().is_empty() || id.len() > 1024 || id.chars().any(char::is_control) =>
            {
                return Err("the item id is empty, too long or has control characters".into());
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_jid(jid: &str) -> Result<(), String> {
    Jid::new(jid)
        .map(drop)
        .map_err(|e| format!("--set {jid}=…: {jid:?} is not a valid JID ({e})"))
}

/// Ask the core and explain a failure in words.
async fn owner(
    net: &mut NetHandle,
    key: &NodeKey,
    op: OwnerOp,
) -> anyhow::Result<(String, OwnerDone)> {
    let what = op.op();
    let answer = net
        .request(
            |req| Command::Owner {
                req,
                node: key.clone(),
                op,
            },
            drop,
        )
        .await
        .map_err(|e| anyhow::anyhow!(explain(&e, what, &key.node, key.service.as_str())))?;
    match answer {
        Answer::Owner { node, done } => Ok((node, done)),
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// Run an owner's command and print what it changed or read.
pub(super) async fn run(
    net: &mut NetHandle,
    q: &NodeQuery,
    service: &Jid,
    p: &mut Printer,
) -> anyhow::Result<()> {
    let key = |n: &str| NodeKey::new(service, n);
    match q {
        NodeQuery::Create { node, set } => create(net, node.as_deref(), set, service, p).await,
        NodeQuery::Config { node, set } => config(net, &key(node), set, p).await,
        NodeQuery::Purge { node, yes } => {
            let k = key(node);
            if !*yes {
                confirm(net, &k, "Purge every item of", "").await?;
            }
            owner(net, &k, OwnerOp::Purge).await?;
            p.line(
                &format!("purged {node} at {service}"),
                &json!({"kind": "purged", "node": node}),
            )
        }
        NodeQuery::Delete {
            node,
            redirect,
            yes,
        } => {
            let k = key(node);
            if !*yes {
                confirm(net, &k, "Delete the node", " and the node itself").await?;
            }
            let op = OwnerOp::Delete {
                redirect: redirect.clone(),
            };
            owner(net, &k, op).await?;
            let to = redirect
                .as_deref()
                .map(|r| format!("; subscribers were pointed to {r}"))
                .unwrap_or_default();
            p.line(
                &format!("deleted {node} at {service}{to}"),
                &json!({"kind": "deleted", "node": node, "redirect": redirect}),
            )
        }
        NodeQuery::Affiliations { node, set } => affiliations(net, &key(node), set, p).await,
        NodeQuery::Subscriptions { node, set } => subscriptions(net, &key(node), set, p).await,
        NodeQuery::Retract { node, id } => {
            let (n, i) = (key(node), id.clone());
            net.request(
                |req| Command::Retract {
                    req,
                    node: n,
                    id: i,
                },
                drop,
            )
            .await
            .map_err(|e| anyhow::anyhow!(explain(&e, Op::Retract, node, service.as_str())))?;
            p.line(
                &format!("retracted {id} from {node} at {service}"),
                &json!({"kind": "retracted", "node": node, "id": id}),
            )
        }
    }
}

/// `node create`: with `--set`, the values are checked against the service's default form
/// first, where it has one.
async fn create(
    net: &mut NetHandle,
    node: Option<&str>,
    set: &[(String, String)],
    service: &Jid,
    p: &mut Printer,
) -> anyhow::Result<()> {
    let key = NodeKey::new(service, node.unwrap_or_default());
    // Keys as the service names them (with their prefix).
    let full = |k: &str| {
        if k.contains('#') || k == "FORM_TYPE" {
            k.to_owned()
        } else {
            format!("pubsub#{k}")
        }
    };
    let mut config: Vec<(String, String)> = set.iter().map(|(k, v)| (full(k), v.clone())).collect();
    if !set.is_empty()
        && let Ok((_, OwnerDone::Config(mut form))) = owner(net, &key, OwnerOp::DefaultConfig).await
    {
        // What the default form has is checked (and normalised) here; a key it lacks (some
        // services leave the title out of it) goes as given, for the service to judge.
        let known: Vec<(String, String)> = set
            .iter()
            .filter(|(k, _)| form.find(k).is_some())
            .cloned()
            .collect();
        form.apply(&known).map_err(|e| anyhow::anyhow!(e))?;
        let mut vars: Vec<usize> = known.iter().filter_map(|(k, _)| form.find(k)).collect();
        vars.dedup();
        config.retain(|(k, _)| form.find(k).is_none());
        for i in vars {
            let f = &form.fields[i];
            let var = f.var.clone().unwrap_or_default();
            config.extend(f.values.iter().map(|v| (var.clone(), v.clone())));
        }
    }
    let op = OwnerOp::Create {
        config: config.clone(),
        exist_ok: false,
    };
    let (name, _) = owner(net, &key, op).await?;
    let with = if config.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = config.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" with {}", parts.join(", "))
    };
    let settings: serde_json::Map<String, serde_json::Value> =
        config.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    p.line(
        &format!("created {name} at {service}{with}"),
        &json!({"kind": "created", "node": name, "config": settings}),
    )
}

/// `node config`: print the form, or change it (checked against the form first).
async fn config(
    net: &mut NetHandle,
    key: &NodeKey,
    set: &[(String, String)],
    p: &mut Printer,
) -> anyhow::Result<()> {
    let (_, done) = owner(net, key, OwnerOp::GetConfig).await?;
    let OwnerDone::Config(mut form) = done else {
        bail!("unexpected answer: {done:?}")
    };
    if set.is_empty() {
        return print_form(&form, p);
    }
    let before = form.clone();
    let changed = form.apply(set).map_err(|e| anyhow::anyhow!(e))?;
    if changed.is_empty() {
        eprintln_quiet(&format!("{}: nothing to change", key.node));
        return Ok(());
    }
    owner(net, key, OwnerOp::SetConfig(form.clone())).await?;
    for var in &changed {
        let from = before
            .field(var)
            .map(|f| f.values.clone())
            .unwrap_or_default();
        let to = form
            .field(var)
            .map(|f| f.values.clone())
            .unwrap_or_default();
        let boolean = form
            .field(var)
            .is_some_and(|f| f.kind == FieldKind::Boolean);
        p.line(
            &format!("{var}: {} → {}", shown(&from, boolean), shown(&to, boolean)),
            &json!({"kind": "changed", "node": key.node, "var": var, "from": from, "to": to}),
        )?;
    }
    Ok(())
}

/// Values for a person: a yes/no as true or false, text quoted.
fn shown(values: &[String], boolean: bool) -> String {
    match values {
        [] => "(empty)".into(),
        [one] if boolean => match crate::xmpp::proto::form::parse_bool(one) {
            Some(b) => b.to_string(),
            None => format!("{one:?}"),
        },
        [one] => format!("\"{}\"", crate::sanitize::display_max(one, 2000)),
        many => format!(
            "[{}]",
            many.iter()
                .map(|v| format!("\"{}\"", crate::sanitize::display_max(v, 2000)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The form's fields, one line each (options on the next line); hidden ones left out.
fn print_form(form: &Form, p: &mut Printer) -> anyhow::Result<()> {
    for f in &form.fields {
        if f.kind == FieldKind::Hidden {
            continue;
        }
        p.line(&field_line(f), &field_json(f))?;
    }
    if form.cut {
        eprintln_quiet(&format!(
            "the form had more than {} fields; the rest are not shown",
            crate::xmpp::proto::form::MAX_FIELDS
        ));
    }
    Ok(())
}

fn field_line(f: &Field) -> String {
    let value = match f.kind {
        FieldKind::Boolean => match f.bool_value() {
            Some(true) => "true".into(),
            Some(false) => "false".into(),
            None => "(unset)".into(),
        },
        FieldKind::TextPrivate if !f.values.is_empty() => "(hidden)".into(),
        _ => shown(&f.values, false),
    };
    let name = f.var.as_deref().unwrap_or("-");
    let mut line = format!("{name} [{}] = {value}", f.kind.as_str());
    if let Some(l) = &f.label {
        let _ = write!(line, "  — {l}");
    }
    if let Some(d) = &f.desc {
        let _ = write!(line, " ({d})");
    }
    if !f.options.is_empty() {
        let _ = write!(line, "\n    allowed: {}", f.allowed());
    }
    line
}

fn field_json(f: &Field) -> serde_json::Value {
    let options: Vec<serde_json::Value> = f
        .options
        .iter()
        .map(|o| json!({"value": o.value, "label": o.label}))
        .collect();
    json!({"kind": "field", "var": f.var, "type": f.kind.as_str(), "label": f.label,
           "desc": f.desc, "required": f.required, "values": f.values, "options": options})
}

/// `node affiliations`: the list, or the changes (each with what it was).
async fn affiliations(
    net: &mut NetHandle,
    key: &NodeKey,
    set: &[(String, String)],
    p: &mut Printer,
) -> anyhow::Result<()> {
    let (_, done) = owner(net, key, OwnerOp::Affiliations).await?;
    let OwnerDone::Affiliations(list) = done else {
        bail!("unexpected answer: {done:?}")
    };
    if set.is_empty() {
        for a in &list {
            p.line(
                &format!("{}  {}", a.jid, a.affiliation),
                &json!({"kind": "affiliation", "node": key.node, "jid": a.jid, "affiliation": a.affiliation}),
            )?;
        }
        if !p.json && list.is_empty() {
            eprintln_quiet(&format!("{}: no affiliations listed", key.node));
        }
        return Ok(());
    }
    // Affiliations are of bare JIDs (XEP-0060 §4.1): a resource given is dropped.
    let changes: Vec<Affiliation> = set
        .iter()
        .map(|(jid, a)| Affiliation {
            jid: Jid::new(jid).map_or_else(|_| jid.clone(), |j| j.to_bare().to_string()),
            affiliation: a.clone(),
        })
        .collect();
    owner(net, key, OwnerOp::SetAffiliations(changes.clone())).await?;
    // What the service did (ejabberd answers yes to a change of one's own affiliation, and
    // keeps it as it was).
    let after = match owner(net, key, OwnerOp::Affiliations).await {
        Ok((_, OwnerDone::Affiliations(list))) => Some(list),
        _ => None,
    };
    let mut kept = Vec::new();
    for c in &changes {
        let now = after.as_ref().map(|l| {
            l.iter()
                .find(|a| a.jid == c.jid)
                .map_or("none", |a| a.affiliation.as_str())
                .to_owned()
        });
        if now.as_ref().is_some_and(|n| *n != c.affiliation) {
            kept.push(format!("{} is still {}", c.jid, now.unwrap_or_default()));
            continue;
        }
        let was = list
            .iter()
            .find(|a| a.jid == c.jid)
            .map_or("none", |a| a.affiliation.as_str());
        p.line(
            &format!("{}: {was} → {}", c.jid, c.affiliation),
            &json!({"kind": "affiliation_changed", "node": key.node, "jid": c.jid,
                    "from": was, "to": c.affiliation}),
        )?;
    }
    if !kept.is_empty() {
        bail!(
            "{}: the service answered yes but did not change this: {}",
            key.node,
            kept.join("; ")
        );
    }
    Ok(())
}

/// `node subscriptions`: the list, or the changes.
async fn subscriptions(
    net: &mut NetHandle,
    key: &NodeKey,
    set: &[(String, String)],
    p: &mut Printer,
) -> anyhow::Result<()> {
    let (_, done) = owner(net, key, OwnerOp::Subscriptions).await?;
    let OwnerDone::Subscriptions(list) = done else {
        bail!("unexpected answer: {done:?}")
    };
    if set.is_empty() {
        for s in &list {
            let subid = super::subid_note(s.subid.as_deref());
            p.line(
                &format!("{}  {}{subid}", s.jid, s.state),
                &json!({"kind": "subscription", "node": key.node, "jid": s.jid,
                        "state": s.state, "subid": s.subid}),
            )?;
        }
        if !p.json && list.is_empty() {
            eprintln_quiet(&format!("{}: no subscriptions", key.node));
        }
        return Ok(());
    }
    let changes: Vec<NodeSub> = set
        .iter()
        .map(|(jid, state)| NodeSub {
            jid: jid.clone(),
            state: state.clone(),
            // ejabberd wants the subscription's id to change one of several.
            subid: list
                .iter()
                .find(|s| &s.jid == jid)
                .and_then(|s| s.subid.clone()),
        })
        .collect();
    owner(net, key, OwnerOp::SetSubscriptions(changes.clone())).await?;
    for c in &changes {
        let was = list
            .iter()
            .find(|s| s.jid == c.jid)
            .map_or("none", |s| s.state.as_str());
        p.line(
            &format!("{}: {was} → {}", c.jid, c.state),
            &json!({"kind": "subscription_changed", "node": key.node, "jid": c.jid,
                    "from": was, "to": c.state}),
        )?;
    }
    Ok(())
}

/// How many items the node holds (disco#items on it), if the service says.
async fn item_count(net: &mut NetHandle, key: &NodeKey) -> Option<String> {
    let (service, parent) = (key.service.clone(), key.node.clone());
    let answer = net
        .request(
            |req| Command::ListNodes {
                req,
                service,
                parent: Some(parent),
                after: None,
            },
            drop,
        )
        .await
        .ok()?;
    let Answer::Nodes(items) = answer else {
        return None;
    };
    let count = items.page.as_ref().and_then(|p| p.count);
    Some(match count {
        Some(1) => "1 item".into(),
        Some(n) => format!("{n} items"),
        None if items.items.len() == 1 => "1 item".into(),
        None if items.items.len() >= crate::xmpp::session::DISCO_PAGE => {
            format!("at least {} items", items.items.len())
        }
        None => format!("{} items", items.items.len()),
    })
}

/// Ask on the terminal before a purge or delete, naming the node and how many items it
/// holds; refuse when there is no terminal to ask on.
async fn confirm(net: &mut NetHandle, key: &NodeKey, what: &str, also: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} {} at {}: standard input is not a terminal to confirm on; add --yes",
            what.to_lowercase(),
            key.node,
            key.service
        );
    }
    let count = item_count(net, key)
        .await
        .unwrap_or_else(|| "an unknown number of items".into());
    let question = format!(
        "{what} '{}' at {} ({count}{also})? [y/N] ",
        crate::sanitize::display(&key.node),
        key.service
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut err = std::io::stderr();
        let _ = write!(err, "{question}");
        let _ = err.flush();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed: nothing was changed")
    }
}
