//! `dockerclient`: a [`Backend`] that drives any Docker Engine API endpoint
//! (a real dockerd, or another berth engine behind
//! [`dockerserver`](crate::dockerserver)) over a unix socket or TCP.
//!
//! Written on hyper's client directly rather than on bollard: the adapter
//! needs the raw wire (hijacked attach/exec with half-close, wait's
//! two-phase response, the multiplexed framing) mapped one-to-one onto
//! [`Backend`] calls, and shares its framing code with the server.
//!
//! ```no_run
//! use libswarm::{Backend, dockerclient::DockerClient, dockerserver::ListenAddr};
//!
//! # async fn demo() -> libswarm::Result<()> {
//! let docker = DockerClient::connect(ListenAddr::parse("unix:///var/run/docker.sock").unwrap()).await?;
//! let containers = docker.container_list(Default::default()).await?;
//! # Ok(()) }
//! ```

mod registry;
pub(crate) mod transport;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use hyper::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::dockerserver::ListenAddr;
use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    ContainerWaitResponse, EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse,
    ImageDeleteResponseItem, ImageInspect, ImageSummary, Network, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, SystemInfo,
    SystemVersion, Volume, VolumeCreateOptions, VolumeListResponse,
};
use crate::stdcopy::Demuxer;
use crate::types::{
    AttachOptions, AttachSession, BoxStream, ByteStream, ContainerCreateBody, ContainerListOptions,
    ContainerRemoveOptions, ContainerStats, EventsOptions, ExecStartOptions, Filters,
    ImageImportOptions, ImageListOptions, ImageRemoveOptions, LogsOptions, NetworkListOptions,
    OutputChunk, PullMessage, RegistryAuth, VolumeListOptions, WaitCondition, WaitHandle,
};
use crate::{Backend, Error, ErrorKind, Result, API_VERSION};
use transport::{body_chunks, full_body, json_lines, stream_body, ReqBody, Transport};

/// A Docker Engine API client that is itself a [`Backend`].
pub struct DockerClient {
    transport: Transport,
    prefix: String,
}

type Params = Vec<(&'static str, String)>;

fn b(v: bool) -> String {
    if v { "1" } else { "0" }.to_string()
}

fn filters_param(p: &mut Params, f: &Filters) {
    if !f.is_empty() {
        if let Ok(s) = serde_json::to_string(f) {
            p.push(("filters", s));
        }
    }
}

impl DockerClient {
    /// A client for `addr` speaking API 1.44, without contacting it yet.
    pub fn new(addr: ListenAddr) -> DockerClient {
        DockerClient {
            transport: Transport::new(addr),
            prefix: format!("/v{API_VERSION}"),
        }
    }

    /// Connects, pings and negotiates the API version (the lower of the
    /// server's and 1.44).
    pub async fn connect(addr: ListenAddr) -> Result<DockerClient> {
        let mut client = DockerClient::new(addr);
        let req = client.request(Method::GET, "/_ping", &[], None, false)?;
        let (resp, sender) = client.transport.send(req, true).await?;
        let server = resp
            .headers()
            .get("Api-Version")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let status = resp.status();
        let body = client.transport.bytes(resp, sender).await?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        if let Some(server) = server {
            if version_lt(&server, API_VERSION) {
                client.prefix = format!("/v{server}");
            }
        }
        Ok(client)
    }

    /// The endpoint this client talks to.
    pub fn addr(&self) -> &ListenAddr {
        self.transport.addr()
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<ReqBody>,
        upgrade: bool,
    ) -> Result<Request<ReqBody>> {
        let mut uri = if path == "/_ping" {
            path.to_string()
        } else {
            format!("{}{}", self.prefix, path)
        };
        if !params.is_empty() {
            let q = serde_urlencoded::to_string(params)
                .map_err(|e| Error::bad_request(format!("encoding query: {e}")))?;
            uri.push('?');
            uri.push_str(&q);
        }
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "docker")
            .header(
                "User-Agent",
                concat!("berth-libswarm/", env!("CARGO_PKG_VERSION")),
            );
        if upgrade {
            builder = builder.header(CONNECTION, "Upgrade").header(UPGRADE, "tcp");
        }
        let body = match body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                b
            }
            None => full_body(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| Error::bad_request(format!("building request for {path}: {e}")))
    }

    fn json_body<T: Serialize>(value: &T) -> Result<ReqBody> {
        serde_json::to_vec(value)
            .map(full_body)
            .map_err(|e| Error::bad_request(format!("encoding request: {e}")))
    }

    /// A plain call: returns the whole body, errors for non-2xx.
    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<ReqBody>,
    ) -> Result<Bytes> {
        let req = self.request(method, path, params, body, false)?;
        let (resp, sender) = self.transport.send(req, true).await?;
        let status = resp.status();
        let body = self.transport.bytes(resp, sender).await?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        Ok(body)
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<ReqBody>,
    ) -> Result<T> {
        let bytes = self.call(method, path, params, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("decoding response of {path}: {e}")))
    }

    /// A streaming call: the response stays on its own connection.
    async fn stream(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<ReqBody>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let req = self.request(method, path, params, body, false)?;
        let (resp, _) = self.transport.send(req, false).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = self.transport.bytes(resp, None).await?;
            return Err(status_error(status, &body));
        }
        Ok(resp)
    }

    /// Attach/exec: upgrade the connection and run the session over it.
    async fn hijack(
        &self,
        path: &str,
        params: &[(&str, String)],
        body: Option<ReqBody>,
        want_stdin: bool,
        tty_hint: Option<bool>,
    ) -> Result<AttachSession> {
        let req = self.request(Method::POST, path, params, body, true)?;
        let (mut resp, _) = self.transport.send(req, false).await?;
        let status = resp.status();
        if !status.is_success() && status != StatusCode::SWITCHING_PROTOCOLS {
            let body = self.transport.bytes(resp, None).await?;
            return Err(status_error(status, &body));
        }
        let tty = match resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            Some("application/vnd.docker.raw-stream") => true,
            Some("application/vnd.docker.multiplexed-stream") => false,
            _ => tty_hint.unwrap_or(false),
        };
        if status != StatusCode::SWITCHING_PROTOCOLS {
            // No hijack: output only, as a body.
            let output = demux_stream(body_chunks(resp), tty);
            return Ok(AttachSession {
                stdin: None,
                output,
                tty,
            });
        }
        let upgraded = hyper::upgrade::on(&mut resp)
            .await
            .map_err(|e| Error::unavailable(format!("attach upgrade: {e}")))?;
        let (rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
        let (stdin, keep_wr) = if want_stdin {
            let (tx, mut rx) = mpsc::channel::<Bytes>(64);
            tokio::spawn(async move {
                while let Some(data) = rx.recv().await {
                    if wr.write_all(&data).await.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                }
                // Sender dropped: stdin is over. Half-close; output goes on.
                let _ = wr.shutdown().await;
            });
            (Some(tx), None)
        } else {
            // No stdin: the write half lives as long as the output stream.
            (None, Some(wr))
        };
        let raw = futures::stream::unfold(Some((rd, keep_wr)), |state| async move {
            let (mut rd, keep_wr) = state?;
            let mut buf = vec![0u8; 32 * 1024];
            match rd.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((rd, keep_wr))))
                }
                Err(e) => Some((Err(Error::unavailable(format!("attach stream: {e}"))), None)),
            }
        })
        .boxed();
        Ok(AttachSession {
            stdin,
            output: demux_stream(raw, tty),
            tty,
        })
    }
}

fn demux_stream(chunks: BoxStream<Result<Bytes>>, tty: bool) -> BoxStream<Result<OutputChunk>> {
    futures::stream::unfold(
        (
            chunks,
            Demuxer::new(tty),
            std::collections::VecDeque::<OutputChunk>::new(),
        ),
        |(mut chunks, mut demux, mut ready)| async move {
            loop {
                if let Some(c) = ready.pop_front() {
                    return Some((Ok(c), (chunks, demux, ready)));
                }
                match chunks.next().await {
                    Some(Ok(data)) => match demux.push(&data) {
                        Ok(out) => ready.extend(out),
                        Err(e) => {
                            return Some((Err(e), (futures::stream::empty().boxed(), demux, ready)))
                        }
                    },
                    Some(Err(e)) => {
                        return Some((Err(e), (futures::stream::empty().boxed(), demux, ready)))
                    }
                    None => return None,
                }
            }
        },
    )
    .boxed()
}

fn version_lt(a: &str, b: &str) -> bool {
    let p = |v: &str| -> (u32, u32) {
        let (x, y) = v.split_once('.').unwrap_or((v, "0"));
        (x.parse().unwrap_or(0), y.parse().unwrap_or(0))
    };
    p(a) < p(b)
}

fn status_error(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    let message = serde_json::from_slice::<Msg>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                status.to_string()
            } else {
                text
            }
        });
    Error::new(ErrorKind::from_http_status(status.as_u16()), message)
}

fn path_id(id: &str) -> Result<&str> {
    if id.is_empty() || id.contains(['?', '#', ' ']) {
        return Err(Error::bad_request(format!("invalid object name {id:?}")));
    }
    Ok(id)
}

#[async_trait]
impl Backend for DockerClient {
    async fn ping(&self) -> Result<()> {
        self.call(Method::GET, "/_ping", &[], None)
            .await
            .map(|_| ())
    }

    async fn version(&self) -> Result<SystemVersion> {
        self.call_json(Method::GET, "/version", &[], None).await
    }

    async fn info(&self) -> Result<SystemInfo> {
        self.call_json(Method::GET, "/info", &[], None).await
    }

    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>> {
        let mut p = Params::new();
        if let Some(s) = options.since {
            p.push(("since", s.to_string()));
        }
        if let Some(u) = options.until {
            p.push(("until", u.to_string()));
        }
        filters_param(&mut p, &options.filters);
        let resp = self.stream(Method::GET, "/events", &p, None).await?;
        Ok(json_lines(body_chunks(resp)))
    }

    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let mut p = Params::new();
        if let Some(n) = name {
            p.push(("name", n.to_string()));
        }
        let body = Self::json_body(&body)?;
        self.call_json(Method::POST, "/containers/create", &p, Some(body))
            .await
    }

    async fn container_start(&self, id: &str) -> Result<()> {
        let path = format!("/containers/{}/start", path_id(id)?);
        self.call(Method::POST, &path, &[], None).await.map(|_| ())
    }

    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let path = format!("/containers/{}/stop", path_id(id)?);
        let p: Params = timeout.map(|t| ("t", t.to_string())).into_iter().collect();
        self.call(Method::POST, &path, &p, None).await.map(|_| ())
    }

    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let path = format!("/containers/{}/kill", path_id(id)?);
        let p: Params = signal
            .map(|s| ("signal", s.to_string()))
            .into_iter()
            .collect();
        self.call(Method::POST, &path, &p, None).await.map(|_| ())
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let path = format!("/containers/{}/wait", path_id(id)?);
        let p: Params = vec![("condition", condition.as_str().to_string())];
        // The server answers headers once the wait is registered.
        let resp = self.stream(Method::POST, &path, &p, None).await?;
        Ok(WaitHandle::new(async move {
            let mut items = json_lines::<ContainerWaitResponse>(body_chunks(resp));
            match items.next().await {
                Some(r) => r,
                None => Err(Error::unavailable(
                    "wait: connection closed before the exit status",
                )),
            }
        }))
    }

    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()> {
        let path = format!("/containers/{}", path_id(id)?);
        let p: Params = vec![("force", b(options.force)), ("v", b(options.volumes))];
        self.call(Method::DELETE, &path, &p, None).await.map(|_| ())
    }

    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let mut p: Params = vec![("all", b(options.all))];
        if let Some(l) = options.limit {
            p.push(("limit", l.to_string()));
        }
        filters_param(&mut p, &options.filters);
        self.call_json(Method::GET, "/containers/json", &p, None)
            .await
    }

    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        let path = format!("/containers/{}/json", path_id(id)?);
        self.call_json(Method::GET, &path, &[], None).await
    }

    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>> {
        let path = format!("/containers/{}/logs", path_id(id)?);
        let mut p: Params = vec![
            ("follow", b(options.follow)),
            ("stdout", b(options.stdout)),
            ("stderr", b(options.stderr)),
            ("timestamps", b(options.timestamps)),
        ];
        if let Some(s) = options.since {
            p.push(("since", s.to_string()));
        }
        if let Some(u) = options.until {
            p.push(("until", u.to_string()));
        }
        if let Some(t) = options.tail {
            p.push(("tail", t.to_string()));
        }
        let resp = self.stream(Method::GET, &path, &p, None).await?;
        let tty = resp
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v == "application/vnd.docker.raw-stream");
        Ok(demux_stream(body_chunks(resp), tty))
    }

    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession> {
        let path = format!("/containers/{}/attach", path_id(id)?);
        let p: Params = vec![
            ("stdin", b(options.stdin)),
            ("stdout", b(options.stdout)),
            ("stderr", b(options.stderr)),
            ("logs", b(options.logs)),
            ("stream", b(options.stream)),
        ];
        self.hijack(&path, &p, None, options.stdin, None).await
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let path = format!("/containers/{}/resize", path_id(id)?);
        let p: Params = vec![("h", height.to_string()), ("w", width.to_string())];
        self.call(Method::POST, &path, &p, None).await.map(|_| ())
    }

    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>> {
        let path = format!("/containers/{}/stats", path_id(id)?);
        let p: Params = vec![("stream", b(stream))];
        let resp = self.stream(Method::GET, &path, &p, None).await?;
        Ok(json_lines(body_chunks(resp)))
    }

    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        let path = format!("/containers/{}/top", path_id(id)?);
        let p: Params = ps_args
            .map(|a| ("ps_args", a.to_string()))
            .into_iter()
            .collect();
        self.call_json(Method::GET, &path, &p, None).await
    }

    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Id {
            #[serde(rename = "Id")]
            id: String,
        }
        let path = format!("/containers/{}/exec", path_id(container)?);
        let body = Self::json_body(&config)?;
        let id: Id = self.call_json(Method::POST, &path, &[], Some(body)).await?;
        Ok(id.id)
    }

    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession> {
        let path = format!("/exec/{}/start", path_id(exec_id)?);
        let body = serde_json::json!({ "Detach": options.detach, "Tty": options.tty });
        if options.detach {
            self.call(Method::POST, &path, &[], Some(Self::json_body(&body)?))
                .await?;
            return Ok(AttachSession {
                stdin: None,
                output: futures::stream::empty().boxed(),
                tty: options.tty,
            });
        }
        let inspect = self.exec_inspect(exec_id).await?;
        let want_stdin = inspect.open_stdin.unwrap_or(false);
        let tty = inspect
            .process_config
            .and_then(|p| p.tty)
            .unwrap_or(options.tty);
        self.hijack(
            &path,
            &[],
            Some(Self::json_body(&body)?),
            want_stdin,
            Some(tty),
        )
        .await
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        let path = format!("/exec/{}/json", path_id(exec_id)?);
        self.call_json(Method::GET, &path, &[], None).await
    }

    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let path = format!("/exec/{}/resize", path_id(exec_id)?);
        let p: Params = vec![("h", height.to_string()), ("w", width.to_string())];
        self.call(Method::POST, &path, &p, None).await.map(|_| ())
    }

    async fn image_list(&self, options: ImageListOptions) -> Result<Vec<ImageSummary>> {
        let mut p: Params = vec![("all", b(options.all))];
        filters_param(&mut p, &options.filters);
        self.call_json(Method::GET, "/images/json", &p, None).await
    }

    async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let path = format!("/images/{}/json", path_id(name)?);
        self.call_json(Method::GET, &path, &[], None).await
    }

    async fn image_pull(&self, reference: &str) -> Result<()> {
        let (image, tag) = split_reference(reference);
        let mut p: Params = vec![("fromImage", image.to_string())];
        if let Some(t) = tag {
            p.push(("tag", t.to_string()));
        }
        let resp = self
            .stream(Method::POST, "/images/create", &p, None)
            .await?;
        progress_errors(json_lines::<serde_json::Value>(body_chunks(resp)))
            .await
            .map(|_| ())
    }

    async fn image_pull_progress(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<Result<PullMessage>>> {
        self.pull_progress(reference, auth).await
    }

    async fn registry_login(&self, auth: RegistryAuth) -> Result<String> {
        self.login(auth).await
    }

    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>> {
        let req = self.request(
            Method::POST,
            "/images/load",
            &[("quiet", "1".to_string())],
            Some(stream_body(tarball)),
            false,
        )?;
        let (resp, _) = self.transport.send(req, false).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = self.transport.bytes(resp, None).await?;
            return Err(status_error(status, &body));
        }
        let items = progress_errors(json_lines::<serde_json::Value>(body_chunks(resp))).await?;
        let mut refs = Vec::new();
        for item in items {
            if let Some(s) = item.get("stream").and_then(|s| s.as_str()) {
                for prefix in ["Loaded image: ", "Loaded image ID: "] {
                    if let Some(r) = s.trim().strip_prefix(prefix) {
                        refs.push(r.to_string());
                    }
                }
            }
        }
        Ok(refs)
    }

    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String> {
        let mut p: Params = vec![("fromSrc", "-".to_string())];
        if let Some(r) = options.repo {
            p.push(("repo", r));
        }
        if let Some(t) = options.tag {
            p.push(("tag", t));
        }
        if let Some(m) = options.message {
            p.push(("message", m));
        }
        for c in options.changes {
            p.push(("changes", c));
        }
        let req = self.request(
            Method::POST,
            "/images/create",
            &p,
            Some(stream_body(tarball)),
            false,
        )?;
        let (resp, _) = self.transport.send(req, false).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = self.transport.bytes(resp, None).await?;
            return Err(status_error(status, &body));
        }
        let items = progress_errors(json_lines::<serde_json::Value>(body_chunks(resp))).await?;
        items
            .iter()
            .rev()
            .find_map(|i| i.get("status").and_then(|s| s.as_str()).map(String::from))
            .ok_or_else(|| Error::internal("import: no image id in the response"))
    }

    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let path = format!("/images/{}", path_id(name)?);
        let p: Params = vec![("force", b(options.force)), ("noprune", b(options.noprune))];
        self.call_json(Method::DELETE, &path, &p, None).await
    }

    async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let path = format!("/images/{}/tag", path_id(source)?);
        let mut p: Params = vec![("repo", repo.to_string())];
        p.extend(tag.map(|t| ("tag", t.to_string())));
        self.call(Method::POST, &path, &p, None).await.map(|_| ())
    }

    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let body = Self::json_body(&request)?;
        self.call_json(Method::POST, "/networks/create", &[], Some(body))
            .await
    }

    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>> {
        let mut p = Params::new();
        filters_param(&mut p, &options.filters);
        self.call_json(Method::GET, "/networks", &p, None).await
    }

    async fn network_inspect(&self, id: &str) -> Result<Network> {
        let path = format!("/networks/{}", path_id(id)?);
        self.call_json(Method::GET, &path, &[], None).await
    }

    async fn network_remove(&self, id: &str) -> Result<()> {
        let path = format!("/networks/{}", path_id(id)?);
        self.call(Method::DELETE, &path, &[], None)
            .await
            .map(|_| ())
    }

    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        let path = format!("/networks/{}/connect", path_id(network)?);
        let body = Self::json_body(&NetworkConnectRequest {
            container: Some(container.to_string()),
            endpoint_config: endpoint,
        })?;
        self.call(Method::POST, &path, &[], Some(body))
            .await
            .map(|_| ())
    }

    async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let path = format!("/networks/{}/disconnect", path_id(network)?);
        let body = Self::json_body(&NetworkDisconnectRequest {
            container: Some(container.to_string()),
            force: Some(force),
        })?;
        self.call(Method::POST, &path, &[], Some(body))
            .await
            .map(|_| ())
    }

    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume> {
        let body = Self::json_body(&options)?;
        self.call_json(Method::POST, "/volumes/create", &[], Some(body))
            .await
    }

    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse> {
        let mut p = Params::new();
        filters_param(&mut p, &options.filters);
        self.call_json(Method::GET, "/volumes", &p, None).await
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        let path = format!("/volumes/{}", path_id(name)?);
        self.call_json(Method::GET, &path, &[], None).await
    }

    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let path = format!("/volumes/{}", path_id(name)?);
        let p: Params = vec![("force", b(force))];
        self.call(Method::DELETE, &path, &p, None).await.map(|_| ())
    }
}

/// `repo:tag` → (`repo`, Some(`tag`)); a registry port is not a tag.
fn split_reference(reference: &str) -> (&str, Option<&str>) {
    if let Some((image, digest)) = reference.split_once('@') {
        return (image, Some(digest));
    }
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], Some(&reference[i + 1..])),
        _ => (reference, None),
    }
}

/// Collects a JSON progress stream; an `{"error": …}` item fails it.
async fn progress_errors(
    mut items: BoxStream<Result<serde_json::Value>>,
) -> Result<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    while let Some(item) = items.next().await {
        let item = item?;
        if let Some(e) = item.get("error").and_then(|e| e.as_str()) {
            return Err(Error::internal(e.to_string()));
        }
        all.push(item);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_without_mistaking_ports_for_tags() {
        assert_eq!(split_reference("busybox:1"), ("busybox", Some("1")));
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x", None)
        );
        assert_eq!(split_reference("a@sha256:ff"), ("a", Some("sha256:ff")));
        assert!(version_lt("1.41", "1.44"));
        assert!(!version_lt("1.44", "1.44"));
        let e = status_error(StatusCode::CONFLICT, br#"{"message":"busy"}"#);
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Conflict, "busy"));
        assert!(path_id("a?b").is_err());
    }
}
