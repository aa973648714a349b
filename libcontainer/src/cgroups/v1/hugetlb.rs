//! hugetlb limits: `hugetlb.<size>.limit_in_bytes` on v1,
//! `hugetlb.<size>.max` on v2.

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::dir::Dir;
use crate::cgroups::error::{CgroupError, Result};

pub(crate) fn apply(dir: Dir<'_>, limits: &[LinuxHugepageLimit], v2: bool) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let size = l.page_size();
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let valid = size.len() > 2
            && size.ends_with('B')
            && size[..size.len() - 2].chars().all(|c| c.is_ascii_digit());
        let file = if v2 {
            format!("hugetlb.{size}.max")
        } else {
            format!("hugetlb.{size}.limit_in_bytes")
        };
        if !valid || !dir.has(&file) {
            return Err(CgroupError::invalid(
                format!("{field}.pageSize"),
                format!("{size:?} is not a huge page size of this host"),
            ));
        }
        let value = if l.limit() < 0 {
            if v2 {
                "max".to_string()
            } else {
                "-1".to_string()
            }
        } else {
            l.limit().to_string()
        };
        dir.write_for(&format!("{field}.limit"), &file, value)?;
    }
    Ok(())
}
