//! `process.terminal`: a pseudo-terminal of the container's own devpts,
//! its master sent over a unix socket with SCM_RIGHTS like runc's
//! `--console-socket` (one message: the slave's name inside the container
//! as data, the master as the only fd).
//!
//! As in runc and crun, the init opens `/dev/ptmx` after pivot_root, so
//! the pty belongs to the container's devpts instance (`newinstance`):
//! `tty` inside prints `/dev/pts/N` and `/proc/self/fd/0` resolves there.
//! The init binds the slave onto `/dev/console`, makes it its controlling
//! terminal and stdio, and sends the master itself; the runtime only
//! connects the socket before clone. An exec opens `/dev/ptmx` after
//! entering the container's root, the same way, without `/dev/console`.

use std::ffi::CStr;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::syscall::check;

/// Why the console could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Connecting to the console socket failed.
    #[error("console socket {path:?}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A step of the terminal setup in the container failed.
    #[error("process.terminal: {what}: {source}")]
    Setup {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
}

fn setup_err(what: &'static str) -> impl FnOnce(io::Error) -> ConsoleError {
    move |source| ConsoleError::Setup { what, source }
}

/// Where a `process.terminal` container's pty master goes. Register it with
/// [`ContainerBuilder::console`](crate::ContainerBuilder::console) or
/// [`ExecBuilder::console`](crate::exec::ExecBuilder::console); the master
/// arrives on the socket's other end during `create` (or `spawn`).
///
/// ```no_run
/// use libcontainer::{console::Console, ContainerBuilder};
/// let console = Console::to_socket("/run/my-engine/console.sock")?.size(24, 80);
/// let c = ContainerBuilder::new("tty", "/srv/bundle").console(console).create()?;
/// # let _ = c; Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Console {
    socket: UnixStream,
    size: Option<(u16, u16)>,
}

impl Console {
    /// Connect to the console socket at `path` (runc's `--console-socket`).
    pub fn to_socket(path: impl AsRef<Path>) -> Result<Self, ConsoleError> {
        let path = path.as_ref();
        let socket = UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_stream(socket))
    }

    /// Send the master over an already connected stream (for example one
    /// end of [`UnixStream::pair`], the caller keeping the other).
    pub fn from_stream(socket: UnixStream) -> Self {
        Self { socket, size: None }
    }

    /// The terminal's first size (`process.consoleSize`), set before the
    /// process runs.
    pub fn size(mut self, height: u16, width: u16) -> Self {
        self.size = Some((height, width));
        self
    }

    /// Plain data for the child: it reads no locks after clone.
    pub(crate) fn for_child(&self) -> ChildConsole {
        ChildConsole {
            socket: self.socket.as_raw_fd(),
            size: self.size,
        }
    }
}

/// What the init or an exec child needs: the console socket's number (the
/// runtime keeps it open until the child has sent the master) and the size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildConsole {
    socket: RawFd,
    size: Option<(u16, u16)>,
}

/// A pty: the master, a slave fd and the slave's name in its devpts.
#[derive(Debug)]
pub(crate) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub name: String,
}

fn own(fd: libc::c_int) -> io::Result<OwnedFd> {
    check(fd)?;
    // SAFETY: a new fd returned by the kernel that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a pty through `ptmx`; the slave comes from TIOCGPTPEER, so no path
/// lookup can hand us another file.
pub(crate) fn open_pty(ptmx: &CStr, size: Option<(u16, u16)>) -> Result<Pty, ConsoleError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: a valid C string path; the result is checked.
    let master = own(unsafe { libc::open(ptmx.as_ptr(), flags) }).map_err(setup_err(
        "open /dev/ptmx in the container (needs devpts on /dev/pts and /dev/ptmx -> pts/ptmx)",
    ))?;
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from a valid pointer.
    check(unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) }).map_err(setup_err("unlockpt"))?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int to a valid pointer.
    check(unsafe { libc::ioctl(m, libc::TIOCGPTN, &mut n) }).map_err(setup_err("ptsname"))?;
    // SAFETY: TIOCGPTPEER on our open master returns a new fd.
    let slave = own(unsafe { libc::ioctl(m, libc::TIOCGPTPEER, flags) })
        .map_err(setup_err("open the pty's slave"))?;
    if let Some((height, width)) = size {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        check(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
            .map_err(setup_err("process.consoleSize"))?;
    }
    Ok(Pty {
        master,
        slave,
        name: format!("/dev/pts/{n}"),
    })
}

/// In the init after pivot_root (or an exec child after entering the
/// container's root): open the container's pty, hand the slave to the
/// process (`uid`/`gid` own it, like a login's terminal), bind it onto
/// `/dev/console` when asked, make it our controlling terminal and stdio,
/// and send the master. Our copy of the master closes on return.
pub(crate) fn attach(
    c: &ChildConsole,
    uid: u32,
    gid: u32,
    bind_dev_console: bool,
) -> Result<(), ConsoleError> {
    let pty = open_pty(c"/dev/ptmx", c.size)?;
    if uid != 0 || gid != 0 {
        // Best effort, like runc's fixStdioPermissions: an id that is not
        // mapped in a user namespace leaves the terminal root's.
        // SAFETY: fchown on an open fd.
        unsafe { libc::fchown(pty.slave.as_raw_fd(), uid, gid) };
    }
    if bind_dev_console {
        mount_dev_console(&pty)?;
    }
    make_controlling_stdio(&pty.slave)?;
    send_master(c.socket, &pty)
}

/// Bind the slave onto /dev/console (created empty when missing), as runc
/// does; we are inside the container's own mount namespace.
fn mount_dev_console(pty: &Pty) -> Result<(), ConsoleError> {
    let target = c"/dev/console";
    // SAFETY: a valid C string path; an existing entry is left alone.
    let made = unsafe {
        libc::open(
            target.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0,
        )
    };
    match own(made) {
        Ok(fd) => drop(fd),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(setup_err("create /dev/console")(e)),
    }
    // The magic link names exactly our slave; without /proc, its name.
    let by_fd = std::ffi::CString::new(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .unwrap_or_default();
    let by_name = std::ffi::CString::new(pty.name.as_str()).unwrap_or_default();
    let bind = |source: &CStr| {
        // SAFETY: valid C strings; a plain bind mount.
        check(unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        })
    };
    match bind(&by_fd) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => bind(&by_name),
        r => r,
    }
    .map(drop)
    .map_err(setup_err("bind the pty onto /dev/console"))
}

/// A new session with `slave` as its controlling terminal and stdio.
fn make_controlling_stdio(slave: &OwnedFd) -> Result<(), ConsoleError> {
    let s = slave.as_raw_fd();
    // SAFETY: plain session and tty calls on an open fd.
    check(unsafe { libc::setsid() }).map_err(setup_err("setsid"))?;
    // SAFETY: as above.
    check(unsafe { libc::ioctl(s, libc::TIOCSCTTY, 0) })
        .map_err(setup_err("make the pty the controlling terminal"))?;
    for target in 0..=2 {
        // SAFETY: dup2 between open fds.
        check(unsafe { libc::dup2(s, target) }).map_err(setup_err("dup2 the pty onto stdio"))?;
    }
    Ok(())
}

/// runc's console-socket message: the slave's name as data, the master as
/// the only fd.
fn send_master(socket: RawFd, pty: &Pty) -> Result<(), ConsoleError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [pty.master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(pty.name.as_bytes())];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map(drop)
        .map_err(|e| setup_err("send the master to the console socket")(e.into()))
}

/// A pty master received over a console socket.
#[derive(Debug)]
pub struct ReceivedMaster {
    /// The master side of the container's pty.
    pub master: OwnedFd,
    /// The slave's name inside the container (`/dev/pts/0`).
    pub slave_name: String,
}

/// Receives one console-socket message (runc's: the slave's name as data,
/// the master as the only fd), what the caller of a `process.terminal`
/// create or exec waits for. `Ok(None)` if the peer closed the socket
/// without sending a master (the container failed before). Surplus fds
/// are closed. On a non-blocking socket, an empty one gives `WouldBlock`.
///
/// ```no_run
/// # fn demo(ours: std::os::unix::net::UnixStream) -> std::io::Result<()> {
/// use std::os::fd::AsFd;
/// // `theirs` went to the container: Console::from_stream(theirs).
/// if let Some(got) = libcontainer::console::recv_master(ours.as_fd())? {
///     println!("the container's terminal is {}", got.slave_name);
/// }
/// # Ok(()) }
/// ```
pub fn recv_master(sock: BorrowedFd<'_>) -> io::Result<Option<ReceivedMaster>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut name = [0u8; 256];
    let mut iov = [io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    // Every fd received is owned at once, so that surplus ones are closed.
    let mut fds: std::collections::VecDeque<OwnedFd> = msg
        .cmsgs()?
        .filter_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => Some(fds),
            _ => None,
        })
        .flatten()
        // SAFETY: SCM_RIGHTS installed these fds in our table; we own them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let Some(master) = fds.pop_front() else {
        return Ok(None);
    };
    Ok(Some(ReceivedMaster {
        master,
        slave_name: String::from_utf8_lossy(&name[..n]).into_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn recv(sock: &UnixStream) -> (std::fs::File, String) {
        let got = recv_master(sock.as_fd()).unwrap().expect("a master");
        (got.master.into(), got.slave_name)
    }

    #[test]
    fn no_master_when_the_peer_closes_and_surplus_fds_are_closed() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        assert!(recv_master(ours.as_fd()).unwrap().is_none());

        let (ours, theirs) = UnixStream::pair().unwrap();
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = std::fs::File::open("/dev/null").unwrap();
        let fds = [a.as_raw_fd(), b.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(b"/dev/pts/7")];
        nix::sys::socket::sendmsg::<()>(
            theirs.as_raw_fd(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .unwrap();
        let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = open();
        let got = recv_master(ours.as_fd()).unwrap().expect("a master");
        assert_eq!(got.slave_name, "/dev/pts/7");
        assert_eq!(open(), before + 1, "the second fd was closed");
    }

    #[test]
    fn pty_has_its_size_and_the_master_sent_reads_the_slave() {
        let pty = open_pty(c"/dev/ptmx", Some((33, 101))).unwrap();
        assert!(pty.name.starts_with("/dev/pts/"), "{}", pty.name);
        // SAFETY: an all-zero winsize is valid.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes a winsize to a valid pointer.
        assert_eq!(
            unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) },
            0
        );
        assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
        let (ours, theirs) = UnixStream::pair().unwrap();
        let console = Console::from_stream(theirs).size(1, 2);
        assert_eq!(console.for_child().size, Some((1, 2)));
        send_master(console.for_child().socket, &pty).unwrap();
        let (mut master, name) = recv(&ours);
        assert_eq!(name, pty.name);
        let mut slave = std::fs::File::from(pty.slave);
        drop(pty.master);
        slave.write_all(b"ping\n").unwrap();
        let mut buf = [0u8; 16];
        let n = master.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping\r\n", "the terminal's ONLCR");
    }

    #[test]
    fn a_missing_ptmx_names_the_field_and_devpts() {
        let err = open_pty(c"/nonexistent/ptmx", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("process.terminal: open /dev/ptmx") && err.contains("devpts"),
            "{err}"
        );
    }

    #[test]
    fn a_closed_console_socket_is_a_clear_error() {
        let pty = open_pty(c"/dev/ptmx", None).unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(ours);
        let err = send_master(theirs.as_raw_fd(), &pty)
            .unwrap_err()
            .to_string();
        assert!(err.contains("console socket"), "{err}");
        let err = Console::to_socket("/nonexistent/console.sock")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/console.sock"), "{err}");
    }
}
