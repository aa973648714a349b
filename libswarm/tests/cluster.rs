//! The cluster adapter: the behaviour suite over fakes, placement by
//! strategy and filters, and node failure detection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libswarm::cluster::{Cluster, NodeRecord, Strategy, NODE_LABEL};
use libswarm::dockerclient::DockerClient;
use libswarm::dockerserver::{self, ListenAddr, ServerHandle};
use libswarm::fake::FakeBackend;
use libswarm::models::{HostConfig, PortBinding};
use libswarm::suite::busybox;
use libswarm::{Backend, ContainerListOptions, ErrorKind};

fn record(name: &str, labels: &[(&str, &str)]) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

async fn fakes(n: usize, strategy: Strategy) -> Cluster {
    let mut b = Cluster::builder().strategy(strategy);
    for i in 0..n {
        let zone = if i % 2 == 0 { "eu-1" } else { "us-1" };
        b = b.node(
            record(&format!("node-{i}"), &[("zone", zone)]),
            Arc::new(FakeBackend::named(&format!("node-{i}"))),
        );
    }
    b.build().await.unwrap()
}

async fn node_of(c: &Cluster, id: &str) -> String {
    let i = c.container_inspect(id).await.unwrap();
    i.config.unwrap().labels.unwrap()[NODE_LABEL].clone()
}

#[tokio::test]
async fn suite_passes_on_cluster_of_fakes() {
    libswarm::suite::run(Arc::new(fakes(3, Strategy::Spread).await))
        .await
        .unwrap();
}

#[tokio::test]
async fn spread_balances_and_calls_route_to_the_container_node() {
    let c = fakes(3, Strategy::Spread).await;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = c
            .container_create(Some(&format!("w{i}")), busybox(&["sleep", "100"]))
            .await
            .unwrap()
            .id;
        c.container_start(&id).await.unwrap();
        *per_node.entry(node_of(&c, &id).await).or_default() += 1;
        ids.push(id);
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|&n| n == 2), "{per_node:?}");
    // Routing by name and by id prefix reaches the same node.
    assert_eq!(c.node_of("w0"), Some(node_of(&c, &ids[0]).await));
    c.container_stop(&ids[0][..12], Some(1)).await.unwrap();
    let listed = c
        .container_list(ContainerListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 5);
}

#[tokio::test]
async fn binpack_and_seeded_random_strategies() {
    let c = fakes(3, Strategy::Binpack).await;
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let id = c
            .container_create(None, busybox(&["true"]))
            .await
            .unwrap()
            .id;
        nodes.push(node_of(&c, &id).await);
    }
    assert!(
        nodes.iter().all(|n| *n == nodes[0]),
        "binpack spread out: {nodes:?}"
    );

    let place = |seed| async move {
        let c = fakes(5, Strategy::Random { seed }).await;
        let mut nodes = Vec::new();
        for _ in 0..8 {
            let id = c
                .container_create(None, busybox(&["true"]))
                .await
                .unwrap()
                .id;
            nodes.push(node_of(&c, &id).await);
        }
        nodes
    };
    assert_eq!(place(42).await, place(42).await);
}

#[tokio::test]
async fn constraints_affinities_and_ports_filter_nodes() {
    let c = fakes(4, Strategy::Spread).await;
    let mut eu = busybox(&["true"]);
    eu.config.env = Some(vec!["constraint:zone==eu-*".into()]);
    for _ in 0..4 {
        let id = c.container_create(None, eu.clone()).await.unwrap().id;
        let node = node_of(&c, &id).await;
        assert!(
            node == "node-0" || node == "node-2",
            "eu constraint broken: {node}"
        );
    }
    let mut nowhere = busybox(&["true"]);
    nowhere.config.env = Some(vec!["constraint:zone==mars".into()]);
    let e = c.container_create(None, nowhere.clone()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    // Soft: preferred but not required.
    nowhere.config.env = Some(vec!["constraint:zone==~mars".into()]);
    c.container_create(None, nowhere).await.unwrap();
    let mut bad = busybox(&["true"]);
    bad.config.env = Some(vec!["constraint:zone=eu".into()]);
    let e = c.container_create(None, bad).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert!(e.message.contains("zone=eu"), "{}", e.message);

    // Affinity and anti-affinity to a container.
    let db = c
        .container_create(Some("db"), busybox(&["true"]))
        .await
        .unwrap()
        .id;
    let db_node = node_of(&c, &db).await;
    let mut near = busybox(&["true"]);
    near.config.env = Some(vec!["affinity:container==db".into()]);
    for _ in 0..3 {
        let id = c.container_create(None, near.clone()).await.unwrap().id;
        assert_eq!(node_of(&c, &id).await, db_node);
    }
    let mut far = busybox(&["true"]);
    far.config.env = Some(vec!["affinity:container!=db".into()]);
    for _ in 0..3 {
        let id = c.container_create(None, far.clone()).await.unwrap().id;
        assert_ne!(node_of(&c, &id).await, db_node);
    }

    // Host ports: one 8080 per node.
    let mut web = busybox(&["sleep", "100"]);
    web.host_config = Some(HostConfig {
        port_bindings: Some(
            [(
                "80/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some("8080".into()),
                }]),
            )]
            .into(),
        ),
        ..Default::default()
    });
    let mut used = std::collections::HashSet::new();
    for _ in 0..4 {
        let id = c.container_create(None, web.clone()).await.unwrap().id;
        assert!(
            used.insert(node_of(&c, &id).await),
            "port 8080 twice on a node"
        );
    }
    let e = c.container_create(None, web.clone()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
}

/// A node served over a socket, so it can be killed.
struct NetNode {
    _dir: tempfile::TempDir,
    addr: ListenAddr,
    server: Option<ServerHandle>,
    fake: FakeBackend,
}

impl NetNode {
    async fn start(name: &str) -> NetNode {
        let dir = tempfile::tempdir().unwrap();
        let addr = ListenAddr::Unix(dir.path().join(format!("{name}.sock")));
        let fake = FakeBackend::named(name);
        let server = dockerserver::serve(Arc::new(fake.clone()), &addr)
            .await
            .unwrap();
        NetNode {
            _dir: dir,
            addr,
            server: Some(server),
            fake,
        }
    }
    async fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
    async fn revive(&mut self) {
        let server = dockerserver::serve(Arc::new(self.fake.clone()), &self.addr)
            .await
            .unwrap();
        self.server = Some(server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_heartbeating_is_marked_down_and_comes_back() {
    let mut nodes = Vec::new();
    let mut builder = Cluster::builder()
        .heartbeat(Duration::from_millis(100))
        .down_after(Duration::from_millis(1000));
    for i in 0..3 {
        let name = format!("n{i}");
        let n = NetNode::start(&name).await;
        let client = DockerClient::connect(n.addr.clone()).await.unwrap();
        builder = builder.node(record(&name, &[]), Arc::new(client));
        nodes.push(n);
    }
    let c = builder.build().await.unwrap();
    let mut on_n1 = None;
    for i in 0..3 {
        let id = c
            .container_create(Some(&format!("s{i}")), busybox(&["sleep", "100"]))
            .await
            .unwrap()
            .id;
        c.container_start(&id).await.unwrap();
        if node_of(&c, &id).await == "n1" {
            on_n1 = Some(id);
        }
    }
    let on_n1 = on_n1.expect("spread put one container on n1");
    c.container_list(ContainerListOptions::default())
        .await
        .unwrap();

    nodes[1].kill().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.node_healthy("n1") != Some(false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "n1 never marked down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = c.container_inspect(&on_n1).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    let list = c
        .container_list(ContainerListOptions::default())
        .await
        .unwrap();
    let down = list
        .iter()
        .find(|s| s.id.as_deref() == Some(on_n1.as_str()))
        .expect("container of the down node still listed");
    assert_eq!(down.state.as_deref(), Some("unknown"));
    assert!(
        down.status.as_deref().unwrap_or("").contains("n1"),
        "{down:?}"
    );
    for _ in 0..4 {
        let id = c
            .container_create(None, busybox(&["true"]))
            .await
            .unwrap()
            .id;
        assert_ne!(node_of(&c, &id).await, "n1", "placed on a down node");
    }

    nodes[1].revive().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.node_healthy("n1") != Some(true) {
        assert!(tokio::time::Instant::now() < deadline, "n1 never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let i = c.container_inspect(&on_n1).await.unwrap();
    assert_eq!(i.state.unwrap().running, Some(true));
}
