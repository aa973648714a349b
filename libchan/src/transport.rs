//! Byte transports a connection runs over.
//!
//! Unix stream sockets get their own reader and writer built on
//! `recvmsg`/`sendmsg` so that fds can travel with SCM_RIGHTS; everything
//! else goes through tokio's `AsyncRead`/`AsyncWrite`, and websockets through
//! binary messages.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use crate::wire::MAX_FDS_PER_FRAME;

/// A byte stream to run a connection over. Build one with the constructor
/// for your transport and pass it to [`Builder`](crate::Builder).
pub struct Transport {
    io: TransportIo,
    pub(crate) fds: bool,
}

enum TransportIo {
    /// A socket read and written with `recvmsg`/`sendmsg` on its fd,
    /// registered with the reactor as an `AsyncFd` when the connection
    /// starts (inside its runtime).
    Raw(RawSocket),
    Split(Reader, Writer),
}

enum RawSocket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// The write side of a socket (a dup of the read side's fd), shared by
/// the writer task and senders that write directly when the writer is idle.
pub(crate) type UnixFd = Arc<OwnedFd>;

/// How a connection reads: straight from a socket (whoever waits for a
/// message may read it, see `conn::direct`), or through a stream reader.
pub(crate) enum ReadSide {
    Raw(AsyncFd<OwnedFd>),
    Stream(Reader),
}

/// The writer of a unix socket. It registers for write readiness only
/// while it waits for room: a standing EPOLLOUT registration would wake the
/// process every time the peer reads.
pub(crate) struct UnixWriter {
    fd: UnixFd,
    reg: Option<AsyncFd<UnixFd>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("fds", &self.fds).finish()
    }
}

impl Transport {
    /// A unix stream socket; can carry fds.
    pub fn unix(stream: UnixStream) -> Self {
        Transport {
            io: TransportIo::Raw(RawSocket::Unix(stream)),
            fds: true,
        }
    }

    /// The reader and writer halves, plus the socket when there is one
    /// (senders may write to it directly).
    pub(crate) fn into_parts(self) -> io::Result<(ReadSide, Writer, Option<UnixFd>)> {
        match self.io {
            TransportIo::Raw(sock) => {
                let fd = match sock {
                    RawSocket::Unix(s) => OwnedFd::from(s.into_std()?),
                    RawSocket::Tcp(s) => OwnedFd::from(s.into_std()?),
                };
                // A second fd for the same socket, so that the writer can
                // register for EPOLLOUT on its own, only when it must wait.
                let wfd: UnixFd = Arc::new(fd.try_clone()?);
                // SAFETY: `fd` is an open socket owned by the AsyncFd from
                // here on; nothing else closes or replaces it.
                let r = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
                let w = UnixWriter {
                    fd: wfd.clone(),
                    reg: None,
                };
                Ok((ReadSide::Raw(r), Writer::Unix(w), Some(wfd)))
            }
            TransportIo::Split(r, w) => Ok((ReadSide::Stream(r), w, None)),
        }
    }

    /// A TCP connection (Nagle is switched off: frames are already batched).
    /// Read and written like a unix socket, minus the fds.
    pub fn tcp(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Transport {
            io: TransportIo::Raw(RawSocket::Tcp(stream)),
            fds: false,
        }
    }

    /// Any other byte stream: a TLS stream (see [`crate::tls`]), a
    /// `tokio::io::duplex`, a child's stdio …
    pub fn io<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Self {
        let (r, w) = tokio::io::split(stream);
        Transport {
            io: TransportIo::Split(Reader::Io(Box::new(r)), Writer::Io(Box::new(w))),
            fds: false,
        }
    }

    /// A websocket, after its handshake (see [`crate::ws`]). Frames travel
    /// in binary messages; mind tungstenite's message size limits when
    /// raising `max_frame_size`.
    pub fn websocket<S>(ws: WebSocketStream<S>) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (w, r) = ws.split();
        Transport {
            io: TransportIo::Split(Reader::Ws(Box::pin(r)), Writer::Ws(Box::pin(w))),
            fds: false,
        }
    }
}

type WsRead = Pin<Box<dyn Stream<Item = Result<WsMessage, WsError>> + Send>>;
type WsWrite = Pin<Box<dyn Sink<WsMessage, Error = WsError> + Send>>;

pub(crate) enum Reader {
    Io(Box<dyn AsyncRead + Send + Unpin>),
    Ws(WsRead),
}

pub(crate) enum Writer {
    Unix(UnixWriter),
    Io(Box<dyn AsyncWrite + Send + Unpin>),
    Ws(WsWrite),
}

/// A run of outbound bytes; its fds go with its first byte.
pub(crate) struct Chunk {
    pub(crate) data: Vec<u8>,
    pub(crate) off: usize,
    pub(crate) fds: Vec<OwnedFd>,
    /// No more bytes may be appended (a big payload moved in whole).
    pub(crate) sealed: bool,
}

impl Chunk {
    pub(crate) fn new(data: Vec<u8>) -> Self {
        Chunk {
            data,
            off: 0,
            fds: Vec::new(),
            sealed: false,
        }
    }

    pub(crate) fn append(&mut self, bytes: &[u8], fds: Vec<OwnedFd>) {
        self.data.extend_from_slice(bytes);
        self.fds.extend(fds);
    }
}

/// Buffers of written big payloads, handed back for the next big message
/// (a fresh multi-megabyte buffer costs a page fault per 4 KiB).
pub(crate) type Spares = Vec<Vec<u8>>;

/// Most spare buffers kept: one being written while the next is encoded.
pub(crate) const MAX_SPARES: usize = 2;
/// Smaller buffers are not worth keeping as spares.
pub(crate) const SPARE_MIN: usize = 64 * 1024;

/// Marks `n` written bytes off the front of `chunks`.
fn advance(chunks: &mut VecDeque<Chunk>, mut n: usize, spares: &mut Spares) {
    while n > 0 {
        let Some(c) = chunks.front_mut() else { return };
        // Whatever fds this chunk had went out with its first byte.
        c.fds.clear();
        let left = c.data.len() - c.off;
        if n >= left {
            n -= left;
            if let Some(c) = chunks.pop_front() {
                if c.sealed && c.data.capacity() >= SPARE_MIN && spares.len() < MAX_SPARES {
                    spares.push(c.data);
                }
            }
        } else {
            c.off += n;
            n = 0;
        }
    }
    while chunks
        .front()
        .is_some_and(|c| c.off == c.data.len() && c.fds.is_empty())
    {
        chunks.pop_front();
    }
}

const MAX_IOV: usize = 64;

impl Reader {
    /// Reads into the spare capacity of `buf`. Returns 0 at end of stream.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Reader::Io(r) => r.read_buf(buf).await,
            Reader::Ws(r) => loop {
                match r.next().await {
                    None => return Ok(0),
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    Some(Ok(WsMessage::Binary(b))) => {
                        if b.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&b);
                        return Ok(b.len());
                    }
                    Some(Ok(WsMessage::Close(_))) => return Ok(0),
                    Some(Ok(WsMessage::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "text websocket message",
                        ))
                    }
                    Some(Ok(_)) => continue,
                }
            },
        }
    }
}

impl Writer {
    /// Writes every chunk (and its fds) in order.
    /// Sealed chunks' buffers go to `spares` once written.
    pub(crate) async fn write_chunks(
        &mut self,
        chunks: &mut VecDeque<Chunk>,
        spares: &mut Spares,
    ) -> io::Result<()> {
        match self {
            Writer::Unix(w) => {
                while !chunks.is_empty() {
                    match send_with_fds(w.fd.as_raw_fd(), chunks) {
                        Ok(n) => advance(chunks, n, spares),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            // Full: wait for room (try_io clears stale
                            // readiness on EAGAIN so this does not spin).
                            let reg = w.registration()?;
                            loop {
                                let mut guard = reg.writable().await?;
                                match guard.try_io(|fd| send_with_fds(fd.as_raw_fd(), chunks)) {
                                    Ok(Ok(n)) => {
                                        advance(chunks, n, spares);
                                        break;
                                    }
                                    Ok(Err(e)) => return Err(e),
                                    Err(_would_block) => continue,
                                }
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Writer::Io(w) => {
                while !chunks.is_empty() {
                    let n = {
                        let slices: Vec<IoSlice<'_>> = chunks
                            .iter()
                            .take(MAX_IOV)
                            .map(|c| IoSlice::new(&c.data[c.off..]))
                            .collect();
                        w.write_vectored(&slices).await?
                    };
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    advance(chunks, n, spares);
                }
                w.flush().await
            }
            Writer::Ws(w) => {
                for c in chunks.drain(..) {
                    let mut data = c.data;
                    data.drain(..c.off);
                    w.feed(WsMessage::Binary(data.into()))
                        .await
                        .map_err(io::Error::other)?;
                }
                w.flush().await.map_err(io::Error::other)
            }
        }
    }

    /// Called when the outbound queue is empty: stop watching for room.
    pub(crate) fn idle(&mut self) {
        if let Writer::Unix(w) = self {
            // Dropping the AsyncFd deregisters it; the fd stays open.
            w.reg = None;
        }
    }

    /// Ends the write direction (the peer reads end of stream).
    pub(crate) async fn shutdown(&mut self) {
        match self {
            Writer::Unix(w) => {
                w.reg = None;
                let _ =
                    nix::sys::socket::shutdown(w.fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
            }
            Writer::Io(w) => {
                let _ = w.shutdown().await;
            }
            Writer::Ws(w) => {
                let _ = w.close().await;
            }
        }
    }
}

impl UnixWriter {
    /// The write-readiness registration, made on first need.
    fn registration(&mut self) -> io::Result<&AsyncFd<UnixFd>> {
        if self.reg.is_none() {
            // SAFETY: the AsyncFd holds an Arc of the fd, so it stays open
            // and the same for the registration's lifetime.
            let r =
                unsafe { AsyncFd::register_with_interest(self.fd.clone(), Interest::WRITABLE) }?;
            self.reg = Some(r);
        }
        self.reg
            .as_ref()
            .ok_or_else(|| io::Error::other("write registration missing"))
    }
}

fn cmsg_space(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((nfds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// One `sendmsg`: the first chunk with its fds, and the chunks after it up to
/// the next one that has fds of its own.
fn send_with_fds(fd: RawFd, chunks: &VecDeque<Chunk>) -> io::Result<usize> {
    let mut parts: [&[u8]; MAX_IOV] = [&[]; MAX_IOV];
    let mut n = 0;
    for (i, c) in chunks.iter().enumerate() {
        if n == MAX_IOV || (i > 0 && !c.fds.is_empty()) {
            break;
        }
        parts[n] = &c.data[c.off..];
        n += 1;
    }
    let fds = chunks.front().map(|c| c.fds.as_slice()).unwrap_or_default();
    send_parts(fd, &parts[..n], fds)
}

/// One non-blocking `sendmsg` of `parts` (at most [`MAX_IOV`]) with `fds`
/// attached to the first byte. The fds stay owned by the caller (the kernel
/// duplicates them into the message).
pub(crate) fn send_parts(fd: RawFd, parts: &[&[u8]], fds: &[OwnedFd]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV];
    let parts = &parts[..parts.len().min(MAX_IOV)];
    for (v, p) in iov.iter_mut().zip(parts) {
        v.iov_base = p.as_ptr() as *mut libc::c_void;
        v.iov_len = p.len();
    }
    let fds: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = if fds.is_empty() {
        Vec::new()
    } else {
        vec![0u64; cmsg_space(fds.len()).div_ceil(8)]
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = parts.len() as _;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        // SAFETY: msg_control points at a buffer of CMSG_SPACE(fds) bytes,
        // so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len =
                libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg) as *mut RawFd,
                fds.len(),
            );
        }
    }
    // SAFETY: every pointer in msg refers to live buffers borrowed above.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One `recvmsg` into the spare capacity of `buf`.
pub(crate) fn recv_with_fds(
    fd: RawFd,
    buf: &mut BytesMut,
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr() as *mut libc::c_void,
        iov_len: spare.len(),
    };
    // u64 storage keeps the control buffer aligned for cmsghdr; 1280 bytes
    // hold CMSG_SPACE(MAX_FDS_PER_FRAME fds) with room to spare.
    let mut control = [0u64; 160];
    let space = cmsg_space(MAX_FDS_PER_FRAME).min(std::mem::size_of_val(&control));
    // SAFETY: plain data, zeroed is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: iov points at buf's spare capacity and control at our buffer;
    // the kernel writes at most their lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages the kernel just wrote, within
    // msg_controllen; fd values are read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    // The kernel installed this fd for us; we own it now.
                    fds.push_back(OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        // The kernel wrote n bytes into the spare capacity.
        buf.set_len(buf.len() + n as usize);
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "peer sent more fds than one frame may carry (control data truncated)",
        ));
    }
    Ok(n as usize)
}
