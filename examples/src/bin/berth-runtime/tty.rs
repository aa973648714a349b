//! A foreground `run` or `exec --tty` without `--console-socket`: like
//! runc, berth-runtime receives the container's pty master itself (over a
//! socket pair instead of a named socket) and proxies between the caller's
//! stdio and it. A caller's terminal on stdin is put in raw mode (restored
//! on every way out, errors included), SIGWINCH becomes TIOCSWINSZ on the
//! pty, other forwarded signals go to the process, and the process's exit
//! status is returned once its output is drained. Unlike runc, a caller
//! without any terminal is served too: its input goes through unchanged and
//! its end of input becomes the pty's EOF character.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use libcontainer::console::Console;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

/// Why the terminal proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// A system call of the proxy failed.
    #[error("terminal proxy: {what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The container sent no pty master.
    #[error("terminal proxy: the container sent no terminal master")]
    NoMaster,
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> TtyError {
    move |e| TtyError::Sys {
        what,
        source: e.into(),
    }
}

/// Our end of the console socket pair; the other end goes to libcontainer.
#[derive(Debug)]
pub struct MasterReceiver {
    ours: UnixStream,
}

/// A socket pair for the container's master: the [`Console`] to register
/// with libcontainer and our end. The pty starts at the caller's terminal
/// size when it has one, else at `spec_size` (process.consoleSize).
pub fn console_pair(spec_size: Option<(u16, u16)>) -> Result<(Console, MasterReceiver), TtyError> {
    let (ours, theirs) = UnixStream::pair().map_err(|source| TtyError::Sys {
        what: "socketpair",
        source,
    })?;
    let mut console = Console::from_stream(theirs);
    if let Some((h, w)) = host_terminal()
        .and_then(|fd| window_size(fd).ok())
        .or(spec_size)
    {
        console = console.size(h, w);
    }
    Ok((console, MasterReceiver { ours }))
}

impl MasterReceiver {
    /// The master the container sent during create/spawn (already queued
    /// on the socket by then).
    pub fn recv(self) -> Result<OwnedFd, TtyError> {
        libcontainer::console::recv_master(self.ours.as_fd())
            .map_err(|source| TtyError::Sys {
                what: "receive the terminal master",
                source,
            })?
            .map(|got| got.master)
            .ok_or(TtyError::NoMaster)
    }
}

/// The caller's terminal, as runc looks for it: stderr, stdout, stdin.
fn host_terminal() -> Option<BorrowedFd<'static>> {
    [2, 0, 1]
        .into_iter()
        // SAFETY: the standard streams stay open for the process's life.
        .map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .find(|fd| termios::tcgetattr(fd).is_ok())
}

fn window_size(fd: BorrowedFd) -> io::Result<(u16, u16)> {
    // SAFETY: an all-zero winsize is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize to a valid pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ws.ws_row, ws.ws_col))
}

fn set_window_size(fd: BorrowedFd, (rows, cols): (u16, u16)) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The caller's terminal in raw mode; its settings come back on drop.
struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    /// Raw mode for `fd` if it is a terminal (None if it is not).
    fn enter(fd: BorrowedFd<'static>) -> Result<Option<Self>, TtyError> {
        let Ok(saved) = termios::tcgetattr(fd) else {
            return Ok(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).map_err(sys("raw mode on stdin"))?;
        Ok(Some(Self { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSADRAIN: what we wrote is shown before the settings change.
        if let Err(e) = termios::tcsetattr(self.fd, SetArg::TCSADRAIN, &self.saved) {
            tracing::warn!("restoring the terminal's settings: {e}");
        }
    }
}

/// The signals to watch while proxying: those `forwarded` and SIGCHLD. The
/// caller blocked them before creating the process.
fn signal_fd(forwarded: &[libc::c_int]) -> Result<SignalFd, TtyError> {
    let mut set = SigSet::empty();
    for s in forwarded.iter().chain([&libc::SIGCHLD]) {
        set.add(Signal::try_from(*s).map_err(sys("signal set"))?);
    }
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("signalfd"))
}

/// A started process with a pty, proxied until it exits.
pub struct Proxy {
    master: File,
    /// Raw mode of the caller's terminal, restored when the proxy drops.
    raw: Option<RawMode>,
    signals: SignalFd,
}

impl Proxy {
    /// Take `master`, put the caller's terminal (stdin) in raw mode and
    /// watch `forwarded` signals (blocked by the caller) and SIGCHLD. Call
    /// before starting the process so nothing it prints is lost.
    pub fn new(master: OwnedFd, forwarded: &[libc::c_int]) -> Result<Self, TtyError> {
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(sys("non-blocking master"))?;
        let signals = signal_fd(forwarded)?;
        // SAFETY: stdin stays open for the process's life.
        let raw = RawMode::enter(unsafe { BorrowedFd::borrow_raw(0) })?;
        Ok(Self {
            master: File::from(master),
            raw,
            signals,
        })
    }

    /// Proxy stdin to the pty and the pty to stdout until `exited` (asked
    /// on each SIGCHLD) gives the exit status; signals other than SIGWINCH
    /// and SIGCHLD go to `pid`.
    pub fn run(
        mut self,
        pid: libc::pid_t,
        mut exited: impl FnMut() -> anyhow::Result<Option<i32>>,
    ) -> anyhow::Result<i32> {
        let stdin = io::stdin();
        let mut stdout = io::stdout().lock();
        let mut to_pty: Vec<u8> = Vec::new();
        let mut stdin_open = true;
        // Cleared when the pty's last slave closes (or it fails): then only
        // the exit is awaited.
        let mut master_open = true;
        // Cleared if stdout goes away: output is then read and dropped so
        // the process never blocks on a full pty.
        let mut stdout_ok = true;
        let mut buf = vec![0u8; 32 * 1024];
        if let Some(code) = exited()? {
            self.drain(&mut stdout, &mut buf, stdout_ok);
            return Ok(code);
        }
        loop {
            let want_master = match (master_open, to_pty.is_empty()) {
                (false, _) => PollFlags::empty(),
                (true, true) => PollFlags::POLLIN,
                (true, false) => PollFlags::POLLIN | PollFlags::POLLOUT,
            };
            let want_stdin = if stdin_open && to_pty.is_empty() && master_open {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            };
            let mut fds = [
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.master.as_fd(), want_master),
                PollFd::new(stdin.as_fd(), want_stdin),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                r => r.map_err(sys("poll"))?,
            };
            let ready = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
            let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
            if !sig_ready.is_empty() {
                while let Some(info) = self.signals.read_signal().map_err(sys("read signals"))? {
                    let sig = info.ssi_signo as libc::c_int;
                    if sig == libc::SIGCHLD {
                        if let Some(code) = exited()? {
                            self.drain(&mut stdout, &mut buf, stdout_ok);
                            return Ok(code);
                        }
                    } else if sig == libc::SIGWINCH {
                        self.resize();
                    } else {
                        // SAFETY: signalling our own child.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            }
            if master_ready.contains(PollFlags::POLLOUT) {
                match self.master.write(&to_pty) {
                    Ok(n) => drop(to_pty.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => master_open = false,
                }
            }
            if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            {
                match self.master.read(&mut buf) {
                    Ok(0) => master_open = false,
                    Ok(n) => stdout_ok = forward(&mut stdout, &buf[..n], stdout_ok),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // EIO: no slave is open any more.
                    Err(_) => master_open = false,
                }
            }
            if !stdin_ready.is_empty() {
                match stdin.lock().read(&mut buf) {
                    Ok(n) if n > 0 => to_pty.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // End of input: a caller without a terminal gives the
                    // pty's EOF, as script(1) does; a terminal sends its
                    // own ^D in raw mode.
                    _ => {
                        stdin_open = false;
                        if self.raw.is_none() {
                            self.push_eof(&mut to_pty);
                        }
                    }
                }
            }
        }
    }

    /// Output left in the pty after the process exited. The pty hands
    /// data over asynchronously, so wait for it a little; its children may
    /// keep the slave open, so stop after a quiet moment or a time limit.
    fn drain(&mut self, out: &mut impl Write, buf: &mut [u8], mut ok: bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u8)) {
                Ok(0) => return,
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(_) => return,
            }
            match self.master.read(buf) {
                Ok(0) => return,
                Ok(n) => ok = forward(out, &buf[..n], ok),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// The caller's terminal size onto the pty (the kernel then sends
    /// SIGWINCH to the pty's foreground process group).
    fn resize(&self) {
        let Some(host) = host_terminal() else { return };
        match window_size(host) {
            Ok(size) => {
                if let Err(e) = set_window_size(self.master.as_fd(), size) {
                    tracing::warn!("resizing the container's terminal: {e}");
                }
            }
            Err(e) => tracing::warn!("reading the terminal's size: {e}"),
        }
    }

    /// The pty's EOF character, twice after an unfinished line (the first
    /// one only ends the line in canonical mode).
    fn push_eof(&self, to_pty: &mut Vec<u8>) {
        let Ok(t) = termios::tcgetattr(self.master.as_fd()) else {
            return;
        };
        if !t.local_flags.contains(LocalFlags::ICANON) {
            return;
        }
        let eof = t.control_chars[SpecialCharacterIndices::VEOF as usize];
        if !matches!(to_pty.last(), None | Some(b'\n')) {
            to_pty.push(eof);
        }
        to_pty.push(eof);
    }
}

/// Write `data` to `out` while it works; whether it still does.
fn forward(out: &mut impl Write, data: &[u8], ok: bool) -> bool {
    ok && out.write_all(data).and_then(|()| out.flush()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pty() -> (OwnedFd, File) {
        let m = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
            .unwrap();
        nix::pty::grantpt(&m).unwrap();
        nix::pty::unlockpt(&m).unwrap();
        let name = nix::pty::ptsname_r(&m).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name)
            .unwrap();
        (OwnedFd::from(m), slave)
    }

    #[test]
    fn the_master_sent_over_the_pair_arrives_and_a_missing_one_is_an_error() {
        let (console, receiver) = console_pair(Some((5, 6))).unwrap();
        drop(console);
        assert!(matches!(receiver.recv(), Err(TtyError::NoMaster)));
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (master, mut slave) = pty();
        let fds = [master.as_raw_fd()];
        nix::sys::socket::sendmsg::<()>(
            theirs.as_raw_fd(),
            &[io::IoSlice::new(b"/dev/pts/0")],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(master);
        let mut got = File::from(MasterReceiver { ours }.recv().unwrap());
        slave.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        got.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn eof_for_a_caller_without_a_terminal_follows_the_line_state() {
        let (master, _slave) = pty();
        let proxy = Proxy {
            master: File::from(master),
            raw: None,
            signals: signal_fd(&[]).unwrap(),
        };
        let eof = termios::tcgetattr(proxy.master.as_fd())
            .unwrap()
            .control_chars[SpecialCharacterIndices::VEOF as usize];
        let mut v = b"line\n".to_vec();
        proxy.push_eof(&mut v);
        assert_eq!(v, [b"line\n".as_slice(), &[eof]].concat());
        let mut v = b"half".to_vec();
        proxy.push_eof(&mut v);
        assert_eq!(v, [b"half".as_slice(), &[eof, eof]].concat());
    }

    #[test]
    fn a_failed_stdout_stops_forwarding_but_not_reading() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(!forward(&mut Broken, b"a", true));
        let mut v = Vec::new();
        assert!(forward(&mut v, b"a", true));
        assert!(!forward(&mut v, b"b", false));
        assert_eq!(v, b"a");
    }
}
