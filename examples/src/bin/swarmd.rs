//! `swarmd`: runs a libswarm adapter pipeline given as arguments.
//!
//! ```text
//! swarmd 'dockerserver unix:///tmp/berth.sock' 'debug' 'fake'
//! swarmd 'dockerserver tcp://127.0.0.1:2375' 'cluster n1@remote+unix:///tmp/n1.sock n2@fake'
//! swarmd 'remoteserver unix:///tmp/n1.sock' 'fake n1'
//! ```
//!
//! Each argument is one stage (see `libswarm::pipeline`); the last must be
//! a leaf (`fake`, `dockerclient ADDR`, `remote ADDR`, `cluster …`). Prints
//! `listening on ADDR` per server, then runs until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(name = "swarmd", about = "Run a libswarm adapter pipeline")]
struct Args {
    /// tracing filter (e.g. `libswarm::debug=debug`); also RUST_LOG.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
    /// Pipeline stages, outermost first.
    #[arg(required = true)]
    stages: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let pipeline = libswarm::pipeline::build(&args.stages)
        .await
        .context("building the pipeline")?;
    for addr in pipeline.listening() {
        println!("listening on {addr}");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    pipeline.shutdown().await;
    Ok(())
}
