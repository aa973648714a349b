//! `dockerserver`: serves any [`Backend`] as the Docker Engine API (1.44,
//! down to 1.24) over a unix socket or TCP, so the real `docker` CLI and
//! Docker SDKs can drive it.
//!
//! - version negotiation: `/_ping` and every response carry `Api-Version`;
//!   paths may be versioned (`/v1.43/containers/json`) or not;
//! - attach and exec are hijacked (`101 UPGRADED`, `Upgrade: tcp`) with the
//!   8-byte multiplexed framing when there is no TTY; a client half-close
//!   ends stdin only;
//! - `wait` answers its headers at once and the body when the container exits;
//! - every miss is a 404 with `{"message": …}`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libswarm::{dockerserver::{self, ListenAddr}, fake::FakeBackend};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let addr = ListenAddr::parse("unix:///tmp/berth.sock")?;
//! let server = dockerserver::serve(Arc::new(FakeBackend::new()), &addr).await?;
//! // DOCKER_HOST=unix:///tmp/berth.sock docker ps
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod hijack;
mod query;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Backend;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address is not `unix:///path` or `tcp://host:port`.
    #[error("listen address {0:?}: want unix:///path or tcp://host:port")]
    BadAddress(String),
    /// Binding failed.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Where to listen (or, for clients, where to connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl ListenAddr {
    /// Parses `unix:///path`, `tcp://127.0.0.1:2375`, or a bare path.
    pub fn parse(s: &str) -> Result<ListenAddr, ServerError> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ServerError::BadAddress(s.to_string()));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            return hostport
                .trim_end_matches('/')
                .parse()
                .map(ListenAddr::Tcp)
                .map_err(|_| ServerError::BadAddress(s.to_string()));
        }
        if s.starts_with('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        Err(ServerError::BadAddress(s.to_string()))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A running server; [`ServerHandle::shutdown`] stops it (and removes its
/// unix socket). Dropping the handle stops accepting too.
pub struct ServerHandle {
    addr: ListenAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address actually bound (a TCP port 0 is resolved).
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Stops accepting, waits for the accept loop, removes the socket file.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.cleanup();
    }

    fn cleanup(&self) {
        if let ListenAddr::Unix(path) = &self.addr {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
            self.cleanup();
        }
    }
}

/// Starts serving `backend` on `addr`.
pub async fn serve(
    backend: Arc<dyn Backend>,
    addr: &ListenAddr,
) -> Result<ServerHandle, ServerError> {
    let (stop, stop_rx) = watch::channel(false);
    let bind_err = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    let (listener, bound) = match addr {
        ListenAddr::Unix(path) => {
            // A stale socket from a dead process would make bind fail.
            if path.exists() {
                let _ = std::fs::remove_file(path);
            }
            let l = UnixListener::bind(path).map_err(bind_err)?;
            (Listener::Unix(l), addr.clone())
        }
        ListenAddr::Tcp(sa) => {
            let l = TcpListener::bind(sa).await.map_err(bind_err)?;
            let local = l.local_addr().map_err(bind_err)?;
            (Listener::Tcp(l), ListenAddr::Tcp(local))
        }
    };
    let task = tokio::spawn(accept_loop(listener, backend, stop_rx));
    tracing::info!(addr = %bound, "dockerserver listening");
    Ok(ServerHandle {
        addr: bound,
        stop,
        task: Some(task),
    })
}

/// A connection of either kind.
pub(crate) trait Conn: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conn for T {}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Conn>> {
        match self {
            Listener::Unix(l) => Ok(Box::new(l.accept().await?.0)),
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
        }
    }
}

async fn accept_loop(
    listener: Listener,
    backend: Arc<dyn Backend>,
    mut stop: watch::Receiver<bool>,
) {
    // Open connections end with the server (dropping the set aborts them).
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            s = listener.accept() => s,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = stop.changed() => return,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "dockerserver accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let backend = backend.clone();
        conns.spawn(async move {
            let service = service_fn(move |req| {
                let backend = backend.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::handle(backend, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(error = %e, "dockerserver connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_and_junk_is_named() {
        assert_eq!(
            ListenAddr::parse("unix:///tmp/x.sock").unwrap(),
            ListenAddr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            ListenAddr::parse("tcp://127.0.0.1:2375").unwrap(),
            ListenAddr::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        let err = ListenAddr::parse("ftp://x").unwrap_err().to_string();
        assert!(err.contains("ftp://x"), "{err}");
        assert!(ListenAddr::parse("unix://").is_err());
    }
}
