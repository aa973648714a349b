//! [`CgroupManager`]: creates a container's cgroups, applies and updates
//! limits, places processes, freezes, reports usage and removes it all.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxCpu, LinuxResources};
use serde::{Deserialize, Serialize};

use super::config::CgroupConfig;
use super::detect::{CgroupMode, Hierarchies, OwnCgroups};
use super::devices::DeviceRule;
use super::dir::Dir;
use super::error::{CgroupError, Result};
use super::fs::{CgroupFs, RealFs};
use super::path::{cgroup_dir, CgroupPath, DEFAULT_PARENT};
use super::stats::Stats;
use super::{v1, v2};

/// How long freeze/thaw and waiting for tasks to die may take.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

fn real_fs() -> Arc<dyn CgroupFs> {
    Arc::new(RealFs)
}

/// A container's cgroups on this host (v1, v2 or hybrid).
///
/// Serialise it into the container's state and deserialise it in a later
/// invocation to pause, update, read stats or delete (the filesystem handle
/// is not serialised: a deserialised manager uses the real filesystem).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupManager {
    mode: CgroupMode,
    /// v1 controller (and `name=…` hierarchy) → the container's directory.
    v1: BTreeMap<String, PathBuf>,
    /// The container's directory in the unified hierarchy.
    unified: Option<PathBuf>,
    /// Controllers enabled for `unified`.
    unified_controllers: BTreeSet<String>,
    /// Directories we created, parents before children.
    created: Vec<PathBuf>,
    /// Device rules from creation time without `linux.resources.devices`
    /// (so `update` can replace only the user part).
    base_device_rules: Option<Vec<DeviceRule>>,
    /// Parents an older version removed with the last container (states
    /// written before `/berth` was kept); empty now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shared_parents: Vec<PathBuf>,
    #[serde(skip, default = "real_fs")]
    fs: Arc<dyn CgroupFs>,
}

/// Options for [`CgroupManager::delete`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    /// SIGKILL any task still inside first (otherwise a populated cgroup is
    /// an error).
    pub kill: bool,
}

fn is_empty<T: Default + PartialEq>(v: &Option<T>) -> bool {
    v.as_ref().is_none_or(|v| *v == T::default())
}

impl CgroupManager {
    /// Create the container's cgroups on the running host and apply the
    /// config's limits. Call before the container process exists.
    pub fn create(config: &CgroupConfig) -> Result<Self> {
        let fs = real_fs();
        let hier = Hierarchies::detect(fs.as_ref())?;
        let own = OwnCgroups::read(fs.as_ref())?;
        Self::create_with(fs, &hier, &own, config)
    }

    /// [`create`](Self::create) with an explicit filesystem and host layout
    /// (unit tests, or callers that detected the host once).
    pub fn create_with(
        fs: Arc<dyn CgroupFs>,
        hier: &Hierarchies,
        own: &OwnCgroups,
        config: &CgroupConfig,
    ) -> Result<Self> {
        let mut mgr = Self {
            mode: hier.mode(),
            v1: BTreeMap::new(),
            unified: None,
            unified_controllers: BTreeSet::new(),
            created: Vec::new(),
            base_device_rules: None,
            shared_parents: Vec::new(),
            fs,
        };
        let default_parent = CgroupPath::Absolute(PathBuf::from(DEFAULT_PARENT));
        let under_default = matches!((&config.path, &default_parent),
            (CgroupPath::Absolute(p), CgroupPath::Absolute(d)) if p.parent() == Some(d.as_path()));
        if let Err(e) = mgr.create_dirs(hier, own, config) {
            mgr.remove_created();
            return Err(e);
        }
        if let Some(rules) = &config.device_rules {
            let user = config.resources.devices().as_ref().map_or(0, Vec::len);
            mgr.base_device_rules = Some(rules[..rules.len().saturating_sub(user)].to_vec());
        }
        if let Err(e) = mgr.apply(&config.resources, config.device_rules.as_deref()) {
            mgr.remove_created();
            return Err(e);
        }
        if under_default {
            // The default parent (`/berth`) is shared and kept, like
            // Docker's `/docker`: the next container finds it, and
            // `delete` only removes the container's own directories.
            let leaves: BTreeSet<PathBuf> =
                mgr.all_dirs().into_iter().map(Path::to_path_buf).collect();
            mgr.created.retain(|d| leaves.contains(d));
        }
        tracing::debug!(mode = ?mgr.mode, v1 = ?mgr.v1, unified = ?mgr.unified, "cgroups created");
        Ok(mgr)
    }

    fn mkdir_tracked(&mut self, dir: &Path, cpuset: bool) -> Result<()> {
        // Another container's delete may remove a shared parent (say
        // /berth) between our check and our mkdir: walk again then.
        let mut attempts = 0;
        'walk: loop {
            attempts += 1;
            let mut missing = Vec::new();
            for anc in dir.ancestors() {
                if self.fs.exists(anc) {
                    break;
                }
                missing.push(anc.to_path_buf());
            }
            for d in missing.into_iter().rev() {
                match self.fs.create_dir(&d) {
                    Ok(()) => {
                        self.created.push(d.clone());
                        if cpuset {
                            v1::cpuset::inherit_from_parent(self.fs.as_ref(), &d)?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => continue 'walk,
                    Err(e) => return Err(CgroupError::io("mkdir", d, e)),
                }
            }
            return Ok(());
        }
    }

    fn create_dirs(
        &mut self,
        hier: &Hierarchies,
        own: &OwnCgroups,
        config: &CgroupConfig,
    ) -> Result<()> {
        // One directory per distinct v1 hierarchy.
        let mut done: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for (controller, mount) in &hier.v1 {
            let dir = match done.get(&mount.mount_point) {
                Some(d) => d.clone(),
                None => {
                    let cg = config
                        .path
                        .in_hierarchy(own.v1.get(controller).map(PathBuf::as_path), false);
                    let dir = cgroup_dir(&mount.mount_point, &mount.root, &cg);
                    let is_cpuset = mount.controllers.iter().any(|c| c == "cpuset");
                    self.mkdir_tracked(&dir, is_cpuset)?;
                    done.insert(mount.mount_point.clone(), dir.clone());
                    dir
                }
            };
            self.v1.insert(controller.clone(), dir);
        }
        if let Some(u) = &hier.unified {
            let cg = config.path.in_hierarchy(own.unified.as_deref(), true);
            let dir = cgroup_dir(&u.mount_point, &u.root, &cg);
            // Walk from the mount down, enabling controllers for children.
            let mut chain: Vec<PathBuf> = dir
                .ancestors()
                .take_while(|a| a.starts_with(&u.mount_point))
                .map(Path::to_path_buf)
                .collect();
            chain.reverse();
            for (i, d) in chain.iter().enumerate() {
                self.mkdir_tracked(d, false)?;
                if i + 1 < chain.len() {
                    self.enable_subtree_controllers(d);
                }
            }
            let fs = self.fs.clone();
            let ctrls = Dir::new(fs.as_ref(), &dir)
                .read("cgroup.controllers")
                .unwrap_or_default();
            self.unified_controllers = ctrls
                .split_whitespace()
                .filter(|c| !hier.v1.contains_key(*c))
                .map(str::to_string)
                .collect();
            self.unified = Some(dir);
        }
        Ok(())
    }

    /// Enable every available controller for the children of `dir`, as
    /// runc and crun do; failures (a parent with tasks of its own) only
    /// mean the controller will be reported missing when a limit needs it.
    fn enable_subtree_controllers(&self, dir: &Path) {
        let d = Dir::new(self.fs.as_ref(), dir);
        let available = d.read("cgroup.controllers").unwrap_or_default();
        let enabled = d.read("cgroup.subtree_control").unwrap_or_default();
        let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
        let wanted: Vec<String> = available
            .split_whitespace()
            .filter(|c| !enabled.contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if wanted.is_empty() || d.write("cgroup.subtree_control", wanted.join(" ")).is_ok() {
            return;
        }
        for w in wanted {
            if let Err(e) = d.write("cgroup.subtree_control", &w) {
                tracing::warn!(dir = %dir.display(), controller = %w, error = %e, "cannot enable controller");
            }
        }
    }

    /// The host layout this manager was created on.
    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// The container's directory for a v1 controller.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// The container's directory in the unified hierarchy.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Controllers enabled for the unified directory.
    pub fn unified_controllers(&self) -> &BTreeSet<String> {
        &self.unified_controllers
    }

    /// Use another filesystem (after deserialising, for tests).
    pub fn with_fs(mut self, fs: Arc<dyn CgroupFs>) -> Self {
        self.fs = fs;
        self
    }

    fn dir<'a>(&'a self, path: &'a Path) -> Dir<'a> {
        Dir::new(self.fs.as_ref(), path)
    }

    /// Where a controller lives, or an error naming the field that needs it.
    fn controller_dir(&self, controller: &str, field: &str) -> Result<(bool, &Path)> {
        if let Some(d) = self.v1.get(controller) {
            return Ok((false, d));
        }
        match &self.unified {
            Some(u) if self.unified_controllers.contains(controller) => Ok((true, u)),
            _ => Err(CgroupError::ControllerMissing {
                field: field.into(),
                controller: controller.into(),
                mode: self.mode.to_string(),
            }),
        }
    }

    /// Every distinct directory of the container (v1 hierarchies and the
    /// unified one).
    pub fn all_dirs(&self) -> Vec<&Path> {
        let mut seen = BTreeSet::new();
        self.v1
            .values()
            .chain(self.unified.iter())
            .filter(|d| seen.insert(d.as_path()))
            .map(PathBuf::as_path)
            .collect()
    }

    fn apply(&self, res: &LinuxResources, device_rules: Option<&[DeviceRule]>) -> Result<()> {
        if let Some(m) = res.memory().as_ref().filter(|_| !is_empty(res.memory())) {
            match self.controller_dir("memory", "linux.resources.memory")? {
                (false, d) => v1::memory::apply(self.dir(d), m)?,
                (true, d) => v2::memory::apply(self.dir(d), m)?,
            }
        }
        if let Some(p) = res.pids() {
            let (_, d) = self.controller_dir("pids", "linux.resources.pids")?;
            v1::pids::apply(self.dir(d), p)?;
        }
        if let Some(c) = res.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(b) = res
            .block_io()
            .as_ref()
            .filter(|_| !is_empty(res.block_io()))
        {
            match self.v1.get("blkio") {
                Some(d) => v1::blkio::apply(self.dir(d), b)?,
                None => {
                    let (_, d) = self.controller_dir("io", "linux.resources.blockIO")?;
                    v2::io::apply(self.dir(d), b)?
                }
            }
        }
        if let Some(h) = res.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
            let (unified, d) = self.controller_dir("hugetlb", "linux.resources.hugepageLimits")?;
            v1::hugetlb::apply(self.dir(d), h, unified)?;
        }
        if let Some(n) = res.network() {
            if n.class_id().is_some() {
                let (_, d) = self.controller_dir("net_cls", "linux.resources.network.classID")?;
                v1::net::apply_classid(self.dir(d), n)?;
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                let (_, d) =
                    self.controller_dir("net_prio", "linux.resources.network.priorities")?;
                v1::net::apply_priorities(self.dir(d), n)?;
            }
        }
        if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
            tracing::warn!("linux.resources.rdma is not supported and is ignored");
        }
        if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
            self.apply_unified(u)?;
        }
        if let Some(rules) = device_rules {
            match (self.v1.get("devices"), &self.unified) {
                (Some(d), _) => v1::devices::apply(self.dir(d), rules)?,
                (None, Some(u)) => v2::devices::apply(u, rules)?,
                (None, None) => {
                    return Err(CgroupError::ControllerMissing {
                        field: "linux.resources.devices".into(),
                        controller: "devices".into(),
                        mode: self.mode.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<()> {
        let mut sched = c.clone();
        sched.set_cpus(None).set_mems(None);
        if sched != LinuxCpu::default() {
            match self.controller_dir("cpu", "linux.resources.cpu")? {
                (false, d) => v1::cpu::apply(self.dir(d), &sched)?,
                (true, d) => v2::cpu::apply(self.dir(d), &sched)?,
            }
        }
        let wants_cpuset = [c.cpus(), c.mems()]
            .iter()
            .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()));
        if wants_cpuset {
            match self.controller_dir("cpuset", "linux.resources.cpu.cpus")? {
                (false, d) => v1::cpuset::apply(self.dir(d), c)?,
                (true, d) => v2::cpu::apply_cpuset(self.dir(d), c)?,
            }
        }
        Ok(())
    }

    fn apply_unified(&self, u: &std::collections::HashMap<String, String>) -> Result<()> {
        let Some(dir) = &self.unified else {
            return Err(CgroupError::invalid(
                "linux.resources.unified",
                format!("needs cgroup v2, and this is a {}", self.mode),
            ));
        };
        for key in u.keys() {
            v2::unified::validate_key(key)?;
            let ctrl = v2::unified::controller_of(key);
            if self.v1.contains_key(ctrl) {
                return Err(CgroupError::invalid(
                    format!("linux.resources.unified[{key:?}]"),
                    format!("{ctrl} is a cgroup v1 controller on this {}", self.mode),
                ));
            }
        }
        v2::unified::apply(self.dir(dir), u)
    }

    /// Put a process into the container's cgroups (every hierarchy). Call
    /// after fork/clone and before the process runs user code. A process
    /// already placed with `CLONE_INTO_CGROUP` may be passed too: writing
    /// its pid to the unified cgroup it is in is a no-op.
    pub fn add_pid(&self, pid: Pid) -> Result<()> {
        let pid = pid.as_raw().to_string();
        for d in self.all_dirs() {
            self.dir(d).write("cgroup.procs", &pid)?;
        }
        Ok(())
    }

    /// Put a process into the v1 hierarchies only (when `CLONE_INTO_CGROUP`
    /// already placed it in the unified one).
    pub fn add_pid_v1(&self, pid: Pid) -> Result<()> {
        let pid = pid.as_raw().to_string();
        for d in self.v1_dirs() {
            self.dir(d).write("cgroup.procs", &pid)?;
        }
        Ok(())
    }

    /// Every distinct v1 directory of the container (controllers mounted
    /// together share one).
    pub(crate) fn v1_dirs(&self) -> Vec<&Path> {
        let mut seen = BTreeSet::new();
        self.v1
            .values()
            .filter(|d| seen.insert(d.as_path()))
            .map(PathBuf::as_path)
            .collect()
    }

    /// An open directory descriptor of the unified cgroup, for
    /// `clone3(CLONE_INTO_CGROUP)`; `None` on a v1-only host.
    pub fn unified_dir_fd(&self) -> Result<Option<OwnedFd>> {
        let Some(dir) = &self.unified else {
            return Ok(None);
        };
        let fd = nix::fcntl::open(
            dir.as_path(),
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| CgroupError::io("open", dir, io::Error::from(e)))?;
        Ok(Some(fd))
    }

    /// Change the limits of a live container (`update`). Device rules are
    /// replaced when `resources.devices` is given.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        let rules = match (resources.devices(), &self.base_device_rules) {
            (Some(devs), base) => {
                let mut rules = base.clone().unwrap_or_else(|| {
                    super::devices::container_rules(None, None).unwrap_or_default()
                });
                for (i, r) in devs.iter().enumerate() {
                    rules.push(DeviceRule::from_spec(i, r)?);
                }
                Some(rules)
            }
            (None, _) => None,
        };
        self.apply(resources, rules.as_deref())
    }

    fn freezer(&self) -> Result<(bool, &Path)> {
        if let Some(d) = self.v1.get("freezer") {
            return Ok((false, d));
        }
        match &self.unified {
            Some(u) => Ok((true, u)),
            None => Err(CgroupError::ControllerMissing {
                field: "pause".into(),
                controller: "freezer".into(),
                mode: self.mode.to_string(),
            }),
        }
    }

    /// Freeze every task (pause).
    pub fn freeze(&self) -> Result<()> {
        match self.freezer()? {
            (false, d) => v1::freezer::set(self.dir(d), true, SETTLE_TIMEOUT),
            (true, d) => v2::freeze::set(self.dir(d), true, SETTLE_TIMEOUT),
        }
    }

    /// Thaw (resume).
    pub fn thaw(&self) -> Result<()> {
        match self.freezer()? {
            (false, d) => v1::freezer::set(self.dir(d), false, SETTLE_TIMEOUT),
            (true, d) => v2::freeze::set(self.dir(d), false, SETTLE_TIMEOUT),
        }
    }

    /// Whether the container is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.freezer()? {
            (false, d) => v1::freezer::is_frozen(self.dir(d)),
            (true, d) => v2::freeze::is_frozen(self.dir(d)),
        }
    }

    fn collect_pids(&self, dir: &Path, out: &mut BTreeSet<i32>) -> Result<()> {
        let text = match self.fs.read(&dir.join("cgroup.procs")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CgroupError::io("read", dir.join("cgroup.procs"), e)),
        };
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
        for sub in self.fs.sub_dirs(dir).unwrap_or_default() {
            self.collect_pids(&sub, out)?;
        }
        Ok(())
    }

    /// Every process in the container's cgroups and their sub-cgroups
    /// (`ps`), sorted.
    pub fn pids(&self) -> Result<Vec<Pid>> {
        let mut all = BTreeSet::new();
        for d in self.all_dirs() {
            self.collect_pids(d, &mut all)?;
        }
        Ok(all.into_iter().map(Pid::from_raw).collect())
    }

    /// Send `signal` to every process of the container.
    pub fn signal_all(&self, signal: Signal) -> Result<()> {
        for pid in self.pids()? {
            match nix::sys::signal::kill(pid, signal) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(e) => return Err(CgroupError::sys("kill", e)),
            }
        }
        Ok(())
    }

    /// SIGKILL every process and wait until the cgroups are empty.
    ///
    /// v2's `cgroup.kill` is not used: on the kernel tested (6.18) a
    /// process later placed with `CLONE_INTO_CGROUP` into a cgroup that was
    /// once killed that way is SIGKILLed at birth.
    pub fn kill_all(&self) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            // Freeze so nothing forks between listing and killing.
            let frozen = self.freeze().is_ok();
            let killed = self.signal_all(Signal::SIGKILL);
            if frozen {
                self.thaw()?;
            }
            killed?;
            if start.elapsed() > SETTLE_TIMEOUT {
                return Err(CgroupError::Timeout(
                    "tasks still alive after SIGKILL".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Remove a directory and any sub-cgroups the container made, retrying
    /// briefly while the kernel still counts dying tasks (EBUSY).
    fn remove_tree(&self, dir: &Path) -> Result<()> {
        let start = Instant::now();
        let mut listed = false;
        loop {
            match self.fs.remove_dir(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                // Children first (only looked for when rmdir says busy:
                // the common case has none).
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !listed => {
                    listed = true;
                    for sub in self.fs.sub_dirs(dir).unwrap_or_default() {
                        self.remove_tree(&sub)?;
                    }
                }
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && start.elapsed() < Duration::from_secs(2) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(CgroupError::io("rmdir", dir, e)),
            }
        }
    }

    /// Best-effort removal of what we created (creation failed).
    fn remove_created(&mut self) {
        for d in std::mem::take(&mut self.created).iter().rev() {
            if let Err(e) = self.fs.remove_dir(d) {
                tracing::debug!(dir = %d.display(), error = %e, "cleanup after failed create");
            }
        }
    }

    /// Remove the container's cgroups and the parents we created. With
    /// `kill`, SIGKILL remaining tasks first. Parents another container
    /// still uses are left in place.
    pub fn delete(&self, opts: DeleteOptions) -> Result<()> {
        let leaves: BTreeSet<&Path> = self.all_dirs().into_iter().collect();
        // Usually the container is gone already (its pid namespace died
        // with the init): then removing the directories we made succeeds
        // and there is nothing to list or kill. A busy one (tasks or
        // sub-cgroups), or a directory we did not make, falls back to
        // killing and the full removal below.
        let emptied = opts.kill
            && leaves
                .iter()
                .all(|d| self.created.iter().any(|c| c.as_path() == *d))
            && leaves.iter().all(|d| match self.fs.remove_dir(d) {
                Ok(()) => true,
                Err(e) => e.kind() == io::ErrorKind::NotFound,
            });
        if opts.kill && !emptied {
            self.kill_all()?;
        }
        for d in self.created.iter().rev() {
            if leaves.contains(d.as_path()) {
                self.remove_tree(d)?;
                continue;
            }
            match self.fs.remove_dir(d) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY) | Some(libc::ENOTEMPTY) | Some(libc::ENOENT)
                    ) => {}
                Err(e) => return Err(CgroupError::io("rmdir", d, e)),
            }
        }
        for d in &self.shared_parents {
            // Busy while another container lives there.
            let _ = self.fs.remove_dir(d);
        }
        Ok(())
    }

    /// Resource usage of the container.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Ok((unified, d)) = self.controller_dir("memory", "") {
            s.memory = Some(if unified {
                v2::stats::memory(self.dir(d))?
            } else {
                v1::stats::memory(self.dir(d))?
            });
        }
        if self.v1.contains_key("cpu") || self.v1.contains_key("cpuacct") {
            s.cpu = Some(v1::stats::cpu(
                self.v1.get("cpu").map(|d| self.dir(d)),
                self.v1.get("cpuacct").map(|d| self.dir(d)),
            )?);
        } else if let Some(u) = &self.unified {
            s.cpu = Some(v2::stats::cpu(self.dir(u))?);
        }
        if let Ok((_, d)) = self.controller_dir("pids", "") {
            s.pids = Some(v1::stats::pids(self.dir(d))?);
        }
        if let Some(d) = self.v1.get("blkio") {
            s.blkio = Some(v1::stats::blkio(self.dir(d))?);
        } else if let Ok((_, d)) = self.controller_dir("io", "") {
            s.blkio = Some(v2::stats::io(self.dir(d))?);
        }
        if let Ok((unified, d)) = self.controller_dir("hugetlb", "") {
            let sizes = hugepage_sizes(self.fs.as_ref());
            s.hugetlb = if unified {
                v2::stats::hugetlb(self.dir(d), &sizes)?
            } else {
                v1::stats::hugetlb(self.dir(d), &sizes)?
            };
        }
        Ok(s)
    }

    /// Watch for OOM kills in the container (`events`).
    pub fn oom_watcher(&self) -> Result<super::oom::OomWatcher> {
        match self.controller_dir("memory", "events")? {
            (false, d) => super::oom::OomWatcher::v1(d),
            (true, d) => super::oom::OomWatcher::v2(d),
        }
    }
}

/// Huge page sizes of the host as cgroup file names use them (`2MB`).
pub fn hugepage_sizes(fs: &dyn CgroupFs) -> Vec<String> {
    let base = Path::new("/sys/kernel/mm/hugepages");
    let mut sizes: Vec<String> = fs
        .sub_dirs(base)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let kb = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(super::convert::hugepage_name_from_kb(kb))
        })
        .collect();
    sizes.sort();
    sizes
}
