//! libswarm benchmarks: cluster placement throughput and the latency an
//! adapter chain adds to `inspect`.
//!
//! `cargo run --release -p benches --bin swarm_bench` (optionally
//! `-- placement` or `-- latency`). Prints a markdown table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libswarm::cluster::{Cluster, Constraint, NodeRecord, NodeSpec, Scheduler, Strategy};
use libswarm::debug::DebugBackend;
use libswarm::dockerclient::DockerClient;
use libswarm::dockerserver::{self, ListenAddr};
use libswarm::fake::FakeBackend;
use libswarm::suite::busybox;
use libswarm::Backend;

const REGIONS: [&str; 4] = ["eu-1", "eu-2", "us-1", "us-2"];

fn labels(i: usize) -> HashMap<String, String> {
    [
        ("region".to_string(), REGIONS[i % 4].to_string()),
        (
            "disk".to_string(),
            if i % 5 == 0 { "hdd" } else { "ssd" }.to_string(),
        ),
    ]
    .into()
}

fn node_specs(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| NodeSpec {
            name: format!("node-{i}"),
            labels: labels(i),
            ..Default::default()
        })
        .collect()
}

/// Spread with two filters (a glob constraint and a negated one), the spec
/// compiled once like a service's task template.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The spec compiled once, reused for every placement.
    Once,
    /// Expression strings per container, compiled through the spec cache
    /// (what `Cluster::container_create` does).
    Cached,
    /// Parse and compile per container, no cache.
    Uncached,
}

fn place(tasks: usize, nodes: usize, mode: Mode) -> (Duration, u32, u32) {
    let constraints = [
        Constraint::parse("region==eu-*").expect("constraint"),
        Constraint::parse("disk!=hdd").expect("constraint"),
    ];
    let mut s = Scheduler::new(Strategy::Spread, node_specs(nodes));
    let start = Instant::now();
    let spec = s.compile(&constraints, &[]);
    for _ in 0..tasks {
        match mode {
            Mode::Once => {
                s.schedule(&spec).expect("placement");
            }
            Mode::Cached => {
                let exprs = ["region==eu-*".to_string(), "disk!=hdd".to_string()];
                let spec = s.compile_expressions(&exprs, &[]).expect("constraints");
                s.schedule(&spec).expect("placement");
            }
            Mode::Uncached => {
                let parsed = [
                    Constraint::parse("region==eu-*").expect("constraint"),
                    Constraint::parse("disk!=hdd").expect("constraint"),
                ];
                let spec = s.compile(&parsed, &[]);
                s.schedule(&spec).expect("placement");
            }
        }
    }
    let elapsed = start.elapsed();
    let eligible: Vec<u32> = (0..nodes)
        .filter(|&i| i % 4 < 2 && i % 5 != 0)
        .map(|i| s.containers_on(i))
        .collect();
    let (min, max) = (
        eligible.iter().copied().min().unwrap_or(0),
        eligible.iter().copied().max().unwrap_or(0),
    );
    assert!((0..nodes).all(|i| (i % 4 < 2 && i % 5 != 0) || s.containers_on(i) == 0));
    (elapsed, min, max)
}

async fn cluster_creates(tasks: usize, nodes: usize) -> Duration {
    let mut b = Cluster::builder().heartbeat(Duration::ZERO);
    for i in 0..nodes {
        b = b.node(
            NodeRecord {
                name: format!("node-{i}"),
                labels: labels(i),
                ..Default::default()
            },
            Arc::new(FakeBackend::named(&format!("node-{i}"))),
        );
    }
    let c = b.build().await.expect("cluster");
    let mut body = busybox(&["true"]);
    body.config.env = Some(vec![
        "constraint:region==eu-*".into(),
        "constraint:disk!=hdd".into(),
    ]);
    let start = Instant::now();
    for i in 0..tasks {
        c.container_create(Some(&format!("t{i}")), body.clone())
            .await
            .expect("create");
    }
    start.elapsed()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn latency() {
    let leaf = FakeBackend::named("n0");
    let mut b = Cluster::builder().heartbeat(Duration::ZERO);
    b = b.node(
        NodeRecord {
            name: "n0".into(),
            ..Default::default()
        },
        Arc::new(leaf.clone()),
    );
    for i in 1..3 {
        b = b.node(
            NodeRecord {
                name: format!("n{i}"),
                ..Default::default()
            },
            Arc::new(FakeBackend::named(&format!("n{i}"))),
        );
    }
    let cluster = b.build().await.expect("cluster");
    let id = cluster
        .container_create(Some("target"), busybox(&["sleep", "1000"]))
        .await
        .expect("create")
        .id;
    // The spread put the first container on n0, the leaf we time directly.
    assert_eq!(cluster.node_of(&id).as_deref(), Some("n0"));
    let dir = std::env::temp_dir().join(format!("swarm_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let addr = ListenAddr::Unix(dir.join("s.sock"));
    let chain: Arc<dyn Backend> = Arc::new(DebugBackend::new(Arc::new(cluster)));
    let server = dockerserver::serve(chain, &addr).await.expect("serve");
    let client = DockerClient::connect(addr).await.expect("connect");

    const N: usize = 5000;
    let mut direct = Vec::with_capacity(N);
    let mut via = Vec::with_capacity(N);
    for _ in 0..500 {
        client.container_inspect(&id).await.expect("warm-up");
    }
    for _ in 0..N {
        let t = Instant::now();
        leaf.container_inspect(&id).await.expect("inspect");
        direct.push(t.elapsed());
        let t = Instant::now();
        client.container_inspect(&id).await.expect("inspect");
        via.push(t.elapsed());
    }
    let (d50, d99) = (percentile(&mut direct, 0.5), percentile(&mut direct, 0.99));
    let (v50, v99) = (percentile(&mut via, 0.5), percentile(&mut via, 0.99));
    println!(
        "| inspect, leaf (fake) called directly | {:.1} µs | {:.1} µs |",
        us(d50),
        us(d99)
    );
    println!(
        "| inspect, dockerclient → dockerserver (unix) → debug → cluster(3) → fake | {:.1} µs | {:.1} µs |",
        us(v50),
        us(v99)
    );
    println!(
        "| **added by the chain (p50)** | **{:.1} µs** | |",
        us(v50.saturating_sub(d50))
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    if which.is_empty() || which == "placement" {
        println!("| placement (spread, region==eu-*, disk!=hdd; 400 of the nodes eligible) | time | swarmkit (same machine) | speed-up | balance (min/max per eligible node) |");
        println!("|---|---|---|---|---|");
        for (tasks, nodes, swarmkit) in [
            (1_000, 1_000, 0.48),
            (10_000, 1_000, 6.64),
            (100_000, 1_000, 81.8),
        ] {
            for (mode, what) in [
                (Mode::Once, "spec compiled once"),
                (Mode::Cached, "expressions per container, cached compile"),
                (
                    Mode::Uncached,
                    "parsed and compiled per container, no cache",
                ),
            ] {
                let (t, min, max) = place(tasks, nodes, mode);
                println!(
                    "| {tasks} on {nodes}, {what} | {:.4} s | {swarmkit} s | {:.0}× | {min}/{max} |",
                    t.as_secs_f64(),
                    swarmkit / t.as_secs_f64()
                );
            }
        }
        let t = cluster_creates(10_000, 1_000).await;
        println!(
            "| 10000 on 1000 through `Cluster::container_create` (fake nodes, names, routing) | {:.4} s | 6.64 s | {:.0}× | |",
            t.as_secs_f64(),
            6.64 / t.as_secs_f64()
        );
    }
    if which.is_empty() || which == "latency" {
        println!();
        println!("| call | p50 | p99 |");
        println!("|---|---|---|");
        latency().await;
    }
}
