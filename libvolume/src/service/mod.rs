//! The volume service: named volumes over pluggable drivers, with
//! per-caller reference counts and state that survives a restart.

mod request;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::{Mutex, OwnedMutexGuard};

pub use request::{CreateVolume, ListFilter, DEFAULT_DRIVER};

use crate::caller::{Caller, Liveness, ProcLiveness};
use crate::driver::{Options, VolumeDriver};
use crate::error::{Error, Result};
use crate::name::{generate_name, validate_name};
use crate::plugin::{PluginClient, PluginDiscovery, PluginDriver};
use crate::store::{CallerRef, Store, VolumeRecord};

/// A volume as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Name.
    pub name: String,
    /// Driver name.
    pub driver: String,
    /// Host path while mounted (or the driver's path on inspect).
    pub mountpoint: Option<PathBuf>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Driver options given on create.
    pub options: Options,
    /// Labels given on create.
    pub labels: BTreeMap<String, String>,
    /// Callers holding the volume, with their mount counts.
    pub callers: Vec<(Caller, u32)>,
    /// Driver specific status (filled by [`VolumeService::inspect`]).
    pub status: BTreeMap<String, serde_json::Value>,
}

impl Volume {
    fn from_record(record: &VolumeRecord) -> Self {
        Volume {
            name: record.name.clone(),
            driver: record.driver.clone(),
            mountpoint: record.mountpoint.clone(),
            created_at: record.created_at.clone(),
            options: record.options.clone(),
            labels: record.labels.clone(),
            callers: record
                .refs
                .values()
                .map(|r| (r.caller.clone(), r.count))
                .collect(),
            status: BTreeMap::new(),
        }
    }

    /// True when no caller holds the volume.
    pub fn is_dangling(&self) -> bool {
        self.callers.is_empty()
    }
}

/// Builds a [`VolumeService`].
pub struct VolumeServiceBuilder {
    state_dir: PathBuf,
    drivers: Vec<Arc<dyn VolumeDriver>>,
    liveness: Arc<dyn Liveness>,
    discovery: Option<PluginDiscovery>,
    sync_state: bool,
}

impl VolumeServiceBuilder {
    /// Whether state writes are fsynced (default true). Without it a write
    /// is still atomic (rename) but a power loss may lose the last changes;
    /// worth it only when the state directory is on tmpfs or expendable.
    pub fn sync_state(mut self, sync: bool) -> Self {
        self.sync_state = sync;
        self
    }

    /// Registers a driver under its [`VolumeDriver::name`].
    pub fn driver(mut self, driver: Arc<dyn VolumeDriver>) -> Self {
        self.drivers.push(driver);
        self
    }

    /// Replaces the default [`ProcLiveness`] check used on restore.
    pub fn liveness(mut self, liveness: Arc<dyn Liveness>) -> Self {
        self.liveness = liveness;
        self
    }

    /// Looks up drivers that are not registered as Docker volume plugins.
    pub fn plugin_discovery(mut self, discovery: PluginDiscovery) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Opens the state directory and restores volumes: references of dead
    /// callers are dropped and mounts nobody holds any more are unmounted.
    pub async fn build(self) -> Result<VolumeService> {
        let store = Store::open(&self.state_dir, self.sync_state)?;
        let drivers = self
            .drivers
            .into_iter()
            .map(|d| (d.name().to_string(), d))
            .collect::<HashMap<_, _>>();
        let service = VolumeService {
            inner: Arc::new(Inner {
                store,
                drivers: RwLock::new(drivers),
                liveness: self.liveness,
                discovery: self.discovery,
                volumes: std::sync::Mutex::new(BTreeMap::new()),
                published: std::sync::RwLock::new(BTreeMap::new()),
            }),
        };
        service.restore().await?;
        Ok(service)
    }
}

struct Inner {
    store: Store,
    drivers: RwLock<HashMap<String, Arc<dyn VolumeDriver>>>,
    liveness: Arc<dyn Liveness>,
    discovery: Option<PluginDiscovery>,
    // One lock per volume keeps its reference counts, driver calls and
    // state file in step without a slow driver holding up other volumes.
    // The map lock is only held to look a slot up.
    volumes: std::sync::Mutex<BTreeMap<String, Slot>>,
    // The last committed copy of every record, for list, inspect and prune
    // to read without waiting for a volume busy in a driver call.
    published: std::sync::RwLock<BTreeMap<String, VolumeRecord>>,
}

/// A volume's record behind its own lock; None once removed (a holder of
/// an old slot then sees "not found").
type Slot = Arc<Mutex<Option<VolumeRecord>>>;

/// Named volumes over pluggable drivers. Cheap to clone.
///
/// ```no_run
/// use std::sync::Arc;
/// use libvolume::{Caller, CreateVolume, LocalDriver, VolumeService};
///
/// # async fn demo() -> libvolume::Result<()> {
/// let local = LocalDriver::builder("/var/lib/berth/volumes").build()?;
/// let service = VolumeService::builder("/var/lib/berth/volume-state")
///     .driver(Arc::new(local))
///     .build()
///     .await?;
/// let vol = service.create(CreateVolume::named("data").label("app", "web")).await?;
/// let path = service.mount(&vol.name, Caller::new("container-1")).await?;
/// println!("mounted at {}", path.display());
/// service.unmount(&vol.name, "container-1").await?;
/// service.remove(&vol.name, false).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct VolumeService {
    inner: Arc<Inner>,
}

impl VolumeService {
    /// Starts building a service keeping its state in `state_dir`.
    pub fn builder(state_dir: impl AsRef<Path>) -> VolumeServiceBuilder {
        VolumeServiceBuilder {
            state_dir: state_dir.as_ref().to_path_buf(),
            drivers: Vec::new(),
            liveness: Arc::new(ProcLiveness::default()),
            discovery: None,
            sync_state: true,
        }
    }

    /// Registers a driver after the service is built.
    pub fn register_driver(&self, driver: Arc<dyn VolumeDriver>) {
        if let Ok(mut drivers) = self.inner.drivers.write() {
            drivers.insert(driver.name().to_string(), driver);
        }
    }

    /// The driver of that name: registered, else a discovered plugin.
    pub async fn driver(&self, name: &str) -> Result<Arc<dyn VolumeDriver>> {
        if let Some(d) = self
            .inner
            .drivers
            .read()
            .ok()
            .and_then(|d| d.get(name).cloned())
        {
            return Ok(d);
        }
        let unknown = || Error::UnknownDriver {
            driver: name.to_string(),
        };
        let discovery = self.inner.discovery.as_ref().ok_or_else(unknown)?;
        let plugin = match discovery.find(name).await {
            Ok(p) => p,
            Err(Error::NotFound { .. }) => return Err(unknown()),
            Err(e) => return Err(e),
        };
        let client = PluginClient::new(plugin);
        let driver: Arc<dyn VolumeDriver> =
            Arc::new(PluginDriver::activate_with(client, discovery.retry()).await?);
        self.register_driver(driver.clone());
        Ok(driver)
    }

    async fn restore(&self) -> Result<()> {
        let records = self.inner.store.load_all()?;
        // A missing plugin is looked for once, not once per volume (each
        // look-up may retry activation for a while).
        let mut unavailable = std::collections::HashSet::new();
        for mut record in records {
            let before = record.clone();
            record
                .refs
                .retain(|_, r| self.inner.liveness.is_alive(&r.caller));
            // Only volumes left mounted need their driver now.
            let driver = if record.mount_id.is_none() || unavailable.contains(&record.driver) {
                None
            } else {
                match self.driver(&record.driver).await {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!(volume = %record.name, driver = %record.driver, error = %e, "driver unavailable on restore");
                        unavailable.insert(record.driver.clone());
                        None
                    }
                }
            };
            // Without the driver the record is kept as it is until it is back.
            if let Some(driver) = driver {
                if let Some(id) = record.mount_id.clone() {
                    if record.refs.is_empty() {
                        tracing::info!(volume = %record.name, "unmounting stale volume mount");
                        if let Err(e) = driver.unmount(&record.name, &id).await {
                            tracing::warn!(volume = %record.name, error = %e, "stale unmount failed");
                        }
                        record.mount_id = None;
                        record.mountpoint = None;
                    } else {
                        // Lets the driver rebuild its own count for this id.
                        match driver.mount(&record.name, &id).await {
                            Ok(path) => record.mountpoint = Some(path),
                            Err(e) => {
                                tracing::warn!(volume = %record.name, error = %e, "remount failed")
                            }
                        }
                    }
                }
            }
            if record != before {
                self.inner.store.save(&record)?;
            }
            self.publish(&record);
            self.slots()?
                .insert(record.name.clone(), Arc::new(Mutex::new(Some(record))));
        }
        Ok(())
    }

    fn slots(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Slot>>> {
        self.inner.volumes.lock().map_err(|_| Error::State {
            path: PathBuf::from("<memory>"),
            message: "volume table lock poisoned".to_string(),
        })
    }

    /// Locks an existing volume.
    async fn lock_volume(
        &self,
        name: &str,
    ) -> Result<(Slot, OwnedMutexGuard<Option<VolumeRecord>>)> {
        let slot = self
            .slots()?
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        let guard = slot.clone().lock_owned().await;
        if guard.is_none() {
            return Err(not_found(name));
        }
        Ok((slot, guard))
    }

    /// Drops `slot` from the table if it is still the one for `name`.
    fn forget(&self, name: &str, slot: &Slot) -> Result<()> {
        let mut slots = self.slots()?;
        if slots.get(name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(name);
        }
        Ok(())
    }

    /// Writes a record to disk and publishes it.
    fn commit(&self, record: &VolumeRecord) -> Result<()> {
        self.inner.store.save(record)?;
        self.publish(record);
        Ok(())
    }

    fn publish(&self, record: &VolumeRecord) {
        if let Ok(mut published) = self.inner.published.write() {
            published.insert(record.name.clone(), record.clone());
        }
    }

    /// Deletes a record from disk and from the published copies.
    fn retire(&self, name: &str) -> Result<()> {
        self.inner.store.delete(name)?;
        if let Ok(mut published) = self.inner.published.write() {
            published.remove(name);
        }
        Ok(())
    }

    /// The committed records, sorted by name.
    fn snapshot(&self) -> Vec<VolumeRecord> {
        self.inner
            .published
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Creates a volume. Creating an existing name with the same driver
    /// returns the existing volume, as Docker does.
    pub async fn create(&self, req: CreateVolume) -> Result<Volume> {
        let name = match req.name {
            Some(n) => {
                validate_name(&n)?;
                n
            }
            None => generate_name()?,
        };
        let driver_name = req.driver.unwrap_or_else(|| DEFAULT_DRIVER.to_string());
        // Resolve the driver first: discovering and activating a plugin may
        // take a while.
        let driver = self.driver(&driver_name).await?;
        let (slot, mut guard) = loop {
            let slot = self
                .slots()?
                .entry(name.clone())
                .or_insert_with(|| Arc::new(Mutex::new(None)))
                .clone();
            let guard = slot.clone().lock_owned().await;
            // A remove or failed create may have dropped this slot while we
            // waited: start again with the table's current one.
            if self
                .slots()?
                .get(&name)
                .is_some_and(|s| Arc::ptr_eq(s, &slot))
            {
                break (slot, guard);
            }
        };
        if let Some(existing) = guard.as_ref() {
            if existing.driver != driver_name {
                return Err(Error::Conflict {
                    name,
                    existing_driver: existing.driver.clone(),
                });
            }
            return Ok(Volume::from_record(existing));
        }
        let record = VolumeRecord {
            name: name.clone(),
            driver: driver_name,
            options: req.options,
            labels: req.labels,
            created_at: crate::time::now_rfc3339(),
            mount_id: None,
            mountpoint: None,
            refs: BTreeMap::new(),
        };
        let created = match driver.create(&name, &record.options).await {
            Ok(()) => self.commit(&record).map_err(|e| (e, true)),
            Err(e) => Err((e, false)),
        };
        if let Err((e, undo)) = created {
            if undo {
                let _ = driver.remove(&name).await;
            }
            // Leave no empty slot behind; a create waiting on it starts again.
            self.forget(&name, &slot)?;
            drop(guard);
            return Err(e);
        }
        let volume = Volume::from_record(&record);
        *guard = Some(record);
        Ok(volume)
    }

    /// Takes in the volumes `driver` knows that the service does not (made
    /// before the service existed, or by another client of a plugin), as
    /// Docker lists a driver's volumes. Returns the names adopted.
    pub async fn adopt(&self, driver: &str) -> Result<Vec<String>> {
        let found = self.driver(driver).await?.list().await?;
        let mut adopted = Vec::new();
        for vol in found {
            if validate_name(&vol.name).is_err() {
                tracing::warn!(driver, volume = %vol.name, "not adopting a volume with an invalid name");
                continue;
            }
            let slot = self
                .slots()?
                .entry(vol.name.clone())
                .or_insert_with(|| Arc::new(Mutex::new(None)))
                .clone();
            let mut guard = slot.clone().lock_owned().await;
            let current = self
                .slots()?
                .get(&vol.name)
                .is_some_and(|s| Arc::ptr_eq(s, &slot));
            if guard.is_some() || !current {
                continue;
            }
            let record = VolumeRecord {
                name: vol.name.clone(),
                driver: driver.to_string(),
                options: Options::new(),
                labels: BTreeMap::new(),
                created_at: vol.created_at.unwrap_or_else(crate::time::now_rfc3339),
                mount_id: None,
                mountpoint: None,
                refs: BTreeMap::new(),
            };
            if let Err(e) = self.commit(&record) {
                self.forget(&vol.name, &slot)?;
                return Err(e);
            }
            *guard = Some(record);
            adopted.push(vol.name);
        }
        Ok(adopted)
    }

    /// One volume, with its mountpoint and status as the driver reports them.
    pub async fn inspect(&self, name: &str) -> Result<Volume> {
        let mut volume = self
            .inner
            .published
            .read()
            .ok()
            .and_then(|p| p.get(name).map(Volume::from_record))
            .ok_or_else(|| not_found(name))?;
        if let Ok(driver) = self.driver(&volume.driver).await {
            match driver.get(name).await {
                Ok(found) => {
                    volume.status = found.status;
                    if volume.mountpoint.is_none() {
                        volume.mountpoint = found.mountpoint;
                    }
                }
                Err(e) => {
                    tracing::debug!(volume = name, error = %e, "driver get failed on inspect")
                }
            }
        }
        Ok(volume)
    }

    /// Volumes matching `filter`, sorted by name.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Volume>> {
        Ok(self
            .snapshot()
            .iter()
            .filter(|r| filter.matches(r))
            .map(Volume::from_record)
            .collect())
    }

    /// Removes a volume. Refused while callers hold it unless `force`, which
    /// unmounts it first.
    pub async fn remove(&self, name: &str, force: bool) -> Result<()> {
        let (slot, mut guard) = self.lock_volume(name).await?;
        let record = guard.as_mut().ok_or_else(|| not_found(name))?;
        if !record.refs.is_empty() && !force {
            return Err(Error::InUse {
                name: name.to_string(),
                callers: record.refs.keys().cloned().collect(),
            });
        }
        let driver = match self.driver(&record.driver).await {
            Ok(d) => Some(d),
            Err(e @ Error::UnknownDriver { .. }) if force => {
                // The driver (a plugin) is gone: forget the volume, as
                // Docker's forced removal does.
                tracing::warn!(volume = name, error = %e, "forgetting volume of a missing driver");
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(driver) = driver {
            if let Some(id) = record.mount_id.clone() {
                // Forced removal of a held volume: release the mount first.
                driver.unmount(name, &id).await?;
                record.mount_id = None;
                record.mountpoint = None;
                record.refs.clear();
                self.commit(record)?;
            }
            match driver.remove(name).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) if force => {
                    tracing::warn!(volume = name, error = %e, "driver remove failed; forgetting volume")
                }
                Err(e) => return Err(e),
            }
        }
        self.retire(name)?;
        *guard = None;
        // Out of the table before the lock is released, so that a create
        // waiting on this slot starts again with a fresh one.
        self.forget(name, &slot)
    }

    /// Removes every unused volume matching `filter`; returns their names.
    pub async fn prune(&self, filter: &ListFilter) -> Result<Vec<String>> {
        let candidates: Vec<String> = self
            .snapshot()
            .into_iter()
            .filter(|r| r.refs.is_empty() && filter.matches(r))
            .map(|r| r.name)
            .collect();
        let mut removed = Vec::new();
        for name in candidates {
            match self.remove(&name, false).await {
                Ok(()) => removed.push(name),
                // Mounted or removed meanwhile: not ours to prune.
                Err(Error::InUse { .. }) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Mounts the volume for `caller` and returns its host path. The first
    /// caller's mount asks the driver; later ones only count.
    pub async fn mount(&self, name: &str, caller: Caller) -> Result<PathBuf> {
        let (_, mut guard) = self.lock_volume(name).await?;
        let record = guard.as_mut().ok_or_else(|| not_found(name))?;
        let mut updated = record.clone();
        let mut fresh_mount = None;
        let path = match (&record.mount_id, &record.mountpoint) {
            (Some(_), Some(path)) => path.clone(),
            _ => {
                let driver = self.driver(&record.driver).await?;
                let id = generate_name()?;
                let path = driver.mount(name, &id).await?;
                updated.mount_id = Some(id.clone());
                updated.mountpoint = Some(path.clone());
                fresh_mount = Some((driver, id));
                path
            }
        };
        updated
            .refs
            .entry(caller.id.clone())
            .and_modify(|r| r.count += 1)
            .or_insert(CallerRef { caller, count: 1 });
        if let Err(e) = self.commit(&updated) {
            if let Some((driver, id)) = fresh_mount {
                let _ = driver.unmount(name, &id).await;
            }
            return Err(e);
        }
        *record = updated;
        Ok(path)
    }

    /// Releases one mount of `caller_id`; the last release unmounts.
    pub async fn unmount(&self, name: &str, caller_id: &str) -> Result<()> {
        let (_, mut guard) = self.lock_volume(name).await?;
        let record = guard.as_mut().ok_or_else(|| not_found(name))?;
        let mut updated = record.clone();
        let held = updated
            .refs
            .get_mut(caller_id)
            .ok_or_else(|| Error::NotMounted {
                name: name.to_string(),
                caller: caller_id.to_string(),
            })?;
        held.count -= 1;
        if held.count == 0 {
            updated.refs.remove(caller_id);
        }
        if updated.refs.is_empty() {
            if let Some(id) = updated.mount_id.take() {
                let driver = self.driver(&record.driver).await?;
                driver.unmount(name, &id).await?;
            }
            updated.mountpoint = None;
        }
        self.commit(&updated)?;
        *record = updated;
        Ok(())
    }
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        name: name.to_string(),
    }
}
