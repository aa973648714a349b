//! The writer task of a connection, and the reader task of stream
//! transports (sockets are read in `direct`).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::BytesMut;

use super::{lock, ConnShared, READ_CHUNK};
use crate::error::{Error, Result};
use crate::transport::{Reader, Writer};
use crate::wire::{self, FrameDecoder, Kind};

pub(super) async fn reader_loop(shared: Arc<ConnShared>, mut reader: Reader) {
    let dec = FrameDecoder::new(shared.cfg.max_frame_size);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // Stream transports carry no fds.
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    let mut got_hello = false;
    let res: Result<()> = async {
        loop {
            while let Some(frame) = dec.decode(&mut buf)? {
                shared.dispatch(frame, &mut fds, &mut got_hello)?;
            }
            let missing = dec.missing(&buf);
            buf.reserve(missing.max(READ_CHUNK));
            let n = tokio::select! {
                r = reader.read(&mut buf) => r.map_err(|e| Error::Disconnected(format!("read failed: {e}")))?,
                _ = shared.closing.cancelled() => return Ok(()),
            };
            if n == 0 {
                if buf.is_empty() {
                    return Err(Error::Disconnected("peer closed the connection".into()));
                }
                return Err(Error::Protocol(format!(
                    "connection closed in the middle of a frame ({} bytes of it received)",
                    buf.len()
                )));
            }
        }
    }
    .await;
    match res {
        Ok(()) => shared.fail(Error::Disconnected("connection closed".into())),
        Err(e) => {
            if let Error::Protocol(reason) = &e {
                tracing::warn!(%reason, "libchan peer broke the protocol");
                let mut frame = Vec::new();
                let reason = reason.as_bytes();
                let reason = &reason[..reason.len().min(1024)];
                wire::put_header(&mut frame, Kind::Error, 0, 0, 0, reason.len() as u32);
                frame.extend_from_slice(reason);
                shared.push_bytes(&frame, Vec::new());
            }
            shared.fail(e);
        }
    }
}

pub(super) async fn writer_loop(shared: Arc<ConnShared>, mut writer: Writer) {
    let mut spares = Vec::new();
    loop {
        let (mut batch, upto, shutdown) = {
            let mut out = lock(&shared.out);
            out.bytes = 0;
            out.busy = !out.chunks.is_empty();
            (std::mem::take(&mut out.chunks), out.pushed, out.shutdown)
        };
        shared.drained.notify_waiters();
        if batch.is_empty() {
            if shutdown {
                break;
            }
            writer.idle();
            shared.out_ready.notified().await;
            continue;
        }
        let res = writer.write_chunks(&mut batch, &mut spares).await;
        if !spares.is_empty() {
            shared.give_spares(&mut spares);
        }
        if let Err(e) = res {
            shared.fail(Error::Disconnected(format!("write failed: {e}")));
            break;
        }
        shared.mark_written(upto);
    }
    writer.shutdown().await;
    shared.closing.cancel();
    if shared.failed.get().is_none() {
        // Closed by us; the reader stops on `closing`.
        let _ = shared
            .failed
            .set(Error::Disconnected("connection closed".into()));
        shared.fail(Error::Disconnected("connection closed".into()));
    }
}
