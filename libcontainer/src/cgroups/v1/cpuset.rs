//! v1 cpuset: a new cpuset cgroup has empty cpus/mems and refuses tasks
//! until they are filled, so creation copies the parent's; the spec's
//! values are checked against the parent's effective sets.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::convert::check_cpu_subset;
use crate::cgroups::dir::Dir;
use crate::cgroups::error::Result;
use crate::cgroups::fs::CgroupFs;

/// Fill an empty cpuset.cpus/mems of a freshly created `dir` from its parent.
pub(crate) fn inherit_from_parent(fs: &dyn CgroupFs, dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let d = Dir::new(fs, dir);
    let p = Dir::new(fs, parent);
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if d.read_trimmed(file)?.is_empty() {
            let mut value = p.read_trimmed(file)?;
            if value.is_empty() {
                // Another runtime made the parent a moment ago and has not
                // filled it yet: fill it from above (the root never is empty).
                inherit_from_parent(fs, parent)?;
                value = p.read_trimmed(file)?;
            }
            d.write(file, value)?;
        }
    }
    Ok(())
}

pub(crate) fn apply(dir: Dir<'_>, c: &LinuxCpu) -> Result<()> {
    let parent = dir.path.parent().unwrap_or(dir.path);
    let pdir = Dir::new(dir.fs, parent);
    for (field, value, file, effective) in [
        (
            "linux.resources.cpu.cpus",
            c.cpus(),
            "cpuset.cpus",
            "cpuset.effective_cpus",
        ),
        (
            "linux.resources.cpu.mems",
            c.mems(),
            "cpuset.mems",
            "cpuset.effective_mems",
        ),
    ] {
        let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let available = if pdir.has(effective) {
            pdir.read_trimmed(effective)?
        } else {
            pdir.read_trimmed(file)?
        };
        check_cpu_subset(field, value, &available)?;
        dir.write_for(field, file, value)?;
    }
    Ok(())
}
