//! `run`: create, start, wait, delete; exit with the container's status.

use std::path::PathBuf;

use crate::tty::Proxy;
use crate::Globals;

/// Create and run a container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle directory (holding config.json).
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not wait: leave the container running.
    #[arg(long, short)]
    pub detach: bool,
    /// Unix socket to send the terminal's master to (process.terminal);
    /// without it, a foreground `run` receives the master and proxies
    /// between its stdio and the container's terminal.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// The container id.
    pub id: String,
}

/// Signals `run` passes on to the container, like runc.
pub(crate) const FORWARDED: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Block the forwarded signals and SIGCHLD (the init resets its mask before
/// exec) and return the set to wait on.
pub(crate) fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set; the mask of this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain([&libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Run `run`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let set = (!a.detach).then(block_signals);
    let (builder, receiver) = super::create::builder(
        g,
        &a.bundle,
        a.pid_file.as_ref(),
        a.console_socket.as_ref(),
        !a.detach,
        &a.id,
    )?;
    let mut c = builder.create()?;
    // The master is queued on the pair by now; the proxy takes it (and the
    // caller's terminal) before the process runs.
    let proxy = match receiver.map(|r| r.recv().and_then(|m| Proxy::new(m, &FORWARDED))) {
        Some(Err(e)) => {
            let _ = c.delete(true);
            return Err(e.into());
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        return Err(e.into());
    }
    if a.detach {
        return Ok(0);
    }
    let code = match (set, proxy) {
        (Some(_), Some(proxy)) => {
            let pid = c.pid();
            match proxy.run(pid, || Ok(c.try_wait()?)) {
                Ok(code) => code,
                Err(e) => {
                    let _ = c.delete(true);
                    return Err(e);
                }
            }
        }
        (Some(set), None) => forward_until_exit(&mut c, &set)?,
        (None, _) => c.wait()?,
    };
    c.delete(true)?;
    Ok(u8::try_from(code).unwrap_or(255))
}

/// Pass signals to the container until its init exits; its exit status.
fn forward_until_exit(
    c: &mut libcontainer::Container,
    set: &libc::sigset_t,
) -> anyhow::Result<i32> {
    loop {
        if let Some(code) = c.try_wait()? {
            return Ok(code);
        }
        // SAFETY: waiting for a signal of a valid, blocked set.
        let sig = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.pid(), sig) };
        }
    }
}
