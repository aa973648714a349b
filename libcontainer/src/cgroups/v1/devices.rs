//! v1 devices. A fresh cgroup (or one allowing everything) gets "deny all"
//! and the rules replayed in order; a cgroup that already denies by
//! default is moved to the new exception list with only the differences
//! written, so `update` never briefly denies a device the container keeps
//! (runc avoids that window the same way).

use std::collections::BTreeMap;

use crate::cgroups::devices::{DeviceKind, DeviceRule, ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE};
use crate::cgroups::dir::Dir;
use crate::cgroups::error::Result;

const ALL: u32 = ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD;

/// An exception: type letter, major, minor (`None` = `*`).
type Key = (char, Option<u32>, Option<u32>);

fn is_catch_all(r: &DeviceRule) -> bool {
    r.kind == DeviceKind::All && r.major.is_none() && r.minor.is_none()
}

/// The exception list the kernel ends with after the rules, if they leave
/// the cgroup denying by default (`None` when they end allowing all).
pub(crate) fn emulate(rules: &[DeviceRule]) -> Option<BTreeMap<Key, u32>> {
    let mut default_allow = true;
    let mut ex: BTreeMap<Key, u32> = BTreeMap::new();
    for r in rules {
        if is_catch_all(r) && r.access == ALL {
            default_allow = r.allow;
            ex.clear();
            continue;
        }
        if default_allow {
            // Deny-exceptions on an allow-all cgroup: not worth emulating.
            return None;
        }
        let key = (r.kind.letter(), r.major, r.minor);
        if r.allow {
            *ex.entry(key).or_insert(0) |= r.access;
        } else if let Some(bits) = ex.get_mut(&key) {
            *bits &= !r.access;
            if *bits == 0 {
                ex.remove(&key);
            }
        }
    }
    (!default_allow).then_some(ex)
}

/// Parse devices.list; `None` when it allows everything.
pub(crate) fn parse_list(text: &str) -> Option<BTreeMap<Key, u32>> {
    let mut ex = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(t), Some(nums), Some(acc)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if t == "a" {
            return None;
        }
        let (maj, min) = nums.split_once(':')?;
        let num = |s: &str| {
            if s == "*" {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        let bits = acc.chars().fold(0, |b, c| {
            b | match c {
                'r' => ACCESS_READ,
                'w' => ACCESS_WRITE,
                'm' => ACCESS_MKNOD,
                _ => 0,
            }
        });
        ex.insert((t.chars().next()?, num(maj)?, num(min)?), bits);
    }
    Some(ex)
}

fn line(key: &Key, bits: u32) -> String {
    let n = |v: Option<u32>| v.map_or_else(|| "*".to_string(), |v| v.to_string());
    let mut acc = String::new();
    for (bit, c) in [(ACCESS_READ, 'r'), (ACCESS_WRITE, 'w'), (ACCESS_MKNOD, 'm')] {
        if bits & bit != 0 {
            acc.push(c);
        }
    }
    format!("{} {}:{} {acc}", key.0, n(key.1), n(key.2))
}

pub(crate) fn apply(dir: Dir<'_>, rules: &[DeviceRule]) -> Result<()> {
    let current = dir.read("devices.list").ok().and_then(|t| parse_list(&t));
    if let (Some(cur), Some(target)) = (current, emulate(rules)) {
        // Take away first, then grant: never more than either list allows.
        for (k, bits) in &cur {
            let extra = bits & !target.get(k).copied().unwrap_or(0);
            if extra != 0 {
                dir.write("devices.deny", line(k, extra))?;
            }
        }
        for (k, bits) in &target {
            let missing = bits & !cur.get(k).copied().unwrap_or(0);
            if missing != 0 {
                dir.write("devices.allow", line(k, missing))?;
            }
        }
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::container_rules;
    use crate::cgroups::fs::MemFs;
    use std::path::Path;

    #[test]
    fn emulation_follows_kernel_rules() {
        let rules = container_rules(None, None).unwrap();
        let ex = emulate(&rules).unwrap();
        assert_eq!(ex[&('c', Some(1), Some(3))], ALL);
        assert_eq!(ex[&('c', None, None)], ACCESS_MKNOD);
        let mut more = rules.clone();
        more.push(DeviceRule {
            allow: false,
            kind: DeviceKind::Char,
            major: Some(1),
            minor: Some(3),
            access: ACCESS_WRITE,
        });
        assert_eq!(
            emulate(&more).unwrap()[&('c', Some(1), Some(3))],
            ACCESS_READ | ACCESS_MKNOD
        );
        more.push(DeviceRule::allow(DeviceKind::All, None, None, "rwm"));
        assert!(emulate(&more).is_none(), "ends allowing all");
    }

    #[test]
    fn list_round_trips() {
        let text = "c 1:3 rwm\nc 136:* rwm\nb *:* m\n";
        let ex = parse_list(text).unwrap();
        let lines: Vec<String> = ex.iter().map(|(k, b)| line(k, *b)).collect();
        assert_eq!(lines, ["b *:* m", "c 1:3 rwm", "c 136:* rwm"]);
        assert!(parse_list("a *:* rwm\n").is_none());
    }

    #[test]
    fn update_writes_only_the_difference() {
        let fs = MemFs::new();
        let d = Path::new("/cg/devices/c");
        fs.set(
            d.join("devices.list"),
            "c 1:3 rwm\nc 1:5 rwm\nc 10:200 rwm\n",
        );
        let mut rules = vec![DeviceRule {
            allow: false,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: ALL,
        }];
        rules.push(DeviceRule::allow(DeviceKind::Char, Some(1), Some(3), "rwm"));
        rules.push(DeviceRule::allow(DeviceKind::Char, Some(1), Some(5), "r"));
        rules.push(DeviceRule::allow(DeviceKind::Block, Some(8), Some(0), "r"));
        apply(Dir::new(&fs, d), &rules).unwrap();
        assert_eq!(
            fs.writes_under(d),
            [
                ("devices.deny".to_string(), "c 1:5 wm".to_string()),
                ("devices.deny".into(), "c 10:200 rwm".into()),
                ("devices.allow".into(), "b 8:0 r".into()),
            ]
        );
    }
}
