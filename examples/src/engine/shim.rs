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
use libcontainer::console::Console;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::ContainerBuilder;
use libswarm::util::now_nanos;
use libswarm::StreamKind;
use std::io::Read;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::logrot::{RotatingLog, Rotation};
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
    /// Run the process on a pseudo-terminal (`-t`): the shim holds the
    /// master, and stdout and stderr are one stream.
    pub tty: bool,
    /// The pty's first size (rows, columns), as `docker run` asks for it.
    pub console_size: Option<(u16, u16)>,
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
            match (self.tty, self.console_size) {
                (false, _) => "-".to_string(),
                (true, None) => "tty".to_string(),
                (true, Some((h, w))) => format!("tty:{h}x{w}"),
            }
            .into(),
        ]
    }

    /// Parses what [`ShimArgs::to_args`] made.
    pub fn parse(args: &[std::ffi::OsString]) -> Option<ShimArgs> {
        match args {
            [state_root, id, bundle, ready, socket, stdin, tty] => Some(ShimArgs {
                state_root: state_root.into(),
                id: id.to_str()?.to_string(),
                bundle: bundle.into(),
                ready: ready.into(),
                socket: socket.into(),
                stdin: stdin == "stdin",
                tty: tty.to_str()?.starts_with("tty"),
                console_size: tty.to_str()?.strip_prefix("tty:").and_then(|s| {
                    let (h, w) = s.split_once('x')?;
                    Some((h.parse().ok()?, w.parse().ok()?))
                }),
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

fn create_and_start(
    a: &ShimArgs,
    console: Option<Console>,
) -> anyhow::Result<libcontainer::Container> {
    let mut spec = load_spec(&a.bundle.join("config.json"))?;
    if let Some(p) = spec.process_mut().as_mut() {
        p.set_terminal(Some(console.is_some()));
    }
    let security = ProcessSecurity::from_spec(
        &spec,
        &a.bundle,
        &LsmHost::detect(),
        Some(&a.state_root.join(".seccomp")),
    )?;
    let mut builder = ContainerBuilder::new(a.id.clone(), &a.bundle);
    if let Some(console) = console {
        builder = builder.console(console);
    }
    let mut c = builder
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
    /// Pipes, or the pty master as stdout.
    stdout: OwnedFd,
    stderr: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    /// The pty master (`-t`), for resizes.
    pty: Option<Arc<OwnedFd>>,
    /// A slave fd the shim holds while the container runs, so the master
    /// never reads EIO before the last output is in (closed after exit).
    pty_peer: Option<OwnedFd>,
    listener: std::os::unix::net::UnixListener,
    log: RotatingLog,
}

/// Creates the container with pipes as its stdio: the shim's own fds 0-2
/// are what libcontainer hands the init, so they point at the pipes during
/// the create and back at /dev/null after.
fn start(a: &ShimArgs) -> anyhow::Result<Started> {
    use nix::fcntl::OFlag;
    // The rotation `docker create` checked and stored with the record.
    let rotation = super::record::Stored::load(&a.bundle)
        .map(|s| Rotation::of(s.body.host_config.and_then(|h| h.log_config).as_ref()))
        .unwrap_or(Rotation::NONE);
    let log = RotatingLog::open(&monitor::log_file(&a.bundle), rotation)?;
    let _ = std::fs::remove_file(&a.socket);
    let listener = std::os::unix::net::UnixListener::bind(&a.socket)?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    if a.tty {
        return start_on_pty(a, log, listener, &devnull);
    }
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
    let created = create_and_start(a, None);
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
        stderr: Some(err_r),
        stdin,
        pty: None,
        pty_peer: None,
        listener,
        log,
    })
}

/// `-t`: the container's init opens a pty of its own devpts and sends the
/// master over a console socket (runc's protocol); the shim holds the
/// other end of that socket pair.
fn start_on_pty(
    a: &ShimArgs,
    log: RotatingLog,
    listener: std::os::unix::net::UnixListener,
    devnull: &std::fs::File,
) -> anyhow::Result<Started> {
    // The init sends the master of the container's own pty to one end.
    let (console_conn, theirs) = UnixStream::pair()?;
    let mut console = Console::from_stream(theirs);
    if let Some((h, w)) = a.console_size {
        console = console.size(h, w);
    }
    nix::unistd::dup2_stdin(devnull)?;
    nix::unistd::dup2_stdout(devnull)?;
    nix::unistd::dup2_stderr(devnull)?;
    let container = match create_and_start(a, Some(console)) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&a.socket);
            return Err(e);
        }
    };
    let master = match recv_master(&console_conn) {
        Ok(m) => m,
        Err(e) => {
            let _ = container.delete(true);
            let _ = std::fs::remove_file(&a.socket);
            return Err(e.into());
        }
    };
    let peer = match open_peer(&master) {
        Ok(p) => p,
        Err(e) => {
            let _ = container.delete(true);
            let _ = std::fs::remove_file(&a.socket);
            return Err(e.into());
        }
    };
    let stdin = if a.stdin {
        Some(master.try_clone()?)
    } else {
        None
    };
    Ok(Started {
        container,
        stdout: master.try_clone()?,
        stderr: None,
        stdin,
        pty: Some(Arc::new(master)),
        pty_peer: Some(peer),
        listener,
        log,
    })
}

/// A new fd for the slave of `master` (TIOCGPTPEER), not our controlling
/// terminal.
fn open_peer(master: &OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER on an open pty master returns a new fd we own.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The pty master from the console socket (the slave's name as data, the
/// master as the one fd).
fn recv_master(sock: &UnixStream) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsFd;
    match libcontainer::console::recv_master(sock.as_fd())? {
        Some(got) => Ok(got.master),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no pty master on the console socket",
        )),
    }
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

/// Chunks queued per subscriber: a subscriber (berthd) that falls behind
/// holds the container's output back instead of growing the shim's memory.
const QUEUED: usize = 64;

/// The log and who listens: one lock, so a subscriber's offset and the
/// chunks it gets never overlap or leave a gap.
struct Output {
    log: RotatingLog,
    subscribers: Vec<mpsc::Sender<Chunk>>,
    /// The output has ended (no new subscribers get live chunks).
    done: bool,
    /// Held by a pump from logging a chunk until it is queued for every
    /// subscriber (outside the lock above, which new subscribers take):
    /// chunks reach subscribers in log order.
    turn: Arc<Mutex<()>>,
}

impl Output {
    /// Logs a read; returns the chunk and who gets it.
    fn push(&mut self, stream: StreamKind, data: &[u8]) -> (Chunk, Vec<mpsc::Sender<Chunk>>) {
        let time = now_nanos();
        for l in split_lines_at(stream, data, time) {
            let mut line = json_line(&l);
            line.push('\n');
            if let Err(e) = self.log.write_line(line.as_bytes()) {
                tracing::warn!(error = %e, "writing the container log");
            }
        }
        let chunk = Chunk {
            stderr: stream == StreamKind::Stderr,
            time,
            data: data.to_vec(),
            end: self.log.len(),
        };
        self.subscribers.retain(|s| !s.is_closed());
        (chunk, self.subscribers.clone())
    }
}

type Shared = Arc<Mutex<Output>>;

fn lock(o: &Shared) -> std::sync::MutexGuard<'_, Output> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// Copies a pipe or the pty master into the log until EOF (a pty master
/// reads EIO once the container's side is closed).
async fn pump(fd: OwnedFd, stream: StreamKind, out: Shared) {
    let _ = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(fd);
        let mut buf = vec![0u8; 16 * 1024];
        let turn = lock(&out).turn.clone();
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _turn = turn.lock().unwrap_or_else(|p| p.into_inner());
                    let (chunk, to) = lock(&out).push(stream, &buf[..n]);
                    for s in to {
                        // Waits while the queue is full; fails once it is gone.
                        let _ = s.blocking_send(chunk.clone());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
    .await;
}

async fn serve(a: &ShimArgs, s: Started) -> i32 {
    let Started {
        mut container,
        stdout,
        stderr,
        stdin,
        pty,
        pty_peer,
        listener,
        log,
    } = s;
    let out: Shared = Arc::new(Mutex::new(Output {
        log,
        subscribers: Vec::new(),
        done: false,
        turn: Arc::default(),
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
                let (replies, pty) = (replies.clone(), pty.clone());
                tokio::spawn(async move {
                    while let Ok(Some(req)) = rx.recv().await {
                        if let Some(t) = handle(req, &out, exit_rx.clone(), &stdin, pty.as_deref())
                        {
                            replies.lock().unwrap_or_else(|p| p.into_inner()).push(t);
                        }
                    }
                });
                conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            }
        }
    };
    let accept = tokio::spawn(accept);
    let mut pumps = vec![tokio::spawn(pump(stdout, StreamKind::Stdout, out.clone()))];
    pumps.extend(stderr.map(|e| tokio::spawn(pump(e, StreamKind::Stderr, out.clone()))));
    let waited = tokio::task::spawn_blocking(move || {
        let code = container.wait();
        (container, code)
    })
    .await;
    // The container is gone: the master may read to EIO now.
    drop(pty_peer);
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
    pty: Option<&OwnedFd>,
) -> Option<tokio::task::JoinHandle<()>> {
    match req {
        Request::Monitor {
            offset,
            output,
            exit,
        } => {
            let (tx, mut rx) = mpsc::channel(QUEUED);
            let at = {
                let mut o = lock(out);
                if !o.done {
                    o.subscribers.push(tx);
                }
                o.log.len()
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
            let fd = stdin.lock().unwrap_or_else(|p| p.into_inner()).take()?;
            let slot = stdin.clone();
            // Blocking writes off the runtime: a pipe or a pty alike.
            tokio::spawn(async move {
                let mut file = std::fs::File::from(fd);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match data.read(&mut buf).await {
                        // The attach ended: so does the container's stdin.
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(_) => {
                            // berthd went away: keep the stdin for the next.
                            *slot.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(OwnedFd::from(file));
                            return;
                        }
                    };
                    let chunk = buf[..n].to_vec();
                    let wrote = tokio::task::spawn_blocking(move || {
                        let r = file.write_all(&chunk);
                        (file, r)
                    })
                    .await;
                    match wrote {
                        Ok((f, Ok(()))) => file = f,
                        _ => return,
                    }
                }
            });
            None
        }
        Request::Resize { height, width } => {
            if let Some(master) = pty {
                if let Err(e) = resize(master, height, width) {
                    tracing::debug!(error = %e, "resizing the pty");
                }
            }
            None
        }
    }
}

fn resize(master: &OwnedFd, height: u16, width: u16) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on the open pty master.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
            tty: false,
            console_size: None,
        };
        assert_eq!(ShimArgs::parse(&a.to_args()), Some(a.clone()));
        let b = ShimArgs {
            stdin: false,
            tty: true,
            ..a.clone()
        };
        assert_eq!(ShimArgs::parse(&b.to_args()), Some(b));
        let c = ShimArgs {
            tty: true,
            console_size: Some((24, 80)),
            ..a
        };
        assert_eq!(ShimArgs::parse(&c.to_args()), Some(c.clone()));
        assert_eq!(ShimArgs::parse(&[]), None);
    }
}
