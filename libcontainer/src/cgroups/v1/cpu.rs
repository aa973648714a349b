//! v1 cpu: shares, CFS quota/period/burst, realtime runtime/period, idle.

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::dir::Dir;
use crate::cgroups::error::Result;

pub(crate) fn apply(dir: Dir<'_>, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        dir.write_for("linux.resources.cpu.shares", "cpu.shares", s.to_string())?;
    }
    // The kernel checks quota against period: write the period first and,
    // if it is refused (the old quota does not fit), the quota first.
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    const PERIOD: (&str, &str) = ("linux.resources.cpu.period", "cpu.cfs_period_us");
    const QUOTA: (&str, &str) = ("linux.resources.cpu.quota", "cpu.cfs_quota_us");
    match (period, quota) {
        (Some(p), Some(q)) => {
            if dir.write_for(PERIOD.0, PERIOD.1, p.to_string()).is_err() {
                dir.write_for(QUOTA.0, QUOTA.1, q.to_string())?;
                dir.write_for(PERIOD.0, PERIOD.1, p.to_string())?;
            } else {
                dir.write_for(QUOTA.0, QUOTA.1, q.to_string())?;
            }
        }
        (Some(p), None) => dir.write_for(PERIOD.0, PERIOD.1, p.to_string())?,
        (None, Some(q)) => dir.write_for(QUOTA.0, QUOTA.1, q.to_string())?,
        (None, None) => {}
    }
    if let Some(b) = c.burst() {
        dir.write_for(
            "linux.resources.cpu.burst",
            "cpu.cfs_burst_us",
            b.to_string(),
        )?;
    }
    // Realtime: the period before the runtime, which must fit in it.
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        dir.write_for(
            "linux.resources.cpu.realtimePeriod",
            "cpu.rt_period_us",
            p.to_string(),
        )?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        const FIELD: &str = "linux.resources.cpu.realtimeRuntime";
        if dir
            .write_for(FIELD, "cpu.rt_runtime_us", r.to_string())
            .is_err()
        {
            // A new parent has no realtime budget to hand down: give the
            // empty ancestors the same budget, top-down, and retry.
            grant_to_ancestors(dir, r)?;
            dir.write_for(FIELD, "cpu.rt_runtime_us", r.to_string())?;
        }
    }
    if let Some(i) = c.idle() {
        dir.write_for("linux.resources.cpu.idle", "cpu.idle", i.to_string())?;
    }
    Ok(())
}

/// Set `cpu.rt_runtime_us` of the ancestors that have none (up to the first
/// one with a budget), from the top down.
fn grant_to_ancestors(dir: Dir<'_>, runtime: i64) -> Result<()> {
    let mut empty = Vec::new();
    for anc in dir.path.ancestors().skip(1) {
        let a = Dir::new(dir.fs, anc);
        if !a.has("cpu.rt_runtime_us") || a.read_trimmed("cpu.rt_runtime_us")? != "0" {
            break;
        }
        empty.push(anc);
    }
    for anc in empty.into_iter().rev() {
        Dir::new(dir.fs, anc).write_for(
            "linux.resources.cpu.realtimeRuntime",
            "cpu.rt_runtime_us",
            runtime.to_string(),
        )?;
    }
    Ok(())
}
