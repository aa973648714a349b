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

/// How the echo peer delays its answer to `Slow`.
enum Delay {
    /// Sleeps 2 ms.
    Sleep,
    /// Waits until told to go.
    Gate(std::sync::mpsc::Receiver<()>),
}

/// Runs an echo peer on its own thread and current-thread runtime (as a
/// peer process would be), busy polling for `spin`.
fn spawn_echo(
    sock: std::os::unix::net::UnixStream,
    spin: Duration,
    delay: Delay,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            sock.set_nonblocking(true).unwrap();
            let sock = tokio::net::UnixStream::from_std(sock).unwrap();
            let (_conn, tx, mut rx) = Builder::new()
                .busy_poll(spin)
                .server::<Msg, Msg>(libchan::Transport::unix(sock))
                .unwrap();
            while let Ok(Some(m)) = rx.recv().await {
                if let Msg::Slow(_) = m {
                    match &delay {
                        Delay::Sleep => tokio::time::sleep(Duration::from_millis(2)).await,
                        Delay::Gate(go) => {
                            if go.recv().is_err() {
                                break;
                            }
                        }
                    }
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
    let peer = spawn_echo(b, SPIN, Delay::Sleep);
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
    let peer = spawn_echo(b, SPIN, Delay::Sleep);
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

/// The spin is cooperative: while a receiver spins, the other tasks of its
/// current-thread runtime keep running. Here the peer's answer waits for
/// another task of the same runtime, so a receiver that held the thread
/// for its whole spin would delay that task by the spin every time.
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_receiver_lets_other_tasks_run() {
    const LONG_SPIN: Duration = Duration::from_millis(1);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let peer = spawn_echo(b, SPIN, Delay::Gate(go_rx));
    a.set_nonblocking(true).unwrap();
    let (conn, tx, mut rx) = Builder::new()
        .busy_poll(LONG_SPIN)
        .client::<Msg, Msg>(libchan::Transport::unix(
            tokio::net::UnixStream::from_std(a).unwrap(),
        ))
        .unwrap();
    let mut best = Duration::MAX;
    for round in 0..20u64 {
        // Quick exchanges first, so that the next wait spins.
        for i in 0..5 {
            tx.send(Msg::Ping(i)).await.unwrap();
            assert_eq!(rx.recv().await.unwrap(), Some(Msg::Ping(i)));
        }
        tx.send(Msg::Slow(round)).await.unwrap();
        // Spawned now, the other task can only run once `recv` waits.
        let started = std::time::Instant::now();
        let go = go_tx.clone();
        let other = tokio::spawn(async move {
            let ran = started.elapsed();
            go.send(()).unwrap();
            ran
        });
        assert_eq!(rx.recv().await.unwrap(), Some(Msg::Slow(round)));
        best = best.min(other.await.unwrap());
    }
    // Held for the spin, the other task would have waited >= 1 ms in every
    // round; yielding between tries lets it run at once (a loaded machine
    // may preempt some rounds, hence the best of 20).
    assert!(
        best < LONG_SPIN / 2,
        "the other task waited at least {best:?} for the spinning receiver ({:?})",
        conn.busy_poll_stats()
    );
    drop(tx);
    conn.close().await;
    drop(go_tx);
    peer.join().unwrap();
}

/// With `busy_poll(ZERO)` nobody spins; the default spins during quick
/// exchanges.
#[tokio::test(flavor = "current_thread")]
async fn busy_polling_can_be_turned_off() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = spawn_echo(b, SPIN, Delay::Sleep);
    a.set_nonblocking(true).unwrap();
    let (conn, tx, mut rx) = Builder::new()
        .busy_poll(Duration::ZERO)
        .client::<Msg, Msg>(libchan::Transport::unix(
            tokio::net::UnixStream::from_std(a).unwrap(),
        ))
        .unwrap();
    for i in 0..200 {
        tx.send(Msg::Ping(i)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Some(Msg::Ping(i)));
    }
    assert_eq!(conn.busy_poll_stats(), libchan::BusyPollStats::default());
    drop(tx);
    conn.close().await;
    peer.join().unwrap();
}
