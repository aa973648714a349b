//! Run-time detection of the host's cgroup layout: pure v1, pure v2, or
//! hybrid (v1 controllers plus a cgroup2 mount, as systemd's hybrid mode and
//! this project's test machine have).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{CgroupError, Result};
use super::fs::{CgroupFs, FsExt};

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies.
    V1,
    /// Only the unified (v2) hierarchy.
    V2,
    /// v1 controller hierarchies and a cgroup2 mount; each controller is
    /// used where it is bound.
    Hybrid,
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "cgroup v1 host",
            Self::V2 => "cgroup v2 host",
            Self::Hybrid => "hybrid cgroup host",
        })
    }
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Mount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// The cgroup the mount shows as its root (`/` unless bind-mounted or
    /// seen from a cgroup namespace).
    pub root: PathBuf,
    /// Controllers bound to it (`cpu`, `cpuacct`, or `name=systemd` for a
    /// named hierarchy).
    pub controllers: Vec<String>,
}

/// The mounted unified (v2) hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnifiedMount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup` or `/sys/fs/cgroup/unified`.
    pub mount_point: PathBuf,
    /// The cgroup the mount shows as its root.
    pub root: PathBuf,
    /// Controllers usable in it (its root's `cgroup.controllers`): on a
    /// hybrid host only those not bound to v1.
    pub controllers: BTreeSet<String>,
}

/// The host's cgroup hierarchies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchies {
    /// v1 hierarchies, keyed by controller (a co-mounted hierarchy appears
    /// once per controller).
    pub v1: BTreeMap<String, V1Mount>,
    /// The unified hierarchy, if mounted.
    pub unified: Option<UnifiedMount>,
}

/// Super options of a v1 mount that are not controller names.
const NON_CONTROLLER_OPTS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// One cgroup line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMountLine {
    /// The root of the mount within the hierarchy (field 4).
    pub root: PathBuf,
    /// The mount point (field 5).
    pub mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fs_type: String,
    /// The super block options (after the separator).
    pub super_opts: String,
}

/// Unescape the octal escapes (`\040` …) mountinfo uses in paths.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse the cgroup and cgroup2 mounts out of mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMountLine> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split_whitespace().collect();
            let mut post = post.split_whitespace();
            let fs_type = post.next()?;
            if fs_type != "cgroup" && fs_type != "cgroup2" {
                return None;
            }
            let _source = post.next()?;
            let super_opts = post.next().unwrap_or("").to_string();
            Some(CgroupMountLine {
                root: PathBuf::from(unescape(pre.get(3)?)),
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                fs_type: fs_type.to_string(),
                super_opts,
            })
        })
        .collect()
}

fn v1_controllers(super_opts: &str) -> Vec<String> {
    super_opts
        .split(',')
        .filter(|o| !NON_CONTROLLER_OPTS.contains(o))
        .filter(|o| !o.contains('=') || o.starts_with("name="))
        .map(str::to_string)
        .collect()
}

impl Hierarchies {
    /// Build from mountinfo text; `unified_controllers` is the content of
    /// the unified root's `cgroup.controllers` (if there is a cgroup2 mount).
    pub fn from_mountinfo(mountinfo: &str, unified_controllers: Option<&str>) -> Result<Self> {
        let mut v1: BTreeMap<String, V1Mount> = BTreeMap::new();
        let mut unified = None;
        for m in parse_mountinfo(mountinfo) {
            if m.fs_type == "cgroup2" {
                // Prefer the first mount showing the whole hierarchy.
                let better = match &unified {
                    None => true,
                    Some(UnifiedMount { root, .. }) => {
                        root != Path::new("/") && m.root == Path::new("/")
                    }
                };
                if better {
                    unified = Some(UnifiedMount {
                        mount_point: m.mount_point,
                        root: m.root,
                        controllers: BTreeSet::new(),
                    });
                }
                continue;
            }
            let controllers = v1_controllers(&m.super_opts);
            for c in &controllers {
                let replace = match v1.get(c) {
                    None => true,
                    Some(old) => old.root != Path::new("/") && m.root == Path::new("/"),
                };
                if replace {
                    v1.insert(
                        c.clone(),
                        V1Mount {
                            mount_point: m.mount_point.clone(),
                            root: m.root.clone(),
                            controllers: controllers.clone(),
                        },
                    );
                }
            }
        }
        if let (Some(u), Some(text)) = (unified.as_mut(), unified_controllers) {
            u.controllers = text.split_whitespace().map(str::to_string).collect();
        }
        if v1.is_empty() && unified.is_none() {
            return Err(CgroupError::NoHierarchy(
                "no cgroup or cgroup2 mount in /proc/self/mountinfo".into(),
            ));
        }
        Ok(Self { v1, unified })
    }

    /// Detect the layout of the running host.
    pub fn detect(fs: &dyn CgroupFs) -> Result<Self> {
        let mountinfo = fs.read_file(Path::new("/proc/self/mountinfo"))?;
        // Find the cgroup2 mount first to read its controllers.
        let first_pass = Self::from_mountinfo(&mountinfo, None)?;
        let controllers = match &first_pass.unified {
            Some(u) => Some(fs.read_file(&u.mount_point.join("cgroup.controllers"))?),
            None => None,
        };
        Self::from_mountinfo(&mountinfo, controllers.as_deref())
    }

    /// The layout: v2 when no v1 controller is mounted, v1 when there is no
    /// cgroup2 mount, hybrid otherwise.
    pub fn mode(&self) -> CgroupMode {
        let real_v1 = self.v1.keys().any(|c| !c.starts_with("name="));
        match (real_v1, &self.unified) {
            (false, Some(_)) => CgroupMode::V2,
            (_, None) => CgroupMode::V1,
            (true, Some(_)) => CgroupMode::Hybrid,
        }
    }

    /// Where a controller lives: `Some(true)` for v1, `Some(false)` for the
    /// unified hierarchy, `None` if nowhere. v1 wins when both could serve.
    pub fn placement(&self, controller: &str) -> Option<Placement> {
        if self.v1.contains_key(controller) {
            return Some(Placement::V1);
        }
        match &self.unified {
            Some(u) if u.controllers.contains(controller) => Some(Placement::V2),
            _ => None,
        }
    }
}

/// Which hierarchy serves a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// A v1 hierarchy.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The calling process's cgroups, from `/proc/self/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnCgroups {
    /// v1 controller (or `name=…`) → cgroup path.
    pub v1: BTreeMap<String, PathBuf>,
    /// The unified hierarchy's cgroup path (the `0::` line).
    pub unified: Option<PathBuf>,
}

impl OwnCgroups {
    /// Parse `/proc/<pid>/cgroup` text.
    pub fn parse(text: &str) -> Self {
        let mut own = Self::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own.unified = Some(PathBuf::from(path));
            } else {
                for c in ctrls.split(',') {
                    own.v1.insert(c.to_string(), PathBuf::from(path));
                }
            }
        }
        own
    }

    /// Read the calling process's cgroups.
    pub fn read(fs: &dyn CgroupFs) -> Result<Self> {
        Ok(Self::parse(&fs.read_file(Path::new("/proc/self/cgroup"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_is_detected() {
        let h = Hierarchies::from_mountinfo(HYBRID_MOUNTINFO, Some("hugetlb\n")).unwrap();
        assert_eq!(h.mode(), CgroupMode::Hybrid);
        assert_eq!(h.placement("memory"), Some(Placement::V1));
        assert_eq!(h.placement("hugetlb"), Some(Placement::V2));
        assert_eq!(h.placement("net_cls"), None);
        assert_eq!(
            h.v1["memory"].mount_point,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert!(h.v1.contains_key("name=systemd"));
        let u = h.unified.unwrap();
        assert_eq!(u.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(u.controllers.iter().collect::<Vec<_>>(), ["hugetlb"]);
    }

    #[test]
    fn pure_v2_host_is_detected() {
        let mi = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let h =
            Hierarchies::from_mountinfo(mi, Some("cpuset cpu io memory hugetlb pids rdma misc"))
                .unwrap();
        assert_eq!(h.mode(), CgroupMode::V2);
        assert_eq!(h.placement("memory"), Some(Placement::V2));
        assert_eq!(h.placement("devices"), None);
    }

    #[test]
    fn v1_with_comounted_controllers() {
        let mi = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
27 20 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/lib/systemd/agent,name=systemd
";
        let h = Hierarchies::from_mountinfo(mi, None).unwrap();
        assert_eq!(h.mode(), CgroupMode::V1);
        assert_eq!(h.v1["cpu"], h.v1["cpuacct"]);
        assert_eq!(h.v1["cpu"].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h.v1["name=systemd"].controllers, ["name=systemd"]);
        assert!(!h.v1.contains_key("xattr"));
    }

    #[test]
    fn bind_mount_of_subtree_loses_to_full_mount() {
        let mi = "\
50 20 0:32 /docker/abc /mnt/mem rw - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let h = Hierarchies::from_mountinfo(mi, None).unwrap();
        assert_eq!(
            h.v1["memory"].mount_point,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let err =
            Hierarchies::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n", None).unwrap_err();
        assert!(err.to_string().contains("no cgroup"), "{err}");
    }

    #[test]
    fn escaped_mount_points() {
        let mi = "41 31 0:38 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchies::from_mountinfo(mi, Some("")).unwrap();
        assert_eq!(h.unified.unwrap().mount_point, PathBuf::from("/mnt/my cg"));
    }

    #[test]
    fn own_cgroups_parse() {
        let own = OwnCgroups::parse(
            "9:name=systemd:/\n4:memory:/process_api/e6\n2:cpu,cpuacct:/a\n0::/user.slice/x.scope\n",
        );
        assert_eq!(own.v1["memory"], PathBuf::from("/process_api/e6"));
        assert_eq!(own.v1["cpuacct"], PathBuf::from("/a"));
        assert_eq!(own.v1["name=systemd"], PathBuf::from("/"));
        assert_eq!(own.unified, Some(PathBuf::from("/user.slice/x.scope")));
    }

    #[test]
    fn detect_reads_through_fs() {
        let fs = super::super::fs::MemFs::new();
        fs.set("/proc/self/mountinfo", HYBRID_MOUNTINFO);
        fs.set("/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
        let h = Hierarchies::detect(&fs).unwrap();
        assert_eq!(h.mode(), CgroupMode::Hybrid);
        assert!(h.unified.unwrap().controllers.contains("hugetlb"));
    }
}
