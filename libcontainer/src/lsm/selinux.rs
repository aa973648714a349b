//! SELinux: `process.selinuxLabel` for the process (written to the exec
//! attribute, effective at execve) and `linux.mountLabel` for mounts.

use std::ffi::CString;

use super::{cstring, write_attr, LsmError, LsmHost};

const FIELD: &str = "process.selinuxLabel";
const ATTR: &str = "/proc/self/attr/exec";

/// A prepared SELinux exec label (built before fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelinuxPlan {
    attr: CString,
    attr_name: &'static str,
    label: Vec<u8>,
}

impl SelinuxPlan {
    /// Plans `label`; `None` or empty means nothing to do. Errors when a
    /// label is asked for and SELinux is not enabled.
    ///
    /// ```
    /// use libcontainer::lsm::{LsmHost, SelinuxPlan};
    /// let off = LsmHost { apparmor: false, selinux: false, apparmor_attr_dir: false };
    /// let err = SelinuxPlan::new(Some("system_u:system_r:container_t:s0"), &off).unwrap_err();
    /// assert!(err.to_string().starts_with("process.selinuxLabel: SELinux"));
    /// ```
    pub fn new(label: Option<&str>, host: &LsmHost) -> Result<Option<Self>, LsmError> {
        let Some(label) = label.filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        if !host.selinux {
            return Err(LsmError::NotActive {
                lsm: "SELinux",
                field: FIELD,
                value: label.to_string(),
            });
        }
        Self::at(ATTR, label).map(Some)
    }

    fn at(attr_name: &'static str, label: &str) -> Result<Self, LsmError> {
        cstring(label.as_bytes().to_vec(), FIELD)?;
        Ok(SelinuxPlan {
            attr: cstring(attr_name.as_bytes().to_vec(), FIELD)?,
            attr_name,
            label: label.as_bytes().to_vec(),
        })
    }

    /// Writes the label to the exec attribute (child side, after /proc is
    /// mounted; allocation-free). It applies from the next execve.
    pub fn apply(&self) -> Result<(), LsmError> {
        write_attr(&self.attr, &self.label, "SELinux", self.attr_name)
    }
}

/// The mount option that labels a mount's files with `linux.mountLabel`:
/// `context="<label>"`, to append to the mount data. `None` when no label is
/// set; an error when one is set and SELinux is not enabled.
///
/// ```
/// use libcontainer::lsm::{selinux::mount_label_option, LsmHost};
/// let on = LsmHost { apparmor: false, selinux: true, apparmor_attr_dir: false };
/// let opt = mount_label_option(Some("system_u:object_r:container_file_t:s0:c1,c2"), &on)?;
/// assert_eq!(opt.as_deref(), Some("context=\"system_u:object_r:container_file_t:s0:c1,c2\""));
/// # Ok::<(), libcontainer::lsm::LsmError>(())
/// ```
pub fn mount_label_option(label: Option<&str>, host: &LsmHost) -> Result<Option<String>, LsmError> {
    let Some(label) = label.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if !host.selinux {
        return Err(LsmError::NotActive {
            lsm: "SELinux",
            field: "linux.mountLabel",
            value: label.to_string(),
        });
    }
    if label.contains(['"', '\0']) {
        return Err(LsmError::Invalid {
            field: "linux.mountLabel",
            reason: "contains a quote or NUL byte",
        });
    }
    // Quoted: MCS categories contain commas, the mount option separator.
    Ok(Some(format!("context=\"{label}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: LsmHost = LsmHost {
        apparmor: false,
        selinux: true,
        apparmor_attr_dir: false,
    };

    #[test]
    fn plans_only_when_asked() {
        assert!(SelinuxPlan::new(None, &ON).unwrap().is_none());
        let p = SelinuxPlan::new(Some("system_u:system_r:container_t:s0"), &ON)
            .unwrap()
            .unwrap();
        assert_eq!(p.attr_name, "/proc/self/attr/exec");
        assert_eq!(mount_label_option(None, &ON).unwrap(), None);
    }

    #[test]
    fn apply_writes_the_label() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exec");
        std::fs::write(&file, "").unwrap();
        let leaked: &'static str = Box::leak(file.to_str().unwrap().to_string().into_boxed_str());
        SelinuxPlan::at(leaked, "u:r:t:s0")
            .unwrap()
            .apply()
            .unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "u:r:t:s0");
    }

    #[test]
    fn this_host_without_selinux_refuses_labels() {
        let host = LsmHost::detect();
        let res = SelinuxPlan::new(Some("u:r:t:s0"), &host);
        let mount = mount_label_option(Some("u:object_r:t:s0"), &host);
        if host.selinux {
            assert!(res.unwrap().is_some());
            assert!(mount.unwrap().is_some());
        } else {
            assert!(matches!(
                res,
                Err(LsmError::NotActive { lsm: "SELinux", .. })
            ));
            assert_eq!(
                mount.unwrap_err().to_string(),
                "linux.mountLabel: SELinux \"u:object_r:t:s0\" requested, but SELinux is not enabled on this host"
            );
        }
    }
}
