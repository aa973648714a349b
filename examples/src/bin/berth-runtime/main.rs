//! berth-runtime: a runc-compatible command line over libcontainer.
//!
//! Each command lives in `commands/<name>.rs`; adding one is a file there
//! and one line in [`Command`].

mod commands;
mod tty;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Log line format for --log.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "A runc-compatible OCI runtime built on libcontainer"
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = libcontainer::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write log lines (errors included) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of --log.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; cgroups are managed directly.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Create(commands::create::Args),
    Start(commands::start::Args),
    State(commands::state::Args),
    Kill(commands::kill::Args),
    Delete(commands::delete::Args),
    Run(commands::run::Args),
    List(commands::list::Args),
    Spec(commands::spec::Args),
    Pause(commands::pause::Args),
    Resume(commands::resume::Args),
    Update(commands::update::Args),
    Events(commands::events::Args),
    Ps(commands::ps::Args),
    Features(commands::features::Args),
    Exec(commands::exec::Args),
}

/// What every command gets.
pub struct Globals {
    /// --root.
    pub root: PathBuf,
}

fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let level = if cli.debug { "debug" } else { "warn" };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::from_level(
            if cli.debug {
                tracing::Level::DEBUG
            } else {
                tracing::Level::WARN
            },
        ));
    let file = match &cli.log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("--log {path:?}: {e}"))?;
            let filter = tracing_subscriber::EnvFilter::new(level);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false);
            Some(match cli.log_format {
                LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
                LogFormat::Text => layer.with_filter(filter).boxed(),
            })
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("berth-runtime: {e:#}");
        return ExitCode::FAILURE;
    }
    let g = Globals {
        root: cli.root.clone(),
    };
    let result = match cli.command {
        Command::Create(a) => commands::create::run(&g, a),
        Command::Start(a) => commands::start::run(&g, a),
        Command::State(a) => commands::state::run(&g, a),
        Command::Kill(a) => commands::kill::run(&g, a),
        Command::Delete(a) => commands::delete::run(&g, a),
        Command::Run(a) => commands::run::run(&g, a),
        Command::List(a) => commands::list::run(&g, a),
        Command::Spec(a) => commands::spec::run(&g, a),
        Command::Pause(a) => commands::pause::run(&g, a),
        Command::Resume(a) => commands::resume::run(&g, a),
        Command::Update(a) => commands::update::run(&g, a),
        Command::Events(a) => commands::events::run(&g, a),
        Command::Ps(a) => commands::ps::run(&g, a),
        Command::Features(a) => commands::features::run(&g, a),
        Command::Exec(a) => commands::exec::run(&g, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The stderr layer prints it; the file layer logs it.
            tracing::error!("{}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but without a cause
/// the message before already ends with: errors that show their source in
/// their own message (most of libcontainer's) would repeat it otherwise.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("config.json: {source}")]
    struct Shows {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_shown_is_not_repeated() {
        let io = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::new(Shows { source: io() });
        assert_eq!(error_text(&e), format!("config.json: {}", io()));
        let e = anyhow::Error::new(io()).context("reading the bundle");
        assert_eq!(error_text(&e), format!("reading the bundle: {}", io()));
    }
}
