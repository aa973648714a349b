//! berth-volume-plugin: serves libvolume's `local` driver as a Docker
//! volume plugin on a unix socket (or TCP), so Docker, or any other client
//! of the protocol, can use it as a named driver.
//!
//! ```sh
//! berth-volume-plugin --name berth-local --root /var/lib/berth-volume-plugin
//! # socket: /run/docker/plugins/berth-local.sock (Docker finds it by name)
//! docker volume create -d berth-local -o type=tmpfs -o device=tmpfs scratch
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use libvolume::plugin::{PluginAddr, PluginServer};
use libvolume::LocalDriver;

#[derive(Parser)]
#[command(about = "Serve libvolume's local driver as a Docker volume plugin")]
struct Args {
    /// The plugin (driver) name volumes will use.
    #[arg(long, default_value = "berth-local")]
    name: String,
    /// Where volumes live.
    #[arg(long, default_value = "/var/lib/berth-volume-plugin")]
    root: PathBuf,
    /// Unix socket to listen on [default: /run/docker/plugins/<name>.sock].
    #[arg(long, conflicts_with = "tcp")]
    socket: Option<PathBuf>,
    /// Listen on TCP instead (e.g. 127.0.0.1:8080); writes no spec file.
    #[arg(long)]
    tcp: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    libvolume::validate_name(&args.name).context("--name")?;
    let driver = LocalDriver::builder(&args.root)
        .build()
        .with_context(|| format!("opening volume root {}", args.root.display()))?;
    let server = PluginServer::new(Arc::new(driver));
    let handle = match args.tcp {
        Some(addr) => server.serve_tcp(addr).await?,
        None => {
            let socket = args.socket.unwrap_or_else(|| {
                PathBuf::from(format!("/run/docker/plugins/{}.sock", args.name))
            });
            server.serve_unix(socket).await?
        }
    };
    match handle.addr() {
        PluginAddr::Unix(p) => println!("listening on unix://{}", p.display()),
        PluginAddr::Tcp(a) => println!("listening on tcp://{a}"),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // Dropping the handle stops the server and removes the socket.
    handle.shutdown();
    Ok(())
}
