//! Linux capabilities: the five sets of `process.capabilities` (bounding,
//! effective, inheritable, permitted, ambient) and `noNewPrivileges`.
//!
//! Names are parsed before fork into a [`CapabilityPlan`] of five bitmasks;
//! the child applies it with a handful of `prctl`/`capset` calls and no
//! allocation. Capabilities the running kernel does not know (past
//! `/proc/sys/kernel/cap_last_cap`) are skipped with a warning, as runc does;
//! unknown *names* are errors naming the field.
//!
//! # How the core uses this
//!
//! Before fork: `let caps = CapabilityPlan::from_spec(process.capabilities())?`.
//! In the child, in this order:
//!
//! 1. [`CapabilityPlan::drop_bounding`] while still root (needs `CAP_SETPCAP`);
//! 2. [`set_keep_caps`]`(true)`, then setgroups/setgid/setuid to the
//!    process user (the core's job), then [`set_keep_caps`]`(false)`;
//! 3. [`CapabilityPlan::apply`]: permitted, effective and inheritable in one
//!    `capset`, then the ambient set (cleared, then raised);
//! 4. [`set_no_new_privileges`] when `process.noNewPrivileges`;
//! 5. seccomp last ([`crate::seccomp::SeccompProgram::load`]).
//!
//! ```no_run
//! use libcontainer::capabilities::{set_keep_caps, set_no_new_privileges, CapabilityPlan};
//! # fn demo(spec: &oci_spec::runtime::LinuxCapabilities) -> Result<(), Box<dyn std::error::Error>> {
//! let plan = CapabilityPlan::from_spec(spec)?; // before fork
//! // ... fork; in the child:
//! plan.drop_bounding()?;
//! set_keep_caps(true)?;
//! nix::unistd::setgid(1000.into())?;
//! nix::unistd::setuid(1000.into())?;
//! set_keep_caps(false)?;
//! plan.apply()?;
//! set_no_new_privileges()?;
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::str::FromStr;

use nix::errno::Errno;
use oci_spec::runtime::LinuxCapabilities;
use serde_json::Value;

/// Errors of capability parsing and application.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A capability name is not known.
    #[error("{field}: unknown capability {name:?}")]
    Unknown {
        /// Where the name was, e.g. `process.capabilities.bounding[2]`.
        field: String,
        /// The name as written.
        name: String,
    },
    /// A field has the wrong JSON type.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A kernel call failed in the child.
    #[error("{op}: {errno}")]
    Kernel {
        /// What was being done, e.g. `capset` or `raise ambient capability`.
        op: &'static str,
        /// The errno.
        errno: Errno,
    },
}

/// The five capability sets as bitmasks (bit n = capability n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapabilityPlan {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Ambient set.
    pub ambient: u64,
    /// Highest capability number of the running kernel.
    pub last_cap: u8,
}

/// Parses one capability name such as `CAP_CHOWN` (oci-spec's rules: the
/// `CAP_` prefix is optional and case does not matter).
///
/// ```
/// let cap = libcontainer::capabilities::parse_capability("CAP_NET_RAW")?;
/// assert_eq!(cap, caps::Capability::CAP_NET_RAW);
/// assert!(libcontainer::capabilities::parse_capability("CAP_FLY").is_err());
/// # Ok::<(), libcontainer::capabilities::CapabilityError>(())
/// ```
pub fn parse_capability(name: &str) -> Result<caps::Capability, CapabilityError> {
    parse_at(name, "capability")
}

fn parse_at(name: &str, field: &str) -> Result<caps::Capability, CapabilityError> {
    let unknown = || CapabilityError::Unknown {
        field: field.to_string(),
        name: name.to_string(),
    };
    let oci: oci_spec::runtime::Capability =
        serde_json::from_value(Value::String(name.to_string())).map_err(|_| unknown())?;
    from_oci(oci).ok_or_else(unknown)
}

fn from_oci(cap: oci_spec::runtime::Capability) -> Option<caps::Capability> {
    caps::Capability::from_str(&format!("CAP_{cap}")).ok()
}

/// The names of every capability we know, `CAP_*`, sorted by number.
pub fn known_capability_names() -> Vec<String> {
    let mut all: Vec<_> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.iter().map(|c| c.to_string()).collect()
}

/// Highest capability number the running kernel supports.
pub fn kernel_last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

impl CapabilityPlan {
    /// Builds the plan from `process.capabilities` (pre-fork). An absent set
    /// is empty. Ambient capabilities that are not both permitted and
    /// inheritable cannot be raised; they are left out with a warning
    /// (runc's behaviour).
    pub fn from_spec(spec: &LinuxCapabilities) -> Result<Self, CapabilityError> {
        let sets = [
            spec.bounding(),
            spec.effective(),
            spec.inheritable(),
            spec.permitted(),
            spec.ambient(),
        ];
        let mut masks = [0u64; 5];
        for (i, set) in sets.iter().enumerate() {
            for cap in set.iter().flatten() {
                let c = from_oci(*cap).ok_or_else(|| CapabilityError::Unknown {
                    field: format!("process.capabilities.{}", SETS[i]),
                    name: format!("CAP_{cap}"),
                })?;
                masks[i] |= c.bitmask();
            }
        }
        Ok(Self::from_masks(masks, kernel_last_cap()))
    }

    /// Builds the plan from names per set, in the order bounding, effective,
    /// inheritable, permitted, ambient.
    ///
    /// ```
    /// use libcontainer::capabilities::CapabilityPlan;
    /// let net = ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"];
    /// let plan = CapabilityPlan::from_names([&net[..], &net, &[], &net, &[]])?;
    /// assert_eq!(plan.effective, (1 << 13) | (1 << 10));
    /// # Ok::<(), libcontainer::capabilities::CapabilityError>(())
    /// ```
    pub fn from_names(sets: [&[&str]; 5]) -> Result<Self, CapabilityError> {
        let mut masks = [0u64; 5];
        for (i, names) in sets.iter().enumerate() {
            for (k, name) in names.iter().enumerate() {
                let field = format!("process.capabilities.{}[{k}]", SETS[i]);
                masks[i] |= parse_at(name, &field)?.bitmask();
            }
        }
        Ok(Self::from_masks(masks, kernel_last_cap()))
    }

    fn from_masks(mut masks: [u64; 5], last_cap: u8) -> Self {
        let supported = if last_cap >= 63 {
            u64::MAX
        } else {
            (1u64 << (last_cap + 1)) - 1
        };
        for (i, m) in masks.iter_mut().enumerate() {
            if *m & !supported != 0 {
                tracing::warn!(
                    set = SETS[i],
                    mask = format_args!("{:#x}", *m & !supported),
                    "capabilities unknown to this kernel skipped"
                );
                *m &= supported;
            }
        }
        let [bounding, effective, inheritable, permitted, ambient] = masks;
        let host = host_bounding_set(last_cap);
        let missing = (effective | inheritable | permitted | ambient) & !host;
        if missing != 0 {
            tracing::warn!(
                capabilities = ?CapabilityPlan::names(missing),
                "not in this host's bounding set: they cannot be granted \
                 (unless the container gets a new user namespace) and are left out"
            );
        }
        let raisable = ambient & permitted & inheritable;
        if raisable != ambient {
            tracing::warn!(
                mask = format_args!("{:#x}", ambient & !raisable),
                "ambient capabilities that are not permitted and inheritable skipped"
            );
        }
        CapabilityPlan {
            bounding,
            effective,
            inheritable,
            permitted,
            ambient: raisable,
            last_cap,
        }
    }

    /// Drops every capability outside the bounding set (child side; needs
    /// `CAP_SETPCAP`, so call it before changing user). Allocation-free.
    pub fn drop_bounding(&self) -> Result<(), CapabilityError> {
        for cap in 0..=self.last_cap.min(63) {
            if self.bounding & (1 << cap) != 0 {
                continue;
            }
            // Dropping an absent capability succeeds, so drop first and
            // only ask whether it was there when the drop is refused.
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)) };
            if rc != 0 {
                let err = kernel("drop from the bounding set");
                // SAFETY: as above.
                let present =
                    unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)) };
                if present != 0 {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Sets the permitted, effective and inheritable sets with one `capset`,
    /// then replaces the ambient set (child side, after the user change).
    /// Capabilities the process does not hold (e.g. outside the host's
    /// bounding set) are left out rather than failing. Allocation-free.
    pub fn apply(&self) -> Result<(), CapabilityError> {
        let lo = |m: u64| m as u32;
        let hi = |m: u64| (m >> 32) as u32;
        let mut header = CapUserHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapUserData::default(), CapUserData::default()];
        // SAFETY: v3 header and room for two data structs, as capget wants.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        if rc != 0 {
            return Err(kernel("capget"));
        }
        let join = |l: u32, h: u32| u64::from(l) | (u64::from(h) << 32);
        let held = join(data[0].permitted, data[1].permitted);
        let inheritable_now = join(data[0].inheritable, data[1].inheritable);
        // A process can only keep what it holds: on a host whose bounding
        // set lacks a capability (from_spec warned about it) this keeps the
        // container starting instead of failing capset with EPERM.
        let permitted = self.permitted & held;
        let effective = self.effective & permitted;
        let inheritable = self.inheritable & (held | inheritable_now);
        let ambient = self.ambient & permitted & inheritable;
        data = [
            CapUserData {
                effective: lo(effective),
                permitted: lo(permitted),
                inheritable: lo(inheritable),
            },
            CapUserData {
                effective: hi(effective),
                permitted: hi(permitted),
                inheritable: hi(inheritable),
            },
        ];
        // SAFETY: header and data are the kernel's v3 layout (two data
        // structs); the kernel only reads them.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        if rc != 0 {
            return Err(kernel("capset"));
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc != 0 {
            return Err(kernel("clear the ambient set"));
        }
        for cap in 0..=self.last_cap.min(63) {
            if ambient & (1 << cap) == 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            if rc != 0 {
                return Err(kernel("raise an ambient capability"));
            }
        }
        Ok(())
    }

    /// The names in one set, for logs and tests.
    pub fn names(mask: u64) -> Vec<String> {
        let all: HashSet<_> = caps::all();
        let mut v: Vec<_> = all
            .into_iter()
            .filter(|c| mask & c.bitmask() != 0)
            .collect();
        v.sort_by_key(|c| c.index());
        v.iter().map(|c| c.to_string()).collect()
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn kernel(op: &'static str) -> CapabilityError {
    CapabilityError::Kernel {
        op,
        errno: Errno::last(),
    }
}

/// The calling thread's bounding set as a bitmask.
pub fn host_bounding_set(last_cap: u8) -> u64 {
    (0..=last_cap.min(63))
        .filter(|&cap| {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)) == 1 }
        })
        .fold(0, |m, cap| m | (1 << cap))
}

/// Keeps (or stops keeping) the permitted set across a setuid away from
/// root (`PR_SET_KEEPCAPS`). Child side, allocation-free.
pub fn set_keep_caps(keep: bool) -> Result<(), CapabilityError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep)) };
    if rc != 0 {
        return Err(kernel("PR_SET_KEEPCAPS"));
    }
    Ok(())
}

/// Sets `no_new_privs`: execve can no longer grant privileges (setuid bits,
/// file capabilities), and seccomp filters can be loaded without
/// `CAP_SYS_ADMIN`. Child side, allocation-free.
pub fn set_no_new_privileges() -> Result<(), CapabilityError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(kernel("PR_SET_NO_NEW_PRIVS"));
    }
    Ok(())
}

/// Checks `process.capabilities` of a raw config.json and names the first
/// unknown capability, for a clear error where typed parsing fails.
///
/// ```
/// let config = serde_json::json!({"process": {"capabilities": {
///     "bounding": ["CAP_CHOWN", "CAP_FLY"]}}});
/// let err = libcontainer::capabilities::validate_raw(&config).unwrap_err();
/// assert_eq!(err.to_string(),
///     "process.capabilities.bounding[1]: unknown capability \"CAP_FLY\"");
/// ```
pub fn validate_raw(config: &Value) -> Result<(), CapabilityError> {
    let Some(caps) = config.pointer("/process/capabilities") else {
        return Ok(());
    };
    if caps.is_null() {
        return Ok(());
    }
    let Some(obj) = caps.as_object() else {
        return Err(CapabilityError::Invalid {
            field: "process.capabilities".into(),
            reason: "must be an object",
        });
    };
    for set in SETS {
        let field = format!("process.capabilities.{set}");
        match obj.get(set) {
            None | Some(Value::Null) => {}
            Some(Value::Array(names)) => {
                for (k, name) in names.iter().enumerate() {
                    let field = format!("{field}[{k}]");
                    match name.as_str() {
                        Some(n) => {
                            parse_at(n, &field)?;
                        }
                        None => {
                            return Err(CapabilityError::Invalid {
                                field,
                                reason: "must be a string",
                            })
                        }
                    }
                }
            }
            Some(_) => {
                return Err(CapabilityError::Invalid {
                    field,
                    reason: "must be a list of capability names",
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_and_without_prefix() {
        assert_eq!(
            parse_capability("CAP_CHOWN").unwrap(),
            caps::Capability::CAP_CHOWN
        );
        assert_eq!(
            parse_capability("chown").unwrap(),
            caps::Capability::CAP_CHOWN
        );
        assert_eq!(
            parse_capability("CAP_CHECKPOINT_RESTORE").unwrap().index(),
            40
        );
        let err = parse_capability("CAP_TELEPORT").unwrap_err();
        assert_eq!(
            err.to_string(),
            "capability: unknown capability \"CAP_TELEPORT\""
        );
    }

    #[test]
    fn from_names_names_the_bad_field() {
        let err =
            CapabilityPlan::from_names([&["CAP_KILL"], &[], &[], &[], &["CAP_NOPE"]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.capabilities.ambient[0]: unknown capability \"CAP_NOPE\""
        );
    }

    #[test]
    fn every_known_name_round_trips() {
        let names = known_capability_names();
        assert!(names.len() >= 41, "{names:?}");
        assert_eq!(names[0], "CAP_CHOWN");
        for name in &names {
            assert_eq!(&parse_capability(name).unwrap().to_string(), name);
        }
    }

    #[test]
    fn ambient_needs_permitted_and_inheritable() {
        let chown = 1u64 << 0;
        let kill = 1u64 << 5;
        let plan = CapabilityPlan::from_masks(
            [chown | kill, chown, chown, chown | kill, chown | kill],
            40,
        );
        assert_eq!(plan.ambient, chown);
    }

    #[test]
    fn caps_past_the_kernel_are_skipped() {
        let plan = CapabilityPlan::from_masks([u64::MAX, 0, 0, 0, 0], 35);
        assert_eq!(plan.bounding, (1 << 36) - 1);
    }

    #[test]
    fn spec_sets_map_to_masks() {
        let spec: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_NET_RAW"],
            "effective": ["CAP_NET_RAW"],
            "permitted": ["CAP_NET_RAW"],
            "inheritable": ["CAP_NET_RAW"],
            "ambient": ["CAP_NET_RAW"]
        }))
        .unwrap();
        let plan = CapabilityPlan::from_spec(&spec).unwrap();
        assert_eq!(plan.bounding, 1 | (1 << 13));
        assert_eq!(plan.ambient, 1 << 13);
        assert_eq!(
            CapabilityPlan::names(plan.bounding),
            ["CAP_CHOWN", "CAP_NET_RAW"]
        );
    }

    #[test]
    fn validate_raw_reports_types_and_names() {
        let ok = serde_json::json!({"process": {"capabilities": {"effective": ["CAP_KILL"]}}});
        validate_raw(&ok).unwrap();
        let bad = serde_json::json!({"process": {"capabilities": {"effective": "CAP_KILL"}}});
        assert_eq!(
            validate_raw(&bad).unwrap_err().to_string(),
            "process.capabilities.effective: must be a list of capability names"
        );
    }
}
