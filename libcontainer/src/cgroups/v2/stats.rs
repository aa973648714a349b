//! Reading v2 usage files.

use std::collections::BTreeMap;

use crate::cgroups::dir::{parse_flat_keyed, Dir};
use crate::cgroups::error::Result;
use crate::cgroups::stats::{BlkioEntry, BlkioStats, CpuStats, HugetlbStats, MemoryStats};

pub(crate) fn memory(dir: Dir<'_>) -> Result<MemoryStats> {
    let events = parse_flat_keyed(&dir.read("memory.events").unwrap_or_default());
    Ok(MemoryStats {
        usage: dir.read_u64("memory.current")?,
        max_usage: dir.read_u64_opt("memory.peak")?,
        limit: dir.read_u64("memory.max")?,
        swap_usage: dir.read_u64_opt("memory.swap.current")?,
        failcnt: events.get("max").copied().unwrap_or(0),
        oom_kills: events.get("oom_kill").copied().unwrap_or(0),
        stat: parse_flat_keyed(&dir.read("memory.stat")?),
    })
}

/// cpu.stat is in the core on v2: it works without the cpu controller.
pub(crate) fn cpu(dir: Dir<'_>) -> Result<CpuStats> {
    let st = parse_flat_keyed(&dir.read("cpu.stat")?);
    let us = |k: &str| st.get(k).copied().unwrap_or(0).saturating_mul(1000);
    Ok(CpuStats {
        usage_total: us("usage_usec"),
        usage_user: us("user_usec"),
        usage_system: us("system_usec"),
        usage_per_cpu: Vec::new(),
        nr_periods: st.get("nr_periods").copied().unwrap_or(0),
        nr_throttled: st.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    })
}

/// Parse io.stat (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 …`).
pub(crate) fn parse_io_stat(text: &str) -> BlkioStats {
    let mut s = BlkioStats::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.io_service_bytes, "Read"),
                "wbytes" => (&mut s.io_service_bytes, "Write"),
                "rios" => (&mut s.io_serviced, "Read"),
                "wios" => (&mut s.io_serviced, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    s
}

pub(crate) fn io(dir: Dir<'_>) -> Result<BlkioStats> {
    Ok(parse_io_stat(&dir.read("io.stat")?))
}

pub(crate) fn hugetlb(dir: Dir<'_>, sizes: &[String]) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    for size in sizes {
        let events = parse_flat_keyed(
            &dir.read(&format!("hugetlb.{size}.events"))
                .unwrap_or_default(),
        );
        out.insert(
            size.clone(),
            HugetlbStats {
                usage: dir.read_u64(&format!("hugetlb.{size}.current"))?,
                max_usage: None,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
    Ok(out)
}
