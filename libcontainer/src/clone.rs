//! clone3 with namespace flags (and optionally CLONE_INTO_CGROUP), with
//! fork semantics: the child continues on a copy of the caller's stack.

use std::io;
use std::os::fd::RawFd;

/// CLONE_INTO_CGROUP (Linux 5.7).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Where the child is, after a successful clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent: the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Clone the calling thread into a new process with `ns_flags`
/// (CLONE_NEW*), placed into the cgroup directory `cgroup_fd` if given.
///
/// # Safety
/// The child starts as a copy of a possibly multi-threaded process: it
/// must only follow a prepared plan and end in exec or `_exit`. A raw
/// clone3 runs none of glibc's fork handlers, which reset malloc's locks:
/// if another thread held a malloc arena lock at the moment of the clone,
/// an allocation in the child deadlocks. The container init does allocate
/// (see "Threads" in the crate README), so call this (and
/// `ContainerBuilder::create`, `ExecBuilder::spawn`) while no other thread
/// of the process may be allocating; berth-runtime and berthd's shim are
/// single-threaded at that point.
pub unsafe fn clone_process(ns_flags: libc::c_int, cgroup_fd: Option<RawFd>) -> io::Result<Forked> {
    let mut args = CloneArgs {
        flags: ns_flags as u32 as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size given; with stack 0
    // clone3 behaves like fork.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        0 => Ok(Forked::Child),
        pid if pid > 0 => Ok(Forked::Parent(pid as i32)),
        _ => Err(io::Error::last_os_error()),
    }
}
