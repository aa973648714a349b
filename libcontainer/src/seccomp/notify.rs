//! Passing the `SCMP_ACT_NOTIFY` fd: child → parent over the core's sync
//! socket, then parent → seccomp agent at `listenerPath`, with the container
//! state as runc sends it (a `ContainerProcessState` JSON message carrying
//! the fd with `SCM_RIGHTS`, `fds: ["seccompFd"]`).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::{ContainerProcessState, State, SECCOMP_FD_NAME};

use super::{SeccompError, SeccompListener};

fn sync_err(source: std::io::Error) -> SeccompError {
    SeccompError::Listener {
        path: PathBuf::from("<sync socket>"),
        source,
    }
}

/// Sends `fd` over the unix socket `sock` with `SCM_RIGHTS` and a one-byte
/// payload. Child side: allocation-free.
pub fn send_fd(sock: BorrowedFd<'_>, fd: &impl AsFd) -> Result<(), SeccompError> {
    send_with_fd(sock, b"S", fd).map_err(sync_err)
}

/// Sends `payload` (non-empty) with `fd` attached (`SCM_RIGHTS`) in one
/// `sendmsg`, allocation-free: the init uses it to hand a prepared state
/// message and the notify fd to the seccomp agent.
pub fn send_with_fd(sock: BorrowedFd<'_>, payload: &[u8], fd: &impl AsFd) -> std::io::Result<()> {
    let sent = send_fd_raw(sock.as_raw_fd(), fd.as_fd().as_raw_fd(), payload)?;
    if sent != payload.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short write of the message carrying the fd",
        ));
    }
    Ok(())
}

fn send_fd_raw(sock: RawFd, fd: RawFd, payload: &[u8]) -> std::io::Result<usize> {
    // Room for one cmsghdr with one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
    // SAFETY: msg_control points to `cbuf`, which is large enough for one
    // cmsghdr holding one fd (CMSG_SPACE(4) = 24 <= 32 bytes), so
    // CMSG_FIRSTHDR is non-null and CMSG_DATA stays inside `cbuf`.
    let rc = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Receives one fd sent with [`send_fd`] (parent side).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, SeccompError> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut cmsg = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| sync_err(e.into()))?;
    for c in msg.cmsgs().map_err(|e| sync_err(e.into()))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS installed this fd in our table; we own it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(sync_err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "no fd in the message (the peer closed the socket?)",
    )))
}

/// The message runc sends to a seccomp agent with the notify fd.
pub fn process_state(listener: &SeccompListener, pid: i32, state: &State) -> ContainerProcessState {
    let mut msg = ContainerProcessState::default();
    let version = if state.version().is_empty() {
        oci_spec::runtime::VERSION.to_string()
    } else {
        state.version().clone()
    };
    msg.set_version(version);
    msg.set_fds(vec![SECCOMP_FD_NAME.to_string()]);
    msg.set_pid(pid);
    msg.set_metadata(listener.metadata.clone());
    msg.set_state(state.clone());
    msg
}

/// The JSON of [`process_state`], as sent to the agent.
pub fn state_message(
    listener: &SeccompListener,
    pid: i32,
    state: &State,
) -> Result<Vec<u8>, SeccompError> {
    serde_json::to_vec(&process_state(listener, pid, state)).map_err(|e| SeccompError::Listener {
        path: listener.path.clone(),
        source: std::io::Error::other(e),
    })
}

/// Connects to the seccomp agent at `listener.path` and sends it the notify
/// fd with the container state JSON in one message (parent side, after the
/// child sent the fd). `pid` is the container process as seen by us.
///
/// ```no_run
/// # use libcontainer::seccomp::{notify, SeccompListener};
/// # fn demo(listener: &SeccompListener, fd: std::os::fd::OwnedFd, pid: i32,
/// #         state: &oci_spec::runtime::State) -> Result<(), libcontainer::seccomp::SeccompError> {
/// notify::send_to_listener(listener, pid, state, &fd)?;
/// drop(fd); // the agent has its own copy now
/// # Ok(()) }
/// ```
pub fn send_to_listener(
    listener: &SeccompListener,
    pid: i32,
    state: &State,
    notify_fd: &impl AsFd,
) -> Result<(), SeccompError> {
    let stream = UnixStream::connect(&listener.path).map_err(|source| SeccompError::Listener {
        path: listener.path.clone(),
        source,
    })?;
    send_state(stream.as_fd(), listener, pid, state, notify_fd)
}

/// Sends the state message and the notify fd over `conn`, a connection to
/// the agent opened earlier (e.g. by the runtime before fork, when the
/// sender is the container init, which cannot see `listenerPath`).
pub fn send_state(
    conn: BorrowedFd<'_>,
    listener: &SeccompListener,
    pid: i32,
    state: &State,
    notify_fd: &impl AsFd,
) -> Result<(), SeccompError> {
    let err = |source: std::io::Error| SeccompError::Listener {
        path: listener.path.clone(),
        source,
    };
    let json = state_message(listener, pid, state)?;
    let fds = [notify_fd.as_fd().as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(
        conn.as_raw_fd(),
        &[IoSlice::new(&json)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| err(e.into()))?;
    if sent != json.len() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", json.len()),
        )));
    }
    tracing::debug!(path = %listener.path.display(), pid, "seccomp notify fd sent to listener");
    Ok(())
}
