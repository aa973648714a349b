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

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use super::{lock, ConnShared, READ_CHUNK};
use crate::error::Error;
use crate::transport::recv_with_fds;
use crate::wire::{self, FrameDecoder, Kind};

/// Most reads one receive does on behalf of other channels before it
/// leaves the rest to the reader task.
pub(crate) const MAX_DIRECT_READS: usize = 8;

/// A socket's read side, shared by the reader task and direct readers.
pub(crate) struct DirectRead {
    afd: AsyncFd<OwnedFd>,
    state: Mutex<ReadState>,
}

struct ReadState {
    buf: BytesMut,
    /// Fds received and not yet claimed by a frame.
    fds: VecDeque<OwnedFd>,
    dec: FrameDecoder,
    got_hello: bool,
    /// The read side has failed or stopped: nobody reads any more.
    ended: bool,
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
    pub(crate) fn new(afd: AsyncFd<OwnedFd>, max_frame_size: usize) -> Arc<Self> {
        Arc::new(DirectRead {
            afd,
            state: Mutex::new(ReadState {
                buf: BytesMut::with_capacity(READ_CHUNK),
                fds: VecDeque::new(),
                dec: FrameDecoder::new(max_frame_size),
                got_hello: false,
                ended: false,
            }),
        })
    }
}

impl ConnShared {
    /// One non-blocking read while the socket is reported readable, and the
    /// dispatch of every frame it completed.
    fn pump(
        self: &Arc<Self>,
        guard: &mut AsyncFdReadyGuard<'_, OwnedFd>,
        st: &mut ReadState,
    ) -> Pumped {
        let missing = st.dec.missing(&st.buf);
        st.buf.reserve(missing.max(READ_CHUNK));
        let room = st.buf.capacity() - st.buf.len();
        let fds_before = st.fds.len();
        let res = guard.try_io(|fd| recv_with_fds(fd.as_raw_fd(), &mut st.buf, &mut st.fds));
        let n = match res {
            Err(_would_block) => return Pumped::WouldBlock,
            Ok(Err(e)) => {
                self.read_failed(st, Error::Disconnected(format!("read failed: {e}")));
                return Pumped::Ended;
            }
            Ok(Ok(0)) => {
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
            Ok(Ok(n)) => n,
        };
        // A short read without fds drained the socket: skip the recvmsg
        // that would only return EAGAIN (with fds the kernel may stop
        // early, so keep readiness).
        if n < room && st.fds.len() == fds_before {
            guard.clear_ready();
        }
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
                _ => return false,
            };
            let mut st = match d.state.try_lock() {
                Ok(st) => st,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return false,
            };
            if st.ended {
                return false;
            }
            match self.pump(&mut guard, &mut st) {
                Pumped::Progress | Pumped::Ended => return true,
                // Readiness is cleared: polling again registers the waker.
                Pumped::WouldBlock => continue,
            }
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
        if let Pumped::Ended = shared.pump(&mut guard, &mut st) {
            return;
        }
    }
}
