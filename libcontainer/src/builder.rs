//! [`ContainerBuilder`]: validate a bundle, plan everything, clone the init
//! into its namespaces and leave it waiting for `start`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, Spec};

use crate::cgroups::TasksFile;
use crate::channel::{self, ChannelError, Message};
use crate::clone::{clone_process, Forked};
use crate::container::{Container, ContainerError};
use crate::hooks::{self, HookError};
use crate::init::{self, InitContext, InitExtension};
use crate::namespaces::{self, NamespaceError, NamespacePlan};
use crate::plan::{InitPlan, PlanError};
use crate::state::{self, OciState, StateError, Status, StoredHooks, StoredState, EXEC_FIFO};
use crate::syscall::{check, LinuxSyscall};

/// The default root state directory.
pub const DEFAULT_ROOT: &str = "/run/berth";

/// Why `create` failed. Nothing is left behind: no process, mount or state.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// config.json could not be read.
    #[error("{path:?}: {source}")]
    SpecRead {
        /// The config path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// config.json is not a valid runtime spec.
    #[error("{path:?}: {source}")]
    SpecParse {
        /// The config path.
        path: PathBuf,
        /// Why, with line and column.
        source: serde_json::Error,
    },
    /// A namespace entry is wrong.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// A field is wrong.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// State directory trouble (including: the id exists).
    #[error(transparent)]
    State(#[from] StateError),
    /// A prestart/createRuntime hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A system call of the runtime side failed.
    #[error("{what}: {source}")]
    Sys {
        /// What.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// An idmapped mount could not be prepared.
    #[error(transparent)]
    Idmap(#[from] crate::idmap::IdmapError),
    /// The init reported a setup failure.
    #[error("container init: {0}")]
    Init(String),
    /// The init died without a word.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A module hooked into create failed.
    #[error("{0}")]
    Extension(String),
    /// Cleaning up after a failure failed too.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CreateError {
    let what = what.into();
    move |source| CreateError::Sys { what, source }
}

/// Work other modules do in the runtime around the clone (cgroups).
pub trait CreateExtension {
    /// Before clone, in the runtime. May return an open cgroup v2 directory
    /// to clone the init into (CLONE_INTO_CGROUP).
    fn before_clone(&mut self, _spec: &Spec, _id: &str) -> Result<Option<OwnedFd>, String> {
        Ok(None)
    }
    /// After `before_clone`: cgroup v1 `tasks` files the init writes `0`
    /// to as its first step, placing itself without the kernel's global
    /// cgroup lock (see [`crate::cgroups::place_self`]).
    fn init_placement(&mut self) -> Result<Vec<TasksFile>, String> {
        Ok(Vec::new())
    }
    /// After clone, before the init goes on (e.g. add the pid on cgroup v1
    /// when the init does not place itself).
    fn after_clone(&mut self, _pid: i32) -> Result<(), String> {
        Ok(())
    }
    /// A name and JSON value to keep in state.json (read back with
    /// [`Container::extension`]).
    fn state(&self) -> Option<(String, serde_json::Value)> {
        None
    }
    /// Create failed after `before_clone`: remove what was made.
    fn cleanup(&mut self) {}
}

/// Creates containers.
///
/// ```no_run
/// use libcontainer::{Container, ContainerBuilder};
/// let mut c = ContainerBuilder::new("web", "/srv/bundles/web")
///     .root("/run/berth")
///     .create()?;
/// c.start()?;
/// let code = c.wait()?;
/// c.delete(false)?;
/// # let _ = code;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ContainerBuilder {
    id: String,
    bundle: PathBuf,
    root: PathBuf,
    spec: Option<Spec>,
    pid_file: Option<PathBuf>,
    create_ext: Vec<Box<dyn CreateExtension>>,
    init_ext: Vec<Box<dyn InitExtension + Send + Sync>>,
    /// A console (or the caller's terminal) was provided for process.terminal.
    terminal: bool,
    /// Where the pty master goes (the init opens the pty).
    console: Option<crate::console::Console>,
}

impl std::fmt::Debug for ContainerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerBuilder")
            .field("id", &self.id)
            .field("bundle", &self.bundle)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ContainerBuilder {
    /// A container `id` from the bundle directory `bundle`.
    pub fn new(id: impl Into<String>, bundle: impl AsRef<Path>) -> Self {
        Self {
            id: id.into(),
            bundle: bundle.as_ref().to_path_buf(),
            root: PathBuf::from(DEFAULT_ROOT),
            spec: None,
            pid_file: None,
            create_ext: Vec::new(),
            init_ext: Vec::new(),
            terminal: false,
            console: None,
        }
    }

    /// Give a `process.terminal` container a pty of its own devpts: the
    /// init opens it after pivot_root, binds it onto /dev/console, makes it
    /// its stdio and controlling terminal, and sends the master to
    /// `console`'s socket before `create` returns.
    pub fn console(mut self, console: crate::console::Console) -> Self {
        self.console = Some(console);
        self.terminal = true;
        self
    }

    /// Let a `process.terminal` container keep the stdio it inherits (the
    /// caller checked it is a terminal), like `runc run` in a shell.
    pub fn inherit_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// The root state directory (default [`DEFAULT_ROOT`]).
    pub fn root(mut self, root: impl AsRef<Path>) -> Self {
        self.root = root.as_ref().to_path_buf();
        self
    }

    /// Use this spec instead of reading `<bundle>/config.json`.
    pub fn spec(mut self, spec: Spec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Write the init's pid to this file once created.
    pub fn pid_file(mut self, path: impl AsRef<Path>) -> Self {
        self.pid_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Add runtime-side work around the clone (cgroups).
    pub fn create_extension(mut self, ext: Box<dyn CreateExtension>) -> Self {
        self.create_ext.push(ext);
        self
    }

    /// Add init-side work (capabilities, LSM, seccomp).
    pub fn init_extension(mut self, ext: Box<dyn InitExtension + Send + Sync>) -> Self {
        self.init_ext.push(ext);
        self
    }

    /// Create the container: it is `created`, its init waiting for
    /// [`Container::start`]. On error nothing is left behind.
    pub fn create(mut self) -> Result<Container, CreateError> {
        state::validate_id(&self.id)?;
        let bundle = self
            .bundle
            .canonicalize()
            .map_err(sys(format!("bundle {:?}", self.bundle)))?;
        let spec = match self.spec.take() {
            Some(s) => s,
            None => {
                let path = bundle.join("config.json");
                load_spec(&path)?
            }
        };
        let wants_terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if wants_terminal && !self.terminal {
            return Err(PlanError::Invalid {
                field: "process.terminal".into(),
                reason:
                    "a terminal needs a console socket (--console-socket) or a terminal on stdin"
                        .into(),
            }
            .into());
        }
        let ns = NamespacePlan::from_spec(&spec)?;
        let plan = InitPlan::build(&spec, &bundle, &ns, || {
            std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
        })?;
        // Before the state directory: a failure here leaves nothing behind.
        let userns_maps = (ns.is_new(libc::CLONE_NEWUSER) && !ns.uid_map.is_empty()).then(|| {
            (
                namespaces::map_text(&ns.uid_map),
                namespaces::map_text(&ns.gid_map),
            )
        });
        let idmapped = crate::idmap::prepare(
            &LinuxSyscall,
            &plan,
            userns_maps
                .as_ref()
                .map(|(u, g)| (u.as_bytes(), g.as_bytes())),
        )?;
        let hooks = spec.hooks().clone().unwrap_or_default();
        let runtime_hooks: Vec<(&'static str, Vec<Hook>)> = [
            ("prestart", hooks.prestart().clone()),
            ("createRuntime", hooks.create_runtime().clone()),
        ]
        .into_iter()
        .filter_map(|(n, h)| h.filter(|h| !h.is_empty()).map(|h| (n, h)))
        .collect();
        let create_container = hooks.create_container().clone().unwrap_or_default();
        let start_container = hooks.start_container().clone().unwrap_or_default();
        let stored_hooks = StoredHooks {
            poststart: hooks.poststart().clone().unwrap_or_default(),
            poststop: hooks.poststop().clone().unwrap_or_default(),
        };

        let dir = state::create_dir(&self.root, &self.id)?;
        let mut st = StoredState {
            oci: OciState {
                oci_version: spec.version().clone(),
                id: self.id.clone(),
                pid: 0,
                status: Status::Creating,
                bundle,
                rootfs: PathBuf::from(std::ffi::OsStr::from_bytes(plan.rootfs.to_bytes())),
                created: state::now_rfc3339(),
                owner: String::new(),
                annotations: spec
                    .annotations()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            },
            start_time: 0,
            hooks: stored_hooks,
            extensions: BTreeMap::new(),
        };
        let mut guard = Cleanup {
            dir: Some(dir.clone()),
            pid: 0,
            ext: std::mem::take(&mut self.create_ext),
            poststop: None,
        };
        // Like runc, state.json appears once the container is created (or
        // before runtime hooks, which may ask for it): one write per
        // create, the state directory alone reserves the id meanwhile.
        let setup = Setup {
            spec: &spec,
            ns: &ns,
            plan: &plan,
            idmapped: &idmapped,
            runtime_hooks: &runtime_hooks,
            create_container: &create_container,
            start_container: &start_container,
            init_ext: &self.init_ext,
            console: self
                .console
                .as_ref()
                .map(crate::console::Console::for_child),
        };
        create_inner(&mut guard, &mut st, &dir, &setup)?;
        st.oci.status = Status::Created;
        for ext in &guard.ext {
            if let Some((k, v)) = ext.state() {
                st.extensions.insert(k, v);
            }
        }
        st.write(&dir)?;
        if let Some(p) = &self.pid_file {
            write_pid_file(p, st.oci.pid)?;
        }
        guard.dir = None;
        Ok(Container {
            dir,
            state: st,
            is_child: true,
        })
    }
}

/// Everything create_inner works from.
struct Setup<'a> {
    spec: &'a Spec,
    ns: &'a NamespacePlan,
    plan: &'a InitPlan,
    idmapped: &'a crate::idmap::IdmappedTrees,
    runtime_hooks: &'a [(&'static str, Vec<Hook>)],
    create_container: &'a [Hook],
    start_container: &'a [Hook],
    init_ext: &'a [Box<dyn InitExtension + Send + Sync>],
    console: Option<crate::console::ChildConsole>,
}

/// Undo a failed create: kill and reap the init, let extensions remove
/// what they made, run poststop hooks when the spec says so, remove the
/// state directory. Disarmed by taking `dir`.
struct Cleanup {
    dir: Option<PathBuf>,
    pid: i32,
    ext: Vec<Box<dyn CreateExtension>>,
    poststop: Option<(Vec<Hook>, Vec<u8>)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if self.pid > 0 {
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(self.pid, &mut st, 0);
            }
        }
        for e in self.ext.iter_mut() {
            e.cleanup();
        }
        if let Some((hooks, json)) = self.poststop.take() {
            hooks::run_warn("poststop", &hooks, &json);
        }
        if state::remove_dir(&dir).is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn create_inner(
    guard: &mut Cleanup,
    st: &mut StoredState,
    dir: &Path,
    s: &Setup<'_>,
) -> Result<(), CreateError> {
    let fifo = dir.join(EXEC_FIFO);
    let fifo_c = CString::new(fifo.as_os_str().as_bytes())
        .map_err(|_| CreateError::Init("state directory path contains NUL".into()))?;
    // SAFETY: a valid C string path.
    check(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }).map_err(sys("create exec fifo"))?;
    let mut cgroup_fd = None;
    for e in guard.ext.iter_mut() {
        if let Some(fd) = e
            .before_clone(s.spec, &st.oci.id)
            .map_err(CreateError::Extension)?
        {
            cgroup_fd = Some(fd);
        }
    }
    let mut cgroup_tasks = Vec::new();
    for e in guard.ext.iter_mut() {
        cgroup_tasks.extend(e.init_placement().map_err(CreateError::Extension)?);
    }
    let (parent_end, init_end) = channel::pair()?;

    // A child lands in a pid/time namespace that its parent joined "for
    // children": join, clone, go back.
    let mut restore = Vec::new();
    for j in &s.ns.joins {
        if j.kind.flag != libc::CLONE_NEWPID && j.kind.flag != libc::CLONE_NEWTIME {
            continue;
        }
        let own = std::fs::File::open(format!("/proc/self/ns/{}_for_children", j.kind.proc_name))
            .map_err(sys("open own namespace"))?;
        // SAFETY: setns on an open namespace fd of the checked type.
        check(unsafe { libc::setns(j.fd.as_raw_fd(), j.kind.flag) })
            .map_err(sys(format!("join {} namespace {:?}", j.kind.name, j.path)))?;
        restore.push((OwnedFd::from(own), j.kind.flag));
    }
    // The init unshares these itself: cgroup after placing itself, time
    // when it has offsets to write before anyone enters the namespace.
    let mut clone_flags = s.ns.new_flags & !libc::CLONE_NEWCGROUP;
    if s.plan.time_offsets.is_some() {
        clone_flags &= !libc::CLONE_NEWTIME;
    }
    // SAFETY: the child only runs `init::run`, which ends in exec or _exit.
    let forked = unsafe { clone_process(clone_flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd())) };
    for (fd, flag) in restore {
        // SAFETY: returning to our own namespace.
        unsafe { libc::setns(fd.as_raw_fd(), flag) };
    }
    let pid = match forked.map_err(sys("clone the container init"))? {
        Forked::Child => {
            drop(parent_end);
            init::run(InitContext {
                plan: s.plan,
                ns: s.ns,
                chan: init_end,
                cgroup_tasks: &cgroup_tasks,
                idmapped: s.idmapped,
                fifo: fifo_c,
                runtime_hooks: !s.runtime_hooks.is_empty(),
                create_container: s.create_container,
                start_container: s.start_container,
                extensions: s.init_ext,
                console: s.console,
            })
        }
        Forked::Parent(pid) => pid,
    };
    drop(init_end);
    drop(cgroup_tasks);
    guard.pid = pid;
    if s.ns.is_new(libc::CLONE_NEWUSER) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Unprivileged: the kernel takes a gid_map only after setgroups
            // is denied (the init then cannot set additional groups).
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .map_err(sys(format!("rootless: write /proc/{pid}/setgroups")))?;
        }
        for (file, maps, field) in [
            ("uid_map", &s.ns.uid_map, "linux.uidMappings"),
            ("gid_map", &s.ns.gid_map, "linux.gidMappings"),
        ] {
            std::fs::write(format!("/proc/{pid}/{file}"), namespaces::map_text(maps))
                .map_err(sys(format!("{field}: write /proc/{pid}/{file}")))?;
        }
    }
    if s.idmapped.needs_container_userns() {
        // Idmapped mounts with the container's own maps use its namespace.
        let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map_err(sys("open the container's user namespace"))?;
        s.idmapped
            .finish(&LinuxSyscall, s.plan, std::os::fd::AsFd::as_fd(&userns))?;
    }
    for e in guard.ext.iter_mut() {
        e.after_clone(pid).map_err(CreateError::Extension)?;
    }
    st.oci.pid = pid;
    let hook_state = serde_json::to_vec(&st.oci).unwrap_or_default();
    parent_end.send(&Message::Go(hook_state.clone()))?;
    // The init works meanwhile; state.json is written once it is ready
    // (or now for runtime hooks, which may ask `state` for the pid).
    st.start_time = state::process_start_time(pid).unwrap_or(0);
    if !s.runtime_hooks.is_empty() {
        st.write(dir)?;
    }
    let poststop = || Some((st.hooks.poststop.clone(), hook_state.clone()));
    loop {
        match parent_end.recv() {
            Ok(Message::NeedHooks) => {
                for (phase, hooks) in s.runtime_hooks {
                    if let Err(e) = hooks::run(phase, hooks, &hook_state) {
                        guard.poststop = poststop();
                        return Err(e.into());
                    }
                }
                parent_end.send(&Message::HooksDone)?;
            }
            Ok(Message::Ready) => return Ok(()),
            Ok(Message::Error(msg)) => {
                if msg.starts_with("createContainer hook") {
                    guard.poststop = poststop();
                }
                return Err(CreateError::Init(msg));
            }
            Ok(other) => return Err(CreateError::Init(format!("unexpected message {other:?}"))),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Read and parse a config.json, keeping serde's message (field, line,
/// column) in the error.
pub fn load_spec(path: &Path) -> Result<Spec, CreateError> {
    let bytes = std::fs::read(path).map_err(|source| CreateError::SpecRead {
        path: path.into(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CreateError::SpecParse {
        path: path.into(),
        source,
    })
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), CreateError> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(sys(format!("write pid file {tmp:?}")))?;
    std::fs::rename(&tmp, path).map_err(sys(format!("write pid file {path:?}")))
}
