//! `docker stats`: samples of a container's cgroup usage (libcontainer's
//! typed [`Stats`]) and of its network namespace's interfaces
//! (`/proc/PID/net/dev`) in Docker's stats JSON, with the previous sample
//! as `precpu_stats` so the CLI can compute a CPU percentage.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use libcontainer::cgroups::{CgroupManager, Stats};
use libswarm::util::{now_nanos, rfc3339};
use libswarm::{
    BlkioStatEntry, BlkioStats, BoxStream, ContainerStats, CpuStats, CpuUsage, MemoryStats,
    NetworkStats, PidsStats, Result,
};

/// Time between samples of a streamed `docker stats` (Docker's too).
const INTERVAL: Duration = Duration::from_secs(1);
/// Time between the two samples of `--no-stream` (its CPU % needs two).
const ONE_SHOT_GAP: Duration = Duration::from_millis(500);

/// Errors reading a sample.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The container's state could not be loaded (it is not running).
    #[error("loading container {id}: {reason}")]
    Container {
        /// Container id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Reading the cgroup files failed.
    #[error("reading the cgroups of {id}: {reason}")]
    Cgroup {
        /// Container id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// The cgroup manager of a running container, from its libcontainer state.
pub fn cgroup(state_dir: &Path, id: &str) -> std::result::Result<CgroupManager, StatsError> {
    let err = |reason: String| StatsError::Container {
        id: id.to_string(),
        reason,
    };
    let c = libcontainer::Container::load(state_dir, id).map_err(|e| err(e.to_string()))?;
    CgroupManager::from_container(&c)
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("it has no cgroups".into()))
}

/// One reading of a container (zeros when it is not running, as Docker).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The container's cgroup usage (None when not running).
    pub cgroup: Option<Stats>,
    /// Interface counters of its own network namespace (None when not
    /// running or on the host's network).
    pub networks: Option<HashMap<String, NetworkStats>>,
    /// Host CPU time in nanoseconds (`/proc/stat`).
    pub system_cpu: u64,
    /// Online CPUs.
    pub online_cpus: u32,
    /// Host memory (the limit shown when the container has none).
    pub host_memory: u64,
    /// When (UNIX nanoseconds).
    pub time: i64,
}

/// Reads a sample; a container that is not running gives zeros.
pub fn read(state_dir: &Path, id: &str) -> std::result::Result<Sample, StatsError> {
    let cgroup = match cgroup(state_dir, id) {
        Ok(m) => Some(m.stats().map_err(|e| StatsError::Cgroup {
            id: id.to_string(),
            reason: e.to_string(),
        })?),
        Err(e) => {
            tracing::debug!(error = %e, "stats of a container that is not running");
            None
        }
    };
    let networks = cgroup
        .as_ref()
        .and_then(|_| libcontainer::Container::load(state_dir, id).ok())
        .and_then(|c| own_netns_interfaces(c.pid()));
    Ok(Sample {
        cgroup,
        networks,
        system_cpu: system_cpu_nanos(&std::fs::read_to_string("/proc/stat").unwrap_or_default()),
        online_cpus: online_cpus(),
        host_memory: host_memory(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()),
        time: now_nanos(),
    })
}

/// The interfaces of `pid`'s network namespace, unless it is berthd's own
/// (`--network host`: Docker reports no networks then).
fn own_netns_interfaces(pid: i32) -> Option<HashMap<String, NetworkStats>> {
    if pid <= 0 {
        return None;
    }
    let ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    let ours = std::fs::metadata("/proc/self/ns/net").ok()?;
    if (ns.dev(), ns.ino()) == (ours.dev(), ours.ino()) {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(net_dev(&text))
}

/// Parses `/proc/net/dev` (loopback left out, as Docker).
pub fn net_dev(text: &str) -> HashMap<String, NetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| f.get(i).copied().unwrap_or(0);
            Some((
                name.to_string(),
                NetworkStats {
                    rx_bytes: at(0),
                    rx_packets: at(1),
                    rx_errors: at(2),
                    rx_dropped: at(3),
                    tx_bytes: at(8),
                    tx_packets: at(9),
                    tx_errors: at(10),
                    tx_dropped: at(11),
                },
            ))
        })
        .collect()
}

fn online_cpus() -> u32 {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

/// Host CPU time from `/proc/stat`'s `cpu` line (user … steal), in
/// nanoseconds, as Docker computes `system_cpu_usage`.
pub fn system_cpu_nanos(proc_stat: &str) -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100);
    let Some(line) = proc_stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let total: u64 = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    total.saturating_mul(1_000_000_000 / ticks)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn host_memory(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cpu(s: &Sample) -> CpuStats {
    let total = s.cgroup.as_ref().and_then(|c| c.cpu.as_ref());
    CpuStats {
        cpu_usage: CpuUsage {
            total_usage: total.map_or(0, |c| c.usage_total),
        },
        system_cpu_usage: s.system_cpu,
        online_cpus: s.online_cpus,
    }
}

/// Docker's stats JSON of `cur` (with `pre` as `precpu_stats`).
pub fn to_api(id: &str, name: &str, cur: &Sample, pre: Option<&Sample>) -> ContainerStats {
    let mem = cur.cgroup.as_ref().and_then(|c| c.memory.as_ref());
    // What `docker stats` shows as usage: without the page cache that can
    // be reclaimed (the CLI subtracts it itself only when given memory.stat).
    let usage = mem.map_or(0, |m| {
        let inactive = ["total_inactive_file", "inactive_file"]
            .iter()
            .find_map(|k| m.stat.get(*k))
            .copied()
            .unwrap_or(0);
        m.usage.saturating_sub(inactive)
    });
    let limit = match mem.map(|m| m.limit) {
        Some(l) if l > 0 && (cur.host_memory == 0 || l < cur.host_memory) => l,
        _ => cur.host_memory,
    };
    let pids = cur.cgroup.as_ref().and_then(|c| c.pids.as_ref());
    ContainerStats {
        id: id.to_string(),
        name: format!("/{name}"),
        read: rfc3339(cur.time),
        cpu_stats: cpu(cur),
        precpu_stats: pre.map(cpu).unwrap_or_default(),
        memory_stats: if cur.cgroup.is_some() {
            MemoryStats { usage, limit }
        } else {
            MemoryStats::default()
        },
        pids_stats: PidsStats {
            current: pids.map_or(0, |p| p.current),
        },
        blkio_stats: BlkioStats {
            io_service_bytes_recursive: cur.cgroup.as_ref().and_then(|c| c.blkio.as_ref()).map(
                |b| {
                    b.io_service_bytes
                        .iter()
                        .map(|e| BlkioStatEntry {
                            major: e.major,
                            minor: e.minor,
                            op: e.op.clone(),
                            value: e.value,
                        })
                        .collect()
                },
            ),
        },
        networks: cur.networks.clone(),
    }
}

/// The stats stream of `docker stats`: one sample (taken twice, a moment
/// apart, so it carries a CPU rate) or, with `stream`, a sample a second.
pub fn stream(
    state_dir: PathBuf,
    id: String,
    name: String,
    stream: bool,
) -> BoxStream<Result<ContainerStats>> {
    let read_blocking = |dir: PathBuf, id: String| async move {
        tokio::task::spawn_blocking(move || read(&dir, &id))
            .await
            .map_err(|e| libswarm::Error::internal(e.to_string()))?
            .map_err(|e| libswarm::Error::internal(e.to_string()))
    };
    let state = (state_dir, id, name, None::<Sample>, true);
    futures::stream::unfold(state, move |(dir, id, name, pre, first)| async move {
        if !first && !stream {
            return None;
        }
        let pre = match pre {
            Some(p) => {
                tokio::time::sleep(INTERVAL).await;
                Some(p)
            }
            None => {
                let p = read_blocking(dir.clone(), id.clone()).await;
                tokio::time::sleep(ONE_SHOT_GAP).await;
                p.ok()
            }
        };
        let item = read_blocking(dir.clone(), id.clone())
            .await
            .map(|cur| (to_api(&id, &name, &cur, pre.as_ref()), cur));
        match item {
            Ok((api, cur)) => Some((Ok(api), (dir, id, name, Some(cur), false))),
            Err(e) => Some((Err(e), (dir, id, name, None, false))),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcontainer::cgroups::{CpuStats as CgCpu, MemoryStats as CgMem, PidsStats as CgPids};

    #[test]
    fn host_figures_parse() {
        let stat = "cpu  100 0 50 850 0 0 0 0 0 0\ncpu0 50 0 25 425 0 0 0 0 0 0\n";
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(system_cpu_nanos(stat), 1000 * (1_000_000_000 / hz));
        assert_eq!(system_cpu_nanos("junk"), 0);
        assert_eq!(
            host_memory("MemTotal:  2048 kB\nMemFree: 1 kB\n"),
            2048 * 1024
        );
    }

    #[test]
    fn net_dev_parses_without_loopback() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    1296      16    1    2    0     0          0         0      936      12    3    4    0     0       0          0\n";
        let n = net_dev(text);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (1296, 16, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (936, 12, 3, 4)
        );
    }

    #[test]
    fn samples_map_to_docker_stats() {
        let mut mem = CgMem {
            usage: 10 << 20,
            limit: u64::MAX,
            ..Default::default()
        };
        mem.stat.insert("total_inactive_file".into(), 2 << 20);
        let sample = |cpu: u64, t: i64| Sample {
            cgroup: Some(Stats {
                memory: Some(mem.clone()),
                cpu: Some(CgCpu {
                    usage_total: cpu,
                    ..Default::default()
                }),
                pids: Some(CgPids {
                    current: 3,
                    limit: 10,
                }),
                ..Default::default()
            }),
            system_cpu: 1_000_000 * cpu,
            online_cpus: 2,
            host_memory: 1 << 30,
            time: t,
            networks: None,
        };
        let pre = sample(5, 1);
        let cur = sample(9, 2);
        let s = to_api("abc", "web", &cur, Some(&pre));
        assert_eq!(s.name, "/web");
        assert_eq!(s.cpu_stats.cpu_usage.total_usage, 9);
        assert_eq!(s.precpu_stats.cpu_usage.total_usage, 5);
        assert_eq!(s.cpu_stats.online_cpus, 2);
        assert_eq!(s.memory_stats.usage, 8 << 20);
        // Unlimited: the host's memory.
        assert_eq!(s.memory_stats.limit, 1 << 30);
        assert_eq!(s.pids_stats.current, 3);
        let stopped = to_api("abc", "web", &Sample::default(), None);
        assert_eq!(stopped.memory_stats.usage, 0);
        assert_eq!(stopped.pids_stats.current, 0);
    }
}
