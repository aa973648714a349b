//! OCI hooks: run a hook binary with the state JSON on stdin, its args and
//! env, and its timeout.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook;

/// A hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("{phase} hook {index} ({path:?}): cannot run: {source}")]
    Spawn {
        /// prestart, createRuntime, …
        phase: &'static str,
        /// Index in its list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The hook exited unsuccessfully.
    #[error("{phase} hook {index} ({path:?}) failed: {status}")]
    Failed {
        /// prestart, createRuntime, …
        phase: &'static str,
        /// Index in its list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// Exit status.
        status: String,
    },
    /// The hook ran past its timeout and was killed.
    #[error("{phase} hook {index} ({path:?}) timed out after {secs}s")]
    Timeout {
        /// prestart, createRuntime, …
        phase: &'static str,
        /// Index in its list.
        index: usize,
        /// The hook's path.
        path: PathBuf,
        /// The timeout.
        secs: i64,
    },
}

/// Run `hooks` of `phase` in order, stopping at the first failure.
pub fn run(phase: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(phase, index, hook, state_json)?;
    }
    Ok(())
}

/// Run hooks whose failure is only a warning (poststart, poststop).
pub fn run_warn(phase: &'static str, hooks: &[Hook], state_json: &[u8]) {
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(phase, index, hook, state_json) {
            tracing::warn!("{e}");
        }
    }
}

fn run_one(phase: &'static str, index: usize, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    let mut cmd = Command::new(&path);
    if let Some(args) = hook.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        phase,
        index,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let timeout = hook.timeout().filter(|t| *t > 0);
    if let Some(secs) = timeout {
        if !wait_exit(child.id() as i32, secs.saturating_mul(1000)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                phase,
                index,
                path,
                secs,
            });
        }
    }
    let status = child.wait().map_err(|source| HookError::Spawn {
        phase,
        index,
        path: path.clone(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    };
    Err(HookError::Failed {
        phase,
        index,
        path,
        status,
    })
}

/// Wait up to `ms` for `pid` to exit (without reaping it); true if it did.
pub(crate) fn wait_exit(pid: i32, ms: i64) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return true; // already gone
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms.max(0) as u64);
    loop {
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_millis();
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.min(i32::MAX as u128) as i32) };
        if r > 0 {
            return true;
        }
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let b = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".to_string(), script.to_string()])
            .env(vec!["HOOKVAR=v1".to_string()]);
        match timeout {
            Some(t) => b.timeout(t).build().unwrap(),
            None => b.build().unwrap(),
        }
    }

    #[test]
    fn state_on_stdin_env_and_args() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(
            &format!("cat > {0}; echo \" $HOOKVAR $0\" >> {0}", out.display()),
            None,
        );
        run("prestart", &[h], b"{\"id\":\"x\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "{\"id\":\"x\"} v1 sh\n"
        );
    }

    #[test]
    fn failure_and_timeout_are_errors() {
        let err = run("createRuntime", &[hook("exit 3", None)], b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "createRuntime hook 0 (\"/bin/sh\") failed: exit status 3"
        );
        let t = std::time::Instant::now();
        let err = run("prestart", &[hook("exec sleep 10", Some(1))], b"{}").unwrap_err();
        assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err}");
        assert!(t.elapsed().as_secs() < 5);
        let missing = HookBuilder::default()
            .path("/nonexistent/hook")
            .build()
            .unwrap();
        assert!(matches!(
            run("poststart", &[missing], b"{}"),
            Err(HookError::Spawn { .. })
        ));
    }
}
