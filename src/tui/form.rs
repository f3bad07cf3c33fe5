//! The data-form editor (XEP-0004) as a pure state machine: a node's configuration, or a new
//! node's, built from the form the service sends.
//!
//! Each field type has its editor: text-single, text-private and unknown types as a line of
//! text; text-multi as lines (Alt-Enter starts a new one); booleans toggle; list-single is a
//! picker and list-multi a checklist (both filter as the user types, so 10,000 options stay
//! usable); jid-single and jid-multi (comma-separated) are checked as JIDs. Hidden fields are
//! kept and not shown; fixed ones are shown and not editable. A value is checked when its
//! edit ends ([`Field::check`]); a bad one keeps the editor open with the reason beside it.
//!
//! The editor never sends anything itself: [`FormEditor::action`] says what the user wants
//! ([`Outcome`]), and the caller sends the submission (which holds only vars and values) or
//! the cancel. A refusal from the service comes back through [`FormEditor::refused`]: the
//! form stays open with the user's edits and the service's reason.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_input::{Input, InputRequest};

use super::keymap::Action;
use crate::xmpp::proto::form::{Field, FieldKind, Form};

/// What the form is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// An existing node's configuration.
    Configure { node: String },
    /// A new node: its name (empty: the service names it) and configuration (the service's
    /// default form).
    Create,
}

/// A row of the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// The new node's name (create only).
    Name,
    /// A field, by its index in the form.
    Field(usize),
}

/// An edit in progress.
#[derive(Debug, Clone)]
pub enum Edit {
    /// A line of text (the node's name, or a field's values).
    Text(Input),
    /// Choosing from a list field's options.
    Pick(Picker),
}

/// The options of a list field, filtered by what the user types.
#[derive(Debug, Clone)]
pub struct Picker {
    pub filter: Input,
    /// Position among the matching options.
    pub cursor: usize,
    /// The values chosen so far (list-multi; list-single holds the current one).
    pub chosen: Vec<String>,
    pub multi: bool,
}

/// What the user asked for, for the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing for the caller.
    Stay,
    /// Send the form (and wait for the answer: [`FormEditor::refused`] or close).
    Submit,
    /// Leave without a change (configure: send the cancel).
    Cancel,
}

#[derive(Debug, Clone)]
pub struct FormEditor {
    pub purpose: Purpose,
    /// The form as the service sent it.
    pub original: Form,
    /// The form with the user's edits.
    pub form: Form,
    /// The new node's name (create only).
    pub name: Input,
    pub rows: Vec<Row>,
    pub selected: usize,
    pub edit: Option<Edit>,
    /// The reason the last value or submission was refused (here or by the service).
    pub error: Option<String>,
    /// Sent; waiting for the service's answer.
    pub sending: bool,
    /// Esc was pressed once with changes: a second Esc discards them.
    pub discard_armed: bool,
}

impl FormEditor {
    fn new(purpose: Purpose, form: Form) -> Self {
        let mut rows = Vec::new();
        if purpose == Purpose::Create {
            rows.push(Row::Name);
        }
        rows.extend(
            form.fields
                .iter()
                .enumerate()
                .filter(|(_, f)| f.kind != FieldKind::Hidden)
                .map(|(i, _)| Row::Field(i)),
        );
        Self {
            purpose,
            original: form.clone(),
            form,
            name: Input::default(),
            rows,
            selected: 0,
            edit: None,
            error: None,
            sending: false,
            discard_armed: false,
        }
    }

    /// Edit an existing node's configuration form.
    pub fn configure(node: &str, form: Form) -> Self {
        Self::new(
            Purpose::Configure {
                node: node.to_owned(),
            },
            form,
        )
    }

    /// A new node, with the service's default configuration form (empty when it has none).
    pub fn create(form: Form) -> Self {
        Self::new(Purpose::Create, form)
    }

    pub fn selected_row(&self) -> Option<Row> {
        self.rows.get(self.selected).copied()
    }

    pub fn selected_field(&self) -> Option<&Field> {
        match self.selected_row()? {
            Row::Field(i) => self.form.fields.get(i),
            Row::Name => None,
        }
    }

    /// The vars whose values differ from what the service sent, in form order.
    pub fn changed(&self) -> Vec<String> {
        self.form
            .fields
            .iter()
            .zip(&self.original.fields)
            .filter(|(now, was)| now.values != was.values)
            .filter_map(|(now, _)| now.var.clone())
            .collect()
    }

    /// The (var, value) pairs that differ from the service's form: what a new node is
    /// created with.
    pub fn changed_values(&self) -> Vec<(String, String)> {
        let changed = self.changed();
        self.form
            .fields
            .iter()
            .filter(|f| f.var.as_ref().is_some_and(|v| changed.contains(v)))
            .flat_map(|f| {
                let var = f.var.clone().unwrap_or_default();
                f.values.iter().map(move |v| (var.clone(), v.clone()))
            })
            .collect()
    }

    /// The node name typed (create), trimmed; empty means an instant node.
    pub fn node_name(&self) -> String {
        self.name.value().trim().to_owned()
    }

    /// The service refused the submission: the form stays, with the reason.
    pub fn refused(&mut self, reason: String) {
        self.sending = false;
        self.error = Some(reason);
    }

    /// The options of the picker's field that match its filter (indices into the options).
    pub fn matches(&self) -> Vec<usize> {
        let (Some(Edit::Pick(p)), Some(f)) = (&self.edit, self.selected_field()) else {
            return Vec::new();
        };
        let needle = p.filter.value().to_lowercase();
        f.options
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                needle.is_empty()
                    || o.value.to_lowercase().contains(&needle)
                    || o.label
                        .as_ref()
                        .is_some_and(|l| l.to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// A key's action while no edit is open (navigation), or in an open edit
    /// ([`Self::key`] takes the keys that type).
    pub fn action(&mut self, action: Action, page: usize) -> Outcome {
        if self.sending {
            // Only leaving is possible while the answer is awaited.
            return if action == Action::Close {
                Outcome::Cancel
            } else {
                Outcome::Stay
            };
        }
        match &self.edit {
            Some(Edit::Text(_)) => return self.text_action(action),
            Some(Edit::Pick(_)) => return self.pick_action(action, page),
            None => {}
        }
        if action != Action::Close {
            self.discard_armed = false;
        }
        let last = self.rows.len().saturating_sub(1);
        if let Some(at) = action.moved(self.selected, page, last) {
            self.selected = at;
            return Outcome::Stay;
        }
        match action {
            Action::Expand | Action::Toggle => self.open(action == Action::Toggle),
            Action::Submit => {
                if let Some(why) = self.check_name() {
                    self.error = Some(why);
                    return Outcome::Stay;
                }
                self.error = None;
                self.sending = true;
                return Outcome::Submit;
            }
            Action::Close => {
                if self.changed().is_empty() && self.node_name().is_empty() || self.discard_armed {
                    return Outcome::Cancel;
                }
                self.discard_armed = true;
                self.error =
                    Some("Esc again discards your changes; Ctrl-S submits them".to_owned());
            }
            _ => {}
        }
        Outcome::Stay
    }

    fn check_name(&self) -> Option<String> {
        if self.purpose != Purpose::Create || self.node_name().is_empty() {
            return None;
        }
        crate::xmpp::session::check_node_name(&self.node_name())
            .err()
            .map(|e| format!("node name: {e}"))
    }

    /// Open the selected row's editor (Enter), or toggle it (Space: booleans).
    fn open(&mut self, toggle_only: bool) {
        self.error = None;
        let Some(row) = self.selected_row() else {
            return;
        };
        let i = match row {
            Row::Name if !toggle_only => {
                self.edit = Some(Edit::Text(Input::new(self.name.value().to_owned())));
                return;
            }
            Row::Name => return,
            Row::Field(i) => i,
        };
        let f = &self.form.fields[i];
        match &f.kind {
            FieldKind::Boolean => {
                let now = f.bool_value().unwrap_or(false);
                self.form.fields[i].values = vec![if now { "0" } else { "1" }.to_owned()];
            }
            _ if toggle_only => {}
            FieldKind::Fixed | FieldKind::Hidden => {
                self.error = Some("this field is the service's text: it cannot be changed".into());
            }
            FieldKind::ListSingle | FieldKind::ListMulti if !f.options.is_empty() => {
                let multi = f.kind == FieldKind::ListMulti;
                let cursor = f
                    .options
                    .iter()
                    .position(|o| f.values.first() == Some(&o.value))
                    .unwrap_or(0);
                self.edit = Some(Edit::Pick(Picker {
                    filter: Input::default(),
                    cursor,
                    chosen: f.values.clone(),
                    multi,
                }));
            }
            FieldKind::JidMulti | FieldKind::ListMulti => {
                self.edit = Some(Edit::Text(Input::new(f.values.join(", "))));
            }
            _ => self.edit = Some(Edit::Text(Input::new(f.values.join("\n")))),
        }
    }

    fn text_action(&mut self, action: Action) -> Outcome {
        match action {
            Action::Cancel | Action::Close => {
                self.edit = None;
                self.error = None;
            }
            Action::NewLine => {
                let multi = self
                    .selected_field()
                    .is_some_and(|f| f.kind == FieldKind::TextMulti);
                if let (true, Some(Edit::Text(input))) = (multi, &mut self.edit) {
                    input.handle(InputRequest::InsertChar('\n'));
                }
            }
            Action::Accept | Action::Expand => {
                let Some(Edit::Text(input)) = &self.edit else {
                    return Outcome::Stay;
                };
                let text = input.value().to_owned();
                match self.selected_row() {
                    Some(Row::Name) => {
                        self.name = Input::new(text.trim().to_owned());
                        self.edit = None;
                        self.error = self.check_name();
                    }
                    Some(Row::Field(i)) => {
                        let f = &self.form.fields[i];
                        let values: Vec<String> = match f.kind {
                            FieldKind::JidMulti | FieldKind::ListMulti => text
                                .split(',')
                                .map(|v| v.trim().to_owned())
                                .filter(|v| !v.is_empty())
                                .collect(),
                            FieldKind::TextMulti => text.split('\n').map(str::to_owned).collect(),
                            _ if text.is_empty() => Vec::new(),
                            _ => vec![text],
                        };
                        match f.check(values) {
                            Ok(values) => {
                                self.form.fields[i].values = values;
                                self.edit = None;
                                self.error = None;
                            }
                            Err(why) => self.error = Some(why),
                        }
                    }
                    None => self.edit = None,
                }
            }
            _ => {}
        }
        Outcome::Stay
    }

    fn pick_action(&mut self, action: Action, page: usize) -> Outcome {
        let matches = self.matches();
        let last = matches.len().saturating_sub(1);
        let Some(Edit::Pick(p)) = &mut self.edit else {
            return Outcome::Stay;
        };
        if let Some(at) = action.moved(p.cursor, page, last) {
            p.cursor = at;
            return Outcome::Stay;
        }
        match action {
            Action::Cancel | Action::Close => self.edit = None,
            Action::Toggle if p.multi => {
                if let (Some(&o), Some(Row::Field(i))) =
                    (matches.get(p.cursor), self.rows.get(self.selected))
                {
                    let value = self.form.fields[*i].options[o].value.clone();
                    if let Some(at) = p.chosen.iter().position(|v| *v == value) {
                        p.chosen.remove(at);
                    } else {
                        p.chosen.push(value);
                    }
                }
            }
            Action::Accept | Action::Expand | Action::Toggle => {
                let Some(Row::Field(i)) = self.rows.get(self.selected).copied() else {
                    return Outcome::Stay;
                };
                let values = if p.multi {
                    // In the options' order.
                    let f = &self.form.fields[i];
                    f.options
                        .iter()
                        .filter(|o| p.chosen.contains(&o.value))
                        .map(|o| o.value.clone())
                        .collect()
                } else if let Some(&o) = matches.get(p.cursor) {
                    vec![self.form.fields[i].options[o].value.clone()]
                } else {
                    // Nothing matches the filter: nothing to choose.
                    return Outcome::Stay;
                };
                self.form.fields[i].values = values;
                self.edit = None;
                self.error = None;
            }
            _ => {}
        }
        Outcome::Stay
    }

    /// A key that types, in an open edit (text, or the picker's filter).
    pub fn key(&mut self, key: KeyEvent) {
        let input = match &mut self.edit {
            Some(Edit::Text(input)) => input,
            Some(Edit::Pick(p)) => {
                p.cursor = 0;
                &mut p.filter
            }
            None => return,
        };
        super::update::edit_line(input, key);
    }

    /// Paste into the open edit (one line, except in text-multi).
    pub fn paste(&mut self, text: &str) {
        let multi = self
            .selected_field()
            .is_some_and(|f| f.kind == FieldKind::TextMulti);
        let clean = crate::sanitize::outgoing(text);
        let clean = if multi {
            clean
        } else {
            clean.replace('\n', " ")
        };
        let input = match &mut self.edit {
            Some(Edit::Text(input)) => input,
            Some(Edit::Pick(p)) => &mut p.filter,
            None => return,
        };
        for c in clean.chars() {
            input.handle(InputRequest::InsertChar(c));
        }
    }
}

/// Is this key one that types (not a binding)?
pub fn types(key: &KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char(_)) && !key.modifiers.contains(KeyModifiers::CONTROL)
        || matches!(
            key.code,
            KeyCode::Backspace | KeyCode::Delete | KeyCode::Left | KeyCode::Right
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::form::{Choice, FormKind};

    fn form() -> Form {
        let mut access = Field::new("pubsub#access_model", FieldKind::ListSingle, &["open"]);
        access.options = ["open", "whitelist", "authorize"]
            .iter()
            .map(|v| Choice {
                label: None,
                value: (*v).to_owned(),
            })
            .collect();
        let mut groups = Field::new("pubsub#roster_groups_allowed", FieldKind::ListMulti, &[]);
        groups.options = ["friends", "family", "work"]
            .iter()
            .map(|v| Choice {
                label: Some(format!("Group {v}")),
                value: (*v).to_owned(),
            })
            .collect();
        Form::new(
            FormKind::Form,
            vec![
                Field::new("FORM_TYPE", FieldKind::Hidden, &["x"]),
                Field::new("pubsub#title", FieldKind::TextSingle, &["News"]),
                Field::new("pubsub#notify_retract", FieldKind::Boolean, &["1"]),
                access,
                groups,
                Field::new("pubsub#contact", FieldKind::JidMulti, &[]),
                Field::new("pubsub#children", FieldKind::TextMulti, &[]),
                Field::new("", FieldKind::Fixed, &["Read this"]),
            ],
        )
    }

    fn typed(e: &mut FormEditor, text: &str) {
        for c in text.chars() {
            e.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    fn go_to(e: &mut FormEditor, var: &str) {
        e.selected = e
            .rows
            .iter()
            .position(
                |r| matches!(r, Row::Field(i) if e.form.fields[*i].var.as_deref() == Some(var)),
            )
            .expect("the field has a row");
    }

    #[test]
    fn hidden_fields_have_no_row_and_stay_in_the_submission() {
        let e = FormEditor::configure("n", form());
        assert_eq!(e.rows.len(), 7);
        assert_eq!(e.form.submission().form_type(), Some("x"));
    }

    #[test]
    fn text_is_edited_and_a_bad_value_keeps_the_editor_open() {
        let mut e = FormEditor::configure("n", form());
        go_to(&mut e, "pubsub#title");
        e.action(Action::Expand, 10);
        for _ in 0..4 {
            e.key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
        }
        typed(&mut e, "Tidings\u{1b}");
        e.action(Action::Accept, 10);
        assert!(e.edit.is_none());
        assert_eq!(
            e.form.field("pubsub#title").map(Field::value),
            Some("Tidings")
        );
        assert_eq!(e.changed(), ["pubsub#title"]);
        // A JID that is not one: the reason, and the edit stays open with the text.
        go_to(&mut e, "pubsub#contact");
        e.action(Action::Expand, 10);
        typed(&mut e, "a@x, @bad");
        e.action(Action::Accept, 10);
        assert!(
            e.error
                .as_deref()
                .is_some_and(|m| m.contains("not a valid JID")),
            "{:?}",
            e.error
        );
        assert!(matches!(&e.edit, Some(Edit::Text(i)) if i.value() == "a@x, @bad"));
        // Fixed: not editable, cancel leaves it as it was.
        e.action(Action::Cancel, 10);
        assert!(e.edit.is_none() && e.error.is_none());
        assert_eq!(
            e.form.field("pubsub#contact").map(|f| f.values.len()),
            Some(0)
        );
    }

    #[test]
    fn booleans_toggle_and_lists_pick() {
        let mut e = FormEditor::configure("n", form());
        go_to(&mut e, "pubsub#notify_retract");
        e.action(Action::Toggle, 10);
        assert_eq!(
            e.form
                .field("pubsub#notify_retract")
                .and_then(Field::bool_value),
            Some(false)
        );
        e.action(Action::Expand, 10);
        assert_eq!(
            e.form
                .field("pubsub#notify_retract")
                .and_then(Field::bool_value),
            Some(true)
        );
        // list-single: filter, pick.
        go_to(&mut e, "pubsub#access_model");
        e.action(Action::Expand, 10);
        typed(&mut e, "WHITE");
        assert_eq!(e.matches(), [1]);
        e.action(Action::Accept, 10);
        assert_eq!(
            e.form.field("pubsub#access_model").map(Field::value),
            Some("whitelist")
        );
        // Nothing matches: Enter chooses nothing, the value stays.
        e.action(Action::Expand, 10);
        typed(&mut e, "zzz");
        e.action(Action::Accept, 10);
        assert!(e.edit.is_some());
        e.action(Action::Cancel, 10);
        assert_eq!(
            e.form.field("pubsub#access_model").map(Field::value),
            Some("whitelist")
        );
        // list-multi: a checklist, by label too, in the options' order.
        go_to(&mut e, "pubsub#roster_groups_allowed");
        e.action(Action::Expand, 10);
        e.action(Action::Bottom, 10);
        e.action(Action::Toggle, 10);
        typed(&mut e, "group fri");
        e.action(Action::Toggle, 10);
        e.action(Action::Accept, 10);
        assert_eq!(
            e.form
                .field("pubsub#roster_groups_allowed")
                .map(|f| f.values.clone()),
            Some(vec!["friends".to_owned(), "work".to_owned()])
        );
    }

    #[test]
    fn text_multi_takes_lines() {
        let mut e = FormEditor::configure("n", form());
        go_to(&mut e, "pubsub#children");
        e.action(Action::Expand, 10);
        typed(&mut e, "a");
        e.action(Action::NewLine, 10);
        typed(&mut e, "b");
        e.action(Action::Accept, 10);
        assert_eq!(
            e.form.field("pubsub#children").map(|f| f.values.clone()),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn submit_cancel_and_a_refusal() {
        let mut e = FormEditor::configure("n", form());
        // Nothing changed: Esc cancels at once.
        assert_eq!(e.action(Action::Close, 10), Outcome::Cancel);
        go_to(&mut e, "pubsub#notify_retract");
        e.action(Action::Toggle, 10);
        // Changed: the first Esc warns, the second discards.
        assert_eq!(e.action(Action::Close, 10), Outcome::Stay);
        assert!(e.error.is_some());
        assert_eq!(e.action(Action::Close, 10), Outcome::Cancel);
        // Submit; the service refuses; the edits stay.
        let mut e = FormEditor::configure("n", form());
        go_to(&mut e, "pubsub#notify_retract");
        e.action(Action::Toggle, 10);
        assert_eq!(e.action(Action::Submit, 10), Outcome::Submit);
        assert!(e.sending);
        assert_eq!(e.action(Action::Submit, 10), Outcome::Stay, "once");
        e.refused("not-acceptable: max_items: out of bounds".into());
        assert!(!e.sending);
        assert_eq!(e.changed(), ["pubsub#notify_retract"]);
        assert_eq!(e.action(Action::Submit, 10), Outcome::Submit);
    }

    #[test]
    fn a_new_node_has_a_name_row_and_sends_only_changes() {
        let mut e = FormEditor::create(form());
        assert_eq!(e.rows[0], Row::Name);
        e.action(Action::Expand, 10);
        typed(&mut e, "  fresh ");
        e.action(Action::Accept, 10);
        assert_eq!(e.node_name(), "fresh");
        go_to(&mut e, "pubsub#notify_retract");
        e.action(Action::Toggle, 10);
        assert_eq!(
            e.changed_values(),
            [("pubsub#notify_retract".to_owned(), "0".to_owned())]
        );
        // A name with control characters cannot be submitted.
        e.name = Input::new("a\u{7}b".into());
        assert_eq!(e.action(Action::Submit, 10), Outcome::Stay);
        assert!(
            e.error
                .as_deref()
                .is_some_and(|m| m.starts_with("node name:"))
        );
        // An empty name is an instant node.
        e.name = Input::default();
        assert_eq!(e.action(Action::Submit, 10), Outcome::Submit);
    }

    #[test]
    fn ten_thousand_options_filter() {
        let mut f = form();
        f.fields[3].options = (0..10_000)
            .map(|i| Choice {
                label: None,
                value: format!("v{i}"),
            })
            .collect();
        let mut e = FormEditor::configure("n", f);
        go_to(&mut e, "pubsub#access_model");
        e.action(Action::Expand, 10);
        assert_eq!(e.matches().len(), 10_000);
        typed(&mut e, "v9999");
        assert_eq!(e.matches(), [9999]);
        e.action(Action::Accept, 10);
        assert_eq!(
            e.form.field("pubsub#access_model").map(Field::value),
            Some("v9999")
        );
    }
}
