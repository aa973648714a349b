//! The container's init between clone and exec: follows the [`InitPlan`]
//! step by step, reports a failure to the runtime over the channel, waits
//! on the exec fifo for `start`, then execs the user process.
//!
//! No JSON is parsed here and our binary is never re-executed.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use oci_spec::runtime::Hook;

use crate::cgroups::{place_self, TasksFile};
use crate::channel::{Channel, ChannelError, Message};
use crate::console::{self, ChildConsole, ConsoleError};
use crate::hooks::{self, HookError};
use crate::namespaces::NamespacePlan;
use crate::plan::{InitPlan, ProcessPlan};
use crate::rootfs::{self, RootfsError};
use crate::syscall::{check, LinuxSyscall, Syscall};

/// A setup step of the init failed; the message goes back to `create`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A plain system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What we were doing, naming the config field.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// Building the rootfs failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The terminal could not be set up.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// A createContainer/startContainer hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The runtime went away.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The runtime sent something unexpected.
    #[error("unexpected message from the runtime: {0:?}")]
    Protocol(Message),
    /// execve failed for every candidate path.
    #[error("exec {arg0:?}: {source}")]
    Exec {
        /// argv[0].
        arg0: String,
        /// The most telling error.
        source: io::Error,
    },
    /// A step asked by another module (cgroups, security) failed.
    #[error("{0}")]
    Extension(String),
}

fn sys(what: impl Into<String>, r: io::Result<()>) -> Result<(), InitError> {
    r.map_err(|source| InitError::Sys {
        what: what.into(),
        source,
    })
}

fn c(ret: libc::c_int) -> io::Result<()> {
    check(ret).map(drop)
}

/// Work that other modules (security: capabilities, LSM labels, seccomp)
/// do inside the init. Each method runs at a fixed point of the setup.
pub trait InitExtension {
    /// After namespaces and the rootfs, before changing user (LSM labels,
    /// capability preparation such as PR_SET_KEEPCAPS).
    fn before_user_change(&self) -> Result<(), String> {
        Ok(())
    }
    /// After the user change and no_new_privs (capability sets).
    fn after_user_change(&self) -> Result<(), String> {
        Ok(())
    }
    /// The very last step before execve (the seccomp filter).
    fn before_exec(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Everything the init works from.
pub(crate) struct InitContext<'a> {
    pub plan: &'a InitPlan,
    pub ns: &'a NamespacePlan,
    pub chan: Channel,
    /// cgroup v1 `tasks` files to write `0` to (place ourselves).
    pub cgroup_tasks: &'a [TasksFile],
    /// Idmapped mount trees the runtime prepared (fds inherited at clone).
    pub idmapped: &'a crate::idmap::IdmappedTrees,
    pub fifo: CString,
    /// The parent runs prestart/createRuntime hooks mid-setup.
    pub runtime_hooks: bool,
    pub create_container: &'a [Hook],
    pub start_container: &'a [Hook],
    pub extensions: &'a [Box<dyn InitExtension + Send + Sync>],
    /// process.terminal: open the container's pty, send its master.
    pub console: Option<ChildConsole>,
}

/// Run the init; never returns.
pub(crate) fn run(ctx: InitContext<'_>) -> ! {
    let err = match setup(&ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ctx.chan.send(&Message::Error(err.to_string()));
    // After `create` returned, nobody listens: say it on stderr.
    if matches!(err, InitError::Hook(_) | InitError::Exec { .. }) {
        let msg = format!("berth init: {err}\n");
        // SAFETY: writing a valid buffer to fd 2.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
    // SAFETY: _exit ends the process without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

fn setup(ctx: &InitContext<'_>) -> Result<std::convert::Infallible, InitError> {
    let plan = ctx.plan;
    let s = LinuxSyscall;
    let state_json = match ctx.chan.recv()? {
        Message::Go(s) => s,
        other => return Err(InitError::Protocol(other)),
    };
    join_cgroups(ctx.cgroup_tasks)?;

    // Join namespaces given by path (pid and time were joined by the
    // parent, which is how a child lands in them).
    for j in &ctx.ns.joins {
        if j.kind.flag == libc::CLONE_NEWPID || j.kind.flag == libc::CLONE_NEWTIME {
            continue;
        }
        // SAFETY: setns on an open namespace fd of the checked type.
        sys(
            format!("join {} namespace {:?}", j.kind.name, j.path),
            c(unsafe { libc::setns(j.fd.as_raw_fd(), j.kind.flag) }),
        )?;
    }
    if ctx.ns.has(libc::CLONE_NEWUSER) {
        // Become root of the user namespace (the maps are written).
        // SAFETY: plain id-changing calls.
        sys(
            "setresgid(0) in the user namespace",
            c(unsafe { libc::setresgid(0, 0, 0) }),
        )?;
        // SAFETY: as above.
        sys(
            "setresuid(0) in the user namespace",
            c(unsafe { libc::setresuid(0, 0, 0) }),
        )?;
    }
    if ctx.ns.is_new(libc::CLONE_NEWCGROUP) {
        // Unshared after the runtime placed us, so the cgroup is our root.
        // SAFETY: unshare with a namespace flag.
        sys(
            "unshare cgroup namespace",
            c(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }),
        )?;
    }
    if let Some(offsets) = &plan.time_offsets {
        // Our children, and we ourselves at execve, enter the new time
        // namespace; nobody is in it yet, so the offsets can still be set.
        // SAFETY: unshare with a namespace flag.
        sys(
            "unshare time namespace",
            c(unsafe { libc::unshare(libc::CLONE_NEWTIME) }),
        )?;
        sys(
            "linux.timeOffsets: write /proc/self/timens_offsets",
            std::fs::write("/proc/self/timens_offsets", offsets),
        )?;
    }
    if let Some(adj) = plan.process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|source| {
            InitError::Sys {
                what: format!(
                    "process.oomScoreAdj: cannot set {adj}{}",
                    if source.raw_os_error() == Some(libc::EACCES) {
                        " (lowering it needs CAP_SYS_RESOURCE, which this runtime lacks)"
                    } else {
                        ""
                    }
                ),
                source,
            }
        })?;
    }

    // SAFETY: umask never fails.
    unsafe { libc::umask(0) };
    if plan.setup_rootfs {
        let root = rootfs::prepare(&s, plan, ctx.idmapped)?;
        rootfs::write_sysctls(&s, root.as_fd(), plan)?;
        rootfs::protect_paths(&s, root.as_fd(), plan)?;
    } else {
        for (path, value) in &plan.sysctl {
            std::fs::write(std::ffi::OsStr::from_bytes(path.to_bytes()), value).map_err(
                |source| InitError::Sys {
                    what: format!("linux.sysctl: write {}", path.to_string_lossy()),
                    source,
                },
            )?;
        }
    }
    // The fifo lives on the host: open it before the host goes away.
    // O_RDWR never blocks and keeps a writer, so read() waits for `start`.
    // SAFETY: a valid C string path.
    let fifo = check(unsafe { libc::open(ctx.fifo.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
        .map_err(|source| InitError::Sys {
            what: "open exec fifo".into(),
            source,
        })?;
    // SAFETY: a new fd we own.
    let fifo = unsafe { OwnedFd::from_raw_fd(fifo) };

    if ctx.runtime_hooks {
        ctx.chan.send(&Message::NeedHooks)?;
        match ctx.chan.recv()? {
            Message::HooksDone => {}
            other => return Err(InitError::Protocol(other)),
        }
    }
    hooks::run("createContainer", ctx.create_container, &state_json)?;

    if plan.setup_rootfs {
        rootfs::pivot(&s, plan)?;
    } else {
        sys("chdir /", s.chdir(c"/"))?;
    }
    if let Some(con) = &ctx.console {
        // After pivot_root: /dev/ptmx is the container's devpts. Before
        // root.readonly, which could forbid creating /dev/console. Only a
        // mount namespace of our own gets the /dev/console bind.
        let (uid, gid) = (plan.process.uid, plan.process.gid);
        console::attach(con, uid, gid, plan.setup_rootfs)?;
    }
    if plan.setup_rootfs {
        rootfs::finalize(&s, plan)?;
    }
    if let Some(h) = &plan.hostname {
        sys("hostname", s.sethostname(h))?;
    }
    if let Some(d) = &plan.domainname {
        sys("domainname", s.setdomainname(d))?;
    }
    for r in &plan.process.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: a valid rlimit for a valid resource.
        let ret = unsafe { libc::setrlimit(r.resource as _, &lim) };
        c(ret).map_err(|source| InitError::Sys {
            what: format!(
                "process.rlimits {}: cannot set soft {} hard {}{}",
                r.name,
                r.soft,
                r.hard,
                if source.raw_os_error() == Some(libc::EPERM) {
                    " (raising the hard limit needs CAP_SYS_RESOURCE, which this runtime lacks)"
                } else {
                    ""
                }
            ),
            source,
        })?;
    }
    for e in ctx.extensions {
        e.before_user_change().map_err(InitError::Extension)?;
    }
    change_user(&plan.process)?;
    // SAFETY: umask never fails.
    unsafe { libc::umask(plan.process.umask.unwrap_or(0o022)) };
    sys(
        format!("process.cwd {:?}", plan.process.cwd),
        s.chdir(&plan.process.cwd),
    )?;
    if plan.process.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        sys(
            "noNewPrivileges",
            c(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }),
        )?;
    }
    for e in ctx.extensions {
        e.after_user_change().map_err(InitError::Extension)?;
    }
    // Like runc: a missing or non-executable command fails `create`.
    let exe = find_executable(&plan.process)?;
    // Only stdio (and fds the caller passed on purpose) survive exec.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    ctx.chan.send(&Message::Ready)?;
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fifo.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        let e = io::Error::last_os_error();
        if n < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(InitError::Sys {
            what: "wait for start".into(),
            source: e,
        });
    }
    // From here a failure is reported to `start` through the fifo: it
    // waits until our fifo fd closes (exec or exit) and reads what is left.
    let err = match hooks::run("startContainer", ctx.start_container, &state_json) {
        Err(e) => InitError::Hook(e),
        Ok(()) => match ctx.extensions.iter().try_for_each(|e| e.before_exec()) {
            Err(e) => InitError::Extension(e),
            Ok(()) => exec(&plan.process, exe),
        },
    };
    let msg = format!("E{err}");
    // SAFETY: writing a valid buffer to our open fifo fd.
    unsafe { libc::write(fifo.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    Err(err)
}

/// Place ourselves in the container's v1 cgroups (before anything that
/// may allocate memory or fork on its behalf).
pub(crate) fn join_cgroups(files: &[TasksFile]) -> Result<(), InitError> {
    place_self(files).map_err(|(i, source)| InitError::Sys {
        what: format!("join cgroup {}", files[i].path.display()),
        source,
    })
}

/// The first of the PATH candidates that exists and is executable.
pub(crate) fn find_executable(p: &ProcessPlan) -> Result<&CString, InitError> {
    let mut best = None;
    for path in &p.exec_paths {
        // SAFETY: a valid C string path.
        if unsafe { libc::access(path.as_ptr(), libc::X_OK) } == 0 {
            return Ok(path);
        }
        let e = io::Error::last_os_error();
        if best.is_none() || e.raw_os_error() != Some(libc::ENOENT) {
            best = Some(e);
        }
    }
    Err(InitError::Exec {
        arg0: p.args[0].to_string_lossy().into_owned(),
        source: best.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOENT)),
    })
}

pub(crate) fn change_user(p: &ProcessPlan) -> Result<(), InitError> {
    let groups = &p.additional_gids;
    // setgroups is refused in a user namespace with setgroups=deny; only
    // call it when groups are asked for or we can.
    // SAFETY: groups is a valid slice of gid_t.
    let r = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    if r < 0 && !groups.is_empty() {
        return Err(InitError::Sys {
            what: format!("process.user.additionalGids {groups:?}"),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: plain id-changing calls.
    sys(
        format!("process.user.gid {}", p.gid),
        c(unsafe { libc::setresgid(p.gid, p.gid, p.gid) }),
    )?;
    // SAFETY: as above.
    sys(
        format!("process.user.uid {}", p.uid),
        c(unsafe { libc::setresuid(p.uid, p.uid, p.uid) }),
    )
}

pub(crate) fn exec(p: &ProcessPlan, exe: &CString) -> InitError {
    let mut argv: Vec<*const libc::c_char> = p.args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = p.env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Undo what Rust's runtime set up for us: ignored SIGPIPE, signal mask.
    // SAFETY: resetting a disposition and the mask of this single thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings.
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    InitError::Exec {
        arg0: p.args[0].to_string_lossy().into_owned(),
        source: io::Error::last_os_error(),
    }
}
