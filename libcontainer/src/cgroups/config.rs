//! What a container asks of its cgroups, validated from the spec.

use oci_spec::runtime::{Linux, LinuxResources};
use serde::{Deserialize, Serialize};

use super::devices::{container_rules, DeviceRule};
use super::error::Result;
use super::path::CgroupPath;

/// The validated cgroup part of a container's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupConfig {
    /// Where the container's cgroup goes.
    pub path: CgroupPath,
    /// `linux.resources` (limits).
    pub resources: LinuxResources,
    /// Device rules to enforce (deny all, the defaults, `linux.devices`,
    /// then `linux.resources.devices`); `None` leaves device access alone
    /// (rootless containers, tests).
    pub device_rules: Option<Vec<DeviceRule>>,
}

impl CgroupConfig {
    /// From a spec's `linux` section, for container `id`.
    ///
    /// ```
    /// use libcontainer::cgroups::CgroupConfig;
    /// let linux: oci_spec::runtime::Linux = serde_json::from_str(
    ///     r#"{"cgroupsPath": "/berth/demo", "resources": {"pids": {"limit": 10}}}"#,
    /// ).unwrap();
    /// let cfg = CgroupConfig::from_spec(&linux, "demo").unwrap();
    /// assert!(cfg.device_rules.is_some());
    /// ```
    pub fn from_spec(linux: &Linux, id: &str) -> Result<Self> {
        let resources = linux.resources().clone().unwrap_or_default();
        let device_rules = Some(container_rules(
            resources.devices().as_deref(),
            linux.devices().as_deref(),
        )?);
        Ok(Self {
            path: CgroupPath::parse(linux.cgroups_path().as_deref(), id)?,
            resources,
            device_rules,
        })
    }

    /// A config at `path` with `resources` and no device rules.
    pub fn new(path: CgroupPath, resources: LinuxResources) -> Self {
        Self {
            path,
            resources,
            device_rules: None,
        }
    }

    /// Enforce these device rules.
    pub fn with_device_rules(mut self, rules: Vec<DeviceRule>) -> Self {
        self.device_rules = Some(rules);
        self
    }
}
