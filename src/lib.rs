//! pubsub-tui: a terminal client for XMPP Publish-Subscribe (XEP-0060).
//!
//! The crate is a library with a thin binary (`src/main.rs`) so tests reach everything.
//!
//! - [`xmpp`]: the network core (connection, session state machine, protocol).
//! - [`feed`]: the domain: parsed items and the bounded per-node store.
//! - [`tui`]: the terminal front end (model, update, keymap, views).
//! - [`headless`]: the `watch` and `publish` front ends on the same core.
//! - [`config`] and [`cli`]: flags, environment, config file and password sources.
//! - [`serve`]: the relay service role (`pubsub-tui serve`), with SQLite storage.
//! - [`prosody`]: a private Prosody for the demo and the tests.
//! - [`state`]: the nodes followed, kept between runs.

pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod envsecret;
pub mod feed;
pub mod headless;
pub mod logging;
pub mod prosody;
pub mod sanitize;
pub mod serve;
pub mod state;
pub mod tui;
pub mod xmpp;
