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
//! With [`Config::busy_poll`](super::Config::busy_poll) set, a receiver
//! that finds the socket empty retries the read for that long before it
//! sleeps, if the previous wait for bytes on this socket was that short
//! (an active request/reply exchange): the peer's reply then often lands
//! within microseconds, and catching it saves the `epoll_wait` and wake-up.
//! A wait that outlasts the spin turns spinning off until a wait is short
//! again, so a slow or idle peer costs at most one spin; and nobody spins
//! after a big read or for the rest of a frame already begun (bulk
//! transfers).

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, TryLockError};
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

/// A socket's read side, shared by the reader task and direct readers.
pub(crate) struct DirectRead {
    afd: AsyncFd<OwnedFd>,
    state: Mutex<ReadState>,
    /// [`Config::busy_poll`](super::Config::busy_poll); zero: never spin.
    busy_poll: Duration,
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
            state: Mutex::new(ReadState {
                buf: BytesMut::with_capacity(READ_CHUNK),
                fds: VecDeque::new(),
                dec: FrameDecoder::new(max_frame_size),
                got_hello: false,
                ended: false,
                wait_from: None,
                last_wait: None,
                last_read_small: false,
            }),
        })
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
            let reason = &reason[..reason.len().min(1024)];
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
                Poll::Pending => return self.busy_read(&d),
            };
            let mut st = match d.state.try_lock() {
                Ok(st) => st,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return false,
            };
            if st.ended {
                return false;
            }
            match self.pump(&d, Some(&mut guard), &mut st) {
                Pumped::Progress | Pumped::Ended => return true,
                // Readiness is cleared: polling again registers the waker.
                Pumped::WouldBlock => continue,
            }
        }
    }

    /// Retries the read for up to [`DirectRead::busy_poll`] if the last
    /// wait for bytes was that short. The waker is registered already, so
    /// giving up just sleeps as usual; a read that succeeds leaves a stale
    /// edge that costs one empty read later.
    fn busy_read(self: &Arc<Self>, d: &DirectRead) -> bool {
        if d.busy_poll.is_zero() {
            return false;
        }
        let start = Instant::now();
        loop {
            let mut st = match d.state.try_lock() {
                Ok(st) => st,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return false,
            };
            if st.ended {
                return false;
            }
            let since = *st.wait_from.get_or_insert(start);
            // Bulk transfers (big reads, or the rest of a frame already
            // begun) come in bigger reads after a sleep than by spinning.
            if !st.last_read_small
                || !st.buf.is_empty()
                || st.last_wait.is_none_or(|w| w > d.busy_poll)
            {
                return false;
            }
            match self.pump(d, None, &mut st) {
                Pumped::Progress | Pumped::Ended => return true,
                Pumped::WouldBlock => {}
            }
            drop(st);
            if since.elapsed() >= d.busy_poll {
                // Too slow a peer: this wait ends up longer than the spin,
                // which turns spinning off until a wait is short again.
                return false;
            }
            // Between tries the CPU goes to whoever wants it: on a small
            // machine that is often the peer we wait for. (Spinning without
            // yielding measured 10x slower on 2 vCPUs.)
            std::thread::yield_now();
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
