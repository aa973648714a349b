//! v1 devices: deny everything, then replay the rules in order.

use crate::cgroups::devices::DeviceRule;
use crate::cgroups::dir::Dir;
use crate::cgroups::error::Result;

pub(crate) fn apply(dir: Dir<'_>, rules: &[DeviceRule]) -> Result<()> {
    dir.write("devices.deny", "a")?;
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        dir.write(file, r.v1_line())?;
    }
    Ok(())
}
