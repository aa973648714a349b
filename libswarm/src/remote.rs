//! `remote`: a [`Backend`] over a libchan connection — how a manager talks
//! to node agents.
//!
//! [`serve`] (or [`serve_tls`]) exposes a backend on a unix socket or TCP
//! (optionally TLS); [`RemoteClient`] connects to one and is itself a
//! `Backend`. Every call is one libchan message carrying its arguments as
//! JSON (the Docker models skip empty fields, which only a self-describing
//! encoding tolerates) and a reply channel; streams (events, logs, stats,
//! attach and exec output, the exit of a wait) come back on a channel sent
//! with the call, and stdin or tarball uploads go out on another. A dead
//! connection gives `Unavailable`; the client reconnects on the next call.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libswarm::{Backend, dockerserver::ListenAddr, fake::FakeBackend, remote};
//!
//! # async fn demo() -> libswarm::Result<()> {
//! let addr = ListenAddr::parse("unix:///tmp/node1.sock").unwrap();
//! let server = remote::serve(Arc::new(FakeBackend::new()), &addr).await?;
//! let node = remote::RemoteClient::connect(&addr).await?;
//! node.ping().await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use libchan::tls::rustls;
use libchan::{Builder, Connection, Receiver, Sender, Transport};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dockerserver::ListenAddr;
use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    ContainerWaitResponse, EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse,
    ImageDeleteResponseItem, ImageInspect, ImageSummary, Network, NetworkCreateRequest,
    NetworkCreateResponse, SystemInfo, SystemVersion, Volume, VolumeCreateOptions,
    VolumeListResponse,
};
use crate::types::{
    AttachOptions, AttachSession, BoxStream, ByteStream, ContainerCreateBody, ContainerListOptions,
    ContainerRemoveOptions, ContainerStats, EventsOptions, ExecStartOptions, ImageImportOptions,
    ImageListOptions, ImageRemoveOptions, LogsOptions, NetworkListOptions, OutputChunk,
    PullMessage, RegistryAuth, StreamKind, VolumeListOptions, WaitCondition, WaitHandle,
};
use crate::{Backend, Error, Result};

/// One call.
#[derive(Serialize, Deserialize)]
struct Request {
    method: String,
    /// JSON of the argument tuple.
    args: ByteBuf,
    reply: Sender<std::result::Result<ByteBuf, Error>>,
    /// Where stream items go (events, logs, output, a wait's exit).
    stream: Option<Sender<Item>>,
    /// Client-to-server bytes: stdin, tarballs. Closed means EOF.
    input: Option<Receiver<ByteBuf>>,
}

#[derive(Serialize, Deserialize)]
enum Item {
    Json(ByteBuf),
    Chunk { stream: u8, data: ByteBuf },
    Err(Error),
}

fn chan_err(e: libchan::Error) -> Error {
    Error::unavailable(format!("remote backend: {e}"))
}

fn to_json<T: Serialize>(v: &T) -> Result<ByteBuf> {
    serde_json::to_vec(v)
        .map(ByteBuf::from)
        .map_err(|e| Error::internal(format!("encoding: {e}")))
}

fn from_json<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::bad_request(format!("decoding: {e}")))
}

// ---------------------------------------------------------------- server

/// TLS settings for [`serve_tls`] (server side).
pub type ServerTls = Arc<rustls::ServerConfig>;

/// A running remote server; [`RemoteServer::shutdown`] stops it.
pub struct RemoteServer {
    addr: ListenAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RemoteServer {
    /// The bound address (TCP port 0 resolved).
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Stops accepting and closes every connection; removes the socket file.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let ListenAddr::Unix(p) = &self.addr {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
            if let ListenAddr::Unix(p) = &self.addr {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Serves `backend` on a unix socket or plain TCP.
pub async fn serve(backend: Arc<dyn Backend>, addr: &ListenAddr) -> Result<RemoteServer> {
    start(backend, addr, None).await
}

/// Serves `backend` on TCP with TLS.
pub async fn serve_tls(
    backend: Arc<dyn Backend>,
    addr: &ListenAddr,
    tls: ServerTls,
) -> Result<RemoteServer> {
    if !matches!(addr, ListenAddr::Tcp(_)) {
        return Err(Error::bad_request(format!(
            "TLS needs a tcp:// address, not {addr}"
        )));
    }
    start(backend, addr, Some(tls)).await
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener, Option<ServerTls>),
}

async fn start(
    backend: Arc<dyn Backend>,
    addr: &ListenAddr,
    tls: Option<ServerTls>,
) -> Result<RemoteServer> {
    let bind = |e: std::io::Error| Error::unavailable(format!("listen on {addr}: {e}"));
    let (listener, bound) = match addr {
        ListenAddr::Unix(p) => {
            if p.exists() {
                let _ = std::fs::remove_file(p);
            }
            (
                Listener::Unix(UnixListener::bind(p).map_err(bind)?),
                addr.clone(),
            )
        }
        ListenAddr::Tcp(a) => {
            let l = TcpListener::bind(a).await.map_err(bind)?;
            let local = l.local_addr().map_err(bind)?;
            (Listener::Tcp(l, tls), ListenAddr::Tcp(local))
        }
    };
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, backend, stop_rx));
    tracing::info!(addr = %bound, "remote backend listening");
    Ok(RemoteServer {
        addr: bound,
        stop,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: Listener,
    backend: Arc<dyn Backend>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let transport = tokio::select! {
            t = accept(&listener) => t,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = stop.changed() => return,
        };
        let transport = match transport {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "remote accept failed");
                continue;
            }
        };
        let backend = backend.clone();
        conns.spawn(async move {
            let (conn, _tx, mut rx) = match Builder::new().server::<(), Request>(transport) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "remote connection setup failed");
                    return;
                }
            };
            let mut calls = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    req = rx.recv() => match req {
                        Ok(Some(req)) => {
                            let b = backend.clone();
                            calls.spawn(async move { dispatch(b, req).await });
                        }
                        Ok(None) | Err(_) => break,
                    },
                    Some(_) = calls.join_next(), if !calls.is_empty() => {}
                }
            }
            // Streams still running (follow, attach) end with the connection.
            drop(calls);
            conn.close().await;
        });
    }
}

async fn accept(l: &Listener) -> std::io::Result<Transport> {
    match l {
        Listener::Unix(l) => Ok(Transport::unix(l.accept().await?.0)),
        Listener::Tcp(l, None) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok(Transport::tcp(s))
        }
        Listener::Tcp(l, Some(tls)) => {
            let (s, _) = l.accept().await?;
            libchan::tls::accept(s, tls.clone())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
    }
}

fn input_stream(input: Option<Receiver<ByteBuf>>) -> ByteStream {
    let Some(rx) = input else {
        return futures::stream::empty().boxed();
    };
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(Some(b)) => Some((Ok(Bytes::from(b.into_vec())), rx)),
            Ok(None) => None,
            Err(e) => Some((Err(chan_err(e)), rx)),
        }
    })
    .boxed()
}

/// Forwards a stream to the client; ends when either side does.
fn forward<T: Send + 'static>(
    mut s: BoxStream<Result<T>>,
    out: Option<Sender<Item>>,
    encode: impl Fn(T) -> Item + Send + 'static,
) {
    let Some(out) = out else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                next = s.next() => {
                    let item = match next {
                        Some(Ok(v)) => encode(v),
                        Some(Err(e)) => Item::Err(e),
                        None => return,
                    };
                    if out.send(item).await.is_err() {
                        return;
                    }
                }
                _ = out.closed() => return,
            }
        }
    });
}

fn json_item<T: Serialize>(v: T) -> Item {
    match to_json(&v) {
        Ok(b) => Item::Json(b),
        Err(e) => Item::Err(e),
    }
}

fn chunk_item(c: OutputChunk) -> Item {
    Item::Chunk {
        stream: c.stream as u8,
        data: ByteBuf::from(c.data.to_vec()),
    }
}

fn run_session(
    session: AttachSession,
    input: Option<Receiver<ByteBuf>>,
    out: Option<Sender<Item>>,
) -> Result<ByteBuf> {
    let tty = session.tty;
    if let (Some(stdin), Some(mut input)) = (session.stdin, input) {
        tokio::spawn(async move {
            while let Ok(Some(b)) = input.recv().await {
                if stdin.send(Bytes::from(b.into_vec())).await.is_err() {
                    break;
                }
            }
            // Input closed: the process's stdin ends (stdin dropped here).
        });
    }
    forward(session.output, out, chunk_item);
    to_json(&tty)
}

async fn dispatch(b: Arc<dyn Backend>, req: Request) {
    let Request {
        method,
        args,
        reply,
        stream,
        input,
    } = req;
    let result = call(&b, &method, &args, stream, input).await;
    if let Err(e) = &result {
        tracing::debug!(method, error = %e, "remote call failed");
    }
    let _ = reply.send(result).await;
}

async fn call(
    b: &Arc<dyn Backend>,
    method: &str,
    args: &[u8],
    stream: Option<Sender<Item>>,
    input: Option<Receiver<ByteBuf>>,
) -> Result<ByteBuf> {
    macro_rules! args {
        ($($t:ty),*) => {{ let a: ($($t,)*) = from_json(args)?; a }};
    }
    match method {
        "ping" => to_json(&b.ping().await?),
        "version" => to_json(&b.version().await?),
        "info" => to_json(&b.info().await?),
        "events" => {
            let (o,) = args!(EventsOptions);
            forward(b.events(o).await?, stream, json_item);
            to_json(&())
        }
        "container_create" => {
            let (name, body) = args!(Option<String>, ContainerCreateBody);
            to_json(&b.container_create(name.as_deref(), body).await?)
        }
        "container_start" => {
            let (id,) = args!(String);
            to_json(&b.container_start(&id).await?)
        }
        "container_stop" => {
            let (id, t) = args!(String, Option<i64>);
            to_json(&b.container_stop(&id, t).await?)
        }
        "container_kill" => {
            let (id, s) = args!(String, Option<String>);
            to_json(&b.container_kill(&id, s.as_deref()).await?)
        }
        "container_wait" => {
            let (id, cond) = args!(String, WaitCondition);
            let handle = b.container_wait(&id, cond).await?;
            let exited = futures::stream::once(handle.exited()).boxed();
            forward(exited, stream, json_item);
            to_json(&())
        }
        "container_remove" => {
            let (id, o) = args!(String, ContainerRemoveOptions);
            to_json(&b.container_remove(&id, o).await?)
        }
        "container_list" => {
            let (o,) = args!(ContainerListOptions);
            to_json(&b.container_list(o).await?)
        }
        "container_inspect" => {
            let (id,) = args!(String);
            to_json(&b.container_inspect(&id).await?)
        }
        "container_logs" => {
            let (id, o) = args!(String, LogsOptions);
            forward(b.container_logs(&id, o).await?, stream, chunk_item);
            to_json(&())
        }
        "container_attach" => {
            let (id, o) = args!(String, AttachOptions);
            run_session(b.container_attach(&id, o).await?, input, stream)
        }
        "container_resize" => {
            let (id, h, w) = args!(String, u16, u16);
            to_json(&b.container_resize(&id, h, w).await?)
        }
        "container_stats" => {
            let (id, s) = args!(String, bool);
            forward(b.container_stats(&id, s).await?, stream, json_item);
            to_json(&())
        }
        "container_top" => {
            let (id, ps) = args!(String, Option<String>);
            to_json(&b.container_top(&id, ps.as_deref()).await?)
        }
        "exec_create" => {
            let (id, c) = args!(String, ExecConfig);
            to_json(&b.exec_create(&id, c).await?)
        }
        "exec_start" => {
            let (id, o) = args!(String, ExecStartOptions);
            run_session(b.exec_start(&id, o).await?, input, stream)
        }
        "exec_inspect" => {
            let (id,) = args!(String);
            to_json(&b.exec_inspect(&id).await?)
        }
        "exec_resize" => {
            let (id, h, w) = args!(String, u16, u16);
            to_json(&b.exec_resize(&id, h, w).await?)
        }
        "image_list" => {
            let (o,) = args!(ImageListOptions);
            to_json(&b.image_list(o).await?)
        }
        "image_inspect" => {
            let (n,) = args!(String);
            to_json(&b.image_inspect(&n).await?)
        }
        "image_pull" => {
            let (n,) = args!(String);
            to_json(&b.image_pull(&n).await?)
        }
        "image_pull_progress" => {
            let (n, auth) = args!(String, Option<RegistryAuth>);
            forward(b.image_pull_progress(&n, auth).await?, stream, json_item);
            to_json(&())
        }
        "registry_login" => {
            let (auth,) = args!(RegistryAuth);
            to_json(&b.registry_login(auth).await?)
        }
        "image_load" => to_json(&b.image_load(input_stream(input)).await?),
        "image_import" => {
            let (o,) = args!(ImageImportOptions);
            to_json(&b.image_import(input_stream(input), o).await?)
        }
        "image_remove" => {
            let (n, o) = args!(String, ImageRemoveOptions);
            to_json(&b.image_remove(&n, o).await?)
        }
        "image_tag" => {
            let (source, repo, tag) = args!(String, String, Option<String>);
            to_json(&b.image_tag(&source, &repo, tag.as_deref()).await?)
        }
        "network_create" => {
            let (r,) = args!(NetworkCreateRequest);
            to_json(&b.network_create(r).await?)
        }
        "network_list" => {
            let (o,) = args!(NetworkListOptions);
            to_json(&b.network_list(o).await?)
        }
        "network_inspect" => {
            let (id,) = args!(String);
            to_json(&b.network_inspect(&id).await?)
        }
        "network_remove" => {
            let (id,) = args!(String);
            to_json(&b.network_remove(&id).await?)
        }
        "network_connect" => {
            let (n, c, e) = args!(String, String, Option<EndpointSettings>);
            to_json(&b.network_connect(&n, &c, e).await?)
        }
        "network_disconnect" => {
            let (n, c, f) = args!(String, String, bool);
            to_json(&b.network_disconnect(&n, &c, f).await?)
        }
        "volume_create" => {
            let (o,) = args!(VolumeCreateOptions);
            to_json(&b.volume_create(o).await?)
        }
        "volume_list" => {
            let (o,) = args!(VolumeListOptions);
            to_json(&b.volume_list(o).await?)
        }
        "volume_inspect" => {
            let (n,) = args!(String);
            to_json(&b.volume_inspect(&n).await?)
        }
        "volume_remove" => {
            let (n, f) = args!(String, bool);
            to_json(&b.volume_remove(&n, f).await?)
        }
        other => Err(Error::not_found(format!(
            "remote: unknown method {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------- client

/// TLS settings for [`RemoteClient::connect_tls`].
#[derive(Clone)]
pub struct ClientTls {
    /// The rustls client config (roots, client auth).
    pub config: Arc<rustls::ClientConfig>,
    /// The name the server certificate must carry.
    pub server_name: String,
}

/// A backend on the other side of a libchan connection.
pub struct RemoteClient {
    addr: ListenAddr,
    tls: Option<ClientTls>,
    link: tokio::sync::Mutex<Option<(Connection, Sender<Request>)>>,
    /// Fast path: a live sender, cloned per call without the async lock.
    live: Mutex<Option<Sender<Request>>>,
}

impl RemoteClient {
    /// Connects to a [`serve`]d backend.
    pub async fn connect(addr: &ListenAddr) -> Result<RemoteClient> {
        let c = RemoteClient {
            addr: addr.clone(),
            tls: None,
            link: tokio::sync::Mutex::new(None),
            live: Mutex::new(None),
        };
        c.sender().await?;
        Ok(c)
    }

    /// Connects to a [`serve_tls`]d backend.
    pub async fn connect_tls(addr: &ListenAddr, tls: ClientTls) -> Result<RemoteClient> {
        let c = RemoteClient {
            addr: addr.clone(),
            tls: Some(tls),
            link: tokio::sync::Mutex::new(None),
            live: Mutex::new(None),
        };
        c.sender().await?;
        Ok(c)
    }

    async fn dial(&self) -> Result<Transport> {
        let down =
            |e: std::io::Error| Error::unavailable(format!("remote backend {}: {e}", self.addr));
        match (&self.addr, &self.tls) {
            (ListenAddr::Unix(p), _) => {
                Ok(Transport::unix(UnixStream::connect(p).await.map_err(down)?))
            }
            (ListenAddr::Tcp(a), None) => {
                let s = TcpStream::connect(a).await.map_err(down)?;
                let _ = s.set_nodelay(true);
                Ok(Transport::tcp(s))
            }
            (ListenAddr::Tcp(a), Some(tls)) => {
                let s = TcpStream::connect(a).await.map_err(down)?;
                libchan::tls::connect(s, tls.config.clone(), &tls.server_name)
                    .await
                    .map_err(chan_err)
            }
        }
    }

    /// A live root sender, reconnecting if the connection died.
    async fn sender(&self) -> Result<Sender<Request>> {
        if let Some(s) = self.live.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let mut link = self.link.lock().await;
        if let Some((conn, tx)) = link.as_ref() {
            if !conn.is_closed() && !tx.is_closed() {
                return Ok(tx.clone());
            }
        }
        let transport = self.dial().await?;
        let (conn, tx, _rx) = Builder::new()
            .client::<Request, ()>(transport)
            .map_err(chan_err)?;
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
        *link = Some((conn, tx.clone()));
        Ok(tx)
    }

    async fn raw(
        &self,
        method: &str,
        args: ByteBuf,
        stream: Option<Sender<Item>>,
        input: Option<Receiver<ByteBuf>>,
    ) -> Result<ByteBuf> {
        let tx = self.sender().await?;
        let (reply, mut replies) = libchan::channel(1);
        tx.send(Request {
            method: method.to_string(),
            args,
            reply,
            stream,
            input,
        })
        .await
        .map_err(chan_err)?;
        match replies.recv().await {
            Ok(Some(r)) => r,
            Ok(None) => Err(Error::unavailable(format!(
                "remote backend {}: no reply to {method}",
                self.addr
            ))),
            Err(e) => Err(chan_err(e)),
        }
    }

    async fn call<A: Serialize, R: DeserializeOwned>(&self, method: &str, args: A) -> Result<R> {
        let r = self.raw(method, to_json(&args)?, None, None).await?;
        serde_json::from_slice(&r)
            .map_err(|e| Error::internal(format!("remote {method}: decoding reply: {e}")))
    }

    /// A call whose results come back on a stream.
    async fn call_stream<A: Serialize>(
        &self,
        method: &str,
        args: A,
        input: Option<Receiver<ByteBuf>>,
    ) -> Result<(ByteBuf, Receiver<Item>)> {
        let (tx, rx) = libchan::channel(64);
        let head = self.raw(method, to_json(&args)?, Some(tx), input).await?;
        Ok((head, rx))
    }

    async fn session<A: Serialize>(
        &self,
        method: &str,
        args: A,
        with_stdin: bool,
    ) -> Result<AttachSession> {
        let (stdin, input) = if with_stdin {
            let (tx, rx) = libchan::channel::<ByteBuf>(64);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (head, items) = self.call_stream(method, args, input).await?;
        let tty: bool = serde_json::from_slice(&head).unwrap_or(false);
        let stdin = stdin.map(|remote| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if remote.send(ByteBuf::from(b.to_vec())).await.is_err() {
                        return;
                    }
                }
                // Local sender dropped: dropping `remote` closes stdin there.
            });
            tx
        });
        Ok(AttachSession {
            stdin,
            output: chunks(items),
            tty,
        })
    }
}

fn items<T: DeserializeOwned + Send + 'static>(rx: Receiver<Item>) -> BoxStream<Result<T>> {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(Some(Item::Json(b))) => Some((from_json::<T>(&b), Some(rx))),
            Ok(Some(Item::Err(e))) => Some((Err(e), Some(rx))),
            Ok(Some(Item::Chunk { .. })) => Some((
                Err(Error::internal("remote: unexpected output chunk")),
                Some(rx),
            )),
            Ok(None) => None,
            Err(e) => Some((Err(chan_err(e)), None)),
        }
    })
    .boxed()
}

fn chunks(rx: Receiver<Item>) -> BoxStream<Result<OutputChunk>> {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(Some(Item::Chunk { stream, data })) => {
                let stream = match stream {
                    0 => StreamKind::Stdin,
                    2 => StreamKind::Stderr,
                    _ => StreamKind::Stdout,
                };
                Some((
                    Ok(OutputChunk {
                        stream,
                        data: Bytes::from(data.into_vec()),
                    }),
                    Some(rx),
                ))
            }
            Ok(Some(Item::Err(e))) => Some((Err(e), Some(rx))),
            Ok(Some(Item::Json(_))) => Some((
                Err(Error::internal("remote: unexpected JSON item")),
                Some(rx),
            )),
            Ok(None) => None,
            Err(e) => Some((Err(chan_err(e)), None)),
        }
    })
    .boxed()
}

fn upload(mut data: ByteStream) -> Receiver<ByteBuf> {
    let (tx, rx) = libchan::channel::<ByteBuf>(16);
    tokio::spawn(async move {
        while let Some(chunk) = data.next().await {
            let Ok(chunk) = chunk else {
                return;
            };
            if tx.send(ByteBuf::from(chunk.to_vec())).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[async_trait]
impl Backend for RemoteClient {
    async fn ping(&self) -> Result<()> {
        self.call("ping", ()).await
    }
    async fn version(&self) -> Result<SystemVersion> {
        self.call("version", ()).await
    }
    async fn info(&self) -> Result<SystemInfo> {
        self.call("info", ()).await
    }
    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>> {
        let (_, rx) = self.call_stream("events", (options,), None).await?;
        Ok(items(rx))
    }
    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        self.call("container_create", (name, body)).await
    }
    async fn container_start(&self, id: &str) -> Result<()> {
        self.call("container_start", (id,)).await
    }
    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        self.call("container_stop", (id, timeout)).await
    }
    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        self.call("container_kill", (id, signal)).await
    }
    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        // The reply comes once the remote wait is registered; the exit
        // status follows on the stream.
        let (_, rx) = self
            .call_stream("container_wait", (id, condition), None)
            .await?;
        let mut exit = items::<ContainerWaitResponse>(rx);
        Ok(WaitHandle::new(async move {
            match exit.next().await {
                Some(r) => r,
                None => Err(Error::unavailable(
                    "remote wait: connection closed before the exit",
                )),
            }
        }))
    }
    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()> {
        self.call("container_remove", (id, options)).await
    }
    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        self.call("container_list", (options,)).await
    }
    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        self.call("container_inspect", (id,)).await
    }
    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>> {
        let (_, rx) = self
            .call_stream("container_logs", (id, options), None)
            .await?;
        Ok(chunks(rx))
    }
    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession> {
        self.session("container_attach", (id, options), options.stdin)
            .await
    }
    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.call("container_resize", (id, height, width)).await
    }
    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>> {
        let (_, rx) = self
            .call_stream("container_stats", (id, stream), None)
            .await?;
        Ok(items(rx))
    }
    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        self.call("container_top", (id, ps_args)).await
    }
    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String> {
        self.call("exec_create", (container, config)).await
    }
    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession> {
        let want_stdin = if options.detach {
            false
        } else {
            self.exec_inspect(exec_id)
                .await?
                .open_stdin
                .unwrap_or(false)
        };
        self.session("exec_start", (exec_id, options), want_stdin)
            .await
    }
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        self.call("exec_inspect", (exec_id,)).await
    }
    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.call("exec_resize", (exec_id, height, width)).await
    }
    async fn image_list(&self, options: ImageListOptions) -> Result<Vec<ImageSummary>> {
        self.call("image_list", (options,)).await
    }
    async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        self.call("image_inspect", (name,)).await
    }
    async fn image_pull(&self, reference: &str) -> Result<()> {
        self.call("image_pull", (reference,)).await
    }
    async fn image_pull_progress(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<Result<PullMessage>>> {
        let (_, rx) = self
            .call_stream("image_pull_progress", (reference, auth), None)
            .await?;
        Ok(items(rx))
    }
    async fn registry_login(&self, auth: RegistryAuth) -> Result<String> {
        self.call("registry_login", (auth,)).await
    }
    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>> {
        let r = self
            .raw("image_load", to_json(&())?, None, Some(upload(tarball)))
            .await?;
        from_json(&r)
    }
    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String> {
        let r = self
            .raw(
                "image_import",
                to_json(&(options,))?,
                None,
                Some(upload(tarball)),
            )
            .await?;
        from_json(&r)
    }
    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        self.call("image_remove", (name, options)).await
    }
    async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        self.call("image_tag", (source, repo, tag)).await
    }
    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        self.call("network_create", (request,)).await
    }
    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>> {
        self.call("network_list", (options,)).await
    }
    async fn network_inspect(&self, id: &str) -> Result<Network> {
        self.call("network_inspect", (id,)).await
    }
    async fn network_remove(&self, id: &str) -> Result<()> {
        self.call("network_remove", (id,)).await
    }
    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        self.call("network_connect", (network, container, endpoint))
            .await
    }
    async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        self.call("network_disconnect", (network, container, force))
            .await
    }
    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume> {
        self.call("volume_create", (options,)).await
    }
    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse> {
        self.call("volume_list", (options,)).await
    }
    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        self.call("volume_inspect", (name,)).await
    }
    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.call("volume_remove", (name, force)).await
    }
}
