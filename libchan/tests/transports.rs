//! The same workload over every transport: request/reply with a nested
//! return channel, a byte stream inside a message, and a clean shutdown.

use std::sync::Arc;

use libchan::{channel, pipe, Builder, ByteStream, Sender, Transport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Serialize, Deserialize)]
enum Req {
    Double { n: u64, reply: Sender<u64> },
    Echo { io: ByteStream },
}

async fn serve(t: Transport) {
    let (conn, _tx, mut rx) = Builder::new().server::<(), Req>(t).unwrap();
    while let Ok(Some(req)) = rx.recv().await {
        match req {
            Req::Double { n, reply } => reply.send(n * 2).await.unwrap(),
            Req::Echo { mut io } => {
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    loop {
                        let n = io.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        io.write_all(&buf[..n]).await.unwrap();
                    }
                    io.shutdown().await.unwrap();
                });
            }
        }
    }
    drop(conn);
}

async fn exercise(t: Transport) {
    let (conn, tx, _rx) = Builder::new().client::<Req, ()>(t).unwrap();
    for i in 0..20 {
        let (reply, mut replies) = channel(1);
        tx.send(Req::Double { n: i, reply }).await.unwrap();
        assert_eq!(replies.recv().await.unwrap(), Some(i * 2));
    }
    let (mut mine, theirs) = pipe();
    tx.send(Req::Echo { io: theirs }).await.unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let data = data.clone();
        let (mut r, mut w) = tokio::io::split(mine);
        let h = tokio::spawn(async move {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
            w
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        let w = h.await.unwrap();
        mine = r.unsplit(w);
        back
    };
    assert_eq!(writer.len(), data.len());
    assert!(writer == data, "echoed bytes differ");
    drop(mine);
    drop(tx);
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let srv = tokio::spawn(serve(Transport::unix(b)));
    exercise(Transport::unix(a)).await;
    srv.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_duplex() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let srv = tokio::spawn(serve(Transport::io(b)));
    exercise(Transport::io(a)).await;
    srv.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_loopback() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move { serve(Transport::tcp(l.accept().await.unwrap().0)).await });
    exercise(Transport::tcp(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ))
    .await;
    srv.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tcp() {
    use libchan::tls::rustls;
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

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let tcp = l.accept().await.unwrap().0;
        serve(
            libchan::tls::accept(tcp, Arc::new(server_cfg))
                .await
                .unwrap(),
        )
        .await
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = libchan::tls::connect(tcp, Arc::new(client_cfg), "localhost")
        .await
        .unwrap();
    exercise(t).await;
    srv.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let tcp = l.accept().await.unwrap().0;
        serve(libchan::ws::accept(tcp).await.unwrap()).await
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = libchan::ws::connect(tcp, &format!("ws://{addr}/chan"))
        .await
        .unwrap();
    exercise(t).await;
    srv.await.unwrap();
}

#[tokio::test]
async fn fds_are_refused_on_transports_without_them() {
    let (a, b) = tokio::io::duplex(4096);
    let (c, tx, _rx) = Builder::new()
        .client::<libchan::Fd, ()>(Transport::io(a))
        .unwrap();
    let _s = Builder::new()
        .server::<(), libchan::Fd>(Transport::io(b))
        .unwrap();
    assert!(!c.supports_fds());
    let f = std::fs::File::open("/dev/null").unwrap();
    let err = tx.send(libchan::Fd::new(f)).await.unwrap_err();
    assert!(matches!(err, libchan::Error::FdsUnsupported), "{err}");
}
