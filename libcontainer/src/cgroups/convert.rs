//! v1 ↔ v2 value conversions, as runc and crun do them.

use std::collections::BTreeSet;

use super::error::{CgroupError, Result};

/// cpu.shares (2..262144) → cpu.weight (1..10000); 0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000); 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = weight.clamp(10, 1000);
    1 + ((weight - 10) * 9999) / 990
}

/// The spec's `memory.swap` is memory+swap (v1 semantics); v2's
/// `memory.swap.max` is swap alone. Returns `None` for "leave unchanged",
/// `Some(-1)` for "max".
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    const FIELD: &str = "linux.resources.memory.swap";
    let memory = limit.unwrap_or(0);
    let swap = swap.unwrap_or(0);
    // Unlimited memory with unset swap: unlimited swap too, as on v1.
    if memory == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if swap < 0 {
        return Err(CgroupError::invalid(FIELD, format!("{swap} is negative")));
    }
    if memory <= 0 {
        return Err(CgroupError::invalid(
            FIELD,
            "a swap limit needs a memory limit (memory.limit)",
        ));
    }
    if swap < memory {
        return Err(CgroupError::invalid(
            FIELD,
            format!("memory+swap {swap} is lower than the memory limit {memory}"),
        ));
    }
    Ok(Some(swap - memory))
}

/// A limit as v1 writes it: -1 stays -1.
pub fn v1_limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// A limit as v2 writes it: negative is `max`.
pub fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Parse a cpuset list (`0-3,5,7-8`) into its members; `field` names the
/// spec field in errors.
pub fn parse_cpu_list(field: &str, text: &str) -> Result<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    let text = text.trim();
    if text.is_empty() {
        return Ok(set);
    }
    for part in text.split(',') {
        let part = part.trim();
        let bad = || CgroupError::invalid(field, format!("{text:?}: bad list element {part:?}"));
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let v = part.parse::<u32>().map_err(|_| bad())?;
                (v, v)
            }
        };
        if a > b || b - a > 65_536 {
            return Err(bad());
        }
        set.extend(a..=b);
    }
    Ok(set)
}

/// Check that every member of `wanted` is in `available` (the parent's
/// effective set).
pub fn check_cpu_subset(field: &str, wanted: &str, available: &str) -> Result<()> {
    let w = parse_cpu_list(field, wanted)?;
    let a = parse_cpu_list(field, available)?;
    if let Some(missing) = w.difference(&a).next() {
        return Err(CgroupError::invalid(
            field,
            format!("{missing} in {wanted:?} is out of range: this host offers {available:?}"),
        ));
    }
    Ok(())
}

/// Hugepage size names the kernel uses in file names (`2MB`, `1GB`, `64KB`)
/// from a size in kB, as in `/sys/kernel/mm/hugepages/hugepages-2048kB`.
pub fn hugepage_name_from_kb(kb: u64) -> String {
    if kb >= 1 << 20 && kb % (1 << 20) == 0 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb % (1 << 10) == 0 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_semantics() {
        // memory+swap 3 MiB with 1 MiB memory → 2 MiB of swap.
        assert_eq!(
            swap_to_v2(Some(3 << 20), Some(1 << 20)).unwrap(),
            Some(2 << 20)
        );
        assert_eq!(swap_to_v2(Some(-1), Some(1 << 20)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(None, Some(1 << 20)).unwrap(), None);
        assert_eq!(swap_to_v2(Some(1 << 20), Some(1 << 20)).unwrap(), Some(0));
        let e = swap_to_v2(Some(1 << 20), Some(2 << 20)).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.memory.swap:"),
            "{e}"
        );
        assert!(swap_to_v2(Some(1 << 20), None).is_err());
    }

    #[test]
    fn cpu_lists() {
        let s = parse_cpu_list("f", "0-2,5, 7").unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [0, 1, 2, 5, 7]);
        assert!(parse_cpu_list("f", "3-1").is_err());
        assert!(parse_cpu_list("f", "a").is_err());
        check_cpu_subset("f", "0-1", "0-3").unwrap();
        let e = check_cpu_subset("linux.resources.cpu.cpus", "0-7", "0-1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.cpus: 2 in \"0-7\" is out of range: this host offers \"0-1\""
        );
    }

    #[test]
    fn hugepage_names() {
        assert_eq!(hugepage_name_from_kb(2048), "2MB");
        assert_eq!(hugepage_name_from_kb(1_048_576), "1GB");
        assert_eq!(hugepage_name_from_kb(64), "64KB");
    }
}
