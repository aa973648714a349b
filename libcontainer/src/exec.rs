//! `exec`: run another process inside a running container. It joins every
//! namespace of the container's init (the pid namespace through the
//! parent, so the clone lands in it), its cgroups (`CLONE_INTO_CGROUP` on
//! the unified hierarchy; in v1 ones it writes `0` to their `tasks` files
//! before anything else), its root, and gets its own user, capabilities,
//! seccomp and no_new_privs through the same [`InitExtension`] points as an
//! init. Our binary is never re-executed.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::Process;

use crate::builder::CreateExtension;
use crate::cgroups::TasksFile;
use crate::channel::{self, Channel, Message};
use crate::clone::{clone_process, Forked};
use crate::console::{self, ChildConsole, Console};
use crate::container::Container;
use crate::init::{self, InitError, InitExtension};
use crate::plan::ProcessPlan;
use crate::state::Status;

/// Why an exec failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The container cannot take an exec now.
    #[error("container {id} is {status}: cannot exec into it")]
    NotRunning {
        /// Container id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// The process description is wrong (names the field).
    #[error("exec process: {0}")]
    Plan(#[from] crate::plan::PlanError),
    /// Opening a namespace, the root or the cgroup failed.
    #[error("exec into {id}: {what}: {source}")]
    Setup {
        /// Container id.
        id: String,
        /// What was being done.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// A security/cgroup extension refused.
    #[error("exec into {id}: {msg}")]
    Extension {
        /// Container id.
        id: String,
        /// Why.
        msg: String,
    },
    /// The process failed between clone and execve (its message).
    #[error("exec into {id}: {msg}")]
    Child {
        /// Container id.
        id: String,
        /// The child's message.
        msg: String,
    },
}

/// Namespaces in the order they are joined: user first (it grants the
/// capabilities for the rest), mount last (after it, /proc paths change).
const NAMESPACES: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
    ("mnt", libc::CLONE_NEWNS),
];

/// An exec'd process, started. Wait for it with [`ExecProcess::wait`].
#[derive(Debug)]
pub struct ExecProcess {
    pid: i32,
}

impl ExecProcess {
    /// Its host pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Wait for it; the exit code, or 128 + signal number.
    pub fn wait(&self) -> io::Result<i32> {
        let mut st = 0;
        loop {
            // SAFETY: waiting for our own child with a valid out-pointer.
            if unsafe { libc::waitpid(self.pid, &mut st, 0) } >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            libc::WEXITSTATUS(st)
        })
    }
}

/// Builds an exec into a container.
///
/// ```no_run
/// use libcontainer::{exec::ExecBuilder, Container};
/// let mut c = Container::load("/run/berth", "web")?;
/// let mut process = oci_spec::runtime::Process::default();
/// process.set_args(Some(vec!["hostname".into()]));
/// let code = ExecBuilder::new(process).spawn(&mut c)?.wait()?;
/// # let _ = code; Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ExecBuilder {
    process: Process,
    create_ext: Vec<Box<dyn CreateExtension>>,
    init_ext: Vec<Box<dyn InitExtension + Send + Sync>>,
    console: Option<Console>,
}

impl std::fmt::Debug for ExecBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecBuilder")
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

impl ExecBuilder {
    /// Exec `process` (args, env, cwd, user, rlimits, noNewPrivileges).
    pub fn new(process: Process) -> Self {
        Self {
            process,
            create_ext: Vec::new(),
            init_ext: Vec::new(),
            console: None,
        }
    }

    /// Give the process a pty of the container's devpts (opened inside
    /// the container after entering its root); the master goes to
    /// `console`'s socket before `spawn` returns.
    pub fn console(mut self, console: Console) -> Self {
        self.console = Some(console);
        self
    }

    /// Runtime-side work (e.g. the seccomp agent connection).
    pub fn create_extension(mut self, e: Box<dyn CreateExtension>) -> Self {
        self.create_ext.push(e);
        self
    }

    /// Child-side work (capabilities, labels, seccomp).
    pub fn init_extension(mut self, e: Box<dyn InitExtension + Send + Sync>) -> Self {
        self.init_ext.push(e);
        self
    }

    /// Start the process in `c`; returns once it has exec'd (or failed).
    pub fn spawn(mut self, c: &mut Container) -> Result<ExecProcess, ExecError> {
        let id = c.id().to_string();
        let status = c.status();
        if !matches!(status, Status::Created | Status::Running) {
            return Err(ExecError::NotRunning { id, status });
        }
        let plan = crate::plan::process_plan(&self.process)?;
        let setup = |what: String| {
            let id = id.clone();
            move |source| ExecError::Setup { id, what, source }
        };
        let pid = c.pid();
        let joins = open_namespaces(pid).map_err(setup("open namespaces".into()))?;
        let root = open_path(
            &format!("/proc/{pid}/root"),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .map_err(setup("open the container's root".into()))?;
        let pid_ns = differing_ns(pid, "pid").map_err(setup("open pid namespace".into()))?;
        let cgroups =
            crate::cgroups::CgroupManager::from_container(c).map_err(|e| ExecError::Extension {
                id: id.clone(),
                msg: e.to_string(),
            })?;
        let cgroup_fd = match &cgroups {
            Some(m) => m.unified_dir_fd().map_err(|e| ExecError::Extension {
                id: id.clone(),
                msg: e.to_string(),
            })?,
            None => None,
        };
        // The child moves itself into the v1 cgroups (no global cgroup
        // lock, see `cgroups::place_self`); clone3 puts it in the unified one.
        let cgroup_tasks = match &cgroups {
            Some(m) => m.v1_tasks_files().map_err(|e| ExecError::Extension {
                id: id.clone(),
                msg: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let spec = oci_spec::runtime::Spec::default();
        for e in &mut self.create_ext {
            e.before_clone(&spec, &id)
                .map_err(|msg| ExecError::Extension {
                    id: id.clone(),
                    msg,
                })?;
        }
        let (parent_chan, child_chan) =
            channel::pair().map_err(|e| setup("channel".into())(io::Error::other(e)))?;
        let child = ChildPlan {
            joins: &joins,
            root: &root,
            plan: &plan,
            chan: &child_chan,
            cgroup_tasks: &cgroup_tasks,
            extensions: &self.init_ext,
            console: self.console.as_ref().map(Console::for_child),
        };
        // Our children are born in the container's pid namespace from now
        // on; put it back right after the clone.
        let own_pid_ns = match &pid_ns {
            Some(ns) => {
                let own = open_path("/proc/self/ns/pid", libc::O_RDONLY)
                    .map_err(setup("open own pid namespace".into()))?;
                // SAFETY: setns on a namespace fd we opened, of the right type.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) } < 0 {
                    return Err(setup("join pid namespace".into())(
                        io::Error::last_os_error(),
                    ));
                }
                Some(own)
            }
            None => None,
        };
        // SAFETY: the child only follows the prepared plan and ends in
        // execve or _exit.
        let forked = unsafe { clone_process(0, cgroup_fd.as_ref().map(AsRawFd::as_raw_fd)) };
        if let Some(own) = own_pid_ns {
            // SAFETY: as above, back to our own pid namespace.
            unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWPID) };
        }
        let child_pid = match forked.map_err(setup("clone".into()))? {
            Forked::Child => run_child(child),
            Forked::Parent(p) => p,
        };
        drop(child_chan);
        drop(cgroup_tasks);
        let proc_handle = ExecProcess { pid: child_pid };
        let fail = |msg: String| {
            // SAFETY: killing and reaping our own child.
            unsafe { libc::kill(child_pid, libc::SIGKILL) };
            let _ = proc_handle.wait();
            ExecError::Extension {
                id: id.clone(),
                msg,
            }
        };
        for e in &mut self.create_ext {
            if let Err(msg) = e.after_clone(child_pid) {
                return Err(fail(msg));
            }
        }
        if let Err(e) = parent_chan.send(&Message::Go(Vec::new())) {
            return Err(fail(e.to_string()));
        }
        // EOF (the channel closed at execve) means success.
        match parent_chan.recv() {
            Ok(Message::Error(msg)) => {
                let _ = proc_handle.wait();
                Err(ExecError::Child { id, msg })
            }
            _ => Ok(proc_handle),
        }
    }
}

struct ChildPlan<'a> {
    joins: &'a [(libc::c_int, OwnedFd)],
    root: &'a OwnedFd,
    plan: &'a ProcessPlan,
    chan: &'a Channel,
    cgroup_tasks: &'a [TasksFile],
    extensions: &'a [Box<dyn InitExtension + Send + Sync>],
    console: Option<ChildConsole>,
}

fn run_child(c: ChildPlan<'_>) -> ! {
    let err = match child_setup(&c) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = c.chan.send(&Message::Error(err.to_string()));
    // SAFETY: _exit ends the child without the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

fn sys(what: &str, ret: libc::c_int) -> Result<(), InitError> {
    if ret < 0 {
        return Err(InitError::Sys {
            what: what.into(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn child_setup(c: &ChildPlan<'_>) -> Result<std::convert::Infallible, InitError> {
    match c.chan.recv()? {
        Message::Go(_) => {}
        other => return Err(InitError::Protocol(other)),
    }
    init::join_cgroups(c.cgroup_tasks)?;
    for (flag, fd) in c.joins {
        // SAFETY: setns on an open namespace fd of the checked type.
        sys("setns", unsafe { libc::setns(fd.as_raw_fd(), *flag) })?;
    }
    // The init's root (pivot_root or chroot): chroot to it.
    // SAFETY: fchdir to an open directory fd, then chroot to ".".
    sys("chdir to the container root", unsafe {
        libc::fchdir(c.root.as_raw_fd())
    })?;
    // SAFETY: a valid C string.
    sys("chroot", unsafe { libc::chroot(c".".as_ptr()) })?;
    let p = c.plan;
    if let Some(con) = &c.console {
        // Inside the container's root: its /dev/ptmx, its devpts.
        console::attach(con, p.uid, p.gid, false)?;
    }
    for r in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: a valid rlimit for a valid resource.
        sys(r.name, unsafe { libc::setrlimit(r.resource as _, &lim) })?;
    }
    for e in c.extensions {
        e.before_user_change().map_err(InitError::Extension)?;
    }
    init::change_user(p)?;
    // SAFETY: umask never fails.
    unsafe { libc::umask(p.umask.unwrap_or(0o022)) };
    // SAFETY: a valid C string.
    sys("process.cwd", unsafe { libc::chdir(p.cwd.as_ptr()) })?;
    if p.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        sys("noNewPrivileges", unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        })?;
    }
    for e in c.extensions {
        e.after_user_change().map_err(InitError::Extension)?;
    }
    let exe = init::find_executable(p)?;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    for e in c.extensions {
        e.before_exec().map_err(InitError::Extension)?;
    }
    Err(init::exec(p, exe))
}

fn open_path(path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a valid C string; the returned fd is owned.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as RawFd) })
}

/// The namespace `name` of `pid`, if it is not ours (joining our own user
/// namespace is refused by the kernel; others would be no-ops).
fn differing_ns(pid: i32, name: &str) -> io::Result<Option<OwnedFd>> {
    let theirs = format!("/proc/{pid}/ns/{name}");
    let a = match std::fs::metadata(&theirs) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let b = std::fs::metadata(format!("/proc/self/ns/{name}"))?;
    if a.ino() == b.ino() && a.dev() == b.dev() {
        return Ok(None);
    }
    open_path(&theirs, libc::O_RDONLY).map(Some)
}

fn open_namespaces(pid: i32) -> io::Result<Vec<(libc::c_int, OwnedFd)>> {
    let mut out = Vec::new();
    for (name, flag) in NAMESPACES {
        if let Some(fd) = differing_ns(pid, name)? {
            out.push((flag, fd));
        }
    }
    Ok(out)
}
