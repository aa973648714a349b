//! Typed channels: [`Sender`], [`Receiver`] and the in-memory [`channel`].
//!
//! A receiver is always a local queue. Values sent from this process are
//! queued as they are (no serialization); messages that arrive over a
//! connection are queued as raw frames and decoded by [`Receiver::recv`], so
//! the connection's reader never blocks on one slow receiver. A sender is
//! either local (it pushes onto a queue) or remote (it encodes and writes a
//! frame once the peer has granted credit).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::conn::endpoint::{RawMsg, RemoteTx, WireReg, WireSink};
use crate::conn::MAX_DIRECT_READS;
use crate::ctx;
use crate::error::{Error, Result};

/// What a channel can carry: any owned serde type that can move between
/// threads. Blanket-implemented.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// Default capacity of [`channel`] when none is given by the caller.
pub const DEFAULT_CAPACITY: usize = 128;

pub(crate) enum Item<T> {
    Val(T),
    Raw(RawMsg),
    Err(Error),
}

struct State<T> {
    items: VecDeque<Item<T>>,
    /// Local sender handles plus one per connection registration.
    senders: usize,
    receiver_alive: bool,
    waker: Option<Waker>,
    regs: Vec<Arc<WireReg>>,
}

/// The queue behind every receiver.
pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    /// Capacity left for local senders (wire senders are bounded by credit).
    permits: Arc<Semaphore>,
    /// Cancelled when the receiver is dropped, for [`Sender::closed`].
    closed: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the queue inconsistent in
    // a way that matters more than losing the channel; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Queue<T> {
    pub(crate) fn new(capacity: usize, senders: usize) -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                senders,
                receiver_alive: true,
                waker: None,
                regs: Vec::new(),
            }),
            permits: Arc::new(Semaphore::new(capacity.clamp(1, Semaphore::MAX_PERMITS))),
            closed: CancellationToken::new(),
        })
    }

    /// A queue created for a receiver that arrived over a connection.
    pub(crate) fn from_wire(
        reg: Arc<WireReg>,
        raws: VecDeque<RawMsg>,
        open: bool,
        err: Option<Error>,
    ) -> Arc<Self> {
        let q = Queue::new(1, usize::from(open));
        {
            let mut st = lock(&q.state);
            st.items.extend(raws.into_iter().map(Item::Raw));
            if let Some(e) = err {
                st.items.push_back(Item::Err(e));
            }
            st.regs.push(reg);
        }
        q
    }

    fn push(&self, item: Item<T>) -> std::result::Result<(), Item<T>> {
        let mut st = lock(&self.state);
        if !st.receiver_alive {
            return Err(item);
        }
        st.items.push_back(item);
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Adds a connection registration: the queue now has one more sender.
    pub(crate) fn add_reg(&self, reg: Arc<WireReg>) -> bool {
        let mut st = lock(&self.state);
        st.senders += 1;
        st.regs.push(reg);
        st.receiver_alive
    }

    fn sender_gone(&self, reg: &Arc<WireReg>, err: Option<Error>) {
        let mut st = lock(&self.state);
        st.senders = st.senders.saturating_sub(1);
        // Forget the registration: a receiver whose sender is sent again
        // and again would otherwise collect one per send.
        st.regs.retain(|r| !Arc::ptr_eq(r, reg));
        if let Some(e) = err {
            if st.receiver_alive {
                st.items.push_back(Item::Err(e));
            }
        }
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Item<T>>> {
        let mut st = lock(&self.state);
        match st.items.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if st.senders == 0 => Poll::Ready(None),
            None => {
                match &st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Like [`poll_pop`](Self::poll_pop), but when the queue is empty and
    /// fed by a single socket connection, first reads that socket here
    /// instead of waiting for its reader task to deliver (see
    /// `conn::direct`).
    fn poll_pop_direct(&self, cx: &mut Context<'_>) -> Poll<Option<Item<T>>> {
        let conn = {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            if let Some(item) = st.items.pop_front() {
                return Poll::Ready(Some(item));
            }
            if st.senders == 0 {
                return Poll::Ready(None);
            }
            match st.regs.as_slice() {
                [reg] => {
                    // This poll reads for itself: frames it dispatches to
                    // this queue must not wake the task again (that costs
                    // the scheduler another round); poll_pop re-registers.
                    st.waker = None;
                    reg.conn.upgrade()
                }
                _ => None,
            }
        };
        if let Some(conn) = conn {
            for _ in 0..MAX_DIRECT_READS {
                if !conn.poll_direct_read(cx) {
                    break;
                }
                let mut st = lock(&self.state);
                if let Some(item) = st.items.pop_front() {
                    return Poll::Ready(Some(item));
                }
                if st.senders == 0 {
                    return Poll::Ready(None);
                }
            }
        }
        self.poll_pop(cx)
    }

    fn close_receiver(&self) {
        let mut st = lock(&self.state);
        st.receiver_alive = false;
        let items = std::mem::take(&mut st.items);
        let regs = std::mem::take(&mut st.regs);
        drop(st);
        self.permits.close();
        self.closed.cancel();
        // Dropping raw messages closes their fds and unclaimed channels;
        // this must happen outside the queue lock.
        drop(items);
        for reg in regs {
            reg.close_from_receiver();
        }
    }
}

impl<T: Send + 'static> WireSink for Queue<T> {
    fn push_raw(&self, raw: RawMsg) -> bool {
        self.push(Item::Raw(raw)).is_ok()
    }
    fn sender_closed(&self, reg: &Arc<WireReg>) {
        self.sender_gone(reg, None);
    }
    fn sender_failed(&self, reg: &Arc<WireReg>, err: Error) {
        self.sender_gone(reg, Some(err));
    }
}

enum SenderInner<T> {
    Local(Arc<Queue<T>>),
    Remote(Arc<RemoteTx>, PhantomData<fn(T)>),
}

/// The sending half of a channel. Cheap to clone; the receiver sees the end
/// of the stream once every clone is dropped.
///
/// A `Sender` can itself be sent inside a message, over any connection.
pub struct Sender<T> {
    inner: SenderInner<T>,
}

/// The receiving half of a channel. Can be sent inside a message (once:
/// serializing it moves the queue to the peer).
pub struct Receiver<T> {
    // A Mutex only so that serialization (which gets `&self`) can move the
    // queue out; receiving uses `get_mut` and never locks.
    queue: Mutex<Option<Arc<Queue<T>>>>,
}

/// Creates an in-memory channel holding up to `capacity` values in flight
/// (at least 1). Values move without serialization; either half can later be
/// sent over a connection.
///
/// ```
/// # tokio_test_block(async {
/// let (tx, mut rx) = libchan::channel::<String>(8);
/// tx.send("hello".to_string()).await.unwrap();
/// drop(tx);
/// assert_eq!(rx.recv().await.unwrap().as_deref(), Some("hello"));
/// assert_eq!(rx.recv().await.unwrap(), None);
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub fn channel<T: Message>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let q = Queue::new(capacity, 1);
    (
        Sender {
            inner: SenderInner::Local(q.clone()),
        },
        Receiver {
            queue: Mutex::new(Some(q)),
        },
    )
}

impl<T: Message> Sender<T> {
    pub(crate) fn remote(tx: Arc<RemoteTx>) -> Self {
        Sender {
            inner: SenderInner::Remote(tx, PhantomData),
        }
    }

    /// Sends a value, waiting for room (local capacity or the peer's credit).
    ///
    /// Fails with [`Error::Closed`] once the receiver is gone, or with the
    /// connection's error. On failure the value is dropped (fds it holds
    /// are closed).
    pub async fn send(&self, value: T) -> Result<()> {
        if let SenderInner::Remote(tx, _) = &self.inner {
            // Before taking credit, so that dropping this future while it
            // waits loses nothing.
            tx.conn.backpressure().await;
        }
        let sem = self.semaphore();
        match sem.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(self.closed_error()),
        }
        self.send_permitted(value)
    }

    /// Sends without waiting: fails with [`TrySendError::Full`] when the
    /// channel has no room.
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        match self.semaphore().try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(TrySendError::Full(value)),
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(TrySendError::Failed(self.closed_error()))
            }
        }
        self.send_permitted(value).map_err(TrySendError::Failed)
    }

    /// Blocking [`send`](Self::send) for threads outside an async runtime.
    /// Must not be called from inside an async task.
    pub fn blocking_send(&self, value: T) -> Result<()> {
        futures::executor::block_on(self.send(value))
    }

    /// Resolves once the receiver is gone (or the connection failed).
    pub async fn closed(&self) {
        match &self.inner {
            SenderInner::Local(q) => q.closed.cancelled().await,
            SenderInner::Remote(tx, _) => tx.closed.cancelled().await,
        }
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            SenderInner::Local(q) => q.closed.is_cancelled(),
            SenderInner::Remote(tx, _) => tx.closed.is_cancelled(),
        }
    }

    pub(crate) fn semaphore(&self) -> Arc<Semaphore> {
        match &self.inner {
            SenderInner::Local(q) => q.permits.clone(),
            SenderInner::Remote(tx, _) => tx.credit.clone(),
        }
    }

    pub(crate) fn closed_error(&self) -> Error {
        match &self.inner {
            SenderInner::Local(_) => Error::Closed("receiver dropped"),
            SenderInner::Remote(tx, _) => tx.close_reason(),
        }
    }

    /// Sends once a permit of [`semaphore`](Self::semaphore) was taken.
    pub(crate) fn send_permitted(&self, value: T) -> Result<()> {
        match &self.inner {
            SenderInner::Local(q) => match q.push(Item::Val(value)) {
                Ok(()) => Ok(()),
                Err(_) => Err(Error::Closed("receiver dropped")),
            },
            SenderInner::Remote(tx, _) => {
                let res = tx.conn.send_msg(tx.id, &value);
                if res.is_err() {
                    tx.credit.add_permits(1);
                }
                res
            }
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            SenderInner::Local(q) => {
                lock(&q.state).senders += 1;
                SenderInner::Local(q.clone())
            }
            SenderInner::Remote(tx, _) => SenderInner::Remote(tx.clone(), PhantomData),
        };
        Sender { inner }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let SenderInner::Local(q) = &self.inner {
            let mut st = lock(&q.state);
            st.senders = st.senders.saturating_sub(1);
            let waker = if st.senders == 0 {
                st.waker.take()
            } else {
                None
            };
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            SenderInner::Local(_) => f.write_str("Sender(local)"),
            SenderInner::Remote(tx, _) => write!(f, "Sender(remote #{})", tx.id),
        }
    }
}

/// Error of [`Sender::try_send`].
#[derive(Debug, thiserror::Error)]
pub enum TrySendError<T> {
    /// No room right now; the value is handed back.
    #[error("channel full")]
    Full(T),
    /// The send failed for good.
    #[error(transparent)]
    Failed(Error),
}

impl<T: Message> Receiver<T> {
    pub(crate) fn from_queue(q: Arc<Queue<T>>) -> Self {
        Receiver {
            queue: Mutex::new(Some(q)),
        }
    }

    pub(crate) fn take_queue(&self) -> Option<Arc<Queue<T>>> {
        lock(&self.queue).take()
    }

    /// Receives the next value. `Ok(None)` means every sender was dropped
    /// (cleanly: the stream ended). `Err` reports a message that could not
    /// be decoded or a lost connection; the receiver stays usable after it.
    pub async fn recv(&mut self) -> Result<Option<T>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Blocking [`recv`](Self::recv) for threads outside an async runtime.
    pub fn blocking_recv(&mut self) -> Result<Option<T>> {
        futures::executor::block_on(self.recv())
    }

    /// Poll form of [`recv`](Self::recv). Cancel-safe: nothing is lost when
    /// the future is dropped.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>>> {
        let queue = self.queue.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(q) = queue.as_ref() else {
            return Poll::Ready(Err(Error::Closed("receiver was sent away")));
        };
        match q.poll_pop_direct(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Ok(None)),
            Poll::Ready(Some(Item::Val(v))) => {
                q.permits.add_permits(1);
                Poll::Ready(Ok(Some(v)))
            }
            Poll::Ready(Some(Item::Raw(raw))) => Poll::Ready(raw.decode::<T>().map(Some)),
            Poll::Ready(Some(Item::Err(e))) => Poll::Ready(Err(e)),
        }
    }

    /// Stops the channel: senders fail from now on; queued values are dropped.
    pub fn close(&mut self) {
        if let Some(q) = self
            .queue
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            q.close_receiver();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queue = self.queue.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = queue.take() {
            q.close_receiver();
        }
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receiver")
    }
}

impl<T: Message> Serialize for Sender<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let idx = ctx::encode_sender(self).map_err(serde::ser::Error::custom)?;
        s.serialize_u32(idx)
    }
}

impl<'de, T: Message> Deserialize<'de> for Sender<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let idx = u32::deserialize(d)?;
        ctx::decode_sender(idx).map_err(serde::de::Error::custom)
    }
}

impl<T: Message> Serialize for Receiver<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let idx = ctx::encode_receiver(self).map_err(serde::ser::Error::custom)?;
        s.serialize_u32(idx)
    }
}

impl<'de, T: Message> Deserialize<'de> for Receiver<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let idx = u32::deserialize(d)?;
        ctx::decode_receiver(idx).map_err(serde::de::Error::custom)
    }
}

impl<T: Message> Sender<T> {
    pub(crate) fn local_queue(&self) -> Option<&Arc<Queue<T>>> {
        match &self.inner {
            SenderInner::Local(q) => Some(q),
            SenderInner::Remote(..) => None,
        }
    }

    /// Drops this sender because its source failed with `e`: the receiver
    /// gets `e` (as [`Error::Disconnected`]) after the messages already
    /// sent, where a plain drop would look like a clean end of stream.
    fn fail(self, e: Error) {
        match &self.inner {
            SenderInner::Local(q) => {
                let _ = q.push(Item::Err(e));
            }
            SenderInner::Remote(rtx, _) => rtx.set_failure(&e),
        }
    }
}

/// Moves everything from `rx` to `tx` until either side ends. Used when a
/// receiver is sent over a connection, or a sender is re-sent to a third
/// party.
pub(crate) async fn forward<T: Message>(mut rx: Receiver<T>, tx: Sender<T>) {
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(Some(v)) => {
                    if let Err(e) = tx.send(v).await {
                        tracing::debug!(error = %e, "libchan forwarder: downstream closed");
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "libchan forwarder: upstream error");
                    if matches!(e, Error::Disconnected(_) | Error::Protocol(_)) {
                        // The far end learns that its stream broke.
                        tx.fail(e);
                        return;
                    }
                }
            },
            _ = tx.closed() => break,
        }
    }
}
