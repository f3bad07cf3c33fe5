//! Bytes from the network -> the depth/size guard -> XML -> a stanza -> the session state
//! machine, as in production. Nothing may panic; the session's outputs must stay bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pubsub_tui::xmpp::guard::Scanner;
use pubsub_tui::xmpp::session::{Input, Now, RetryPolicy, Session, SessionConfig};
use xmpp_parsers::jid::Jid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza::Stanza;

fn session() -> Session {
    let mut s = Session::new(SessionConfig {
        service: Jid::new("pubsub.localhost").expect("jid"),
        nodes: vec!["n".into(), "test".into()],
        subscribe: true,
        auto_publish: true,
        interval: Duration::from_secs(5),
        iq_timeout: Duration::from_secs(30),
        resync_min_interval: Duration::from_secs(5),
        publisher_session: "fuzz".into(),
        keep_unsent: false,
        retry: RetryPolicy::DEFAULT,
    });
    let now = Now {
        mono: Instant::now(),
        wall: chrono::Utc::now(),
    };
    let _ = s.handle(
        Input::Online {
            bound: Jid::new("alice@localhost/tui").expect("jid"),
            server: None,
        },
        now,
    );
    s
}

fuzz_target!(|data: &[u8]| {
    // The guard sees the bytes first, as it does under the real parser.
    let mut scanner = Scanner::default();
    if scanner.feed(data).is_err() {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(element) = text.parse::<Element>() else {
        return;
    };
    let Ok(stanza) = Stanza::try_from(element) else {
        return;
    };
    let mut s = session();
    let now = Now {
        mono: Instant::now(),
        wall: chrono::Utc::now(),
    };
    let out = s.handle(Input::Stanza(Box::new(stanza)), now);
    assert!(
        out.len() < 10_000,
        "one stanza produced {} outputs",
        out.len()
    );
    let _ = s.handle(Input::Tick, now);
});
