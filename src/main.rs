//! The `pubsub-tui` binary: parse the command line, set up logging, dispatch. Everything else
//! lives in the library.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use pubsub_tui::cli::{Cli, Cmd};
use pubsub_tui::config::{self, FileConfig};
use pubsub_tui::state::FollowState;
use pubsub_tui::{demo, headless, logging, tui};

/// An error that is the user's to fix before anything starts (exit status 2, like a bad flag).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn main() -> ExitCode {
    // First, before any thread exists: take the password out of the environment block.
    let env_erase = pubsub_tui::envsecret::take();
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = env_erase {
        eprintln!(
            "pubsub-tui: warning: could not erase {} from this process's environment ({e}); \
             it stays readable in /proc/{}/environ to your user and root",
            config::PASSWORD_ENV,
            std::process::id()
        );
    }
    if cli.command.is_some() {
        let early = pubsub_tui::cli::tui_flags_before_subcommand(&command, &matches);
        if let (Some(first), Some(name)) = (early.first(), matches.subcommand_name()) {
            eprintln!(
                "pubsub-tui: {} before `{name}`: a subcommand's flags go after its name, as in \
                 `pubsub-tui {name} {first} …` (see `pubsub-tui {name} --help`)",
                early.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is gone (a closed terminal).
            let _ = writeln!(std::io::stderr(), "pubsub-tui: {e:#}");
            if e.is::<Usage>() || e.is::<config::UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The TUI draws on the terminal and reads keys from it.
fn require_terminal() -> anyhow::Result<()> {
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Usage(
        "the TUI needs a terminal; use `pubsub-tui watch` or `pubsub-tui publish` in scripts"
            .into(),
    )
    .into())
}

/// One thread runs everything: the network core, the front end and the stream's worker.
/// Handing an event from task to task is then a local wake, not a cross-thread one (a futex
/// call and a context switch each, which cost more than the rest of an event on a flood;
/// `cargo bench --bench flood`). Nothing here needs a second core: the work is one stream's.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => run_tui(&cli),
        Some(Cmd::Watch(args)) => run_watch(&args),
        Some(Cmd::Publish(args)) => run_publish(&args),
        Some(Cmd::Nodes(args)) => {
            let tree = args.tree;
            one_shot(&args.query, headless::Query::Nodes { tree })
        }
        Some(Cmd::Info(args)) => {
            let node = args.node.clone();
            one_shot(&args.query, headless::Query::Info { node })
        }
        Some(Cmd::Items(args)) => {
            let (node, max, format) = (args.node.clone(), args.max, args.format);
            one_shot(&args.query, headless::Query::Items { node, max, format })
        }
        Some(Cmd::Subscribe(args)) => {
            let node = args.node.clone();
            one_shot(&args.query, headless::Query::Subscribe { node })
        }
        Some(Cmd::Unsubscribe(args)) => {
            let node = args.node.clone();
            one_shot(&args.query, headless::Query::Unsubscribe { node })
        }
        Some(Cmd::Subscriptions(args)) => one_shot(&args, headless::Query::Subscriptions),
        Some(Cmd::Node(args)) => run_node(args),
        Some(Cmd::Import(args)) => run_import(&args),
        Some(Cmd::Retract(args)) => one_shot(
            &args.query,
            headless::Query::Node(pubsub_tui::headless::owner::NodeQuery::Retract {
                node: args.node,
                id: args.id,
            }),
        ),
        Some(Cmd::Serve(args)) => {
            let file = FileConfig::load(args.account.config.as_deref())?;
            let merged = config::merge(&args.account, None, None, &args.log, file);
            let (serve, data_dir) = config::resolve_serve(&args.serve, &merged.serve)?;
            let component = config::resolve_component(&merged, &args.serve, &merged.serve)?;
            let as_component = component.is_some();
            let connect = if let Some(c) = component {
                c
            } else {
                let jid = pubsub_tui::serve::service_jid(&merged)?;
                config::resolve_connect_as(&merged, jid, true)?
            };
            logging::init(
                merged.log_file.as_deref(),
                merged.log_level.as_deref().unwrap_or("info"),
            )?;
            runtime()?.block_on(pubsub_tui::serve::run(
                connect,
                serve,
                data_dir,
                as_component,
            ))
        }
        Some(Cmd::Cache(args)) => run_cache(&args),
        Some(Cmd::Demo(args)) => {
            // The demo runs its own accounts: the user's config file does not apply.
            let file = FileConfig::default();
            let tui_args = pubsub_tui::cli::TuiArgs {
                feed_limit: args.feed_limit,
                ..Default::default()
            };
            let merged = config::merge(
                &pubsub_tui::cli::AccountArgs::default(),
                None,
                Some(&tui_args),
                &args.log,
                file,
            );
            require_terminal()?;
            log_to_file(&merged)?;
            runtime()?.block_on(demo::run(args.peer_interval, merged.feed_limit))
        }
    }
}

/// `publish`: one item, its id printed.
fn run_publish(args: &pubsub_tui::cli::PublishArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.account.config.as_deref())?;
    let service = args.service_args();
    let mut merged = config::merge(&args.account, Some(&service), None, &args.log, file);
    merged.cache &= !args.cache.no_cache;
    if args.queue && !merged.cache {
        return Err(Usage("--queue keeps the item in the cache's outbox: it cannot go with --no-cache (or cache = false)".into()).into());
    }
    let settings = config::resolve(&merged, true)?;
    log_to_stderr(&merged)?;
    // Publish-options' keys as --set's: with or without `pubsub#`.
    let options = args
        .options
        .iter()
        .map(|(k, v)| {
            let k = if k.contains('#') || k == "FORM_TYPE" {
                k.clone()
            } else {
                format!("pubsub#{k}")
            };
            (k, v.clone())
        })
        .collect();
    let extra = headless::PublishExtra {
        id: args.id.clone(),
        xml: args.xml.clone(),
        options,
        queue: args.queue,
    };
    if let Some(id) = &extra.id
        && (id.trim().is_empty() || id.len() > 1024 || id.chars().any(char::is_control))
    {
        return Err(
            Usage("--id: the item id is empty, too long or has control characters".into()).into(),
        );
    }
    let id = runtime()?.block_on(headless::publish(settings, args.text.clone(), extra))?;
    say(&id).map_err(|e| anyhow::anyhow!("published as {id}, but {e}"))
}

/// A line on stdout. A reader that went away (a closed pipe) is not an error; a write that
/// fails otherwise (a full disk) is, in words, not a panic as `println!` would.
fn say(line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            anyhow::bail!("cannot write to standard output: {e}")
        }
        _ => Ok(()),
    }
}

/// A `--node` that cannot be a node's name is a usage error (exit 2).
fn check_node_flag(node: &str) -> anyhow::Result<()> {
    if let Err(e) = pubsub_tui::xmpp::session::check_node_name(node) {
        let shown = pubsub_tui::sanitize::display_max(node, 60);
        return Err(Usage(format!("--node {shown:?}: {e}")).into());
    }
    Ok(())
}

/// `cache`: what the local store keeps for the account, or `cache clear`.
fn run_cache(args: &pubsub_tui::cli::CacheCmdArgs) -> anyhow::Result<()> {
    use pubsub_tui::cache::db;
    let file = FileConfig::load(args.account.config.as_deref())?;
    let Some(jid) = args.account.jid.clone().or(file.jid) else {
        return Err(Usage(
            "no account given: pass --jid user@domain (or set jid in the config file, or \
             PUBSUB_TUI_JID)"
                .into(),
        )
        .into());
    };
    let bare = jid.trim().split('/').next().unwrap_or("");
    let jid = match xmpp_parsers::jid::BareJid::new(bare) {
        Ok(j) if j.node().is_some() => j,
        _ => {
            return Err(Usage(format!(
                "--jid {:?} is not an account (user@domain)",
                pubsub_tui::sanitize::display_max(&jid, 80)
            ))
            .into());
        }
    };
    let Some(dir) = db::default_dir() else {
        anyhow::bail!("this system has no data directory ($XDG_DATA_HOME or $HOME)");
    };
    let path = db::path_for(&dir, jid.as_str());
    if args.clear {
        let node = args.node.as_deref();
        let n = db::clear(&path, node)?;
        if args.json {
            let v =
                serde_json::json!({"removed": n, "node": node, "path": path.display().to_string()});
            return say(&headless::json_line(&v));
        }
        let what = node.map_or(String::new(), |n| {
            format!(" of {}", pubsub_tui::sanitize::display(n))
        });
        return say(&format!(
            "removed {}{what} from {} (publisher sessions and items waiting to be published are kept)",
            pubsub_tui::feed::render::plural(n, "kept item"),
            path.display()
        ));
    }
    let s = db::summary(&path)?;
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        v["path"] = serde_json::json!(path.display().to_string());
        return say(&headless::json_line(&v));
    }
    print!("{}", cache_text(&path, &s));
    Ok(())
}

fn cache_text(path: &std::path::Path, s: &pubsub_tui::cache::db::Summary) -> String {
    use pubsub_tui::feed::render::plural;
    use pubsub_tui::sanitize::display;
    use std::fmt::Write as _;
    let mut out = String::new();
    for m in &s.moved_aside {
        let waiting = usize::try_from(m.waiting).unwrap_or(usize::MAX);
        let _ = writeln!(
            out,
            "moved aside by an older pubsub-tui, which could not read it: {} ({} waiting to be \
             published there); this version reads it: stop every pubsub-tui of the account and \
             move it back to {} (and its -wal file, if it has one, to {}-wal) to use what it kept",
            m.path.display(),
            plural(waiting, "item"),
            path.display(),
            path.display()
        );
    }
    if s.file_bytes == 0 {
        let _ = writeln!(out, "no cache yet at {}", path.display());
        return out;
    }
    let _ = writeln!(
        out,
        "{} ({} KiB)",
        path.display(),
        s.file_bytes.div_ceil(1024)
    );
    let _ = writeln!(out, "kept items:");
    if s.nodes.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for k in &s.nodes {
        let n = usize::try_from(k.items).unwrap_or(usize::MAX);
        let _ = writeln!(
            out,
            "  {}  {}  {} ({} KiB)",
            display(&k.service),
            display(&k.node),
            plural(n, "item"),
            k.bytes.div_ceil(1024)
        );
    }
    let _ = writeln!(
        out,
        "publisher sessions (their numbers continue from run to run):"
    );
    if s.sessions.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for p in &s.sessions {
        let _ = writeln!(
            out,
            "  {}  {}  {}  last number {}{}",
            display(&p.service),
            display(&p.node),
            display(&p.session),
            p.last,
            if p.in_use {
                "  (in use by a running pubsub-tui)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "waiting to be published:");
    if s.unsent.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for u in &s.unsent {
        let _ = writeln!(
            out,
            "  {}  {}  {}  {}",
            display(&u.service),
            display(&u.node),
            display(&u.id),
            pubsub_tui::sanitize::display_max(&u.text, 60)
        );
    }
    out
}

/// `import`: check the whole file, then publish what the node lacks.
fn run_import(args: &pubsub_tui::cli::ImportArgs) -> anyhow::Result<()> {
    check_node_flag(&args.node)?;
    let records = headless::transfer::read_file(&args.file, args.format)?;
    let file = FileConfig::load(args.query.account.config.as_deref())?;
    let service = args.query.service_args();
    let merged = config::merge(
        &args.query.account,
        Some(&service),
        None,
        &args.query.log,
        file,
    );
    let settings = config::resolve_any(&merged, true)?;
    log_to_stderr(&merged)?;
    let total = records.len();
    let started = std::time::Instant::now();
    let out = runtime()?.block_on(headless::transfer::import(settings, &args.node, records))?;
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        format!(
            ", {:.0} items/s",
            f64::from(u32::try_from(out.published).unwrap_or(u32::MAX)) / secs
        )
    } else {
        String::new()
    };
    eprintln!(
        "pubsub-tui: {total} items in {}: {} published, {} already there (skipped), {} failed, in {secs:.1} s{rate}",
        args.file.display(),
        out.published,
        out.skipped,
        out.failed.len()
    );
    for f in out.failed.iter().take(20) {
        eprintln!("  {f}");
    }
    if !out.failed.is_empty() {
        anyhow::bail!(
            "{} item(s) were not published; run the import again to retry them",
            out.failed.len()
        );
    }
    Ok(())
}

/// `node …`: an owner's request.
fn run_node(args: pubsub_tui::cli::NodeCmdArgs) -> anyhow::Result<()> {
    use pubsub_tui::cli::NodeAction as A;
    use pubsub_tui::headless::owner::NodeQuery as Q;
    let (query, q) = match args.action {
        A::Create(a) => (
            a.query,
            Q::Create {
                node: a.name,
                set: a.set,
            },
        ),
        A::Config(a) => (
            a.query,
            Q::Config {
                node: a.name,
                set: a.set,
            },
        ),
        A::Purge(a) => (
            a.query,
            Q::Purge {
                node: a.name,
                yes: a.yes,
            },
        ),
        A::Delete(a) => (
            a.query,
            Q::Delete {
                node: a.name,
                redirect: a.redirect,
                yes: a.yes,
            },
        ),
        A::Affiliations(a) => (
            a.query,
            Q::Affiliations {
                node: a.name,
                set: a.set,
            },
        ),
        A::Subscriptions(a) => (
            a.query,
            Q::Subscriptions {
                node: a.name,
                set: a.set,
            },
        ),
    };
    one_shot(&query, headless::Query::Node(q))
}

/// The TUI: the nodes given, or the config's as changed in earlier runs.
fn run_tui(cli: &Cli) -> anyhow::Result<()> {
    let file = FileConfig::load(cli.account.config.as_deref())?;
    let mut merged = config::merge(
        &cli.account,
        Some(&cli.service),
        Some(&cli.tui),
        &cli.log,
        file,
    );
    merged.cache &= !cli.cache.no_cache;
    let mut settings = config::resolve_any(&merged, true)?;
    require_terminal()?;
    log_to_file(&merged)?;
    let (state, problem) = followed_nodes(&mut settings, !cli.service.nodes.is_empty());
    let mut model = tui::model::Model::for_session(&settings.session, settings.feed_limit);
    model.feed_memory = settings.feed_memory;
    model.servers_given = settings.connect.servers.len();
    if let Some(problem) = problem {
        model.error(problem);
    }
    if settings.session.nodes.is_empty() {
        model.outcome(
            tui::model::Level::Info,
            "no node followed yet: press e to explore the service and s to subscribe",
        );
    }
    runtime()?.block_on(async {
        let (store, notice) = pubsub_tui::cache::open(
            settings.cache.as_ref(),
            settings.session.service.as_str(),
            &settings.session.publisher_session,
        );
        if let Some(notice) = notice {
            model.error(format!("cache: {notice}"));
        }
        // What is not confirmed at quit stays in the store, for the next start to send.
        settings.session.keep_unsent = store.keeps_items();
        if settings.session.keep_unsent {
            model.unsent = tui::model::Unsent::Kept;
        }
        let net =
            pubsub_tui::xmpp::task::spawn_with_store(settings.connect, settings.session, store);
        let req = model.ids.fresh();
        let _ = net
            .commands
            .try_send(pubsub_tui::xmpp::Command::SendLeftovers { req, node: None });
        tui::run(net, model, state).await
    })
}

/// `watch`: JSON lines of every event of the nodes followed.
fn run_watch(args: &pubsub_tui::cli::WatchArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.account.config.as_deref())?;
    let mut merged = config::merge(&args.account, Some(&args.service), None, &args.log, file);
    merged.cache &= !args.cache.no_cache;
    if args.cached && !merged.cache {
        return Err(Usage(
            "--cached shows what the cache kept: it cannot go with --no-cache (or cache = false)"
                .into(),
        )
        .into());
    }
    let mut settings = config::resolve_any(&merged, true)?;
    log_to_stderr(&merged)?;
    let (_, problem) = followed_nodes(&mut settings, !args.service.nodes.is_empty());
    if let Some(problem) = problem {
        let _ = writeln!(std::io::stderr(), "pubsub-tui: warning: {problem}");
    }
    if settings.session.nodes.is_empty() {
        return Err(Usage(
            "no node given: pass --node NAME (repeatable), set nodes = [\"...\"] in the \
             config file, or follow nodes with `pubsub-tui subscribe --node NAME`"
                .into(),
        )
        .into());
    }
    runtime()?.block_on(headless::watch(settings, args.filter.clone(), args.cached))
}

/// Run a one-shot query (`nodes`, `info`, …) with its flags over the config file.
fn one_shot(args: &pubsub_tui::cli::QueryArgs, query: headless::Query) -> anyhow::Result<()> {
    if let headless::Query::Info { node: Some(n) }
    | headless::Query::Items { node: n, .. }
    | headless::Query::Subscribe { node: n }
    | headless::Query::Unsubscribe { node: n } = &query
    {
        check_node_flag(n)?;
    }
    if let headless::Query::Node(q) = &query
        && let Err(e) = q.check()
    {
        return Err(Usage(e).into());
    }
    let file = FileConfig::load(args.account.config.as_deref())?;
    let service = args.service_args();
    let merged = config::merge(&args.account, Some(&service), None, &args.log, file);
    let settings = config::resolve_any(&merged, true)?;
    log_to_stderr(&merged)?;
    let state = FollowState::default_path().map(|path| state_for(path, &settings));
    runtime()?.block_on(headless::query(settings, query, args.json, state))
}

fn state_for(path: std::path::PathBuf, settings: &config::Settings) -> FollowState {
    FollowState::new(
        path,
        &settings.connect.jid.to_bare().to_string(),
        &settings.session.service.to_string(),
    )
}

/// The nodes to follow: given on the command line (or in the environment), exactly those;
/// otherwise the config file's, changed by what was followed and left since (the state
/// file). Also the state to record changes in, and a problem to tell the user.
fn followed_nodes(
    settings: &mut config::Settings,
    given: bool,
) -> (Option<FollowState>, Option<String>) {
    let Some(path) = FollowState::default_path() else {
        return (
            None,
            Some("no XDG state dir: the nodes you follow are not kept for the next start".into()),
        );
    };
    let state = state_for(path, settings);
    if given {
        return (Some(state), None);
    }
    match state.load() {
        Ok(changes) => {
            settings.session.nodes = changes.apply(&settings.session.nodes);
            (Some(state), None)
        }
        Err(e) => (Some(state), Some(format!("{e:#}"))),
    }
}

/// The TUI owns the terminal: log to a file (the given one or the default), at info.
fn log_to_file(merged: &config::Merged) -> anyhow::Result<()> {
    let file = merged
        .log_file
        .clone()
        .unwrap_or_else(logging::default_log_file);
    logging::init(Some(&file), merged.log_level.as_deref().unwrap_or("info"))
}

/// Headless commands report on stdout and in one final line on stderr; the log (to stderr,
/// or the given file) is off unless asked for, so a failure is not told three times.
fn log_to_stderr(merged: &config::Merged) -> anyhow::Result<()> {
    logging::init(
        merged.log_file.as_deref(),
        merged.log_level.as_deref().unwrap_or("off"),
    )
}
