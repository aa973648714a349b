//! Parent ↔ init messages over a SOCK_SEQPACKET socketpair: one datagram
//! per message, a tag byte and a payload.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::syscall::check;

/// A broken channel (the other side died or sent garbage).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// A socket call failed.
    #[error("channel to the container init: {0}")]
    Io(#[from] io::Error),
    /// The other side closed the socket.
    #[error("the container init exited during setup")]
    Closed,
    /// An unknown tag.
    #[error("channel to the container init: unexpected message tag {0}")]
    BadMessage(u8),
}

/// Messages between the runtime and the init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Parent → init: id maps written, cgroup placed; carries the state
    /// JSON for hooks the init runs (createContainer).
    Go(Vec<u8>),
    /// Init → parent: mounts done, run prestart/createRuntime hooks now.
    NeedHooks,
    /// Parent → init: those hooks passed.
    HooksDone,
    /// Init → parent: set up, waiting on the exec fifo.
    Ready,
    /// Init → parent: setup failed with this message; the init exits.
    Error(String),
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        let (tag, body): (u8, &[u8]) = match self {
            Message::Go(b) => (1, b),
            Message::NeedHooks => (2, &[]),
            Message::HooksDone => (3, &[]),
            Message::Ready => (4, &[]),
            Message::Error(s) => (5, s.as_bytes()),
        };
        let mut v = Vec::with_capacity(1 + body.len());
        v.push(tag);
        v.extend_from_slice(body);
        v
    }

    fn decode(buf: &[u8]) -> Result<Self, ChannelError> {
        let (tag, body) = buf.split_first().ok_or(ChannelError::Closed)?;
        Ok(match tag {
            1 => Message::Go(body.to_vec()),
            2 => Message::NeedHooks,
            3 => Message::HooksDone,
            4 => Message::Ready,
            5 => Message::Error(String::from_utf8_lossy(body).into_owned()),
            t => return Err(ChannelError::BadMessage(*t)),
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (runtime end, init end).
pub fn pair() -> Result<(Channel, Channel), ChannelError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair returned two new fds that we now own.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Send one message.
    pub fn send(&self, msg: &Message) -> Result<(), ChannelError> {
        let buf = msg.encode();
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Receive one message; [`ChannelError::Closed`] when the peer is gone.
    pub fn recv(&self) -> Result<Message, ChannelError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            if n == 0 {
                return Err(ChannelError::Closed);
            }
            return Message::decode(&buf[..n as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_closed() {
        let (a, b) = pair().unwrap();
        for m in [
            Message::Go(b"{\"id\":\"x\"}".to_vec()),
            Message::NeedHooks,
            Message::HooksDone,
            Message::Ready,
            Message::Error("mount /proc: EPERM".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), m);
        }
        drop(a);
        assert!(matches!(b.recv(), Err(ChannelError::Closed)));
    }
}
