//! The sanitiser: what it lets through for display has no control, C1 or bidi characters and
//! is bounded; what it lets through for sending can always be serialised as XML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pubsub_tui::sanitize::{MAX_FIELD_CHARS, display, outgoing};
use xmpp_parsers::minidom::Element;

fuzz_target!(|text: &str| {
    let shown = display(text);
    assert!(shown.chars().count() <= MAX_FIELD_CHARS + 1);
    assert!(!shown.chars().any(|c| c.is_control()));
    assert!(!shown.chars().any(
        |c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
    ));
    // minidom panics on characters XML forbids: outgoing text must never contain one.
    let sent = outgoing(text);
    let mut el = Element::builder("body", "jabber:client").build();
    el.append_text(sent.clone());
    let mut buf = Vec::new();
    el.write_to(&mut buf).expect("serialises");
    let back: Element = String::from_utf8(buf)
        .expect("utf8")
        .parse()
        .expect("parses back");
    // Round trip is byte-exact for what was allowed (CR is normalised by XML parsers).
    if !sent.contains('\r') {
        assert_eq!(back.text(), sent);
    }
});
