//! Data forms (XEP-0004), as node configuration uses them (XEP-0060 §8.2): a service sends a
//! form, the owner changes values and submits it (or cancels).
//!
//! By hand rather than xmpp-parsers' `DataForm`: that type rejects a form with a field type it
//! does not know, and a form from a peer must stay usable whatever it holds. Here an unknown
//! type is kept by name and edited as text, and everything read is bounded ([`MAX_FIELDS`],
//! [`MAX_OPTIONS`], [`MAX_VALUES`], [`MAX_VALUE_BYTES`]) and sanitised: labels and
//! descriptions for one line, values with their newlines (text-multi) but without control or
//! bidi characters.
//!
//! [`Form::apply`] is the one way values change, from the command line (`--set KEY=VALUE`)
//! and from the TUI's editor alike: it checks each value against the field's type and options
//! before anything is sent.

use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;

use super::{NS_DATA, el, set_attr, text_el};
use crate::sanitize;

/// Fields read from one form; more are dropped (and [`Form::cut`] says so).
pub const MAX_FIELDS: usize = 1000;
/// Options of one list field.
pub const MAX_OPTIONS: usize = 20_000;
/// Values of one field.
pub const MAX_VALUES: usize = 10_000;
/// Bytes of one value (longer ones are cut at a character boundary).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Characters of a label, a description, a title or an instruction line.
const MAX_LABEL: usize = 300;

/// What the form is for (its `type` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// To fill in.
    Form,
    Submit,
    Cancel,
    Result,
}

impl FormKind {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("submit") => Self::Submit,
            Some("cancel") => Self::Cancel,
            Some("result") => Self::Result,
            _ => Self::Form,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Submit => "submit",
            Self::Cancel => "cancel",
            Self::Result => "result",
        }
    }
}

/// A field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Boolean,
    Fixed,
    Hidden,
    JidMulti,
    JidSingle,
    ListMulti,
    ListSingle,
    TextMulti,
    TextPrivate,
    TextSingle,
    /// A type XEP-0004 does not define, by its name: edited as text.
    Unknown(String),
}

impl FieldKind {
    /// A missing type means text-single (XEP-0004 §3.3).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("boolean") => Self::Boolean,
            Some("fixed") => Self::Fixed,
            Some("hidden") => Self::Hidden,
            Some("jid-multi") => Self::JidMulti,
            Some("jid-single") => Self::JidSingle,
            Some("list-multi") => Self::ListMulti,
            Some("list-single") => Self::ListSingle,
            Some("text-multi") => Self::TextMulti,
            Some("text-private") => Self::TextPrivate,
            None | Some("text-single") => Self::TextSingle,
            Some(other) => Self::Unknown(sanitize::display_max(other, 40)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Boolean => "boolean",
            Self::Fixed => "fixed",
            Self::Hidden => "hidden",
            Self::JidMulti => "jid-multi",
            Self::JidSingle => "jid-single",
            Self::ListMulti => "list-multi",
            Self::ListSingle => "list-single",
            Self::TextMulti => "text-multi",
            Self::TextPrivate => "text-private",
            Self::TextSingle => "text-single",
            Self::Unknown(name) => name,
        }
    }

    /// Holds several values.
    pub fn is_multi(&self) -> bool {
        matches!(self, Self::JidMulti | Self::ListMulti | Self::TextMulti)
    }

    /// The user may change it (hidden and fixed fields are the service's).
    pub fn is_editable(&self) -> bool {
        !matches!(self, Self::Fixed | Self::Hidden)
    }
}

/// The XEP-0122 namespace of a field's `<validate/>`.
pub const NS_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";

/// What a field's `<validate/>` (XEP-0122) says about its values, where it is about numbers:
/// whole numbers within a range (`max` allowed for `pubsub:integer-or-max`, as Prosody's
/// `max_items` says). Other datatypes are not checked here (the service checks them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validate {
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// The literal `max` is a value too.
    pub or_max: bool,
}

impl Validate {
    fn read(f: &Element) -> Option<Self> {
        let v = f.get_child("validate", NS_VALIDATE)?;
        let datatype = v.attr("datatype").unwrap_or("xs:string");
        let or_max = datatype == "pubsub:integer-or-max";
        let integer = or_max
            || matches!(
                datatype,
                "xs:integer"
                    | "xs:int"
                    | "xs:long"
                    | "xs:short"
                    | "xs:byte"
                    | "xs:nonNegativeInteger"
                    | "xs:positiveInteger"
            );
        if !integer {
            return None;
        }
        let range = v.get_child("range", NS_VALIDATE);
        let bound = |name: &str| {
            range
                .and_then(|r| r.attr(name))
                .and_then(|b| b.trim().parse().ok())
        };
        let min = bound("min").or(match datatype {
            "xs:nonNegativeInteger" => Some(0),
            "xs:positiveInteger" => Some(1),
            _ => None,
        });
        Some(Self {
            min,
            max: bound("max"),
            or_max,
        })
    }

    fn build(&self) -> Element {
        let datatype = if self.or_max {
            "pubsub:integer-or-max"
        } else {
            "xs:integer"
        };
        let mut v = el("validate", NS_VALIDATE, &[("datatype", datatype)]);
        if self.min.is_some() || self.max.is_some() {
            let mut range = el("range", NS_VALIDATE, &[]);
            if let Some(a) = self.min {
                set_attr(&mut range, "min", a.to_string());
            }
            if let Some(b) = self.max {
                set_attr(&mut range, "max", b.to_string());
            }
            v.append_child(range);
        }
        v
    }

    /// Words for the allowed values (`1 to 10000, or max`).
    pub fn describe(&self) -> String {
        let range = match (self.min, self.max) {
            (Some(a), Some(b)) => format!("a whole number from {a} to {b}"),
            (Some(a), None) => format!("a whole number from {a}"),
            (None, Some(b)) => format!("a whole number up to {b}"),
            (None, None) => "a whole number".to_owned(),
        };
        if self.or_max {
            format!("{range}, or max")
        } else {
            range
        }
    }

    fn check(&self, v: &str) -> bool {
        let v = v.trim();
        if self.or_max && v == "max" {
            return true;
        }
        v.parse::<i64>()
            .is_ok_and(|n| self.min.is_none_or(|a| n >= a) && self.max.is_none_or(|b| n <= b))
    }
}

/// One `<option/>` of a list field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub label: Option<String>,
    pub value: String,
}

/// One `<field/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// `None` only for fixed fields (text shown in the form).
    pub var: Option<String>,
    pub kind: FieldKind,
    pub label: Option<String>,
    pub desc: Option<String>,
    pub required: bool,
    pub values: Vec<String>,
    pub options: Vec<Choice>,
    /// What XEP-0122 says about the values (numbers and their range), when it does.
    pub validate: Option<Validate>,
}

impl Field {
    /// A field of this type with one value (no label).
    pub fn new(var: &str, kind: FieldKind, values: &[&str]) -> Self {
        Self {
            var: Some(var.to_owned()),
            kind,
            label: None,
            desc: None,
            required: false,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            options: Vec::new(),
            validate: None,
        }
    }

    /// The first value, or "".
    pub fn value(&self) -> &str {
        self.values.first().map_or("", String::as_str)
    }

    /// A boolean's value (`1`/`true` and `0`/`false`); `None` when unset or not a boolean.
    pub fn bool_value(&self) -> Option<bool> {
        parse_bool(self.value())
    }

    /// The name to show: the label, else the var.
    pub fn title(&self) -> &str {
        self.label
            .as_deref()
            .or(self.var.as_deref())
            .unwrap_or_default()
    }

    /// The label of an option's value, if it has one.
    pub fn option_label(&self, value: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|o| o.value == value)
            .and_then(|o| o.label.as_deref())
    }

    /// Check and normalise new values for this field: `Err` says what is wrong and, for lists,
    /// which values are allowed.
    pub fn check(&self, values: Vec<String>) -> Result<Vec<String>, String> {
        let name = self.var.as_deref().unwrap_or("the field");
        if !self.kind.is_editable() {
            return Err(format!(
                "{name} is a {} field: the service sets it",
                self.kind.as_str()
            ));
        }
        if !self.kind.is_multi() && values.len() > 1 {
            return Err(format!(
                "{name} ({}) takes one value, not {}",
                self.kind.as_str(),
                values.len()
            ));
        }
        let values: Vec<String> = values
            .into_iter()
            .map(|v| bound(&sanitize::outgoing(&v)))
            .collect();
        if values.len() > MAX_VALUES {
            return Err(format!("{name}: at most {MAX_VALUES} values"));
        }
        match &self.kind {
            FieldKind::Boolean => {
                let [v] = values.as_slice() else {
                    return Err(format!("{name} is a boolean: give true or false"));
                };
                match parse_bool(v) {
                    Some(b) => Ok(vec![if b { "1" } else { "0" }.to_owned()]),
                    None => Err(format!(
                        "{name} is a boolean: {v:?} is not true or false (also 1/0, yes/no, on/off)"
                    )),
                }
            }
            FieldKind::ListSingle | FieldKind::ListMulti => {
                if self.options.is_empty() {
                    return Ok(values);
                }
                if let Some(bad) = values
                    .iter()
                    .find(|v| !self.options.iter().any(|o| &o.value == *v))
                {
                    return Err(format!(
                        "{name}: {bad:?} is not one of the allowed values: {}",
                        self.allowed()
                    ));
                }
                Ok(values)
            }
            FieldKind::JidSingle | FieldKind::JidMulti => {
                let values: Vec<String> = values
                    .into_iter()
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect();
                for v in &values {
                    if let Err(e) = Jid::new(v) {
                        return Err(format!("{name}: {v:?} is not a valid JID ({e})"));
                    }
                }
                Ok(values)
            }
            FieldKind::TextSingle | FieldKind::TextPrivate | FieldKind::Unknown(_) => {
                let values: Vec<String> =
                    values.into_iter().map(|v| v.replace('\n', " ")).collect();
                if let Some(rule) = &self.validate
                    && let Some(bad) = values.iter().find(|v| !rule.check(v))
                {
                    return Err(format!("{name}: {bad:?} is not {}", rule.describe()));
                }
                Ok(values)
            }
            FieldKind::TextMulti | FieldKind::Fixed | FieldKind::Hidden => Ok(values),
        }
    }

    /// The allowed values, listed for an error (with their labels; long lists cut).
    pub fn allowed(&self) -> String {
        const SHOWN: usize = 20;
        let mut parts: Vec<String> = self
            .options
            .iter()
            .take(SHOWN)
            .map(|o| match &o.label {
                Some(l) if l != &o.value => format!("{} ({l})", o.value),
                _ => o.value.clone(),
            })
            .collect();
        if self.options.len() > SHOWN {
            parts.push(format!("… {} more", self.options.len() - SHOWN));
        }
        parts.join(", ")
    }

    fn read(f: &Element) -> Self {
        let kind = FieldKind::parse(f.attr("type"));
        let label = f.attr("label").map(|l| sanitize::display_max(l, MAX_LABEL));
        let desc = f
            .get_child("desc", NS_DATA)
            .map(|d| sanitize::display_max(&d.text(), MAX_LABEL * 3))
            .filter(|d| !d.is_empty());
        let values = f
            .children()
            .filter(|c| c.is("value", NS_DATA))
            .take(MAX_VALUES)
            .map(|v| bound(&sanitize::text(&v.text())))
            .collect();
        let options = f
            .children()
            .filter(|c| c.is("option", NS_DATA))
            .filter_map(|o| {
                Some(Choice {
                    value: bound(&sanitize::text(&o.get_child("value", NS_DATA)?.text())),
                    label: o.attr("label").map(|l| sanitize::display_max(l, MAX_LABEL)),
                })
            })
            .take(MAX_OPTIONS)
            .collect();
        Self {
            var: f.attr("var").map(|v| sanitize::display_max(v, MAX_LABEL)),
            kind,
            label,
            desc,
            required: f.get_child("required", NS_DATA).is_some(),
            values,
            options,
            validate: Validate::read(f),
        }
    }

    fn build(&self, with_meta: bool) -> Element {
        let mut f = el("field", NS_DATA, &[]);
        if let Some(var) = &self.var {
            set_attr(&mut f, "var", var);
        }
        if with_meta || self.kind == FieldKind::Hidden {
            set_attr(&mut f, "type", self.kind.as_str());
        }
        if with_meta {
            if let Some(l) = &self.label {
                set_attr(&mut f, "label", l);
            }
            if let Some(d) = &self.desc {
                f.append_child(text_el("desc", NS_DATA, d));
            }
            if self.required {
                f.append_child(el("required", NS_DATA, &[]));
            }
            if let Some(v) = &self.validate {
                f.append_child(v.build());
            }
        }
        for v in &self.values {
            f.append_child(text_el("value", NS_DATA, v));
        }
        if with_meta {
            for o in &self.options {
                let mut opt = el("option", NS_DATA, &[]);
                if let Some(l) = &o.label {
                    set_attr(&mut opt, "label", l);
                }
                opt.append_child(text_el("value", NS_DATA, &o.value));
                f.append_child(opt);
            }
        }
        f
    }
}

/// `1`/`true`/`yes`/`on` and `0`/`false`/`no`/`off` (the last two pairs for people typing).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Cut a value to [`MAX_VALUE_BYTES`] at a character boundary.
fn bound(v: &str) -> String {
    if v.len() <= MAX_VALUE_BYTES {
        return v.to_owned();
    }
    let mut end = MAX_VALUE_BYTES;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_owned()
}

/// A data form (`<x xmlns='jabber:x:data'/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub title: Option<String>,
    pub instructions: Vec<String>,
    pub fields: Vec<Field>,
    /// Fields past [`MAX_FIELDS`] were dropped when it was read.
    pub cut: bool,
}

impl Form {
    /// A form of this kind with these fields.
    pub fn new(kind: FormKind, fields: Vec<Field>) -> Self {
        Self {
            kind,
            title: None,
            instructions: Vec::new(),
            fields,
            cut: false,
        }
    }

    /// A submission of a `FORM_TYPE` with these (var, value) pairs (a creation's
    /// configuration, publish-options).
    pub fn submit(form_type: &str, values: &[(String, String)]) -> Self {
        let mut fields = vec![Field::new("FORM_TYPE", FieldKind::Hidden, &[form_type])];
        for (var, value) in values {
            match fields.iter_mut().find(|f| f.var.as_deref() == Some(var)) {
                Some(f) => f.values.push(value.clone()),
                None => fields.push(Field::new(var, FieldKind::TextSingle, &[value])),
            }
        }
        Self::new(FormKind::Submit, fields)
    }

    /// `<x type='cancel'/>`
    pub fn cancel() -> Self {
        Self::new(FormKind::Cancel, Vec::new())
    }

    /// Read an `<x xmlns='jabber:x:data'/>` element.
    pub fn parse(x: &Element) -> Option<Self> {
        if !x.is("x", NS_DATA) {
            return None;
        }
        let all = || x.children().filter(|c| c.is("field", NS_DATA));
        let fields: Vec<Field> = all().take(MAX_FIELDS).map(Field::read).collect();
        Some(Self {
            kind: FormKind::parse(x.attr("type")),
            title: x
                .get_child("title", NS_DATA)
                .map(|t| sanitize::display_max(&t.text(), MAX_LABEL)),
            instructions: x
                .children()
                .filter(|c| c.is("instructions", NS_DATA))
                .take(20)
                .map(|i| sanitize::display_max(&i.text(), MAX_LABEL * 3))
                .collect(),
            cut: all().count() > fields.len(),
            fields,
        })
    }

    /// The first data form among `parent`'s children.
    pub fn find_in(parent: &Element) -> Option<Self> {
        parent.get_child("x", NS_DATA).and_then(Self::parse)
    }

    /// As an element: a form to fill in or a result with its labels, options and descriptions;
    /// a submission with only the vars and values.
    pub fn build(&self) -> Element {
        let mut x = el("x", NS_DATA, &[("type", self.kind.as_str())]);
        let with_meta = matches!(self.kind, FormKind::Form | FormKind::Result);
        if with_meta {
            if let Some(t) = &self.title {
                x.append_child(text_el("title", NS_DATA, t));
            }
            for i in &self.instructions {
                x.append_child(text_el("instructions", NS_DATA, i));
            }
        }
        if self.kind != FormKind::Cancel {
            for f in &self.fields {
                x.append_child(f.build(with_meta));
            }
        }
        x
    }

    /// What to send back: a submission with every field that has a var (fixed ones are text,
    /// not data), holding its values as they are now.
    #[must_use]
    pub fn submission(&self) -> Self {
        Self::new(
            FormKind::Submit,
            self.fields
                .iter()
                .filter(|f| f.var.is_some() && f.kind != FieldKind::Fixed)
                .cloned()
                .collect(),
        )
    }

    /// The `FORM_TYPE` (hidden field), if the form says.
    pub fn form_type(&self) -> Option<&str> {
        self.field("FORM_TYPE").map(Field::value)
    }

    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var.as_deref() == Some(var))
    }

    /// The index of the field a user's key names: the var itself, or the var with a
    /// `pubsub#` prefix left out.
    pub fn find(&self, key: &str) -> Option<usize> {
        let key = key.trim();
        self.fields
            .iter()
            .position(|f| f.var.as_deref() == Some(key))
            .or_else(|| {
                self.fields
                    .iter()
                    .position(|f| f.var.as_deref() == Some(&format!("pubsub#{key}")))
            })
    }

    /// The vars a user may set, for an error.
    pub fn editable_vars(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|f| f.kind.is_editable())
            .filter_map(|f| f.var.as_deref())
            .collect()
    }

    /// Set fields from `KEY=VALUE` pairs, all or nothing: a key given more than once gives a
    /// multi-value field all its values; list-multi and jid-multi values may also be
    /// comma-separated. Returns the vars changed, in form order. `Err` names the first bad
    /// key or value (with the allowed values), and the form is left as it was.
    pub fn apply(&mut self, sets: &[(String, String)]) -> Result<Vec<String>, String> {
        let mut new: Vec<(usize, Vec<String>)> = Vec::new();
        for (key, value) in sets {
            let Some(i) = self.find(key) else {
                return Err(format!(
                    "no field {key:?} in the form; its fields are: {}",
                    self.editable_vars().join(", ")
                ));
            };
            let kind = &self.fields[i].kind;
            let parts: Vec<String> = if matches!(kind, FieldKind::ListMulti | FieldKind::JidMulti) {
                value
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            } else if *kind == FieldKind::TextMulti {
                value.split('\n').map(str::to_owned).collect()
            } else {
                vec![value.clone()]
            };
            match new.iter_mut().find(|(j, _)| *j == i) {
                Some((_, values)) => values.extend(parts),
                None => new.push((i, parts)),
            }
        }
        let mut checked = Vec::new();
        for (i, values) in new {
            let values = self.fields[i].check(values)?;
            checked.push((i, values));
        }
        let mut changed = Vec::new();
        checked.sort_by_key(|(i, _)| *i);
        for (i, values) in checked {
            let f = &mut self.fields[i];
            if f.values != values {
                f.values = values;
                changed.push(f.var.clone().unwrap_or_default());
            }
        }
        Ok(changed)
    }
}

/// `KEY=VALUE` from the command line.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_xml as parse, to_xml};
    use std::fmt::Write as _;

    /// Prosody 0.12's node configuration form (abridged: one field of each kind it uses).
    const PROSODY: &str = "<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#title' type='text-single' label='Title'><value>News</value></field><field var='pubsub#max_items' type='text-single' label='Max # of items to persist'><value>20</value></field><field var='pubsub#notify_retract' type='boolean' label='Whether to notify subscribers when items are removed from the node'><value>1</value></field><field var='pubsub#access_model' type='list-single' label='Specify the subscriber model'><option label='open'><value>open</value></option><option label='whitelist'><value>whitelist</value></option><value>open</value></field><field var='pubsub#children' type='text-multi'/><field type='fixed'><value>Fixed text</value></field></x>";

    fn prosody() -> Form {
        Form::parse(&parse(PROSODY)).expect("a form")
    }

    #[test]
    fn reads_fields_of_each_kind() {
        let f = prosody();
        assert_eq!(f.kind, FormKind::Form);
        assert_eq!(
            f.form_type(),
            Some("http://jabber.org/protocol/pubsub#node_config")
        );
        assert_eq!(f.fields.len(), 7);
        let access = f.field("pubsub#access_model").expect("access");
        assert_eq!(access.kind, FieldKind::ListSingle);
        assert_eq!(access.options.len(), 2);
        assert_eq!(access.value(), "open");
        assert_eq!(
            f.field("pubsub#notify_retract").and_then(Field::bool_value),
            Some(true)
        );
        assert_eq!(f.fields[6].var, None);
        assert_eq!(f.fields[6].kind, FieldKind::Fixed);
        assert!(!f.cut);
    }

    #[test]
    fn a_form_round_trips_and_a_submission_carries_only_data() {
        let f = prosody();
        assert_eq!(Form::parse(&parse(&to_xml(&f.build()))), Some(f.clone()));
        let sub = f.submission();
        let xml = to_xml(&sub.build());
        assert!(xml.contains("type='submit'"), "{xml}");
        assert!(!xml.contains("label"), "labels stay out: {xml}");
        assert!(!xml.contains("<option"), "{xml}");
        assert!(!xml.contains("Fixed text"), "fixed fields stay out: {xml}");
        assert!(
            xml.contains("type='hidden'"),
            "FORM_TYPE keeps its type: {xml}"
        );
        let back = Form::parse(&parse(&xml)).expect("a form");
        assert_eq!(back.fields.len(), 6);
        assert_eq!(back.field("pubsub#max_items").map(Field::value), Some("20"));
        let cancel = to_xml(&Form::cancel().build());
        assert_eq!(cancel, "<x xmlns='jabber:x:data' type='cancel'/>");
    }

    #[test]
    fn apply_checks_every_value_before_changing_any() {
        let mut f = prosody();
        let set = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        // With and without the prefix; booleans normalised.
        let changed = f
            .apply(&[
                set("title", "Tidings"),
                set("pubsub#notify_retract", "no"),
                set("access_model", "whitelist"),
            ])
            .expect("valid");
        assert_eq!(
            changed,
            [
                "pubsub#title",
                "pubsub#notify_retract",
                "pubsub#access_model"
            ]
        );
        assert_eq!(
            f.field("pubsub#notify_retract").map(Field::value),
            Some("0")
        );
        // A bad value anywhere: nothing changes, and the error lists the allowed values.
        let before = f.clone();
        let e = f
            .apply(&[set("title", "Other"), set("access_model", "members")])
            .expect_err("not allowed");
        assert!(
            e.contains("\"members\" is not one of the allowed values: open, whitelist"),
            "{e}"
        );
        assert_eq!(f, before);
        let e = f.apply(&[set("colour", "red")]).expect_err("unknown");
        assert!(e.starts_with("no field \"colour\""), "{e}");
        assert!(e.contains("pubsub#max_items"), "{e}");
        assert!(
            !e.contains("FORM_TYPE"),
            "hidden fields are not offered: {e}"
        );
        let e = f.apply(&[set("FORM_TYPE", "x")]).expect_err("hidden");
        assert!(e.contains("the service sets it"), "{e}");
        let e = f
            .apply(&[set("notify_retract", "maybe")])
            .expect_err("bool");
        assert!(e.contains("not true or false"), "{e}");
        // Text-multi: repeated keys and newlines give several values.
        f.apply(&[set("children", "a\nb"), set("children", "c")])
            .expect("multi");
        assert_eq!(
            f.field("pubsub#children").map(|c| c.values.clone()),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        // Nothing new: nothing changed.
        assert_eq!(f.apply(&[set("title", "Tidings")]), Ok(Vec::new()));
    }

    #[test]
    fn jids_are_validated_and_lists_split_on_commas() {
        let mut f = Form::new(
            FormKind::Form,
            vec![
                Field::new("pubsub#contact", FieldKind::JidMulti, &[]),
                Field::new("pubsub#owner", FieldKind::JidSingle, &[]),
            ],
        );
        f.apply(&[("contact".into(), "a@x, b@y".into())])
            .expect("two JIDs");
        assert_eq!(f.fields[0].values, ["a@x", "b@y"]);
        let e = f
            .apply(&[("owner".into(), "@bad".into())])
            .expect_err("bad JID");
        assert!(e.contains("not a valid JID"), "{e}");
        let e = f
            .apply(&[
                ("owner".into(), "a@x".into()),
                ("owner".into(), "b@x".into()),
            ])
            .expect_err("single");
        assert!(e.contains("takes one value"), "{e}");
    }

    #[test]
    fn odd_forms_stay_usable() {
        // An unknown type is kept by name and edited as text; control characters and bidi
        // overrides in labels and values are gone; an option without a value is skipped.
        let odd = parse(
            "<x xmlns='jabber:x:data' type='form'><field var='a' type='colour-picker' label='Pick&#x9b;2J\u{202e}'><value>red&#x85;</value></field><field var='b' type='list-single'><option label='no value'/><option><value>v</value></option></field></x>",
        );
        let mut f = Form::parse(&odd).expect("a form");
        assert_eq!(f.fields[0].kind, FieldKind::Unknown("colour-picker".into()));
        assert_eq!(f.fields[0].label.as_deref(), Some("Pick2J"));
        assert_eq!(f.fields[0].value(), "red");
        assert_eq!(f.fields[1].options.len(), 1);
        f.apply(&[("a".into(), "blue\u{1b}[2J".into())])
            .expect("text");
        assert_eq!(f.fields[0].value(), "blue[2J", "ESC cannot be sent");
        // A huge form: bounded, and said so.
        let mut big = String::from("<x xmlns='jabber:x:data' type='form'>");
        big.push_str("<field var='many' type='list-single'>");
        for i in 0..10_000 {
            let _ = write!(big, "<option><value>v{i}</value></option>");
        }
        big.push_str("</field>");
        for i in 0..(MAX_FIELDS + 5) {
            let _ = write!(big, "<field var='f{i}'/>");
        }
        big.push_str("</x>");
        let f = Form::parse(&parse(&big)).expect("a form");
        assert_eq!(f.fields.len(), MAX_FIELDS);
        assert!(f.cut);
        assert_eq!(f.fields[0].options.len(), 10_000);
        let e = f.fields[0]
            .check(vec!["nope".into()])
            .expect_err("not an option");
        assert!(e.ends_with("… 9980 more"), "{e}");
    }

    #[test]
    fn numbers_are_checked_as_xep_0122_says() {
        // Prosody 0.12's max_items.
        let mut f = Form::parse(&parse(
            "<x xmlns='jabber:x:data' type='form'><field var='pubsub#max_items' type='text-single'><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='pubsub:integer-or-max'><range max='10000' min='1'/></validate><value>20</value></field><field var='n' type='text-single'><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'/></field></x>",
        ))
        .expect("form");
        let set = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        for ok in ["1", "10000", "max", " 5 "] {
            assert!(f.apply(&set("max_items", ok)).is_ok(), "{ok}");
        }
        for bad in ["0", "10001", "ten", "-1", ""] {
            let e = f.apply(&set("max_items", bad)).expect_err(bad);
            assert!(
                e.ends_with("is not a whole number from 1 to 10000, or max"),
                "{e}"
            );
        }
        // A string datatype is not checked here.
        assert!(f.apply(&set("n", "anything")).is_ok());
        assert!(f.field("n").is_some_and(|x| x.validate.is_none()));
        // A form without it: no check.
        let mut plain = prosody();
        assert!(plain.apply(&set("max_items", "lots")).is_ok());
    }

    #[test]
    fn assignments() {
        assert_eq!(
            parse_assignment("pubsub#title=a=b"),
            Ok(("pubsub#title".into(), "a=b".into()))
        );
        assert_eq!(
            parse_assignment("title="),
            Ok(("title".into(), String::new()))
        );
        assert!(parse_assignment("=x").is_err());
        assert!(parse_assignment("title").is_err());
    }
}
