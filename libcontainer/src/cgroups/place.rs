//! Placing a freshly cloned process into its v1 cgroups from inside.
//!
//! Writing another process's pid to `cgroup.procs` (or `tasks`) takes the
//! kernel's global `cgroup_threadgroup_rwsem` for write, which waits for an
//! RCU grace period whenever no other writer ran in the last one: 5–15 ms
//! on the test VM, the largest single cost of starting a container on a v1
//! or hybrid host. A thread writing `0` to a v1 `tasks` file moves only
//! itself and skips that lock (see `cgroup_procs_write_start` in
//! kernel/cgroup/cgroup.c), so a single-threaded child that places itself
//! costs microseconds. The permission check uses the credentials of the
//! opener (`of->file->f_cred`), so files the runtime opened as root work
//! from a child in a fresh user namespace too.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use super::error::{CgroupError, Result};
use super::manager::CgroupManager;

/// An open v1 `tasks` file a process writes `0` to, placing itself.
#[derive(Debug)]
pub struct TasksFile {
    /// Its path (for error messages).
    pub path: PathBuf,
    /// Opened write-only and close-on-exec.
    pub fd: OwnedFd,
}

impl CgroupManager {
    /// The `tasks` file of each distinct v1 directory of the container,
    /// open for [`place_self`]. Empty on a v2-only host (there
    /// `CLONE_INTO_CGROUP` places the child). Open them before the clone
    /// and hand them to the child.
    pub fn v1_tasks_files(&self) -> Result<Vec<TasksFile>> {
        let mut out: Vec<TasksFile> = Vec::new();
        for dir in self.v1_dirs() {
            let path = dir.join("tasks");
            let fd = nix::fcntl::open(
                path.as_path(),
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| CgroupError::io("open", &path, io::Error::from(e)))?;
            out.push(TasksFile { path, fd });
        }
        Ok(out)
    }
}

/// Move the calling thread into the cgroup of each file by writing `0`.
/// Call it from a single-threaded process (a child right after clone), so
/// the thread is the whole process. Does not allocate: safe after a raw
/// clone. On failure, the index of the file that failed and the error.
pub fn place_self(files: &[TasksFile]) -> std::result::Result<(), (usize, io::Error)> {
    for (i, f) in files.iter().enumerate() {
        // SAFETY: writing one byte from a static buffer to an open fd.
        let n = unsafe { libc::write(f.fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
        if n != 1 {
            return Err((i, io::Error::last_os_error()));
        }
    }
    Ok(())
}
