//! The owner's requests in the TUI, and the item actions: the questions before purge,
//! delete and retract, the configuration form ([`super::form`]), the lists of a node's
//! affiliations and subscriptions, and an item's XML (retract, edit in `$EDITOR`, copy the
//! id). Pure, like `update`: keys and answers in, commands and effects out.
//!
//! Every refusal is told with [`explain`], from the typed error the core gives: the
//! condition decides the words ("forbidden: only the owner of 'news' may purge it").

use crossterm::event::KeyEvent;
use tui_input::Input;

use super::form::{FormEditor, Outcome, Purpose};
use super::keymap::Action;
use super::model::{Asked, Level, Model, Overlay};
use super::update::{Effect, edit_line};
use crate::feed::FeedItem;
use crate::xmpp::error::{Op, RequestError, explain};
use crate::xmpp::proto::form::{Form, FormKind};
use crate::xmpp::proto::owner::{Affiliation, NodeSub};
use crate::xmpp::{Answer, Command, OwnerDone, OwnerOp};

/// What an owner's request was for, to read its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerAsk {
    /// The node's form, to edit.
    Config,
    /// The default form, for a new node.
    DefaultConfig,
    SubmitConfig,
    CancelConfig,
    Create,
    /// How many items the node holds, before asking whether to purge or delete it.
    Count(Then),
    Purge,
    Delete,
    Affiliations,
    SetAffiliation {
        jid: String,
        from: String,
        to: String,
    },
    Subscriptions,
    SetSubscription {
        jid: String,
        from: String,
        to: String,
    },
}

/// What follows a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Purge,
    Delete,
}

/// A question before something that cannot be undone.
#[derive(Debug, Clone)]
pub enum Confirm {
    /// Quit although text would be lost.
    Quit,
    Purge {
        node: String,
        count: String,
    },
    /// Delete; a redirect may be typed.
    Delete {
        node: String,
        count: String,
        redirect: Input,
    },
    Retract {
        node: String,
        id: String,
    },
    /// Remove a JID's affiliation or subscription, or make it an outcast (in the open list).
    Change {
        jid: String,
        to: String,
        subid: Option<String>,
    },
    /// Write the feed's items to a file (where, and in which format).
    Export(super::export::Export),
}

impl Confirm {
    /// Answered with Enter and Esc (text is typed), not y and n.
    pub fn typed(&self) -> bool {
        matches!(self, Self::Delete { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    Affiliations,
    Subscriptions,
}

/// One JID in the list, and its affiliation or subscription state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelRow {
    pub jid: String,
    pub state: String,
    pub subid: Option<String>,
}

/// A node's affiliations or subscriptions.
#[derive(Debug, Clone)]
pub struct Panel {
    pub kind: PanelKind,
    pub node: String,
    pub rows: Vec<PanelRow>,
    pub selected: usize,
    /// Asked; the answer has not come yet.
    pub loading: bool,
    pub error: Option<String>,
    /// A JID (and affiliation) being typed.
    pub adding: Option<Input>,
    /// A change the service accepted, to check in the list it sends next (ejabberd answers
    /// OK to a change of one's own affiliation, and keeps it as it was).
    pub expect: Option<(String, String)>,
}

impl Panel {
    fn new(kind: PanelKind, node: &str) -> Self {
        Self {
            kind,
            node: node.to_owned(),
            rows: Vec::new(),
            selected: 0,
            loading: true,
            error: None,
            adding: None,
            expect: None,
        }
    }

    pub fn selected_jid(&self) -> Option<&str> {
        self.rows.get(self.selected).map(|r| r.jid.as_str())
    }
}

/// The node the owner keys act on: the explorer's selected node, or the subscriptions pane's.
pub fn target_node(m: &Model) -> Option<String> {
    if m.overlay == Overlay::Explorer {
        return m
            .explorer
            .selected_entry()
            .filter(|_| m.explorer.view == super::explorer::View::Nodes)
            .map(|e| e.node.clone());
    }
    m.selected_node().map(|n| n.name.clone())
}

fn ask_owner(m: &mut Model, node: &str, what: OwnerAsk, op: OwnerOp) -> Effect {
    let key = m.key(node);
    let asked = Asked::Owner {
        node: node.to_owned(),
        what,
    };
    Effect::Net(m.ask(asked, |req| Command::Owner { req, node: key, op }))
}

/// An owner key (C, N, A, S, X, D) on the selected node.
pub fn start(m: &mut Model, action: Action) -> Vec<Effect> {
    if !m.is_online() {
        m.outcome(Level::Error, "not connected: try again once online");
        return Vec::new();
    }
    if action == Action::CreateNode {
        m.outcome(Level::Info, "asking the service for a new node's form…");
        return vec![ask_owner(
            m,
            "",
            OwnerAsk::DefaultConfig,
            OwnerOp::DefaultConfig,
        )];
    }
    let Some(node) = target_node(m) else {
        m.outcome(Level::Error, "select a node first");
        return Vec::new();
    };
    let (what, op, text) = match action {
        Action::Configure => (OwnerAsk::Config, OwnerOp::GetConfig, "the configuration"),
        Action::Affiliations => (
            OwnerAsk::Affiliations,
            OwnerOp::Affiliations,
            "the affiliations",
        ),
        Action::NodeSubscriptions => (
            OwnerAsk::Subscriptions,
            OwnerOp::Subscriptions,
            "the subscriptions",
        ),
        Action::Purge | Action::DeleteNode => {
            let then = if action == Action::Purge {
                Then::Purge
            } else {
                Then::Delete
            };
            // First how many items it holds: the question names them.
            let service = m.service.clone();
            let asked = Asked::Owner {
                node: node.clone(),
                what: OwnerAsk::Count(then),
            };
            let parent = Some(node);
            return vec![Effect::Net(m.ask(asked, |req| Command::ListNodes {
                req,
                service,
                parent,
                after: None,
            }))];
        }
        _ => return Vec::new(),
    };
    match action {
        Action::Affiliations => {
            m.panel = Some(Panel::new(PanelKind::Affiliations, &node));
            open(m, Overlay::Panel);
        }
        Action::NodeSubscriptions => {
            m.panel = Some(Panel::new(PanelKind::Subscriptions, &node));
            open(m, Overlay::Panel);
        }
        _ => m.outcome(Level::Info, format!("asking for {text} of {node}…")),
    }
    vec![ask_owner(m, &node, what, op)]
}

/// Open an overlay; the explorer, when open, is gone back to when it closes.
fn open(m: &mut Model, overlay: Overlay) {
    if m.overlay == Overlay::Explorer {
        m.under = Some(Overlay::Explorer);
    }
    m.overlay = overlay;
}

/// Close an overlay of this module: back to the explorer if it was under it.
fn close(m: &mut Model) {
    m.overlay = m.under.take().unwrap_or(Overlay::None);
}

/// The answer to an owner's request.
pub fn on_reply(
    m: &mut Model,
    node: &str,
    what: OwnerAsk,
    result: Result<Answer, RequestError>,
) -> Vec<Effect> {
    if matches!(
        what,
        OwnerAsk::Affiliations
            | OwnerAsk::Subscriptions
            | OwnerAsk::SetAffiliation { .. }
            | OwnerAsk::SetSubscription { .. }
    ) {
        return on_panel_reply(m, node, what, result);
    }
    let service = m.service.to_string();
    let why = |e: &RequestError, op: Op| explain(e, op, node, &service);
    match (what, result) {
        (OwnerAsk::Count(then), result) => ask_to_confirm(m, node, then, result),
        (
            OwnerAsk::Config,
            Ok(Answer::Owner {
                done: OwnerDone::Config(form),
                ..
            }),
        ) => {
            m.form = Some(FormEditor::configure(node, form));
            open(m, Overlay::Form);
            m.outcome(Level::Info, format!("configuring {node}"));
        }
        (OwnerAsk::DefaultConfig, result) => {
            let form = match result {
                Ok(Answer::Owner {
                    done: OwnerDone::Config(form),
                    ..
                }) => form,
                // No default form: a name alone (the service's defaults apply).
                _ => Form::new(FormKind::Form, Vec::new()),
            };
            m.form = Some(FormEditor::create(form));
            open(m, Overlay::Form);
        }
        (OwnerAsk::SubmitConfig, Ok(_)) => {
            let changed = m.form.as_ref().map(FormEditor::changed).unwrap_or_default();
            m.form = None;
            close(m);
            let what = if changed.is_empty() {
                "nothing changed".to_owned()
            } else {
                format!("changed {}", changed.join(", "))
            };
            m.outcome(Level::Info, format!("configured {node}: {what}"));
        }
        (OwnerAsk::SubmitConfig | OwnerAsk::Create, Err(e)) => {
            let op = if m
                .form
                .as_ref()
                .is_some_and(|f| f.purpose == Purpose::Create)
            {
                Op::Create
            } else {
                Op::Configure
            };
            let text = why(&e, op);
            match m.form.as_mut() {
                Some(f) => f.refused(text),
                None => m.outcome(Level::Error, text),
            }
        }
        (OwnerAsk::Create, Ok(Answer::Owner { node: made, .. })) => return created(m, &made),
        (OwnerAsk::CancelConfig, _) => {}
        (OwnerAsk::Purge, Ok(_)) => m.outcome(Level::Info, format!("purged {node}")),
        (OwnerAsk::Delete, Ok(_)) => {
            let fx = super::update::node_gone(m, node, None);
            m.outcome(Level::Info, format!("deleted {node}"));
            return fx;
        }
        (what, Err(e)) => {
            let op = match what {
                OwnerAsk::Purge => Op::Purge,
                OwnerAsk::Delete => Op::Delete,
                _ => Op::Configure,
            };
            m.outcome(Level::Error, why(&e, op));
        }
        (what, Ok(answer)) => {
            tracing::debug!(?what, ?answer, "an owner's answer that does not fit");
        }
    }
    Vec::new()
}

/// The answer to a request of the affiliations or subscriptions list.
fn on_panel_reply(
    m: &mut Model,
    node: &str,
    what: OwnerAsk,
    result: Result<Answer, RequestError>,
) -> Vec<Effect> {
    let service = m.service.to_string();
    let why = |e: &RequestError, op: Op| explain(e, op, node, &service);
    match (what, result) {
        (
            OwnerAsk::Affiliations,
            Ok(Answer::Owner {
                done: OwnerDone::Affiliations(list),
                ..
            }),
        ) => fill_panel(
            m,
            node,
            PanelKind::Affiliations,
            list.into_iter()
                .map(|a| PanelRow {
                    jid: a.jid,
                    state: a.affiliation,
                    subid: None,
                })
                .collect(),
        ),
        (
            OwnerAsk::Subscriptions,
            Ok(Answer::Owner {
                done: OwnerDone::Subscriptions(list),
                ..
            }),
        ) => fill_panel(
            m,
            node,
            PanelKind::Subscriptions,
            list.into_iter()
                .map(|s| PanelRow {
                    jid: s.jid,
                    state: s.state,
                    subid: s.subid,
                })
                .collect(),
        ),
        (OwnerAsk::Affiliations | OwnerAsk::Subscriptions, Err(e)) => {
            let op = match &m.panel {
                Some(p) if p.kind == PanelKind::Subscriptions => Op::NodeSubscriptions,
                _ => Op::Affiliations,
            };
            let text = why(&e, op);
            match m.panel.as_mut().filter(|p| p.node == node) {
                Some(p) => {
                    p.loading = false;
                    p.error = Some(text);
                }
                None => m.outcome(Level::Error, text),
            }
        }
        (OwnerAsk::SetAffiliation { jid, from, to }, Ok(_)) => {
            m.outcome(Level::Info, format!("{node}: {jid} {from} → {to}"));
            if let Some(p) = m.panel.as_mut() {
                p.expect = Some((jid, to));
            }
            return reload_panel(m);
        }
        (OwnerAsk::SetSubscription { jid, from, to }, Ok(_)) => {
            answered(m, node, &jid);
            m.outcome(
                Level::Info,
                format!("{node}: {jid}'s subscription {from} → {to}"),
            );
            return reload_panel(m);
        }
        (OwnerAsk::SetAffiliation { .. } | OwnerAsk::SetSubscription { .. }, Err(e)) => {
            let op = match &m.panel {
                Some(p) if p.kind == PanelKind::Subscriptions => Op::NodeSubscriptions,
                _ => Op::Affiliations,
            };
            let text = why(&e, op);
            if let Some(p) = m.panel.as_mut().filter(|p| p.node == node) {
                p.error = Some(text.clone());
            }
            m.outcome(Level::Error, text);
        }
        (what, result) => {
            tracing::debug!(?what, ?result, "a list's answer that does not fit");
        }
    }
    Vec::new()
}

/// A node was created from the form: the form closes, the explorer lists the node.
fn created(m: &mut Model, made: &str) -> Vec<Effect> {
    let service = m.service.to_string();
    let made = made.to_owned();
    let title = m
        .form
        .take()
        .and_then(|f| f.form.field("pubsub#title").map(|t| t.value().to_owned()))
        .filter(|t| !t.is_empty());
    close(m);
    // Listed in the explorer at once (its meta-data is asked for as for the others).
    if m.explorer.opened {
        let listed = crate::xmpp::proto::disco::Items {
            node: None,
            items: vec![crate::xmpp::proto::disco::Listed {
                jid: service.clone(),
                node: Some(made.clone()),
                name: title,
            }],
            page: None,
        };
        m.explorer.add_page(None, &listed);
        m.explorer.select(Some(&made));
    }
    let how = if m.overlay == Overlay::Explorer {
        "s follows it"
    } else {
        "e shows it in the explorer, where s follows it"
    };
    m.outcome(Level::Info, format!("created {made} ({how})"));
    super::update::ask_infos(m)
}

/// The node's item count is in (or not): ask before purging or deleting it.
fn ask_to_confirm(m: &mut Model, node: &str, then: Then, result: Result<Answer, RequestError>) {
    let count = match result {
        Ok(Answer::Nodes(items)) => match items.page.as_ref().and_then(|p| p.count) {
            Some(n) => super::update::plural(n, "item"),
            None => super::update::plural(items.items.len(), "item"),
        },
        _ => "an unknown number of items".to_owned(),
    };
    let node = node.to_owned();
    m.confirm = Some(match then {
        Then::Purge => Confirm::Purge { node, count },
        Then::Delete => Confirm::Delete {
            node,
            count,
            redirect: Input::default(),
        },
    });
    open(m, Overlay::Confirm);
}

/// The service asks this account to approve a subscription: said, and kept for the node's
/// subscriptions list (where y approves and n denies it).
pub fn authorization_request(m: &mut Model, node: &str, jid: String, subid: Option<String>) {
    m.info(format!(
        "{jid} asks to subscribe to {node}: S on {node} lists the request, y approves, n denies"
    ));
    if !m.pending.iter().any(|(n, r)| r.jid == jid && *n == node) {
        let row = PanelRow {
            jid,
            state: "pending".into(),
            subid,
        };
        m.pending.push((node.to_owned(), row));
    }
    if let Some(p) = m
        .panel
        .as_mut()
        .filter(|p| p.node == node && p.kind == PanelKind::Subscriptions)
    {
        merge_pending(p, &m.pending);
    }
}

/// Add the node's pending requests that the service's list does not show.
fn merge_pending(p: &mut Panel, pending: &[(String, PanelRow)]) {
    for (node, row) in pending {
        if *node == p.node && !p.rows.iter().any(|r| r.jid == row.jid) {
            p.rows.push(row.clone());
        }
    }
}

/// A pending request was answered: no longer shown as pending.
fn answered(m: &mut Model, node: &str, jid: &str) {
    m.pending.retain(|(n, r)| !(n == node && r.jid == jid));
}

fn fill_panel(m: &mut Model, node: &str, kind: PanelKind, rows: Vec<PanelRow>) {
    let Some(p) = m
        .panel
        .as_mut()
        .filter(|p| p.node == node && p.kind == kind)
    else {
        return;
    };
    let keep = p.selected_jid().map(str::to_owned);
    p.rows = rows;
    // Did the change take? (The service said yes; its list says what it did.)
    if let Some((jid, to)) = p.expect.take()
        && let Some(r) = p.rows.iter().find(|r| r.jid == jid)
        && r.state != to
    {
        let kept = r.state.clone();
        m.outcome(
            Level::Error,
            format!(
                "{node}: the service kept {jid} {kept} (it answered yes, but did not change it)"
            ),
        );
        let Some(p) = m.panel.as_mut() else { return };
        p.loading = false;
        return;
    }
    let Some(p) = m.panel.as_mut() else { return };
    if kind == PanelKind::Subscriptions {
        merge_pending(p, &m.pending);
    }
    p.loading = false;
    p.error = None;
    p.selected = keep
        .and_then(|j| p.rows.iter().position(|r| r.jid == j))
        .unwrap_or(0)
        .min(p.rows.len().saturating_sub(1));
}

fn reload_panel(m: &mut Model) -> Vec<Effect> {
    let Some(p) = m.panel.as_mut() else {
        return Vec::new();
    };
    p.loading = true;
    let (node, kind) = (p.node.clone(), p.kind);
    let (what, op) = match kind {
        PanelKind::Affiliations => (OwnerAsk::Affiliations, OwnerOp::Affiliations),
        PanelKind::Subscriptions => (OwnerAsk::Subscriptions, OwnerOp::Subscriptions),
    };
    vec![ask_owner(m, &node, what, op)]
}

/// A key in the question (y/n, or Enter/Esc with the redirect typed).
pub fn confirm_key(m: &mut Model, key: KeyEvent, action: Option<Action>) -> Vec<Effect> {
    match action {
        Some(Action::Yes) => {
            let Some(c) = m.confirm.take() else {
                close(m);
                return Vec::new();
            };
            close(m);
            match c {
                Confirm::Quit => {
                    m.quit = true;
                    return vec![Effect::Quit];
                }
                Confirm::Change { jid, to, subid } => return set_entry(m, &jid, &to, subid),
                // Answered in its own mode (`export::key`).
                Confirm::Export(_) => {}
                Confirm::Purge { node, .. } => {
                    m.outcome(Level::Info, format!("purging {node}…"));
                    return vec![ask_owner(m, &node, OwnerAsk::Purge, OwnerOp::Purge)];
                }
                Confirm::Delete {
                    node,
                    redirect,
                    count,
                } => {
                    let uri = redirect.value().trim().to_owned();
                    if !uri.is_empty() && !crate::xmpp::proto::owner::is_redirect(&uri) {
                        // Asked again, with the text kept to fix.
                        m.outcome(
                            Level::Error,
                            format!(
                                "{uri:?} is not an xmpp: URI (xmpp:pubsub.example.org?;node=new)"
                            ),
                        );
                        m.confirm = Some(Confirm::Delete {
                            node,
                            count,
                            redirect,
                        });
                        open(m, Overlay::Confirm);
                        return Vec::new();
                    }
                    let redirect = (!uri.is_empty()).then_some(uri);
                    m.outcome(Level::Info, format!("deleting {node}…"));
                    let op = OwnerOp::Delete { redirect };
                    return vec![ask_owner(m, &node, OwnerAsk::Delete, op)];
                }
                Confirm::Retract { node, id } => {
                    m.outcome(Level::Info, format!("retracting {id} from {node}…"));
                    let key = m.key(&node);
                    let asked = Asked::Retract {
                        node,
                        id: id.clone(),
                    };
                    return vec![Effect::Net(m.ask(asked, |req| Command::Retract {
                        req,
                        node: key,
                        id,
                    }))];
                }
            }
        }
        Some(Action::No) => {
            m.confirm = None;
            close(m);
        }
        Some(Action::Discard) if matches!(m.confirm, Some(Confirm::Quit)) => {
            m.confirm = None;
            close(m);
            m.quit = true;
            let req = m.ids.fresh();
            return vec![
                Effect::Net(crate::xmpp::Command::DiscardUnsent { req }),
                Effect::Quit,
            ];
        }
        Some(Action::Quit) => {
            // Ctrl-C: asked whether to quit, that is a yes; otherwise it quits (and asks
            // when text would be lost).
            if matches!(m.confirm, Some(Confirm::Quit)) {
                m.quit = true;
                return vec![Effect::Quit];
            }
            m.confirm = None;
            close(m);
            return super::update::on_quit(m);
        }
        _ => {
            if let Some(Confirm::Delete { redirect, .. }) = m.confirm.as_mut() {
                edit_line(redirect, key);
            }
        }
    }
    Vec::new()
}

/// A key in the configuration form.
pub fn form_key(m: &mut Model, key: KeyEvent, action: Option<Action>) -> Vec<Effect> {
    let page = usize::from(m.size.1.saturating_sub(8)).max(1);
    let Some(f) = m.form.as_mut() else {
        close(m);
        return Vec::new();
    };
    let typing = f.edit.is_some();
    let outcome = match action {
        Some(Action::Quit) => return super::update::on_quit(m),
        Some(Action::Help) if !typing => {
            m.under = Some(Overlay::Form);
            m.overlay = Overlay::Help { scroll: 0 };
            return Vec::new();
        }
        Some(a) => f.action(a, page),
        None if typing => {
            f.key(key);
            Outcome::Stay
        }
        None => Outcome::Stay,
    };
    match outcome {
        Outcome::Stay => Vec::new(),
        Outcome::Cancel => {
            let Some(f) = m.form.take() else {
                return Vec::new();
            };
            close(m);
            match f.purpose {
                Purpose::Configure { node } if !f.sending => {
                    m.outcome(
                        Level::Info,
                        format!("left the configuration of {node} as it was"),
                    );
                    vec![ask_owner(
                        m,
                        &node,
                        OwnerAsk::CancelConfig,
                        OwnerOp::CancelConfig,
                    )]
                }
                _ => Vec::new(),
            }
        }
        Outcome::Submit => {
            let Some(f) = m.form.as_ref() else {
                return Vec::new();
            };
            match f.purpose.clone() {
                Purpose::Configure { node } => {
                    let op = OwnerOp::SetConfig(f.form.clone());
                    vec![ask_owner(m, &node, OwnerAsk::SubmitConfig, op)]
                }
                Purpose::Create => {
                    let node = f.node_name();
                    let op = OwnerOp::Create {
                        config: f.changed_values(),
                        exist_ok: false,
                    };
                    vec![ask_owner(m, &node, OwnerAsk::Create, op)]
                }
            }
        }
    }
}

/// Pasted text in the form goes to the open edit.
pub fn paste(m: &mut Model, text: &str) {
    if let Some(f) = m.form.as_mut() {
        f.paste(text);
    }
}

/// A key in the list of affiliations or subscriptions.
pub fn panel_key(m: &mut Model, key: KeyEvent, action: Option<Action>) -> Vec<Effect> {
    let Some(p) = m.panel.as_mut() else {
        close(m);
        return Vec::new();
    };
    if let Some(input) = p.adding.as_mut() {
        match action {
            Some(Action::Accept) => {
                let line = input.value().trim().to_owned();
                p.adding = None;
                return add_entry(m, &line);
            }
            Some(Action::Cancel) => p.adding = None,
            Some(Action::Quit) => return super::update::on_quit(m),
            _ => edit_line(input, key),
        }
        return Vec::new();
    }
    let last = p.rows.len().saturating_sub(1);
    let page = usize::from(m.size.1.saturating_sub(4)).max(1);
    if let Some(at) = action.and_then(|a| a.moved(p.selected, page, last)) {
        p.selected = at;
        return Vec::new();
    }
    let to = match action {
        Some(Action::Close) => {
            m.panel = None;
            close(m);
            return Vec::new();
        }
        Some(Action::Quit) => return super::update::on_quit(m),
        Some(Action::AddEntry) => {
            p.adding = Some(Input::default());
            return Vec::new();
        }
        Some(Action::Reload) => return reload_panel(m),
        Some(Action::MakeOwner) => "owner",
        Some(Action::MakePublisher) => "publisher",
        Some(Action::MakePublishOnly) => "publish-only",
        Some(Action::MakeMember) => "member",
        Some(Action::MakeNone | Action::Deny) => "none",
        Some(Action::MakeOutcast) => "outcast",
        Some(Action::Approve) => "subscribed",
        _ => return Vec::new(),
    };
    let Some(row) = p.rows.get(p.selected).cloned() else {
        return Vec::new();
    };
    let own = m
        .account_bare()
        .is_some_and(|me| row.jid.split('/').next() == Some(me.as_str()));
    if (own || matches!(to, "none" | "outcast")) && row.state != to {
        // Taking rights away (or a subscription): asked first.
        m.confirm = Some(Confirm::Change {
            jid: row.jid,
            to: to.to_owned(),
            subid: row.subid,
        });
        m.under = Some(Overlay::Panel);
        m.overlay = Overlay::Confirm;
        return Vec::new();
    }
    set_entry(m, &row.jid, to, row.subid)
}

/// Set one JID's affiliation or subscription in the open panel.
fn set_entry(m: &mut Model, jid: &str, to: &str, subid: Option<String>) -> Vec<Effect> {
    let Some(p) = m.panel.as_ref() else {
        return Vec::new();
    };
    let node = p.node.clone();
    let from = p
        .rows
        .iter()
        .find(|r| r.jid == jid)
        .map_or_else(|| "none".to_owned(), |r| r.state.clone());
    if from == to {
        m.outcome(Level::Info, format!("{jid} is {to} already"));
        return Vec::new();
    }
    let (what, op) = match p.kind {
        PanelKind::Affiliations => (
            OwnerAsk::SetAffiliation {
                jid: jid.to_owned(),
                from,
                to: to.to_owned(),
            },
            OwnerOp::SetAffiliations(vec![Affiliation {
                jid: jid.to_owned(),
                affiliation: to.to_owned(),
            }]),
        ),
        PanelKind::Subscriptions => (
            OwnerAsk::SetSubscription {
                jid: jid.to_owned(),
                from,
                to: to.to_owned(),
            },
            OwnerOp::SetSubscriptions(vec![NodeSub {
                jid: jid.to_owned(),
                state: to.to_owned(),
                subid,
            }]),
        ),
    };
    vec![ask_owner(m, &node, what, op)]
}

/// `JID [AFFILIATION]` typed in the affiliations list, or a JID in the subscriptions list.
fn add_entry(m: &mut Model, line: &str) -> Vec<Effect> {
    let Some(p) = m.panel.as_mut() else {
        return Vec::new();
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let most = if p.kind == PanelKind::Affiliations {
        2
    } else {
        1
    };
    if words.len() > most {
        p.error = Some(match p.kind {
            PanelKind::Affiliations => {
                format!("{line:?}: give a JID and, after a space, its affiliation")
            }
            PanelKind::Subscriptions => format!("{line:?}: give one JID"),
        });
        return Vec::new();
    }
    let mut words = words.into_iter();
    let Some(jid) = words.next() else {
        return Vec::new();
    };
    let jid = match xmpp_parsers::jid::Jid::new(jid) {
        // Affiliations are of bare JIDs.
        Ok(j) if p.kind == PanelKind::Affiliations => j.to_bare().to_string(),
        Ok(j) => j.to_string(),
        Err(e) => {
            p.error = Some(format!("{jid:?} is not a valid JID ({e})"));
            return Vec::new();
        }
    };
    let jid = jid.as_str();
    let to = match p.kind {
        PanelKind::Affiliations => words.next().unwrap_or("member").to_owned(),
        PanelKind::Subscriptions => "subscribed".to_owned(),
    };
    if p.kind == PanelKind::Affiliations
        && !crate::xmpp::proto::owner::AFFILIATIONS.contains(&to.as_str())
    {
        p.error = Some(format!(
            "{to:?} is not an affiliation; use one of: {}",
            crate::xmpp::proto::owner::AFFILIATIONS.join(", ")
        ));
        return Vec::new();
    }
    p.error = None;
    let jid = jid.to_owned();
    set_entry(m, &jid, &to, None)
}

/// An item key (v, x, E, y) in the feed or in the item's view.
pub fn item_action(m: &mut Model, action: Action) -> Vec<Effect> {
    let Some(item) = m.target_item().cloned() else {
        m.outcome(Level::Error, "no item selected (↑ in the feed selects one)");
        return Vec::new();
    };
    match action {
        Action::ViewItem => {
            m.item_view = Some(super::itemview::ItemView::new(item));
            m.overlay = Overlay::Item;
        }
        Action::CopyId => match item.id() {
            Some(id) => {
                m.outcome(
                    Level::Info,
                    format!(
                        "copied the id {id} (to the terminal's clipboard, if it allows OSC 52)"
                    ),
                );
                return vec![Effect::Copy(id.to_owned())];
            }
            None => m.outcome(Level::Error, "this item has no id"),
        },
        Action::Retract | Action::EditItem if !m.is_online() => {
            m.outcome(Level::Error, "not connected: try again once online");
        }
        Action::Retract => match item.id() {
            Some(id) => {
                m.confirm = Some(Confirm::Retract {
                    node: item.node().to_owned(),
                    id: id.to_owned(),
                });
                m.under = (m.overlay == Overlay::Item).then_some(Overlay::Item);
                m.overlay = Overlay::Confirm;
            }
            None => m.outcome(Level::Error, "this item has no id: it cannot be retracted"),
        },
        Action::EditItem => return edit(m, &item),
        _ => {}
    }
    Vec::new()
}

/// Edit the item's payload in `$EDITOR` (the shell runs it and answers with
/// [`super::update::Msg::Edited`]).
fn edit(m: &mut Model, item: &FeedItem) -> Vec<Effect> {
    let Some(id) = item.id().map(str::to_owned) else {
        m.outcome(
            Level::Error,
            "this item has no id: it cannot be published again under it",
        );
        return Vec::new();
    };
    if let Some(cut) = item.tree().cut() {
        m.outcome(
            Level::Error,
            format!("this item is only partly kept here ({cut}), so it cannot be edited"),
        );
        return Vec::new();
    }
    let payload = item
        .xml()
        .parse::<xmpp_parsers::minidom::Element>()
        .ok()
        .and_then(|e| e.children().next().cloned());
    let Some(payload) = payload else {
        m.outcome(
            Level::Error,
            "this item has no payload element to edit (its data is in attributes)",
        );
        return Vec::new();
    };
    vec![Effect::Edit {
        node: item.node().to_owned(),
        id,
        xml: crate::xmpp::proto::editable(&payload),
    }]
}

/// The edited payload is back from `$EDITOR`: publish it under the item's id.
pub fn edited(
    m: &mut Model,
    node: String,
    id: String,
    result: Result<Option<String>, String>,
    kept: Option<std::path::PathBuf>,
) -> Vec<Effect> {
    let text = match result {
        Ok(Some(text)) => text,
        Ok(None) => {
            m.outcome(Level::Info, format!("{id}: not changed, nothing published"));
            return Vec::new();
        }
        Err(why) => {
            m.outcome(Level::Error, why);
            return Vec::new();
        }
    };
    let payload = match crate::xmpp::proto::parse_payload(&text) {
        Ok(p) => p,
        Err(why) => {
            m.outcome(Level::Error, format!("{id} not published: {why}"));
            return Vec::new();
        }
    };
    let item = crate::xmpp::proto::item::item_with(Some(&id), payload);
    let key = m.key(&node);
    m.outcome(Level::Info, format!("publishing {id} again to {node}…"));
    let asked = Asked::Republish { node, id, kept };
    vec![Effect::Net(m.ask(asked, |req| Command::PublishItem {
        req,
        node: key,
        item,
        options: Vec::new(),
    }))]
}

/// The answer to a retract or a publish again of the selected item.
pub fn on_item_reply(
    m: &mut Model,
    asked: Asked,
    result: Result<Answer, RequestError>,
) -> Vec<Effect> {
    let service = m.service.to_string();
    match (asked, result) {
        (Asked::Retract { node, id }, Ok(_)) => {
            m.outcome(Level::Info, format!("retracted {id} from {node}"));
            // Shown retracted at once: a service with notify_retract off says nothing more.
            if let Some(n) = m.node_mut(&node) {
                n.feed.retract_held(&id);
            }
            if m.overlay == Overlay::Item
                && m.item_view
                    .as_ref()
                    .is_some_and(|v| v.item.id() == Some(&id))
            {
                m.item_view = None;
                m.overlay = Overlay::None;
            }
        }
        (Asked::Retract { node, id }, Err(error)) => m.outcome(
            Level::Error,
            format!(
                "retracting {id} from {node}: {}",
                explain(&error, Op::Retract, &node, &service)
            ),
        ),
        (Asked::Republish { node, id, kept }, Ok(_)) => {
            m.outcome(Level::Info, format!("published {id} again to {node}"));
            // A view of the old XML would mislead: closed (v shows the new one).
            if m.item_view
                .as_ref()
                .is_some_and(|v| v.item.id() == Some(&id))
            {
                m.item_view = None;
                if m.overlay == Overlay::Item {
                    m.overlay = Overlay::None;
                }
            }
            return kept.map(Effect::RemoveFile).into_iter().collect();
        }
        (Asked::Republish { node, id, kept }, Err(error)) => {
            let file = kept
                .map(|p| format!("; your edit is kept in {}", p.display()))
                .unwrap_or_default();
            m.outcome(
                Level::Error,
                format!(
                    "publishing {id} again to {node}: {}{file}",
                    explain(&error, Op::Publish, &node, &service)
                ),
            );
        }
        _ => {}
    }
    Vec::new()
}
