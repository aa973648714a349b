//! Helpers for the security tests: run a closure in a forked child and
//! report through the exit status.
#![allow(dead_code)]

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// A forked child, killed and reaped on drop if still running.
pub struct Child(pub Pid);

impl Child {
    /// Waits for the child.
    pub fn wait(self) -> WaitStatus {
        let pid = self.0;
        std::mem::forget(self);
        waitpid(pid, None).expect("waitpid")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

/// Forks; the child runs `f` and exits with its return value (101 on panic).
/// Core dumps are disabled in the child (seccomp kills raise SIGSYS).
pub fn spawn(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the test process may have other threads; the child only runs
    // `f` (syscalls and glibc's fork-safe malloc) and then _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain setrlimit on our own process.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &core) };
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: leave without running the test harness's atexit state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Child(child),
    }
}

/// Runs `f` in a child and waits for it.
pub fn run(f: impl FnOnce() -> i32) -> WaitStatus {
    spawn(f).wait()
}

/// The errno of the last failed libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// True when running as root; prints why a test is skipped otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// Parses a seccomp profile from JSON.
pub fn profile(json: serde_json::Value) -> oci_spec::runtime::LinuxSeccomp {
    serde_json::from_value(json).expect("profile JSON")
}

/// The Docker-default-like profile shipped as a test fixture.
pub const DOCKER_DEFAULT: &str = include_str!("../security_fixtures/docker-default.json");
