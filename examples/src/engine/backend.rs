//! [`LocalBackend`]: the libswarm `Backend` of berthd.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use libswarm::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerState, ContainerSummary,
    ContainerTopResponse, EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse,
    ImageDeleteResponseItem, ImageInspect, ImageSummary, Network, NetworkCreateRequest,
    NetworkCreateResponse, SystemInfo, SystemVersion, Volume, VolumeCreateOptions,
    VolumeListResponse, VolumePruneResponse,
};
use libswarm::util::{now_nanos, parse_signal, random_id, rfc3339, short_id, valid_name};
use libswarm::{
    filter_matches, AttachOptions, AttachSession, Backend, BoxStream, ByteStream,
    ContainerCreateBody, ContainerListOptions, ContainerRemoveOptions, ContainerStats, Error,
    EventsOptions, ExecStartOptions, Filters, ImageImportOptions, ImageListOptions,
    ImageRemoveOptions, LogsOptions, NetworkListOptions, OutputChunk, Result, VolumeListOptions,
    WaitCondition, WaitHandle,
};
use tokio::sync::{broadcast, watch};

use super::events::{Events, Kind};
use super::exec::{self, ExecRecord, Execs};
use super::network::{self, Mode, NetSpec, Networking};
use super::record::{Lifecycle, Record, Status};
use super::spec::{self, SpecInput};
use super::volume::{self, Volumes};
use super::{logs, monitor, stats, top};
use crate::images::{ImageError, ImageStore, ImportOptions, OverlayMount, Removed};

mod lifecycle;
mod pull;

/// Where berthd keeps things.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state (`images/`, `containers/`); berthd: /var/lib/berth.
    pub root: PathBuf,
    /// libcontainer's run state; berthd: /run/berth/containers.
    pub state_dir: PathBuf,
    /// The program run as `PROGRAM shim …` per container (berthd itself).
    pub shim_program: PathBuf,
}

struct Inner {
    config: EngineConfig,
    images: ImageStore,
    network: std::sync::OnceLock<Arc<Networking>>,
    containers: Mutex<HashMap<String, Record>>,
    execs: Arc<Execs>,
    volumes: Arc<Volumes>,
    events: Arc<Events>,
    registries: std::sync::RwLock<crate::images::RegistryConfig>,
    /// The daemon's `--log-opt` defaults for json-file.
    log_defaults: std::sync::RwLock<HashMap<String, String>>,
}

/// The local engine: images from [`ImageStore`], containers run by
/// libcontainer under a per-container shim process.
///
/// ```no_run
/// use std::sync::Arc;
/// use examples::engine::{EngineConfig, LocalBackend};
/// use libswarm::dockerserver::{serve, ListenAddr};
/// # async fn f() -> anyhow::Result<()> {
/// let engine = LocalBackend::open(EngineConfig {
///     root: "/var/lib/berth".into(),
///     state_dir: "/run/berth/containers".into(),
///     shim_program: std::env::current_exe()?,
/// })?;
/// let server = serve(Arc::new(engine.clone()), &ListenAddr::parse("unix:///run/berth/berth.sock")?).await?;
/// # drop(server); Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

fn image_err(e: ImageError) -> Error {
    match e {
        e @ ImageError::NotFound(_) => Error::not_found(e.to_string()),
        ImageError::Conflict(m) => Error::conflict(m),
        e @ ImageError::Io { .. } => Error::internal(e.to_string()),
        e => Error::bad_request(e.to_string()),
    }
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::internal(format!("{what}: {e}"))
}

fn convert<T: serde::Serialize, U: serde::de::DeserializeOwned>(v: &T) -> Result<U> {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::internal(format!("converting image metadata: {e}")))
}

async fn collect(mut s: ByteStream) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

impl LocalBackend {
    /// Opens (creating) the store under `config.root`.
    pub fn open(config: EngineConfig) -> Result<LocalBackend> {
        let images = ImageStore::open(config.root.join("images")).map_err(image_err)?;
        for d in [config.root.join("containers"), config.state_dir.clone()] {
            std::fs::create_dir_all(&d).map_err(io_err("creating state directory"))?;
        }
        let events = Events::new();
        let volumes = Volumes::new(&config.root, events.clone());
        Ok(LocalBackend {
            inner: Arc::new(Inner {
                config,
                images,
                network: std::sync::OnceLock::new(),
                containers: Mutex::new(HashMap::new()),
                execs: Arc::default(),
                volumes,
                events,
                registries: Default::default(),
                log_defaults: Default::default(),
            }),
        })
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    /// Looks for Docker volume plugins in `dirs` (berthd's
    /// `--volume-plugin-dir`) instead of /run/docker/plugins and
    /// /etc/docker/plugins; call before serving.
    pub fn set_volume_plugin_dirs(&self, dirs: Vec<PathBuf>) {
        self.inner.volumes.set_plugin_dirs(dirs);
    }

    /// The daemon's json-file options (dockerd's `--log-opt`, checked with
    /// [`crate::engine::logrot::daemon_opts`]): containers created later
    /// get those they do not set themselves.
    pub fn set_log_defaults(&self, opts: HashMap<String, String>) {
        *self
            .inner
            .log_defaults
            .write()
            .unwrap_or_else(|p| p.into_inner()) = opts;
    }

    /// Turns networking on (berthd's `--network-host-netns`): containers
    /// then join libnetwork networks; without it each gets an empty
    /// network namespace and the network API answers with an error.
    pub fn enable_networking(&self, net: Arc<Networking>) -> Result<()> {
        self.inner
            .network
            .set(net)
            .map_err(|_| Error::internal("networking is already on"))
    }

    fn networking(&self) -> Result<&Arc<Networking>> {
        self.inner.network.get().ok_or_else(|| {
            Error::bad_request(
                "networking is off in this berthd (it was started with --network-host-netns none)",
            )
        })
    }

    /// Joins the container's network (if networking is on) and puts the
    /// namespace, /etc/hosts and /etc/resolv.conf into its spec.
    async fn container_network(
        &self,
        id: &str,
        name: &str,
        body: &ContainerCreateBody,
        dir: &Path,
        spec: oci_spec::runtime::Spec,
    ) -> Result<oci_spec::runtime::Spec> {
        let host = body.host_config.clone().unwrap_or_default();
        let net = match self.inner.network.get() {
            _ if matches!(network::mode(&host)?, Mode::Container(_)) => {
                network::check_container_mode(body)?;
                self.shared_netns(id, &host)?
            }
            Some(n) => {
                let hostname = body
                    .config
                    .hostname
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| short_id(id).to_string());
                let links =
                    network::links::targets(&self.lock(), &host, |m, k| self.resolve(m, k))?;
                n.attach_container(id, name, &hostname, body, dir, &links)
                    .await?
            }
            None => match network::check_offline(&host).and(network::mode(&host))? {
                Mode::Host => NetSpec::Host,
                Mode::Network(n) if n != network::DEFAULT_NETWORK => {
                    return Err(Error::bad_request(format!("network {n} not found")))
                }
                _ => NetSpec::Isolated,
            },
        };
        let applied = network::apply(spec, &net).map(|s| match self.inner.network.get() {
            Some(n) => network::links::add_env(s, &n.take_link_env(id)),
            None => s,
        });
        if applied.is_err() {
            self.release_network(id).await;
        }
        applied
    }

    /// `--network container:NAME`: the running target's namespace (with
    /// networking on, also its /etc/hosts and resolv.conf).
    fn shared_netns(&self, id: &str, host: &libswarm::models::HostConfig) -> Result<NetSpec> {
        let Mode::Container(target) = network::mode(host)? else {
            return Ok(NetSpec::Isolated);
        };
        let (tid, pid) = {
            let map = self.lock();
            // 400, not 404: the docker CLI answers a 404 by pulling the image.
            let tid = (self.resolve(&map, &target)).map_err(|e| Error::bad_request(e.message))?;
            let r = &map[&tid];
            if r.status != Status::Running {
                return Err(Error::conflict(format!(
                    "cannot join network of a non running container: {target}"
                )));
            }
            (tid, r.pid)
        };
        let shared = (self.inner.network.get()).and_then(|n| n.shared_with(id, &tid));
        Ok(shared.unwrap_or_else(|| NetSpec::Joined {
            netns: format!("/proc/{pid}/ns/net").into(),
            hosts: None,
            resolv_conf: None,
        }))
    }

    async fn release_network(&self, id: &str) {
        if let Some(n) = self.inner.network.get() {
            n.release(id).await;
        }
    }

    /// Publishes a container event (with its name and image).
    fn container_event(&self, id: &str, action: &str, extra: &[(&str, &str)]) {
        let Some((name, image)) = self
            .lock()
            .get(id)
            .map(|r| (r.name.clone(), r.image_ref.clone()))
        else {
            return;
        };
        let mut attrs = vec![("name", name.as_str()), ("image", image.as_str())];
        attrs.extend_from_slice(extra);
        self.inner
            .events
            .publish(Kind::Container, action, id, &attrs);
    }

    fn network_event(&self, net: &Network, action: &str, container: Option<&str>) {
        let (name, driver) = (net.name.clone().unwrap_or_default(), net.driver.clone());
        let mut attrs = vec![
            ("name", name.as_str()),
            ("type", driver.as_deref().unwrap_or("")),
        ];
        attrs.extend(container.map(|c| ("container", c)));
        let id = net.id.clone().unwrap_or_default();
        self.inner
            .events
            .publish(Kind::Network, action, &id, &attrs);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        self.inner
            .containers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn resolve(&self, map: &HashMap<String, Record>, key: &str) -> Result<String> {
        let key = key.trim_start_matches('/');
        if map.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(r) = map.values().find(|r| r.name == key) {
            return Ok(r.id.clone());
        }
        let hits: Vec<&String> = map.keys().filter(|id| id.starts_with(key)).collect();
        match hits.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(Error::not_found(format!("No such container: {key}"))),
            _ => Err(Error::bad_request(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    fn id_of(&self, key: &str) -> Result<String> {
        let map = self.lock();
        self.resolve(&map, key)
    }

    fn signal(&self, id: &str, sig: i32) -> Result<()> {
        let mut c = libcontainer::Container::load(&self.inner.config.state_dir, id)
            .map_err(|e| Error::conflict(format!("Container {id} is not running: {e}")))?;
        c.kill(sig)
            .map_err(|e| Error::conflict(format!("Cannot kill container {id}: {e}")))?;
        self.container_event(id, "kill", &[("signal", &sig.to_string())]);
        Ok(())
    }

    async fn wait_exit(&self, id: &str, timeout: Option<Duration>) -> bool {
        let rx = {
            let map = self.lock();
            match map.get(id) {
                Some(r) if matches!(r.status, Status::Running | Status::Starting) => {
                    r.life.subscribe()
                }
                _ => return true,
            }
        };
        let exits = rx.borrow().exits;
        let mut rx = rx;
        let fut = rx.wait_for(|l| l.exits > exits || l.removed);
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => {
                let _ = fut.await;
                true
            }
        }
    }

    fn summary(r: &Record) -> ContainerSummary {
        ContainerSummary {
            id: Some(r.id.clone()),
            names: Some(vec![format!("/{}", r.name)]),
            image: Some(r.image_ref.clone()),
            image_id: Some(r.image_id.clone()),
            command: Some(r.args.join(" ")),
            created: Some(r.created / 1_000_000_000),
            labels: Some(r.body.config.labels.clone().unwrap_or_default()),
            state: Some(r.state().as_ref().to_string()),
            status: Some(r.status_text()),
            ports: Some(Vec::new()),
            mounts: Some(Vec::new()),
            ..Default::default()
        }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn version(&self) -> Result<SystemVersion> {
        Ok(SystemVersion {
            version: Some(env!("CARGO_PKG_VERSION").into()),
            api_version: Some(libswarm::API_VERSION.into()),
            min_api_version: Some(libswarm::MIN_API_VERSION.into()),
            os: Some("linux".into()),
            arch: Some(std::env::consts::ARCH.into()),
            ..Default::default()
        })
    }

    async fn info(&self) -> Result<SystemInfo> {
        let map = self.lock();
        let running = map.values().filter(|r| r.status == Status::Running).count() as i64;
        Ok(SystemInfo {
            name: Some("berthd".into()),
            containers: Some(map.len() as i64),
            containers_running: Some(running),
            containers_stopped: Some(map.len() as i64 - running),
            images: Some(self.inner.images.list().map(|l| l.len()).unwrap_or(0) as i64),
            driver: Some("overlay".into()),
            os_type: Some("linux".into()),
            docker_root_dir: Some(self.inner.config.root.display().to_string()),
            ..Default::default()
        })
    }

    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>> {
        Ok(self.inner.events.stream(options))
    }

    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let image_ref = body
            .config
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Error::bad_request("no image given (Image)"))?;
        lifecycle::check_restart_policy(&body)?;
        let mut body = body;
        let log_defaults = self.inner.log_defaults.read().map(|d| d.clone());
        crate::engine::logrot::settle(&mut body, &log_defaults.unwrap_or_default())?;
        if let Some(n) = name {
            if !valid_name(n) {
                return Err(Error::bad_request(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let id = random_id();
        let name = name
            .map(String::from)
            .unwrap_or_else(|| format!("berth_{}", short_id(&id)));
        {
            let map = self.lock();
            if let Some(other) = map.values().find(|r| r.name == name) {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        let store = self.inner.images.clone();
        let dir = self.inner.config.root.join("containers").join(&id);
        let (image_id, image_cfg, mount) = {
            let (image_ref, dir) = (image_ref.clone(), dir.clone());
            store
                .run_blocking(move |s| {
                    let image_id = s.image_id(&image_ref)?;
                    let cfg = s.runtime_config(&image_ref)?;
                    let mount = s.mount(&image_ref, &dir.join("fs"))?;
                    Ok((image_id, cfg, mount))
                })
                .await
                .map_err(image_err)?
        };
        let body = network::with_image_ports(body, &image_cfg.exposed_ports);
        // Drops (unmounts and removes) the rootfs if anything below fails.
        let rootfs = mount.rootfs();
        let spec = spec::build(&SpecInput {
            body: &body,
            image: &image_cfg,
            id: &id,
            rootfs: &rootfs,
        });
        let spec = match spec {
            Ok(s) => s,
            Err(e) => {
                drop(mount);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::bad_request(e.to_string()));
            }
        };
        let mut spec = spec;
        let anonymous = volume::anonymous_paths(&image_cfg.volumes, body.config.volumes.as_ref());
        let host = body.host_config.clone().unwrap_or_default();
        match self.inner.volumes.attach(&id, &host, &anonymous).await {
            Ok(m) => spec.mounts_mut().get_or_insert_with(Vec::new).extend(m),
            Err(e) => {
                drop(mount);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        }
        let spec = match self.container_network(&id, &name, &body, &dir, spec).await {
            Ok(s) => s,
            Err(e) => {
                self.inner.volumes.detach(&id, true).await;
                drop(mount);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let written = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::internal(e.to_string()))
            .and_then(|j| {
                std::fs::write(dir.join("config.json"), j).map_err(io_err("config.json"))
            });
        if let Err(e) = written {
            self.inner.volumes.detach(&id, true).await;
            self.release_network(&id).await;
            drop(mount);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let _kept = mount.keep();
        let args = spec::command_line(&body, &image_cfg);
        let (stdin_tx, stdin_rx) = if body.config.open_stdin.unwrap_or(false) {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let record = Record {
            id: id.clone(),
            name,
            image_ref,
            image_id: image_id.to_string(),
            body,
            args,
            dir,
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            created: now_nanos(),
            started: 0,
            finished: 0,
            log_bytes: 0,
            restart_count: 0,
            manually_stopped: false,
            restarting: false,
            no_restart: false,
            backoff: 0,
            monitor: None,
            live: broadcast::channel(1024).0,
            life: watch::channel(Lifecycle::default()).0,
            stdin_tx,
            stdin_rx,
        };
        record.save();
        self.lock().insert(id.clone(), record);
        self.container_event(&id, "create", &[]);
        Ok(ContainerCreateResponse {
            id,
            warnings: Vec::new(),
        })
    }

    async fn container_start(&self, id: &str) -> Result<()> {
        let id = {
            let mut map = self.lock();
            let id = self.resolve(&map, id)?;
            // A start by the user lifts a `docker stop` (restart policies).
            if let Some(r) = map.get_mut(&id) {
                r.manually_stopped = false;
            }
            id
        };
        self.run_container(&id).await
    }

    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let id = self.id_of(id)?;
        self.mark_stopped(&id);
        let running = matches!(
            self.lock().get(&id).map(|r| r.status),
            Some(Status::Running)
        );
        if !running {
            return Err(Error::not_modified("container already stopped"));
        }
        let secs = timeout.unwrap_or(10).max(0) as u64;
        let _ = self.signal(&id, libc::SIGTERM);
        if !self.wait_exit(&id, Some(Duration::from_secs(secs))).await {
            let _ = self.signal(&id, libc::SIGKILL);
            self.wait_exit(&id, None).await;
        }
        self.container_event(&id, "stop", &[]);
        Ok(())
    }

    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let id = self.id_of(id)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            None => libc::SIGKILL,
            Some(s) => {
                parse_signal(s).ok_or_else(|| Error::bad_request(format!("Invalid signal: {s}")))?
            }
        };
        let running = matches!(
            self.lock().get(&id).map(|r| r.status),
            Some(Status::Running)
        );
        if !running {
            return Err(Error::conflict(format!(
                "Cannot kill container: {id}: Container {id} is not running"
            )));
        }
        self.mark_stopped(&id);
        self.signal(&id, sig)
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let (mut rx, running) = {
            let map = self.lock();
            let id = self.resolve(&map, id)?;
            let r = &map[&id];
            (
                r.life.subscribe(),
                matches!(r.status, Status::Running | Status::Starting),
            )
        };
        let now = *rx.borrow();
        if condition == WaitCondition::NotRunning && !running {
            return Ok(WaitHandle::ready(now.response()));
        }
        Ok(WaitHandle::new(async move {
            let mut last = now;
            loop {
                let done = match condition {
                    WaitCondition::Removed => last.removed,
                    _ => last.exits > now.exits || last.removed,
                };
                if done {
                    return Ok(last.response());
                }
                if rx.changed().await.is_err() {
                    return Ok(last.response());
                }
                last = *rx.borrow();
            }
        }))
    }

    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()> {
        let id = self.id_of(id)?;
        let running = matches!(
            self.lock().get(&id).map(|r| r.status),
            Some(Status::Running | Status::Starting)
        );
        if running {
            if !options.force {
                return Err(Error::conflict(format!(
                    "cannot remove container \"{id}\": container is running: stop the container before removing or force remove"
                )));
            }
            let _ = self.signal(&id, libc::SIGKILL);
            self.wait_exit(&id, Some(Duration::from_secs(10))).await;
        }
        let Some(r) = self.lock().remove(&id) else {
            // Removed meanwhile (--rm racing docker rm).
            return Ok(());
        };
        self.inner.execs.lock().retain(|_, e| e.container != id);
        let attrs = [("name", r.name.as_str()), ("image", r.image_ref.as_str())];
        self.inner
            .events
            .publish(Kind::Container, "destroy", &id, &attrs);
        self.inner.volumes.detach(&id, options.volumes).await;
        self.release_network(&id).await;
        let dir = r.dir.clone();
        let cleaned = tokio::task::spawn_blocking(move || {
            OverlayMount::cleanup(&dir.join("fs")).map_err(image_err)?;
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::internal(format!("removing {}: {e}", dir.display())))
                }
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))
        .and_then(|r| r);
        // Waiters for removal (docker run --rm) see it only once the
        // rootfs and directory are gone.
        r.life.send_modify(|l| l.removed = true);
        cleaned
    }

    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let map = self.lock();
        let mut list: Vec<&Record> = map
            .values()
            .filter(|r| options.all || r.status == Status::Running || r.restarting)
            .filter(|r| filter_matches(&options.filters, "id", |w| r.id.starts_with(w)))
            .filter(|r| filter_matches(&options.filters, "name", |w| r.name.contains(w)))
            .filter(|r| filter_matches(&options.filters, "status", |w| r.state().as_ref() == w))
            .collect();
        list.sort_by_key(|r| std::cmp::Reverse(r.created));
        if let Some(n) = options.limit {
            list.truncate(n);
        }
        let mut list: Vec<ContainerSummary> = list.into_iter().map(Self::summary).collect();
        if let Some(n) = self.inner.network.get() {
            list.iter_mut().for_each(|c| n.summarize(c));
        }
        Ok(list)
    }

    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        let map = self.lock();
        let id = self.resolve(&map, id)?;
        let r = &map[&id];
        let time = |t: i64| {
            if t == 0 {
                "0001-01-01T00:00:00Z".to_string()
            } else {
                rfc3339(t)
            }
        };
        let mut config = r.body.config.clone();
        config.tty = Some(r.tty());
        Ok(ContainerInspectResponse {
            id: Some(r.id.clone()),
            created: Some(rfc3339(r.created)),
            path: r.args.first().cloned(),
            args: Some(r.args.iter().skip(1).cloned().collect()),
            state: Some(ContainerState {
                status: Some(r.state()),
                running: Some(r.status == Status::Running),
                paused: Some(false),
                restarting: Some(r.restarting),
                oom_killed: Some(false),
                dead: Some(false),
                pid: Some(r.pid),
                exit_code: Some(r.exit_code),
                error: Some(r.error.clone()),
                started_at: Some(time(r.started)),
                finished_at: Some(time(r.finished)),
                health: None,
            }),
            image: Some(r.image_id.clone()),
            name: Some(format!("/{}", r.name)),
            restart_count: Some(r.restart_count as i64),
            driver: Some("overlay".into()),
            platform: Some("linux".into()),
            network_settings: self.inner.network.get().and_then(|n| n.settings(&id)),
            log_path: Some(r.dir.join("container.log").display().to_string()),
            host_config: Some(r.body.host_config.clone().unwrap_or_default()),
            config: Some(config),
            mounts: Some(self.inner.volumes.mount_points(&r.id)),
            ..Default::default()
        })
    }

    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>> {
        let map = self.lock();
        let id = self.resolve(&map, id)?;
        let r = &map[&id];
        let sel = logs::Selection::of(&options);
        let path = monitor::log_file(&r.dir);
        let alive = matches!(r.status, Status::Running | Status::Starting);
        let until_ahead = sel.until.is_none_or(|u| u > now_nanos());
        if options.follow && alive && until_ahead {
            // Subscribed under the lock: the run's end cannot slip by.
            return Ok(logs::follow(path, options.tail, sel, r.live.subscribe()));
        }
        let span = logs::Span {
            end: None,
            tail: options.tail,
            selection: sel,
        };
        Ok(logs::stream(path, span))
    }

    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession> {
        let mut map = self.lock();
        let id = self.resolve(&map, id)?;
        // StdinOnce: the first attach with stdin owns it; its end is EOF.
        let stdin = if options.stdin {
            map.get_mut(&id).and_then(|r| r.stdin_tx.take())
        } else {
            None
        };
        let r = &map[&id];
        let tty = r.tty();
        let sel = logs::Selection::streams(options.stdout, options.stderr);
        let alive = r.status != Status::Exited;
        let live = (options.stream && alive).then(|| r.live.subscribe());
        let replay = if options.logs {
            // The file up to what live listeners have had, then live
            // output: no gap, no overlap (both taken under the lock).
            let span = logs::Span {
                end: Some(r.log_bytes),
                tail: None,
                selection: sel,
            };
            logs::stream(monitor::log_file(&r.dir), span)
        } else {
            futures::stream::empty().boxed()
        };
        let output = match live {
            Some(rx) => replay.chain(logs::live(rx, sel)).boxed(),
            None => replay,
        };
        Ok(AttachSession { stdin, output, tty })
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let id = self.id_of(id)?;
        self.resize_tty(&id, height, width).await
    }

    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>> {
        let (id, name) = {
            let map = self.lock();
            let id = self.resolve(&map, id)?;
            let name = map[&id].name.clone();
            (id, name)
        };
        let dir = self.inner.config.state_dir.clone();
        Ok(stats::stream(dir, id, name, stream))
    }

    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        let id = self.id_of(id)?;
        top::top(&self.inner.config.state_dir, &id, ps_args).await
    }

    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String> {
        let id = self.id_of(container)?;
        if self.lock().get(&id).map(|r| r.status) != Some(Status::Running) {
            return Err(Error::conflict(format!("Container {id} is not running")));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::bad_request("No exec command specified"));
        }
        let exec_id = random_id();
        let record = ExecRecord {
            container: id,
            config,
            running: false,
            exit_code: None,
            pid: 0,
            pty: None,
        };
        let action = format!(
            "exec_create: {}",
            record.config.cmd.clone().unwrap_or_default().join(" ")
        );
        let cid = record.container.clone();
        self.inner.execs.lock().insert(exec_id.clone(), record);
        self.container_event(&cid, &action, &[("execID", &exec_id)]);
        Ok(exec_id)
    }

    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession> {
        if options.tty {
            if let Some(e) = self.inner.execs.lock().get_mut(exec_id) {
                e.config.tty = Some(true);
            }
        }
        let container = self
            .inner
            .execs
            .lock()
            .get(exec_id)
            .map(|e| e.container.clone())
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?;
        let dir = self
            .lock()
            .get(&container)
            .filter(|r| r.status == Status::Running)
            .map(|r| r.dir.clone())
            .ok_or_else(|| Error::conflict(format!("Container {container} is not running")))?;
        let cfg = &self.inner.config;
        let (this, cid, eid) = (self.clone(), container.clone(), exec_id.to_string());
        let on_exit: exec::OnExit = Box::new(move |code| {
            let code = code.to_string();
            this.container_event(&cid, "exec_die", &[("execID", &eid), ("exitCode", &code)]);
        });
        let session = exec::start(
            self.inner.execs.clone(),
            &cfg.shim_program,
            &cfg.state_dir,
            &dir,
            exec_id,
            on_exit,
        )?;
        let cmd = (self.inner.execs.lock().get(exec_id))
            .and_then(|e| e.config.cmd.clone())
            .unwrap_or_default();
        let action = format!("exec_start: {}", cmd.join(" "));
        self.container_event(&container, &action, &[("execID", exec_id)]);
        Ok(session)
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        exec::inspect(&self.inner.execs, exec_id)
    }

    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        exec::resize(&self.inner.execs, exec_id, height, width)
    }

    async fn image_list(&self, _options: ImageListOptions) -> Result<Vec<ImageSummary>> {
        let list = self.inner.images.list().map_err(image_err)?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                repo_tags: i.repo_tags,
                repo_digests: i.repo_digests,
                created: i.created.as_deref().and_then(unix_seconds).unwrap_or(0),
                size: i.size as i64,
                containers: -1,
                shared_size: -1,
                ..Default::default()
            })
            .collect())
    }

    async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let i = self.inner.images.inspect(name).map_err(image_err)?;
        convert(&i)
    }

    async fn image_pull(&self, reference: &str) -> Result<()> {
        self.pull_logged(reference).await
    }

    async fn image_pull_progress(
        &self,
        reference: &str,
        auth: Option<libswarm::RegistryAuth>,
    ) -> Result<BoxStream<Result<libswarm::PullMessage>>> {
        Ok(self.pull_stream_auth(reference, auth))
    }

    async fn registry_login(&self, auth: libswarm::RegistryAuth) -> Result<String> {
        self.login(auth).await
    }

    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>> {
        let data = collect(tarball).await?;
        let loaded = self
            .inner
            .images
            .run_blocking(move |s| s.load(std::io::Cursor::new(data)))
            .await
            .map_err(image_err)?;
        for l in &loaded {
            let id = l.id.to_string();
            let name = l
                .names
                .first()
                .map(|n| n.to_string())
                .unwrap_or_else(|| id.clone());
            self.inner
                .events
                .publish(Kind::Image, "load", &id, &[("name", &name)]);
        }
        Ok(loaded
            .iter()
            .flat_map(|l| {
                if l.names.is_empty() {
                    vec![l.id.to_string()]
                } else {
                    l.names.iter().map(|n| n.to_string()).collect()
                }
            })
            .collect())
    }

    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String> {
        let data = collect(tarball).await?;
        let mut opts = ImportOptions::new();
        if let Some(repo) = options.repo.filter(|r| !r.is_empty()) {
            let tag = options.tag.filter(|t| !t.is_empty());
            opts = opts.tag(match tag {
                Some(t) => format!("{repo}:{t}"),
                None => repo,
            });
        }
        for c in options.changes {
            opts = opts.change(c);
        }
        if let Some(m) = options.message {
            opts = opts.message(m);
        }
        let id = self
            .inner
            .images
            .run_blocking(move |s| s.import(std::io::Cursor::new(data), &opts))
            .await
            .map_err(image_err)?;
        let id = id.to_string();
        self.inner.events.publish(Kind::Image, "import", &id, &[]);
        Ok(id)
    }

    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let users: Vec<(String, String)> = self
            .lock()
            .values()
            .map(|r| (r.image_id.clone(), r.id.clone()))
            .collect();
        let usage = move |image_id: &str| -> Vec<String> {
            users
                .iter()
                .filter(|(i, _)| i == image_id)
                .map(|(_, c)| c.clone())
                .collect()
        };
        let name = name.to_string();
        let force = options.force;
        let (image_id, done) = self
            .inner
            .images
            .run_blocking(move |s| {
                let id = s.image_id(&name).map(|d| d.to_string()).unwrap_or_default();
                Ok((id, s.remove(&name, force, &usage)?))
            })
            .await
            .map_err(image_err)?;
        for d in &done {
            // As Docker: the image's id, and `name` the reference untagged.
            match d {
                Removed::Untagged(n) => self.inner.events.publish(
                    Kind::Image,
                    "untag",
                    &image_id,
                    &[("name", &n.to_string())],
                ),
                Removed::Deleted(id) => {
                    let id = id.to_string();
                    self.inner
                        .events
                        .publish(Kind::Image, "delete", &id, &[("name", &id)]);
                }
            }
        }
        Ok(done
            .into_iter()
            .map(|d| match d {
                Removed::Untagged(n) => ImageDeleteResponseItem {
                    untagged: Some(n.to_string()),
                    deleted: None,
                },
                Removed::Deleted(id) => ImageDeleteResponseItem {
                    untagged: None,
                    deleted: Some(id.to_string()),
                },
            })
            .collect())
    }

    async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let target = match tag {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let name: crate::images::ImageRef = target.parse().map_err(image_err)?;
        let (source, name_) = (source.to_string(), name.to_string());
        let id = self
            .inner
            .images
            .run_blocking(move |s| {
                s.tag(&source, &name_)?;
                s.image_id(&source)
            })
            .await
            .map_err(image_err)?;
        let name = name.to_string();
        self.inner
            .events
            .publish(Kind::Image, "tag", id.as_ref(), &[("name", &name)]);
        Ok(())
    }

    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let (name, driver) = (
            request.name.clone(),
            request.driver.clone().unwrap_or_default(),
        );
        let id = self.networking()?.create(request).await?;
        let attrs = [("name", name.as_str()), ("type", driver.as_str())];
        self.inner
            .events
            .publish(Kind::Network, "create", &id, &attrs);
        Ok(NetworkCreateResponse {
            id: Some(id),
            warning: Some(String::new()),
        })
    }

    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>> {
        Ok(self.networking()?.list(&options).await)
    }

    async fn network_inspect(&self, id: &str) -> Result<Network> {
        self.networking()?.inspect(id).await
    }

    async fn network_remove(&self, id: &str) -> Result<()> {
        let net = self.networking()?.inspect(id).await?;
        self.networking()?.remove(id).await?;
        self.network_event(&net, "destroy", None);
        Ok(())
    }

    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        let id = self.id_of(container)?;
        self.networking()?
            .connect(network, &id, endpoint.as_ref())
            .await?;
        let net = self.networking()?.inspect(network).await?;
        self.network_event(&net, "connect", Some(&id));
        Ok(())
    }

    async fn network_disconnect(&self, network: &str, container: &str, _force: bool) -> Result<()> {
        let id = self.id_of(container)?;
        let net = self.networking()?.inspect(network).await?;
        self.networking()?.disconnect(network, &id).await?;
        self.network_event(&net, "disconnect", Some(&id));
        Ok(())
    }

    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume> {
        self.inner.volumes.create(options).await
    }

    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse> {
        self.inner.volumes.list(options).await
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        self.inner.volumes.inspect(name).await
    }

    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.inner.volumes.remove(name, force).await
    }

    async fn volume_prune(&self, filters: Filters) -> Result<VolumePruneResponse> {
        self.inner.volumes.prune(&filters).await
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-11-22T12:36:57Z`).
pub(super) fn unix_seconds(t: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_parses_to_unix_seconds() {
        assert_eq!(super::unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::unix_seconds("2026-11-22T12:36:57Z"),
            Some(1_795_351_017)
        );
        assert_eq!(super::unix_seconds("junk"), None);
    }
}
