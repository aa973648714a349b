//! Unix socket helpers: a socketpair for a parent and a child process.
//!
//! The parent keeps one end and hands the other to the child through an
//! inherited descriptor whose number travels in an environment variable:
//!
//! ```no_run
//! # fn demo() -> libchan::Result<()> {
//! let (parent, child) = libchan::unix::socketpair()?;
//! let mut cmd = std::process::Command::new("/proc/self/exe");
//! libchan::unix::pass_to_child(&mut cmd, child, "MY_CHAN_FD");
//! let _proc = cmd.spawn().map_err(|e| libchan::Error::Io { context: "spawn", message: e.to_string() })?;
//! // parent: Transport::unix(libchan::unix::into_tokio(parent)?)
//! // child:  Transport::unix(libchan::unix::from_env("MY_CHAN_FD")?)
//! # Ok(()) }
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::{Error, Result};

/// A connected pair of unix stream sockets (close-on-exec, blocking std
/// sockets; convert with [`into_tokio`]).
pub fn socketpair() -> Result<(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
)> {
    std::os::unix::net::UnixStream::pair().map_err(|e| Error::io("socketpair", e))
}

/// Makes a std unix socket usable by tokio (call inside a runtime).
pub fn into_tokio(s: std::os::unix::net::UnixStream) -> Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)
        .map_err(|e| Error::io("set_nonblocking", e))?;
    tokio::net::UnixStream::from_std(s).map_err(|e| Error::io("registering unix socket", e))
}

/// Arranges for `sock` to be inherited by the child `cmd` starts, with its
/// descriptor number in the environment variable `var`. Only the child
/// inherits it (close-on-exec is cleared after fork, in the child), and
/// `cmd` keeps the socket open until it is dropped.
pub fn pass_to_child(cmd: &mut Command, sock: impl Into<OwnedFd>, var: &str) {
    let fd: OwnedFd = sock.into();
    let raw = fd.as_raw_fd();
    cmd.env(var, raw.to_string());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls fcntl, which is async-signal-safe. It owns `fd`, so the
    // descriptor stays open in the parent until `cmd` is dropped.
    unsafe {
        cmd.pre_exec(move || {
            let raw = fd.as_raw_fd();
            let flags = libc::fcntl(raw, libc::F_GETFD);
            if flags < 0 || libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// In the child: takes the socket named by `var` (see [`pass_to_child`]).
/// Checks that the number is an open unix stream socket, removes the
/// variable so the fd is taken once, and marks it close-on-exec again.
/// Call inside a tokio runtime.
pub fn from_env(var: &str) -> Result<tokio::net::UnixStream> {
    let val = std::env::var(var).map_err(|_| Error::Io {
        context: "reading inherited socket",
        message: format!("environment variable {var} is not set"),
    })?;
    let raw: RawFd = val.trim().parse().map_err(|_| Error::Io {
        context: "reading inherited socket",
        message: format!("{var}={val:?} is not a descriptor number"),
    })?;
    if raw < 3 {
        return Err(Error::Io {
            context: "reading inherited socket",
            message: format!("{var}={raw} names a standard stream"),
        });
    }
    // SAFETY: fstat only reads metadata of the given descriptor number.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer.
    if unsafe { libc::fstat(raw, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(Error::Io {
            context: "reading inherited socket",
            message: format!("{var}={raw} is not an open socket"),
        });
    }
    // SAFETY: single-threaded-at-startup callers are the documented use;
    // removing the variable ensures the descriptor is adopted only once.
    unsafe { std::env::remove_var(var) };
    // SAFETY: the parent handed us this descriptor (checked open, a socket
    // above) and nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    into_tokio(std::os::unix::net::UnixStream::from(fd))
}
