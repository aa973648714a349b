//! `kill`: send a signal to a container's init.

use libcontainer::cgroups::CgroupManager;
use libcontainer::{Container, Status};

use crate::Globals;

/// Send a signal (default SIGTERM) to a container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signal every process in the container's cgroup, not only the init.
    #[arg(long, short)]
    pub all: bool,
    /// The container id.
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// Parse a signal name or number.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        anyhow::bail!("invalid signal number {n}");
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.trim_start_matches('+').parse()?
        };
        return Ok(libc::SIGRTMIN() + off);
    }
    let full = format!("SIG{name}");
    let sig: nix::sys::signal::Signal = full
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))?;
    Ok(sig as i32)
}

/// Run `kill`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let sig = parse_signal(&a.signal)?;
    let mut c = Container::load(&g.root, &a.id)?;
    if a.all
        && matches!(
            c.status(),
            Status::Created | Status::Running | Status::Paused
        )
    {
        if let Some(m) = CgroupManager::from_container(&c)? {
            m.signal_all(nix::sys::signal::Signal::try_from(sig)?)?;
            return Ok(0);
        }
    }
    c.kill(sig)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
