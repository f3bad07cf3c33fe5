//! The `pubsub-tui` binary: parse the command line, set up logging, dispatch. Everything else
//! lives in the library.

use std::process::ExitCode;

use clap::Parser as _;
use pubsub_tui::cli::{Cli, Cmd};
use pubsub_tui::config::{self, FileConfig};
use pubsub_tui::{demo, headless, logging, tui};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pubsub-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = FileConfig::load(cli.conn.config.as_deref())?;
    let merged = config::merge(&cli.conn, file);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None => {
            let settings = config::resolve(&merged, true)?;
            let log_file = merged
                .log_file
                .clone()
                .unwrap_or_else(logging::default_log_file);
            logging::init(
                Some(&log_file),
                merged.log_level.as_deref().unwrap_or("info"),
            )?;
            let model = tui::model::Model::new(
                &settings.session.nodes,
                settings.feed_limit,
                settings.session.auto_publish,
                settings.session.interval,
                *chrono::Local::now().offset(),
            );
            runtime.block_on(async {
                let net = pubsub_tui::xmpp::spawn(settings.connect, settings.session);
                tui::run(net, model).await
            })
        }
        Some(Cmd::Watch) => {
            let settings = config::resolve(&merged, true)?;
            logging::init(
                merged.log_file.as_deref(),
                merged.log_level.as_deref().unwrap_or("warn"),
            )?;
            runtime.block_on(headless::watch(settings))
        }
        Some(Cmd::Publish(args)) => {
            // With the text on stdin, stdin cannot also answer a password prompt.
            let settings = config::resolve(&merged, args.text.is_some())?;
            logging::init(
                merged.log_file.as_deref(),
                merged.log_level.as_deref().unwrap_or("warn"),
            )?;
            let id = runtime.block_on(headless::publish(settings, args.text))?;
            println!("{id}");
            Ok(())
        }
        Some(Cmd::Demo(args)) => {
            let log_file = merged
                .log_file
                .clone()
                .unwrap_or_else(logging::default_log_file);
            logging::init(
                Some(&log_file),
                merged.log_level.as_deref().unwrap_or("info"),
            )?;
            runtime.block_on(demo::run(args.peer_interval, merged.feed_limit))
        }
    }
}
