//! `linux.resources.unified`: raw `file → value` writes into the v2 cgroup.

use std::collections::HashMap;

use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

/// Check a key names a plain file of the cgroup directory.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let field = format!("linux.resources.unified[{key:?}]");
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return Err(CgroupError::invalid(field, "not a cgroup file name"));
    }
    if matches!(
        key,
        "cgroup.procs" | "cgroup.threads" | "cgroup.subtree_control" | "cgroup.kill"
    ) {
        return Err(CgroupError::invalid(
            field,
            "managed by the runtime, cannot be set here",
        ));
    }
    Ok(())
}

/// The controller a key belongs to (`memory.high` → `memory`).
pub(crate) fn controller_of(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

pub(crate) fn apply(dir: Dir<'_>, unified: &HashMap<String, String>) -> Result<()> {
    // Sorted for a deterministic write order.
    let mut keys: Vec<_> = unified.keys().collect();
    keys.sort();
    for key in keys {
        validate_key(key)?;
        let field = format!("linux.resources.unified[{key:?}]");
        if !dir.has(key) {
            return Err(CgroupError::invalid(
                field,
                format!(
                    "no such file in {} (controller {} not enabled?)",
                    dir.path.display(),
                    controller_of(key)
                ),
            ));
        }
        dir.write_for(&field, key, &unified[key])?;
    }
    Ok(())
}
