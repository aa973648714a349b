//! Surviving a host reboot, as dockerd does: berthd records the boot id
//! (`/proc/sys/kernel/random/boot_id`) with each container record, and a
//! record that says "running" under another boot id describes a run that
//! the reboot ended. Its pid, shim socket, libcontainer state and cgroups
//! mean nothing in this boot: the container is marked exited (255, as
//! Docker shows after a crash) without signalling any pid, what is left
//! of the run is removed ([`clean_stale_run`], every error collected), and
//! its rootfs overlay, which a reboot unmounts, is mounted again over the
//! kept upper layer ([`ensure_rootfs`]) so restart policies can start it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{mount, MsFlags};

use super::shim::{monitor_socket, ready_socket};
use crate::images::overlay_options;

/// Where Linux tells this boot's id.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// Errors remounting a container's rootfs.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A directory of the overlay could not be prepared.
    #[error("preparing {path} for the rootfs overlay: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The overlay options could not be built.
    #[error("the rootfs overlay options: {0}")]
    Options(String),
    /// The mount failed.
    #[error("mounting the rootfs overlay at {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: nix::errno::Errno,
    },
}

/// This boot's id (read once; empty when the kernel does not say).
pub fn current() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string(BOOT_ID_PATH)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// Was a run recorded under `recorded` ended by a reboot? Unknown ids
/// (records of an older berthd, a kernel without boot ids) are not.
pub fn rebooted_since(recorded: &str) -> bool {
    !recorded.is_empty() && !current().is_empty() && recorded != current()
}

/// Removes what a run of an earlier boot left: the shim's sockets and the
/// libcontainer state with its cgroups (libcontainer signals its pid only
/// if a process with that pid and start time lives, which a pid of
/// another boot does not; the cgroups' own tasks are the container's).
/// Goes on past failures and returns them all.
pub fn clean_stale_run(state_dir: &Path, id: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for socket in [monitor_socket(state_dir, id), ready_socket(state_dir, id)] {
        match std::fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                errors.push(format!("removing {}: {e}", socket.display()));
            }
            _ => {}
        }
    }
    if state_dir.join(id).exists() {
        match libcontainer::Container::load(state_dir, id) {
            Ok(c) => {
                if let Err(e) = c.delete(true) {
                    errors.push(format!("deleting the container's runtime state: {e}"));
                }
            }
            Err(e) => errors.push(format!("loading the container's runtime state: {e}")),
        }
    }
    errors
}

/// Is `dir` a mount point (on another device than its parent)?
pub fn is_mount_point(dir: &Path) -> bool {
    let Some(parent) = dir.parent() else {
        return false;
    };
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Mounts the container's rootfs overlay (`fs/merged`) again over the
/// image's `lowers` (bottom first) and its kept `fs/upper`, when a reboot
/// unmounted it; `Ok(false)` when it was still mounted.
pub fn ensure_rootfs(lowers: &[PathBuf], fs_dir: &Path) -> Result<bool, BootError> {
    let (upper, work, merged) = (
        fs_dir.join("upper"),
        fs_dir.join("work"),
        fs_dir.join("merged"),
    );
    if is_mount_point(&merged) {
        return Ok(false);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BootError::Io { path, source }
    };
    // overlayfs wants an empty work dir; the old one is of the last mount.
    match std::fs::remove_dir_all(&work) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&work)(e)),
        _ => {}
    }
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    // A layer listed twice stays only in its lowest place, as at create.
    let mut unique: Vec<PathBuf> = Vec::with_capacity(lowers.len());
    for (i, dir) in lowers.iter().enumerate() {
        if !lowers[i + 1..].contains(dir) {
            unique.push(dir.clone());
        }
    }
    let data =
        overlay_options(&unique, &upper, &work).map_err(|e| BootError::Options(e.to_string()))?;
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| BootError::Mount {
        path: merged.clone(),
        source,
    })?;
    tracing::info!(rootfs = %merged.display(), "mounted the container's rootfs again");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_known_other_boot_counts_as_a_reboot() {
        assert!(!rebooted_since(""), "an old record without a boot id");
        if current().is_empty() {
            eprintln!("SKIP: no {BOOT_ID_PATH}");
            return;
        }
        assert!(!rebooted_since(current()));
        assert!(rebooted_since("00000000-0000-0000-0000-000000000000"));
    }

    #[test]
    fn nothing_left_cleans_without_errors_and_plain_dirs_are_not_mounts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(clean_stale_run(dir.path(), "gone").is_empty());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(!is_mount_point(&dir.path().join("sub")));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }
}
