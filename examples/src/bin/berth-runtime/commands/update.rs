//! `update`: change the resource limits of a running container, from a
//! JSON file of `linux.resources` (`-r`, `-` for stdin) and/or flags.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::Globals;

/// Update a container's resource limits.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file of linux.resources to apply ("-" reads stdin).
    #[arg(long, short)]
    pub resources: Option<PathBuf>,
    /// Block I/O weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (µs).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (µs).
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// CPU realtime period (µs).
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime (µs).
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed (0-3, 0,1).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of tasks (-1 unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// The container id.
    pub id: String,
}

/// Parse `4194304`, `4m`, `1G`, `512k`, `-1`.
pub fn parse_bytes(flag: &str, s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| anyhow::anyhow!("--{flag}: invalid size {s:?}"))
}

/// The resources `update` applies: the file's, overridden by the flags.
pub fn resources(a: &Args) -> anyhow::Result<LinuxResources> {
    let mut r: LinuxResources = match &a.resources {
        None => LinuxResources::default(),
        Some(p) => {
            let mut text = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("--resources {p:?}: {e}"))?;
            }
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--resources {:?}: {e}", p))?
        }
    };
    let mut mem = r.memory().unwrap_or_default();
    if let Some(v) = &a.memory {
        mem.set_limit(Some(parse_bytes("memory", v)?));
    }
    if let Some(v) = &a.memory_reservation {
        mem.set_reservation(Some(parse_bytes("memory-reservation", v)?));
    }
    if let Some(v) = &a.memory_swap {
        mem.set_swap(Some(parse_bytes("memory-swap", v)?));
    }
    if mem != LinuxMemory::default() {
        r.set_memory(Some(mem));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
    }
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(v) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(v));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// Run `update`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let res = resources(&a)?;
    let (mut c, m) = super::pause::load(g, &a.id)?;
    let status = c.status();
    if status == libcontainer::Status::Stopped {
        anyhow::bail!("container {} is stopped", a.id);
    }
    m.update(&res)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("m", "4m").unwrap(), 4 << 20);
        assert_eq!(parse_bytes("m", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("m", "512kb").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("m", "-1").unwrap(), -1);
        assert_eq!(parse_bytes("m", "100").unwrap(), 100);
        assert!(parse_bytes("memory", "lots")
            .unwrap_err()
            .to_string()
            .starts_with("--memory:"));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.json");
        std::fs::write(
            &f,
            r#"{"memory": {"limit": 1000, "swap": 5000}, "pids": {"limit": 3}}"#,
        )
        .unwrap();
        let cli = Cli::parse_from([
            "x",
            "-r",
            f.to_str().unwrap(),
            "--memory",
            "8m",
            "--pids-limit",
            "7",
            "--cpu-share",
            "512",
            "c1",
        ]);
        let r = resources(&cli.a).unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(8 << 20), Some(5000)));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 7);
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
        assert!(r.block_io().is_none());
    }
}
