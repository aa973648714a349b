//! Hijacked attach/exec sessions and streaming bodies.

use std::io;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stdcopy;
use crate::types::{AttachSession, BoxStream};

pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

pub(crate) fn stream_body(stream: BoxStream<Bytes>) -> Body {
    StreamBody::new(stream.map(|b| Ok::<_, io::Error>(Frame::data(b)))).boxed_unsync()
}

pub(crate) fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Output of a session as a (framed) byte stream; errors end it.
pub(crate) fn framed(
    output: BoxStream<crate::Result<crate::OutputChunk>>,
    tty: bool,
) -> BoxStream<Bytes> {
    output
        .take_while(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "output stream ended with an error");
            }
            std::future::ready(r.is_ok())
        })
        .filter_map(move |r| std::future::ready(r.ok().map(|c| stdcopy::encode(&c, tty))))
        .boxed()
}

/// Answers 101 and runs the session over the upgraded connection; without
/// an upgrade request, streams the output as an ordinary body (no stdin).
pub(crate) fn respond(on_upgrade: Option<OnUpgrade>, session: AttachSession) -> Response<Body> {
    let tty = session.tty;
    let Some(on_upgrade) = on_upgrade else {
        let mut resp = Response::new(stream_body(framed(session.output, tty)));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type(tty)));
        return resp;
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), session).await,
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    let mut resp = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(tty)));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

async fn run<IO>(io: IO, session: AttachSession)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let tty = session.tty;
    // stdin: copy until the client half-closes (EOF), then drop the sender:
    // that ends the process's stdin, not the session.
    let stdin_task = session.stdin.map(|tx| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    });
    let mut output = session.output;
    while let Some(chunk) = output.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "attach output failed");
                break;
            }
        };
        let frame = stdcopy::encode(&chunk, tty);
        if wr.write_all(&frame).await.is_err() || wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
}
