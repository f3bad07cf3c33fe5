//! Connection faults as a user sees them: the real TUI in tmux, talking to a private Prosody
//! through a relay the test breaks.
//! - A 10 s outage (connections cut and refused): what is typed meanwhile is echoed at once,
//!   items published meanwhile wait and are published exactly once when the link is back.
//! - A silent dead link (60 s blackhole, sockets open): the status shows the loss within about
//!   30 s, typing stays responsive, and the client is back within 5 s of the link returning.

mod common;

use common::tmux::Tmux;

use std::time::{Duration, Instant};

use common::*;
use pubsub_tui::prosody::Options;

/// Type `text` one character at a time (compose box focused), `gap` apart; for each, how long
/// until the screen showed it. `before` is what the box held already.
fn type_measuring_echo(tmux: &Tmux, before: &str, text: &str, gap: Duration) -> Vec<Duration> {
    let mut shown = before.to_owned();
    let mut echoes = Vec::new();
    for c in text.chars() {
        shown.push(c);
        let start = Instant::now();
        tmux.text(&c.to_string());
        // Poll finely (a capture takes a few ms itself): this is the measurement.
        while !tmux.screen().contains(&shown) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{c:?} was not echoed within 5 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        echoes.push(start.elapsed());
        std::thread::sleep(gap);
    }
    echoes
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn status_line(screen: &str) -> &str {
    screen.lines().find(|l| l.starts_with('●')).unwrap_or("")
}

/// Cut and refuse connections for 10 s, typing and publishing two items meanwhile; they wait,
/// then are published. Returns the keypress echo times.
async fn ten_second_outage(tmux: &Tmux, relay: &relay::Relay) -> Vec<Duration> {
    let mut echoes = Vec::new();
    // A 10 s outage: every connection cut, new ones refused.
    relay.set_accepting(false);
    relay.cut().await;
    let outage = Instant::now();
    tmux.wait_for("the outage on screen", 5, |s| {
        !s.contains("online as alice@localhost")
    });
    echoes.extend(type_measuring_echo(
        tmux,
        "",
        "during-outage-1",
        Duration::from_millis(150),
    ));
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("the item waits", 5, |s| s.contains("1 waiting to publish"));
    assert!(
        !s.contains("│ published"),
        "shown as published without the server's answer:\n{s}"
    );
    echoes.extend(type_measuring_echo(
        tmux,
        "",
        "during-outage-2",
        Duration::from_millis(150),
    ));
    tmux.keys(&["Enter"]);
    tmux.wait_for("both items wait", 5, |s| s.contains("2 waiting to publish"));
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    relay.set_accepting(true);
    tmux.wait_for("online again", 15, |s| {
        s.contains("online as alice@localhost")
    });
    tmux.wait_for("both items in the feed, none waiting", 10, |s| {
        s.contains("during-outage-1")
            && s.contains("during-outage-2")
            && !s.contains("waiting to publish")
    });

    echoes
}

/// Blackhole the link for 60 s, typing meanwhile. Returns the keypress echo times, when the
/// loss showed, and how long after the link returned the client was back online.
fn silent_dead_link(tmux: &Tmux, relay: &relay::Relay) -> (Vec<Duration>, Duration, Duration) {
    let mut echoes = Vec::new();
    // A silent dead link: nothing flows for 60 s, no socket closes.
    relay.set_blackhole(true);
    let dead = Instant::now();
    let mut lost_after = None;
    let mut typed = String::new();
    while dead.elapsed() < Duration::from_secs(60) {
        let s = tmux.screen();
        if lost_after.is_none() && !s.contains("online as alice@localhost") {
            lost_after = Some(dead.elapsed());
            eprintln!("status after {:?}: {}", dead.elapsed(), status_line(&s));
        }
        if typed.len() < 40 {
            let c = char::from(b'a' + u8::try_from(typed.len() % 26).expect("small"));
            echoes.extend(type_measuring_echo(
                tmux,
                &typed,
                &c.to_string(),
                Duration::ZERO,
            ));
            typed.push(c);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    relay.set_blackhole(false);
    let back = Instant::now();
    tmux.wait_for("online after the link returns", 30, |s| {
        s.contains("online as alice@localhost")
    });
    let reconnect = back.elapsed();
    let lost_after = lost_after.expect("the dead link was shown as lost within 60 s");

    (echoes, lost_after, reconnect)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_and_silent_dead_link_in_tmux() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["demo"]).await;
    let (_, alice_pw) = account(&server, "alice", "x");
    let (_, bob_pw) = account(&server, "bob", "check");
    let relay = relay::Relay::start(server.port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = password_file(dir.path(), &alice_pw);
    let tmux = Tmux::start_tui(
        "pubsub-tui-faults",
        &format!("127.0.0.1:{}", relay.port),
        &pw,
        &dir.path().join("tui.log"),
        "--node demo --log-level debug",
    );
    tmux.wait_for("online", 20, |s| s.contains("online as alice@localhost"));
    tmux.keys(&["i"]);
    let mut echoes = ten_second_outage(&tmux, &relay).await;
    let (dead_link_echoes, lost_after, reconnect) = silent_dead_link(&tmux, &relay);
    echoes.extend(dead_link_echoes);

    echoes.sort();
    let median = echoes[echoes.len() / 2];
    let worst = echoes[echoes.len() - 1];
    println!(
        "keypress echo over {} keys during outages: median {:.1} ms, max {:.1} ms; \
         dead link shown after {:.1} s; back {:.2} s after the link returned",
        echoes.len(),
        millis(median),
        millis(worst),
        lost_after.as_secs_f64(),
        reconnect.as_secs_f64()
    );
    assert!(
        lost_after <= Duration::from_secs(35),
        "the dead link showed after {lost_after:?}"
    );
    assert!(
        reconnect <= Duration::from_secs(5),
        "back only {reconnect:?} after the link returned"
    );
    assert!(
        worst < Duration::from_secs(1),
        "a keypress took {worst:?} to echo"
    );

    // The node holds each item typed during the outage exactly once.
    let texts: Vec<String> = node_items(&server, "bob", &bob_pw, "demo")
        .await
        .into_iter()
        .map(|i| i.text().to_owned())
        .collect();
    for t in ["during-outage-1", "during-outage-2"] {
        assert_eq!(
            texts.iter().filter(|x| x.as_str() == t).count(),
            1,
            "{t} in {texts:?}"
        );
    }

    // The keys typed to measure the echo are a draft: quitting asks first.
    tmux.keys(&["Escape", "q"]);
    tmux.wait_for("the quit question", 5, |s| {
        s.contains("the draft in the compose box")
    });
    tmux.keys(&["y"]);
    let s = tmux.wait_for("exit", 10, |s| s.contains("EXIT:"));
    assert!(s.contains("EXIT:0"), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_in_the_tui_stop_after_one_attempt() {
    if !Tmux::present_or_skip() {
        return;
    }
    let Some(server) = start_prosody(&Options::default()) else {
        return;
    };
    create_nodes(&server, &["demo"]).await;
    let _ = account(&server, "alice", "x");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = password_file(dir.path(), "not the password");
    let log = dir.path().join("tui.log");
    let tmux = Tmux::start_tui(
        "pubsub-tui-badpw",
        &server.server(),
        &pw,
        &log,
        "--node demo --log-level debug",
    );
    let s = tmux.wait_for("the refusal", 20, |s| {
        s.contains("rejected the credentials")
    });
    assert!(s.contains("connection failed"), "{s}");
    // No loop: a few seconds later there was still exactly one attempt, and typing is safe.
    std::thread::sleep(Duration::from_secs(4));
    tmux.keys(&["i"]);
    tmux.text("still usable");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("publishing refused", 5, |s| {
        s.contains("the connection has ended")
    });
    let log_text = std::fs::read_to_string(&log).expect("log");
    let attempts = log_text.matches("connection attempt failed").count();
    assert_eq!(attempts, 1, "attempts in the log:\n{log_text}");
    assert!(!s.contains("EXIT:"), "the TUI stays up to show why: {s}");
    // The text that could not be published stays in the compose box: quitting asks first.
    tmux.keys(&["Escape", "q"]);
    tmux.wait_for("the quit question", 5, |s| {
        s.contains("the draft in the compose box")
    });
    tmux.keys(&["y"]);
    let s = tmux.wait_for("exit", 10, |s| s.contains("EXIT:"));
    assert!(s.contains("EXIT:1"), "a failed login exits non-zero: {s}");
    assert!(
        s.contains("pubsub-tui: connection failed: the server rejected the credentials"),
        "the reason is printed after the screen is restored: {s}"
    );
}
