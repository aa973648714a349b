//! `berthd`: a container engine the docker CLI drives.
//!
//! ```text
//! berthd [--host unix:///run/berth/berth.sock] [--root /var/lib/berth]
//! docker -H unix:///run/berth/berth.sock load -i busybox.tar
//! docker -H unix:///run/berth/berth.sock run --rm busybox echo hi
//! ```
//!
//! Serves `examples::engine::LocalBackend` through libswarm's dockerserver.
//! Prints `listening on ADDR` and runs until SIGINT or SIGTERM. Containers
//! run under per-container monitors (`berthd shim …`, berthd re-executed)
//! that outlive berthd: when it stops (or dies) they keep running, and the
//! next berthd with the same `--root` attaches to them again (like
//! dockerd's `--live-restore`); `--stop-containers-on-exit` stops them
//! instead (dockerd's default). Networking is on, in berthd's own network
//! namespace, unless `--network-host-netns` names another one or `none`.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use examples::engine::exec;
use examples::engine::network::default_bridge::DefaultBridge;
use examples::engine::network::Networking;
use examples::engine::shim::{self, ShimArgs};
use examples::engine::{EngineConfig, LocalBackend};
use examples::images::RegistryConfig;
use libswarm::dockerserver::{serve, ListenAddr};

#[derive(Parser)]
#[command(name = "berthd", about = "A container engine for the docker CLI")]
struct Args {
    /// Where to listen (unix:///path or tcp://host:port).
    #[arg(long, short = 'H', default_value = "unix:///run/berth/berth.sock")]
    host: String,
    /// Persistent state: images and containers.
    #[arg(long, default_value = "/var/lib/berth")]
    root: std::path::PathBuf,
    /// Run state of the containers (libcontainer's state root).
    #[arg(long, default_value = "/run/berth/containers")]
    exec_root: std::path::PathBuf,
    /// The network namespace libnetwork manages as the host: berthd's own
    /// by default, as dockerd (the default `bridge` network, published
    /// ports and firewall rules go there); a test's fake host namespace; or
    /// `none`: no networking at all (containers get an empty network
    /// namespace, `-p` is refused, and no bridge or firewall rule is made
    /// anywhere).
    #[arg(long, default_value = "/proc/self/ns/net")]
    network_host_netns: String,
    /// Where to find Docker volume plugins (NAME.sock, NAME.spec or
    /// NAME.json), instead of /run/docker/plugins and /etc/docker/plugins.
    #[arg(long)]
    volume_plugin_dir: Vec<std::path::PathBuf>,
    /// Treat this registry (`host[:port]`, or a host for any port) as
    /// dockerd's `--insecure-registry`: HTTPS without checking its
    /// certificate, else plain HTTP. Loopback registries are plain HTTP.
    /// Repeat for several.
    #[arg(long)]
    insecure_registry: Vec<String>,
    /// Extra CAs per registry, as Docker's: `DIR/<host[:port]>/*.crt`.
    #[arg(long, default_value = "/etc/docker/certs.d")]
    registry_certs_dir: std::path::PathBuf,
    /// Stop the running containers when berthd exits (SIGTERM, then
    /// SIGKILL after their stop timeout) instead of leaving them running.
    #[arg(long)]
    stop_containers_on_exit: bool,
    /// dockerd's `--log-opt key=value`: json-file defaults for new
    /// containers (`max-size=10m`, `max-file=3`). Repeat for several.
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// dockerd's `--ipv6`: containers on the default `bridge` network also
    /// get an IPv6 address (from `--fixed-cidr-v6`, which it needs) and
    /// `-p` publishes on both families.
    #[arg(long)]
    ipv6: bool,
    /// dockerd's `--fixed-cidr-v6`: the default bridge's IPv6 subnet
    /// (`fd00:dead:beef::/64`), with `--ipv6`.
    #[arg(long)]
    fixed_cidr_v6: Option<String>,
    /// tracing filter; also RUST_LOG.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).and_then(|a| a.to_str()) == Some(shim::SHIM_ARG) {
        let Some(a) = ShimArgs::parse(&argv[2..]) else {
            anyhow::bail!("usage: berthd shim STATE_ROOT ID BUNDLE READY_SOCKET SOCKET stdin|-");
        };
        std::process::exit(shim::run(&a));
    }
    if argv.get(1).and_then(|a| a.to_str()) == Some(exec::EXEC_ARG) {
        let [_, _, root, id, process] = argv.as_slice() else {
            anyhow::bail!("usage: berthd exec STATE_ROOT ID PROCESS_JSON");
        };
        let id = id.to_str().context("exec: the container id is not UTF-8")?;
        std::process::exit(exec::run_helper(root.as_ref(), id, process.as_ref()));
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(daemon(args))
}

async fn daemon(args: Args) -> anyhow::Result<()> {
    let addr = ListenAddr::parse(&args.host).context("--host")?;
    let bridge = DefaultBridge::from_flags(args.ipv6, args.fixed_cidr_v6.as_deref())?;
    if let ListenAddr::Unix(path) = &addr {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let engine = LocalBackend::open(EngineConfig {
        root: args.root.clone(),
        state_dir: args.exec_root.clone(),
        shim_program: std::env::current_exe().context("finding berthd's own path")?,
    })
    .context("--root")?;
    let registries = args
        .insecure_registry
        .iter()
        .fold(RegistryConfig::new(), |c, r| c.insecure(r.clone()))
        .certs_dir(&args.registry_certs_dir);
    engine.set_registry_config(registries);
    let log_defaults = examples::engine::logrot::daemon_opts(&args.log_opt).context("--log-opt")?;
    engine.set_log_defaults(log_defaults);
    if !args.volume_plugin_dir.is_empty() {
        engine.set_volume_plugin_dirs(args.volume_plugin_dir.clone());
    }
    if args.network_host_netns != "none" {
        let ns = std::path::Path::new(&args.network_host_netns);
        let net = Networking::start_with(&args.root.join("network"), ns, &bridge)
            .await
            .context("--network-host-netns")?;
        // The networks of containers an earlier berthd left (before
        // restore, which may stop or start them).
        net.restore(&args.root.join("containers")).await;
        engine
            .enable_networking(net)
            .context("--network-host-netns")?;
    }
    // Containers of an earlier berthd: attach again, take exits, restart.
    engine.restore().await;
    let server = serve(Arc::new(engine.clone()), &addr)
        .await
        .context("--host")?;
    println!("listening on {}", server.addr());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    engine.shutdown(args.stop_containers_on_exit).await;
    // Attached clients may hold connections open; do not wait for them.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server.shutdown()).await;
    Ok(())
}
