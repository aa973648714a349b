//! `linux.cgroupsPath` resolution.
//!
//! - absent: `/berth/<id>` from the hierarchy root;
//! - absolute: taken as is, from the hierarchy root;
//! - relative: runc's convention: under the caller's own cgroup on v1, and
//!   under the parent of the caller's cgroup on v2 (the caller's own v2
//!   cgroup holds processes, so it could not enable controllers for a child).
//!
//! `..` components and systemd's `slice:prefix:name` form are refused.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{CgroupError, Result};

/// Field name used in errors.
pub const FIELD: &str = "linux.cgroupsPath";

/// The default parent of containers without a `cgroupsPath`.
pub const DEFAULT_PARENT: &str = "/berth";

/// A validated `cgroupsPath`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupPath {
    /// From the hierarchy root.
    Absolute(PathBuf),
    /// From the caller's cgroup (v1) or its parent (v2).
    Relative(PathBuf),
}

impl CgroupPath {
    /// Validate `cgroupsPath` of container `id`.
    pub fn parse(cgroups_path: Option<&Path>, id: &str) -> Result<Self> {
        let Some(path) = cgroups_path.filter(|p| !p.as_os_str().is_empty()) else {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(CgroupError::invalid(
                    "id",
                    format!("{id:?} cannot name a cgroup"),
                ));
            }
            return Ok(Self::Absolute(Path::new(DEFAULT_PARENT).join(id)));
        };
        let text = path.to_string_lossy();
        if !text.starts_with('/') && text.matches(':').count() == 2 {
            return Err(CgroupError::invalid(
                FIELD,
                format!("{text:?} is a systemd slice:prefix:name path; berth uses the cgroupfs driver, give a path"),
            ));
        }
        let mut clean = PathBuf::new();
        for comp in path.components() {
            match comp {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(c) => clean.push(c),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(CgroupError::invalid(
                        FIELD,
                        format!("{text:?} must not contain '..'"),
                    ))
                }
            }
        }
        if path.is_absolute() {
            Ok(Self::Absolute(Path::new("/").join(clean)))
        } else if clean.as_os_str().is_empty() {
            Err(CgroupError::invalid(
                FIELD,
                format!("{text:?} names no cgroup"),
            ))
        } else {
            Ok(Self::Relative(clean))
        }
    }

    /// The cgroup path from the hierarchy root, given the caller's own
    /// cgroup in that hierarchy.
    pub fn in_hierarchy(&self, own: Option<&Path>, unified: bool) -> PathBuf {
        match self {
            Self::Absolute(p) => p.clone(),
            Self::Relative(rel) => {
                let own = own.unwrap_or(Path::new("/"));
                let base = if unified {
                    own.parent().unwrap_or(Path::new("/"))
                } else {
                    own
                };
                base.join(rel)
            }
        }
    }
}

/// The directory of cgroup `cgroup` (a path from the hierarchy root as
/// `/proc/self/cgroup` shows it) in a hierarchy mounted at `mount_point`
/// whose mount shows cgroup `mount_root`.
pub fn cgroup_dir(mount_point: &Path, mount_root: &Path, cgroup: &Path) -> PathBuf {
    let rel = cgroup
        .strip_prefix(mount_root)
        .or_else(|_| cgroup.strip_prefix("/"))
        .unwrap_or(cgroup);
    mount_point.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn absent_path_uses_default_parent() {
        let c = CgroupPath::parse(None, "ctr1").unwrap();
        assert_eq!(c, CgroupPath::Absolute(p("/berth/ctr1")));
        let c = CgroupPath::parse(Some(Path::new("")), "ctr1").unwrap();
        assert_eq!(c, CgroupPath::Absolute(p("/berth/ctr1")));
    }

    #[test]
    fn absolute_path_is_kept_and_cleaned() {
        let c = CgroupPath::parse(Some(Path::new("/a//b/./c")), "x").unwrap();
        assert_eq!(c, CgroupPath::Absolute(p("/a/b/c")));
        assert_eq!(c.in_hierarchy(Some(Path::new("/own")), false), p("/a/b/c"));
    }

    #[test]
    fn relative_path_follows_runc() {
        let c = CgroupPath::parse(Some(Path::new("pod/ctr")), "x").unwrap();
        assert_eq!(c, CgroupPath::Relative(p("pod/ctr")));
        // v1: under our own cgroup.
        assert_eq!(
            c.in_hierarchy(Some(Path::new("/process_api/e6")), false),
            p("/process_api/e6/pod/ctr")
        );
        // v2: under the parent of our own cgroup.
        assert_eq!(
            c.in_hierarchy(Some(Path::new("/user.slice/s.scope")), true),
            p("/user.slice/pod/ctr")
        );
        assert_eq!(c.in_hierarchy(Some(Path::new("/")), true), p("/pod/ctr"));
        assert_eq!(c.in_hierarchy(None, false), p("/pod/ctr"));
    }

    #[test]
    fn bad_paths_name_the_field() {
        for bad in ["/a/../b", "../x", "system.slice:docker:abc", "."] {
            let err = CgroupPath::parse(Some(Path::new(bad)), "x").unwrap_err();
            assert!(
                err.to_string().starts_with("linux.cgroupsPath:"),
                "{bad}: {err}"
            );
        }
        let err = CgroupPath::parse(None, "a/b").unwrap_err();
        assert!(err.to_string().starts_with("id:"), "{err}");
    }

    #[test]
    fn dir_in_mount() {
        assert_eq!(
            cgroup_dir(
                Path::new("/sys/fs/cgroup/memory"),
                Path::new("/"),
                Path::new("/a/b")
            ),
            p("/sys/fs/cgroup/memory/a/b")
        );
        // A mount showing a sub-cgroup (cgroup namespace, bind mount).
        assert_eq!(
            cgroup_dir(
                Path::new("/mnt"),
                Path::new("/docker/x"),
                Path::new("/docker/x/c")
            ),
            p("/mnt/c")
        );
    }
}
