//! Typed resource usage of a cgroup, the same shape on v1 and v2.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Usage of every controller the container has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Memory usage, if the memory controller is available.
    pub memory: Option<MemoryStats>,
    /// CPU usage.
    pub cpu: Option<CpuStats>,
    /// Number of tasks and their limit.
    pub pids: Option<PidsStats>,
    /// Block I/O.
    pub blkio: Option<BlkioStats>,
    /// Huge page usage by page size (`2MB` …).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

/// Memory usage in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Current usage (`memory.usage_in_bytes` / `memory.current`).
    pub usage: u64,
    /// Peak usage, when the kernel reports it.
    pub max_usage: Option<u64>,
    /// Limit (`u64::MAX` when unlimited).
    pub limit: u64,
    /// Memory+swap usage on v1, swap usage on v2.
    pub swap_usage: Option<u64>,
    /// Times the limit was hit (v1 failcnt, v2 `max` event count).
    pub failcnt: u64,
    /// OOM kills in this cgroup (v2 `oom_kill`; v1 from memory.oom_control).
    pub oom_kills: u64,
    /// `memory.stat`, verbatim keys.
    pub stat: BTreeMap<String, u64>,
}

/// CPU usage; times in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time.
    pub usage_total: u64,
    /// Time in user mode.
    pub usage_user: u64,
    /// Time in kernel mode.
    pub usage_system: u64,
    /// Per-CPU time (v1 only).
    pub usage_per_cpu: Vec<u64>,
    /// CFS periods elapsed.
    pub nr_periods: u64,
    /// Periods in which the cgroup was throttled.
    pub nr_throttled: u64,
    /// Total throttled time.
    pub throttled_time: u64,
}

/// Tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Tasks in the cgroup.
    pub current: u64,
    /// `pids.max` (`u64::MAX` when unlimited).
    pub limit: u64,
}

/// One block-I/O counter of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// `Read`, `Write` … (v1 spelling; v2 keys map to Read/Write).
    pub op: String,
    /// The counter.
    pub value: u64,
}

/// Block I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes by device and direction.
    pub io_service_bytes: Vec<BlkioEntry>,
    /// Operations by device and direction.
    pub io_serviced: Vec<BlkioEntry>,
}

/// Huge pages of one size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbStats {
    /// Bytes in use.
    pub usage: u64,
    /// Peak (v1 only).
    pub max_usage: Option<u64>,
    /// Allocation failures at the limit.
    pub failcnt: u64,
}
