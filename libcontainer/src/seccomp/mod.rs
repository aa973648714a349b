//! Seccomp: the whole of `linux.seccomp`, compiled to a BPF program before
//! fork and loaded by the child as its last step before exec.
//!
//! The compiler is libseccomp (through the `libseccomp` crate): it knows the
//! syscall tables of every architecture, turns multi-arch profiles into one
//! program, supports every comparison (including `SCMP_CMP_MASKED_EQ` on 64-bit
//! arguments) and `SCMP_ACT_NOTIFY`. We only use it in the parent: the program
//! is exported with `seccomp_export_bpf` into plain data ([`SeccompProgram`]),
//! and the child installs it with one `seccomp(2)` call, no library call, no
//! allocation.
//!
//! # How the core uses this
//!
//! 1. Before fork: [`SeccompProgram::compile`] on `spec.linux().seccomp()`.
//!    Errors name the field (`linux.seccomp.syscalls[3].args[0].index: ...`).
//! 2. In the child, after capabilities and `no_new_privs`
//!    ([`crate::capabilities::set_no_new_privileges`]), as the last step before
//!    exec (or before waiting for `start`): [`SeccompProgram::load`]. Without
//!    `noNewPrivileges` the child needs `CAP_SYS_ADMIN` to load a filter, so
//!    in that case load it *before* dropping capabilities (runc's order).
//! 3. When [`SeccompProgram::listener`] is `Some`, `load` returns the notify
//!    fd. The child sends it to the parent over the core's sync socket with
//!    [`notify::send_fd`]; the parent receives it with [`notify::recv_fd`] and
//!    hands it to the seccomp agent with [`notify::send_to_listener`] (the
//!    listener path is a host path the child cannot see after pivot_root),
//!    then closes its copy.
//!
//! ```no_run
//! use libcontainer::seccomp::{notify, SeccompProgram};
//! # fn demo(seccomp: &oci_spec::runtime::LinuxSeccomp,
//! #         sync: std::os::fd::BorrowedFd<'_>) -> Result<(), Box<dyn std::error::Error>> {
//! let program = SeccompProgram::compile(seccomp)?; // parent, before fork
//! // ... fork; in the child, last thing before exec:
//! if let Some(fd) = program.load()? {
//!     notify::send_fd(sync, &fd)?;
//! }
//! # Ok(()) }
//! ```

mod cache;
pub(crate) mod compile;
mod load;
pub mod notify;
mod validate;

use std::path::PathBuf;

pub use compile::{SeccompListener, SeccompProgram};
pub use validate::validate_raw;

/// Errors of the seccomp module.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is invalid; `field` is its path in config.json.
    #[error("{field}: {reason}")]
    Invalid {
        /// Path of the offending field, e.g. `linux.seccomp.syscalls[2].action`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// libseccomp refused an operation while compiling.
    #[error("{field}: libseccomp: {source}")]
    Libseccomp {
        /// The profile field being compiled when libseccomp failed.
        field: String,
        /// The error from libseccomp.
        source: libseccomp::error::SeccompError,
    },
    /// Exporting the compiled BPF program failed.
    #[error("exporting the seccomp BPF program: {0}")]
    Export(std::io::Error),
    /// The kernel refused the filter.
    #[error("loading the seccomp filter (flags {flags:#x}): {errno}{}",
        if *errno == nix::errno::Errno::EACCES {
            " (set no_new_privs first, or load while holding CAP_SYS_ADMIN)"
        } else { "" })]
    Load {
        /// The `SECCOMP_FILTER_FLAG_*` bits passed.
        flags: u32,
        /// The errno of `seccomp(2)`.
        errno: nix::errno::Errno,
    },
    /// Passing the notify fd or talking to the seccomp agent failed.
    #[error("seccomp notify listener {path}: {source}")]
    Listener {
        /// The listener socket (or `<sync socket>` for the child-to-parent hop).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl SeccompError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SeccompError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
