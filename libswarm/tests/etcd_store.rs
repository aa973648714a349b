//! The etcd-backed node store against a real etcd on loopback (Debian's
//! etcd-server), started per test with a temp data dir and random ports.
//! Skips with a printed reason when no `etcd` binary is installed.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use libswarm::cluster::etcd::EtcdStore;
use libswarm::cluster::{Cluster, NodeRecord, NodeStore};
use libswarm::dockerclient::DockerClient;
use libswarm::dockerserver::{self, ListenAddr};
use libswarm::fake::FakeBackend;
use libswarm::ErrorKind;

/// An etcd process; killed and its data dir removed on drop.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_etcd() -> Option<Etcd> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIP: no `etcd` binary on PATH (apt-get install etcd-server)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args([
            "--name",
            "berth-test",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("berth-test={peer_url}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let etcd = Etcd {
        child,
        url,
        _dir: dir,
    };
    // Ready when a range answers.
    let store = EtcdStore::new(&etcd.url, "/probe").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.list().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "etcd never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(etcd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_records_nodes_and_heartbeats() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let store = EtcdStore::new(&etcd.url, "/berth-test").unwrap();
    let other = EtcdStore::new(&etcd.url, "/other").unwrap();
    let mut a = NodeRecord {
        name: "a".into(),
        addr: "unix:///a.sock".into(),
        labels: [("zone".to_string(), "eu".to_string())].into(),
        ..Default::default()
    };
    store.put(a.clone()).await.unwrap();
    store
        .put(NodeRecord {
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    store.heartbeat("a", 1234).await.unwrap();
    let e = store.heartbeat("nobody", 1).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    let list = store.list().await.unwrap();
    assert_eq!(list.len(), 2);
    a.last_heartbeat_ms = 1234;
    assert_eq!(list[0], a);
    assert_eq!(list[1].last_heartbeat_ms, 0);
    assert!(
        other.list().await.unwrap().is_empty(),
        "prefixes leak into each other"
    );
    store.remove("a").await.unwrap();
    let list = store.list().await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_on_etcd_marks_a_silent_node_down() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EtcdStore::new(&etcd.url, "/berth-cluster").unwrap());
    let mut servers = Vec::new();
    let mut builder = Cluster::builder()
        .store(store.clone())
        .heartbeat(Duration::from_millis(100))
        .down_after(Duration::from_millis(1000));
    for i in 0..2 {
        let addr = ListenAddr::Unix(dir.path().join(format!("n{i}.sock")));
        servers.push(
            dockerserver::serve(Arc::new(FakeBackend::named(&format!("n{i}"))), &addr)
                .await
                .unwrap(),
        );
        builder = builder.node(
            NodeRecord {
                name: format!("n{i}"),
                ..Default::default()
            },
            Arc::new(DockerClient::new(addr)),
        );
    }
    let cluster = builder.build().await.unwrap();
    assert_eq!(
        store.list().await.unwrap().len(),
        2,
        "nodes registered in etcd"
    );
    servers.pop().unwrap().shutdown().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cluster.node_healthy("n1") != Some(false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "n1 never marked down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cluster.node_healthy("n0"), Some(true));
    let beats: Vec<i64> = store
        .list()
        .await
        .unwrap()
        .iter()
        .map(|r| r.last_heartbeat_ms)
        .collect();
    assert!(
        beats[0] > beats[1],
        "n0 keeps heartbeating, n1 does not: {beats:?}"
    );
}
