//! A container that exists: loaded from its state directory, or just made
//! by [`ContainerBuilder`](crate::ContainerBuilder). Start, state, kill,
//! delete, wait.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hooks;
use crate::state::{OciState, StateError, Status, StoredState, EXEC_FIFO};

/// Errors of lifecycle operations.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// State could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The operation needs another status.
    #[error("container {id} is {status}: {what}")]
    WrongStatus {
        /// Container id.
        id: String,
        /// Its status.
        status: Status,
        /// What was refused.
        what: &'static str,
    },
    /// A signal could not be delivered.
    #[error("kill container {id}: {source}")]
    Kill {
        /// Container id.
        id: String,
        /// Why.
        source: std::io::Error,
    },
    /// Waking the init through the exec fifo failed.
    #[error("start container {id}: {source}")]
    Start {
        /// Container id.
        id: String,
        /// Why.
        source: std::io::Error,
    },
    /// The init failed between `start` and exec (startContainer hook, exec).
    #[error("start container {id}: {msg}")]
    StartFailed {
        /// Container id.
        id: String,
        /// The init's message.
        msg: String,
    },
    /// Removing the container's cgroups failed (the state is kept, so
    /// `delete` can be retried).
    #[error("delete container {id}: cgroups: {msg}")]
    Cgroups {
        /// Container id.
        id: String,
        /// Why.
        msg: String,
    },
    /// The init did not die after SIGKILL.
    #[error("container {0}: the init did not exit after SIGKILL")]
    Unkillable(String),
    /// Removing the state directory failed.
    #[error("remove {path:?}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// wait() on a container this process did not create.
    #[error("container {0} was not created by this process; it cannot be waited for")]
    NotChild(String),
}

/// A container with its state directory.
///
/// ```no_run
/// use libcontainer::Container;
/// let mut c = Container::load("/run/berth", "web")?;
/// let status = c.status();
/// println!("{} is {status}", c.id());
/// c.kill(libc::SIGTERM)?;
/// # Ok::<(), libcontainer::ContainerError>(())
/// ```
#[derive(Debug)]
pub struct Container {
    pub(crate) dir: PathBuf,
    pub(crate) state: StoredState,
    /// This process is the init's parent (it can waitpid).
    pub(crate) is_child: bool,
}

impl Container {
    /// Load container `id` from the root state directory `root`.
    pub fn load(root: impl AsRef<Path>, id: &str) -> Result<Self, ContainerError> {
        crate::state::validate_id(id)?;
        let dir = root.as_ref().join(id);
        let state = StoredState::read(&dir, id)?;
        Ok(Self {
            dir,
            state,
            is_child: false,
        })
    }

    /// Every container under `root`, in name order (unreadable ones skipped).
    pub fn list(root: impl AsRef<Path>) -> Result<Vec<Self>, ContainerError> {
        let root = root.as_ref();
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Io {
                    op: "read",
                    path: root.into(),
                    source,
                }
                .into())
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names
            .iter()
            .filter_map(|n| Self::load(root, n).ok())
            .collect())
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.state.oci.id
    }

    /// The init's host pid.
    pub fn pid(&self) -> i32 {
        self.state.oci.pid
    }

    /// The container's state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The status now (checks the process, and the freezer when the
    /// container has cgroups: a frozen one is `paused`, like runc).
    pub fn status(&mut self) -> Status {
        let status = self.state.refresh(&self.dir);
        if status == Status::Running && self.is_frozen() {
            return Status::Paused;
        }
        status
    }

    fn is_frozen(&self) -> bool {
        match crate::cgroups::CgroupManager::from_container(self) {
            Ok(Some(m)) => m.is_frozen().unwrap_or(false),
            _ => false,
        }
    }

    /// Thaw the container's cgroup if it is frozen (a frozen task on v1
    /// does not die of SIGKILL until thawed).
    fn thaw(&self) {
        if let Ok(Some(m)) = crate::cgroups::CgroupManager::from_container(self) {
            if m.is_frozen().unwrap_or(false) {
                if let Err(e) = m.thaw() {
                    tracing::warn!(id = self.id(), error = %e, "thawing a paused container");
                }
            }
        }
    }

    /// The OCI state document, refreshed. A stopped container shows pid 0,
    /// like runc.
    pub fn state(&mut self) -> OciState {
        let mut s = self.state.oci.clone();
        s.status = self.status();
        if s.status == Status::Stopped {
            s.pid = 0;
        }
        s
    }

    /// Per-module data kept in state.json (see [`Container::set_extension`]).
    pub fn extension(&self, name: &str) -> Option<&serde_json::Value> {
        self.state.extensions.get(name)
    }

    /// Keep module data in state.json (e.g. the cgroup a module made).
    pub fn set_extension(
        &mut self,
        name: &str,
        value: serde_json::Value,
    ) -> Result<(), ContainerError> {
        self.state.extensions.insert(name.into(), value);
        self.state.write(&self.dir)?;
        Ok(())
    }

    fn state_json(&mut self, status: Status) -> Vec<u8> {
        let mut oci = self.state.oci.clone();
        oci.status = status;
        serde_json::to_vec(&oci).unwrap_or_default()
    }

    /// Run the user process of a `created` container, then poststart hooks
    /// (their failure is only logged, as the runtime spec says).
    pub fn start(&mut self) -> Result<(), ContainerError> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.wrong(status, "only a created container can be started"));
        }
        let fifo = self.dir.join(EXEC_FIFO);
        let start_err = |source| ContainerError::Start {
            id: self.state.oci.id.clone(),
            source,
        };
        // Non-blocking: if nobody reads (the init died) this fails with ENXIO.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(start_err)?;
        // SAFETY: writing one byte from a valid buffer to an open fd.
        let n = unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) };
        if n != 1 {
            return Err(start_err(std::io::Error::last_os_error()));
        }
        // The init's fifo fd closes at exec (or exit): then this writer
        // sees POLLERR. Whatever the init left in the fifo is its error.
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; retried on EINTR.
        while unsafe { libc::poll(&mut p, 1, -1) } < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
        let failure = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .ok()
            .and_then(|mut r| {
                let mut buf = Vec::new();
                let _ = std::io::Read::read_to_end(&mut r, &mut buf);
                buf.strip_prefix(b"E")
                    .map(|m| String::from_utf8_lossy(m).into_owned())
            });
        drop(f);
        std::fs::remove_file(&fifo).map_err(start_err)?;
        if let Some(msg) = failure {
            return Err(ContainerError::StartFailed {
                id: self.id().into(),
                msg,
            });
        }
        // No state.json write: with the exec fifo gone, a live init reads
        // as running (StoredState::refresh).
        self.state.oci.status = Status::Running;
        let hooks = self.state.hooks.poststart.clone();
        if !hooks.is_empty() {
            let json = self.state_json(Status::Running);
            hooks::run_warn("poststart", &hooks, &json);
        }
        Ok(())
    }

    /// Send `signal` to the init. Errors when the container is stopped.
    /// A paused container gets the signal when it is resumed, except
    /// SIGKILL, which thaws it so it dies now.
    pub fn kill(&mut self, signal: i32) -> Result<(), ContainerError> {
        let status = self.status();
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            return Err(self.wrong(status, "container not running"));
        }
        // SAFETY: kill with a pid we checked is our init.
        if unsafe { libc::kill(self.pid(), signal) } < 0 {
            return Err(ContainerError::Kill {
                id: self.id().into(),
                source: std::io::Error::last_os_error(),
            });
        }
        if status == Status::Paused && signal == libc::SIGKILL {
            self.thaw();
        }
        Ok(())
    }

    /// Wait for the init to exit and return its status the shell way
    /// (the exit code, or 128 + signal number). Only for the creator.
    pub fn wait(&mut self) -> Result<i32, ContainerError> {
        if !self.is_child {
            return Err(ContainerError::NotChild(self.id().into()));
        }
        let mut st = 0;
        loop {
            // SAFETY: waiting for our own child with a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid(), &mut st, 0) };
            if r >= 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(ContainerError::Kill {
                    id: self.id().into(),
                    source: e,
                });
            }
        }
        self.is_child = false;
        Ok(if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            libc::WEXITSTATUS(st)
        })
    }

    /// Like [`Container::wait`] without blocking: `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<i32>, ContainerError> {
        if !self.is_child {
            return Err(ContainerError::NotChild(self.id().into()));
        }
        let mut st = 0;
        // SAFETY: polling our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(self.pid(), &mut st, libc::WNOHANG) };
        if r < 0 {
            let source = std::io::Error::last_os_error();
            return Err(ContainerError::Kill {
                id: self.id().into(),
                source,
            });
        }
        if r == 0 {
            return Ok(None);
        }
        self.is_child = false;
        Ok(Some(if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            libc::WEXITSTATUS(st)
        }))
    }

    /// Delete the container: refused while running unless `force` (which
    /// kills it first). A created container is killed without `force`, like
    /// runc. Runs poststop hooks, then removes the state directory.
    pub fn delete(mut self, force: bool) -> Result<(), ContainerError> {
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(self.wrong(status, "cannot delete a running container without force"));
        }
        if status != Status::Stopped {
            self.kill_and_reap()?;
        } else if self.is_child {
            self.reap();
        }
        self.remove()
    }

    pub(crate) fn kill_and_reap(&mut self) -> Result<(), ContainerError> {
        // SAFETY: kill with a pid we checked is our init.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        // After the signal, so a paused init cannot run before it dies.
        self.thaw();
        if self.is_child {
            self.reap();
            return Ok(());
        }
        if !hooks::wait_exit(self.pid(), 10_000) {
            return Err(ContainerError::Unkillable(self.id().into()));
        }
        // Its parent (not us) reaps it; a zombie already counts as stopped.
        for _ in 0..100 {
            if self.status() == Status::Stopped {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn reap(&mut self) {
        let mut st = 0;
        // SAFETY: waiting for our own child with a valid out-pointer.
        unsafe { libc::waitpid(self.pid(), &mut st, 0) };
        self.is_child = false;
    }

    /// The cgroups create made (if any), poststop hooks, the state directory.
    pub(crate) fn remove(mut self) -> Result<(), ContainerError> {
        let cgroups = crate::cgroups::CgroupManager::from_container(&self).map_err(|e| {
            ContainerError::Cgroups {
                id: self.id().into(),
                msg: e.to_string(),
            }
        })?;
        if let Some(m) = cgroups {
            m.delete(crate::cgroups::DeleteOptions { kill: true })
                .map_err(|e| ContainerError::Cgroups {
                    id: self.id().into(),
                    msg: e.to_string(),
                })?;
        }
        let hooks = std::mem::take(&mut self.state.hooks.poststop);
        if !hooks.is_empty() {
            let json = self.state_json(Status::Stopped);
            hooks::run_warn("poststop", &hooks, &json);
        }
        crate::state::remove_dir(&self.dir).map_err(|source| ContainerError::Remove {
            path: self.dir.clone(),
            source,
        })
    }

    fn wrong(&self, status: Status, what: &'static str) -> ContainerError {
        ContainerError::WrongStatus {
            id: self.id().into(),
            status,
            what,
        }
    }
}
