//! v1 memory: limit, memsw (memory+swap), soft limit, swappiness, OOM killer.

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::convert::v1_limit;
use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub(crate) fn validate(m: &LinuxMemory) -> Result<()> {
    if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
        if l > 0 && s > 0 && s < l {
            return Err(CgroupError::invalid(
                "linux.resources.memory.swap",
                format!("memory+swap {s} is lower than the memory limit {l}"),
            ));
        }
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::invalid(
                "linux.resources.memory.swappiness",
                format!("{s} is out of range 0..=100"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn apply(dir: Dir<'_>, m: &LinuxMemory) -> Result<()> {
    validate(m)?;
    let swap = m.swap().filter(|s| *s != 0);
    let limit = m.limit().filter(|l| *l != 0);
    if swap.is_some_and(|s| s != -1) && !dir.has(MEMSW) {
        return Err(CgroupError::invalid(
            "linux.resources.memory.swap",
            "swap accounting is not enabled on this host (no memory.memsw.limit_in_bytes)",
        ));
    }
    let memsw = swap.filter(|_| dir.has(MEMSW));
    match (limit, memsw) {
        (Some(l), Some(s)) => {
            // memory.limit must stay <= memsw at every step: raise memsw
            // first when growing, lower memory first when shrinking.
            let current = dir
                .read_trimmed(LIMIT)
                .ok()
                .and_then(|v| v.parse::<i64>().ok());
            let growing = s == -1 || current.is_some_and(|cur| cur < s);
            if growing {
                dir.write_for("linux.resources.memory.swap", MEMSW, v1_limit(s))?;
                dir.write_for("linux.resources.memory.limit", LIMIT, v1_limit(l))?;
            } else {
                dir.write_for("linux.resources.memory.limit", LIMIT, v1_limit(l))?;
                dir.write_for("linux.resources.memory.swap", MEMSW, v1_limit(s))?;
            }
        }
        (Some(l), None) => dir.write_for("linux.resources.memory.limit", LIMIT, v1_limit(l))?,
        (None, Some(s)) => dir.write_for("linux.resources.memory.swap", MEMSW, v1_limit(s))?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        dir.write_for(
            "linux.resources.memory.reservation",
            "memory.soft_limit_in_bytes",
            v1_limit(r),
        )?;
    }
    if m.kernel().is_some_and(|k| k != 0) {
        // Kernel memory limits are gone from current kernels (runc ignores
        // them too); accounting is always on.
        tracing::warn!(
            "linux.resources.memory.kernel is ignored: kernel memory limits are deprecated"
        );
    }
    if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
        dir.write_for(
            "linux.resources.memory.kernelTCP",
            "memory.kmem.tcp.limit_in_bytes",
            v1_limit(k),
        )?;
    }
    if let Some(s) = m.swappiness() {
        dir.write_for(
            "linux.resources.memory.swappiness",
            "memory.swappiness",
            s.to_string(),
        )?;
    }
    if let Some(d) = m.disable_oom_killer() {
        dir.write_for(
            "linux.resources.memory.disableOOMKiller",
            "memory.oom_control",
            if d { "1" } else { "0" },
        )?;
    }
    Ok(())
}
