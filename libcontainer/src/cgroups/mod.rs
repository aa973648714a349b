//! cgroups for containers on cgroup v1, v2 and hybrid hosts.
//!
//! The host layout is detected at run time ([`Hierarchies::detect`]): on a
//! hybrid host (v1 controllers plus a cgroup2 mount, where crun 1.8 and
//! youki give up) each controller is used in the hierarchy it is bound to,
//! and the unified hierarchy serves what only it has (e.g. hugetlb).
//!
//! Every file access goes through the [`CgroupFs`] trait; [`MemFs`]
//! records the writes so the translation of `linux.resources` into cgroup
//! files is unit-tested without root.
//!
//! # How the core uses this
//!
//! The simplest way is [`CgroupExtension`], a
//! [`CreateExtension`](crate::CreateExtension) for
//! [`ContainerBuilder::create_extension`](crate::ContainerBuilder::create_extension):
//! it does steps 1–3 below, and later commands reload the manager with
//! [`CgroupManager::from_container`]. By hand:
//!
//! 1. **Before clone**: `CgroupConfig::from_spec(linux, id)` then
//!    [`CgroupManager::create`]: directories are made (parents too) and every
//!    limit is written before the container process exists, so tiny limits
//!    (pids 1, 4 MiB of memory) hold from its first instruction.
//! 2. **Placing the process**: pass [`CgroupManager::unified_dir_fd`] (on a
//!    v2 or hybrid host) to `clone3` with `CLONE_INTO_CGROUP`, and hand the
//!    child [`CgroupManager::v1_tasks_files`]: it calls [`place_self`]
//!    before it goes on, which is microseconds where the runtime writing the
//!    child's pid ([`CgroupManager::add_pid`], [`CgroupManager::add_pid_v1`],
//!    still there for processes that cannot cooperate) waits for an RCU
//!    grace period. The pids limit counts the container's init: do not fork
//!    helpers inside the cgroup.
//! 3. **State**: the manager is `Serialize`/`Deserialize`; store it in the
//!    container's state ([`STATE_KEY`]) and reload it in later invocations.
//! 4. **Operations**: [`freeze`](CgroupManager::freeze) /
//!    [`thaw`](CgroupManager::thaw) for pause/resume,
//!    [`update`](CgroupManager::update), [`stats`](CgroupManager::stats),
//!    [`pids`](CgroupManager::pids) for `ps`,
//!    [`oom_watcher`](CgroupManager::oom_watcher) for `events`.
//! 5. **Delete**: after the container's processes are gone,
//!    [`CgroupManager::delete`] (with `kill: true` it SIGKILLs what is left
//!    first) removes every directory it created.
//!
//! ```no_run
//! use libcontainer::cgroups::{CgroupConfig, CgroupManager, DeleteOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let linux: oci_spec::runtime::Linux = serde_json::from_str(
//!     r#"{"resources": {"memory": {"limit": 4194304}, "pids": {"limit": 1}}}"#,
//! )?;
//! let cfg = CgroupConfig::from_spec(&linux, "demo")?; // → /berth/demo
//! let cg = CgroupManager::create(&cfg)?;
//! let child = std::process::Command::new("sleep").arg("10").spawn()?;
//! cg.add_pid(nix::unistd::Pid::from_raw(child.id() as i32))?;
//! let state = serde_json::to_string(&cg)?; // keep with the container state
//! let cg: CgroupManager = serde_json::from_str(&state)?;
//! cg.freeze()?;
//! cg.thaw()?;
//! println!("{:?}", cg.stats()?.memory);
//! cg.delete(DeleteOptions { kill: true })?;
//! # Ok(()) }
//! ```

mod config;
mod convert;
mod detect;
mod devices;
mod dir;
mod error;
mod extension;
mod fs;
mod manager;
mod oom;
mod path;
mod place;
mod stats;
mod v1;
mod v2;

pub use config::CgroupConfig;
pub use convert::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2};
pub use detect::{CgroupMode, Hierarchies, OwnCgroups, Placement, UnifiedMount, V1Mount};
pub use devices::{container_rules, default_rules, DeviceKind, DeviceRule};
pub use error::{CgroupError, Result};
pub use extension::{CgroupExtension, STATE_KEY};
pub use fs::{CgroupFs, MemFs, RealFs};
pub use manager::{hugepage_sizes, CgroupManager, DeleteOptions};
pub use oom::{OomEvent, OomWatcher};
pub use path::{CgroupPath, DEFAULT_PARENT};
pub use place::{place_self, TasksFile};
pub use stats::{BlkioEntry, BlkioStats, CpuStats, HugetlbStats, MemoryStats, PidsStats, Stats};
pub use v2::bpf::Insn as BpfInsn;
pub use v2::devices::{compile as compile_device_program, evaluate as evaluate_device_program};

#[cfg(test)]
mod unit_tests;
