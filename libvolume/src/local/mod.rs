//! The `local` driver: each volume is `<root>/<name>/_data`, either a plain
//! directory or a mount point for what the options describe (tmpfs, a bind
//! of a host path, a filesystem on a device or image file, nfs), as
//! Docker's local driver does. `size` gives a plain volume an ext4 loop
//! image of that size, so the limit is enforced on any host filesystem.

mod loopdev;
mod mount_opts;
mod mounter;
mod options;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use nix::mount::MsFlags;

pub use loopdev::{attach as attach_loop, detach as detach_loop, LoopDevice};
pub use mounter::{Mounter, SysMounter};
pub use options::{parse_ram_size, LocalOptions};

use crate::driver::{Capabilities, DriverVolume, Options, Scope, VolumeDriver};
use crate::error::{Error, Result};
use crate::name::validate_name;
use mount_opts::{mask_password, parse_mount_opts, resolve_addr, system_resolve};
use options::DRIVER;

const DATA_DIR: &str = "_data";
const OPTS_FILE: &str = "opts.json";
const IMAGE_FILE: &str = "disk.img";

struct LocalVolume {
    opts: LocalOptions,
    /// Mount ids currently using the volume.
    active: BTreeSet<String>,
    mounted: bool,
}

/// Builds a [`LocalDriver`].
pub struct LocalDriverBuilder {
    root: PathBuf,
    mounter: Arc<dyn Mounter>,
}

impl LocalDriverBuilder {
    /// Replaces the kernel interface (tests use a recording fake).
    pub fn mounter(mut self, mounter: Arc<dyn Mounter>) -> Self {
        self.mounter = mounter;
        self
    }

    /// Creates the root and loads the volumes already in it; a volume whose
    /// data directory is still mounted is marked mounted.
    pub fn build(self) -> Result<LocalDriver> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| Error::sys("creating volume root", &self.root, e))?;
        // Mountpoints handed out must be absolute (OCI mount sources are).
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| Error::sys("resolving volume root", &self.root, e))?;
        let mut volumes = HashMap::new();
        let entries =
            std::fs::read_dir(&root).map_err(|e| Error::sys("reading volume root", &root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::sys("reading volume root", &root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_err() || !entry.path().join(DATA_DIR).is_dir() {
                continue;
            }
            let opts = read_opts(&entry.path())?;
            let mounted =
                opts.needs_mount() && self.mounter.is_mounted(&entry.path().join(DATA_DIR))?;
            volumes.insert(
                name,
                LocalVolume {
                    opts,
                    active: BTreeSet::new(),
                    mounted,
                },
            );
        }
        Ok(LocalDriver {
            root,
            mounter: self.mounter,
            volumes: Mutex::new(volumes),
        })
    }
}

/// Docker's `local` volume driver.
///
/// ```no_run
/// use libvolume::{LocalDriver, Options, VolumeDriver};
/// # async fn demo() -> libvolume::Result<()> {
/// let local = LocalDriver::builder("/var/lib/berth/volumes").build()?;
/// let opts = Options::from([
///     ("type".to_string(), "tmpfs".to_string()),
///     ("device".to_string(), "tmpfs".to_string()),
///     ("o".to_string(), "size=64m,mode=0700".to_string()),
/// ]);
/// local.create("scratch", &opts).await?;
/// let path = local.mount("scratch", "mount-1").await?;
/// # let _ = path;
/// local.unmount("scratch", "mount-1").await?;
/// local.remove("scratch").await?;
/// # Ok(())
/// # }
/// ```
pub struct LocalDriver {
    root: PathBuf,
    mounter: Arc<dyn Mounter>,
    volumes: Mutex<HashMap<String, LocalVolume>>,
}

fn read_opts(dir: &Path) -> Result<LocalOptions> {
    let path = dir.join(OPTS_FILE);
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::State {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalOptions::default()),
        Err(e) => Err(Error::sys("reading volume options", path, e)),
    }
}

fn poisoned() -> Error {
    Error::Driver {
        driver: DRIVER.to_string(),
        message: "internal lock poisoned".to_string(),
    }
}

impl LocalDriver {
    /// A driver keeping volumes under `root`.
    pub fn builder(root: impl AsRef<Path>) -> LocalDriverBuilder {
        LocalDriverBuilder {
            root: root.as_ref().to_path_buf(),
            mounter: Arc::new(SysMounter),
        }
    }

    /// The directory holding all volumes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA_DIR)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, LocalVolume>>> {
        self.volumes.lock().map_err(|_| poisoned())
    }

    fn create_on_disk(&self, name: &str, opts: &LocalOptions) -> Result<()> {
        let dir = self.root.join(name);
        let data = dir.join(DATA_DIR);
        std::fs::create_dir_all(&data)
            .map_err(|e| Error::sys("creating volume directory", &data, e))?;
        // A plain directory needs no options file (a missing one reads as
        // no options): two fewer metadata writes on the common path.
        if opts.needs_mount() {
            let opts_path = dir.join(OPTS_FILE);
            let json = serde_json::to_vec(opts).map_err(|e| Error::State {
                path: opts_path.clone(),
                message: e.to_string(),
            })?;
            let tmp = dir.join("opts.json.tmp");
            std::fs::write(&tmp, json)
                .and_then(|()| std::fs::rename(&tmp, &opts_path))
                .map_err(|e| Error::sys("writing volume options", &opts_path, e))?;
        }
        if let Some(size) = opts.size {
            let image = dir.join(IMAGE_FILE);
            let file = std::fs::File::create(&image)
                .map_err(|e| Error::sys("creating volume image", &image, e))?;
            file.set_len(size)
                .map_err(|e| Error::sys("sizing volume image", &image, e))?;
            self.mounter.mkfs_ext4(&image)?;
        }
        Ok(())
    }

    /// Mounts `opts` on `target`; `o` has had `addr=` resolved already.
    fn mount_volume(&self, dir: &Path, target: &Path, opts: &LocalOptions, o: &str) -> Result<()> {
        let parsed = parse_mount_opts(o);
        let data = (!parsed.data.is_empty()).then_some(parsed.data.as_str());
        let mut loop_dev = None;
        let (source, fstype) = if opts.size.is_some() && opts.device.is_none() {
            let dev = self.mounter.attach_loop(&dir.join(IMAGE_FILE))?;
            let source = dev.path().to_string_lossy().into_owned();
            loop_dev = Some(dev);
            (source, Some("ext4".to_string()))
        } else {
            let device = opts.device.clone().unwrap_or_default();
            let fstype = opts
                .mount_type
                .clone()
                .filter(|t| !t.is_empty() && t != "none");
            if !parsed.flags.contains(MsFlags::MS_BIND) && Path::new(&device).is_file() {
                // An image file: mount it through a loop device, as mount -o loop.
                let dev = self.mounter.attach_loop(Path::new(&device))?;
                let source = dev.path().to_string_lossy().into_owned();
                loop_dev = Some(dev);
                (source, fstype)
            } else {
                (device, fstype)
            }
        };
        let result = self
            .mounter
            .mount(&source, target, fstype.as_deref(), parsed.flags, data);
        let result = result.and_then(|()| {
            // A bind ignores most flags on the first call: apply them with a remount.
            let bind_extra = parsed.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
            if parsed.flags.contains(MsFlags::MS_BIND) && !bind_extra.is_empty() {
                self.mounter.mount(
                    "",
                    target,
                    None,
                    bind_extra | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                    None,
                )?;
            }
            if !parsed.propagation.is_empty() {
                self.mounter
                    .mount("", target, None, parsed.propagation, None)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                if self.mounter.is_mounted(target).unwrap_or(false) {
                    let _ = self.mounter.unmount(target);
                }
                if let Some(dev) = loop_dev {
                    let _ = self.mounter.detach_loop(dev.path());
                }
                Err(Error::Driver {
                    driver: DRIVER.to_string(),
                    message: mask_password(&format!("failed to mount local volume: {e}"), o),
                })
            }
        }
    }
}

#[async_trait]
impl VolumeDriver for LocalDriver {
    fn name(&self) -> &str {
        DRIVER
    }

    async fn create(&self, name: &str, opts: &Options) -> Result<()> {
        validate_name(name)?;
        let parsed = LocalOptions::parse(opts)?;
        let mut volumes = self.lock()?;
        if volumes.contains_key(name) {
            return Ok(());
        }
        if let Err(e) = self.create_on_disk(name, &parsed) {
            let _ = std::fs::remove_dir_all(self.root.join(name));
            return Err(e);
        }
        volumes.insert(
            name.to_string(),
            LocalVolume {
                opts: parsed,
                active: BTreeSet::new(),
                mounted: false,
            },
        );
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let mut volumes = self.lock()?;
        let vol = volumes.get_mut(name).ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })?;
        let data = self.data_path(name);
        if vol.mounted || (vol.opts.needs_mount() && self.mounter.is_mounted(&data)?) {
            self.mounter.unmount(&data)?;
            vol.mounted = false;
            vol.active.clear();
        }
        // Never delete through a mount (a bind would take host data with it).
        if vol.opts.needs_mount() && self.mounter.is_mounted(&data)? {
            return Err(Error::Driver {
                driver: DRIVER.to_string(),
                message: format!("refusing to remove {}: still mounted", data.display()),
            });
        }
        let dir = self.root.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::sys("removing volume", dir, e)),
        }
        volumes.remove(name);
        Ok(())
    }

    async fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let (opts, needs_mount) = {
            let volumes = self.lock()?;
            let vol = volumes.get(name).ok_or_else(|| Error::NotFound {
                name: name.to_string(),
            })?;
            (vol.opts.clone(), vol.opts.needs_mount() && !vol.mounted)
        };
        // Resolve addr= before taking the lock for the mount itself.
        let o = match (needs_mount, &opts.mount_type) {
            (true, Some(t)) => {
                resolve_addr(t, opts.mount_opts.as_deref().unwrap_or(""), system_resolve).await?
            }
            _ => opts.mount_opts.clone().unwrap_or_default(),
        };
        let mut volumes = self.lock()?;
        let vol = volumes.get_mut(name).ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })?;
        let data = self.data_path(name);
        if vol.opts.needs_mount() && !vol.mounted {
            self.mount_volume(&self.root.join(name), &data, &vol.opts, &o)?;
            vol.mounted = true;
        }
        vol.active.insert(id.to_string());
        Ok(data)
    }

    async fn unmount(&self, name: &str, id: &str) -> Result<()> {
        let mut volumes = self.lock()?;
        let vol = volumes.get_mut(name).ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })?;
        vol.active.remove(id);
        if vol.active.is_empty() && vol.mounted {
            self.mounter.unmount(&self.data_path(name))?;
            vol.mounted = false;
        }
        Ok(())
    }

    async fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        let volumes = self.lock()?;
        volumes.get(name).ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })?;
        Ok(Some(self.data_path(name)))
    }

    async fn get(&self, name: &str) -> Result<DriverVolume> {
        let volumes = self.lock()?;
        let vol = volumes.get(name).ok_or_else(|| Error::NotFound {
            name: name.to_string(),
        })?;
        Ok(self.describe(name, vol))
    }

    async fn list(&self) -> Result<Vec<DriverVolume>> {
        let volumes = self.lock()?;
        let mut all: Vec<_> = volumes.iter().map(|(n, v)| self.describe(n, v)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn capabilities(&self) -> Result<Capabilities> {
        Ok(Capabilities {
            scope: Scope::Local,
        })
    }
}

impl LocalDriver {
    fn describe(&self, name: &str, vol: &LocalVolume) -> DriverVolume {
        let mut status = BTreeMap::new();
        if vol.opts.needs_mount() {
            status.insert("mounted".to_string(), serde_json::Value::Bool(vol.mounted));
        }
        DriverVolume {
            name: name.to_string(),
            mountpoint: Some(self.data_path(name)),
            created_at: None,
            status,
        }
    }
}

#[cfg(test)]
mod tests;
