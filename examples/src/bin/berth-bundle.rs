//! berth-bundle: write a busybox OCI bundle (rootfs and config.json).
//!
//! `berth-bundle DIR [-- ARGS...]`: the container runs ARGS (default /bin/sh).

use std::process::ExitCode;

use clap::Parser;
use libcontainer::fixtures::BusyboxBundle;

#[derive(Debug, Parser)]
#[command(name = "berth-bundle", about = "Write a busybox OCI bundle")]
struct Cli {
    /// The bundle directory (created if missing).
    dir: std::path::PathBuf,
    /// The container's command line.
    #[arg(last = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut b = BusyboxBundle::new(&cli.dir);
    if !cli.args.is_empty() {
        b = b.args(cli.args);
    }
    match b.write() {
        Ok(bundle) => {
            println!("{}", bundle.path().display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-bundle: {e}");
            ExitCode::FAILURE
        }
    }
}
