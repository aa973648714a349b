//! Volumes of berthd through libvolume's [`VolumeService`] with the local
//! driver (`<root>/volumes`, state in `<root>/volume-state`) and Docker
//! volume plugins as further drivers (found in Docker's plugin directories
//! or berthd's `--volume-plugin-dir`): the `docker volume` commands
//! (`prune` too), and each container's `-v` and `--mount` mounts — named
//! volumes (created on first use, with `--volume-driver` or the mount's
//! driver), bind mounts of host paths, tmpfs mounts, anonymous volumes
//! (`-v /path` and the image's `Volumes`). A container holds its volumes
//! from create to remove (caller = its id), so a volume of any existing
//! container is "in use", as in Docker.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libswarm::models::{
    HostConfig, Mount as ApiMount, MountPoint, MountPointTypeEnum, MountTypeEnum,
    Volume as ApiVolume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse,
};
use libswarm::{Error, Filters, VolumeListOptions};
use libvolume::plugin::PluginDiscovery;
use libvolume::{
    Caller, CreateVolume, ListFilter, LocalDriver, Volume, VolumeMount, VolumeService,
};
use oci_spec::runtime::Mount;
use tokio::sync::OnceCell;

use super::events::{Events, Kind};

/// The label Docker puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// One `-v` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// `/host/path:/dst[:ro]`.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Container path.
        destination: String,
        /// `:ro`.
        read_only: bool,
    },
    /// `name:/dst[:ro]`, or an anonymous one (`name` None).
    Volume {
        /// The volume's name; None for an anonymous volume.
        name: Option<String>,
        /// Container path.
        destination: String,
        /// `:ro`.
        read_only: bool,
        /// How to create it if it does not exist yet.
        create: VolumeDefaults,
    },
    /// `--mount type=tmpfs,dst=/p[,tmpfs-size=…,tmpfs-mode=…]`.
    Tmpfs {
        /// Container path.
        destination: String,
        /// Mount options (`size=…`, `mode=…`).
        options: Vec<String>,
    },
}

/// Driver, options and labels of a volume a mount creates on first use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeDefaults {
    /// The driver (`--volume-driver`, `volume-driver=`); None: local.
    pub driver: Option<String>,
    /// Driver options (`volume-opt=`).
    pub options: BTreeMap<String, String>,
    /// Labels (`volume-label=`).
    pub labels: BTreeMap<String, String>,
}

impl MountRequest {
    fn destination(&self) -> &str {
        match self {
            MountRequest::Bind { destination, .. }
            | MountRequest::Volume { destination, .. }
            | MountRequest::Tmpfs { destination, .. } => destination,
        }
    }
}

fn bad_spec(spec: &str, why: &str) -> Error {
    Error::bad_request(format!("invalid volume specification: '{spec}': {why}"))
}

/// Parses one `HostConfig.Binds` entry (`SRC:DST[:MODE]`).
pub fn parse_bind(spec: &str) -> Result<MountRequest, Error> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => return Err(bad_spec(spec, "invalid number of fields")),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(bad_spec(spec, "empty section"));
    }
    if !dst.starts_with('/') {
        return Err(bad_spec(
            spec,
            &format!(
                "invalid mount config: invalid mount path: '{dst}' mount path must be absolute"
            ),
        ));
    }
    let mut read_only = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "nocopy" | "private" | "rprivate" | "shared" | "rshared"
            | "slave" | "rslave" => {}
            _ => return Err(bad_spec(spec, &format!("invalid mode: {m}"))),
        }
    }
    let destination = dst.to_string();
    Ok(if src.starts_with('/') {
        MountRequest::Bind {
            source: PathBuf::from(src),
            destination,
            read_only,
        }
    } else {
        MountRequest::Volume {
            name: Some(src.to_string()),
            destination,
            read_only,
            create: VolumeDefaults::default(),
        }
    })
}

fn bad_mount(typ: &str, why: &str) -> Error {
    Error::bad_request(format!("invalid mount config for type \"{typ}\": {why}"))
}

/// Parses one `HostConfig.Mounts` entry (`--mount`), with Docker's checks.
pub fn parse_mount(m: &ApiMount) -> Result<MountRequest, Error> {
    let typ = m.typ.unwrap_or(MountTypeEnum::EMPTY);
    let name = typ.to_string();
    let destination = m.target.clone().unwrap_or_default();
    if destination.is_empty() {
        return Err(bad_mount(&name, "field Target must not be empty"));
    }
    if !destination.starts_with('/') {
        return Err(bad_mount(
            &name,
            &format!("invalid mount path: '{destination}' mount path must be absolute"),
        ));
    }
    let source = m.source.clone().filter(|s| !s.is_empty());
    let read_only = m.read_only.unwrap_or(false);
    let no = |what: &str, field: bool| {
        if field {
            Err(bad_mount(
                &name,
                &format!("field {what} must not be specified"),
            ))
        } else {
            Ok(())
        }
    };
    match typ {
        MountTypeEnum::BIND => {
            no("VolumeOptions", m.volume_options.is_some())?;
            no("TmpfsOptions", m.tmpfs_options.is_some())?;
            let Some(src) = source else {
                return Err(bad_mount(&name, "field Source must not be empty"));
            };
            if !src.starts_with('/') {
                return Err(bad_mount(
                    &name,
                    &format!("invalid mount path: '{src}' mount path must be absolute"),
                ));
            }
            // Unlike `-v`, `--mount` does not make a missing source.
            if !Path::new(&src).exists() {
                return Err(bad_mount(
                    &name,
                    &format!("bind source path does not exist: {src}"),
                ));
            }
            Ok(MountRequest::Bind {
                source: PathBuf::from(src),
                destination,
                read_only,
            })
        }
        MountTypeEnum::VOLUME => {
            no("BindOptions", m.bind_options.is_some())?;
            no("TmpfsOptions", m.tmpfs_options.is_some())?;
            let o = m.volume_options.clone().unwrap_or_default();
            let driver = o.driver_config.clone().unwrap_or_default();
            let create = VolumeDefaults {
                driver: driver.name.filter(|d| !d.is_empty()),
                options: driver.options.unwrap_or_default().into_iter().collect(),
                labels: o.labels.unwrap_or_default().into_iter().collect(),
            };
            Ok(MountRequest::Volume {
                name: source,
                destination,
                read_only,
                create,
            })
        }
        MountTypeEnum::TMPFS => {
            no("BindOptions", m.bind_options.is_some())?;
            no("VolumeOptions", m.volume_options.is_some())?;
            if source.is_some() {
                return Err(bad_mount(&name, "field Source must not be specified"));
            }
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            if read_only {
                options.push("ro".into());
            }
            let t = m.tmpfs_options.clone().unwrap_or_default();
            if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                options.push(format!("size={size}"));
            }
            if let Some(mode) = t.mode.filter(|m| *m > 0) {
                options.push(format!("mode={mode:o}"));
            }
            Ok(MountRequest::Tmpfs {
                destination,
                options,
            })
        }
        _ => Err(Error::bad_request(format!(
            "invalid mount config: mount type unknown: \"{name}\""
        ))),
    }
}

/// Every mount a container asks for: `Binds`, then `Mounts`, then the
/// `anonymous` paths neither covers. `--volume-driver` applies to the
/// volumes `-v` creates. Two mounts on one path are refused, as Docker.
pub fn requests(host: &HostConfig, anonymous: &[String]) -> Result<Vec<MountRequest>, Error> {
    let volume_driver = host.volume_driver.clone().filter(|d| !d.is_empty());
    let mut reqs = Vec::new();
    for b in host.binds.iter().flatten() {
        let mut r = parse_bind(b)?;
        if let MountRequest::Volume { create, .. } = &mut r {
            create.driver.clone_from(&volume_driver);
        }
        reqs.push(r);
    }
    for m in host.mounts.iter().flatten() {
        reqs.push(parse_mount(m)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &reqs {
        if !seen.insert(r.destination().trim_end_matches('/').to_string()) {
            return Err(Error::bad_request(format!(
                "Duplicate mount point: {}",
                r.destination()
            )));
        }
    }
    for a in anonymous {
        if !a.starts_with('/') {
            return Err(bad_spec(a, "mount path must be absolute"));
        }
        if !seen.contains(a.trim_end_matches('/')) {
            reqs.push(MountRequest::Volume {
                name: None,
                destination: a.clone(),
                read_only: false,
                create: VolumeDefaults {
                    driver: volume_driver.clone(),
                    ..Default::default()
                },
            });
        }
    }
    Ok(reqs)
}

/// A volume a container holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    name: String,
    anonymous: bool,
}

/// What a container holds, kept on disk (`<root>/volume-holders/<id>.json`)
/// so that a restarted berthd still knows which volumes its containers
/// use, shows their mounts and releases them at `rm`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Holding {
    held: Vec<Held>,
    points: Vec<MountPoint>,
}

fn holders_dir(root: &Path) -> PathBuf {
    root.join("volume-holders")
}

/// The holdings an earlier berthd left, by container id.
fn load_holdings(root: &Path) -> HashMap<String, Holding> {
    let mut all = HashMap::new();
    let Ok(entries) = std::fs::read_dir(holders_dir(root)) else {
        return all;
    };
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Holding>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(h) => {
                all.insert(id.to_string(), h);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping volume holdings")
            }
        }
    }
    all
}

/// The daemon's volumes: the service (opened on first use: it is async)
/// and which volumes each container holds.
pub struct Volumes {
    root: PathBuf,
    service: OnceCell<VolumeService>,
    held: Mutex<HashMap<String, Vec<Held>>>,
    points: Mutex<HashMap<String, Vec<MountPoint>>>,
    events: Arc<Events>,
    plugins: Mutex<PluginDiscovery>,
}

fn vol_err(e: libvolume::Error) -> Error {
    match e {
        libvolume::Error::NotFound { name } => {
            Error::not_found(format!("get {name}: no such volume"))
        }
        libvolume::Error::InUse { name, callers } => Error::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            callers.join(", ")
        )),
        e @ libvolume::Error::Conflict { .. } => Error::conflict(e.to_string()),
        e @ (libvolume::Error::Sys { .. } | libvolume::Error::State { .. }) => {
            Error::internal(e.to_string())
        }
        e => Error::bad_request(e.to_string()),
    }
}

fn api(v: Volume) -> ApiVolume {
    ApiVolume {
        name: v.name,
        driver: v.driver,
        mountpoint: v
            .mountpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        created_at: Some(v.created_at),
        labels: v.labels.into_iter().collect(),
        options: v.options.into_iter().collect(),
        scope: Some(libswarm::models::VolumeScopeEnum::LOCAL),
        ..Default::default()
    }
}

impl Volumes {
    /// Volumes under `root` (`volumes/`, `volume-state/`), publishing
    /// their events on `events`.
    pub fn new(root: &Path, events: Arc<Events>) -> Arc<Volumes> {
        let (mut held, mut points) = (HashMap::new(), HashMap::new());
        for (id, h) in load_holdings(root) {
            held.insert(id.clone(), h.held);
            points.insert(id, h.points);
        }
        Arc::new(Volumes {
            root: root.to_path_buf(),
            service: OnceCell::new(),
            held: Mutex::new(held),
            points: Mutex::new(points),
            events,
            plugins: Mutex::new(PluginDiscovery::default()),
        })
    }

    /// Looks for volume plugins (sockets `NAME.sock`, spec files
    /// `NAME.spec`/`NAME.json`) in `dirs` instead of Docker's directories.
    /// Takes effect only before the first volume operation.
    pub fn set_plugin_dirs(&self, dirs: Vec<PathBuf>) {
        let d = PluginDiscovery::new(dirs.clone(), dirs);
        *self.plugins.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    fn created(&self, v: &Volume) {
        self.events
            .publish(Kind::Volume, "create", &v.name, &[("driver", &v.driver)]);
    }

    fn destroyed(&self, name: &str) {
        self.events.publish(Kind::Volume, "destroy", name, &[]);
    }

    /// Publishes `mount` (at start) or `unmount` (at exit) for each volume
    /// the container holds, as Docker does.
    pub fn publish_mounts(&self, container: &str, action: &str) {
        for p in self.mount_points(container) {
            let (Some(name), Some(dst)) = (&p.name, &p.destination) else {
                continue;
            };
            let rw = p.rw.unwrap_or(true).to_string();
            let driver = p.driver.clone().unwrap_or_default();
            self.events.publish(
                Kind::Volume,
                action,
                name,
                &[
                    ("container", container),
                    ("destination", dst),
                    ("driver", &driver),
                    ("read/write", &rw),
                ],
            );
        }
    }

    async fn service(&self) -> Result<&VolumeService, Error> {
        self.service
            .get_or_try_init(|| async {
                let driver = LocalDriver::builder(self.root.join("volumes"))
                    .build()
                    .map_err(vol_err)?;
                let plugins = self
                    .plugins
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                VolumeService::builder(self.root.join("volume-state"))
                    .driver(Arc::new(driver))
                    .plugin_discovery(plugins)
                    .build()
                    .await
                    .map_err(vol_err)
            })
            .await
    }

    /// `docker volume create` (an existing name returns that volume).
    pub async fn create(&self, o: VolumeCreateOptions) -> Result<ApiVolume, Error> {
        let s = self.service().await?;
        let name = o.name.filter(|n| !n.is_empty());
        if let Some(n) = &name {
            if let Ok(v) = s.inspect(n).await {
                return Ok(api(v));
            }
        }
        let mut req = match name {
            Some(n) => CreateVolume::named(n),
            None => CreateVolume::anonymous(),
        };
        if let Some(d) = o.driver.filter(|d| !d.is_empty()) {
            req = req.driver(d);
        }
        for (k, v) in o.driver_opts.unwrap_or_default() {
            req = req.option(k, v);
        }
        for (k, v) in o.labels.unwrap_or_default() {
            req = req.label(k, v);
        }
        let v = s.create(req).await.map_err(vol_err)?;
        self.created(&v);
        Ok(api(v))
    }

    /// `docker volume ls` (`name`, `driver`, `label`, `dangling` filters).
    pub async fn list(&self, o: VolumeListOptions) -> Result<VolumeListResponse, Error> {
        let s = self.service().await?;
        let get = |k: &str| o.filters.get(k).cloned().unwrap_or_default();
        let dangling = match get("dangling").first().map(String::as_str) {
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(other) => {
                return Err(Error::bad_request(format!(
                    "invalid filter 'dangling={other}'"
                )))
            }
            None => None,
        };
        let filter = ListFilter {
            names: get("name"),
            drivers: get("driver"),
            labels: get("label"),
            dangling,
        };
        let list = s.list(&filter).await.map_err(vol_err)?;
        Ok(VolumeListResponse {
            volumes: Some(list.into_iter().map(api).collect()),
            warnings: Some(Vec::new()),
        })
    }

    /// `docker volume inspect`.
    pub async fn inspect(&self, name: &str) -> Result<ApiVolume, Error> {
        let s = self.service().await?;
        Ok(api(s.inspect(name).await.map_err(vol_err)?))
    }

    /// `docker volume rm [-f]`: refused while a container holds it.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), Error> {
        let s = self.service().await?;
        let users: Vec<String> = {
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.iter()
                .filter(|(_, hs)| hs.iter().any(|h| h.name == name))
                .map(|(c, _)| c.clone())
                .collect()
        };
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        s.remove(name, force).await.map_err(vol_err)?;
        self.destroyed(name);
        Ok(())
    }

    /// `docker volume prune`: removes the unused volumes `filters` select
    /// (anonymous ones only unless `all=true`; `label`, `label!`).
    pub async fn prune(&self, filters: &Filters) -> Result<VolumePruneResponse, Error> {
        let s = self.service().await?;
        let get = |k: &str| filters.get(k).cloned().unwrap_or_default();
        for k in filters.keys() {
            if !matches!(k.as_str(), "all" | "label" | "label!") {
                return Err(Error::bad_request(format!("invalid filter '{k}'")));
            }
        }
        let all = match get("all").first().map(String::as_str) {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(v) => return Err(Error::bad_request(format!("invalid filter 'all={v}'"))),
        };
        let mut labels = get("label");
        if !all {
            labels.push(ANONYMOUS_LABEL.to_string());
        }
        let held: std::collections::HashSet<String> = {
            let h = self.held.lock().unwrap_or_else(|p| p.into_inner());
            h.values().flatten().map(|h| h.name.clone()).collect()
        };
        let not_labels = get("label!");
        let candidates = s
            .list(&ListFilter {
                labels,
                dangling: Some(true),
                ..Default::default()
            })
            .await
            .map_err(vol_err)?;
        let mut deleted = Vec::new();
        let mut reclaimed: u64 = 0;
        for v in candidates {
            let excluded = not_labels.iter().any(|l| match l.split_once('=') {
                Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                None => v.labels.contains_key(l),
            });
            if excluded || held.contains(&v.name) {
                continue;
            }
            let size = v.mountpoint.as_deref().map_or(0, dir_size);
            match s.remove(&v.name, false).await {
                Ok(()) => {
                    self.destroyed(&v.name);
                    reclaimed += size;
                    deleted.push(v.name);
                }
                // Mounted or removed meanwhile: not ours to prune.
                Err(libvolume::Error::InUse { .. } | libvolume::Error::NotFound { .. }) => {}
                Err(e) => return Err(vol_err(e)),
            }
        }
        // Docker publishes the prune itself too, with what it reclaimed.
        let freed = reclaimed.to_string();
        self.events
            .publish(Kind::Volume, "prune", "", &[("reclaimed", &freed)]);
        Ok(VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(i64::try_from(reclaimed).unwrap_or(i64::MAX)),
        })
    }

    /// Mounts a container's volumes (`Binds`, `Mounts`, then `anonymous`
    /// paths not already covered) and returns their OCI mounts; on error
    /// everything this call did is undone.
    pub async fn attach(
        &self,
        container: &str,
        host: &HostConfig,
        anonymous: &[String],
    ) -> Result<Vec<Mount>, Error> {
        let reqs = requests(host, anonymous)?;
        let mut mounts = Vec::new();
        let mut points = Vec::new();
        let mut done: Vec<(Held, bool)> = Vec::new();
        let result = self
            .attach_all(container, &reqs, &mut mounts, &mut points, &mut done)
            .await;
        if let Err(e) = result {
            self.undo(container, &done).await;
            return Err(e);
        }
        let held: Vec<Held> = done.into_iter().map(|(h, _)| h).collect();
        let holding = Holding {
            held: held.clone(),
            points: points.clone(),
        };
        if let Err(e) = self.save_holding(container, &holding) {
            // Only a restarted berthd would miss it: warn, do not fail.
            tracing::warn!(%container, error = %e, "saving the container's volumes");
        }
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(container.to_string(), held);
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(container.to_string(), points);
        Ok(mounts)
    }

    fn save_holding(&self, container: &str, h: &Holding) -> std::io::Result<()> {
        let dir = holders_dir(&self.root);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{container}.json.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(h).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, dir.join(format!("{container}.json")))
    }

    async fn attach_all(
        &self,
        container: &str,
        reqs: &[MountRequest],
        mounts: &mut Vec<Mount>,
        points: &mut Vec<MountPoint>,
        done: &mut Vec<(Held, bool)>,
    ) -> Result<(), Error> {
        for r in reqs {
            let (source, destination, read_only) = match r {
                MountRequest::Bind {
                    source,
                    destination,
                    read_only,
                } => {
                    // As `docker run -v`: a missing host directory is made
                    // (an existing file is bound as it is).
                    let made = match source.try_exists() {
                        Ok(true) => Ok(()),
                        _ => std::fs::create_dir_all(source),
                    };
                    made.map_err(|e| {
                        Error::bad_request(format!(
                            "error while creating mount source path '{}': {e}",
                            source.display()
                        ))
                    })?;
                    points.push(MountPoint {
                        typ: Some(MountPointTypeEnum::BIND),
                        source: Some(source.display().to_string()),
                        destination: Some(destination.clone()),
                        mode: Some(if *read_only { "ro" } else { "" }.into()),
                        rw: Some(!*read_only),
                        propagation: Some("rprivate".into()),
                        ..Default::default()
                    });
                    (source.clone(), destination, *read_only)
                }
                MountRequest::Tmpfs {
                    destination,
                    options,
                } => {
                    points.push(MountPoint {
                        typ: Some(MountPointTypeEnum::TMPFS),
                        destination: Some(destination.clone()),
                        rw: Some(!options.iter().any(|o| o == "ro")),
                        ..Default::default()
                    });
                    let m = oci_spec::runtime::MountBuilder::default()
                        .destination(destination)
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(options.clone())
                        .build()
                        .map_err(|e| Error::bad_request(e.to_string()))?;
                    mounts.push(m);
                    continue;
                }
                MountRequest::Volume {
                    name,
                    destination,
                    read_only,
                    create,
                } => {
                    let s = self.service().await?;
                    let with_defaults = |mut req: CreateVolume| {
                        if let Some(d) = &create.driver {
                            req = req.driver(d.clone());
                        }
                        for (k, v) in &create.options {
                            req = req.option(k.clone(), v.clone());
                        }
                        for (k, v) in &create.labels {
                            req = req.label(k.clone(), v.clone());
                        }
                        req
                    };
                    let (name, created) = match name {
                        Some(n) => match s.inspect(n).await {
                            Ok(_) => (n.clone(), false),
                            Err(e) if e.is_not_found() => {
                                let v = s
                                    .create(with_defaults(CreateVolume::named(n.clone())))
                                    .await
                                    .map_err(|e| create_err(n, e))?;
                                self.created(&v);
                                (v.name, true)
                            }
                            Err(e) => return Err(vol_err(e)),
                        },
                        None => {
                            let req = CreateVolume::anonymous().label(ANONYMOUS_LABEL, "");
                            let v = s.create(with_defaults(req)).await.map_err(vol_err)?;
                            self.created(&v);
                            (v.name, true)
                        }
                    };
                    let driver = s.inspect(&name).await.map(|v| v.driver).unwrap_or_default();
                    let held = Held {
                        name: name.clone(),
                        anonymous: matches!(r, MountRequest::Volume { name: None, .. }),
                    };
                    let path = match s.mount(&name, Caller::new(container)).await {
                        Ok(p) => p,
                        Err(e) => {
                            if created {
                                let _ = s.remove(&name, true).await;
                            }
                            return Err(vol_err(e));
                        }
                    };
                    points.push(MountPoint {
                        typ: Some(MountPointTypeEnum::VOLUME),
                        name: Some(name.clone()),
                        source: Some(path.display().to_string()),
                        destination: Some(destination.clone()),
                        driver: Some(driver),
                        mode: Some(if *read_only { "ro" } else { "z" }.into()),
                        rw: Some(!*read_only),
                        propagation: Some(String::new()),
                    });
                    done.push((held, created));
                    (path, destination, *read_only)
                }
            };
            let m = VolumeMount::new(&source, destination)
                .read_only(read_only)
                .build()
                .map_err(|e| Error::bad_request(e.to_string()))?;
            mounts.push(m);
        }
        Ok(())
    }

    async fn undo(&self, container: &str, done: &[(Held, bool)]) {
        let Ok(s) = self.service().await else { return };
        for (h, created) in done.iter().rev() {
            let _ = s.unmount(&h.name, container).await;
            if *created && s.remove(&h.name, true).await.is_ok() {
                self.destroyed(&h.name);
            }
        }
    }

    /// Releases a container's volumes (on remove); `remove_anonymous`
    /// (`rm -v`) also removes its anonymous volumes.
    pub async fn detach(&self, container: &str, remove_anonymous: bool) {
        let file = holders_dir(&self.root).join(format!("{container}.json"));
        if let Err(e) = std::fs::remove_file(&file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %file.display(), error = %e, "removing volume holdings");
            }
        }
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(container);
        let held = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(container)
            .unwrap_or_default();
        if held.is_empty() {
            return;
        }
        let Ok(s) = self.service().await else { return };
        for h in held {
            if let Err(e) = s.unmount(&h.name, container).await {
                tracing::warn!(volume = %h.name, error = %e, "unmounting volume");
            }
            if h.anonymous && remove_anonymous {
                match s.remove(&h.name, false).await {
                    Ok(()) => self.destroyed(&h.name),
                    Err(e) => {
                        tracing::warn!(volume = %h.name, error = %e, "removing anonymous volume")
                    }
                }
            }
        }
    }
}

impl Volumes {
    /// A container's mounts as `docker inspect` shows them.
    pub fn mount_points(&self, container: &str) -> Vec<MountPoint> {
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(container)
            .cloned()
            .unwrap_or_default()
    }
}

fn create_err(name: &str, e: libvolume::Error) -> Error {
    match e {
        e @ libvolume::Error::InvalidName { .. } => {
            Error::bad_request(format!("create {name}: {e}"))
        }
        e => vol_err(e),
    }
}

/// Bytes under `path` (files counted once per inode; errors count as 0).
fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
}

/// The image's `Volumes` and the request's `Config.Volumes` (`-v /path`).
pub fn anonymous_paths(
    image: &[String],
    config: Option<&HashMap<String, HashMap<(), ()>>>,
) -> Vec<String> {
    let mut all: BTreeMap<String, ()> = image.iter().map(|p| (p.clone(), ())).collect();
    for p in config.into_iter().flat_map(|c| c.keys()) {
        all.insert(p.clone(), ());
    }
    all.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_docker() {
        assert_eq!(
            parse_bind("/srv:/data:ro").unwrap(),
            MountRequest::Bind {
                source: "/srv".into(),
                destination: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_bind("cache:/c").unwrap(),
            MountRequest::Volume {
                name: Some("cache".into()),
                destination: "/c".into(),
                read_only: false,
                create: VolumeDefaults::default(),
            }
        );
        let e = parse_bind("cache:rel").unwrap_err().message;
        assert!(e.contains("mount path must be absolute"), "{e}");
        assert!(parse_bind("a:/b:xx")
            .unwrap_err()
            .message
            .contains("invalid mode"));
        assert!(parse_bind("a:/b:ro:x").is_err());
        assert_eq!(
            anonymous_paths(
                &["/a".into()],
                Some(&[("/b".to_string(), HashMap::new())].into())
            ),
            vec!["/a".to_string(), "/b".to_string()]
        );
    }
}
