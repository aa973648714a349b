//! Byte streams inside messages.
//!
//! A [`ByteStream`] is one end of a bidirectional pipe, built from two
//! channels of byte chunks, so it inherits their flow control and close
//! semantics and travels over any connection like any other pair of
//! channel handles.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio_util::sync::PollSemaphore;

use crate::chan::{channel, Receiver, Sender};

/// Largest chunk one write sends.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction of a local pipe.
const PIPE_CAPACITY: usize = 32;

/// One end of a byte pipe: `AsyncRead + AsyncWrite`, and serde so it can be
/// put in a message. `shutdown` (or drop) ends the other side's reads.
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut a, mut b) = libchan::pipe();
/// a.write_all(b"hello").await.unwrap();
/// a.shutdown().await.unwrap();
/// let mut s = String::new();
/// b.read_to_string(&mut s).await.unwrap();
/// assert_eq!(s, "hello");
/// # });
/// ```
pub struct ByteStream {
    tx: Option<Sender<ByteBuf>>,
    rx: Receiver<ByteBuf>,
    permits: Option<PollSemaphore>,
    pending: Option<(ByteBuf, usize)>,
}

/// Creates a connected pair of byte streams.
pub fn pipe() -> (ByteStream, ByteStream) {
    let (tx1, rx1) = channel::<ByteBuf>(PIPE_CAPACITY);
    let (tx2, rx2) = channel::<ByteBuf>(PIPE_CAPACITY);
    (ByteStream::new(tx1, rx2), ByteStream::new(tx2, rx1))
}

impl ByteStream {
    fn new(tx: Sender<ByteBuf>, rx: Receiver<ByteBuf>) -> Self {
        let sem: Arc<Semaphore> = tx.semaphore();
        ByteStream {
            tx: Some(tx),
            rx,
            permits: Some(PollSemaphore::new(sem)),
            pending: None,
        }
    }
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("write_open", &self.tx.is_some())
            .finish()
    }
}

impl AsyncRead for ByteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some((chunk, pos)) = &mut this.pending {
                let n = (chunk.len() - *pos).min(buf.remaining());
                buf.put_slice(&chunk[*pos..*pos + n]);
                *pos += n;
                if *pos == chunk.len() {
                    this.pending = None;
                }
                return Poll::Ready(Ok(()));
            }
            match ready!(this.rx.poll_recv(cx)) {
                Ok(Some(chunk)) => {
                    if !chunk.is_empty() {
                        this.pending = Some((chunk, 0));
                    }
                }
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl AsyncWrite for ByteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let (Some(tx), Some(permits)) = (&this.tx, &mut this.permits) else {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        };
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match ready!(permits.poll_acquire(cx)) {
            Some(p) => p.forget(),
            None => return Poll::Ready(Err(tx.closed_error().into())),
        }
        let n = data.len().min(CHUNK);
        tx.send_permitted(ByteBuf::from(&data[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Written chunks are already queued on the channel or connection.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.permits = None;
        this.tx = None;
        Poll::Ready(Ok(()))
    }
}

impl Serialize for ByteStream {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.tx, &self.rx).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ByteStream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (tx, rx) = <(Option<Sender<ByteBuf>>, Receiver<ByteBuf>)>::deserialize(d)?;
        let mut s = match tx {
            Some(tx) => ByteStream::new(tx, rx),
            None => ByteStream {
                tx: None,
                rx,
                permits: None,
                pending: None,
            },
        };
        s.pending = None;
        Ok(s)
    }
}
