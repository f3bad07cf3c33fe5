//! Filter expressions over items: what `/` in the TUI and `watch --filter` take.
//!
//! An expression is terms separated by spaces; an item matches when every term does.
//! Double quotes keep spaces inside one term.
//!
//! | term            | matches an item …                                                    |
//! |-----------------|----------------------------------------------------------------------|
//! | `word`          | whose sender, id, text or any payload text or attribute value contains `word` (any case) |
//! | `"two words"`   | the same, for the phrase                                             |
//! | `~regex`        | where that text matches the regular expression (`~"a b"` with spaces) |
//! | `name:text`     | with an element or attribute `name` whose value contains `text` (any case) |
//! | `@name>20`      | with a field `name` whose number compares so (`>`, `>=`, `<`, `<=`, `=`, `!=`); units after the number are ignored (`21.5 °C`) |
//! | `@name=text`    | with a field `name` equal to `text` (any case), when either is not a number |
//! | `!term`         | that the term does not match                                         |
//!
//! Fields with their own meaning: `from:` (the sender or the publisher), `id:`, `node:`. In
//! JSON items (XEP-0335) a field is a key anywhere in the JSON, or a dotted path
//! (`tests.passed`).

use regex::{Regex, RegexBuilder};

use super::FeedItem;

/// Longest expression taken, in bytes.
pub const MAX_EXPR: usize = 1000;
/// The compiled size a regular expression may take.
const REGEX_SIZE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Debug, Clone)]
enum Test {
    /// Any text of the item matches.
    Any(Regex),
    /// A field's value contains the text.
    Field { name: String, re: Regex },
    /// A field compares with a value.
    Compare {
        name: String,
        op: Op,
        number: Option<f64>,
        text: String,
    },
}

#[derive(Debug, Clone)]
struct Term {
    not: bool,
    test: Test,
}

/// A compiled filter expression.
#[derive(Debug, Clone)]
pub struct Filter {
    terms: Vec<Term>,
    source: String,
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Split at spaces outside double quotes; quotes are removed. Each token says whether it was
/// written whole in quotes (then it is plain text, whatever it starts with).
fn tokens(expr: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    // The token so far is one quoted string.
    let mut whole: Option<bool> = None;
    for c in expr.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                whole = match whole {
                    None => Some(true),
                    Some(w) => Some(w && !quoted),
                };
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(w) = whole.take() {
                    out.push((std::mem::take(&mut cur), w));
                }
            }
            c => {
                cur.push(c);
                whole = Some(quoted && whole == Some(true));
            }
        }
    }
    if quoted {
        return Err("a double quote is not closed".to_owned());
    }
    if let Some(w) = whole {
        out.push((cur, w));
    }
    Ok(out)
}

/// A case-insensitive regex for a literal.
fn literal(text: &str) -> Result<Regex, String> {
    RegexBuilder::new(&regex::escape(text))
        .case_insensitive(true)
        .build()
        .map_err(|e| e.to_string())
}

/// Is this a field name (`[A-Za-z_][A-Za-z0-9_.-]*`, as XML names mostly are)?
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn term(raw: &str, quoted_whole: bool) -> Result<Term, String> {
    let (not, raw) = match raw.strip_prefix('!') {
        Some(rest) if !rest.is_empty() && !quoted_whole => (true, rest),
        _ => (false, raw),
    };
    if quoted_whole {
        return Ok(Term {
            not,
            test: Test::Any(literal(raw)?),
        });
    }
    if let Some(pattern) = raw.strip_prefix('~') {
        let re = RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE)
            .build()
            .map_err(|e| {
                let first = e.to_string();
                let why = first.lines().last().unwrap_or("").trim();
                format!("~{pattern} is not a regular expression: {why}")
            })?;
        return Ok(Term {
            not,
            test: Test::Any(re),
        });
    }
    if let Some(rest) = raw.strip_prefix('@') {
        let at = rest
            .find(['>', '<', '=', '!'])
            .ok_or_else(|| format!("@{rest}: give a comparison, such as @temp>20 or @unit=C"))?;
        let (name, tail) = rest.split_at(at);
        let (op, value) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(s, op)| tail.strip_prefix(s).map(|v| (*op, v)))
        .ok_or_else(|| format!("@{rest}: the comparisons are >, >=, <, <=, = and !="))?;
        if !is_name(name) {
            return Err(format!("@{rest}: {name:?} is not a field name"));
        }
        let number = number(value);
        if number.is_none() && !matches!(op, Op::Eq | Op::Ne) {
            return Err(format!(
                "@{rest}: {value:?} is not a number to compare with"
            ));
        }
        return Ok(Term {
            not,
            test: Test::Compare {
                name: name.to_owned(),
                op,
                number,
                text: value.to_owned(),
            },
        });
    }
    if let Some((name, value)) = raw.split_once(':')
        && is_name(name)
    {
        return Ok(Term {
            not,
            test: Test::Field {
                name: name.to_owned(),
                re: literal(value)?,
            },
        });
    }
    Ok(Term {
        not,
        test: Test::Any(literal(raw)?),
    })
}

/// The number a value starts with, its unit ignored: `21.5`, `-3`, `1e3`, `21.6 °C`, `40%`.
/// `None` when it does not start with a number, or when what follows is not a unit.
pub fn number(value: &str) -> Option<f64> {
    let v = value.trim();
    let end = v
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || ((c == '-' || c == '+')
                    && (i == 0 || matches!(v.as_bytes()[i - 1], b'e' | b'E')))
                || ((c == 'e' || c == 'E') && i > 0))
        })
        .map_or(v.len(), |(i, _)| i);
    let (num, unit) = v.split_at(end);
    // `1e` or `2E` followed by letters: the `e` belongs to the unit.
    let (num, unit) = match num.strip_suffix(['e', 'E']) {
        Some(n) => (n, &v[n.len()..]),
        None => (num, unit),
    };
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let is_unit = unit.chars().all(|c| {
        c.is_alphabetic()
            || c.is_whitespace()
            || matches!(c, '%' | '°' | '/' | 'µ' | '²' | '³' | '·' | '.')
    });
    (is_unit && n.is_finite()).then_some(n)
}

impl Filter {
    /// Compile an expression; `Err` says what is wrong in words.
    pub fn parse(expr: &str) -> Result<Self, String> {
        if expr.len() > MAX_EXPR {
            return Err(format!("the filter is over {MAX_EXPR} bytes"));
        }
        let mut terms = Vec::new();
        for (t, whole) in tokens(expr)? {
            terms.push(term(&t, whole)?);
        }
        Ok(Self {
            terms,
            source: expr.trim().to_owned(),
        })
    }

    /// The expression as typed.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// No terms: everything matches.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, item: &FeedItem) -> bool {
        self.terms.iter().all(|t| t.matches(item) != t.not)
    }
}

impl Term {
    fn matches(&self, item: &FeedItem) -> bool {
        match &self.test {
            Test::Any(re) => {
                re.is_match(item.text())
                    || item.sender().is_some_and(|s| re.is_match(s))
                    || item.publisher().is_some_and(|s| re.is_match(s))
                    || item.id().is_some_and(|s| re.is_match(s))
                    || item.tree().strings().any(|s| re.is_match(s))
            }
            Test::Field { name, re } => field_values(item, name).iter().any(|v| re.is_match(v)),
            Test::Compare {
                name,
                op,
                number: want,
                text,
            } => field_values(item, name).iter().any(|v| {
                if let (Some(have), Some(want)) = (number(v), want) {
                    let close = (have - want).abs() < f64::EPSILON * want.abs().max(1.0);
                    match op {
                        Op::Gt => have > *want,
                        Op::Ge => have >= *want,
                        Op::Lt => have < *want,
                        Op::Le => have <= *want,
                        Op::Eq => close,
                        Op::Ne => !close,
                    }
                } else {
                    let same = v.trim().to_lowercase() == text.trim().to_lowercase();
                    match op {
                        Op::Eq => same,
                        Op::Ne => !same,
                        _ => false,
                    }
                }
            }),
        }
    }
}

/// The values of a field: the item's own (`from`, `id`, `node`) or its payload's.
fn field_values(item: &FeedItem, name: &str) -> Vec<String> {
    match name {
        "from" => item
            .sender()
            .into_iter()
            .chain(item.publisher())
            .map(str::to_owned)
            .collect(),
        "id" => item.id().into_iter().map(str::to_owned).collect(),
        "node" => vec![item.node().to_owned()],
        _ => item.field_values(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::proto::{parse_item, parse_xml};

    fn reading(id: &str, temp: &str, title: &str) -> FeedItem {
        parse_item(
            "sensors",
            &parse_xml(&format!(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='{id}'><reading xmlns='urn:s' unit='C'><temp>{temp}</temp><title>{title}</title></reading></item>"
            )),
        )
    }

    fn ok(expr: &str, item: &FeedItem) -> bool {
        Filter::parse(expr).expect(expr).matches(item)
    }

    #[test]
    fn text_matches_any_case_anywhere() {
        let r = reading("r1", "21.5 °C", "Release Notes");
        assert!(ok("release", &r));
        assert!(ok("NOTES rel", &r), "every term");
        assert!(!ok("release nothing", &r));
        assert!(ok("\"release notes\"", &r));
        assert!(!ok("\"notes release\"", &r));
        assert!(ok("r1", &r), "the id");
        assert!(ok("", &r), "nothing to match: everything matches");
        assert!(ok("!absent", &r));
        assert!(!ok("!release", &r));
        // A quoted term is text even when it looks like a field or a regex.
        let odd = reading("r2", "1", "see title:x and ~y");
        assert!(ok("\"title:x\"", &odd));
        assert!(ok("\"~y\"", &odd));
        assert!(!ok("\"~y\"", &r));
    }

    #[test]
    fn regexes_and_their_errors() {
        let r = reading("r1", "21.5", "v2.0 released");
        assert!(ok("~^v\\d+\\.\\d", &r));
        assert!(ok("~\"v2.0 rel\"", &r));
        assert!(!ok("~^released", &r));
        let e = Filter::parse("~(unclosed").expect_err("bad regex");
        assert!(
            e.starts_with("~(unclosed is not a regular expression"),
            "{e}"
        );
        let e = Filter::parse("~a{99999999}").expect_err("too big");
        assert!(e.contains("not a regular expression"), "{e}");
        assert!(
            Filter::parse("\"open")
                .expect_err("quote")
                .contains("not closed")
        );
        assert!(Filter::parse(&"x".repeat(MAX_EXPR + 1)).is_err());
    }

    #[test]
    fn fields_compare_as_numbers_with_units_stripped() {
        let warm = reading("w", "21.6 °C", "warm");
        let cold = reading("c", "-3", "cold");
        assert!(ok("@temp>20", &warm) && !ok("@temp>20", &cold));
        assert!(ok("@temp<=-3", &cold) && !ok("@temp<-3", &cold));
        assert!(ok("@temp>=21.6", &warm) && ok("@temp=21.6", &warm) && ok("@temp!=21", &warm));
        assert!(ok("@unit=c", &warm), "attributes, any case");
        assert!(ok("title:WAR", &warm) && !ok("title:war", &cold));
        assert!(!ok("from:", &warm), "no sender: no from field");
        assert!(ok("node:sens", &warm) && ok("id:w", &warm));
        assert!(!ok("@nothing>1", &warm) && !ok("nothing:x", &warm));
        for (bad, why) in [
            ("@temp", "give a comparison"),
            ("@temp>warm", "not a number"),
            ("@1x>2", "not a field name"),
        ] {
            let e = Filter::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn json_fields_are_keys_anywhere_or_dotted_paths() {
        let j = parse_item(
            "ci",
            &parse_xml(
                r#"<item xmlns='http://jabber.org/protocol/pubsub' id='b1'><json xmlns='urn:xmpp:json:0'>{"build": 812, "status": "green", "tests": {"passed": 310, "failed": 0}, "tags": ["x", "y"]}</json></item>"#,
            ),
        );
        assert!(ok("@passed>300", &j) && !ok("@passed>310", &j));
        assert!(ok("@tests.failed=0", &j));
        assert!(ok("status:GRE", &j) && ok("tags.1:y", &j));
        assert!(!ok("@missing>0", &j) && !ok("status:red", &j));
        // Not JSON: no JSON fields (the XML ones stay).
        let r = reading("r", "21", "t");
        assert!(!ok("@passed>0", &r) && ok("@temp>20", &r));
    }

    #[test]
    fn numbers_lose_their_units() {
        for (v, n) in [
            ("21.5", Some(21.5)),
            (" 21.6 °C ", Some(21.6)),
            ("40%", Some(40.0)),
            ("-3", Some(-3.0)),
            ("1e3", Some(1000.0)),
            ("2.5e-1 m/s", Some(0.25)),
            ("12 km", Some(12.0)),
            ("3em", Some(3.0)),
            ("12:30", None),
            ("abc", None),
            ("", None),
            ("1.2.3", None),
            ("NaN", None),
            ("inf", None),
        ] {
            assert_eq!(number(v), n, "{v:?}");
        }
    }
}
