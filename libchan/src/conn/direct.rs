//! Reading a socket from whichever task waits for a message.
//!
//! The reader task always watches the socket, so every frame is delivered
//! even when nobody receives. But a receiver whose queue is empty may read
//! the socket itself: on a current-thread runtime that saves the hop through
//! the reader task (a task switch and one more zero-timeout `epoll_wait`
//! before the receiver runs), which is most of what a round trip costs above
//! the raw socket. Both take the same lock around one non-blocking
//! `recvmsg` and the dispatch of the frames it completed, so frames stay in
//! order whoever reads them.
//!
//! With [`Config::busy_poll`](super::Config::busy_poll) (on by default), a
//! receiver that finds the socket empty keeps retrying the read for that
//! long before it sleeps, if the previous wait for bytes on this socket was
//! that short (an active request/reply exchange): the peer's reply then
//! often lands within microseconds, and catching it saves the sleep in
//! `epoll_wait` and the wake-up, which dominate a round trip. The spin is
//! cooperative: one try per poll, then the task yields to the runtime (as
//! `tokio::task::yield_now` does), which runs every other ready task and
//! polls its I/O driver without sleeping before it polls the receiver
//! again; so a spinning receiver never holds up the rest of the runtime.
//! A wait that outlasts the spin turns spinning off until a wait is short
//! again, so a slow or idle peer costs at most one spin; and nobody spins
//! after a big read or for the rest of a frame already begun (bulk
//! transfers). Between tries the receiver yields the CPU; if that yield
//! takes long, other work wants this CPU, and a spinner that keeps
//! yielding to it waits a whole time slice each time (milliseconds) where
//! a sleeper would be woken at once: spinning then backs off for a growing
//! number of waits.

use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use super::{lock, ConnShared, READ_CHUNK};
use crate::error::Error;
use crate::transport::recv_with_fds;
use crate::wire::{self, FrameDecoder, Kind};

/// Most reads one receive does on behalf of other channels before it
/// leaves the rest to the reader task.
pub(crate) const MAX_DIRECT_READS: usize = 8;
/// Reads shorter than this mean small messages: only those busy poll.
const SMALL_READ: usize = 16 * 1024;
/// A yield of the CPU that takes longer than this ran someone else here:
/// another process, or the peer itself. Either way spinning does not pay:
/// a sleeper would be woken at once by a busy CPU (waking an idle CPU is
/// the slow wake-up the spin saves), while a spinner that yields to other
/// work may wait out a whole time slice. An empty yield takes well under a
/// microsecond.
const CONTENDED_YIELD: Duration = Duration::from_micros(10);
/// Waits without spinning after the first contended yield; doubles on each
/// further one, up to the maximum, and halves on each spin that catches
/// bytes.
const MIN_BACKOFF: u32 = 4;
const MAX_BACKOFF: u32 = 1 << 16;

/// A socket's read side, shared by the reader task and direct readers.
pub(crate) struct DirectRead {
    afd: AsyncFd<OwnedFd>,
    state: Mutex<ReadState>,
    /// [`Config::busy_poll`](super::Config::busy_poll); zero: never spin.
    busy_poll: Duration,
    /// Spins that caught bytes, and spins that gave up and slept.
    spin_hits: AtomicU64,
    spin_misses: AtomicU64,
    spin_contended: AtomicU64,
}

/// How busy polling has fared on a connection (see
/// [`Connection::busy_poll_stats`](super::Connection::busy_poll_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusyPollStats {
    /// Waits that ended while spinning: bytes came before the spin ran out.
    pub hits: u64,
    /// Spins that ran out and went to sleep in the runtime.
    pub misses: u64,
    /// Spins stopped because yielding the CPU took long (other work wants
    /// it); each turns spinning off for a while.
    pub contended: u64,
}

struct ReadState {
    buf: BytesMut,
    /// Fds received and not yet claimed by a frame.
    fds: VecDeque<OwnedFd>,
    dec: FrameDecoder,
    got_hello: bool,
    /// The read side has failed or stopped: nobody reads any more.
    ended: bool,
    /// Since when a receiver has been waiting for bytes (kept only when
    /// busy polling is on).
    wait_from: Option<Instant>,
    /// How long the last wait for bytes lasted.
    last_wait: Option<Duration>,
    /// The current wait is spinning (not sleeping).
    spinning: bool,
    /// The current wait does not spin (backing off).
    wait_no_spin: bool,
    /// Waits left that do not spin, and the current back-off.
    skip_spins: u32,
    backoff: u32,
    /// The last read was short (small messages, not a bulk transfer).
    last_read_small: bool,
}

/// What one read did.
enum Pumped {
    /// Bytes arrived (and the frames they completed were dispatched).
    Progress,
    /// Nothing to read; readiness was cleared.
    WouldBlock,
    /// The connection ended (end of stream, error, protocol violation).
    Ended,
}

impl DirectRead {
    pub(crate) fn new(
        afd: AsyncFd<OwnedFd>,
        max_frame_size: usize,
        busy_poll: Duration,
    ) -> Arc<Self> {
        Arc::new(DirectRead {
            afd,
            busy_poll,
            spin_hits: AtomicU64::new(0),
            spin_misses: AtomicU64::new(0),
            spin_contended: AtomicU64::new(0),
            state: Mutex::new(ReadState {
                buf: BytesMut::with_capacity(READ_CHUNK),
                fds: VecDeque::new(),
                dec: FrameDecoder::new(max_frame_size),
                got_hello: false,
                ended: false,
                wait_from: None,
                last_wait: None,
                spinning: false,
                wait_no_spin: false,
                skip_spins: 0,
                backoff: 0,
                last_read_small: false,
            }),
        })
    }
}

impl DirectRead {
    /// The read state, unless someone else is reading right now or reading
    /// has ended.
    fn live_state(&self) -> Option<MutexGuard<'_, ReadState>> {
        let st = match self.state.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        (!st.ended).then_some(st)
    }
}

impl ConnShared {
    /// One non-blocking read, and the dispatch of every frame it completed.
    /// With a guard (the socket is reported readable) an empty read clears
    /// the readiness; without one (busy polling) it changes nothing.
    fn pump(
        self: &Arc<Self>,
        d: &DirectRead,
        guard: Option<&mut AsyncFdReadyGuard<'_, OwnedFd>>,
        st: &mut ReadState,
    ) -> Pumped {
        let missing = st.dec.missing(&st.buf);
        st.buf.reserve(missing.max(READ_CHUNK));
        let room = st.buf.capacity() - st.buf.len();
        let fds_before = st.fds.len();
        let fd = d.afd.get_ref().as_raw_fd();
        let res = match guard {
            Some(g) => {
                let r = g.try_io(|_| recv_with_fds(fd, &mut st.buf, &mut st.fds));
                if n_drained(&r, room, st.fds.len() == fds_before) {
                    // A short read without fds drained the socket: skip
                    // the recvmsg that would only return EAGAIN (with fds
                    // the kernel may stop early, so keep readiness).
                    g.clear_ready();
                }
                r.ok()
            }
            None => match recv_with_fds(fd, &mut st.buf, &mut st.fds) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                r => Some(r),
            },
        };
        match res {
            None => return Pumped::WouldBlock,
            Some(Err(e)) => {
                self.read_failed(st, Error::Disconnected(format!("read failed: {e}")));
                return Pumped::Ended;
            }
            Some(Ok(0)) => {
                let err = if st.buf.is_empty() {
                    Error::Disconnected("peer closed the connection".into())
                } else {
                    Error::Protocol(format!(
                        "connection closed in the middle of a frame ({} bytes of it received)",
                        st.buf.len()
                    ))
                };
                self.read_failed(st, err);
                return Pumped::Ended;
            }
            Some(Ok(n)) => {
                st.last_read_small = n < SMALL_READ;
                if let Some(t) = st.wait_from.take() {
                    st.last_wait = Some(t.elapsed());
                }
                st.wait_no_spin = false;
                if std::mem::take(&mut st.spinning) {
                    d.spin_hits.fetch_add(1, Ordering::Relaxed);
                    st.backoff /= 2;
                }
            }
        };
        loop {
            let ReadState {
                buf,
                fds,
                dec,
                got_hello,
                ..
            } = &mut *st;
            let res = match dec.decode(buf) {
                Ok(Some(frame)) => self.dispatch(frame, fds, got_hello),
                Ok(None) => return Pumped::Progress,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                self.read_failed(st, e);
                return Pumped::Ended;
            }
        }
    }

    /// The read side is done: tell the peer why if it broke the protocol,
    /// and fail every channel.
    fn read_failed(&self, st: &mut ReadState, e: Error) {
        st.ended = true;
        // Fds that arrived without a frame to claim them are closed.
        st.fds.clear();
        if let Error::Protocol(reason) = &e {
            tracing::warn!(%reason, "libchan peer broke the protocol");
            let mut frame = Vec::new();
            let reason = reason.as_bytes();
            let reason = &reason[..reason.len().min(wire::MAX_REASON)];
            wire::put_header(&mut frame, Kind::Error, 0, 0, 0, reason.len() as u32);
            frame.extend_from_slice(reason);
            self.push_bytes(&frame, Vec::new());
        }
        self.fail(e);
    }

    /// Reads the socket for a receiver whose queue is empty. True if it
    /// read something (the caller looks at its queue again); false if
    /// there was nothing to read (the task is woken when there is), or the
    /// socket is the reader task's to read right now.
    pub(crate) fn poll_direct_read(self: &Arc<Self>, cx: &mut Context<'_>) -> bool {
        let Some(d) = self.direct_rx.upgrade() else {
            return false;
        };
        if self.failed.get().is_some() {
            return false;
        }
        loop {
            let mut guard = match d.afd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(_)) => return false,
                // The waker is registered; during an exchange, busy poll
                // before sleeping.
                Poll::Pending => return self.busy_read(&d, cx),
            };
            let Some(mut st) = d.live_state() else {
                return false;
            };
            match self.pump(&d, Some(&mut guard), &mut st) {
                Pumped::Progress | Pumped::Ended => return true,
                // Readiness is cleared: polling again registers the waker.
                Pumped::WouldBlock => continue,
            }
        }
    }

    /// One busy-poll try, if the last wait for bytes was no longer than
    /// [`DirectRead::busy_poll`] and this wait has not outlasted it yet.
    /// True if it read something. If not, and the spin goes on, the task is
    /// polled again once the runtime has run its other ready tasks and
    /// polled its I/O driver (without sleeping); its waker is registered
    /// for readiness already, so giving up just sleeps as usual. A read
    /// that succeeds here leaves a stale edge that costs one empty read
    /// later.
    fn busy_read(self: &Arc<Self>, d: &DirectRead, cx: &mut Context<'_>) -> bool {
        if d.busy_poll.is_zero() {
            return false;
        }
        let Some(mut st) = d.live_state() else {
            return false;
        };
        let since = match st.wait_from {
            Some(t) => t,
            None => {
                // A new wait: backing off skips it.
                let now = Instant::now();
                st.wait_from = Some(now);
                st.wait_no_spin = st.skip_spins > 0;
                st.skip_spins = st.skip_spins.saturating_sub(1);
                now
            }
        };
        // Bulk transfers (big reads, or the rest of a frame already begun)
        // come in bigger reads after a sleep than by spinning.
        if st.wait_no_spin
            || !st.last_read_small
            || !st.buf.is_empty()
            || st.last_wait.is_none_or(|w| w > d.busy_poll)
        {
            return false;
        }
        match self.pump(d, None, &mut st) {
            Pumped::Progress | Pumped::Ended => return true,
            Pumped::WouldBlock => {}
        }
        if since.elapsed() >= d.busy_poll {
            // Too slow a peer: this wait ends up longer than the spin,
            // which turns spinning off until a wait is short again.
            if std::mem::take(&mut st.spinning) {
                d.spin_misses.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
        st.spinning = true;
        drop(st);
        // The CPU goes to whoever wants it first: on a small machine that
        // is often the peer we wait for (spinning without yielding measured
        // 10x slower on 2 vCPUs).
        let yielded = Instant::now();
        std::thread::yield_now();
        if yielded.elapsed() > CONTENDED_YIELD {
            let mut st = super::lock(&d.state);
            if std::mem::take(&mut st.spinning) {
                d.spin_contended.fetch_add(1, Ordering::Relaxed);
                st.backoff = (st.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                st.skip_spins = st.backoff;
                st.wait_no_spin = true;
            }
            return false;
        }
        // Then the runtime's turn. Polling `yield_now` once hands the waker
        // to the scheduler's deferred list (outside tokio it wakes at once).
        let mut again = std::pin::pin!(tokio::task::yield_now());
        let _ = again.as_mut().poll(cx);
        false
    }

    /// How busy polling has fared on this connection so far.
    pub(crate) fn busy_poll_stats(&self) -> BusyPollStats {
        match self.direct_rx.upgrade() {
            Some(d) => BusyPollStats {
                hits: d.spin_hits.load(Ordering::Relaxed),
                misses: d.spin_misses.load(Ordering::Relaxed),
                contended: d.spin_contended.load(Ordering::Relaxed),
            },
            None => BusyPollStats::default(),
        }
    }
}

/// The reader task of a socket: reads whenever the socket is readable and
/// no receiver has read it first.
pub(super) async fn reader_loop(shared: Arc<ConnShared>, d: Arc<DirectRead>) {
    loop {
        let ready = tokio::select! {
            r = d.afd.readable() => r,
            _ = shared.closing.cancelled() => {
                let mut st = lock(&d.state);
                st.ended = true;
                st.fds.clear();
                drop(st);
                shared.fail(Error::Disconnected("connection closed".into()));
                return;
            }
        };
        let mut st = lock(&d.state);
        if st.ended {
            return;
        }
        let mut guard = match ready {
            Ok(g) => g,
            Err(e) => {
                shared.read_failed(&mut st, Error::Disconnected(format!("read failed: {e}")));
                return;
            }
        };
        // A waiter woken by an event a direct reader has consumed since
        // still resolves, with an empty ready set: no read then (it would
        // only return EAGAIN).
        if guard.ready().is_empty() {
            continue;
        }
        if let Pumped::Ended = shared.pump(&d, Some(&mut guard), &mut st) {
            return;
        }
    }
}

/// Whether a read returned fewer bytes than it had room for and no fds,
/// which means it drained the socket.
fn n_drained<E>(r: &Result<std::io::Result<usize>, E>, room: usize, no_fds: bool) -> bool {
    matches!(r, Ok(Ok(n)) if *n < room) && no_fds
}
