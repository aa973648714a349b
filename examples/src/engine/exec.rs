//! `docker exec`: a process started inside a running container with
//! libcontainer's [`ExecBuilder`]. berthd re-executes itself as
//! `berthd exec STATE_ROOT ID PROCESS_JSON` (a helper whose stdio pipes
//! are the exec'd process's, so the daemon's own stdio is never shared);
//! the helper joins the container found in libcontainer's state root (the
//! shim's), waits for the process and exits with its exit code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libcontainer::builder::load_spec;
use libcontainer::exec::ExecBuilder;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::Container;
use std::process::Stdio;

use libswarm::models::{ExecConfig, ExecInspectResponse};
use libswarm::{AttachSession, Error, OutputChunk, StreamKind};
use oci_spec::runtime::{Process, Spec};

use super::spec::{resolve_user, SpecError};

/// The argument that selects exec-helper mode in the berthd binary.
pub const EXEC_ARG: &str = "exec";

/// One exec as the daemon keeps it.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// The container's id.
    pub container: String,
    /// The request.
    pub config: ExecConfig,
    /// Whether it is running.
    pub running: bool,
    /// Its exit code once it ended.
    pub exit_code: Option<i64>,
    /// The helper's pid while running.
    pub pid: i64,
    /// The pty's master while a `-t` exec runs (for resizes).
    pub pty: Option<std::sync::Arc<std::fs::File>>,
}

/// The daemon's execs by id.
#[derive(Debug, Default)]
pub struct Execs(pub Mutex<HashMap<String, ExecRecord>>);

impl Execs {
    /// The table, locked (a poisoned lock is still usable: records are plain data).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecRecord>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The exec'd process: the container's process with `docker exec`'s
/// command, `-e` (replacing same-named variables), `-w` and `-u` applied.
pub fn process(spec: &Spec, config: &ExecConfig) -> Result<Process, SpecError> {
    let mut p = spec.process().clone().unwrap_or_default();
    let args = config.cmd.clone().unwrap_or_default();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    p.set_args(Some(args));
    p.set_terminal(Some(false));
    let mut env = p.env().clone().unwrap_or_default();
    for e in config.env.iter().flatten() {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    if config.tty.unwrap_or(false) && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p.set_env(Some(env));
    if let Some(w) = config.working_dir.as_ref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            return Err(SpecError::NotAbsolute {
                flag: "-w",
                path: w.clone(),
            });
        }
        p.set_cwd(PathBuf::from(w));
    }
    if let Some(u) = config.user.as_ref().filter(|u| !u.is_empty()) {
        let rootfs = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let (uid, gid) = resolve_user(u, &rootfs)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids(None);
        p.set_user(user);
    }
    Ok(p)
}

/// Runs the helper: exec `process_json` in container `id` of
/// `state_root`; returns the exit code (126 when it could not start).
pub fn run_helper(state_root: &Path, id: &str, process_json: &Path) -> i32 {
    match exec(state_root, id, process_json) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("OCI runtime exec failed: {e:#}");
            126
        }
    }
}

fn exec(state_root: &Path, id: &str, process_json: &Path) -> anyhow::Result<i32> {
    let mut c = Container::load(state_root, id)?;
    let bundle = c.state().bundle.clone();
    let spec = load_spec(&bundle.join("config.json"))?;
    let p: Process = serde_json::from_slice(&std::fs::read(process_json)?)?;
    let security = ProcessSecurity::from_parts(
        &spec,
        Some(&p),
        &bundle,
        &LsmHost::detect(),
        Some(&state_root.join(".seccomp")),
    )?;
    let child = ExecBuilder::new(p)
        .create_extension(security.create_extension())
        .init_extension(security.init_extension())
        .spawn(&mut c)?;
    Ok(child.wait()?)
}

/// Called with the exit code once an exec's exit is recorded (berthd
/// publishes `exec_die`).
pub type OnExit = Box<dyn FnOnce(i64) + Send>;

/// Starts exec `exec_id` (already in `execs`) through the helper
/// `program exec STATE_ROOT CONTAINER PROCESS_JSON`; the output streams
/// end only after the exit code is recorded (docker reads it right after)
/// and `on_exit` has run.
pub fn start(
    execs: std::sync::Arc<Execs>,
    program: &Path,
    state_root: &Path,
    bundle: &Path,
    exec_id: &str,
    on_exit: OnExit,
) -> libswarm::Result<AttachSession> {
    use tokio::io::AsyncReadExt;
    let (container, config) = {
        let mut map = execs.lock();
        let e = map
            .get_mut(exec_id)
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?;
        if e.running || e.exit_code.is_some() {
            return Err(Error::conflict(format!(
                "Error: Exec command {exec_id} has already run"
            )));
        }
        e.running = true;
        (e.container.clone(), e.config.clone())
    };
    let fail = |execs: &Execs, msg: String| {
        if let Some(e) = execs.lock().get_mut(exec_id) {
            e.running = false;
            e.exit_code = Some(126);
        }
        Error::internal(msg)
    };
    let spec = match load_spec(&bundle.join("config.json")) {
        Ok(s) => s,
        Err(e) => return Err(fail(&execs, format!("reading the container's spec: {e}"))),
    };
    let p = match process(&spec, &config) {
        Ok(p) => p,
        Err(e) => {
            let _ = fail(&execs, String::new());
            return Err(Error::bad_request(e.to_string()));
        }
    };
    let process_json = bundle.join(format!("exec-{exec_id}.json"));
    let written = serde_json::to_vec(&p)
        .map_err(std::io::Error::other)
        .and_then(|j| std::fs::write(&process_json, j));
    if let Err(e) = written {
        return Err(fail(&execs, format!("writing the exec process: {e}")));
    }
    let stdin = config.attach_stdin.unwrap_or(false);
    let tty = config.tty.unwrap_or(false);
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(EXEC_ARG)
        .arg(state_root)
        .arg(&container)
        .arg(&process_json);
    let master = if tty {
        match pty_stdio(&mut cmd) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = std::fs::remove_file(&process_json);
                return Err(fail(&execs, format!("allocating a pty: {e}")));
            }
        }
    } else {
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        None
    };
    let child = cmd.spawn();
    // Our copies of the pty's slave go now: the master reads EOF (EIO)
    // once the helper and the process are gone.
    drop(cmd);
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&process_json);
            return Err(fail(&execs, format!("starting the exec helper: {e}")));
        }
    };
    if let Some(e) = execs.lock().get_mut(exec_id) {
        e.pid = child.id().map_or(0, i64::from);
    }
    let (out_tx, out_rx) = tokio::sync::mpsc::channel::<libswarm::Result<OutputChunk>>(64);
    let mut pumps = Vec::new();
    let mut master_reader = None;
    let mut master_writer = None;
    if let Some(m) = master {
        let size = config.console_size.as_deref().unwrap_or_default();
        if let [h, w] = size {
            let _ = set_size(&m, *h, *w);
        }
        if let Some(e) = execs.lock().get_mut(exec_id) {
            e.pty = m.try_clone().ok().map(std::sync::Arc::new);
        }
        master_reader = m.try_clone().ok().map(|r| {
            Box::new(tokio::fs::File::from_std(r)) as Box<dyn tokio::io::AsyncRead + Send + Unpin>
        });
        master_writer = stdin.then(|| tokio::fs::File::from_std(m));
    }
    for (kind, pipe) in [
        (StreamKind::Stdout, master_reader),
        (
            StreamKind::Stdout,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            StreamKind::Stderr,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = out_tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let chunk = OutputChunk {
                    stream: kind,
                    data: bytes::Bytes::copy_from_slice(&buf[..n]),
                };
                // A client gone away still lets the process run to its end.
                let _ = tx.send(Ok(chunk)).await;
            }
        }));
    }
    let stdin_pipe = child
        .stdin
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>)
        .or_else(|| {
            master_writer.map(|m| Box::new(m) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>)
        });
    let stdin_tx = match stdin_pipe {
        Some(mut pipe) => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                while let Some(data) = rx.recv().await {
                    if pipe.write_all(&data).await.is_err() {
                        break;
                    }
                }
            });
            Some(tx)
        }
        None => None,
    };
    let exec_id = exec_id.to_string();
    tokio::spawn(async move {
        for p in pumps {
            let _ = p.await;
        }
        let code = match child.wait().await {
            Ok(s) => s.code().map_or(255, i64::from),
            Err(_) => 255,
        };
        let _ = std::fs::remove_file(&process_json);
        if let Some(e) = execs.lock().get_mut(&exec_id) {
            e.running = false;
            e.exit_code = Some(code);
            e.pid = 0;
            e.pty = None;
        }
        on_exit(code);
        drop(out_tx);
    });
    let output =
        futures::stream::unfold(
            out_rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        );
    Ok(AttachSession {
        stdin: stdin_tx,
        output: Box::pin(output),
        tty,
    })
}

/// Gives the helper a new pty's slave as stdin, stdout and stderr, as the
/// controlling terminal of a new session; returns the master.
fn pty_stdio(cmd: &mut tokio::process::Command) -> std::io::Result<std::fs::File> {
    let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    let slave = std::fs::File::from(pty.slave);
    cmd.stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave);
    // SAFETY: setsid and ioctl are async-signal-safe and touch only the
    // forked child's own session and its stdin (the pty's slave).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(std::fs::File::from(pty.master))
}

fn set_size(pty: &std::fs::File, height: i32, width: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let size = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(0),
        ws_col: u16::try_from(width).unwrap_or(0),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize from the pointer; the fd is
    // the open pty master.
    if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `POST /exec/{id}/resize`: the pty's new size (no pty: nothing to do).
pub fn resize(execs: &Execs, exec_id: &str, height: u16, width: u16) -> libswarm::Result<()> {
    let pty = execs
        .lock()
        .get(exec_id)
        .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?
        .pty
        .clone();
    match pty {
        Some(p) => set_size(&p, i32::from(height), i32::from(width))
            .map_err(|e| Error::internal(format!("resizing the exec's tty: {e}"))),
        None => Ok(()),
    }
}

/// `GET /exec/{id}/json`.
pub fn inspect(execs: &Execs, exec_id: &str) -> libswarm::Result<ExecInspectResponse> {
    let map = execs.lock();
    let e = map
        .get(exec_id)
        .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?;
    Ok(ExecInspectResponse {
        id: Some(exec_id.to_string()),
        container_id: Some(e.container.clone()),
        running: Some(e.running),
        exit_code: e.exit_code,
        pid: Some(e.pid),
        open_stdin: e.config.attach_stdin,
        open_stdout: e.config.attach_stdout,
        open_stderr: e.config.attach_stderr,
        can_remove: Some(false),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exec_options_apply_to_the_container_process() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "web:x:33:34::/:/bin/sh\n").unwrap();
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": dir.path()},
            "process": {"args": ["sh"], "env": ["A=1", "B=2"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        }))
        .unwrap();
        let config = ExecConfig {
            cmd: Some(vec!["id".into()]),
            env: Some(vec!["A=9".into()]),
            working_dir: Some("/tmp".into()),
            user: Some("web".into()),
            ..Default::default()
        };
        let p = process(&spec, &config).unwrap();
        assert_eq!(p.args().clone().unwrap(), vec!["id".to_string()]);
        let env = p.env().clone().unwrap();
        assert!(env.contains(&"A=9".into()) && env.contains(&"B=2".into()));
        assert!(!env.contains(&"A=1".into()));
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (33, 34));
        let bad = ExecConfig {
            cmd: Some(vec!["id".into()]),
            working_dir: Some("tmp".into()),
            ..Default::default()
        };
        assert!(process(&spec, &bad).unwrap_err().to_string().contains("-w"));
        assert!(process(&spec, &ExecConfig::default()).is_err());
    }
}
