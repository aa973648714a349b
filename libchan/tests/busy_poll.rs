//! `Builder::busy_poll`: receivers that spin on the socket before sleeping
//! still get every message, in order, whether the peer is quick, slow or
//! gone.

use std::time::Duration;

use libchan::{Builder, Error};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Msg {
    Ping(u64),
    Big(Vec<u8>),
    Slow(u64),
}

const SPIN: Duration = Duration::from_micros(50);

/// Runs an echo peer on its own thread and current-thread runtime (as a
/// peer process would be); it sleeps before answering `Slow`.
fn spawn_echo(sock: std::os::unix::net::UnixStream) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            sock.set_nonblocking(true).unwrap();
            let sock = tokio::net::UnixStream::from_std(sock).unwrap();
            let (_conn, tx, mut rx) = Builder::new()
                .busy_poll(SPIN)
                .server::<Msg, Msg>(libchan::Transport::unix(sock))
                .unwrap();
            while let Ok(Some(m)) = rx.recv().await {
                if let Msg::Slow(_) = m {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        })
    })
}

#[tokio::test(flavor = "current_thread")]
async fn spinning_receivers_keep_every_message_in_order() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = spawn_echo(b);
    a.set_nonblocking(true).unwrap();
    let (conn, tx, mut rx) = Builder::new()
        .busy_poll(SPIN)
        .client::<Msg, Msg>(libchan::Transport::unix(
            tokio::net::UnixStream::from_std(a).unwrap(),
        ))
        .unwrap();
    for round in 0..3u64 {
        // Quick replies: spinning turns on and catches them.
        for i in 0..500 {
            tx.send(Msg::Ping(i)).await.unwrap();
            assert_eq!(rx.recv().await.unwrap(), Some(Msg::Ping(i)));
        }
        // Slow replies outlast the spin, which then turns off.
        for i in 0..3 {
            tx.send(Msg::Slow(i)).await.unwrap();
            assert_eq!(rx.recv().await.unwrap(), Some(Msg::Slow(i)));
        }
        // A frame bigger than one read arrives whole.
        let big = vec![round as u8; 3 << 20];
        tx.send(Msg::Big(big.clone())).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Some(Msg::Big(big)));
    }
    // Pipelined: many in flight, answers in order.
    for i in 0..200 {
        tx.send(Msg::Ping(i)).await.unwrap();
    }
    for i in 0..200 {
        assert_eq!(rx.recv().await.unwrap(), Some(Msg::Ping(i)));
    }
    drop(tx);
    conn.close().await;
    peer.join().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_receiver_sees_the_peer_go_away() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let (_conn, tx, mut rx) = Builder::new()
        .busy_poll(SPIN)
        .client::<Msg, Msg>(libchan::Transport::unix(
            tokio::net::UnixStream::from_std(a).unwrap(),
        ))
        .unwrap();
    let peer = spawn_echo(b);
    // Warm up so that the next wait spins.
    for i in 0..20 {
        tx.send(Msg::Ping(i)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Some(Msg::Ping(i)));
    }
    // The peer's root receiver ends when our sender is dropped; it then
    // closes the connection while we wait.
    drop(tx);
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the receiver must not hang after the peer left");
    match got {
        Ok(None) | Err(Error::Disconnected(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
    peer.join().unwrap();
}
