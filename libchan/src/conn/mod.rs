//! A multiplexed connection: many channels over one byte stream.
//!
//! One reader task splits frames off the stream and hands each message to
//! its channel's queue without decoding it (so a slow receiver only holds
//! back its own channel, bounded by the credit it granted). One writer task
//! drains a shared outbound queue with vectored writes: senders encode on
//! their own task and only append bytes under a short lock.

mod direct;
mod dispatch;
pub(crate) mod endpoint;
mod io;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::chan::{Message, Queue, Receiver, Sender};
use crate::ctx::{self, EncodeCtx};
use crate::error::{Error, Result};
use crate::transport::{self, Chunk, ReadSide, Spares, Transport, UnixFd};
use crate::wire::{self, Hello, Kind};
pub use direct::BusyPollStats;
use direct::DirectRead;
pub(crate) use direct::MAX_DIRECT_READS;
use endpoint::{PendingRx, RawMsg, RemoteTx, WireReg, WireSink};

/// Payloads at least this large travel as their own chunk (no copy into
/// the shared outbound buffer).
const BIG_PAYLOAD: usize = 32 * 1024;
/// Largest encode buffer kept per thread for the next message; bigger
/// ones go to the connection's spares.
const MAX_SCRATCH: usize = transport::SPARE_MIN;
/// Queued outbound bytes above which `send` waits for the writer.
const HIGH_WATER: usize = 4 << 20;
/// Default [`Config::busy_poll`].
const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);
/// Longest [`Config::busy_poll`] accepted.
const MAX_BUSY_POLL: Duration = Duration::from_millis(1);
/// Read at least this much per read call.
const READ_CHUNK: usize = 64 * 1024;

/// Limits and windows of a connection. Limits are enforced on what the
/// peer sends; see PROTOCOL.md.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest frame body accepted (and sent). Default 64 MiB.
    pub max_frame_size: usize,
    /// Most channels open at once on this connection. Default 65 536.
    pub max_channels: usize,
    /// Credit window of channels this side creates, in messages. Default 128.
    pub window: u32,
    /// Largest window accepted in a peer's announcement. Default 4096.
    pub max_window: u32,
    /// How long a receiver waiting on an empty queue keeps retrying the
    /// socket's non-blocking read before it sleeps in the runtime (like
    /// Linux `SO_BUSY_POLL`). It spins only while the previous wait for
    /// bytes on the socket was no longer than this (an active request/reply
    /// exchange) and after small reads, only on unix and TCP sockets (not
    /// TLS or WebSocket streams). Each try yields the CPU and then the
    /// runtime, which runs its other ready tasks and I/O before the next
    /// try, so other tasks are not held up. Trades CPU for round-trip
    /// latency: a sleeping process's wake-up costs more than a round trip
    /// itself. Default 50 µs; zero turns it off.
    pub busy_poll: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 64 << 20,
            max_channels: 65_536,
            window: 128,
            max_window: 4096,
            busy_poll: DEFAULT_BUSY_POLL,
        }
    }
}

/// Which side of the connection this is. The client allocates even channel
/// ids, the server odd ones, so neither needs to ask the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Allocates even ids; its root receiver is channel 1.
    Client,
    /// Allocates odd ids; its root receiver is channel 0.
    Server,
}

/// Sets up a connection. Starting one needs no round trip: the HELLO is
/// queued and messages may follow at once.
///
/// ```no_run
/// # async fn demo() -> libchan::Result<()> {
/// let stream = tokio::net::TcpStream::connect("127.0.0.1:7000").await
///     .map_err(|e| libchan::Error::Io { context: "connect", message: e.to_string() })?;
/// let (conn, tx, mut rx) = libchan::Builder::new()
///     .window(256)
///     .client::<String, String>(libchan::Transport::tcp(stream))?;
/// tx.send("ping".into()).await?;
/// let reply = rx.recv().await?;
/// conn.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    cfg: Config,
}

impl Builder {
    /// A builder with [`Config::default`].
    pub fn new() -> Self {
        Builder::default()
    }

    /// Sets [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.cfg.max_frame_size = bytes.clamp(64, u32::MAX as usize);
        self
    }

    /// Sets [`Config::max_channels`].
    pub fn max_channels(mut self, n: usize) -> Self {
        self.cfg.max_channels = n.max(2);
        self
    }

    /// Sets [`Config::window`].
    pub fn window(mut self, messages: u32) -> Self {
        self.cfg.window = messages.max(1);
        self.cfg.max_window = self.cfg.max_window.max(self.cfg.window);
        self
    }

    /// Sets [`Config::busy_poll`] (capped at 1 ms; zero turns it off).
    ///
    /// ```no_run
    /// # async fn demo(t: libchan::Transport) -> libchan::Result<()> {
    /// // Many mostly idle peers on a shared machine: save the CPU.
    /// let (conn, _tx, _rx) = libchan::Builder::new()
    ///     .busy_poll(std::time::Duration::ZERO)
    ///     .server::<String, String>(t)?;
    /// assert_eq!(conn.busy_poll_stats().hits, 0);
    /// # Ok(()) }
    /// ```
    pub fn busy_poll(mut self, spin: Duration) -> Self {
        self.cfg.busy_poll = spin.min(MAX_BUSY_POLL);
        self
    }

    /// Sets [`Config::max_window`].
    pub fn max_window(mut self, messages: u32) -> Self {
        self.cfg.max_window = messages.max(1);
        self
    }

    /// Starts the client side: returns the connection handle, the root
    /// sender (to the server's root receiver) and the root receiver.
    /// Must be called inside a tokio runtime.
    pub fn client<Tx: Message, Rx: Message>(
        self,
        t: Transport,
    ) -> Result<(Connection, Sender<Tx>, Receiver<Rx>)> {
        self.start(t, Role::Client)
    }

    /// Starts the server side; see [`client`](Self::client).
    pub fn server<Tx: Message, Rx: Message>(
        self,
        t: Transport,
    ) -> Result<(Connection, Sender<Tx>, Receiver<Rx>)> {
        self.start(t, Role::Server)
    }

    /// Starts either side.
    pub fn start<Tx: Message, Rx: Message>(
        self,
        t: Transport,
        role: Role,
    ) -> Result<(Connection, Sender<Tx>, Receiver<Rx>)> {
        let handle = Handle::try_current().map_err(|_| Error::Io {
            context: "starting a libchan connection",
            message: "must be called inside a tokio runtime".into(),
        })?;
        let parity = match role {
            Role::Client => 0,
            Role::Server => 1,
        };
        let (tx_id, rx_id) = match role {
            Role::Client => (wire::ROOT_TO_SERVER, wire::ROOT_TO_CLIENT),
            Role::Server => (wire::ROOT_TO_CLIENT, wire::ROOT_TO_SERVER),
        };
        let t_fds = t.fds;
        let hello = wire::hello_frame(&Hello {
            version: wire::VERSION,
            fds: t.fds,
            close_reasons: true,
            max_frame_size: self.cfg.max_frame_size as u32,
        });
        let (read_side, writer, direct) = t
            .into_parts()
            .map_err(|e| Error::io("registering the transport", e))?;
        let read_task = match read_side {
            ReadSide::Raw(afd) => ReadTask::Direct(DirectRead::new(
                afd,
                self.cfg.max_frame_size,
                self.cfg.busy_poll,
            )),
            ReadSide::Stream(r) => ReadTask::Stream(r),
        };
        let shared = Arc::new(ConnShared {
            direct,
            direct_rx: match &read_task {
                ReadTask::Direct(d) => Arc::downgrade(d),
                ReadTask::Stream(_) => Weak::new(),
            },
            parity,
            next_id: AtomicU64::new(2 + parity),
            table: Mutex::new(Table {
                entries: HashMap::new(),
                peer_max: 1,
            }),
            out: Mutex::new(Outbound {
                chunks: VecDeque::from([Chunk::new(hello)]),
                bytes: 0,
                pushed: 1,
                shutdown: false,
                busy: false,
                direct_at: 0,
            }),
            msgs_in: AtomicU64::new(0),
            spares: Mutex::new(Vec::new()),
            last_big: AtomicBool::new(false),
            out_ready: Notify::new(),
            drained: Notify::new(),
            handle: handle.clone(),
            fds_ok: t_fds,
            failed: OnceLock::new(),
            closing: CancellationToken::new(),
            done: CancellationToken::new(),
            peer_max_frame: AtomicUsize::new(self.cfg.max_frame_size),
            peer_close_reasons: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            written: watch::channel(0).0,
            cfg: self.cfg,
        });
        let rtx = RemoteTx::new(shared.clone(), tx_id, wire::ROOT_WINDOW);
        let reg = WireReg::new(&shared, rx_id, wire::ROOT_WINDOW);
        let q = Queue::<Rx>::from_wire(reg.clone(), VecDeque::new(), true, None);
        {
            let mut table = shared.table();
            table.entries.insert(tx_id, Entry::Tx(Arc::downgrade(&rtx)));
            table.entries.insert(
                rx_id,
                Entry::Sink {
                    sink: q.clone(),
                    reg,
                },
            );
        }
        let reader_task = match read_task {
            ReadTask::Direct(d) => handle.spawn(direct::reader_loop(shared.clone(), d)),
            ReadTask::Stream(r) => handle.spawn(io::reader_loop(shared.clone(), r)),
        };
        let writer_task = handle.spawn(io::writer_loop(shared.clone(), writer));
        // Only the token: holding the connection here while waking
        // `close()` could make this task, not the closer, drop the last
        // reference and close the socket just after `close()` returned.
        let done = shared.done.clone();
        handle.spawn(async move {
            let _ = reader_task.await;
            let _ = writer_task.await;
            done.cancel();
        });
        Ok((
            Connection { shared },
            Sender::remote(rtx),
            Receiver::from_queue(q),
        ))
    }
}

/// What the reader task reads.
enum ReadTask {
    /// A socket, which receivers may also read directly.
    Direct(Arc<DirectRead>),
    Stream(transport::Reader),
}

/// Handle to a running connection: flush, close, wait for the end.
///
/// The connection also stays up while any channel on it is open; once this
/// handle and every channel are dropped it shuts down by itself.
pub struct Connection {
    shared: Arc<ConnShared>,
}

impl Connection {
    /// Waits until everything sent so far has been written to the transport.
    pub async fn flush(&self) -> Result<()> {
        let target = lock(&self.shared.out).pushed;
        let mut rx = self.shared.written.subscribe();
        loop {
            if *rx.borrow_and_update() >= target {
                return Ok(());
            }
            if let Some(e) = self.shared.failed.get() {
                return Err(e.clone());
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(self.error()) },
                _ = self.shared.done.cancelled() => {
                    if *rx.borrow() >= target { return Ok(()) }
                    return Err(self.error());
                }
            }
        }
    }

    /// Flushes, then shuts the connection down. Channels still open on it
    /// see [`Error::Disconnected`].
    pub async fn close(&self) {
        let _ = self.flush().await;
        self.shared.request_close();
        self.shared.done.cancelled().await;
    }

    /// Waits until the connection has ended, and says why.
    pub async fn closed(&self) -> Error {
        self.shared.done.cancelled().await;
        self.error()
    }

    /// The error that ended the connection, if it has ended.
    pub fn error(&self) -> Error {
        self.shared
            .failed
            .get()
            .cloned()
            .unwrap_or_else(|| Error::Disconnected("connection closed".into()))
    }

    /// True once the connection has failed or been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.failed.get().is_some()
    }

    /// Whether fds can be sent on this connection (unix sockets only).
    pub fn supports_fds(&self) -> bool {
        self.shared.fds_ok
    }

    /// Number of channels currently open on the connection.
    pub fn open_channels(&self) -> usize {
        self.shared.table().entries.len()
    }

    /// How often receivers caught bytes by busy polling
    /// ([`Config::busy_poll`]) and how often the spin ran out and they
    /// slept. Many misses and few hits mean the peer answers slower than
    /// the spin: a shorter `busy_poll` (or zero) saves CPU then.
    pub fn busy_poll_stats(&self) -> BusyPollStats {
        self.shared.busy_poll_stats()
    }
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Connection {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.maybe_autoclose();
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("fds", &self.shared.fds_ok)
            .field("closed", &self.is_closed())
            .finish()
    }
}

pub(crate) enum Control {
    Credit(u64, u32),
    Close(u64),
}

pub(crate) enum Entry {
    /// A local queue receives MSG on this id.
    Sink {
        sink: Arc<dyn WireSink>,
        reg: Arc<WireReg>,
    },
    /// We send MSG on this id; CREDIT and CLOSE come back.
    Tx(Weak<RemoteTx>),
    /// Announced to us as a receiver, not decoded yet.
    Pending(Pending),
}

pub(crate) struct Pending {
    reg: Arc<WireReg>,
    items: VecDeque<RawMsg>,
    open: bool,
    /// Why the peer closed it, if it failed.
    err: Option<Error>,
}

struct Table {
    entries: HashMap<u64, Entry>,
    /// Highest channel id the peer has announced.
    peer_max: u64,
}

struct Outbound {
    chunks: VecDeque<Chunk>,
    /// Bytes in `chunks` (not counting a batch the writer is writing).
    bytes: usize,
    /// Frames queued since the start.
    pushed: u64,
    shutdown: bool,
    /// The writer task holds a batch it took from `chunks`.
    busy: bool,
    /// `msgs_in` when a frame was last written directly.
    direct_at: u64,
}

pub(crate) struct ConnShared {
    /// The unix socket, for senders that write directly while the writer
    /// task is idle (saves a task wake-up per message).
    direct: Option<UnixFd>,
    /// The socket's read side, for receivers that read it directly (owned
    /// by the reader task, so the fd closes when that ends).
    direct_rx: Weak<DirectRead>,
    /// MSG frames received so far. A sender writes directly only if one
    /// arrived since its last direct write (request/reply traffic); a
    /// one-way stream goes through the writer, which batches many frames
    /// per sendmsg.
    pub(crate) msgs_in: AtomicU64,
    /// Written big payload buffers, reused to encode the next big message.
    spares: Mutex<Spares>,
    /// The last message sent had a big payload (so the next one likely
    /// too: encode it into a spare).
    last_big: AtomicBool,
    pub(crate) cfg: Config,
    parity: u64,
    next_id: AtomicU64,
    table: Mutex<Table>,
    out: Mutex<Outbound>,
    out_ready: Notify,
    /// Signalled when the writer takes a batch (room in the queue again).
    drained: Notify,
    pub(crate) handle: Handle,
    pub(crate) fds_ok: bool,
    failed: OnceLock<Error>,
    /// Asks both tasks to stop once the outbound queue is written.
    closing: CancellationToken,
    /// Both tasks have stopped.
    done: CancellationToken,
    peer_max_frame: AtomicUsize,
    /// The peer's HELLO said it accepts CLOSE frames with a reason.
    pub(crate) peer_close_reasons: AtomicBool,
    handles: AtomicUsize,
    written: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl ConnShared {
    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    pub(crate) fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(2, Ordering::Relaxed)
    }

    pub(crate) fn insert_entry(&self, id: u64, e: Entry) -> Result<()> {
        if let Some(err) = self.failed.get() {
            return Err(err.clone());
        }
        let mut t = self.table();
        if t.entries.len() >= self.cfg.max_channels {
            return Err(Error::TooManyChannels(self.cfg.max_channels));
        }
        t.entries.insert(id, e);
        Ok(())
    }

    /// Forgets a channel id; true if it was known.
    pub(crate) fn remove_entry(&self, id: u64) -> bool {
        let (removed, empty) = {
            let mut t = self.table();
            let removed = t.entries.remove(&id);
            (removed, t.entries.is_empty())
        };
        // Drop outside the lock: an entry may own things that lock again.
        let was = removed.is_some();
        drop(removed);
        if empty {
            self.maybe_autoclose();
        }
        was
    }

    fn maybe_autoclose(&self) {
        if self.handles.load(Ordering::Acquire) == 0 && self.table().entries.is_empty() {
            self.request_close();
        }
    }

    fn request_close(&self) {
        lock(&self.out).shutdown = true;
        self.out_ready.notify_one();
    }

    /// Whether a channel id was in use once (so late frames for it are
    /// dropped quietly rather than treated as a protocol violation).
    fn known_closed(&self, t: &Table, id: u64) -> bool {
        if id <= 1 {
            return true;
        }
        if id & 1 == self.parity {
            id < self.next_id.load(Ordering::Relaxed)
        } else {
            id <= t.peer_max
        }
    }

    /// Claims a pending receiver as a typed queue.
    pub(crate) fn claim<T: Message>(self: &Arc<Self>, mut p: PendingRx) -> Arc<Queue<T>> {
        p.claimed = true;
        let mut t = self.table();
        match t.entries.remove(&p.id) {
            Some(Entry::Pending(pending)) => {
                let q = Queue::<T>::from_wire(
                    pending.reg.clone(),
                    pending.items,
                    pending.open,
                    pending.err,
                );
                t.entries.insert(
                    p.id,
                    Entry::Sink {
                        sink: q.clone(),
                        reg: pending.reg,
                    },
                );
                q
            }
            other => {
                // The connection died (entries were cleared) in between.
                if let Some(e) = other {
                    t.entries.insert(p.id, e);
                }
                drop(t);
                let err = self
                    .failed
                    .get()
                    .cloned()
                    .unwrap_or(Error::Disconnected("connection closed".into()));
                Queue::<T>::from_wire(
                    WireReg::new(self, p.id, 1),
                    VecDeque::new(),
                    false,
                    Some(err),
                )
            }
        }
    }

    pub(crate) fn send_control(&self, c: Control) {
        if self.failed.get().is_some() {
            return;
        }
        let mut frame = [0u8; wire::HEADER_LEN + 4];
        let len = match c {
            Control::Credit(id, n) => {
                frame[..wire::HEADER_LEN].copy_from_slice(&wire::header(Kind::Credit, 0, 0, id, 4));
                frame[wire::HEADER_LEN..].copy_from_slice(&n.to_le_bytes());
                wire::HEADER_LEN + 4
            }
            Control::Close(id) => {
                frame[..wire::HEADER_LEN].copy_from_slice(&wire::header(Kind::Close, 0, 0, id, 0));
                wire::HEADER_LEN
            }
        };
        self.push_bytes(&frame[..len], Vec::new());
    }

    /// CLOSE for channel `id`, saying why this side failed if the peer
    /// accepts reasons (a plain CLOSE otherwise).
    pub(crate) fn send_close(&self, id: u64, reason: Option<&str>) {
        let reason = match reason {
            Some(r) if self.peer_close_reasons.load(Ordering::Acquire) => r,
            _ => return self.send_control(Control::Close(id)),
        };
        if self.failed.get().is_some() {
            return;
        }
        let mut end = reason.len().min(wire::MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let body = &reason.as_bytes()[..end];
        let mut frame = Vec::with_capacity(wire::HEADER_LEN + body.len());
        wire::put_header(&mut frame, Kind::Close, 0, 0, id, body.len() as u32);
        frame.extend_from_slice(body);
        self.push_bytes(&frame, Vec::new());
    }

    fn push_bytes(&self, bytes: &[u8], fds: Vec<OwnedFd>) {
        let mut out = lock(&self.out);
        // Control frames (CREDIT, CLOSE) go out at once when the writer is
        // idle: a sender waiting for credit should not wait for this
        // side's writer task to be scheduled too.
        let n = if fds.is_empty() {
            self.try_direct(&mut out, &[bytes], true)
        } else {
            0
        };
        if n == bytes.len() {
            return;
        }
        if n > 0 {
            let mut c = sealed_chunk(bytes.to_vec());
            c.off = n;
            out.chunks.push_back(c);
            out.bytes += bytes.len() - n;
            out.pushed += 1;
            drop(out);
            self.out_ready.notify_one();
            return;
        }
        let was_empty = out.chunks.is_empty();
        tail_chunk(&mut out.chunks, fds.len()).append(bytes, fds);
        out.bytes += bytes.len();
        out.pushed += 1;
        drop(out);
        if was_empty {
            self.out_ready.notify_one();
        }
    }

    /// Waits while more than [`HIGH_WATER`] bytes wait for the writer, so a
    /// fast sender of big messages cannot queue unbounded memory (credit
    /// bounds messages, this bounds bytes) and yields to the writer.
    pub(crate) async fn backpressure(&self) {
        let below = || {
            let out = lock(&self.out);
            out.bytes < HIGH_WATER || out.shutdown
        };
        loop {
            // The common case first, without setting up a wait.
            if below() {
                return;
            }
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if below() {
                return;
            }
            drained.await;
        }
    }

    /// Encodes `value` as a MSG on channel `id` and queues it.
    pub(crate) fn send_msg<T: Serialize>(self: &Arc<Self>, id: u64, value: &T) -> Result<()> {
        if let Some(e) = self.failed.get() {
            return Err(e.clone());
        }
        debug_assert!(!ctx::encoding_active());
        let mut scratch = SCRATCH.with(|s| s.take());
        if self.last_big.load(Ordering::Relaxed) {
            if let Some(v) = lock(&self.spares).pop() {
                self.recycle(std::mem::replace(&mut scratch, v));
            }
        }
        let (res, ectx) = ctx::with_encode(EncodeCtx::new(self.clone()), || {
            let mut v = scratch;
            v.clear();
            postcard::to_extend(value, v)
        });
        let payload = match res {
            Ok(p) => p,
            Err(e) => {
                let err = ectx
                    .error
                    .clone()
                    .unwrap_or_else(|| Error::Encode(e.to_string()));
                ectx.finish(false);
                return Err(err);
            }
        };
        self.last_big
            .store(payload.len() >= BIG_PAYLOAD, Ordering::Relaxed);
        let body = payload.len() + ectx.anns.len() * wire::ANN_LEN;
        let max = self
            .cfg
            .max_frame_size
            .min(self.peer_max_frame.load(Ordering::Relaxed));
        if body > max || ectx.anns.len() > u16::MAX as usize {
            ectx.finish(false);
            return Err(Error::TooLarge { size: body, max });
        }
        let header = wire::header(
            Kind::Msg,
            ectx.fds.len() as u8,
            ectx.anns.len() as u16,
            id,
            body as u32,
        );
        let payload_len = payload.len();
        let mut anns = Vec::new();
        for a in &ectx.anns {
            wire::put_announcement(&mut anns, a);
        }
        let mut ectx = ectx;
        let fds = std::mem::take(&mut ectx.fds);
        let mut out = lock(&self.out);
        if out.shutdown {
            drop(out);
            ectx.finish(false);
            return Err(self
                .failed
                .get()
                .cloned()
                .unwrap_or(Error::Disconnected("connection closing".into())));
        }
        let was_empty = out.chunks.is_empty();
        let total = header.len() + payload.len() + anns.len();
        // Messages with fds go through the writer, which batches the fds of
        // many messages into one sendmsg (one each costs ~5x more).
        let n = if fds.is_empty() {
            self.try_direct(&mut out, &[&header, &payload, &anns], false)
        } else {
            0
        };
        if n > 0 {
            // Written, or partly: queue the rest.
            if n < total {
                for (part, start) in [
                    (header.to_vec(), 0),
                    (payload, header.len()),
                    (anns, header.len() + payload_len),
                ] {
                    let end = start + part.len();
                    if end > n && !part.is_empty() {
                        let mut c = sealed_chunk(part);
                        c.off = n.saturating_sub(start);
                        out.chunks.push_back(c);
                    }
                }
                out.bytes += total - n;
                out.pushed += 1;
                drop(out);
                self.out_ready.notify_one();
            } else {
                drop(out);
                self.recycle(payload);
            }
            ectx.finish(true);
            return Ok(());
        }
        out.bytes += total;
        let tail = tail_chunk(&mut out.chunks, fds.len());
        tail.append(&header, fds);
        let give_back = if payload.len() >= BIG_PAYLOAD {
            tail.sealed = true;
            let mut big = Chunk::new(payload);
            big.sealed = true;
            out.chunks.push_back(big);
            if !anns.is_empty() {
                out.chunks.push_back(Chunk::new(anns));
            }
            None
        } else {
            tail.append(&payload, Vec::new());
            tail.append(&anns, Vec::new());
            Some(payload)
        };
        out.pushed += 1;
        drop(out);
        if was_empty {
            self.out_ready.notify_one();
        }
        ectx.finish(true);
        if let Some(p) = give_back {
            self.recycle(p);
        }
        Ok(())
    }

    /// Keeps an encode buffer for the next message: a small one for this
    /// thread, a big one as a spare of the connection.
    fn recycle(&self, v: Vec<u8>) {
        if v.capacity() <= MAX_SCRATCH {
            SCRATCH.with(|s| s.set(v));
        } else {
            self.give_spares(&mut vec![v]);
        }
    }

    /// Keeps up to [`transport::MAX_SPARES`] of `bufs` (emptied) as spares.
    pub(crate) fn give_spares(&self, bufs: &mut Spares) {
        let mut spares = lock(&self.spares);
        for mut v in bufs.drain(..) {
            if spares.len() >= transport::MAX_SPARES {
                break;
            }
            v.clear();
            spares.push(v);
        }
    }

    /// Writes a frame straight to the socket when nothing is queued, the
    /// writer task is idle and (unless `always`) a message came in since
    /// the last direct write (order is kept: `out` stays locked). Returns
    /// the bytes written; 0 means queue it as usual (the socket is full, or
    /// failed and the writer will report it). Counts a frame as pushed when
    /// it was written whole.
    fn try_direct(&self, out: &mut Outbound, parts: &[&[u8]], always: bool) -> usize {
        let Some(sock) = &self.direct else { return 0 };
        if out.busy || out.shutdown || !out.chunks.is_empty() {
            return 0;
        }
        if !always {
            let seen = self.msgs_in.load(Ordering::Relaxed);
            if seen == out.direct_at {
                return 0;
            }
            out.direct_at = seen;
        }
        match transport::send_parts(sock.as_raw_fd(), parts, &[]) {
            Ok(n) => {
                let total: usize = parts.iter().map(|p| p.len()).sum();
                if n == total {
                    out.pushed += 1;
                    self.mark_written(out.pushed);
                }
                n
            }
            Err(_) => 0,
        }
    }

    /// Records that the first `upto` frames are written. Wakes `flush`
    /// callers only if there are any: a watch notification takes several
    /// locks, a real cost per message on the direct-write path.
    pub(crate) fn mark_written(&self, upto: u64) {
        self.written.send_if_modified(|v| {
            *v = upto;
            // A flush that subscribed before this runs is counted here; one
            // that subscribes later reads the new value (this holds the
            // value's write lock).
            self.written.receiver_count() > 0
        });
    }

    /// Tears the connection down: every channel on it learns `err`.
    fn fail(&self, err: Error) {
        if self.failed.set(err.clone()).is_err() {
            return;
        }
        tracing::debug!(error = %err, "libchan connection ended");
        let entries: Vec<Entry> = self.table().entries.drain().map(|(_, e)| e).collect();
        for e in entries {
            match e {
                Entry::Sink { sink, reg } => sink.sender_failed(&reg, err.clone()),
                Entry::Tx(w) => {
                    if let Some(tx) = w.upgrade() {
                        tx.mark_closed(err.clone());
                    }
                }
                Entry::Pending(p) => drop(p),
            }
        }
        self.request_close();
        self.closing.cancel();
    }
}

/// The chunk new bytes go into: the last one, unless it is sealed (a big
/// payload) or would exceed the per-sendmsg fd limit.
fn tail_chunk(chunks: &mut VecDeque<Chunk>, nfds: usize) -> &mut Chunk {
    let reuse = match chunks.back() {
        Some(c) => !c.sealed && (nfds == 0 || c.fds.len() + nfds <= wire::MAX_FDS_PER_FRAME),
        None => false,
    };
    if !reuse {
        chunks.push_back(Chunk::new(Vec::with_capacity(4096)));
    }
    match chunks.back_mut() {
        Some(c) => c,
        None => unreachable_chunk(),
    }
}

/// A chunk nothing more is appended to.
fn sealed_chunk(data: Vec<u8>) -> Chunk {
    let mut c = Chunk::new(data);
    c.sealed = true;
    c
}

#[cold]
fn unreachable_chunk() -> ! {
    // A chunk was pushed just above.
    std::process::abort()
}
