//! In-memory channels: no connection, no serialization.

use std::time::Duration;

use libchan::{channel, Error, TrySendError};

#[tokio::test]
async fn values_arrive_in_order_and_stream_ends_when_senders_drop() {
    let (tx, mut rx) = channel::<u32>(4);
    let tx2 = tx.clone();
    tokio::spawn(async move {
        for i in 0..100 {
            tx.send(i).await.unwrap();
        }
    });
    drop(tx2);
    for i in 0..100 {
        assert_eq!(rx.recv().await.unwrap(), Some(i));
    }
    assert_eq!(rx.recv().await.unwrap(), None);
}

#[tokio::test]
async fn bounded_channel_applies_back_pressure() {
    let (tx, mut rx) = channel::<u32>(2);
    tx.send(1).await.unwrap();
    tx.send(2).await.unwrap();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
    let blocked = tokio::time::timeout(Duration::from_millis(50), tx.send(3)).await;
    assert!(blocked.is_err(), "send must wait while the channel is full");
    assert_eq!(rx.recv().await.unwrap(), Some(1));
    tx.try_send(3).unwrap();
}

#[tokio::test]
async fn dropped_receiver_fails_sends_and_wakes_closed() {
    let (tx, rx) = channel::<String>(1);
    let waiter = {
        let tx = tx.clone();
        tokio::spawn(async move { tx.closed().await })
    };
    drop(rx);
    waiter.await.unwrap();
    assert!(tx.is_closed());
    assert!(matches!(tx.send("x".into()).await, Err(Error::Closed(_))));
}

#[test]
fn blocking_api_works_across_threads() {
    let (tx, mut rx) = channel::<u64>(1);
    let t = std::thread::spawn(move || {
        for i in 0..1000 {
            tx.blocking_send(i).unwrap();
        }
    });
    let mut sum = 0;
    while let Some(v) = rx.blocking_recv().unwrap() {
        sum += v;
    }
    t.join().unwrap();
    assert_eq!(sum, 999 * 1000 / 2);
}

#[tokio::test]
async fn channels_move_inside_local_messages() {
    let (tx, mut rx) = channel::<(u32, libchan::Sender<u32>)>(1);
    let (rtx, mut rrx) = channel::<u32>(1);
    tx.send((5, rtx)).await.unwrap();
    let (n, reply) = rx.recv().await.unwrap().unwrap();
    reply.send(n + 1).await.unwrap();
    assert_eq!(rrx.recv().await.unwrap(), Some(6));
}

#[test]
fn serializing_a_handle_outside_a_connection_is_an_error() {
    let (tx, _rx) = channel::<u32>(1);
    assert!(postcard::to_allocvec(&tx).is_err());
    let err = serde_json::to_string(&tx).unwrap_err();
    assert!(err.to_string().contains("libchan"), "{err}");
}
