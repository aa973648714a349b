//! The crate's error type.

use std::io;

/// Everything that can go wrong in libnetwork. Variants name the object or
/// field at fault so that callers can show them as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field has a value we cannot use.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The offending field, e.g. `ipam.subnet`.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A network, endpoint or sandbox with this name exists already.
    #[error("{kind} named {name:?} already exists")]
    Duplicate {
        /// "network", "endpoint" or "sandbox".
        kind: &'static str,
        /// The clashing name.
        name: String,
    },
    /// A network, endpoint, sandbox, driver or pool is not known.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// What was looked up.
        kind: &'static str,
        /// Its name or id.
        name: String,
    },
    /// The requested subnet overlaps one already in use.
    #[error("subnet {requested} overlaps {existing} (network {network:?})")]
    Overlap {
        /// The subnet asked for.
        requested: ipnet::IpNet,
        /// The subnet in use.
        existing: ipnet::IpNet,
        /// The network or pool that holds it.
        network: String,
    },
    /// No pool or no address is left.
    #[error("exhausted: {0}")]
    Exhausted(String),
    /// A published host port is already used by another endpoint.
    #[error(
        "port {proto}/{port} on host address {host_ip} is already published by endpoint {owner:?}"
    )]
    PortTaken {
        /// tcp, udp or sctp.
        proto: String,
        /// The host port.
        port: u16,
        /// The host address ("0.0.0.0" for any).
        host_ip: String,
        /// The endpoint holding it.
        owner: String,
    },
    /// The object is still in use (e.g. a network with endpoints).
    #[error("{0}")]
    InUse(String),
    /// A netlink request failed.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// What we were doing.
        op: String,
        /// The kernel's or library's error.
        #[source]
        source: rtnetlink::Error,
    },
    /// An nftables batch was rejected.
    #[error("nftables: {0}")]
    Nftables(String),
    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing, with the path when there is one.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Persisted state could not be read or written.
    #[error("state {path}: {reason}")]
    State {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A remote plugin failed or answered with an error.
    #[error("plugin {plugin}: {reason}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// Its error text or the transport error.
        reason: String,
    },
    /// The driver does not support this operation.
    #[error("driver {driver}: {op} is not supported")]
    Unsupported {
        /// The driver's name.
        driver: String,
        /// The operation.
        op: String,
    },
}

impl Error {
    /// Build an [`Error::Io`] from an operation description.
    pub fn io(op: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }

    /// Build an [`Error::Netlink`].
    pub fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        Error::Netlink {
            op: op.into(),
            source,
        }
    }

    /// Build an [`Error::InvalidConfig`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::io("system call", io::Error::from(e))
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
