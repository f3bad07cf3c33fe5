//! Cleaning text that comes from the network (or from the user) before anyone displays it.
//!
//! Every string a peer controls passes through [`display`] once, where it enters the program
//! (in `xmpp::protocol`). After that, the rest of the code can print it anywhere (terminal,
//! JSON lines, logs) without a peer being able to move the cursor, change the window title or
//! reorder text with bidi overrides.
//!
//! [`outgoing`] is the other direction: text the user typed, filtered to what XML 1.0 allows,
//! so building an element never fails (minidom panics on forbidden characters).

/// Longest text kept from one short field of a peer's stanza (a JID, a name), in characters.
/// Item text and ids are kept whole (see [`text`]): the stanza size bounds them.
pub const MAX_FIELD_CHARS: usize = 4096;

/// Characters that reorder or hide text without being `char::is_control`. The zero-width
/// joiner and non-joiner (U+200D, U+200C) are not among them: emoji sequences (👩‍💻) and
/// Persian and Indic scripts need them, and they move nothing.
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{061C}'              // arabic letter mark
        | '\u{200B}'             // zero-width space
        | '\u{200E}' | '\u{200F}' // LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // isolates
        | '\u{FEFF}'              // BOM / zero-width no-break space
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
    )
}

/// Make a peer-supplied string safe to display on one line.
///
/// Whitespace controls (tab, CR, LF) become a space; other C0/C1 controls, DEL and bidi or
/// invisible format characters are removed; the result is cut to [`MAX_FIELD_CHARS`]
/// characters (with an ellipsis).
pub fn display(raw: &str) -> String {
    display_max(raw, MAX_FIELD_CHARS)
}

/// [`display`] with an explicit length limit in characters.
pub fn display_max(raw: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max_chars * 4));
    let mut count = 0usize;
    for c in raw.chars() {
        let c = match c {
            '\t' | '\n' | '\r' | LINE_SEPARATOR | PARAGRAPH_SEPARATOR => ' ',
            c if c.is_control() || is_format_char(c) => continue,
            c => c,
        };
        if count == max_chars {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Make a peer-supplied text (an item's body) safe to keep and display, without cutting it.
///
/// Like [`display`], but newlines stay (as `\n`: a CR LF pair or a lone CR becomes one) and a
/// tab stays: they are the sender's, and front ends show them (the TUI as `⏎`, JSON as `\n`).
pub fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            // Terminals do not agree on what these do: a line break, as the sender meant.
            LINE_SEPARATOR | PARAGRAPH_SEPARATOR => out.push('\n'),
            c if c.is_control() || is_format_char(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// U+2028 and U+2029, which some terminals and JSON readers take as line ends.
pub const LINE_SEPARATOR: char = '\u{2028}';
pub const PARAGRAPH_SEPARATOR: char = '\u{2029}';

/// [`text`], borrowing `raw` when it needs no change (most strings a peer sends).
pub fn text_cow(raw: &str) -> std::borrow::Cow<'_, str> {
    let clean = if raw.is_ascii() {
        raw.bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t')
    } else {
        raw.chars()
            .all(|c| matches!(c, '\n' | '\t') || unchanged(c))
    };
    if clean {
        std::borrow::Cow::Borrowed(raw)
    } else {
        std::borrow::Cow::Owned(text(raw))
    }
}

/// Kept as it is by [`text`] and [`display_max`] alike (not tab and LF, which only `text` keeps).
pub fn unchanged(c: char) -> bool {
    !c.is_control() && !is_format_char(c) && !matches!(c, LINE_SEPARATOR | PARAGRAPH_SEPARATOR)
}

/// [`display_max`], borrowing `raw` when it needs no change.
pub fn display_max_cow(raw: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    let clean = if raw.is_ascii() {
        raw.len() <= max_chars && raw.bytes().all(|b| (0x20..0x7f).contains(&b))
    } else {
        raw.chars().count() <= max_chars && raw.chars().all(unchanged)
    };
    if clean {
        std::borrow::Cow::Borrowed(raw)
    } else {
        std::borrow::Cow::Owned(display_max(raw, max_chars))
    }
}

/// Characters XML 1.0 allows in text and attribute values.
fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\u{9}' | '\u{A}' | '\u{D}'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Filter text the user wants to publish: drop what XML cannot carry and what would confuse
/// other people's terminals (C0/C1 controls except tab and newline, bidi overrides). Line
/// ends become `\n` (terminals paste a lone CR for each line break).
pub fn outgoing(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() != Some(&'\n') {
                out.push('\n');
            }
            continue;
        }
        if is_xml_char(c) && !is_format_char(c) && (!c.is_control() || c == '\t' || c == '\n') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_borrowing_forms_give_what_the_copying_ones_do(
            s in "([a-z <&>;]|\\PC|[\t\n\r\u{1b}\u{9b}\u{202e}\u{7f}\u{2028}\u{2029}]){0,40}",
            max in 0usize..30,
        ) {
            let (a, b) = (text_cow(&s), text(&s));
            proptest::prop_assert_eq!(a.as_ref(), b.as_str());
            let (a, b) = (display_max_cow(&s, max), display_max(&s, max));
            proptest::prop_assert_eq!(a.as_ref(), b.as_str());
        }
    }

    #[test]
    fn line_and_paragraph_separators_are_line_breaks() {
        assert_eq!(text("a\u{2028}b\u{2029}c"), "a\nb\nc");
        assert_eq!(display("a\u{2028}b\u{2029}c"), "a b c");
        let line = crate::feed::export::json_line(&serde_json::json!({"x": "a\u{2028}b"}));
        assert_eq!(line, r#"{"x":"a\u2028b"}"#, "one line for any JSON reader");
    }

    #[test]
    fn removes_controls_and_bidi() {
        let hostile = "a\u{1b}]0;pwned\u{7}b\u{9b}31mc\u{202e}d\u{0}e\r\nf";
        assert_eq!(display(hostile), "a]0;pwnedb31mcde  f");
    }

    #[test]
    fn keeps_ordinary_unicode() {
        assert_eq!(display("héllo wörld 你好 🎉"), "héllo wörld 你好 🎉");
        // Joiners are text: an emoji sequence and Persian stay whole.
        for s in ["👩\u{200D}💻", "می\u{200C}خواهم", "👨\u{200D}👩\u{200D}👧"] {
            assert_eq!(text(s), s);
            assert_eq!(outgoing(s), s);
        }
        // Control: what reorders or hides text still goes.
        assert_eq!(text("a\u{200B}b\u{200F}c\u{202E}d"), "abcd");
    }

    #[test]
    fn truncates_long_fields() {
        let long = "x".repeat(10);
        assert_eq!(display_max(&long, 4), "xxxx…");
        assert_eq!(display_max("xxxx", 4), "xxxx");
    }

    #[test]
    fn outgoing_keeps_xml_specials_and_drops_forbidden() {
        let text = "a<b>&c]]>\u{1b}[2J\u{0}\u{FFFE}\u{202E}ok\tnl\n";
        assert_eq!(outgoing(text), "a<b>&c]]>[2Jok\tnl\n");
    }

    #[test]
    fn line_ends_become_newlines_in_both_directions() {
        // A terminal's bracketed paste sends CR for each line break.
        assert_eq!(
            outgoing("first line\rsecond\r\nthird"),
            "first line\nsecond\nthird"
        );
        assert_eq!(
            text("a\r\nb\rc\nd\te\u{1b}[31m\u{9b}\u{202e}"),
            "a\nb\nc\nd\te[31m"
        );
        // Nothing is cut.
        assert_eq!(text(&"x".repeat(100_000)).len(), 100_000);
    }
}
