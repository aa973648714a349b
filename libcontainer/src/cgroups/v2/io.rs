//! v2 io: io.bfq.weight (the blkio weight as is) or io.weight (converted),
//! per-device weights, and io.max throttles.

use oci_spec::runtime::LinuxBlockIo;

use crate::cgroups::convert::blkio_weight_to_io_weight;
use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};
use crate::cgroups::v1::blkio::throttles;

pub(crate) fn apply(dir: Dir<'_>, b: &LinuxBlockIo) -> Result<()> {
    let bfq = dir.has("io.bfq.weight");
    let weight = |w: u16| -> String {
        if bfq {
            w.to_string()
        } else {
            blkio_weight_to_io_weight(u64::from(w)).to_string()
        }
    };
    let file = if bfq { "io.bfq.weight" } else { "io.weight" };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        dir.write_for("linux.resources.blockIO.weight", file, weight(w))?;
    }
    if b.leaf_weight().is_some_and(|w| w != 0) {
        return Err(CgroupError::invalid(
            "linux.resources.blockIO.leafWeight",
            "cgroup v2 has no leaf weight",
        ));
    }
    for (i, d) in b
        .weight_device()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(w) = d.weight() {
            dir.write_for(
                &format!("linux.resources.blockIO.weightDevice[{i}]"),
                file,
                format!("{}:{} {}", d.major(), d.minor(), weight(w)),
            )?;
        }
    }
    for (name, suffix, list) in throttles(b) {
        let key = match suffix {
            "read_bps_device" => "rbps",
            "write_bps_device" => "wbps",
            "read_iops_device" => "riops",
            _ => "wiops",
        };
        for (i, t) in list.iter().enumerate() {
            dir.write_for(
                &format!("linux.resources.blockIO.{name}[{i}]"),
                "io.max",
                format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}
