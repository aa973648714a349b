//! The remote adapter: the behaviour suite over libchan (unix, TCP, TLS),
//! and reconnection after the server comes back.

use std::sync::Arc;

use libchan::tls::rustls;
use libswarm::dockerserver::ListenAddr;
use libswarm::fake::FakeBackend;
use libswarm::remote::{self, ClientTls, RemoteClient};
use libswarm::{Backend, ErrorKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_remote_over_unix() {
    let dir = tempfile::tempdir().unwrap();
    let addr = ListenAddr::Unix(dir.path().join("r.sock"));
    let server = remote::serve(Arc::new(FakeBackend::new()), &addr)
        .await
        .unwrap();
    let client = RemoteClient::connect(&addr).await.unwrap();
    libswarm::suite::run(Arc::new(client)).await.unwrap();
    server.shutdown().await;
    assert!(!dir.path().join("r.sock").exists(), "socket left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_passes_on_remote_over_tls() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = ListenAddr::parse("tcp://127.0.0.1:0").unwrap();
    let server = remote::serve_tls(Arc::new(FakeBackend::new()), &addr, Arc::new(server_cfg))
        .await
        .unwrap();
    let tls = ClientTls {
        config: Arc::new(client_cfg),
        server_name: "localhost".into(),
    };
    let client = RemoteClient::connect_tls(server.addr(), tls.clone())
        .await
        .unwrap();
    libswarm::suite::run(Arc::new(client)).await.unwrap();
    // A client that does not trust the certificate is refused.
    let untrusting = ClientTls {
        server_name: "not-localhost".into(),
        ..tls
    };
    let e = RemoteClient::connect_tls(server.addr(), untrusting).await;
    if let Ok(c) = e {
        assert!(
            c.ping().await.is_err(),
            "TLS with the wrong server name must fail"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_unavailable_and_the_client_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let addr = ListenAddr::Unix(dir.path().join("r.sock"));
    let fake = FakeBackend::new();
    let server = remote::serve(Arc::new(fake.clone()), &addr).await.unwrap();
    let client = RemoteClient::connect(&addr).await.unwrap();
    client.ping().await.unwrap();
    server.shutdown().await;
    let e = client.ping().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    let _server = remote::serve(Arc::new(fake), &addr).await.unwrap();
    client.ping().await.unwrap();
}
