//! Command-line flags. Every flag also has an environment variable; `config.rs` merges them
//! over the config file (flags win).
//!
//! Each subcommand takes only the flags it uses (so its `--help` lists only those), after the
//! subcommand's name. The flags before a subcommand belong to the TUI.
#![allow(
    clippy::doc_markdown,
    reason = "these comments are the --help text, read in a terminal, not rustdoc"
)]

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
    after_help = "Keys in the TUI: press ? inside it, or see the README.\n\
        Subcommands take their flags after their name: pubsub-tui watch --node news"
)]
pub struct Cli {
    #[command(flatten)]
    pub account: AccountArgs,

    #[command(flatten)]
    pub service: ServiceArgs,

    #[command(flatten)]
    pub tui: TuiArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Subscribe and print every event as one JSON object per line, until interrupted.
    Watch(WatchArgs),
    /// Publish one item, print its id and exit (0 on success).
    Publish(PublishArgs),
    /// List the service's nodes (with --tree, the nodes inside collections too).
    Nodes(NodesArgs),
    /// Show the service's identity and the pubsub features it advertises, or a node's
    /// meta-data with --node.
    Info(InfoArgs),
    /// Print the items a node stores, oldest first.
    Items(ItemsArgs),
    /// Subscribe your account (its bare JID) to a node; the TUI follows it from its next start.
    Subscribe(NodeArgs),
    /// Remove your account's (bare JID) subscription to a node; the TUI stops following it.
    Unsubscribe(NodeArgs),
    /// List your account's subscriptions at the service, with their states.
    Subscriptions(QueryArgs),
    /// Own and manage a node: create, config, purge, delete, affiliations, subscriptions.
    Node(NodeCmdArgs),
    /// Retract (delete) one item of a node; subscribers are told.
    Retract(RetractArgs),
    /// Publish the items of an export file (items --format, or the TUI's w) to a node, with
    /// their ids and payloads. Items already there with the same id and payload are skipped,
    /// so an import can be run again after it stopped.
    Import(ImportArgs),
    /// Show what the local cache keeps for your account (items per node, publisher sessions,
    /// items waiting to be published), or remove its kept items with --clear.
    Cache(CacheCmdArgs),
    /// Start a private Prosody with open nodes and a second publisher, and open the TUI.
    Demo(DemoArgs),
    /// Run the relay service: answer pubsub requests at its full JID, store items in SQLite
    /// and forward each to every subscriber. Runs until interrupted.
    Serve(ServeCmdArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub cache: CacheArgs,

    /// First print what the local cache kept of each node (kind "cached"), before the
    /// service answers.
    #[arg(long)]
    pub cached: bool,

    /// Print only the items that match this expression (the TUI's / syntax: words, "a
    /// phrase", ~regex, name:text, @name>20, !term; see the README). Other events are
    /// printed as always.
    #[arg(long, value_name = "EXPR", value_parser = filter_expr)]
    pub filter: Option<crate::feed::filter::Filter>,

    /// Accepted for symmetry with the other commands' --json: watch always prints JSON.
    #[arg(long, hide = true)]
    pub json: bool,
}

fn filter_expr(s: &str) -> Result<crate::feed::filter::Filter, String> {
    crate::feed::filter::Filter::parse(s)
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub account: AccountArgs,

    /// The pubsub service: a component (pubsub.example.org) or a relay's full JID
    /// (test@example.org/server). Default: pubsub.<your domain>.
    #[arg(long, env = "PUBSUB_TUI_SERVICE")]
    pub service: Option<String>,

    /// The node to publish to.
    #[arg(long, env = "PUBSUB_TUI_NODE")]
    pub node: Option<String>,

    /// Seconds to wait for the service's answer while the link is up (default 30).
    #[arg(long, env = "PUBSUB_TUI_IQ_TIMEOUT", value_name = "SECS")]
    pub iq_timeout: Option<f64>,

    /// The item's id: an item with this id is replaced. Default: one of our own (text), or
    /// the service's choice (--xml).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Publish this file's XML element as the item's payload, as it is (an <item/> element
    /// is taken apart: its id, unless --id is given, and its payload). "-" reads standard
    /// input.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub xml: Option<PathBuf>,

    /// A publish-option (XEP-0060 §7.1.5), repeatable: the service refuses the publish
    /// unless the node's configuration has this value (pubsub#access_model=open).
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = assignment)]
    pub options: Vec<(String, String)>,

    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub cache: CacheArgs,

    /// When the service cannot be reached, keep the item in the local outbox (exit 0): the
    /// next run of this account that publishes to the node (publish, or the TUI) sends it,
    /// with the same id. Only for text items (not --xml, --id or --option).
    #[arg(long, conflicts_with_all = ["xml", "id", "options"])]
    pub queue: bool,

    /// The text to publish; read from standard input when absent (newlines are kept).
    pub text: Option<String>,
}

/// `KEY=VALUE` (the value may be empty and may hold `=`).
fn assignment(s: &str) -> Result<(String, String), String> {
    crate::xmpp::proto::form::parse_assignment(s)
}

#[derive(Debug, Args)]
pub struct NodeCmdArgs {
    #[command(subcommand)]
    pub action: NodeAction,
}

#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// Create a node (an instant node, named by the service, without NAME), optionally with
    /// its configuration.
    Create(NodeCreateArgs),
    /// Print the node's configuration form (fields, values, allowed options); with --set,
    /// change it.
    Config(NodeConfigArgs),
    /// Delete every item of the node. Asks first on a terminal.
    Purge(NodePurgeArgs),
    /// Delete the node; its subscribers are told. Asks first on a terminal.
    Delete(NodeDeleteArgs),
    /// Print who is affiliated with the node; with --set, change it.
    Affiliations(NodeAffiliationsArgs),
    /// Print the node's subscriptions (its owner's view); with --set, change them.
    Subscriptions(NodeSubscriptionsArgs),
}

#[derive(Debug, Args)]
pub struct NodeCreateArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node's name; without it, the service names the node (an instant node).
    pub name: Option<String>,

    /// A configuration value, repeatable; KEY is the field's var, with or without `pubsub#`
    /// (see `node config` of an existing node for the fields).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = assignment)]
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct NodeConfigArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    pub name: String,

    /// Change a field, repeatable (a multi-value field takes the key more than once, or
    /// commas for lists and JIDs); KEY is the field's var, with or without `pubsub#`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = assignment)]
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct NodePurgeArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    pub name: String,

    /// Do not ask (needed when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct NodeDeleteArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    pub name: String,

    /// Point the subscribers to where the content went (an xmpp: URI).
    #[arg(long, value_name = "URI")]
    pub redirect: Option<String>,

    /// Do not ask (needed when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct NodeAffiliationsArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    pub name: String,

    /// Give a JID an affiliation (owner, publisher, publish-only, member, none, outcast),
    /// repeatable; none removes it.
    #[arg(long = "set", value_name = "JID=AFFILIATION", value_parser = assignment)]
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct NodeSubscriptionsArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    pub name: String,

    /// Set a JID's subscription (subscribed, none; pending and unconfigured where the service
    /// has them), repeatable: subscribed approves a pending one, none removes one.
    #[arg(long = "set", value_name = "JID=STATE", value_parser = assignment)]
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct RetractArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    #[arg(long)]
    pub node: String,

    /// The item's id.
    pub id: String,
}

impl PublishArgs {
    /// As the service settings the other commands take.
    pub fn service_args(&self) -> ServiceArgs {
        ServiceArgs {
            service: self.service.clone(),
            nodes: self.node.clone().into_iter().collect(),
            iq_timeout: self.iq_timeout,
        }
    }
}

/// What every one-shot query takes.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub account: AccountArgs,

    /// The pubsub service: a component (pubsub.example.org) or a relay's full JID
    /// (test@example.org/server). Default: pubsub.<your domain>.
    #[arg(long, env = "PUBSUB_TUI_SERVICE")]
    pub service: Option<String>,

    /// Seconds to wait for the service's answer while the link is up (default 30).
    #[arg(long, env = "PUBSUB_TUI_IQ_TIMEOUT", value_name = "SECS")]
    pub iq_timeout: Option<f64>,

    /// Print one JSON object per line instead of readable lines.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

impl QueryArgs {
    /// As the service settings the other commands take (no nodes).
    pub fn service_args(&self) -> ServiceArgs {
        ServiceArgs {
            service: self.service.clone(),
            nodes: Vec::new(),
            iq_timeout: self.iq_timeout,
        }
    }
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// List the nodes inside collections too, indented under them.
    #[arg(long)]
    pub tree: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node to describe (its meta-data); without it, the service.
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct ItemsArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node whose items to print.
    #[arg(long)]
    pub node: String,

    /// Only the newest K items.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub max: Option<u64>,

    /// Write the items in an export format, to import elsewhere or read in other tools:
    /// one JSON object a line, CSV (formulas neutralised), or an XML document.
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with = "json")]
    pub format: Option<crate::feed::export::Format>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node to publish the items to (created by the first publish where the service
    /// does that).
    #[arg(long)]
    pub node: String,

    /// The file's format (default: by its name: .ndjson/.jsonl, .csv, .xml; else by its
    /// first character).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::feed::export::Format>,

    /// The export file.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CacheCmdArgs {
    /// The account's flags, as the other commands take them (only --jid and --config are
    /// used: nothing connects, and no password is needed).
    #[command(flatten)]
    pub account: AccountArgs,

    /// Taken and ignored, like the connection flags (the cache holds every service's items).
    #[arg(long, env = "PUBSUB_TUI_SERVICE", hide = true)]
    pub service: Option<String>,

    /// Remove the kept items (of every node, or of --node). Publisher sessions and items
    /// waiting to be published stay: they are not a copy of anything.
    #[arg(long)]
    pub clear: bool,

    /// With --clear: only this node's items.
    #[arg(long, requires = "clear")]
    pub node: Option<String>,

    /// One JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub query: QueryArgs,

    /// The node.
    #[arg(long)]
    pub node: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Publish interval of the simulated second publisher, in seconds.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub peer_interval: f64,

    /// Items kept per node in the feed (default 10000); the oldest are evicted.
    #[arg(long, env = "PUBSUB_TUI_FEED_LIMIT", value_name = "N")]
    pub feed_limit: Option<usize>,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct ServeCmdArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Directory of the database (created if missing, private to you).
    /// Default: $XDG_DATA_HOME/pubsub-tui/serve. Config: [serve] data_dir.
    #[arg(long, env = "PUBSUB_TUI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Items kept per node; the oldest are dropped beyond it (default 1000).
    /// Config: [serve] max_items.
    #[arg(long, env = "PUBSUB_TUI_MAX_ITEMS", value_name = "N")]
    pub max_items: Option<u64>,

    /// Nodes the service will create (default 10000). Config: [serve] max_nodes.
    #[arg(long, env = "PUBSUB_TUI_MAX_NODES", value_name = "N")]
    pub max_nodes: Option<u64>,

    /// A JID that owns every node (may purge and retract anything); repeatable. Each node's
    /// creator and the service's own account are owners too. Config: [serve] admins.
    #[arg(long = "admin", value_name = "JID")]
    pub admins: Vec<String>,

    /// Seconds between pings to full-JID subscribers, to find those that are gone
    /// (default 60). Config: [serve] probe_interval.
    #[arg(long, env = "PUBSUB_TUI_PROBE_INTERVAL", value_name = "SECS")]
    pub probe_interval: Option<f64>,

    /// Connect as an external component (XEP-0114) for this domain instead of as an
    /// account: the service answers at DOMAIN, like the server's own pubsub service. Needs
    /// --server HOST:PORT (the server's component port, such as 5347, on this machine: the
    /// protocol has no TLS) and --secret-file.
    /// Config: [serve] component.
    #[arg(long, value_name = "DOMAIN")]
    pub component: Option<String>,

    /// The component's shared secret: the first line of a file only you can read (mode
    /// 0600). Config: [serve] secret_file.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

/// The account and how to reach its server.
#[derive(Debug, Args, Default, Clone)]
pub struct AccountArgs {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/pubsub-tui/config.toml if it exists.
    #[arg(long, env = "PUBSUB_TUI_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Your account: user@domain (or a full JID with the resource to use).
    #[arg(long, env = "PUBSUB_TUI_JID")]
    pub jid: Option<String>,

    /// The resource to log in with. The client commands default to pubsub-tui-<random>, new
    /// for each run, so two runs on one account do not knock each other off; serve needs one
    /// (here or in --jid).
    #[arg(long, env = "PUBSUB_TUI_RESOURCE", value_name = "NAME")]
    pub resource: Option<String>,

    /// Connect to HOST[:PORT] (port 5222 if left out) instead of looking up the domain's
    /// SRV records. Give it more than once (or comma-separated) for the nodes of a cluster:
    /// they are tried in order, and when the one in use fails the client moves to the next.
    #[arg(
        long,
        env = "PUBSUB_TUI_SERVER",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub server: Vec<String>,

    /// Trust only this CA (PEM) instead of the system's roots.
    #[arg(long, env = "PUBSUB_TUI_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Use unencrypted TCP. Only allowed to a loopback address given with --server.
    #[arg(long, env = "PUBSUB_TUI_INSECURE_PLAIN_TCP")]
    pub insecure_plain_tcp: bool,

    /// Read the password from this file (must not be readable by group or others).
    #[arg(long, env = "PUBSUB_TUI_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Run this command (no shell; words split like a shell would) and use the first line
    /// of its output as the password.
    #[arg(long, env = "PUBSUB_TUI_PASSWORD_COMMAND", value_name = "CMD")]
    pub password_command: Option<String>,
}

/// Which service and nodes, and how long to wait for its answers.
#[derive(Debug, Args, Default, Clone)]
pub struct ServiceArgs {
    /// The pubsub service: a component (pubsub.example.org) or a relay's full JID
    /// (test@example.org/server). Default: pubsub.<your domain>.
    #[arg(long, env = "PUBSUB_TUI_SERVICE")]
    pub service: Option<String>,

    /// A node to subscribe to; repeat for several (env: comma-separated).
    #[arg(long = "node", env = "PUBSUB_TUI_NODE", value_delimiter = ',')]
    pub nodes: Vec<String>,

    /// Seconds to wait for an answer to a request while the link is up (default 30).
    #[arg(long, env = "PUBSUB_TUI_IQ_TIMEOUT", value_name = "SECS")]
    pub iq_timeout: Option<f64>,
}

/// What only the TUI uses.
#[derive(Debug, Args, Default, Clone)]
pub struct TuiArgs {
    /// Publish an item every SECS seconds (default 5) to the selected node; the `a` key
    /// toggles it. Off unless given.
    #[arg(
        long,
        env = "PUBSUB_TUI_AUTO_PUBLISH",
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "5"
    )]
    pub auto_publish: Option<f64>,

    /// Items kept per node in the feed (default 10000); the oldest are evicted.
    #[arg(long, env = "PUBSUB_TUI_FEED_LIMIT", value_name = "N")]
    pub feed_limit: Option<usize>,

    /// Memory all the feeds keep together, at most (such as 64M or 1G; default: no bound
    /// besides --feed-limit); the oldest items of any node are evicted first.
    #[arg(long, env = "PUBSUB_TUI_FEED_MEMORY", value_name = "SIZE", value_parser = crate::config::parse_size)]
    pub feed_memory: Option<usize>,
}

/// The local store (items kept between runs, publisher numbers, the outbox).
#[derive(Debug, Args, Default, Clone)]
pub struct CacheArgs {
    /// Keep nothing between runs: no cached items at start, every resync in full, a new
    /// publisher session each run, unsent items lost at exit (config: cache = false).
    #[arg(long, env = "PUBSUB_TUI_NO_CACHE")]
    pub no_cache: bool,
}

#[derive(Debug, Args, Default, Clone)]
pub struct LogArgs {
    /// Log file. Default: $XDG_STATE_HOME/pubsub-tui/pubsub-tui.log for the TUI and the
    /// demo, stderr for the other commands.
    #[arg(long, env = "PUBSUB_TUI_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Log level or filter (error, warn, info, debug). Default: info for the TUI, the demo
    /// and serve; off for watch and publish, which report on their own.
    #[arg(long, env = "PUBSUB_TUI_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// The TUI's flags given on the command line before a subcommand (which would not use
/// them), as the user spelled them (`--node`).
pub fn tui_flags_before_subcommand(cmd: &clap::Command, matches: &clap::ArgMatches) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}
