//! The one error type of libchan.

use std::io;

/// Everything that can go wrong sending, receiving or running a connection.
///
/// Errors are cheap to clone so that one connection failure can be reported
/// on every channel it affects.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The other end of the channel is gone: for a send, the receiver was
    /// dropped; for a serialization, the handle was already sent elsewhere.
    #[error("channel closed: {0}")]
    Closed(&'static str),
    /// The connection carrying this channel failed or the peer went away
    /// without closing the channel.
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// The peer broke the wire protocol (bad frame, unknown channel id,
    /// oversized length, fd count mismatch …). The connection is torn down.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A payload could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A payload could not be decoded into the receiver's type. The channel
    /// stays usable; only this message is lost.
    #[error("cannot decode message: {0}")]
    Decode(String),
    /// A message is larger than the connection's `max_frame_size`.
    #[error("message of {size} bytes exceeds max_frame_size {max}")]
    TooLarge {
        /// Encoded size of the message.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// Opening one more channel would exceed `max_channels`.
    #[error("open-channel limit of {0} reached")]
    TooManyChannels(usize),
    /// The message holds a file descriptor but the transport cannot carry
    /// them (only unix sockets can).
    #[error("transport cannot carry file descriptors")]
    FdsUnsupported,
    /// An I/O error of the underlying transport.
    #[error("{context}: {message}")]
    Io {
        /// What libchan was doing.
        context: &'static str,
        /// The operating system's message.
        message: String,
    },
    /// A libchan handle (sender, receiver, fd, stream) was serialized outside
    /// a libchan connection, e.g. with serde_json directly.
    #[error("libchan handles can only be serialized by a libchan connection")]
    NoContext,
}

impl Error {
    pub(crate) fn io(context: &'static str, err: io::Error) -> Self {
        Error::Io {
            context,
            message: err.to_string(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e {
            Error::Closed(_) => io::ErrorKind::BrokenPipe,
            Error::Disconnected(_) => io::ErrorKind::ConnectionReset,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
