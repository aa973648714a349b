//! Installing a compiled program (child side, after fork: no allocation).

use std::os::fd::{FromRawFd, OwnedFd};

use super::compile::flag;
use super::{SeccompError, SeccompProgram};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

impl SeccompProgram {
    /// Installs the filter on the calling thread (all threads with
    /// `SECCOMP_FILTER_FLAG_TSYNC`). Call it in the child, after
    /// `no_new_privs` (or while still holding `CAP_SYS_ADMIN`), as the last
    /// step before exec: every later syscall is filtered.
    ///
    /// Returns the notify fd when the profile uses `SCMP_ACT_NOTIFY`; pass it
    /// to the parent with [`super::notify::send_fd`] and close it.
    /// Allocates nothing on success.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let filter = self.filter();
        let prog = libc::sock_fprog {
            // `compile` bounds the length by BPF_MAXINSNS (4096).
            len: filter.len() as libc::c_ushort,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `filter`, which outlives the call; the
        // kernel copies the program and does not keep the pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                libc::c_ulong::from(self.flags()),
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            return Err(SeccompError::Load {
                flags: self.flags(),
                errno: nix::errno::Errno::last(),
            });
        }
        if self.flags() & flag::NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a new fd that we own.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) }));
        }
        Ok(None)
    }
}
