//! HTTP/1 over unix or TCP, with a small pool of idle connections and
//! connection upgrades for attach and exec.

use std::io;
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use crate::dockerserver::ListenAddr;
use crate::types::BoxStream;
use crate::{Error, Result};

pub(crate) type ReqBody = UnsyncBoxBody<Bytes, io::Error>;

/// Idle connections kept for reuse.
const POOL_MAX: usize = 16;

pub(crate) struct Transport {
    addr: ListenAddr,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

pub(crate) fn full_body(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn stream_body(stream: BoxStream<Result<Bytes>>) -> ReqBody {
    let frames = stream.map(|r| {
        r.map(hyper::body::Frame::data)
            .map_err(|e| io::Error::other(e.message))
    });
    http_body_util::StreamBody::new(frames).boxed_unsync()
}

fn unavailable(addr: &ListenAddr, e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("docker endpoint {addr}: {e}"))
}

impl Transport {
    pub(crate) fn new(addr: ListenAddr) -> Transport {
        Transport {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    async fn connect(&self) -> Result<SendRequest<ReqBody>> {
        let io: Box<dyn crate::dockerserver::Conn> = match &self.addr {
            ListenAddr::Unix(p) => Box::new(
                UnixStream::connect(p)
                    .await
                    .map_err(|e| unavailable(&self.addr, e))?,
            ),
            ListenAddr::Tcp(a) => {
                let s = TcpStream::connect(a)
                    .await
                    .map_err(|e| unavailable(&self.addr, e))?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        };
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| unavailable(&self.addr, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "dockerclient connection ended with an error");
            }
        });
        Ok(sender)
    }

    async fn sender(&self) -> Result<SendRequest<ReqBody>> {
        loop {
            let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match pooled {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    fn give_back(&self, sender: SendRequest<ReqBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(sender);
        }
    }

    /// Sends a request; for `reusable` requests the connection goes back
    /// to the pool once the whole body has been read by [`Transport::bytes`].
    pub(crate) async fn send(
        &self,
        req: Request<ReqBody>,
        reusable: bool,
    ) -> Result<(Response<Incoming>, Option<SendRequest<ReqBody>>)> {
        let mut sender = if reusable {
            self.sender().await?
        } else {
            self.connect().await?
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(&self.addr, e))?;
        Ok((resp, reusable.then_some(sender)))
    }

    /// Reads a whole body, then returns the connection to the pool.
    pub(crate) async fn bytes(
        &self,
        resp: Response<Incoming>,
        sender: Option<SendRequest<ReqBody>>,
    ) -> Result<Bytes> {
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(&self.addr, e))?
            .to_bytes();
        if let Some(s) = sender {
            self.give_back(s);
        }
        Ok(body)
    }
}

/// A response body as a stream of byte chunks.
pub(crate) fn body_chunks(resp: Response<Incoming>) -> BoxStream<Result<Bytes>> {
    futures::stream::unfold(resp.into_body(), |mut body| async move {
        loop {
            match body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), body));
                    }
                }
                Err(e) => {
                    return Some((
                        Err(Error::unavailable(format!("reading response: {e}"))),
                        body,
                    ))
                }
            }
        }
    })
    .boxed()
}

/// Splits a byte stream into newline-delimited JSON values.
pub(crate) fn json_lines<T: serde::de::DeserializeOwned + Send + 'static>(
    chunks: BoxStream<Result<Bytes>>,
) -> BoxStream<Result<T>> {
    futures::stream::unfold(
        (chunks, Vec::<u8>::new(), false),
        |(mut chunks, mut buf, mut done)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if line.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    let item = serde_json::from_slice::<T>(&line)
                        .map_err(|e| Error::internal(format!("decoding stream item: {e}")));
                    return Some((item, (chunks, buf, done)));
                }
                if done {
                    if buf.iter().all(|b| b.is_ascii_whitespace()) {
                        return None;
                    }
                    let rest = std::mem::take(&mut buf);
                    let item = serde_json::from_slice::<T>(&rest)
                        .map_err(|e| Error::internal(format!("decoding stream item: {e}")));
                    return Some((item, (chunks, buf, done)));
                }
                match chunks.next().await {
                    Some(Ok(data)) => buf.extend_from_slice(&data),
                    Some(Err(e)) => return Some((Err(e), (chunks, buf, true))),
                    None => done = true,
                }
            }
        },
    )
    .boxed()
}
