//! `process.terminal`: a pseudo-terminal for the init, its master sent
//! over a unix socket with SCM_RIGHTS like runc's `--console-socket` (one
//! message: the slave's name as data, the master as the only fd).
//!
//! The pty is opened by the runtime before clone; the init makes the slave
//! its controlling terminal and stdio before the user change; the runtime
//! sends the master after clone and closes its copies.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;

use crate::builder::CreateExtension;
use crate::init::InitExtension;

/// Why the console could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Connecting to the console socket failed.
    #[error("console socket {path:?}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Opening the pseudo-terminal failed.
    #[error("open a pseudo-terminal: {0}")]
    Pty(nix::Error),
}

/// A pty whose master goes to a console socket. Register it with
/// [`ContainerBuilder::console`](crate::ContainerBuilder::console).
///
/// ```no_run
/// use libcontainer::{console::Console, ContainerBuilder};
/// let console = Console::to_socket("/run/my-engine/console.sock")?;
/// let c = ContainerBuilder::new("tty", "/srv/bundle").console(console).create()?;
/// # let _ = c; Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Console {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Raw numbers, read by the init (no locks after clone).
    master_fd: RawFd,
    slave_fd: RawFd,
    slave_name: String,
    socket_path: PathBuf,
    /// The runtime's copies: sent and closed after clone.
    held: Mutex<Option<(OwnedFd, OwnedFd, UnixStream)>>,
}

impl Console {
    /// Connect to the console socket at `path` and open a pty.
    pub fn to_socket(path: impl AsRef<Path>) -> Result<Self, ConsoleError> {
        let path = path.as_ref().to_path_buf();
        let sock = UnixStream::connect(&path).map_err(|source| ConsoleError::Connect {
            path: path.clone(),
            source,
        })?;
        let pty = nix::pty::openpty(None, None).map_err(ConsoleError::Pty)?;
        for fd in [&pty.master, &pty.slave] {
            // CLOEXEC: neither survives the init's execve on its own number.
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(ConsoleError::Pty)?;
        }
        let slave_name = nix::unistd::ttyname(&pty.slave)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/dev/pts/?".into());
        Ok(Self {
            inner: Arc::new(Inner {
                master_fd: pty.master.as_raw_fd(),
                slave_fd: pty.slave.as_raw_fd(),
                slave_name,
                socket_path: path,
                held: Mutex::new(Some((pty.master, pty.slave, sock))),
            }),
        })
    }

    /// Set the terminal's size (`process.consoleSize`) before the init runs.
    pub fn set_size(&self, height: u16, width: u16) -> Result<(), ConsoleError> {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize on our open slave fd.
        if unsafe { libc::ioctl(self.inner.slave_fd, libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(ConsoleError::Pty(nix::Error::last()));
        }
        Ok(())
    }

    /// The slave's path on the host (`/dev/pts/N`).
    pub fn slave_name(&self) -> &str {
        &self.inner.slave_name
    }

    fn send_master(&self) -> Result<(), String> {
        let held = self
            .inner
            .held
            .lock()
            .map_err(|_| "console: lock poisoned".to_string())?
            .take();
        let Some((master, slave, sock)) = held else {
            return Ok(());
        };
        let fds = [master.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(self.inner.slave_name.as_bytes())];
        nix::sys::socket::sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .map_err(|e| {
            format!(
                "console socket {:?}: send the terminal: {e}",
                self.inner.socket_path
            )
        })?;
        drop((master, slave, sock));
        Ok(())
    }
}

impl CreateExtension for Console {
    fn before_clone(
        &mut self,
        _spec: &Spec,
        _id: &str,
    ) -> Result<Option<std::os::fd::OwnedFd>, String> {
        Ok(None)
    }

    fn after_clone(&mut self, _pid: i32) -> Result<(), String> {
        self.send_master()
    }

    fn cleanup(&mut self) {
        if let Ok(mut h) = self.inner.held.lock() {
            h.take();
        }
    }
}

impl InitExtension for Console {
    fn before_user_change(&self) -> Result<(), String> {
        let (m, s) = (self.inner.master_fd, self.inner.slave_fd);
        let err = |what: &str| {
            format!(
                "process.terminal: {what}: {}",
                std::io::Error::last_os_error()
            )
        };
        // SAFETY: closing our copy of the master; plain session and tty
        // calls on the slave fd inherited from the runtime.
        unsafe {
            libc::close(m);
            if libc::setsid() < 0 {
                return Err(err("setsid"));
            }
            if libc::ioctl(s, libc::TIOCSCTTY, 0) < 0 {
                return Err(err("make the pty the controlling terminal"));
            }
            for target in 0..=2 {
                if libc::dup2(s, target) < 0 {
                    return Err(err("dup2 the pty onto stdio"));
                }
            }
        }
        Ok(())
    }
}
