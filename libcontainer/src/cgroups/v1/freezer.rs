//! v1 freezer: write FROZEN/THAWED and wait until the state settles.

use std::time::{Duration, Instant};

use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

pub(crate) fn set(dir: Dir<'_>, frozen: bool, timeout: Duration) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        // Re-write now and then: a task forking while we freeze can leave
        // the cgroup in FREEZING.
        if round % 10 == 0 {
            dir.write("freezer.state", want)?;
        }
        if dir.read_trimmed("freezer.state")? == want {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(CgroupError::Timeout(format!(
                "{} did not become {want}",
                dir.path.display()
            )));
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn is_frozen(dir: Dir<'_>) -> Result<bool> {
    Ok(dir.read_trimmed("freezer.state")? != "THAWED")
}
