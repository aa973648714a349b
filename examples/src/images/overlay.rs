//! Per-container root filesystems: an overlayfs mount of the image's
//! unpacked layers (read-only lower dirs, shared by all containers) with
//! a private upper and work dir. [`OverlayMount`] is a guard: dropping it
//! unmounts and removes the container's directory.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::error::{io_err, ImageError, Result};
use super::store::ImageStore;

/// The longest mount data the kernel accepts (one page). Longer layer
/// lists are mounted through `/proc/self/fd/N` names (about 230 layers).
const MAX_MOUNT_DATA: usize = 4095;

/// The overlayfs option string for `lowers` (bottom layer first).
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    for dir in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = dir.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            return Err(ImageError::Io {
                op: "use as overlay dir (contains ':' or ',')",
                path: dir.to_path_buf(),
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        }
    }
    // overlayfs lists lower dirs top first.
    let lower: Vec<String> = unique_lowers(lowers)
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(ImageError::TooManyLayers {
            layers: lowers.len(),
        });
    }
    Ok(data)
}

/// `lowers` (bottom first) with each dir only at its topmost place:
/// overlayfs refuses a dir twice, and a layer repeated in the stack (same
/// diff-id, so same dir) gives the same view from its top place alone,
/// since everything it holds is already above the layers between.
fn unique_lowers(lowers: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(lowers.len());
    for (i, dir) in lowers.iter().enumerate() {
        if !lowers[i + 1..].contains(dir) {
            out.push(dir.clone());
        }
    }
    out
}

/// A mounted container rootfs: `<dir>/merged` over the image layers, with
/// writes going to `<dir>/upper`. Unmounted and removed on drop.
#[derive(Debug)]
pub struct OverlayMount {
    dir: PathBuf,
    armed: bool,
}

impl OverlayMount {
    /// Mount `lowers` (bottom first) with upper/work/merged under `dir`,
    /// which is created (with its parents) and must not exist yet.
    pub fn mount(lowers: &[PathBuf], dir: &Path) -> Result<Self> {
        if lowers.is_empty() {
            return Err(ImageError::Io {
                op: "mount an overlay without layers at",
                path: dir.to_path_buf(),
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        }
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        fs::create_dir(dir).map_err(io_err("create container dir", dir))?;
        // From here on the guard cleans up whatever fails.
        let guard = Self {
            dir: dir.to_path_buf(),
            armed: true,
        };
        let (upper, work, merged) = (guard.upper(), guard.dir.join("work"), guard.rootfs());
        for d in [&upper, &work, &merged] {
            fs::create_dir(d).map_err(io_err("create", d))?;
        }
        let lowers = unique_lowers(lowers);
        // Keeps the layer fds (if any) open until the mount is made.
        let (data, _fds) = match overlay_options(&lowers, &upper, &work) {
            Err(ImageError::TooManyLayers { .. }) => {
                // The paths do not fit in one page: name each layer by an
                // fd of ours instead; the kernel resolves them at mount.
                let fds = lowers
                    .iter()
                    .map(|p| fs::File::open(p).map_err(io_err("open layer", p)))
                    .collect::<Result<Vec<_>>>()?;
                let by_fd: Vec<PathBuf> = fds
                    .iter()
                    .map(|f| PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())))
                    .collect();
                (overlay_options(&by_fd, &upper, &work)?, fds)
            }
            other => (other?, Vec::new()),
        };
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| ImageError::Mount {
            op: "mount",
            path: merged.clone(),
            source,
        })?;
        tracing::debug!(rootfs = %merged.display(), layers = lowers.len(), "mounted overlay");
        Ok(guard)
    }

    /// The merged view: the container's root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// Where the container's own changes land.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The container directory holding upper, work and merged.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unmount and remove now, reporting errors (drop only logs them).
    pub fn unmount(mut self) -> Result<()> {
        self.armed = false;
        Self::cleanup(&self.dir)
    }

    /// Keep the mount past this guard (a daemon restart with containers
    /// running); clean it up later with [`OverlayMount::cleanup`].
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        self.dir.clone()
    }

    /// Unmount `<dir>/merged` if mounted and remove `dir`.
    pub fn cleanup(dir: &Path) -> Result<()> {
        let merged = dir.join("merged");
        // MNT_DETACH: a process still inside (a late exec) must not keep
        // the directory from being removed; EINVAL means not mounted.
        match umount2(&merged, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(source) => {
                return Err(ImageError::Mount {
                    op: "unmount",
                    path: merged,
                    source,
                })
            }
        }
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
            _ => Ok(()),
        }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = Self::cleanup(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "overlay cleanup failed");
            }
        }
    }
}

impl ImageStore {
    /// Mount a rootfs of the image `reference` for a container at
    /// `container_dir` (created; must not exist).
    ///
    /// ```no_run
    /// use examples::images::ImageStore;
    /// let store = ImageStore::open("/var/lib/berth/images")?;
    /// let rootfs = store.mount("busybox", std::path::Path::new("/run/berth/c1"))?;
    /// assert!(rootfs.rootfs().join("bin/busybox").exists());
    /// drop(rootfs); // unmounted and removed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mount(&self, reference: &str, container_dir: &Path) -> Result<OverlayMount> {
        OverlayMount::mount(&self.layer_dirs(reference)?, container_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_lowers_top_first() {
        let lowers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/top")];
        let data = overlay_options(&lowers, Path::new("/c/upper"), Path::new("/c/work")).unwrap();
        assert_eq!(
            data,
            "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work"
        );
    }

    #[test]
    fn repeated_layers_keep_their_topmost_place() {
        let (a, b) = (PathBuf::from("/l/a"), PathBuf::from("/l/b"));
        let data = overlay_options(&[a.clone(), b, a], Path::new("/u"), Path::new("/w")).unwrap();
        assert_eq!(data, "lowerdir=/l/a:/l/b,upperdir=/u,workdir=/w");
    }

    #[test]
    fn options_refuse_separators_and_overlong_lists() {
        let bad = vec![PathBuf::from("/l/a:b")];
        assert!(overlay_options(&bad, Path::new("/u"), Path::new("/w")).is_err());
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/berth/images/layers/{i:064}/diff")))
            .collect();
        assert!(matches!(
            overlay_options(&many, Path::new("/u"), Path::new("/w")),
            Err(ImageError::TooManyLayers { layers: 100 })
        ));
    }
}
