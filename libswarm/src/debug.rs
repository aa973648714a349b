//! The `debug` adapter: logs every call, its arguments, outcome and
//! duration through `tracing` (target `libswarm::debug`), then passes it on.
//!
//! ```
//! use std::sync::Arc;
//! use libswarm::{Backend, debug::DebugBackend, fake::FakeBackend};
//!
//! let engine: Arc<dyn Backend> = Arc::new(DebugBackend::new(Arc::new(FakeBackend::new())));
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse, ImageDeleteResponseItem,
    ImageInspect, ImageSummary, Network, NetworkCreateRequest, NetworkCreateResponse, SystemInfo,
    SystemVersion, Volume, VolumeCreateOptions, VolumeListResponse,
};
use crate::types::{
    AttachOptions, AttachSession, BoxStream, ByteStream, ContainerCreateBody, ContainerListOptions,
    ContainerRemoveOptions, ContainerStats, EventsOptions, ExecStartOptions, ImageImportOptions,
    ImageListOptions, ImageRemoveOptions, LogsOptions, NetworkListOptions, OutputChunk,
    PullMessage, RegistryAuth, VolumeListOptions, WaitCondition, WaitHandle,
};
use crate::{Backend, Result};

/// Logs and forwards every call to the inner backend.
pub struct DebugBackend {
    inner: Arc<dyn Backend>,
}

impl DebugBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> DebugBackend {
        DebugBackend { inner }
    }
}

/// What to log of a result: the value for small ones, a count for lists,
/// the error otherwise.
trait Summary {
    fn summary(&self) -> String;
}

macro_rules! debug_summary {
    ($($t:ty),*) => {$(
        impl Summary for $t {
            fn summary(&self) -> String { format!("{self:?}") }
        }
    )*};
}
debug_summary!(
    (),
    String,
    ContainerCreateResponse,
    ContainerTopResponse,
    ExecInspectResponse,
    NetworkCreateResponse,
    Volume,
    SystemVersion
);

macro_rules! brief_summary {
    ($($t:ty => $what:literal),*) => {$(
        impl Summary for $t {
            fn summary(&self) -> String { $what.to_string() }
        }
    )*};
}
brief_summary!(
    SystemInfo => "info",
    ContainerInspectResponse => "container detail",
    ImageInspect => "image detail",
    Network => "network detail",
    WaitHandle => "wait registered",
    AttachSession => "session open",
    BoxStream<Result<OutputChunk>> => "output stream",
    BoxStream<Result<ContainerStats>> => "stats stream",
    BoxStream<Result<EventMessage>> => "event stream",
    BoxStream<Result<PullMessage>> => "pull progress stream",
    VolumeListResponse => "volume list"
);

impl<T> Summary for Vec<T> {
    fn summary(&self) -> String {
        format!("{} items", self.len())
    }
}

fn log<T: Summary>(call: &str, args: &dyn Debug, started: Instant, result: &Result<T>) {
    let micros = started.elapsed().as_micros() as u64;
    match result {
        Ok(v) => tracing::debug!(
            target: "libswarm::debug",
            call,
            args = ?args,
            micros,
            result = %v.summary(),
            "ok"
        ),
        Err(e) => tracing::debug!(
            target: "libswarm::debug",
            call,
            args = ?args,
            micros,
            kind = %e.kind,
            error = %e.message,
            "failed"
        ),
    }
}

macro_rules! pass {
    ($self:ident, $call:ident ( $($arg:expr),* ) ) => {{
        if !tracing::enabled!(target: "libswarm::debug", tracing::Level::DEBUG) {
            return $self.inner.$call($($arg),*).await;
        }
        let started = Instant::now();
        let args = ($(&$arg,)*);
        let args_text = format!("{args:?}");
        let result = $self.inner.$call($($arg),*).await;
        log(stringify!($call), &args_text, started, &result);
        result
    }};
}

#[async_trait]
impl Backend for DebugBackend {
    async fn ping(&self) -> Result<()> {
        pass!(self, ping())
    }
    async fn version(&self) -> Result<SystemVersion> {
        pass!(self, version())
    }
    async fn info(&self) -> Result<SystemInfo> {
        pass!(self, info())
    }
    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>> {
        pass!(self, events(options))
    }
    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        pass!(self, container_create(name, body))
    }
    async fn container_start(&self, id: &str) -> Result<()> {
        pass!(self, container_start(id))
    }
    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        pass!(self, container_stop(id, timeout))
    }
    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        pass!(self, container_kill(id, signal))
    }
    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        pass!(self, container_wait(id, condition))
    }
    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()> {
        pass!(self, container_remove(id, options))
    }
    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        pass!(self, container_list(options))
    }
    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        pass!(self, container_inspect(id))
    }
    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>> {
        pass!(self, container_logs(id, options))
    }
    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession> {
        pass!(self, container_attach(id, options))
    }
    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        pass!(self, container_resize(id, height, width))
    }
    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>> {
        pass!(self, container_stats(id, stream))
    }
    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        pass!(self, container_top(id, ps_args))
    }
    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String> {
        pass!(self, exec_create(container, config))
    }
    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession> {
        pass!(self, exec_start(exec_id, options))
    }
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        pass!(self, exec_inspect(exec_id))
    }
    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        pass!(self, exec_resize(exec_id, height, width))
    }
    async fn image_list(&self, options: ImageListOptions) -> Result<Vec<ImageSummary>> {
        pass!(self, image_list(options))
    }
    async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        pass!(self, image_inspect(name))
    }
    async fn image_pull(&self, reference: &str) -> Result<()> {
        pass!(self, image_pull(reference))
    }
    async fn image_pull_progress(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<Result<PullMessage>>> {
        pass!(self, image_pull_progress(reference, auth))
    }
    async fn registry_login(&self, auth: RegistryAuth) -> Result<String> {
        pass!(self, registry_login(auth))
    }
    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>> {
        let started = Instant::now();
        let result = self.inner.image_load(tarball).await;
        log("image_load", &"<tarball>", started, &result);
        result
    }
    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String> {
        let started = Instant::now();
        let args = format!("(<tarball>, {options:?})");
        let result = self.inner.image_import(tarball, options).await;
        log("image_import", &args, started, &result);
        result
    }
    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        pass!(self, image_remove(name, options))
    }
    async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        pass!(self, image_tag(source, repo, tag))
    }
    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        pass!(self, network_create(request))
    }
    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>> {
        pass!(self, network_list(options))
    }
    async fn network_inspect(&self, id: &str) -> Result<Network> {
        pass!(self, network_inspect(id))
    }
    async fn network_remove(&self, id: &str) -> Result<()> {
        pass!(self, network_remove(id))
    }
    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        pass!(self, network_connect(network, container, endpoint))
    }
    async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        pass!(self, network_disconnect(network, container, force))
    }
    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume> {
        pass!(self, volume_create(options))
    }
    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse> {
        pass!(self, volume_list(options))
    }
    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        pass!(self, volume_inspect(name))
    }
    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        pass!(self, volume_remove(name, force))
    }
}
