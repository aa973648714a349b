//! v2 memory: memory.max, memory.low, memory.swap.max (swap alone, so the
//! spec's memory+swap is converted).

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::convert::{swap_to_v2, v2_limit};
use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

pub(crate) fn apply(dir: Dir<'_>, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit().filter(|l| *l != 0);
    let swap = swap_to_v2(m.swap(), m.limit())?;
    if let Some(s) = swap {
        if dir.has("memory.swap.max") {
            dir.write_for(
                "linux.resources.memory.swap",
                "memory.swap.max",
                v2_limit(s),
            )?;
        } else if s != -1 {
            return Err(CgroupError::invalid(
                "linux.resources.memory.swap",
                "swap accounting is not enabled on this host (no memory.swap.max)",
            ));
        }
    }
    if let Some(l) = limit {
        dir.write_for("linux.resources.memory.limit", "memory.max", v2_limit(l))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        dir.write_for(
            "linux.resources.memory.reservation",
            "memory.low",
            v2_limit(r),
        )?;
    }
    if m.swappiness().is_some() {
        tracing::warn!(
            "linux.resources.memory.swappiness is ignored: cgroup v2 has no per-cgroup swappiness"
        );
    }
    if m.disable_oom_killer() == Some(true) {
        tracing::warn!("linux.resources.memory.disableOOMKiller is ignored: cgroup v2 cannot disable the OOM killer");
    }
    if m.kernel().is_some_and(|k| k != 0) || m.kernel_tcp().is_some_and(|k| k != 0) {
        tracing::warn!("linux.resources.memory.kernel/kernelTCP are ignored on cgroup v2");
    }
    Ok(())
}
