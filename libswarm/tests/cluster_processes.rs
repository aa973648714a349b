//! A three-node cluster whose nodes are `remote` backends in separate
//! processes; one is killed (SIGKILL) mid-test.
//!
//! The node processes are this test binary re-executed to run the ignored
//! helper `node_process`, which serves a fake engine over libchan on the
//! socket named in `LIBSWARM_TEST_NODE_SOCK` until it is killed.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use libswarm::cluster::{Cluster, NodeRecord, NODE_LABEL};
use libswarm::dockerserver::ListenAddr;
use libswarm::fake::FakeBackend;
use libswarm::models::ExecConfig;
use libswarm::remote::{self, RemoteClient};
use libswarm::suite::busybox;
use libswarm::{Backend, ContainerListOptions, ErrorKind, ExecStartOptions};

const SOCK_VAR: &str = "LIBSWARM_TEST_NODE_SOCK";

/// Child-process entry point (does nothing unless started by the test).
#[tokio::test]
#[ignore = "helper: runs as a node process of cluster_of_node_processes"]
async fn node_process() {
    let Ok(sock) = std::env::var(SOCK_VAR) else {
        return;
    };
    let name = std::env::var("LIBSWARM_TEST_NODE_NAME").unwrap_or_else(|_| "node".into());
    let addr = ListenAddr::Unix(sock.into());
    let _server = remote::serve(Arc::new(FakeBackend::named(&name)), &addr)
        .await
        .unwrap();
    // Serve until killed; give up on our own after a while so nothing leaks.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// Kills and reaps the node processes, also when the test fails.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn connect(addr: &ListenAddr) -> RemoteClient {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match RemoteClient::connect(addr).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node at {addr} never came up: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_node_processes_survives_a_killed_node() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut nodes = Nodes(Vec::new());
    let mut builder = Cluster::builder()
        .heartbeat(Duration::from_millis(100))
        .down_after(Duration::from_millis(1000));
    for i in 0..3 {
        let name = format!("p{i}");
        let sock = dir.path().join(format!("{name}.sock"));
        let child = Command::new(&exe)
            .args(["--exact", "node_process", "--ignored", "--nocapture"])
            .env(SOCK_VAR, &sock)
            .env("LIBSWARM_TEST_NODE_NAME", &name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        nodes.0.push(child);
        let client = connect(&ListenAddr::Unix(sock)).await;
        builder = builder.node(
            NodeRecord {
                name: name.clone(),
                ..Default::default()
            },
            Arc::new(client),
        );
    }
    let cluster = builder.build().await.unwrap();
    libswarm::suite::run(Arc::new(cluster.clone()))
        .await
        .unwrap();

    let mut on_p1 = Vec::new();
    let mut elsewhere = Vec::new();
    for i in 0..6 {
        let id = cluster
            .container_create(Some(&format!("job{i}")), busybox(&["sleep", "1000"]))
            .await
            .unwrap()
            .id;
        cluster.container_start(&id).await.unwrap();
        match cluster.node_of(&id).as_deref() {
            Some("p1") => on_p1.push(id),
            Some(_) => elsewhere.push(id),
            None => panic!("no node for {id}"),
        }
    }
    assert_eq!(on_p1.len(), 2, "spread over 3 nodes puts 2 of 6 on p1");
    cluster
        .container_list(ContainerListOptions::default())
        .await
        .unwrap();

    // Kill p1's process outright.
    nodes.0[1].kill().unwrap();
    nodes.0[1].wait().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cluster.node_healthy("p1") != Some(false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "p1 never marked down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Its containers are reported as down; calls on them are Unavailable.
    let list = cluster
        .container_list(ContainerListOptions::default())
        .await
        .unwrap();
    for id in &on_p1 {
        let c = list
            .iter()
            .find(|c| c.id.as_deref() == Some(id.as_str()))
            .expect("container of the dead node is still listed");
        assert_eq!(c.state.as_deref(), Some("unknown"));
        assert_eq!(c.labels.as_ref().unwrap()[NODE_LABEL], "p1");
        let e = cluster.container_inspect(id).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
    }
    // The others keep working: exec on a surviving container.
    let exec = cluster
        .exec_create(
            &elsewhere[0],
            ExecConfig {
                attach_stdout: Some(true),
                cmd: Some(vec!["echo".into(), "alive".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let session = cluster
        .exec_start(&exec, ExecStartOptions::default())
        .await
        .unwrap();
    use futures::StreamExt;
    let out: Vec<_> = session.output.collect().await;
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].as_ref().unwrap().data[..], b"alive\n");
    // New containers avoid the dead node.
    for _ in 0..4 {
        let id = cluster
            .container_create(None, busybox(&["true"]))
            .await
            .unwrap()
            .id;
        assert_ne!(cluster.node_of(&id).as_deref(), Some("p1"));
    }
}
