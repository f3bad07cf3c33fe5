//! Figures for reading a feed: memory per item, and how fast the filter follows the keys.
//!
//! - **Memory:** 100,000 typical items (a third each: our own text items, sensor readings,
//!   Atom entries), parsed from XML as the network core parses them and kept in one node's
//!   feed. Reported: resident memory added per item (from `/proc/self/statm`, so the
//!   allocator's overhead counts), and the bytes the trees say they hold.
//! - **Filter echo:** the TUI's own `update` and drawing (ratatui's `TestBackend`, 80x24) for
//!   each key of a filter typed over those 100,000 items: the time from the key to the frame.
//!   Several expressions: a word, a regex, a field compare, and a word over every node.
//!
//! Run: `cargo bench --bench read` (release build). Prints medians and the slowest key.

#![allow(
    clippy::cast_precision_loss,
    reason = "a measuring script, not product code"
)]

use std::time::{Duration, Instant};

use chrono::FixedOffset;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pubsub_tui::feed::{FeedItem, NodeFeed};
use pubsub_tui::tui::model::Model;
use pubsub_tui::tui::update::{Msg, update};
use pubsub_tui::xmpp::proto::parse_item;
use pubsub_tui::xmpp::{NetEvent, SnapshotReason};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const ITEMS: usize = 100_000;

fn item_xml(n: usize) -> String {
    match n % 3 {
        0 => format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='s1-{n}' sender='alice@localhost/tui' time='07:00:00' message='message number {n}: the build finished, all tests green'><post xmlns='urn:x-pubsub-tui:item:0' sender='alice@localhost/tui' time='2026-11-29T07:00:00.000Z' session='s1' seq='{n}'>message number {n}: the build finished, all tests green</post></item>"
        ),
        1 => format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='r-{n}'><reading xmlns='urn:example:sensor'><temp unit='C'>{}.{}</temp><hum>{}</hum><station>lab-{}</station></reading></item>",
            15 + n % 15,
            n % 10,
            30 + n % 50,
            n % 7
        ),
        _ => format!(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='e-{n}'><entry xmlns='http://www.w3.org/2005/Atom'><author><name>Juliet</name></author><title>Release {n} is out</title><link rel='alternate' href='https://example.org/r/{n}'/><published>2026-11-29T07:00:00Z</published><updated>2026-11-29T07:00:00Z</updated><summary>What changed in release {n}: faster start, fewer bytes.</summary></entry></item>"
        ),
    }
}

fn items(node: &str, count: usize) -> Vec<FeedItem> {
    (0..count)
        .map(|n| {
            let el = item_xml(n).parse().expect("bench XML parses");
            parse_item(node, &el)
        })
        .collect()
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory() {
    let before = resident_bytes();
    let mut feed = NodeFeed::new(ITEMS);
    let mut weight = 0;
    for item in items("n", ITEMS) {
        weight += item.tree().weight() + item.text().len();
        feed.push_item(item);
    }
    let after = resident_bytes();
    println!(
        "memory: {ITEMS} items in one feed: {:.0} bytes/item resident ({:.1} MiB), trees and texts {:.0} bytes/item",
        (after.saturating_sub(before)) as f64 / ITEMS as f64,
        (after.saturating_sub(before)) as f64 / 1_048_576.0,
        weight as f64 / ITEMS as f64,
    );
    assert_eq!(feed.item_count(), ITEMS);
}

fn model(nodes: &[&str], per_node: usize) -> Model {
    let names: Vec<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
    let mut m = Model::new(
        &xmpp_parsers::jid::Jid::new("pubsub.localhost").expect("jid"),
        &names,
        ITEMS,
        false,
        Duration::from_secs(5),
        FixedOffset::east_opt(0).expect("utc"),
    );
    let _ = update(&mut m, Msg::Resize(80, 24));
    for n in nodes {
        let _ = update(
            &mut m,
            Msg::Net(NetEvent::Snapshot {
                node: (*n).to_owned(),
                items: items(n, per_node),
                reason: SnapshotReason::Initial,
                lost: Vec::new(),
                at: chrono::Utc::now(),
            }),
        );
    }
    m
}

fn key(m: &mut Model, code: KeyCode, mods: KeyModifiers) {
    let _ = update(m, Msg::Key(KeyEvent::new(code, mods)));
}

/// Type `expr` after `/` (with Ctrl-A first when `all`), timing each key to its frame.
fn echo(m: &mut Model, expr: &str, all: bool) -> (Duration, Duration, usize) {
    let mut term = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    key(m, KeyCode::Char('/'), KeyModifiers::NONE);
    if all {
        key(m, KeyCode::Char('a'), KeyModifiers::CONTROL);
    }
    let mut times = Vec::new();
    for c in expr.chars() {
        let t = Instant::now();
        key(m, KeyCode::Char(c), KeyModifiers::NONE);
        term.draw(|f| pubsub_tui::tui::view::draw(f, m))
            .expect("draw");
        times.push(t.elapsed());
    }
    let hits = m.search.as_ref().map_or(0, |s| s.hits.len());
    key(m, KeyCode::Esc, KeyModifiers::NONE);
    times.sort();
    (times[times.len() / 2], times[times.len() - 1], hits)
}

fn main() {
    memory();
    let mut one = model(&["n"], ITEMS);
    let mut four = model(&["a", "b", "c", "d"], ITEMS / 4);
    println!("filter echo over {ITEMS} items, key to frame (80x24):");
    for (label, expr, all) in [
        ("word", "release 9", false),
        ("regex", "~release 9\\d+ is", false),
        ("field", "@temp>28", false),
        ("no match", "zzzzzz", false),
        ("word, 4 nodes", "release 9", true),
    ] {
        let m = if all { &mut four } else { &mut one };
        let (median, worst, hits) = echo(m, expr, all);
        println!(
            "  {label:<14} {expr:<20} median {:>6.1} ms, slowest key {:>6.1} ms, {hits} matches",
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0
        );
    }
}
