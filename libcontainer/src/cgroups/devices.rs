//! Device access rules (`linux.resources.devices`), validated once and then
//! written as v1 allow/deny lists or compiled into a v2 eBPF program.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use serde::{Deserialize, Serialize};

use super::error::{CgroupError, Result};

/// Device class a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// Every device (`a`).
    All,
    /// Block devices (`b`).
    Block,
    /// Character devices (`c`).
    Char,
}

impl DeviceKind {
    /// The letter the kernel uses.
    pub fn letter(self) -> char {
        match self {
            Self::All => 'a',
            Self::Block => 'b',
            Self::Char => 'c',
        }
    }
}

/// Read/write/mknod bits.
pub const ACCESS_MKNOD: u32 = 1;
/// Read access.
pub const ACCESS_READ: u32 = 2;
/// Write access.
pub const ACCESS_WRITE: u32 = 4;

/// One validated rule. `None` major/minor means any (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// Device class.
    pub kind: DeviceKind,
    /// Major number, `None` for any.
    pub major: Option<u32>,
    /// Minor number, `None` for any.
    pub minor: Option<u32>,
    /// Access bits ([`ACCESS_READ`] | [`ACCESS_WRITE`] | [`ACCESS_MKNOD`]).
    pub access: u32,
}

impl DeviceRule {
    /// An allow rule.
    pub fn allow(kind: DeviceKind, major: Option<u32>, minor: Option<u32>, access: &str) -> Self {
        Self {
            allow: true,
            kind,
            major,
            minor,
            access: parse_access("", access).unwrap_or(ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD),
        }
    }

    /// Validate one spec rule; `index` is its position for error messages.
    pub fn from_spec(index: usize, rule: &LinuxDeviceCgroup) -> Result<Self> {
        let field = format!("linux.resources.devices[{index}]");
        let kind = match rule.typ() {
            None | Some(LinuxDeviceType::A) => DeviceKind::All,
            Some(LinuxDeviceType::B) => DeviceKind::Block,
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DeviceKind::Char,
            Some(LinuxDeviceType::P) => {
                return Err(CgroupError::invalid(
                    format!("{field}.type"),
                    "\"p\" (fifo) cannot be used in a device cgroup rule; use a, b or c",
                ))
            }
        };
        let num = |v: Option<i64>, name: &str| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                    CgroupError::invalid(
                        format!("{field}.{name}"),
                        format!("{n} is not a device number"),
                    )
                }),
            }
        };
        let access = match rule.access() {
            None => ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD,
            Some(a) if a.is_empty() => ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD,
            Some(a) => parse_access(&format!("{field}.access"), a)?,
        };
        Ok(Self {
            allow: rule.allow(),
            kind,
            major: num(rule.major(), "major")?,
            minor: num(rule.minor(), "minor")?,
            access,
        })
    }

    /// The `type major:minor access` line v1's devices.allow/deny take.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<u32>| v.map_or_else(|| "*".to_string(), |v| v.to_string());
        if self.kind == DeviceKind::All && self.major.is_none() && self.minor.is_none() {
            return "a".to_string();
        }
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            n(self.major),
            n(self.minor),
            access_string(self.access)
        )
    }
}

fn parse_access(field: &str, text: &str) -> Result<u32> {
    let mut bits = 0;
    for c in text.chars() {
        bits |= match c {
            'r' => ACCESS_READ,
            'w' => ACCESS_WRITE,
            'm' => ACCESS_MKNOD,
            _ => {
                return Err(CgroupError::invalid(
                    field,
                    format!("{text:?}: access may only contain r, w and m"),
                ))
            }
        };
    }
    Ok(bits)
}

fn access_string(bits: u32) -> String {
    let mut s = String::new();
    if bits & ACCESS_READ != 0 {
        s.push('r');
    }
    if bits & ACCESS_WRITE != 0 {
        s.push('w');
    }
    if bits & ACCESS_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// The devices every container gets, as runc allows them: mknod of any
/// device, and null, zero, full, random, urandom, tty, console, ptmx,
/// pts/* and net/tun.
pub fn default_rules() -> Vec<DeviceRule> {
    use DeviceKind::{Block, Char};
    let c = |maj, min: Option<u32>| DeviceRule::allow(Char, Some(maj), min, "rwm");
    vec![
        DeviceRule::allow(Char, None, None, "m"),
        DeviceRule::allow(Block, None, None, "m"),
        c(1, Some(3)),
        c(1, Some(5)),
        c(1, Some(7)),
        c(1, Some(8)),
        c(1, Some(9)),
        c(5, Some(0)),
        c(5, Some(1)),
        c(5, Some(2)),
        c(136, None),
        c(10, Some(200)),
    ]
}

/// The full rule list for a container, in the order they take effect (the
/// last matching rule wins): deny everything, the defaults, the devices the
/// spec creates (`linux.devices`), then `linux.resources.devices`.
pub fn container_rules(
    resources: Option<&[LinuxDeviceCgroup]>,
    created: Option<&[LinuxDevice]>,
) -> Result<Vec<DeviceRule>> {
    let mut rules = vec![DeviceRule {
        allow: false,
        kind: DeviceKind::All,
        major: None,
        minor: None,
        access: ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD,
    }];
    rules.extend(default_rules());
    for (i, d) in created.unwrap_or_default().iter().enumerate() {
        let kind = match d.typ() {
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            // FIFOs are not subject to the device cgroup.
            LinuxDeviceType::P => continue,
            LinuxDeviceType::A => {
                return Err(CgroupError::invalid(
                    format!("linux.devices[{i}].type"),
                    "\"a\" is not a device type",
                ))
            }
        };
        let num = |v: i64, name: &str| {
            u32::try_from(v).map_err(|_| {
                CgroupError::invalid(
                    format!("linux.devices[{i}].{name}"),
                    format!("{v} is not a device number"),
                )
            })
        };
        rules.push(DeviceRule::allow(
            kind,
            Some(num(d.major(), "major")?),
            Some(num(d.minor(), "minor")?),
            "rwm",
        ));
    }
    for (i, r) in resources.unwrap_or_default().iter().enumerate() {
        rules.push(DeviceRule::from_spec(i, r)?);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn spec_rules_become_v1_lines() {
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        let rule = DeviceRule::from_spec(0, &r).unwrap();
        assert_eq!(rule.v1_line(), "c 1:3 rw");
        let all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(DeviceRule::from_spec(0, &all).unwrap().v1_line(), "a");
        let wild = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .major(8)
            .access("m")
            .build()
            .unwrap();
        assert_eq!(
            DeviceRule::from_spec(0, &wild).unwrap().v1_line(),
            "b 8:* m"
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwx")
            .build()
            .unwrap();
        let e = DeviceRule::from_spec(2, &r).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.devices[2].access:"),
            "{e}"
        );
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        let e = DeviceRule::from_spec(0, &r).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.devices[0].type:"),
            "{e}"
        );
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .major(-5)
            .build()
            .unwrap();
        let e = DeviceRule::from_spec(1, &r).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.devices[1].major:"),
            "{e}"
        );
    }

    #[test]
    fn container_rules_start_with_deny_all() {
        let rules = container_rules(None, None).unwrap();
        assert_eq!(rules[0].v1_line(), "a");
        assert!(!rules[0].allow);
        assert!(rules.iter().any(|r| r.v1_line() == "c 1:3 rwm"));
        assert!(rules.iter().any(|r| r.v1_line() == "c 136:* rwm"));
    }
}
