//! AppArmor: `process.apparmorProfile`, applied with "exec <profile>" on the
//! process's exec attribute so the profile takes effect at execve.

use std::ffi::CString;

use super::{cstring, write_attr, LsmError, LsmHost};

const FIELD: &str = "process.apparmorProfile";
/// The per-LSM attribute (Linux 5.8+), then the legacy shared one.
const ATTR_NEW: &str = "/proc/self/attr/apparmor/exec";
const ATTR_OLD: &str = "/proc/self/attr/exec";

/// A prepared AppArmor change-on-exec (built before fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppArmorPlan {
    attr: CString,
    attr_name: &'static str,
    command: Vec<u8>,
}

impl AppArmorPlan {
    /// Plans `profile`; `None` or an empty profile means nothing to do.
    /// Errors when a profile is asked for and AppArmor is not enabled.
    ///
    /// ```
    /// use libcontainer::lsm::{AppArmorPlan, LsmHost};
    /// let off = LsmHost { apparmor: false, selinux: false, apparmor_attr_dir: false };
    /// assert!(AppArmorPlan::new(None, &off)?.is_none());
    /// let err = AppArmorPlan::new(Some("docker-default"), &off).unwrap_err();
    /// assert!(err.to_string().contains("AppArmor is not enabled"));
    /// # Ok::<(), libcontainer::lsm::LsmError>(())
    /// ```
    pub fn new(profile: Option<&str>, host: &LsmHost) -> Result<Option<Self>, LsmError> {
        let Some(profile) = profile.filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        if !host.apparmor {
            return Err(LsmError::NotActive {
                lsm: "AppArmor",
                field: FIELD,
                value: profile.to_string(),
            });
        }
        let attr_name = if host.apparmor_attr_dir {
            ATTR_NEW
        } else {
            ATTR_OLD
        };
        Self::at(attr_name, profile).map(Some)
    }

    fn at(attr_name: &'static str, profile: &str) -> Result<Self, LsmError> {
        let command = format!("exec {profile}").into_bytes();
        cstring(command.clone(), FIELD)?;
        Ok(AppArmorPlan {
            attr: cstring(attr_name.as_bytes().to_vec(), FIELD)?,
            attr_name,
            command,
        })
    }

    /// The attribute file the child writes.
    pub fn attr(&self) -> &str {
        self.attr_name
    }

    /// Writes "exec <profile>" (child side, after /proc is mounted;
    /// allocation-free). The profile applies from the next execve.
    pub fn apply(&self) -> Result<(), LsmError> {
        write_attr(&self.attr, &self.command, "AppArmor", self.attr_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(attr_dir: bool) -> LsmHost {
        LsmHost {
            apparmor: true,
            selinux: false,
            apparmor_attr_dir: attr_dir,
        }
    }

    #[test]
    fn picks_the_attribute_file() {
        let p = AppArmorPlan::new(Some("docker-default"), &on(true))
            .unwrap()
            .unwrap();
        assert_eq!(p.attr(), "/proc/self/attr/apparmor/exec");
        let p = AppArmorPlan::new(Some("docker-default"), &on(false))
            .unwrap()
            .unwrap();
        assert_eq!(p.attr(), "/proc/self/attr/exec");
        assert_eq!(p.command, b"exec docker-default");
        assert!(AppArmorPlan::new(Some(""), &on(true)).unwrap().is_none());
    }

    #[test]
    fn nul_byte_is_rejected() {
        let err = AppArmorPlan::new(Some("a\0b"), &on(true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.apparmorProfile: contains a NUL byte"
        );
    }

    #[test]
    fn apply_writes_the_exec_command() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exec");
        std::fs::write(&file, "").unwrap();
        let leaked: &'static str = Box::leak(file.to_str().unwrap().to_string().into_boxed_str());
        let plan = AppArmorPlan::at(leaked, "my-profile").unwrap();
        plan.apply().unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "exec my-profile");
    }

    #[test]
    fn this_host_without_apparmor_refuses_a_profile() {
        let host = LsmHost::detect();
        let res = AppArmorPlan::new(Some("berth-test"), &host);
        if host.apparmor {
            assert!(res.unwrap().is_some());
        } else {
            assert!(matches!(
                res,
                Err(LsmError::NotActive {
                    lsm: "AppArmor",
                    ..
                })
            ));
        }
    }
}
