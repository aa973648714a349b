//! `exec`: run a new process inside a running container, joining its
//! namespaces and cgroups with its (or process.json's) security settings.

use std::path::PathBuf;

use libcontainer::builder::load_spec;
use libcontainer::console::Console;
use libcontainer::exec::ExecBuilder;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::Container;
use oci_spec::runtime::Process;

use super::run::FORWARDED;
use crate::tty::Proxy;
use crate::Globals;

/// Execute a process in a running container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A process.json (OCI `process` object) instead of CMD and flags.
    #[arg(long, short)]
    pub process: Option<PathBuf>,
    /// Give the process a terminal (its master goes to --console-socket;
    /// without one, exec receives it and proxies its own stdio).
    #[arg(long, short)]
    pub tty: bool,
    /// Do not wait for the process.
    #[arg(long, short)]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (with --tty).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (KEY=VALUE), repeatable.
    #[arg(long, short)]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(long, short)]
    pub user: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// The container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

/// Parse `UID[:GID]`.
fn parse_user(s: &str) -> anyhow::Result<(u32, Option<u32>)> {
    let bad = || anyhow::anyhow!("--user {s:?}: expected UID[:GID] (numbers)");
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u.parse().map_err(|_| bad())?;
    let gid = g.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// The process to run: process.json, or the container's process with
/// CMD and the flags applied (like runc).
fn process(a: &Args, spec: &oci_spec::runtime::Spec) -> anyhow::Result<Process> {
    if let Some(path) = &a.process {
        let f =
            std::fs::File::open(path).map_err(|e| anyhow::anyhow!("--process {path:?}: {e}"))?;
        let p: Process = serde_json::from_reader(std::io::BufReader::new(f))
            .map_err(|e| anyhow::anyhow!("--process {path:?}: {e}"))?;
        return Ok(p);
    }
    if a.command.is_empty() {
        anyhow::bail!("exec: a command is required (or --process FILE)");
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_cwd(a.cwd.clone().unwrap_or_else(|| PathBuf::from("/")));
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            if !e.contains('=') {
                anyhow::bail!("--env {e:?}: expected KEY=VALUE");
            }
            let key = &e[..=e.find('=').unwrap_or(0)];
            env.retain(|old| !old.starts_with(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Run `exec`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let mut c = Container::load(&g.root, &a.id)?;
    let bundle = c.state().bundle.clone();
    let spec = load_spec(&bundle.join("config.json"))?;
    let p = process(&a, &spec)?;
    let size = p.console_size().map(|s| {
        (
            u16::try_from(s.height()).unwrap_or(u16::MAX),
            u16::try_from(s.width()).unwrap_or(u16::MAX),
        )
    });
    let (console, receiver) = match (p.terminal() == Some(true), &a.console_socket) {
        (false, _) => (None, None),
        (true, Some(sock)) => {
            let console = Console::to_socket(sock)?;
            let console = match size {
                Some((h, w)) => console.size(h, w),
                None => console,
            };
            (Some(console), None)
        }
        (true, None) if a.detach => anyhow::bail!(super::create::DETACHED_TTY),
        (true, None) => {
            let (console, ours) = crate::tty::console_pair(size)?;
            (Some(console), Some(ours))
        }
    };
    let security = ProcessSecurity::from_parts(
        &spec,
        Some(&p),
        &bundle,
        &LsmHost::detect(),
        Some(&g.root.join(".seccomp")),
    )?;
    let set = (!a.detach).then(super::run::block_signals);
    let mut b = ExecBuilder::new(p);
    if let Some(console) = console {
        b = b.console(console);
    }
    let child = b
        .create_extension(security.create_extension())
        .init_extension(security.init_extension())
        .spawn(&mut c)?;
    if let Some(path) = &a.pid_file {
        std::fs::write(path, child.pid().to_string())
            .map_err(|e| anyhow::anyhow!("--pid-file {path:?}: {e}"))?;
    }
    let Some(set) = set else {
        return Ok(0);
    };
    let pid = child.pid();
    let code = match receiver {
        Some(r) => {
            let proxy = r.recv().and_then(|m| Proxy::new(m, &FORWARDED));
            match proxy {
                Ok(proxy) => proxy.run(pid, || Ok(try_wait(pid)?))?,
                Err(e) => {
                    // SAFETY: our own child, which nobody would serve.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let _ = wait(pid, &set);
                    return Err(e.into());
                }
            }
        }
        None => wait(pid, &set)?,
    };
    Ok(u8::try_from(code).unwrap_or(255))
}

/// The exit status of `pid` if it has exited (128+N for signal N).
fn try_wait(pid: libc::pid_t) -> std::io::Result<Option<i32>> {
    let mut st = 0;
    // SAFETY: polling our own child with a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if r != pid {
        return Ok(None);
    }
    Ok(Some(if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        libc::WEXITSTATUS(st)
    }))
}

/// Pass the blocked signals of `set` to `pid` until it exits; its status.
fn wait(pid: libc::pid_t, set: &libc::sigset_t) -> std::io::Result<i32> {
    loop {
        if let Some(code) = try_wait(pid)? {
            return Ok(code);
        }
        // SAFETY: waiting for a signal of a valid, blocked set.
        let sig = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_user;

    #[test]
    fn user_forms() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:50").unwrap(), (1000, Some(50)));
        assert!(parse_user("bob").is_err());
        assert!(parse_user("1:x").is_err());
    }
}
