//! The per-container monitor: a small process (berthd re-executed as
//! `berthd shim …`, in its own session so it outlives berthd) that creates
//! and starts one container with libcontainer and owns its I/O for the
//! whole run:
//!
//! - it reports `ok PID` or `err MESSAGE` on the daemon's ready socket;
//! - it writes the container's stdout and stderr to the json-file log
//!   itself, so logs continue while berthd is down;
//! - it serves berthd over libchan on its own unix socket ([`super::monitor`]
//!   is the protocol): live output, stdin, and the exit;
//! - when the container exits it records the exit code and time in
//!   `exit.json` (written atomically) and then exits.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libchan::{Builder, Connection, Transport};
use libcontainer::builder::load_spec;
use libcontainer::cgroups::CgroupExtension;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::ContainerBuilder;
use libswarm::util::now_nanos;
use libswarm::StreamKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::monitor::{self, Chunk, Exit, Request};
use super::record::{json_line, split_lines_at};

/// The argument that selects shim mode in the berthd binary.
pub const SHIM_ARG: &str = "shim";

/// The shim's arguments, in order after [`SHIM_ARG`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// libcontainer's state root.
    pub state_root: PathBuf,
    /// The container id.
    pub id: String,
    /// The bundle directory (config.json; the log and exit.json go here).
    pub bundle: PathBuf,
    /// The socket to report readiness on.
    pub ready: PathBuf,
    /// The socket the shim serves berthd on.
    pub socket: PathBuf,
    /// Give the container a stdin pipe (`-i`) instead of /dev/null.
    pub stdin: bool,
}

impl ShimArgs {
    /// The command-line form (after [`SHIM_ARG`]).
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            self.state_root.clone().into(),
            self.id.clone().into(),
            self.bundle.clone().into(),
            self.ready.clone().into(),
            self.socket.clone().into(),
            if self.stdin { "stdin" } else { "-" }.into(),
        ]
    }

    /// Parses what [`ShimArgs::to_args`] made.
    pub fn parse(args: &[std::ffi::OsString]) -> Option<ShimArgs> {
        match args {
            [state_root, id, bundle, ready, socket, stdin] => Some(ShimArgs {
                state_root: state_root.into(),
                id: id.to_str()?.to_string(),
                bundle: bundle.into(),
                ready: ready.into(),
                socket: socket.into(),
                stdin: stdin == "stdin",
            }),
            _ => None,
        }
    }
}

/// The shim's socket for a container: short, in the state root (a unix
/// socket path must fit in 108 bytes).
pub fn monitor_socket(state_root: &Path, id: &str) -> PathBuf {
    let short: String = id.chars().take(16).collect();
    state_root.join(format!("{short}.shim"))
}

/// The shim's ready socket for a container.
pub fn ready_socket(state_root: &Path, id: &str) -> PathBuf {
    let short: String = id.chars().take(16).collect();
    state_root.join(format!("{short}.ready"))
}

fn create_and_start(a: &ShimArgs) -> anyhow::Result<libcontainer::Container> {
    let spec = load_spec(&a.bundle.join("config.json"))?;
    let security = ProcessSecurity::from_spec(
        &spec,
        &a.bundle,
        &LsmHost::detect(),
        Some(&a.state_root.join(".seccomp")),
    )?;
    let mut c = ContainerBuilder::new(a.id.clone(), &a.bundle)
        .root(&a.state_root)
        .spec(spec)
        .create_extension(Box::new(CgroupExtension::default()))
        .create_extension(security.create_extension())
        .init_extension(security.init_extension())
        .create()?;
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        return Err(e.into());
    }
    Ok(c)
}

/// A started container and the shim's ends of its stdio.
struct Started {
    container: libcontainer::Container,
    stdout: OwnedFd,
    stderr: OwnedFd,
    stdin: Option<OwnedFd>,
    listener: std::os::unix::net::UnixListener,
    log: std::fs::File,
}

/// Creates the container with pipes as its stdio: the shim's own fds 0-2
/// are what libcontainer hands the init, so they point at the pipes during
/// the create and back at /dev/null after.
fn start(a: &ShimArgs) -> anyhow::Result<Started> {
    use nix::fcntl::OFlag;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(monitor::log_file(&a.bundle))?;
    let _ = std::fs::remove_file(&a.socket);
    let listener = std::os::unix::net::UnixListener::bind(&a.socket)?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let stdin = if a.stdin {
        let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        nix::unistd::dup2_stdin(&in_r)?;
        Some(in_w)
    } else {
        nix::unistd::dup2_stdin(&devnull)?;
        None
    };
    nix::unistd::dup2_stdout(&out_w)?;
    nix::unistd::dup2_stderr(&err_w)?;
    let created = create_and_start(a);
    // Only the container keeps the write ends: its exit is our EOF.
    nix::unistd::dup2_stdin(&devnull)?;
    nix::unistd::dup2_stdout(&devnull)?;
    nix::unistd::dup2_stderr(&devnull)?;
    drop((out_w, err_w));
    let container = match created {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&a.socket);
            return Err(e);
        }
    };
    Ok(Started {
        container,
        stdout: out_r,
        stderr: err_r,
        stdin,
        listener,
        log,
    })
}

/// Runs the shim; returns the process exit code (the container's, or 127
/// when it could not start).
pub fn run(a: &ShimArgs) -> i32 {
    // Its own session: berthd's signals and terminal do not reach it.
    let _ = nix::unistd::setsid();
    let Ok(mut report) = UnixStream::connect(&a.ready) else {
        return 125;
    };
    let started = match start(a) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(report, "err {}", one_line(&format!("{e:#}")));
            return 127;
        }
    };
    // Single-threaded: libcontainer forked above, before any runtime.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(report, "err starting the shim's runtime: {e}");
            let _ = started.container.delete(true);
            return 127;
        }
    };
    if writeln!(report, "ok {}", started.container.pid()).is_err() {
        let _ = started.container.delete(true);
        let _ = std::fs::remove_file(&a.socket);
        return 125;
    }
    drop(report);
    let code = rt.block_on(serve(a, started));
    let _ = std::fs::remove_file(&a.socket);
    code
}

/// The log and who listens: one lock, so a subscriber's offset and the
/// chunks it gets never overlap or leave a gap.
struct Output {
    log: std::fs::File,
    len: u64,
    subscribers: Vec<mpsc::UnboundedSender<Chunk>>,
    /// The output has ended (no new subscribers get live chunks).
    done: bool,
}

impl Output {
    fn push(&mut self, stream: StreamKind, data: &[u8]) {
        let time = now_nanos();
        for l in split_lines_at(stream, data, time) {
            let mut line = json_line(&l);
            line.push('\n');
            if self.log.write_all(line.as_bytes()).is_ok() {
                self.len += line.len() as u64;
            }
        }
        let chunk = Chunk {
            stderr: stream == StreamKind::Stderr,
            time,
            data: data.to_vec(),
            end: self.len,
        };
        self.subscribers.retain(|s| s.send(chunk.clone()).is_ok());
    }
}

type Shared = Arc<Mutex<Output>>;

fn lock(o: &Shared) -> std::sync::MutexGuard<'_, Output> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

async fn pump(fd: OwnedFd, stream: StreamKind, out: Shared) {
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(&out).push(stream, &buf[..n]),
        }
    }
}

async fn serve(a: &ShimArgs, s: Started) -> i32 {
    let Started {
        mut container,
        stdout,
        stderr,
        stdin,
        listener,
        log,
    } = s;
    let len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let out: Shared = Arc::new(Mutex::new(Output {
        log,
        len,
        subscribers: Vec::new(),
        done: false,
    }));
    let (exit_tx, exit_rx) = watch::channel(None::<Exit>);
    let stdin = Arc::new(Mutex::new(stdin));
    let conns: Arc<Mutex<Vec<Connection>>> = Arc::default();
    let replies: Replies = Arc::default();
    let accept = {
        let (out, conns, replies) = (out.clone(), conns.clone(), replies.clone());
        async move {
            let Ok(()) = listener.set_nonblocking(true) else {
                return;
            };
            let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
                return;
            };
            while let Ok((stream, _)) = listener.accept().await {
                let Ok((conn, _tx, mut rx)) =
                    Builder::new().server::<(), Request>(Transport::unix(stream))
                else {
                    continue;
                };
                let (out, exit_rx, stdin) = (out.clone(), exit_rx.clone(), stdin.clone());
                let replies = replies.clone();
                tokio::spawn(async move {
                    while let Ok(Some(req)) = rx.recv().await {
                        if let Some(t) = handle(req, &out, exit_rx.clone(), &stdin) {
                            replies.lock().unwrap_or_else(|p| p.into_inner()).push(t);
                        }
                    }
                });
                conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            }
        }
    };
    let accept = tokio::spawn(accept);
    let pumps = [
        tokio::spawn(pump(stdout, StreamKind::Stdout, out.clone())),
        tokio::spawn(pump(stderr, StreamKind::Stderr, out.clone())),
    ];
    let waited = tokio::task::spawn_blocking(move || {
        let code = container.wait();
        (container, code)
    })
    .await;
    for p in pumps {
        let _ = p.await;
    }
    let code = match waited {
        Ok((c, code)) => {
            let _ = tokio::task::spawn_blocking(move || c.delete(true)).await;
            code.unwrap_or(255)
        }
        Err(_) => 255,
    };
    let exit = Exit {
        code: i64::from(code),
        finished: now_nanos(),
    };
    if let Err(e) = monitor::write_exit(&a.bundle, exit) {
        tracing::warn!(error = %e, "recording the exit");
    }
    {
        let mut o = lock(&out);
        o.done = true;
        o.subscribers.clear();
    }
    let _ = exit_tx.send(Some(exit));
    accept.abort();
    // Let connected daemons get the exit before the process ends.
    let replies = std::mem::take(&mut *replies.lock().unwrap_or_else(|p| p.into_inner()));
    let conns = std::mem::take(&mut *conns.lock().unwrap_or_else(|p| p.into_inner()));
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for r in replies {
            let _ = r.await;
        }
        for c in conns {
            let _ = c.flush().await;
        }
    })
    .await;
    code
}

type Replies = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

/// Serves one request; a subscription's replies run in a task, returned so
/// the shim can let it deliver the exit before it ends.
fn handle(
    req: Request,
    out: &Shared,
    mut exit_rx: watch::Receiver<Option<Exit>>,
    stdin: &Arc<Mutex<Option<OwnedFd>>>,
) -> Option<tokio::task::JoinHandle<()>> {
    match req {
        Request::Monitor {
            offset,
            output,
            exit,
        } => {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let at = {
                let mut o = lock(out);
                if !o.done {
                    o.subscribers.push(tx);
                }
                o.len
            };
            Some(tokio::spawn(async move {
                if offset.send(at).await.is_err() {
                    return;
                }
                while let Some(c) = rx.recv().await {
                    if output.send(c).await.is_err() {
                        return;
                    }
                }
                drop(output);
                let ended = match exit_rx.wait_for(|e| e.is_some()).await {
                    Ok(e) => *e,
                    Err(_) => None,
                };
                if let Some(e) = ended {
                    let _ = exit.send(e).await;
                }
            }))
        }
        Request::Stdin { mut data } => {
            let fd = stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
            let fd = fd?;
            tokio::spawn(async move {
                let Ok(mut pipe) = tokio::net::unix::pipe::Sender::from_owned_fd(fd) else {
                    return;
                };
                let _ = tokio::io::copy(&mut data, &mut pipe).await;
                let _ = pipe.shutdown().await;
            });
            None
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            state_root: "/run/berth".into(),
            id: "abc".into(),
            bundle: "/var/lib/berth/containers/abc".into(),
            ready: "/run/berth/abc.ready".into(),
            socket: "/run/berth/abc.shim".into(),
            stdin: true,
        };
        assert_eq!(ShimArgs::parse(&a.to_args()), Some(a.clone()));
        let b = ShimArgs { stdin: false, ..a };
        assert_eq!(ShimArgs::parse(&b.to_args()), Some(b));
        assert_eq!(ShimArgs::parse(&[]), None);
    }
}
