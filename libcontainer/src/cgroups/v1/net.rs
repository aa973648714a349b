//! v1 net_cls class id and net_prio interface priorities.

use oci_spec::runtime::LinuxNetwork;

use crate::cgroups::dir::Dir;
use crate::cgroups::error::Result;

pub(crate) fn apply_classid(dir: Dir<'_>, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        dir.write_for(
            "linux.resources.network.classID",
            "net_cls.classid",
            id.to_string(),
        )?;
    }
    Ok(())
}

pub(crate) fn apply_priorities(dir: Dir<'_>, n: &LinuxNetwork) -> Result<()> {
    for (i, p) in n
        .priorities()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        dir.write_for(
            &format!("linux.resources.network.priorities[{i}]"),
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}
