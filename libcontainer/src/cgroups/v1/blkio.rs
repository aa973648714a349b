//! v1 blkio: weight (CFQ `blkio.weight` or BFQ `blkio.bfq.weight`),
//! per-device weights and throttles.

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

fn weight_file(dir: Dir<'_>, field: &str, cfq: &str, bfq: &str) -> Result<String> {
    if dir.has(cfq) {
        Ok(cfq.to_string())
    } else if dir.has(bfq) {
        Ok(bfq.to_string())
    } else {
        Err(CgroupError::invalid(
            field,
            "no proportional I/O weight on this host (neither CFQ nor BFQ is active)",
        ))
    }
}

pub(crate) fn throttles(
    b: &LinuxBlockIo,
) -> [(&'static str, &'static str, &[LinuxThrottleDevice]); 4] {
    fn v(o: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
        o.as_deref().unwrap_or_default()
    }
    [
        (
            "throttleReadBpsDevice",
            "read_bps_device",
            v(b.throttle_read_bps_device()),
        ),
        (
            "throttleWriteBpsDevice",
            "write_bps_device",
            v(b.throttle_write_bps_device()),
        ),
        (
            "throttleReadIOPSDevice",
            "read_iops_device",
            v(b.throttle_read_iops_device()),
        ),
        (
            "throttleWriteIOPSDevice",
            "write_iops_device",
            v(b.throttle_write_iops_device()),
        ),
    ]
}

pub(crate) fn apply(dir: Dir<'_>, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let f = "linux.resources.blockIO.weight";
        let file = weight_file(dir, f, "blkio.weight", "blkio.bfq.weight")?;
        dir.write_for(f, &file, w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        dir.write_for(
            "linux.resources.blockIO.leafWeight",
            "blkio.leaf_weight",
            w.to_string(),
        )?;
    }
    for (i, d) in b
        .weight_device()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let f = format!("linux.resources.blockIO.weightDevice[{i}]");
        if let Some(w) = d.weight() {
            let file = weight_file(dir, &f, "blkio.weight_device", "blkio.bfq.weight_device")?;
            dir.write_for(&f, &file, format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight() {
            dir.write_for(
                &f,
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    for (name, suffix, list) in throttles(b) {
        for (i, t) in list.iter().enumerate() {
            dir.write_for(
                &format!("linux.resources.blockIO.{name}[{i}]"),
                &format!("blkio.throttle.{suffix}"),
                format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}
