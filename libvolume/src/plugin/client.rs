//! A client for any Docker volume plugin, and a [`VolumeDriver`] on top.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE as CONTENT_TYPE_HEADER, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::driver::{Capabilities, DriverVolume, Options, VolumeDriver};
use crate::error::{Error, Result};
use crate::plugin::protocol::{self, method, *};

/// Where a plugin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl fmt::Display for PluginAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            PluginAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A plugin found by discovery or named by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The driver name volumes refer to.
    pub name: String,
    /// Its address.
    pub addr: PluginAddr,
}

/// How long and how often to retry activation while a plugin starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up after this long.
    pub timeout: Duration,
    /// First pause; doubled after each failure up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Docker's: keep trying for 30 s.
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Calls a plugin's endpoints. One connection per call: plugins are local
/// and a unix socket connect costs microseconds.
#[derive(Debug, Clone)]
pub struct PluginClient {
    plugin: Plugin,
    timeout: Duration,
}

impl PluginClient {
    /// A client for `plugin` with a 60 s per-call timeout.
    pub fn new(plugin: Plugin) -> Self {
        PluginClient {
            plugin,
            timeout: Duration::from_secs(60),
        }
    }

    /// Sets the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The plugin this client talks to.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Plugin {
            plugin: self.plugin.name.clone(),
            message: message.into(),
        }
    }

    /// `POST /Plugin.Activate`, retried with backoff while the plugin cannot
    /// be reached (it may still be starting). Returns `Implements`.
    pub async fn activate(&self, retry: RetryPolicy) -> Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + retry.timeout;
        let mut backoff = retry.initial_backoff;
        loop {
            match self
                .call::<_, ActivateResponse>(method::ACTIVATE, &serde_json::json!({}))
                .await
            {
                Ok(resp) => return Ok(resp.implements),
                Err(Error::Sys { .. }) if tokio::time::Instant::now() + backoff < deadline => {
                    tracing::debug!(plugin = %self.plugin.name, "plugin not reachable yet, retrying activation");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(retry.max_backoff);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One protocol call: JSON in, JSON out. A non-empty `Err` is an error
    /// whatever the HTTP status (some plugins answer errors with 200).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp> {
        let body =
            serde_json::to_vec(req).map_err(|e| self.err(format!("encoding {path}: {e}")))?;
        let (status, bytes) = tokio::time::timeout(self.timeout, self.post(path, body.into()))
            .await
            .map_err(|_| self.err(format!("{path}: no answer within {:?}", self.timeout)))??;
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if !status.is_success() => {
                return Err(self.err(format!(
                    "{path}: HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                )))
            }
            Err(e) => return Err(self.err(format!("{path}: invalid JSON answer: {e}"))),
        };
        if let Some(msg) = value
            .get("Err")
            .and_then(|e| e.as_str())
            .filter(|m| !m.is_empty())
        {
            return Err(self.driver_error(msg));
        }
        if !status.is_success() {
            return Err(self.err(format!("{path}: HTTP {status}: {value}")));
        }
        serde_json::from_value(value)
            .map_err(|e| self.err(format!("{path}: unexpected answer: {e}")))
    }

    fn driver_error(&self, msg: &str) -> Error {
        let lower = msg.to_ascii_lowercase();
        if lower.contains("no such volume") || lower.contains("not found") {
            // The protocol has no error codes; these are the usual words.
            return Error::NotFound {
                name: msg.to_string(),
            };
        }
        Error::Driver {
            driver: self.plugin.name.clone(),
            message: msg.to_string(),
        }
    }

    async fn post(&self, path: &str, body: Bytes) -> Result<(hyper::StatusCode, Bytes)> {
        match &self.plugin.addr {
            PluginAddr::Unix(sock) => {
                let stream = tokio::net::UnixStream::connect(sock)
                    .await
                    .map_err(|e| Error::sys("connecting to plugin socket", sock, e))?;
                self.exchange(stream, "plugin", path, body).await
            }
            PluginAddr::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| Error::sys("connecting to plugin", addr, e))?;
                let _ = stream.set_nodelay(true);
                self.exchange(stream, addr, path, body).await
            }
        }
    }

    async fn exchange<S>(
        &self,
        stream: S,
        host: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(hyper::StatusCode, Bytes)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.err(format!("HTTP handshake: {e}")))?;
        let conn_task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, host)
            .header(ACCEPT, protocol::CONTENT_TYPE)
            .header(CONTENT_TYPE_HEADER, protocol::CONTENT_TYPE)
            .body(Full::new(body))
            .map_err(|e| self.err(format!("building {path} request: {e}")))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| self.err(format!("{path}: {e}")))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.err(format!("{path}: reading answer: {e}")))?
                .to_bytes();
            Ok((status, bytes))
        }
        .await;
        conn_task.abort();
        result
    }
}

/// Any Docker volume plugin used as a [`VolumeDriver`].
///
/// ```no_run
/// use libvolume::plugin::{Plugin, PluginAddr, PluginDriver};
/// use libvolume::{Options, VolumeDriver};
/// # async fn demo() -> libvolume::Result<()> {
/// let plugin = Plugin { name: "btrfs".into(), addr: PluginAddr::Unix("/run/docker/plugins/btrfs.sock".into()) };
/// let driver = PluginDriver::activate(plugin).await?;
/// driver.create("data", &Options::new()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PluginDriver {
    client: PluginClient,
}

impl PluginDriver {
    /// Activates the plugin (retrying for up to 30 s) and checks that it
    /// implements `VolumeDriver`.
    pub async fn activate(plugin: Plugin) -> Result<Self> {
        Self::activate_with(PluginClient::new(plugin), RetryPolicy::default()).await
    }

    /// Activates through a configured client and retry policy.
    pub async fn activate_with(client: PluginClient, retry: RetryPolicy) -> Result<Self> {
        let implements = client.activate(retry).await?;
        if !implements.iter().any(|i| i == VOLUME_DRIVER) {
            return Err(client.err(format!(
                "does not implement {VOLUME_DRIVER} (implements {implements:?})"
            )));
        }
        Ok(PluginDriver { client })
    }

    /// The underlying client.
    pub fn client(&self) -> &PluginClient {
        &self.client
    }

    fn name_req(name: &str) -> NameRequest {
        NameRequest {
            name: name.to_string(),
        }
    }

    fn not_found(name: &str, e: Error) -> Error {
        match e {
            Error::NotFound { .. } => Error::NotFound {
                name: name.to_string(),
            },
            other => other,
        }
    }
}

#[async_trait]
impl VolumeDriver for PluginDriver {
    fn name(&self) -> &str {
        &self.client.plugin.name
    }

    async fn create(&self, name: &str, opts: &Options) -> Result<()> {
        let req = CreateRequest {
            name: name.to_string(),
            opts: Some(opts.clone()),
        };
        self.client
            .call::<_, ErrResponse>(method::CREATE, &req)
            .await
            .map(|_| ())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.client
            .call::<_, ErrResponse>(method::REMOVE, &Self::name_req(name))
            .await
            .map(|_| ())
            .map_err(|e| Self::not_found(name, e))
    }

    async fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let req = MountRequest {
            name: name.to_string(),
            id: id.to_string(),
        };
        let resp: MountpointResponse = self
            .client
            .call(method::MOUNT, &req)
            .await
            .map_err(|e| Self::not_found(name, e))?;
        resp.mountpoint
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| {
                self.client
                    .err(format!("Mount of {name:?} returned no Mountpoint"))
            })
    }

    async fn unmount(&self, name: &str, id: &str) -> Result<()> {
        let req = MountRequest {
            name: name.to_string(),
            id: id.to_string(),
        };
        self.client
            .call::<_, ErrResponse>(method::UNMOUNT, &req)
            .await
            .map(|_| ())
            .map_err(|e| Self::not_found(name, e))
    }

    async fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        let resp: MountpointResponse = self
            .client
            .call(method::PATH, &Self::name_req(name))
            .await
            .map_err(|e| Self::not_found(name, e))?;
        Ok(resp.mountpoint.filter(|p| !p.as_os_str().is_empty()))
    }

    async fn get(&self, name: &str) -> Result<DriverVolume> {
        let resp: GetResponse = self
            .client
            .call(method::GET, &Self::name_req(name))
            .await
            .map_err(|e| Self::not_found(name, e))?;
        resp.volume.ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })
    }

    async fn list(&self) -> Result<Vec<DriverVolume>> {
        let resp: ListResponse = self
            .client
            .call(method::LIST, &serde_json::json!({}))
            .await?;
        Ok(resp.volumes)
    }

    async fn capabilities(&self) -> Result<Capabilities> {
        // Docker treats a plugin without this endpoint as local scope.
        match self
            .client
            .call::<_, CapabilitiesResponse>(method::CAPABILITIES, &serde_json::json!({}))
            .await
        {
            Ok(resp) => Ok(resp.capabilities),
            Err(Error::Plugin { message, .. }) if message.contains("404") => {
                Ok(Capabilities::default())
            }
            Err(e) => Err(e),
        }
    }
}
