//! Channels over a connection: nesting, flow control, close semantics.

use std::time::Duration;

use libchan::{channel, Builder, Connection, Error, Receiver, Sender, Transport};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Req {
    n: u64,
    reply: Sender<u64>,
}

type End<A, B> = (Connection, Sender<A>, Receiver<B>);

fn pair<A: libchan::Message, B: libchan::Message>() -> (End<A, B>, End<B, A>) {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let c = Builder::new().client::<A, B>(Transport::unix(a)).unwrap();
    let s = Builder::new().server::<B, A>(Transport::unix(b)).unwrap();
    (c, s)
}

#[tokio::test]
async fn request_reply_on_a_return_channel() {
    let ((_c, to_srv, _), (_s, _, mut reqs)) = pair::<Req, ()>();
    tokio::spawn(async move {
        while let Ok(Some(r)) = reqs.recv().await {
            r.reply.send(r.n * 2).await.unwrap();
        }
    });
    for i in 0..50 {
        let (tx, mut rx) = channel(1);
        to_srv.send(Req { n: i, reply: tx }).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Some(i * 2));
        assert_eq!(
            rx.recv().await.unwrap(),
            None,
            "reply sender dropped on the server"
        );
    }
}

#[derive(Serialize, Deserialize)]
struct Outer {
    inner: Receiver<Inner>,
}
#[derive(Serialize, Deserialize)]
struct Inner {
    tag: String,
    deep: Sender<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_nested_two_levels_deep_work_both_ways() {
    let ((_c, to_srv, _), (_s, _, mut from_cli)) = pair::<Outer, ()>();
    // Client sends a Receiver<Inner>; later sends Inner values carrying a
    // Sender<String> on it; the server answers through the innermost sender.
    let (inner_tx, inner_rx) = channel::<Inner>(4);
    to_srv.send(Outer { inner: inner_rx }).await.unwrap();
    let server = tokio::spawn(async move {
        let outer = from_cli.recv().await.unwrap().unwrap();
        let mut inner = outer.inner;
        let mut n = 0;
        while let Some(Inner { tag, deep }) = inner.recv().await.unwrap() {
            deep.send(format!("{tag}!")).await.unwrap();
            n += 1;
        }
        n
    });
    for i in 0..10 {
        let (deep_tx, mut deep_rx) = channel::<String>(1);
        inner_tx
            .send(Inner {
                tag: format!("m{i}"),
                deep: deep_tx,
            })
            .await
            .unwrap();
        assert_eq!(
            deep_rx.recv().await.unwrap().as_deref(),
            Some(format!("m{i}!").as_str())
        );
    }
    drop(inner_tx);
    assert_eq!(server.await.unwrap(), 10);
}

#[tokio::test]
async fn dropped_remote_receiver_makes_sends_fail() {
    let ((_c, to_srv, _), (_s, _, mut reqs)) = pair::<Req, ()>();
    let (tx, rx) = channel::<u64>(1);
    drop(rx);
    to_srv.send(Req { n: 1, reply: tx }).await.unwrap();
    let req = reqs.recv().await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(5), req.reply.closed())
        .await
        .unwrap();
    assert!(matches!(req.reply.send(1).await, Err(Error::Closed(_))));
}

#[tokio::test]
async fn slow_receiver_does_not_stall_other_channels() {
    let ((_c, to_srv, _), (_s, _, mut chans)) = pair::<Receiver<u64>, ()>();
    let (slow_tx, slow_rx) = channel::<u64>(1);
    let (fast_tx, fast_rx) = channel::<u64>(1);
    to_srv.send(slow_rx).await.unwrap();
    to_srv.send(fast_rx).await.unwrap();
    let mut slow = chans.recv().await.unwrap().unwrap();
    let mut fast = chans.recv().await.unwrap().unwrap();
    // Fill the slow channel until back-pressure stops the sender: nobody
    // reads it.
    let filler = tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            if tokio::time::timeout(Duration::from_millis(200), slow_tx.send(sent))
                .await
                .is_err()
            {
                return (sent, slow_tx);
            }
            sent += 1;
        }
    });
    let (sent, slow_tx) = filler.await.unwrap();
    assert!(
        sent > 0 && sent < 10_000,
        "back-pressure must stop the sender (sent {sent})"
    );
    // The fast channel still flows.
    for i in 0..1000 {
        fast_tx.send(i).await.unwrap();
        assert_eq!(fast.recv().await.unwrap(), Some(i));
    }
    // And everything queued on the slow one is delivered in order.
    drop(slow_tx);
    for i in 0..sent {
        assert_eq!(slow.recv().await.unwrap(), Some(i));
    }
}

#[tokio::test]
async fn peer_death_reports_disconnected_on_every_channel() {
    let ((c, to_srv, mut from_srv), (s, _srv_tx, mut reqs)) = pair::<Req, u64>();
    let (tx, mut reply_rx) = channel::<u64>(1);
    to_srv.send(Req { n: 1, reply: tx }).await.unwrap();
    let req = reqs.recv().await.unwrap().unwrap();
    // The server side goes away without closing anything.
    drop(req);
    drop(reqs);
    drop(_srv_tx);
    s.close().await;
    drop(s);
    let e = tokio::time::timeout(Duration::from_secs(5), from_srv.recv())
        .await
        .unwrap();
    assert!(e.is_err() || e.unwrap().is_none());
    let r = tokio::time::timeout(Duration::from_secs(5), reply_rx.recv())
        .await
        .unwrap();
    assert!(matches!(r, Ok(None) | Err(Error::Disconnected(_))), "{r:?}");
    let err = tokio::time::timeout(Duration::from_secs(5), c.closed())
        .await
        .unwrap();
    assert!(matches!(err, Error::Disconnected(_)));
    assert!(to_srv
        .send(Req {
            n: 2,
            reply: channel(1).0
        })
        .await
        .is_err());
}

#[tokio::test]
async fn killed_peer_socket_fails_open_channels() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let (_c, to_srv, mut from_srv) = Builder::new()
        .client::<u64, u64>(Transport::unix(a))
        .unwrap();
    to_srv.send(1).await.unwrap();
    drop(b); // the "process" dies: its socket closes with no CLOSE frames
    let r = tokio::time::timeout(Duration::from_secs(5), from_srv.recv())
        .await
        .unwrap();
    assert!(matches!(r, Err(Error::Disconnected(_))), "{r:?}");
    let e = tokio::time::timeout(Duration::from_secs(5), to_srv.closed()).await;
    assert!(e.is_ok());
    assert!(matches!(to_srv.send(2).await, Err(Error::Disconnected(_))));
}

#[tokio::test]
async fn big_messages_cross_the_connection() {
    let ((_c, to_srv, _), (_s, _, mut rx)) = pair::<serde_bytes::ByteBuf, ()>();
    let sizes = [0usize, 1, 100, 64 << 10, 1 << 20, 5 << 20];
    let send = tokio::spawn(async move {
        for (i, n) in sizes.iter().enumerate() {
            to_srv
                .send(serde_bytes::ByteBuf::from(vec![i as u8; *n]))
                .await
                .unwrap();
        }
    });
    for (i, n) in sizes.iter().enumerate() {
        let b = rx.recv().await.unwrap().unwrap();
        assert_eq!(b.len(), *n);
        assert!(b.iter().all(|x| *x == i as u8));
    }
    send.await.unwrap();
}

#[tokio::test]
async fn oversized_message_is_refused_locally() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let (_c, tx, _rx) = Builder::new()
        .max_frame_size(1024)
        .client::<serde_bytes::ByteBuf, ()>(Transport::unix(a))
        .unwrap();
    let (_s, _stx, mut srx) = Builder::new()
        .max_frame_size(1024)
        .server::<(), serde_bytes::ByteBuf>(Transport::unix(b))
        .unwrap();
    let err = tx
        .send(serde_bytes::ByteBuf::from(vec![0; 4096]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { max: 1024, .. }), "{err}");
    tx.send(serde_bytes::ByteBuf::from(vec![1; 10]))
        .await
        .unwrap();
    assert_eq!(srx.recv().await.unwrap().unwrap().len(), 10);
}

#[tokio::test]
async fn open_channel_limit_is_enforced() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let (_c, tx, _rx) = Builder::new()
        .max_channels(4)
        .client::<Sender<u8>, ()>(Transport::unix(a))
        .unwrap();
    let (_s, _stx, mut srx) = Builder::new()
        .server::<(), Sender<u8>>(Transport::unix(b))
        .unwrap();
    let mut keep = Vec::new();
    let mut err = None;
    for _ in 0..10 {
        let (t, r) = channel::<u8>(1);
        keep.push(r);
        if let Err(e) = tx.send(t).await {
            err = Some(e);
            break;
        }
    }
    assert!(matches!(err, Some(Error::TooManyChannels(4))), "{err:?}");
    assert!(srx.recv().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_over_a_connection_from_plain_threads() {
    let ((_c, to_srv, _), (_s, _, mut reqs)) = pair::<Req, ()>();
    tokio::spawn(async move {
        while let Ok(Some(r)) = reqs.recv().await {
            r.reply.send(r.n + 1).await.unwrap();
        }
    });
    let t = std::thread::spawn(move || {
        for i in 0..100 {
            let (tx, mut rx) = channel(1);
            to_srv.blocking_send(Req { n: i, reply: tx }).unwrap();
            assert_eq!(rx.blocking_recv().unwrap(), Some(i + 1));
        }
    });
    tokio::task::spawn_blocking(move || t.join().unwrap())
        .await
        .unwrap();
}

/// Several receivers on one connection read its socket themselves (their
/// queues are empty while they wait) and race each other and the reader
/// task on a multi-threaded runtime: every message must still arrive once,
/// in order, on its own channel — over unix sockets and TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_direct_readers_keep_order() {
    async fn run(c: End<Req, ()>, s: End<(), Req>) {
        let ((_c, to_srv, _), (_s, _, mut reqs)) = (c, s);
        tokio::spawn(async move {
            while let Ok(Some(r)) = reqs.recv().await {
                // Three replies per request, to check order per channel.
                for k in 0..3 {
                    r.reply.send(r.n * 10 + k).await.unwrap();
                }
            }
        });
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let to_srv = to_srv.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..300 {
                    // A fresh reply channel: its queue is fed by this one
                    // connection only, so waiting on it reads the socket.
                    let (tx, mut rx) = channel(8);
                    let n = t * 1000 + i;
                    to_srv.send(Req { n, reply: tx }).await.unwrap();
                    for k in 0..3 {
                        assert_eq!(rx.recv().await.unwrap(), Some(n * 10 + k));
                    }
                }
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap();
        }
    }
    let (c, s) = pair::<Req, ()>();
    run(c, s).await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
    let c = Builder::new()
        .client::<Req, ()>(Transport::tcp(a.unwrap()))
        .unwrap();
    let s = Builder::new()
        .server::<(), Req>(Transport::tcp(b.unwrap().0))
        .unwrap();
    run(c, s).await;
}
