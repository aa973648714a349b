//! Network namespaces and netlink sockets bound to them.
//!
//! Nothing here depends on the calling thread's namespace: a socket is
//! created by a short-lived thread that entered the namespace with
//! `setns(2)`, and the socket then works from any thread because a socket
//! keeps the namespace it was created in.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// A network namespace held open by a file descriptor, so it stays alive
/// and addressable as long as this value lives.
#[derive(Debug, Clone)]
pub struct NetNs {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

impl NetNs {
    /// Open the namespace at `path` (a bind mount such as
    /// `/run/netns/NAME` or `/proc/PID/ns/net`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
        Ok(NetNs {
            path,
            fd: Arc::new(OwnedFd::from(file)),
        })
    }

    /// The namespace of process `pid`.
    pub fn from_pid(pid: u32) -> Result<Self> {
        Self::open(format!("/proc/{pid}/ns/net"))
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Self> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// Create a new namespace and pin it with a bind mount at `path`
    /// (the file is created; its directory must exist).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        File::create(&path)
            .map_err(|e| Error::io(format!("create netns file {}", path.display()), e))?;
        let target = path.clone();
        let made = std::thread::spawn(move || -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("unshare(CLONE_NEWNET)", e.into()))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                Error::io(
                    format!("bind mount netns to {}", target.display()),
                    e.into(),
                )
            })
        })
        .join()
        .unwrap_or_else(|_| Err(Error::io("netns thread", std::io::Error::other("panicked"))));
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Self::open(&path)
    }

    /// Unmount and remove a namespace pinned by [`NetNs::create`]. The
    /// namespace itself goes away once the last process or fd leaves it.
    pub fn remove_pinned(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("unmount netns {}", path.display()),
                    e.into(),
                ))
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
        }
    }

    /// Where the namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw fd (valid while `self` lives).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Run `f` on a fresh thread that entered this namespace and return
    /// its result. Use it to create sockets that must live in the namespace.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let fd = &self.fd;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::io("setns(CLONE_NEWNET)", e.into()))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(Error::io("netns thread", std::io::Error::other("panicked"))))
        })
    }

    /// Open an rtnetlink connection inside this namespace; the connection
    /// task is spawned on the current tokio runtime.
    pub fn netlink(&self) -> Result<rtnetlink::Handle> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::io("netlink needs a tokio runtime", std::io::Error::other(e)))?;
        let (conn, handle, _) = self
            .run(|| {
                let _guard = rt.enter();
                rtnetlink::new_connection()
            })?
            .map_err(|e| Error::io("open rtnetlink socket", e))?;
        tokio::spawn(conn);
        Ok(handle)
    }

    /// Write a sysctl under /proc/sys/net as seen from this namespace
    /// (e.g. `ipv4/ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/net/{key}");
        self.run(|| std::fs::write(&path, value))?
            .map_err(|e| Error::io(format!("write {path}"), e))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A long-lived thread inside a namespace that runs jobs in order. Used for
/// state that must stay on one thread of the namespace (the nftables context)
/// and for opening many sockets without a thread each.
#[derive(Debug, Clone)]
pub struct NsWorker {
    tx: mpsc::Sender<Job>,
}

impl NsWorker {
    /// Start the worker thread in `ns`.
    pub fn spawn(ns: &NetNs, name: &str) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let fd = ns.fd.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let entered = setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::io("setns(CLONE_NEWNET)", e.into()));
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                }
            })
            .map_err(|e| Error::io("spawn namespace worker", e))?;
        ready_rx
            .recv()
            .map_err(|_| Error::io("namespace worker", std::io::Error::other("died")))??;
        Ok(NsWorker { tx })
    }

    /// Run `f` on the worker and wait for its result without blocking the
    /// async runtime.
    pub async fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Error::io("namespace worker", std::io::Error::other("stopped")))?;
        rx.await
            .map_err(|_| Error::io("namespace worker", std::io::Error::other("job dropped")))
    }

    /// Run `f` on the worker and block the calling thread for the result.
    pub fn run_blocking<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Error::io("namespace worker", std::io::Error::other("stopped")))?;
        rx.recv()
            .map_err(|_| Error::io("namespace worker", std::io::Error::other("job dropped")))
    }
}
