//! Serves any [`VolumeDriver`] as a Docker volume plugin.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE as CONTENT_TYPE_HEADER;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use crate::driver::VolumeDriver;
use crate::error::{Error, Result};
use crate::plugin::client::PluginAddr;
use crate::plugin::protocol::{method, *};

const MAX_REQUEST_BYTES: usize = 1 << 20;

/// A plugin server for one driver.
///
/// ```no_run
/// use std::sync::Arc;
/// use libvolume::plugin::PluginServer;
/// use libvolume::LocalDriver;
/// # async fn demo() -> libvolume::Result<()> {
/// let local = LocalDriver::builder("/var/lib/berth/plugin-volumes").build()?;
/// let handle = PluginServer::new(Arc::new(local))
///     .serve_unix("/run/docker/plugins/berth-local.sock")
///     .await?;
/// // ... until shutdown:
/// handle.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PluginServer {
    driver: Arc<dyn VolumeDriver>,
}

/// A running server; dropping it stops accepting and removes its socket.
pub struct ServerHandle {
    addr: PluginAddr,
    task: JoinHandle<()>,
    socket: Option<PathBuf>,
}

impl ServerHandle {
    /// Where the server listens.
    pub fn addr(&self) -> &PluginAddr {
        &self.addr
    }

    /// Stops the server and removes its socket file.
    pub fn shutdown(self) {}
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(sock) = &self.socket {
            let _ = std::fs::remove_file(sock);
        }
    }
}

impl PluginServer {
    /// Serves `driver`.
    pub fn new(driver: Arc<dyn VolumeDriver>) -> Self {
        PluginServer { driver }
    }

    /// Listens on a unix socket (a stale socket file is replaced).
    pub async fn serve_unix(self, path: impl AsRef<Path>) -> Result<ServerHandle> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::sys("creating socket directory", dir, e))?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::sys("removing stale socket", &path, e)),
        }
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| Error::sys("binding plugin socket", &path, e))?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => self.spawn_connection(stream),
                    Err(e) => {
                        tracing::warn!(error = %e, "plugin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(ServerHandle {
            addr: PluginAddr::Unix(path.clone()),
            task,
            socket: Some(path),
        })
    }

    /// Listens on TCP (`127.0.0.1:0` picks a free port; see
    /// [`ServerHandle::addr`]).
    pub async fn serve_tcp(self, addr: SocketAddr) -> Result<ServerHandle> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::sys("binding plugin address", addr.to_string(), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::sys("reading plugin address", addr.to_string(), e))?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        self.spawn_connection(stream)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "plugin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(ServerHandle {
            addr: PluginAddr::Tcp(local.to_string()),
            task,
            socket: None,
        })
    }

    fn spawn_connection<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let driver = self.driver.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let driver = driver.clone();
                async move { Ok::<_, Infallible>(handle(driver, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "plugin connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    resp
}

fn err_reply(status: StatusCode, message: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "Err": message.to_string() }))
}

fn ok<T: Serialize>(value: T) -> Response<Full<Bytes>> {
    match serde_json::to_value(value) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => err_reply(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// A ready error reply, boxed to keep `Result`s small.
type Reject = Box<Response<Full<Bytes>>>;

fn parse<T: DeserializeOwned>(body: &[u8]) -> std::result::Result<T, Reject> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        Box::new(err_reply(
            StatusCode::BAD_REQUEST,
            format!("invalid request: {e}"),
        ))
    })
}

/// Driver errors are answered as go-plugins-helpers does: 500 with `Err`.
fn driver_result<T: Serialize>(result: Result<T>) -> Response<Full<Bytes>> {
    match result {
        Ok(v) => ok(v),
        Err(e) => err_reply(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn handle(driver: Arc<dyn VolumeDriver>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return err_reply(StatusCode::METHOD_NOT_ALLOWED, "plugin calls are POST");
    }
    let path = req.uri().path().to_string();
    // Requests are a name and a few options: cap what a client can make us buffer.
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return err_reply(StatusCode::BAD_REQUEST, format!("reading request: {e}")),
    };
    let result = dispatch(driver.as_ref(), &path, &body).await;
    result.unwrap_or_else(|resp| *resp)
}

async fn dispatch(
    driver: &dyn VolumeDriver,
    path: &str,
    body: &[u8],
) -> std::result::Result<Response<Full<Bytes>>, Reject> {
    Ok(match path {
        method::ACTIVATE => ok(ActivateResponse {
            implements: vec![VOLUME_DRIVER.to_string()],
        }),
        method::CREATE => {
            let req: CreateRequest = parse(body)?;
            let opts = req.opts.unwrap_or_default();
            driver_result(
                driver
                    .create(&req.name, &opts)
                    .await
                    .map(|()| ErrResponse::default()),
            )
        }
        method::REMOVE => {
            let req: NameRequest = parse(body)?;
            driver_result(
                driver
                    .remove(&req.name)
                    .await
                    .map(|()| ErrResponse::default()),
            )
        }
        method::MOUNT => {
            let req: MountRequest = parse(body)?;
            driver_result(
                driver
                    .mount(&req.name, &req.id)
                    .await
                    .map(|p| MountpointResponse {
                        mountpoint: Some(p),
                        err: String::new(),
                    }),
            )
        }
        method::UNMOUNT => {
            let req: MountRequest = parse(body)?;
            driver_result(
                driver
                    .unmount(&req.name, &req.id)
                    .await
                    .map(|()| ErrResponse::default()),
            )
        }
        method::PATH => {
            let req: NameRequest = parse(body)?;
            driver_result(driver.path(&req.name).await.map(|p| MountpointResponse {
                mountpoint: p,
                err: String::new(),
            }))
        }
        method::GET => {
            let req: NameRequest = parse(body)?;
            driver_result(driver.get(&req.name).await.map(|v| GetResponse {
                volume: Some(v),
                err: String::new(),
            }))
        }
        method::LIST => driver_result(driver.list().await.map(|volumes| ListResponse {
            volumes,
            err: String::new(),
        })),
        method::CAPABILITIES => driver_result(
            driver
                .capabilities()
                .await
                .map(|capabilities| CapabilitiesResponse { capabilities }),
        ),
        other => err_reply(
            StatusCode::NOT_FOUND,
            format!("unknown plugin method {other}"),
        ),
    })
}
