//! The [`Backend`] trait: what a container engine does, as one typed,
//! object-safe async interface.

use async_trait::async_trait;

use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse, ImageDeleteResponseItem,
    ImageInspect, ImageSummary, Network, NetworkCreateRequest, NetworkCreateResponse, SystemInfo,
    SystemVersion, Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse,
};
use crate::types::{
    AttachOptions, AttachSession, BoxStream, ByteStream, ContainerCreateBody, ContainerListOptions,
    ContainerRemoveOptions, ContainerStats, EventsOptions, ExecStartOptions, Filters,
    ImageImportOptions, ImageListOptions, ImageRemoveOptions, LogsOptions, NetworkListOptions,
    OutputChunk, PullMessage, RegistryAuth, VolumeListOptions, WaitCondition, WaitHandle,
};
use crate::{Error, Result};

/// What a container engine does. Every adapter in this crate is a `Backend`
/// that serves, wraps or composes other `Backend`s; use it as
/// `Arc<dyn Backend>`.
///
/// Names and ids: every method that takes a container, image, network or
/// volume accepts what the Docker API accepts (full id, unique id prefix or
/// name).
///
/// ```
/// use std::sync::Arc;
/// use libswarm::{Backend, fake::FakeBackend};
///
/// # tokio_test_block(async {
/// let engine: Arc<dyn Backend> = Arc::new(FakeBackend::new());
/// let version = engine.version().await.unwrap();
/// assert_eq!(version.api_version.as_deref(), Some("1.44"));
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    // ---- system ----

    /// Liveness check (`GET /_ping`).
    async fn ping(&self) -> Result<()>;
    /// Engine and API versions.
    async fn version(&self) -> Result<SystemVersion>;
    /// System-wide information (counts, kernel, drivers).
    async fn info(&self) -> Result<SystemInfo>;
    /// The event stream, filtered; replays from `since` when given.
    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>>;

    // ---- containers ----

    /// Creates a container (not started).
    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse>;
    /// Starts a created or stopped container. Already running: NotModified.
    async fn container_start(&self, id: &str) -> Result<()>;
    /// Stops with the stop signal, then kills after `timeout` seconds.
    /// Not running: NotModified.
    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()>;
    /// Sends `signal` (name like `SIGKILL`/`KILL` or number; default KILL).
    /// Not running: Conflict.
    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()>;
    /// Registers a wait; the returned handle resolves when `condition` holds.
    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle>;
    /// Removes a container (running ones only with `force`).
    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()>;
    /// Lists containers.
    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>>;
    /// Full detail of one container.
    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse>;
    /// Output so far, and with `follow` until the container stops.
    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>>;
    /// Attaches to the container's stdio.
    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession>;
    /// Resizes the container's TTY.
    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let _ = (id, height, width);
        Ok(())
    }
    /// Resource usage: one sample, or a sample a second with `stream`.
    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>>;
    /// The container's processes.
    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse>;

    // ---- exec ----

    /// Prepares a process to run in a running container; returns its id.
    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String>;
    /// Starts a prepared exec.
    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession>;
    /// State and exit code of an exec.
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse>;
    /// Resizes an exec's TTY.
    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let _ = (exec_id, height, width);
        Ok(())
    }

    // ---- images ----

    /// Lists images.
    async fn image_list(&self, options: ImageListOptions) -> Result<Vec<ImageSummary>>;
    /// Full detail of one image.
    async fn image_inspect(&self, name: &str) -> Result<ImageInspect>;
    /// Makes `reference` available locally (pull); NotFound if it cannot.
    async fn image_pull(&self, reference: &str) -> Result<()>;
    /// [`image_pull`](Self::image_pull) as Docker's progress lines while it
    /// runs (what `docker pull` shows), with the credentials the client
    /// sent (`X-Registry-Auth`), if any. An error before the first line is
    /// the request's error; a later one ends the stream. The default
    /// ignores the credentials, pulls first and then says only that the
    /// image is there.
    async fn image_pull_progress(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<Result<PullMessage>>> {
        let _ = auth;
        self.image_pull(reference).await?;
        let done = PullMessage::status(format!("Status: Image is up to date for {reference}"));
        Ok(Box::pin(futures::stream::iter([Ok(done)])))
    }
    /// Checks credentials against their registry (`docker login`);
    /// returns the status to show, e.g. "Login Succeeded".
    async fn registry_login(&self, auth: RegistryAuth) -> Result<String> {
        let _ = auth;
        Err(Error::not_implemented("registry login"))
    }
    /// Loads a `docker save` tarball; returns the loaded references.
    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>>;
    /// Creates an image from a root filesystem tarball; returns its id.
    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String>;
    /// Untags and deletes an image.
    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>>;
    /// Names the image `source` refers to `repo[:tag]` (`docker tag`;
    /// no tag means `latest`).
    async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let _ = (source, repo, tag);
        Err(Error::not_implemented("image tag"))
    }

    // ---- networks ----

    /// Creates a network.
    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse>;
    /// Lists networks.
    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>>;
    /// Full detail of one network.
    async fn network_inspect(&self, id: &str) -> Result<Network>;
    /// Removes a network.
    async fn network_remove(&self, id: &str) -> Result<()>;
    /// Connects a container to a network.
    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()>;
    /// Disconnects a container from a network.
    async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()>;

    // ---- volumes ----

    /// Creates a volume (an existing name returns the existing volume).
    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume>;
    /// Lists volumes.
    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse>;
    /// Full detail of one volume.
    async fn volume_inspect(&self, name: &str) -> Result<Volume>;
    /// Removes a volume (in use: Conflict unless `force`).
    async fn volume_remove(&self, name: &str, force: bool) -> Result<()>;
    /// Removes unused volumes matching `filters` (`docker volume prune`:
    /// anonymous ones only unless `all=true`; `label`, `label!`).
    /// Backends without it answer NotImplemented.
    async fn volume_prune(&self, filters: Filters) -> Result<VolumePruneResponse> {
        let _ = filters;
        Err(Error::not_implemented("volume prune"))
    }
}
