//! Reading v1 usage files.

use std::collections::BTreeMap;

use crate::cgroups::dir::{parse_flat_keyed, Dir};
use crate::cgroups::error::Result;
use crate::cgroups::stats::{
    BlkioEntry, BlkioStats, CpuStats, HugetlbStats, MemoryStats, PidsStats,
};

pub(crate) fn memory(dir: Dir<'_>) -> Result<MemoryStats> {
    let oom = parse_flat_keyed(&dir.read("memory.oom_control").unwrap_or_default());
    Ok(MemoryStats {
        usage: dir.read_u64("memory.usage_in_bytes")?,
        max_usage: dir.read_u64_opt("memory.max_usage_in_bytes")?,
        limit: dir.read_u64("memory.limit_in_bytes")?,
        swap_usage: dir.read_u64_opt("memory.memsw.usage_in_bytes")?,
        failcnt: dir.read_u64("memory.failcnt")?,
        oom_kills: oom.get("oom_kill").copied().unwrap_or(0),
        stat: parse_flat_keyed(&dir.read("memory.stat")?),
    })
}

/// `cpu_dir` holds cpu.stat (throttling), `acct_dir` the cpuacct files.
pub(crate) fn cpu(cpu_dir: Option<Dir<'_>>, acct_dir: Option<Dir<'_>>) -> Result<CpuStats> {
    let mut s = CpuStats::default();
    if let Some(d) = acct_dir {
        s.usage_total = d.read_u64("cpuacct.usage")?;
        s.usage_per_cpu = d
            .read("cpuacct.usage_percpu")?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat is in USER_HZ ticks.
        let ticks = parse_flat_keyed(&d.read("cpuacct.stat")?);
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|v| *v > 0)
            .unwrap_or(100) as u64;
        let ns = |t: u64| t.saturating_mul(1_000_000_000 / hz);
        s.usage_user = ns(ticks.get("user").copied().unwrap_or(0));
        s.usage_system = ns(ticks.get("system").copied().unwrap_or(0));
    }
    if let Some(d) = cpu_dir {
        let st = parse_flat_keyed(&d.read("cpu.stat")?);
        s.nr_periods = st.get("nr_periods").copied().unwrap_or(0);
        s.nr_throttled = st.get("nr_throttled").copied().unwrap_or(0);
        s.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    }
    Ok(s)
}

pub(crate) fn pids(dir: Dir<'_>) -> Result<PidsStats> {
    Ok(PidsStats {
        current: dir.read_u64("pids.current")?,
        limit: dir.read_u64("pids.max")?,
    })
}

/// Parse `8:0 Read 4096` lines; `Total` lines are skipped.
pub(crate) fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let dev = it.next()?;
            let op = it.next()?;
            let value = it.next()?.parse().ok()?;
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

pub(crate) fn blkio(dir: Dir<'_>) -> Result<BlkioStats> {
    // The throttle files count every I/O, whatever the scheduler.
    Ok(BlkioStats {
        io_service_bytes: parse_blkio(&dir.read("blkio.throttle.io_service_bytes_recursive")?),
        io_serviced: parse_blkio(&dir.read("blkio.throttle.io_serviced_recursive")?),
    })
}

pub(crate) fn hugetlb(dir: Dir<'_>, sizes: &[String]) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    for size in sizes {
        out.insert(
            size.clone(),
            HugetlbStats {
                usage: dir.read_u64(&format!("hugetlb.{size}.usage_in_bytes"))?,
                max_usage: dir.read_u64_opt(&format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: dir.read_u64(&format!("hugetlb.{size}.failcnt"))?,
            },
        );
    }
    Ok(out)
}
