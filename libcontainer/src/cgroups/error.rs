//! The one error type of the cgroups module.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing cgroups.
///
/// Variants that come from a bad `config.json` value name the field
/// (`linux.resources.memory.limit`, `linux.cgroupsPath` …) so the user knows
/// what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A value in the spec is invalid; `field` is its JSON path.
    #[error("{field}: {reason}")]
    InvalidValue {
        /// JSON path of the offending field.
        field: String,
        /// Why the value is refused.
        reason: String,
    },

    /// The spec asks for a controller this host does not offer.
    #[error("{field}: the {controller} cgroup controller is not available on this host ({mode})")]
    ControllerMissing {
        /// JSON path of the field that needs the controller.
        field: String,
        /// Controller name, e.g. `net_cls` or `memory`.
        controller: String,
        /// Host cgroup layout, for the message.
        mode: String,
    },

    /// No usable cgroup hierarchy was found in the mount table.
    #[error("no cgroup hierarchy is mounted: {0}")]
    NoHierarchy(String),

    /// A file operation on a cgroup file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we tried to do (write, read, mkdir, rmdir …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A cgroup file did not contain what the kernel normally writes there.
    #[error("unexpected content in {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },

    /// A kernel interface (bpf, eventfd, inotify …) failed.
    #[error("{what}: {source}")]
    Sys {
        /// The operation.
        what: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },

    /// The kernel refused the eBPF device program.
    #[error("loading the eBPF device program: {source} (verifier: {log})")]
    BpfLoad {
        /// The errno.
        #[source]
        source: nix::Error,
        /// The last line of the verifier log.
        log: String,
    },

    /// Waiting for a state change (freeze, task exit, rmdir) timed out.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, CgroupError>;

impl CgroupError {
    /// Shorthand for [`CgroupError::InvalidValue`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidValue {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CgroupError::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`CgroupError::Parse`].
    pub fn parse(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Parse {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`CgroupError::Sys`].
    pub fn sys(what: &'static str, source: nix::Error) -> Self {
        Self::Sys { what, source }
    }
}
