//! The `pubsub-tui` binary: parse the command line, set up logging, dispatch. Everything else
//! lives in the library.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use pubsub_tui::cli::{Cli, Cmd};
use pubsub_tui::config::{self, FileConfig};
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
            if e.is::<Usage>() {
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

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        None => {
            let file = FileConfig::load(cli.account.config.as_deref())?;
            let merged = config::merge(
                &cli.account,
                Some(&cli.service),
                Some(&cli.tui),
                &cli.log,
                file,
            );
            let settings = config::resolve(&merged, true)?;
            require_terminal()?;
            log_to_file(&merged)?;
            let model = tui::model::Model::for_session(&settings.session, settings.feed_limit);
            runtime()?.block_on(async {
                let net = pubsub_tui::xmpp::spawn(settings.connect, settings.session);
                tui::run(net, model).await
            })
        }
        Some(Cmd::Watch(args)) => {
            let file = FileConfig::load(args.account.config.as_deref())?;
            let merged = config::merge(&args.account, Some(&args.service), None, &args.log, file);
            let settings = config::resolve(&merged, true)?;
            log_to_stderr(&merged)?;
            runtime()?.block_on(headless::watch(settings))
        }
        Some(Cmd::Publish(args)) => {
            let file = FileConfig::load(args.account.config.as_deref())?;
            let service = args.service_args();
            let merged = config::merge(&args.account, Some(&service), None, &args.log, file);
            let settings = config::resolve(&merged, true)?;
            log_to_stderr(&merged)?;
            let id = runtime()?.block_on(headless::publish(settings, args.text))?;
            println!("{id}");
            Ok(())
        }
        Some(Cmd::Serve(args)) => {
            let file = FileConfig::load(args.account.config.as_deref())?;
            let merged = config::merge(&args.account, None, None, &args.log, file);
            let (serve, data_dir) = config::resolve_serve(&args.serve, &merged.serve)?;
            let jid = pubsub_tui::serve::service_jid(&merged)?;
            let connect = config::resolve_connect_as(&merged, jid, true)?;
            logging::init(
                merged.log_file.as_deref(),
                merged.log_level.as_deref().unwrap_or("info"),
            )?;
            runtime()?.block_on(pubsub_tui::serve::run(connect, serve, data_dir))
        }
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
