//! The connection-side halves of channels: what the frame reader dispatches
//! to and what senders write through.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ConnShared;
use crate::ctx::{self, DecodeCtx};
use crate::error::{Error, Result};

/// Where the reader delivers MSG frames of one channel: a typed queue,
/// erased.
pub(crate) trait WireSink: Send + Sync {
    /// Queues a message; false if the receiver is gone.
    fn push_raw(&self, raw: RawMsg) -> bool;
    /// The remote sender of registration `reg` closed the channel cleanly.
    fn sender_closed(&self, reg: &Arc<WireReg>);
    /// The connection died under registration `reg`.
    fn sender_failed(&self, reg: &Arc<WireReg>, err: Error);
}

/// One registration of a local queue on a connection (a channel id whose
/// receiver lives here). Counts consumed messages to return credit.
pub(crate) struct WireReg {
    pub(crate) conn: Weak<ConnShared>,
    pub(crate) id: u64,
    pub(crate) window: u32,
    consumed: AtomicU32,
    /// Messages queued and not yet consumed, to catch a peer that ignores
    /// its credit.
    in_flight: AtomicU32,
}

impl WireReg {
    pub(crate) fn new(conn: &Arc<ConnShared>, id: u64, window: u32) -> Arc<Self> {
        Arc::new(WireReg {
            conn: Arc::downgrade(conn),
            id,
            window,
            consumed: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
        })
    }

    /// A registration for a message that has no channel (it is dropped).
    pub(crate) fn detached(id: u64) -> Self {
        WireReg {
            conn: Weak::new(),
            id,
            window: u32::MAX,
            consumed: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
        }
    }

    /// A message arrived; false if the peer exceeded the window.
    pub(crate) fn arrived(&self) -> bool {
        self.in_flight.fetch_add(1, Ordering::AcqRel) < self.window
    }

    /// One message was taken off the queue: grant credit back in batches of
    /// half a window, so a busy channel costs one CREDIT per half window.
    pub(crate) fn consumed_one(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let n = self.consumed.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= (self.window / 2).max(1) {
            let n = self.consumed.swap(0, Ordering::AcqRel);
            if n > 0 {
                if let Some(conn) = self.conn.upgrade() {
                    conn.send_control(super::Control::Credit(self.id, n));
                }
            }
        }
    }

    /// The receiver was dropped: tell the peer, forget the id.
    pub(crate) fn close_from_receiver(&self) {
        if let Some(conn) = self.conn.upgrade() {
            if conn.remove_entry(self.id) {
                conn.send_control(super::Control::Close(self.id));
            }
        }
    }
}

/// The sending side of a channel whose receiver is on the peer.
pub(crate) struct RemoteTx {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) id: u64,
    /// Initial credit; grants beyond it are a protocol violation.
    pub(crate) window: u32,
    /// Messages the peer still accepts.
    pub(crate) credit: Arc<Semaphore>,
    /// Cancelled once the receiver is gone or the connection died.
    pub(crate) closed: CancellationToken,
    reason: Mutex<Option<Error>>,
    /// Set when this side's sender failed: the CLOSE carries it.
    failure: Mutex<Option<String>>,
}

impl RemoteTx {
    pub(crate) fn new(conn: Arc<ConnShared>, id: u64, window: u32) -> Arc<Self> {
        Arc::new(RemoteTx {
            conn,
            id,
            window,
            credit: Arc::new(Semaphore::new(window as usize)),
            closed: CancellationToken::new(),
            reason: Mutex::new(None),
            failure: Mutex::new(None),
        })
    }

    /// The channel will close because its source failed with `e` (the
    /// receiver then sees an error rather than a clean end of stream).
    pub(crate) fn set_failure(&self, e: &Error) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert_with(|| e.to_string());
        }
    }

    pub(crate) fn mark_closed(&self, reason: Error) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.credit.close();
        self.closed.cancel();
    }

    pub(crate) fn close_reason(&self) -> Error {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or(Error::Closed("receiver dropped"))
    }

    /// Adds credit granted by the peer; false if it exceeds the window
    /// (a protocol violation: it would let the peer overflow us later).
    pub(crate) fn grant(&self, n: u32, limit: u32) -> bool {
        if self.credit.is_closed() {
            return true;
        }
        if self.credit.available_permits() as u64 + u64::from(n) > u64::from(limit) {
            return false;
        }
        self.credit.add_permits(n as usize);
        true
    }
}

impl Drop for RemoteTx {
    fn drop(&mut self) {
        if !self.closed.is_cancelled() && self.conn.remove_entry(self.id) {
            let failure = self.failure.lock().ok().and_then(|mut f| f.take());
            self.conn.send_close(self.id, failure.as_deref());
        }
    }
}

/// A receiver announced by the peer that no local code has decoded yet.
/// Dropping it unclaimed closes the channel.
pub(crate) struct PendingRx {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) id: u64,
    pub(crate) claimed: bool,
}

impl Drop for PendingRx {
    fn drop(&mut self) {
        if !self.claimed && self.conn.remove_entry(self.id) {
            self.conn.send_control(super::Control::Close(self.id));
        }
    }
}

/// An announced channel as it arrives with a message.
pub(crate) enum AnnIn {
    /// The message carries a sender for this remote channel.
    Tx(Arc<RemoteTx>),
    /// The message carries a receiver.
    Rx(PendingRx),
}

/// A message that arrived over a connection, not yet decoded.
pub(crate) struct RawMsg {
    pub(crate) reg: Arc<WireReg>,
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) payload: Bytes,
    pub(crate) anns: Vec<AnnIn>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl RawMsg {
    /// Decodes into `T`, claiming the channels and fds the payload refers
    /// to. Unclaimed ones are closed when the context is dropped.
    pub(crate) fn decode<T: DeserializeOwned>(self) -> Result<T> {
        let RawMsg {
            reg,
            conn,
            payload,
            anns,
            fds,
        } = self;
        let dctx = DecodeCtx {
            anns: anns.into_iter().map(Some).collect(),
            fds: fds.into_iter().map(Some).collect(),
            error: None,
        };
        let (res, dctx) = ctx::with_decode(dctx, || postcard::from_bytes::<T>(&payload));
        reg.consumed_one();
        let out = match res {
            Ok(v) => Ok(v),
            Err(e) => Err(dctx
                .error
                .clone()
                .unwrap_or_else(|| Error::Decode(e.to_string()))),
        };
        drop(dctx);
        drop(conn);
        out
    }
}
