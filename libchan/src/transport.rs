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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use crate::wire::MAX_FDS_PER_FRAME;

/// A byte stream to run a connection over. Build one with the constructor
/// for your transport and pass it to [`Builder`](crate::Builder).
pub struct Transport {
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    pub(crate) fds: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("fds", &self.fds).finish()
    }
}

impl Transport {
    /// A unix stream socket; can carry fds.
    pub fn unix(stream: UnixStream) -> Self {
        let s = Arc::new(stream);
        Transport {
            reader: Reader::Unix(s.clone()),
            writer: Writer::Unix(s),
            fds: true,
        }
    }

    /// A TCP connection (Nagle is switched off: frames are already batched).
    pub fn tcp(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Transport {
            reader: Reader::Io(Box::new(r)),
            writer: Writer::Io(Box::new(w)),
            fds: false,
        }
    }

    /// Any other byte stream: a TLS stream (see [`crate::tls`]), a
    /// `tokio::io::duplex`, a child's stdio …
    pub fn io<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Self {
        let (r, w) = tokio::io::split(stream);
        Transport {
            reader: Reader::Io(Box::new(r)),
            writer: Writer::Io(Box::new(w)),
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
            reader: Reader::Ws(Box::pin(r)),
            writer: Writer::Ws(Box::pin(w)),
            fds: false,
        }
    }
}

type WsRead = Pin<Box<dyn Stream<Item = Result<WsMessage, WsError>> + Send>>;
type WsWrite = Pin<Box<dyn Sink<WsMessage, Error = WsError> + Send>>;

pub(crate) enum Reader {
    Unix(Arc<UnixStream>),
    Io(Box<dyn AsyncRead + Send + Unpin>),
    Ws(WsRead),
}

pub(crate) enum Writer {
    Unix(Arc<UnixStream>),
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

/// Marks `n` written bytes off the front of `chunks`.
fn advance(chunks: &mut VecDeque<Chunk>, mut n: usize) {
    while n > 0 {
        let Some(c) = chunks.front_mut() else { return };
        // Whatever fds this chunk had went out with its first byte.
        c.fds.clear();
        let left = c.data.len() - c.off;
        if n >= left {
            n -= left;
            chunks.pop_front();
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
    /// Reads into the spare capacity of `buf`; fds that arrive are queued
    /// in order. Returns 0 at end of stream.
    pub(crate) async fn read(
        &mut self,
        buf: &mut BytesMut,
        fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<usize> {
        match self {
            Reader::Unix(s) => loop {
                s.readable().await?;
                match s.try_io(Interest::READABLE, || {
                    recv_with_fds(s.as_raw_fd(), buf, fds)
                }) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            },
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
    pub(crate) async fn write_chunks(&mut self, chunks: &mut VecDeque<Chunk>) -> io::Result<()> {
        match self {
            Writer::Unix(s) => {
                while !chunks.is_empty() {
                    s.writable().await?;
                    match s.try_io(Interest::WRITABLE, || send_with_fds(s.as_raw_fd(), chunks)) {
                        Ok(n) => advance(chunks, n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
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
                    advance(chunks, n);
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

    /// Ends the write direction (the peer reads end of stream).
    pub(crate) async fn shutdown(&mut self) {
        match self {
            Writer::Unix(s) => {
                let _ =
                    nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Write);
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

fn cmsg_space(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((nfds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// One `sendmsg`: the first chunk with its fds, and the chunks after it up to
/// the next one that has fds of its own.
fn send_with_fds(fd: RawFd, chunks: &VecDeque<Chunk>) -> io::Result<usize> {
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(MAX_IOV);
    for (i, c) in chunks.iter().enumerate() {
        if iov.len() == MAX_IOV || (i > 0 && !c.fds.is_empty()) {
            break;
        }
        iov.push(libc::iovec {
            iov_base: c.data[c.off..].as_ptr() as *mut libc::c_void,
            iov_len: c.data.len() - c.off,
        });
    }
    let fds: Vec<RawFd> = chunks
        .front()
        .map(|c| c.fds.iter().map(|f| f.as_raw_fd()).collect())
        .unwrap_or_default();
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; cmsg_space(fds.len()).div_ceil(8)];
    // SAFETY: msghdr is plain data; zeroed is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
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
fn recv_with_fds(fd: RawFd, buf: &mut BytesMut, fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr() as *mut libc::c_void,
        iov_len: spare.len(),
    };
    let space = cmsg_space(MAX_FDS_PER_FRAME);
    let mut control = vec![0u64; space.div_ceil(8)];
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
