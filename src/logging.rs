//! Logging through `tracing`, to a file or to stderr, never to the terminal the TUI owns.
//!
//! tokio-xmpp logs every byte it sends at trace level, SASL `<auth/>` included (with PLAIN that
//! is the password). Whatever filter the user asks for, its targets are capped at `info`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// Targets whose debug/trace output may contain raw stream bytes (and so secrets).
const RAW_BYTE_TARGETS: &[&str] = &[
    "tokio_xmpp",
    "xmpp_parsers",
    "xso",
    "minidom",
    "rxml",
    "sasl",
];

/// Build the filter: the user's, with the raw-byte targets capped at `info`. (A cap only:
/// a filter of `off` or `warn` stays as quiet for them as for everything else.)
pub fn filter(user: &str) -> anyhow::Result<EnvFilter> {
    // A bare word is a level; EnvFilter would take a typo ("debg") for a target name and log
    // nothing, silently.
    for part in user.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !part.contains('=')
            && !part.contains(':')
            && part
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            anyhow::bail!(
                "--log-level (config: log_level): {part:?} is not a level (error, warn, info, \
                 debug, trace or off), nor target=level"
            );
        }
    }
    let mut f = EnvFilter::try_new(user).with_context(|| format!("bad log filter {user:?}"))?;
    let verbose = f
        .max_level_hint()
        .is_none_or(|max| max > tracing_subscriber::filter::LevelFilter::INFO);
    if verbose {
        for t in RAW_BYTE_TARGETS {
            f = f.add_directive(format!("{t}=info").parse().context("static directive")?);
        }
    }
    Ok(f)
}

pub fn default_log_file() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::cache_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("pubsub-tui")
        .join("pubsub-tui.log")
}

/// Log to `file` (created 0600, appended), or to stderr when `None`. Only the default log
/// file's directory is created; a given file's directory must exist (a typo there should not
/// make directories).
pub fn init(file: Option<&Path>, level: &str) -> anyhow::Result<()> {
    let filter = filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    match file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if path == default_log_file() {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create log directory {}", dir.display())
                    })?;
                } else if !dir.is_dir() {
                    anyhow::bail!(
                        "--log-file (config: log_file): the directory {} does not exist",
                        dir.display()
                    );
                }
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode_0600()
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init()
                .map_err(|e| anyhow::anyhow!("logging: {e}"))
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| anyhow::anyhow!("logging: {e}")),
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_byte_targets_are_capped_even_when_user_asks_for_trace() {
        let f = super::filter("trace,tokio_xmpp=trace").expect("valid");
        let s = f.to_string();
        assert!(s.contains("tokio_xmpp=info"), "{s}");
        assert!(!s.contains("tokio_xmpp=trace"), "{s}");
    }

    #[test]
    fn a_misspelt_level_is_an_error() {
        let err = super::filter("debg").expect_err("not a level");
        assert!(err.to_string().contains("\"debg\" is not a level"), "{err}");
        assert!(super::filter("warn,pubsub_tui=debug").is_ok());
        assert!(super::filter("pubsub_tui::wire=trace").is_ok());
    }

    #[test]
    fn a_quiet_filter_stays_quiet_for_the_capped_targets_too() {
        for quiet in ["off", "warn", "error"] {
            let s = super::filter(quiet).expect("valid").to_string();
            assert!(!s.contains("tokio_xmpp"), "{quiet}: {s}");
        }
    }
}
