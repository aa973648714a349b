//! Who holds a mount, and how to tell whether they are still alive.
//!
//! A caller is an id (a container id, say) that may carry a process id.
//! After a restart the service keeps only the references of callers that a
//! [`Liveness`] check says are alive. [`ProcLiveness`], the default, treats a
//! caller without a pid as alive (it must unmount explicitly) and one with a
//! pid as alive while `/proc/<pid>` exists with the same start time, so a
//! recycled pid does not keep a volume mounted.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The holder of a volume mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Caller {
    /// Stable id of the caller (e.g. a container id).
    pub id: String,
    /// Process whose life bounds the caller's mounts, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The process start time (clock ticks since boot, field 22 of
    /// `/proc/<pid>/stat`), recorded to tell a recycled pid apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

impl Caller {
    /// A caller with no process: alive until it unmounts.
    ///
    /// ```
    /// let c = libvolume::Caller::new("container-1");
    /// assert!(c.pid.is_none());
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Caller {
            id: id.into(),
            pid: None,
            start_time: None,
        }
    }

    /// A caller bound to a process; its start time is read now so that a
    /// later check can tell a recycled pid apart.
    ///
    /// ```
    /// let c = libvolume::Caller::with_pid("me", std::process::id() as i32);
    /// assert!(c.start_time.is_some());
    /// ```
    pub fn with_pid(id: impl Into<String>, pid: i32) -> Self {
        Caller {
            id: id.into(),
            pid: Some(pid),
            start_time: ProcLiveness::default().start_time(pid),
        }
    }
}

/// Decides whether a caller recorded before a restart is still alive.
pub trait Liveness: Send + Sync {
    /// True when the caller's references should be kept.
    fn is_alive(&self, caller: &Caller) -> bool;
}

/// Liveness from procfs (see the module docs).
#[derive(Debug, Clone)]
pub struct ProcLiveness {
    proc_root: PathBuf,
}

impl Default for ProcLiveness {
    fn default() -> Self {
        ProcLiveness {
            proc_root: PathBuf::from("/proc"),
        }
    }
}

impl ProcLiveness {
    /// Reads another procfs mount (tests, or a pid namespace's /proc).
    pub fn with_proc_root(proc_root: impl Into<PathBuf>) -> Self {
        ProcLiveness {
            proc_root: proc_root.into(),
        }
    }

    /// The start time of `pid`, or None when it does not exist.
    pub fn start_time(&self, pid: i32) -> Option<u64> {
        let stat =
            std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat")).ok()?;
        parse_start_time(&stat)
    }
}

/// Field 22 of /proc/<pid>/stat; the command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its last ')'.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm starts with field 3 (state); start time is field 22.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

impl Liveness for ProcLiveness {
    fn is_alive(&self, caller: &Caller) -> bool {
        let Some(pid) = caller.pid else {
            return true;
        };
        match (self.start_time(pid), caller.start_time) {
            (None, _) => false,
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_with_odd_comm() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_time(stat), Some(98765));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn self_is_alive_and_dead_pid_is_not() {
        let live = ProcLiveness::default();
        let me = Caller::with_pid("me", std::process::id() as i32);
        assert!(live.is_alive(&me));
        let mut recycled = me.clone();
        recycled.start_time = me.start_time.map(|t| t + 1);
        assert!(!live.is_alive(&recycled));
        // pid_max is at most 2^22: this pid never exists.
        assert!(!live.is_alive(&Caller {
            id: "gone".into(),
            pid: Some(i32::MAX),
            start_time: None
        }));
        assert!(live.is_alive(&Caller::new("no-pid")));
    }
}
