//! The kernel side of the local driver behind a trait, so the driver's logic
//! is unit-testable without root (youki's Syscall pattern).

use std::path::Path;
use std::process::Command;

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};
use crate::local::loopdev::{self, LoopDevice};

/// Mounts, loop devices and filesystems as the local driver needs them.
pub trait Mounter: Send + Sync {
    /// mount(2).
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// umount(2).
    fn unmount(&self, target: &Path) -> Result<()>;
    /// True when `target` is a mount point in this mount namespace.
    fn is_mounted(&self, target: &Path) -> Result<bool>;
    /// Attaches an image file to a loop device that frees itself once
    /// unmounted and the returned handle is dropped.
    fn attach_loop(&self, image: &Path) -> Result<LoopDevice>;
    /// Detaches a loop device (after a failed mount).
    fn detach_loop(&self, device: &Path) -> Result<()>;
    /// Makes an ext4 filesystem in an image file.
    fn mkfs_ext4(&self, image: &Path) -> Result<()>;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysMounter;

impl Mounter for SysMounter {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(Some(source), target, fstype, flags, data)
            .map_err(|e| Error::nix("mounting", target, e))
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EINVAL) if !self.is_mounted(target)? => Ok(()),
            Err(e) => Err(Error::nix("unmounting", target, e)),
        }
    }

    fn is_mounted(&self, target: &Path) -> Result<bool> {
        let info = std::fs::read_to_string("/proc/thread-self/mountinfo")
            .map_err(|e| Error::sys("reading", "/proc/thread-self/mountinfo", e))?;
        Ok(mountinfo_has(&info, target))
    }

    fn attach_loop(&self, image: &Path) -> Result<LoopDevice> {
        loopdev::attach(image, true)
    }

    fn detach_loop(&self, device: &Path) -> Result<()> {
        loopdev::detach(device)
    }

    fn mkfs_ext4(&self, image: &Path) -> Result<()> {
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(image)
            .output()
            .map_err(|e| Error::sys("running mkfs.ext4 (install e2fsprogs) for", image, e))?;
        if !out.status.success() {
            return Err(Error::sys(
                "mkfs.ext4 failed for",
                image,
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        Ok(())
    }
}

/// Whether mountinfo text lists `target` as a mount point (field 5, with
/// the kernel's octal escapes for space, tab, newline and backslash).
pub(crate) fn mountinfo_has(info: &str, target: &Path) -> bool {
    let target = target.to_string_lossy();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| unescape_octal(point) == target)
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_escaped_mount_points() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    99 22 0:50 / /srv/my\\040vol rw - tmpfs tmpfs rw\n";
        assert!(mountinfo_has(info, Path::new("/proc")));
        assert!(mountinfo_has(info, Path::new("/srv/my vol")));
        assert!(!mountinfo_has(info, Path::new("/srv")));
    }
}
