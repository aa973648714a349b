//! Linux security modules: an AppArmor profile and an SELinux label for the
//! container process, applied only when that LSM is active on the host, with
//! a clear error when one is asked for on a host without it.
//!
//! # How the core uses this
//!
//! Before fork, detect once and build the plans (both `None` when the config
//! asks for nothing):
//!
//! ```no_run
//! use libcontainer::lsm::{AppArmorPlan, LsmHost, SelinuxPlan};
//! # fn demo(process: &oci_spec::runtime::Process) -> Result<(), libcontainer::lsm::LsmError> {
//! let host = LsmHost::detect();
//! let apparmor = AppArmorPlan::new(process.apparmor_profile().as_deref(), &host)?;
//! let selinux = SelinuxPlan::new(process.selinux_label().as_deref(), &host)?;
//! // mounts: append this to each mount's data when `linux.mountLabel` is set
//! let _opt = libcontainer::lsm::selinux::mount_label_option(Some("system_u:object_r:container_file_t:s0"), &host)?;
//! // ... fork; in the child, with /proc mounted, before exec:
//! if let Some(p) = &apparmor { p.apply()?; }
//! if let Some(p) = &selinux { p.apply()?; }
//! # Ok(()) }
//! ```
//!
//! Both labels take effect at the next execve ("exec" attributes), so they
//! can be applied any time after /proc is mounted in the container.

pub mod apparmor;
pub mod selinux;

use std::ffi::CString;
use std::path::Path;

pub use apparmor::AppArmorPlan;
pub use selinux::SelinuxPlan;

/// Errors of the LSM module.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    /// A profile or label was asked for, but that LSM is not active here.
    #[error("{field}: {lsm} {value:?} requested, but {lsm} is not enabled on this host")]
    NotActive {
        /// `AppArmor` or `SELinux`.
        lsm: &'static str,
        /// The config field, e.g. `process.apparmorProfile`.
        field: &'static str,
        /// The requested profile or label.
        value: String,
    },
    /// The profile or label cannot be written (contains a NUL byte).
    #[error("{field}: {reason}")]
    Invalid {
        /// The config field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing the attribute failed in the child.
    #[error("{lsm}: writing {attr}: {errno}")]
    Apply {
        /// `AppArmor` or `SELinux`.
        lsm: &'static str,
        /// The /proc attribute file.
        attr: &'static str,
        /// The errno.
        errno: nix::errno::Errno,
    },
}

/// Which LSMs are active on a host. `detect` reads the real host; tests
/// point [`LsmHost::with_root`] at a fake tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsmHost {
    /// AppArmor is enabled and can confine processes.
    pub apparmor: bool,
    /// SELinux is enabled.
    pub selinux: bool,
    /// The kernel has the per-LSM `/proc/self/attr/apparmor/` directory.
    pub apparmor_attr_dir: bool,
}

impl LsmHost {
    /// Detects the LSMs of this host.
    pub fn detect() -> Self {
        Self::with_root(Path::new("/"))
    }

    /// Detects from the files under `root` (`/` for the real host):
    /// `sys/kernel/security/lsm` when securityfs is mounted, else
    /// `sys/module/apparmor/parameters/enabled` and selinuxfs.
    pub fn with_root(root: &Path) -> Self {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        let lsm_list: Option<Vec<String>> = read("sys/kernel/security/lsm")
            .map(|s| s.trim().split(',').map(str::to_string).collect());
        let listed = |name: &str| lsm_list.as_ref().map(|l| l.iter().any(|x| x == name));
        let apparmor_param = read("sys/module/apparmor/parameters/enabled")
            .is_some_and(|s| s.trim_start().starts_with('Y'));
        let apparmor = listed("apparmor").unwrap_or(true) && apparmor_param;
        let selinuxfs = root.join("sys/fs/selinux/enforce").exists()
            || read("proc/filesystems").is_some_and(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some("selinuxfs"))
            });
        let selinux = listed("selinux").unwrap_or(selinuxfs) && selinuxfs;
        LsmHost {
            apparmor,
            selinux,
            apparmor_attr_dir: root.join("proc/self/attr/apparmor").is_dir(),
        }
    }
}

/// Writes `data` to the attribute file `path` (child side, no allocation).
pub(crate) fn write_attr(
    path: &CString,
    data: &[u8],
    lsm: &'static str,
    attr: &'static str,
) -> Result<(), LsmError> {
    let fail = || LsmError::Apply {
        lsm,
        attr,
        errno: nix::errno::Errno::last(),
    };
    // SAFETY: `path` is NUL-terminated; the returned fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(fail());
    }
    // SAFETY: `data` is a valid buffer of `data.len()` bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let err = (n < 0 || n as usize != data.len()).then(fail);
    // SAFETY: `fd` is ours and not used after this.
    unsafe { libc::close(fd) };
    err.map_or(Ok(()), Err)
}

/// A C string for an attribute path, or an error naming the field.
pub(crate) fn cstring(bytes: Vec<u8>, field: &'static str) -> Result<CString, LsmError> {
    CString::new(bytes).map_err(|_| LsmError::Invalid {
        field,
        reason: "contains a NUL byte",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, content) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn apparmor_from_lsm_list_and_param() {
        let d = fake(&[
            ("sys/kernel/security/lsm", "lockdown,capability,apparmor\n"),
            ("sys/module/apparmor/parameters/enabled", "Y\n"),
        ]);
        let host = LsmHost::with_root(d.path());
        assert!(host.apparmor);
        assert!(!host.selinux);
    }

    #[test]
    fn apparmor_param_no_means_off() {
        let d = fake(&[("sys/module/apparmor/parameters/enabled", "N\n")]);
        assert!(!LsmHost::with_root(d.path()).apparmor);
        // Module loaded but not in the active LSM list.
        let d = fake(&[
            ("sys/kernel/security/lsm", "capability,selinux"),
            ("sys/module/apparmor/parameters/enabled", "Y"),
            ("sys/fs/selinux/enforce", "1"),
        ]);
        let host = LsmHost::with_root(d.path());
        assert!(!host.apparmor);
        assert!(host.selinux);
    }

    #[test]
    fn selinux_from_proc_filesystems_without_securityfs() {
        let d = fake(&[("proc/filesystems", "nodev\tsysfs\nnodev\tselinuxfs\n")]);
        assert!(LsmHost::with_root(d.path()).selinux);
        let d = fake(&[("proc/filesystems", "nodev\tsysfs\n")]);
        assert!(!LsmHost::with_root(d.path()).selinux);
    }
}
