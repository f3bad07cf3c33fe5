//! The `pubsub-tui` binary: parse the command line, set up logging, dispatch. Everything else
//! lives in the library.

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use pubsub_tui::cli::{Cli, Cmd};
use pubsub_tui::config::{self, FileConfig};
use pubsub_tui::{demo, headless, logging, tui};

fn main() -> ExitCode {
    // First, before any thread exists: take the password out of the environment block.
    let env_erase = pubsub_tui::envsecret::take();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = env_erase {
        eprintln!(
            "pubsub-tui: warning: could not erase {} from this process's environment ({e}); \
             it stays readable in /proc/{}/environ to your user and root",
            config::PASSWORD_ENV,
            std::process::id()
        );
    }
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pubsub-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let file = FileConfig::load(cli.conn.config.as_deref())?;
    let merged = config::merge(&cli.conn, file);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None => {
            let settings = config::resolve(&merged, true)?;
            log_to_file(&merged)?;
            let model = tui::model::Model::for_session(&settings.session, settings.feed_limit);
            runtime.block_on(async {
                let net = pubsub_tui::xmpp::spawn(settings.connect, settings.session);
                tui::run(net, model).await
            })
        }
        Some(Cmd::Watch) => {
            let settings = config::resolve(&merged, true)?;
            log_to_stderr(&merged)?;
            runtime.block_on(headless::watch(settings))
        }
        Some(Cmd::Publish(args)) => {
            // With the text on stdin, stdin cannot also answer a password prompt.
            let settings = config::resolve(&merged, args.text.is_some())?;
            log_to_stderr(&merged)?;
            let id = runtime.block_on(headless::publish(settings, args.text))?;
            println!("{id}");
            Ok(())
        }
        Some(Cmd::Serve(args)) => {
            let unused = pubsub_tui::cli::client_only_flags(matches);
            if !unused.is_empty() {
                anyhow::bail!(
                    "serve does not use {}: {} (clients choose their own nodes, timers \
                     and limits)",
                    unused.join(", "),
                    if unused.len() == 1 {
                        "it is a client setting"
                    } else {
                        "they are client settings"
                    },
                );
            }
            let serve = config::resolve_serve(&args)?;
            let full = merged.jid.as_deref().map(str::trim).unwrap_or_default();
            if full.is_empty() || !full.contains('/') {
                anyhow::bail!(
                    "serve needs --jid with a resource (user@domain/server): clients address \
                     the service by that full JID"
                );
            }
            let connect = config::resolve_connect(&merged, true)?;
            let data_dir = args
                .data_dir
                .map_or_else(config::default_data_dir, config::expand_tilde);
            logging::init(
                merged.log_file.as_deref(),
                merged.log_level.as_deref().unwrap_or("info"),
            )?;
            runtime.block_on(pubsub_tui::serve::run(connect, serve, data_dir))
        }
        Some(Cmd::Demo(args)) => {
            log_to_file(&merged)?;
            runtime.block_on(demo::run(args.peer_interval, merged.feed_limit))
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

/// Headless commands: stderr (or the given file), at warn, so stdout stays clean.
fn log_to_stderr(merged: &config::Merged) -> anyhow::Result<()> {
    logging::init(
        merged.log_file.as_deref(),
        merged.log_level.as_deref().unwrap_or("warn"),
    )
}
