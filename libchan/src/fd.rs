//! File descriptors inside messages.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ctx;
use crate::error::{Error, Result};

/// An owned file descriptor that can travel inside a message: moved as is
/// on an in-memory channel, passed with SCM_RIGHTS on a unix socket
/// connection (other transports refuse it with [`Error::FdsUnsupported`]).
///
/// Sending moves the descriptor out (serialization takes it), so an `Fd`
/// is sent once. Fds that arrive with a message nobody decodes are closed.
///
/// ```
/// let file = std::fs::File::open("/dev/null").unwrap();
/// let fd = libchan::Fd::new(file);
/// let owned: std::os::fd::OwnedFd = fd.into_owned().unwrap();
/// # drop(owned);
/// ```
#[derive(Debug)]
pub struct Fd {
    fd: Mutex<Option<OwnedFd>>,
}

impl Fd {
    /// Wraps anything that owns a descriptor (`File`, `OwnedFd`, a std
    /// socket …).
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Fd {
            fd: Mutex::new(Some(fd.into())),
        }
    }

    /// The descriptor, unless it was already sent.
    pub fn into_owned(self) -> Result<OwnedFd> {
        self.fd
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or(Error::Closed("fd was already sent"))
    }

    /// Runs `f` on the descriptor if it is still here.
    pub fn with_borrowed<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let g = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|fd| f(fd.as_fd()))
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd::new(fd)
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if !ctx::encoding_active() {
            return Err(serde::ser::Error::custom(Error::NoContext));
        }
        let fd = self
            .fd
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| serde::ser::Error::custom(Error::Closed("fd was already sent")))?;
        let idx = ctx::encode_fd(fd).map_err(serde::ser::Error::custom)?;
        s.serialize_u32(idx)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let idx = u32::deserialize(d)?;
        ctx::decode_fd(idx)
            .map(Fd::new)
            .map_err(serde::de::Error::custom)
    }
}
