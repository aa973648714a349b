//! Glue to the container lifecycle: a [`CreateExtension`] that creates the
//! cgroups before the init is cloned, hands the core the unified directory
//! for `CLONE_INTO_CGROUP`, opens the v1 `tasks` files the init places
//! itself with, and keeps the manager in state.json; plus loading it back
//! from a [`Container`].

use std::os::fd::OwnedFd;

use oci_spec::runtime::Spec;

use super::config::CgroupConfig;
use super::error::Result;
use super::manager::{CgroupManager, DeleteOptions};
use super::place::TasksFile;
use crate::builder::CreateExtension;
use crate::container::Container;

/// Key of the manager in state.json's extensions.
pub const STATE_KEY: &str = "cgroups";

/// The cgroups part of `create`.
///
/// ```no_run
/// use libcontainer::{cgroups::CgroupExtension, ContainerBuilder};
/// let c = ContainerBuilder::new("web", "/srv/bundles/web")
///     .create_extension(Box::new(CgroupExtension::default()))
///     .create()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct CgroupExtension {
    manager: Option<CgroupManager>,
    /// The init places itself in v1 (and clone3 in the unified one).
    placed_by_init: bool,
}

impl CgroupExtension {
    /// The manager made by `before_clone`, if any.
    pub fn manager(&self) -> Option<&CgroupManager> {
        self.manager.as_ref()
    }
}

impl CreateExtension for CgroupExtension {
    fn before_clone(
        &mut self,
        spec: &Spec,
        id: &str,
    ) -> std::result::Result<Option<OwnedFd>, String> {
        if !nix::unistd::geteuid().is_root() {
            tracing::warn!("rootless: cgroups are skipped (no limits are applied)");
            return Ok(None);
        }
        let linux = spec.linux().clone().unwrap_or_default();
        let config = CgroupConfig::from_spec(&linux, id).map_err(|e| e.to_string())?;
        let manager = CgroupManager::create(&config).map_err(|e| e.to_string())?;
        let fd = manager.unified_dir_fd().map_err(|e| e.to_string())?;
        self.manager = Some(manager);
        Ok(fd)
    }

    fn init_placement(&mut self) -> std::result::Result<Vec<TasksFile>, String> {
        let Some(m) = &self.manager else {
            return Ok(Vec::new());
        };
        let files = m.v1_tasks_files().map_err(|e| e.to_string())?;
        self.placed_by_init = true;
        Ok(files)
    }

    fn after_clone(&mut self, pid: i32) -> std::result::Result<(), String> {
        match &self.manager {
            // The init wrote `0` to its v1 `tasks` files and clone3 put it
            // in the unified cgroup: writing its pid here would only wait
            // for the kernel's global cgroup lock.
            Some(_) if self.placed_by_init => Ok(()),
            Some(m) => m
                .add_pid(nix::unistd::Pid::from_raw(pid))
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn state(&self) -> Option<(String, serde_json::Value)> {
        let m = self.manager.as_ref()?;
        serde_json::to_value(m)
            .ok()
            .map(|v| (STATE_KEY.to_string(), v))
    }

    fn cleanup(&mut self) {
        if let Some(m) = self.manager.take() {
            if let Err(e) = m.delete(DeleteOptions { kill: true }) {
                tracing::warn!(error = %e, "removing cgroups after a failed create");
            }
        }
    }
}

impl CgroupManager {
    /// The manager a container's create stored in its state, if any.
    pub fn from_container(c: &Container) -> Result<Option<Self>> {
        let Some(v) = c.extension(STATE_KEY) else {
            return Ok(None);
        };
        serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            super::error::CgroupError::parse(c.dir().join("state.json"), e.to_string())
        })
    }
}
