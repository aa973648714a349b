//! `docker exec`: a process started inside a running container with
//! libcontainer's [`ExecBuilder`]. berthd re-executes itself as
//! `berthd exec STATE_ROOT ID PROCESS_JSON` (a helper whose stdio pipes
//! are the exec'd process's, so the daemon's own stdio is never shared);
//! the helper joins the container found in libcontainer's state root (the
//! shim's), waits for the process and exits with its exit code.
//!
//! `-t`: the process gets a pty of the container's own devpts (libcontainer
//! opens it inside, like runc). The helper's stdin is then one end of a
//! socket pair and becomes the exec's console socket; the daemon receives
//! the master on the other end and pumps it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libcontainer::builder::load_spec;
use libcontainer::console::Console;
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
    let tty = config.tty.unwrap_or(false);
    p.set_terminal(Some(tty));
    p.set_console_size(None);
    if let (true, Some([h, w])) = (tty, config.console_size.as_deref()) {
        let size = oci_spec::runtime::BoxBuilder::default()
            .height(u64::try_from(*h).unwrap_or(0))
            .width(u64::try_from(*w).unwrap_or(0))
            .build()
            .map_err(|e| SpecError::Build(e.to_string()))?;
        p.set_console_size(Some(size));
    }
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
    let console = if p.terminal() == Some(true) {
        Some(stdin_console(&p)?)
    } else {
        None
    };
    let security = ProcessSecurity::from_parts(
        &spec,
        Some(&p),
        &bundle,
        &LsmHost::detect(),
        Some(&state_root.join(".seccomp")),
    )?;
    let mut b = ExecBuilder::new(p);
    if let Some(console) = console {
        b = b.console(console);
    }
    let child = b
        .create_extension(security.create_extension())
        .init_extension(security.init_extension())
        .spawn(&mut c)?;
    Ok(child.wait()?)
}

/// The helper's stdin as the exec's console socket (berthd made it one end
/// of a socket pair), with process.consoleSize.
fn stdin_console(p: &Process) -> anyhow::Result<Console> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        anyhow::bail!("process.terminal: the exec helper's stdin is not the console socket");
    }
    let console = Console::from_stream(std::os::unix::net::UnixStream::from(fd));
    Ok(match p.console_size() {
        Some(s) => console.size(
            u16::try_from(s.height()).unwrap_or(u16::MAX),
            u16::try_from(s.width()).unwrap_or(u16::MAX),
        ),
        None => console,
    })
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
    // -t: the helper's stdin is the console socket; its stderr carries
    // its own errors (the process's stdio is the pty).
    let console = if tty {
        match std::os::unix::net::UnixStream::pair() {
            Ok((ours, theirs)) => {
                cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                Some(ours)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&process_json);
                return Err(fail(&execs, format!("a console socket pair: {e}")));
            }
        }
    } else {
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        None
    };
    let child = cmd.spawn();
    // Our copy of the helper's end goes now: ours reads EOF if the helper
    // fails before sending the master.
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
    // -t: the master arrives once the helper has spawned the process; its
    // output pump and the stdin writer start then.
    let (master_writer_tx, master_writer) = tokio::sync::oneshot::channel::<tokio::fs::File>();
    if let Some(sock) = console {
        let (execs, exec_id, tx) = (execs.clone(), exec_id.to_string(), out_tx.clone());
        pumps.push(tokio::spawn(async move {
            let m = match recv_master(sock).await {
                Ok(Some(m)) => m,
                // The helper failed first: its stderr says why.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("exec {exec_id}: receiving the pty master: {e}");
                    return;
                }
            };
            if let Some(e) = execs.lock().get_mut(&exec_id) {
                e.pty = m.try_clone().ok().map(std::sync::Arc::new);
            }
            if stdin {
                if let Ok(w) = m.try_clone() {
                    let _ = master_writer_tx.send(tokio::fs::File::from_std(w));
                }
            }
            pump(tokio::fs::File::from_std(m), StreamKind::Stdout, tx).await;
        }));
    }
    for (kind, pipe) in [
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
        let Some(pipe) = pipe else { continue };
        pumps.push(tokio::spawn(pump(pipe, kind, out_tx.clone())));
    }
    let stdin_tx = match (child.stdin.take(), stdin && tty) {
        (Some(pipe), _) => Some(spawn_stdin_writer(async move {
            Some(Box::new(pipe) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>)
        })),
        (None, true) => Some(spawn_stdin_writer(async move {
            let m = master_writer.await.ok()?;
            Some(Box::new(m) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>)
        })),
        (None, false) => None,
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

type Output = tokio::sync::mpsc::Sender<libswarm::Result<OutputChunk>>;

/// Copies `pipe` to the output as `kind` until it ends (EOF, or EIO: a
/// pty master whose slaves are all closed).
async fn pump(mut pipe: impl tokio::io::AsyncRead + Unpin, kind: StreamKind, tx: Output) {
    use tokio::io::AsyncReadExt;
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
}

/// The client's stdin, written to what `target` yields (a pipe, or the
/// pty master once it arrived); None drops the input.
fn spawn_stdin_writer(
    target: impl std::future::Future<Output = Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>>
        + Send
        + 'static,
) -> tokio::sync::mpsc::Sender<bytes::Bytes> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let Some(mut pipe) = target.await else { return };
        while let Some(data) = rx.recv().await {
            if pipe.write_all(&data).await.is_err() {
                break;
            }
        }
    });
    tx
}

/// The pty master the exec's process sent on the console socket (runc's
/// message: the slave's name as data, the master as the one fd); None if
/// the helper ended without sending one.
async fn recv_master(
    sock: std::os::unix::net::UnixStream,
) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsFd;
    sock.set_nonblocking(true)?;
    let sock = tokio::net::UnixStream::from_std(sock)?;
    let recv = || {
        let got = libcontainer::console::recv_master(sock.as_fd())?;
        Ok(got.map(|m| std::fs::File::from(m.master)))
    };
    loop {
        sock.readable().await?;
        match sock.try_io(tokio::io::Interest::READABLE, recv) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
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

    #[test]
    fn tty_asks_for_a_terminal_of_the_clients_size() {
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "terminal": true, "consoleSize": {"height": 1, "width": 2}},
        }))
        .unwrap();
        let mut config = ExecConfig {
            cmd: Some(vec!["sh".into()]),
            tty: Some(true),
            console_size: Some(vec![33, 101]),
            ..Default::default()
        };
        let p = process(&spec, &config).unwrap();
        assert_eq!(p.terminal(), Some(true));
        let size = p.console_size().unwrap();
        assert_eq!((size.height(), size.width()), (33, 101));
        // Without -t: no terminal, whatever the container's process had.
        config.tty = Some(false);
        let p = process(&spec, &config).unwrap();
        assert_eq!(p.terminal(), Some(false));
        assert!(p.console_size().is_none());
    }
}
