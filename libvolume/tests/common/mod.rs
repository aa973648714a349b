//! Helpers for root tests: a private mount namespace and a guard that
//! unmounts and detaches everything under its directory, even on panic.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Root tests skip (with the reason printed) when not run as root.
pub fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    println!("skipping {test}: needs root");
    true
}

/// Moves this thread into its own mount namespace with private
/// propagation, so nothing mounted here is seen by the host, and everything
/// goes away with the test process if it is killed. Run tests on a
/// current-thread runtime so all work happens on this thread.
pub fn private_mount_namespace() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("making / private");
}

/// Mount points below `dir` in this thread's namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

/// Loop devices whose backing file is below `dir`.
pub fn loops_backed_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            if Path::new(backing.trim()).starts_with(dir) {
                found.push(PathBuf::from(format!("/dev/{name}")));
            }
        }
    }
    found
}

/// A temporary directory that unmounts what is mounted below it, detaches
/// loop devices backed by files in it, then removes it.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("libvolume-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for point in mounts_under(self.dir.path()) {
            let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
        }
        for dev in loops_backed_under(self.dir.path()) {
            let _ = libvolume::local::detach_loop(&dev);
        }
    }
}

/// Makes an ext4 image of `mib` MiB.
pub fn ext4_image(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
    let status = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(path)
        .status()
        .expect("mkfs.ext4 (e2fsprogs)");
    assert!(status.success());
}
