//! v2 freezer: cgroup.freeze, settled when cgroup.events says `frozen`.

use std::time::{Duration, Instant};

use crate::cgroups::dir::{parse_flat_keyed, Dir};
use crate::cgroups::error::{CgroupError, Result};

pub(crate) fn set(dir: Dir<'_>, frozen: bool, timeout: Duration) -> Result<()> {
    dir.write("cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = u64::from(frozen);
    let start = Instant::now();
    loop {
        let events = parse_flat_keyed(&dir.read("cgroup.events")?);
        if events.get("frozen").copied().unwrap_or(0) == want {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(CgroupError::Timeout(format!(
                "{} did not become {}",
                dir.path.display(),
                if frozen { "frozen" } else { "thawed" }
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn is_frozen(dir: Dir<'_>) -> Result<bool> {
    Ok(dir.read_trimmed("cgroup.freeze")? == "1")
}
