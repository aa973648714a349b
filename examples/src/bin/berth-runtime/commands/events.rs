//! `events`: resource usage (`--stats` once, or every `--interval`) and
//! OOM notifications of a container, one JSON object per line, as runc
//! prints them.

use std::time::{Duration, Instant};

use libcontainer::cgroups::{OomEvent, Stats};
use libcontainer::Status;
use serde_json::{json, Value};

use crate::Globals;

/// Show a container's events.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events (e.g. 5s, 500ms, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// The container id.
    pub id: String,
}

/// Parse `5s`, `500ms`, `1m`, `2h`.
pub fn parse_interval(s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| (&t[..i], &t[i..]));
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--interval: invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("--interval: unknown unit in {s:?} (ms, s, m, h)"),
    };
    if secs <= 0.0 || !secs.is_finite() {
        anyhow::bail!("--interval: {s:?} must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// runc's stats document.
pub fn stats_json(s: &Stats) -> Value {
    let mut data = serde_json::Map::new();
    if let Some(c) = &s.cpu {
        data.insert(
            "cpu".into(),
            json!({
                "usage": {"total": c.usage_total, "percpu": c.usage_per_cpu,
                          "kernel": c.usage_system, "user": c.usage_user},
                "throttling": {"periods": c.nr_periods, "throttledPeriods": c.nr_throttled,
                               "throttledTime": c.throttled_time},
            }),
        );
    }
    if let Some(m) = &s.memory {
        data.insert(
            "memory".into(),
            json!({
                "usage": {"limit": m.limit, "usage": m.usage, "max": m.max_usage.unwrap_or(0),
                          "failcnt": m.failcnt},
                "swap": {"usage": m.swap_usage.unwrap_or(0)},
                "raw": m.stat,
            }),
        );
    }
    if let Some(p) = &s.pids {
        data.insert(
            "pids".into(),
            json!({"current": p.current, "limit": p.limit}),
        );
    }
    if let Some(b) = &s.blkio {
        let entries = |v: &Vec<libcontainer::cgroups::BlkioEntry>| -> Vec<Value> {
            v.iter()
                .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
                .collect()
        };
        data.insert(
            "blkio".into(),
            json!({"ioServiceBytesRecursive": entries(&b.io_service_bytes),
                   "ioServicedRecursive": entries(&b.io_serviced)}),
        );
    }
    if !s.hugetlb.is_empty() {
        let h: serde_json::Map<String, Value> = s
            .hugetlb
            .iter()
            .map(|(k, v)| (k.clone(), json!({"usage": v.usage, "max": v.max_usage.unwrap_or(0), "failcnt": v.failcnt})))
            .collect();
        data.insert("hugetlb".into(), Value::Object(h));
    }
    Value::Object(data)
}

/// Print one event line; `false` once the reader has gone (EPIPE).
fn emit(v: &Value) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{v}").and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Run `events`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let interval = parse_interval(&a.interval)?;
    let (mut c, m) = super::pause::load(g, &a.id)?;
    let stats = |m: &libcontainer::cgroups::CgroupManager| -> anyhow::Result<bool> {
        let data = stats_json(&m.stats()?);
        emit(&json!({"type": "stats", "id": a.id, "data": data}))
    };
    if a.stats {
        stats(&m)?;
        return Ok(0);
    }
    // OOM events need the memory controller; without it only stats flow.
    let mut watcher = m.oom_watcher().ok();
    let mut next = Instant::now();
    loop {
        if c.status() == Status::Stopped {
            return Ok(0);
        }
        let now = Instant::now();
        if now >= next {
            if !stats(&m)? {
                return Ok(0);
            }
            next = now + interval;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        match watcher.as_mut() {
            Some(w) => match w.wait(Some(wait))? {
                OomEvent::Oom(_) => {
                    if !emit(&json!({"type": "oom", "id": a.id}))? {
                        return Ok(0);
                    }
                }
                OomEvent::CgroupRemoved => return Ok(0),
                OomEvent::Timeout => {}
            },
            None => std::thread::sleep(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5x").is_err());
    }

    #[test]
    fn stats_document_shape() {
        let s = Stats {
            pids: Some(libcontainer::cgroups::PidsStats {
                current: 2,
                limit: 5,
            }),
            ..Default::default()
        };
        let v = stats_json(&s);
        assert_eq!(v["pids"]["current"], 2);
        assert!(v.get("memory").is_none());
    }
}
