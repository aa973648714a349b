//! The behaviour suite against the in-process stacks: fake, debug → fake.

use std::sync::Arc;

use libswarm::debug::DebugBackend;
use libswarm::fake::FakeBackend;
use libswarm::Backend;

#[tokio::test]
async fn suite_passes_on_fake() {
    libswarm::suite::run(Arc::new(FakeBackend::new()))
        .await
        .unwrap();
}

#[tokio::test]
async fn suite_passes_on_debug_over_fake() {
    // Debug logging switched on, so the logging path itself runs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("libswarm::debug=debug")
        .with_test_writer()
        .try_init();
    let leaf: Arc<dyn Backend> = Arc::new(FakeBackend::new());
    libswarm::suite::run(Arc::new(DebugBackend::new(leaf)))
        .await
        .unwrap();
}

use libswarm::dockerclient::DockerClient;
use libswarm::dockerserver::{self, ListenAddr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_dockerclient_over_dockerserver_over_fake_unix() {
    let dir = tempfile::tempdir().unwrap();
    let addr = ListenAddr::Unix(dir.path().join("d.sock"));
    let server = dockerserver::serve(Arc::new(FakeBackend::new()), &addr)
        .await
        .unwrap();
    let client = DockerClient::connect(addr).await.unwrap();
    libswarm::suite::run(Arc::new(client)).await.unwrap();
    server.shutdown().await;
    assert!(!dir.path().join("d.sock").exists(), "socket left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_dockerclient_over_dockerserver_over_fake_tcp() {
    let addr = ListenAddr::parse("tcp://127.0.0.1:0").unwrap();
    let server = dockerserver::serve(Arc::new(FakeBackend::new()), &addr)
        .await
        .unwrap();
    let client = DockerClient::connect(server.addr().clone()).await.unwrap();
    libswarm::suite::run(Arc::new(client)).await.unwrap();
}

#[tokio::test]
async fn dockerclient_reports_an_unreachable_endpoint_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = DockerClient::connect(ListenAddr::Unix(dir.path().join("nobody.sock")))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, libswarm::ErrorKind::Unavailable);
    assert!(err.message.contains("nobody.sock"), "{}", err.message);
}
