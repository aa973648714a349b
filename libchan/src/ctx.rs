//! Per-message serialization context.
//!
//! serde gives `Serialize` no way to pass state, so while a connection
//! encodes or decodes one message it installs a context in a thread local.
//! Channel handles, fds and streams found inside the message register with
//! the connection through it. Encoding and decoding are synchronous (no
//! `.await` in between), so the thread local cannot leak across tasks.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::chan::{channel, forward, Message, Receiver, Sender};
use crate::conn::endpoint::{AnnIn, RemoteTx, WireReg};
use crate::conn::{ConnShared, Entry};
use crate::error::{Error, Result};
use crate::wire::{AnnKind, Announcement, MAX_FDS_PER_FRAME};

type Finish = Box<dyn FnOnce(bool) + Send>;

pub(crate) struct EncodeCtx {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) anns: Vec<Announcement>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) error: Option<Error>,
    /// Run with `true` once the frame is queued (start forwarders), or with
    /// `false` if the message is abandoned (undo registrations silently:
    /// the peer never heard of these ids).
    finish: Vec<Finish>,
}

impl EncodeCtx {
    pub(crate) fn new(conn: Arc<ConnShared>) -> Self {
        EncodeCtx {
            conn,
            anns: Vec::new(),
            fds: Vec::new(),
            error: None,
            finish: Vec::new(),
        }
    }

    pub(crate) fn finish(self, committed: bool) {
        for f in self.finish {
            f(committed);
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.error.get_or_insert(e.clone());
        e
    }
}

pub(crate) struct DecodeCtx {
    pub(crate) anns: Vec<Option<AnnIn>>,
    pub(crate) fds: Vec<Option<OwnedFd>>,
    pub(crate) error: Option<Error>,
}

thread_local! {
    static ENCODE: RefCell<Option<EncodeCtx>> = const { RefCell::new(None) };
    static DECODE: RefCell<Option<DecodeCtx>> = const { RefCell::new(None) };
}

/// Runs `f` with `ctx` installed and hands the context back.
pub(crate) fn with_encode<R>(ctx: EncodeCtx, f: impl FnOnce() -> R) -> (R, EncodeCtx) {
    let prev = ENCODE.with(|c| c.replace(Some(ctx)));
    let r = f();
    let ctx = ENCODE.with(|c| c.replace(prev));
    // The slot held our context for the whole call; only a handle decoding
    // into it could have taken it, and none does.
    match ctx {
        Some(ctx) => (r, ctx),
        None => unreachable_ctx(),
    }
}

pub(crate) fn with_decode<R>(ctx: DecodeCtx, f: impl FnOnce() -> R) -> (R, DecodeCtx) {
    let prev = DECODE.with(|c| c.replace(Some(ctx)));
    let r = f();
    let ctx = DECODE.with(|c| c.replace(prev));
    match ctx {
        Some(ctx) => (r, ctx),
        None => unreachable_ctx(),
    }
}

#[cold]
fn unreachable_ctx() -> ! {
    // Only reachable if a Serialize impl swapped our thread local, which no
    // code in this crate does.
    std::process::abort()
}

fn encoding<R>(f: impl FnOnce(&mut EncodeCtx) -> Result<R>) -> Result<R> {
    ENCODE.with(|c| match c.borrow_mut().as_mut() {
        Some(ctx) => f(ctx).map_err(|e| ctx.fail(e)),
        None => Err(Error::NoContext),
    })
}

fn decoding<R>(f: impl FnOnce(&mut DecodeCtx) -> Result<R>) -> Result<R> {
    DECODE.with(|c| match c.borrow_mut().as_mut() {
        Some(ctx) => f(ctx).inspect_err(|e| {
            ctx.error.get_or_insert(e.clone());
        }),
        None => Err(Error::NoContext),
    })
}

/// Registers a local queue on the connection under a fresh id; the peer
/// gets a sender for it.
fn register_local_sender<T: Message>(ctx: &mut EncodeCtx, tx: &Sender<T>) -> Result<u32> {
    let Some(q) = tx.local_queue() else {
        return Err(Error::Closed("not a local sender"));
    };
    let conn = ctx.conn.clone();
    let window = conn.cfg.window;
    let id = conn.alloc_id();
    let reg = WireReg::new(&conn, id, window);
    conn.insert_entry(
        id,
        Entry::Sink {
            sink: q.clone(),
            reg: reg.clone(),
        },
    )?;
    let receiver_alive = q.add_reg(reg.clone());
    let q2 = q.clone();
    ctx.finish.push(Box::new(move |committed| {
        if !committed {
            conn.remove_entry(id);
            crate::conn::endpoint::WireSink::sender_closed(&*q2, &reg);
        } else if !receiver_alive {
            // The receiver was already gone: the peer learns it right after
            // the message that announces the channel.
            reg.close_from_receiver();
        }
    }));
    ctx.anns.push(Announcement {
        id,
        kind: AnnKind::Sender,
        window,
    });
    Ok((ctx.anns.len() - 1) as u32)
}

pub(crate) fn encode_sender<T: Message>(tx: &Sender<T>) -> Result<u32> {
    encoding(|ctx| {
        if tx.local_queue().is_some() {
            return register_local_sender(ctx, tx);
        }
        // A sender for a channel elsewhere: proxy through a local queue.
        let (proxy_tx, proxy_rx) = channel::<T>(ctx.conn.cfg.window as usize);
        let idx = register_local_sender(ctx, &proxy_tx)?;
        let upstream = tx.clone();
        let handle = ctx.conn.handle.clone();
        ctx.finish.push(Box::new(move |committed| {
            if committed {
                handle.spawn(forward(proxy_rx, upstream));
            }
        }));
        Ok(idx)
    })
}

pub(crate) fn encode_receiver<T: Message>(rx: &Receiver<T>) -> Result<u32> {
    encoding(|ctx| {
        let q = rx
            .take_queue()
            .ok_or(Error::Closed("receiver was already sent away"))?;
        let conn = ctx.conn.clone();
        let window = conn.cfg.window;
        let id = conn.alloc_id();
        let rtx = RemoteTx::new(conn.clone(), id, window);
        conn.insert_entry(id, Entry::Tx(Arc::downgrade(&rtx)))?;
        ctx.finish.push(Box::new(move |committed| {
            let local = Receiver::from_queue(q);
            if committed {
                conn.handle.spawn(forward(local, Sender::remote(rtx)));
            } else {
                rtx.mark_closed(Error::Closed("message not sent"));
                conn.remove_entry(id);
            }
        }));
        ctx.anns.push(Announcement {
            id,
            kind: AnnKind::Receiver,
            window,
        });
        Ok((ctx.anns.len() - 1) as u32)
    })
}

pub(crate) fn encode_fd(fd: OwnedFd) -> Result<u32> {
    encoding(|ctx| {
        if !ctx.conn.fds_ok {
            return Err(Error::FdsUnsupported);
        }
        if ctx.fds.len() >= MAX_FDS_PER_FRAME {
            return Err(Error::Encode(format!(
                "more than {MAX_FDS_PER_FRAME} fds in one message"
            )));
        }
        ctx.fds.push(fd);
        Ok((ctx.fds.len() - 1) as u32)
    })
}

/// True while a connection is encoding (so handles know to register).
pub(crate) fn encoding_active() -> bool {
    ENCODE.with(|c| c.borrow().is_some())
}

pub(crate) fn decode_sender<T: Message>(idx: u32) -> Result<Sender<T>> {
    decoding(
        |ctx| match ctx.anns.get_mut(idx as usize).and_then(Option::take) {
            Some(AnnIn::Tx(rtx)) => Ok(Sender::remote(rtx)),
            Some(other) => {
                ctx.anns[idx as usize] = Some(other);
                Err(Error::Decode(format!(
                    "channel #{idx} of the message is a receiver, not a sender"
                )))
            }
            None => Err(Error::Decode(format!(
                "message has no unclaimed channel #{idx}"
            ))),
        },
    )
}

pub(crate) fn decode_receiver<T: Message>(idx: u32) -> Result<Receiver<T>> {
    let pending = decoding(
        |ctx| match ctx.anns.get_mut(idx as usize).and_then(Option::take) {
            Some(AnnIn::Rx(p)) => Ok(p),
            Some(other) => {
                ctx.anns[idx as usize] = Some(other);
                Err(Error::Decode(format!(
                    "channel #{idx} of the message is a sender, not a receiver"
                )))
            }
            None => Err(Error::Decode(format!(
                "message has no unclaimed channel #{idx}"
            ))),
        },
    )?;
    let conn = pending.conn.clone();
    Ok(Receiver::from_queue(conn.claim::<T>(pending)))
}

pub(crate) fn decode_fd(idx: u32) -> Result<OwnedFd> {
    decoding(|ctx| {
        ctx.fds
            .get_mut(idx as usize)
            .and_then(Option::take)
            .ok_or_else(|| Error::Decode(format!("message has no unclaimed fd #{idx}")))
    })
}
