//! Command-line flags. Every flag also has an environment variable; `config.rs` merges them
//! over the config file (flags win).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pubsub-tui",
    version,
    about = "A terminal client for XMPP Publish-Subscribe (XEP-0060)",
    long_about = "A terminal client for XMPP Publish-Subscribe (XEP-0060).\n\n\
        With no subcommand it opens the interactive TUI. Try `pubsub-tui demo` first: it \
        starts a private Prosody and opens the TUI connected to it.\n\n\
        The password is never taken on the command line: use --password-file, \
        --password-command, the PUBSUB_TUI_PASSWORD environment variable, or the prompt.",
    after_help = "Keys in the TUI: press ? inside it, or see the README."
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Subscribe and print every event as one JSON object per line, until interrupted.
    Watch,
    /// Publish one item, print its id and exit (0 on success).
    Publish(PublishArgs),
    /// Start a private Prosody with an open node and a second publisher, and open the TUI.
    Demo(DemoArgs),
    /// Run the relay service: answer pubsub requests at --jid (a full JID), store items in
    /// SQLite and forward each to every subscriber. Runs until interrupted.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of the database (created if missing).
    /// Default: $XDG_DATA_HOME/pubsub-tui/serve.
    #[arg(long, env = "PUBSUB_TUI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Items kept per node; the oldest are dropped beyond it.
    #[arg(
        long,
        env = "PUBSUB_TUI_MAX_ITEMS",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub max_items: u64,

    /// Nodes the service will create (on first publish or subscribe, or on request).
    #[arg(
        long,
        env = "PUBSUB_TUI_MAX_NODES",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub max_nodes: u64,

    /// A JID that owns every node (may purge and retract anything); repeatable. Each node's
    /// creator and the service's own account are owners too.
    #[arg(long = "admin", value_name = "JID")]
    pub admins: Vec<String>,

    /// Seconds between pings to full-JID subscribers, to find those that are gone.
    #[arg(
        long,
        env = "PUBSUB_TUI_PROBE_INTERVAL",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub probe_interval: f64,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The text to publish; read from standard input when absent.
    pub text: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Publish interval of the simulated second publisher, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub peer_interval: f64,
}

/// Connection and session settings, shared by every front end.
#[derive(Debug, Args, Default, Clone)]
pub struct ConnArgs {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/pubsub-tui/config.toml if it exists.
    #[arg(long, global = true, env = "PUBSUB_TUI_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Your account: a bare JID (resource "pubsub-tui") or a full JID.
    #[arg(long, global = true, env = "PUBSUB_TUI_JID")]
    pub jid: Option<String>,

    /// Connect to HOST:PORT instead of looking up the domain's SRV record.
    #[arg(
        long,
        global = true,
        env = "PUBSUB_TUI_SERVER",
        value_name = "HOST:PORT"
    )]
    pub server: Option<String>,

    /// Trust only this CA (PEM) instead of the system's roots.
    #[arg(long, global = true, env = "PUBSUB_TUI_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Use unencrypted TCP. Only allowed to a loopback address given with --server.
    #[arg(long, global = true, env = "PUBSUB_TUI_INSECURE_PLAIN_TCP")]
    pub insecure_plain_tcp: bool,

    /// Read the password from this file (must not be readable by group or others).
    #[arg(
        long,
        global = true,
        env = "PUBSUB_TUI_PASSWORD_FILE",
        value_name = "PATH"
    )]
    pub password_file: Option<PathBuf>,

    /// Run this command (no shell; words split like a shell would) and use the first line
    /// of its output as the password.
    #[arg(
        long,
        global = true,
        env = "PUBSUB_TUI_PASSWORD_COMMAND",
        value_name = "CMD"
    )]
    pub password_command: Option<String>,

    /// The pubsub service: a component (pubsub.example.org) or a relay's full JID
    /// (test@example.org/server). Default: pubsub.<your domain>.
    #[arg(long, global = true, env = "PUBSUB_TUI_SERVICE")]
    pub service: Option<String>,

    /// A node to subscribe to; repeat for several (env: comma-separated).
    #[arg(
        long = "node",
        global = true,
        env = "PUBSUB_TUI_NODE",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,

    /// Seconds between auto-published items (default 5).
    #[arg(long, global = true, env = "PUBSUB_TUI_INTERVAL", value_name = "SECS")]
    pub interval: Option<f64>,

    /// Start with auto-publish off (the `a` key toggles it).
    #[arg(long, global = true, env = "PUBSUB_TUI_NO_AUTO_PUBLISH")]
    pub no_auto_publish: bool,

    /// Items kept per node in the feed (default 10000); the oldest are evicted.
    #[arg(long, global = true, env = "PUBSUB_TUI_FEED_LIMIT", value_name = "N")]
    pub feed_limit: Option<usize>,

    /// Seconds to wait for an answer to a request while the link is up (default 30).
    #[arg(
        long,
        global = true,
        env = "PUBSUB_TUI_IQ_TIMEOUT",
        value_name = "SECS"
    )]
    pub iq_timeout: Option<f64>,

    /// Log file. Default: $XDG_STATE_HOME/pubsub-tui/pubsub-tui.log for the TUI, stderr
    /// for the other commands.
    #[arg(long, global = true, env = "PUBSUB_TUI_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Log level or filter (error, warn, info, debug; default: info for the TUI and serve,
    /// warn for watch and publish).
    #[arg(long, global = true, env = "PUBSUB_TUI_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// The flags of the client's session, which `serve` has no use for, by argument id.
const CLIENT_ONLY: &[(&str, &str)] = &[
    ("service", "--service"),
    ("nodes", "--node"),
    ("interval", "--interval"),
    ("no_auto_publish", "--no-auto-publish"),
    ("feed_limit", "--feed-limit"),
    ("iq_timeout", "--iq-timeout"),
];

/// The client-only flags given on the command line (not by the environment or a config
/// file, which the client and the service may share), to refuse them where they would
/// silently do nothing.
pub fn client_only_flags(matches: &clap::ArgMatches) -> Vec<&'static str> {
    // Global flags given after the subcommand are propagated up to these matches too.
    CLIENT_ONLY
        .iter()
        .filter(|(id, _)| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|&(_, flag)| flag)
        .collect()
}
