//! v2 cpu: cpu.weight (converted from shares), cpu.max, cpu.max.burst,
//! cpu.idle; cpuset.cpus/mems.

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::convert::{check_cpu_subset, shares_to_weight};
use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

pub(crate) fn apply(dir: Dir<'_>, c: &LinuxCpu) -> Result<()> {
    if c.realtime_period().is_some_and(|v| v != 0) || c.realtime_runtime().is_some_and(|v| v != 0) {
        return Err(CgroupError::invalid(
            "linux.resources.cpu.realtimeRuntime",
            "cgroup v2 has no realtime CPU budget (realtimeRuntime/realtimePeriod need cgroup v1)",
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        dir.write_for(
            "linux.resources.cpu.shares",
            "cpu.weight",
            shares_to_weight(s).to_string(),
        )?;
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        if let Some(p) = period {
            v.push_str(&format!(" {p}"));
        }
        dir.write_for("linux.resources.cpu.quota", "cpu.max", v)?;
    }
    if let Some(b) = c.burst() {
        dir.write_for("linux.resources.cpu.burst", "cpu.max.burst", b.to_string())?;
    }
    if let Some(i) = c.idle() {
        dir.write_for("linux.resources.cpu.idle", "cpu.idle", i.to_string())?;
    }
    Ok(())
}

pub(crate) fn apply_cpuset(dir: Dir<'_>, c: &LinuxCpu) -> Result<()> {
    let parent = dir.path.parent().unwrap_or(dir.path);
    let pdir = Dir::new(dir.fs, parent);
    for (field, value, file) in [
        ("linux.resources.cpu.cpus", c.cpus(), "cpuset.cpus"),
        ("linux.resources.cpu.mems", c.mems(), "cpuset.mems"),
    ] {
        let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let effective = format!("{file}.effective");
        if pdir.has(&effective) {
            check_cpu_subset(field, value, &pdir.read_trimmed(&effective)?)?;
        }
        dir.write_for(field, file, value)?;
    }
    Ok(())
}
