//! pids.max, the same file on v1 and v2.

use oci_spec::runtime::LinuxPids;

use crate::cgroups::dir::Dir;
use crate::cgroups::error::Result;

/// 0 leaves the limit unchanged, a negative value means unlimited.
pub(crate) fn apply(dir: Dir<'_>, p: &LinuxPids) -> Result<()> {
    let limit = p.limit();
    if limit == 0 {
        return Ok(());
    }
    let value = if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    };
    dir.write_for("linux.resources.pids.limit", "pids.max", value)
}
