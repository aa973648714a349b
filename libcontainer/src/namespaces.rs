//! Linux namespaces: which ones a container gets new, which ones it joins
//! by path, and the checks on those paths (the file must be a namespace of
//! the declared type).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// Errors in `linux.namespaces` and the id mappings.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// The same namespace type is listed twice.
    #[error("linux.namespaces: {0} is listed more than once")]
    Duplicate(&'static str),
    /// A namespace path is relative.
    #[error("linux.namespaces[{kind}].path {path:?}: must be an absolute path")]
    RelativePath {
        /// Namespace type.
        kind: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// A namespace path could not be opened.
    #[error("linux.namespaces[{kind}].path {path:?}: {source}")]
    Open {
        /// Namespace type.
        kind: &'static str,
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a namespace at all.
    #[error("linux.namespaces[{kind}].path {path:?}: not a namespace file")]
    NotNamespace {
        /// Namespace type.
        kind: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// The file is a namespace of another type.
    #[error("linux.namespaces[{kind}].path {path:?}: is a {actual} namespace, not {kind}")]
    TypeMismatch {
        /// Namespace type asked for.
        kind: &'static str,
        /// The path given.
        path: PathBuf,
        /// The type it really is.
        actual: &'static str,
    },
    /// Mappings are given without a user namespace.
    #[error("linux.uidMappings/gidMappings are set but linux.namespaces has no user namespace")]
    MappingsWithoutUserns,
    /// A new user namespace needs mappings.
    #[error("a new user namespace needs linux.uidMappings and linux.gidMappings")]
    UsernsWithoutMappings,
    /// A mapping has size 0.
    #[error("linux.{0}: a mapping has size 0")]
    EmptyMapping(&'static str),
}

/// One namespace kind, with its clone flag and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsKind {
    /// The CLONE_NEW* flag.
    pub flag: libc::c_int,
    /// The name in config.json (`network` for net).
    pub name: &'static str,
    /// The file name under /proc/PID/ns.
    pub proc_name: &'static str,
}

/// Every namespace kind, in the order they are joined (user first, mount last).
pub const KINDS: [NsKind; 8] = [
    NsKind {
        flag: libc::CLONE_NEWUSER,
        name: "user",
        proc_name: "user",
    },
    NsKind {
        flag: libc::CLONE_NEWPID,
        name: "pid",
        proc_name: "pid",
    },
    NsKind {
        flag: libc::CLONE_NEWNET,
        name: "network",
        proc_name: "net",
    },
    NsKind {
        flag: libc::CLONE_NEWIPC,
        name: "ipc",
        proc_name: "ipc",
    },
    NsKind {
        flag: libc::CLONE_NEWUTS,
        name: "uts",
        proc_name: "uts",
    },
    NsKind {
        flag: libc::CLONE_NEWCGROUP,
        name: "cgroup",
        proc_name: "cgroup",
    },
    NsKind {
        flag: libc::CLONE_NEWTIME,
        name: "time",
        proc_name: "time",
    },
    NsKind {
        flag: libc::CLONE_NEWNS,
        name: "mount",
        proc_name: "mnt",
    },
];

/// The kind for a CLONE_NEW* flag.
pub fn kind_of_flag(flag: libc::c_int) -> Option<NsKind> {
    KINDS.iter().copied().find(|k| k.flag == flag)
}

fn kind_of(t: LinuxNamespaceType) -> NsKind {
    let flag = match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    };
    kind_of_flag(flag).unwrap_or(KINDS[0])
}

/// An existing namespace to join, already opened and type-checked.
#[derive(Debug)]
pub struct NsJoin {
    /// The kind.
    pub kind: NsKind,
    /// The path from config.json.
    pub path: PathBuf,
    /// The open namespace file.
    pub fd: OwnedFd,
}

/// One line of uid_map/gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// First id inside the namespace.
    pub container_id: u32,
    /// First id outside.
    pub host_id: u32,
    /// How many.
    pub size: u32,
}

/// What the container does with namespaces: plain data, built before fork.
#[derive(Debug, Default)]
pub struct NamespacePlan {
    /// CLONE_NEW* flags of namespaces created new.
    pub new_flags: libc::c_int,
    /// Namespaces joined by path, in join order (user first).
    pub joins: Vec<NsJoin>,
    /// uid_map lines for a new user namespace.
    pub uid_map: Vec<IdMap>,
    /// gid_map lines for a new user namespace.
    pub gid_map: Vec<IdMap>,
}

impl NamespacePlan {
    /// True when a namespace of `flag` is created new.
    pub fn is_new(&self, flag: libc::c_int) -> bool {
        self.new_flags & flag != 0
    }

    /// True when the container has a namespace of `flag`, new or joined.
    pub fn has(&self, flag: libc::c_int) -> bool {
        self.is_new(flag) || self.joins.iter().any(|j| j.kind.flag == flag)
    }

    /// The joined namespace of `flag`, if any.
    pub fn joined(&self, flag: libc::c_int) -> Option<&NsJoin> {
        self.joins.iter().find(|j| j.kind.flag == flag)
    }

    /// Build from the spec: validate and open every `path`.
    pub fn from_spec(spec: &Spec) -> Result<Self, NamespaceError> {
        let mut plan = Self::default();
        let Some(linux) = spec.linux() else {
            return Ok(plan);
        };
        let mut seen = 0;
        for ns in linux.namespaces().iter().flatten() {
            let kind = kind_of(ns.typ());
            if seen & kind.flag != 0 {
                return Err(NamespaceError::Duplicate(kind.name));
            }
            seen |= kind.flag;
            match ns.path() {
                None => plan.new_flags |= kind.flag,
                Some(path) if path.as_os_str().is_empty() => plan.new_flags |= kind.flag,
                Some(path) => plan.joins.push(open_namespace(kind, path.clone())?),
            }
        }
        plan.joins
            .sort_by_key(|j| KINDS.iter().position(|k| k.flag == j.kind.flag));
        let maps = |m: &Option<Vec<LinuxIdMapping>>, field| -> Result<Vec<IdMap>, NamespaceError> {
            m.iter()
                .flatten()
                .map(|m| {
                    if m.size() == 0 {
                        return Err(NamespaceError::EmptyMapping(field));
                    }
                    Ok(IdMap {
                        container_id: m.container_id(),
                        host_id: m.host_id(),
                        size: m.size(),
                    })
                })
                .collect()
        };
        plan.uid_map = maps(linux.uid_mappings(), "uidMappings")?;
        plan.gid_map = maps(linux.gid_mappings(), "gidMappings")?;
        let has_maps = !plan.uid_map.is_empty() || !plan.gid_map.is_empty();
        if plan.is_new(libc::CLONE_NEWUSER) {
            if plan.uid_map.is_empty() || plan.gid_map.is_empty() {
                return Err(NamespaceError::UsernsWithoutMappings);
            }
        } else if has_maps && !plan.has(libc::CLONE_NEWUSER) {
            return Err(NamespaceError::MappingsWithoutUserns);
        }
        Ok(plan)
    }
}

/// `ioctl(fd, NS_GET_NSTYPE)`: _IO(0xb7, 0x3).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Open a namespace file and check that it is a namespace of `kind`.
pub fn open_namespace(kind: NsKind, path: PathBuf) -> Result<NsJoin, NamespaceError> {
    if !path.is_absolute() {
        return Err(NamespaceError::RelativePath {
            kind: kind.name,
            path,
        });
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| NamespaceError::Open {
            kind: kind.name,
            path: path.clone(),
            source,
        })?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let actual = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if actual < 0 {
        return Err(NamespaceError::NotNamespace {
            kind: kind.name,
            path,
        });
    }
    if actual != kind.flag {
        let actual = kind_of_flag(actual).map_or("unknown", |k| k.name);
        return Err(NamespaceError::TypeMismatch {
            kind: kind.name,
            path,
            actual,
        });
    }
    Ok(NsJoin {
        kind,
        path,
        fd: file.into(),
    })
}

/// Text of a uid_map/gid_map file.
pub fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// `/proc/self/ns/<name>` as a C string.
pub fn self_ns_path(proc_name: &str) -> CString {
    CString::new(format!("/proc/self/ns/{proc_name}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder, SpecBuilder,
    };

    fn spec(ns: Vec<(LinuxNamespaceType, Option<&str>)>) -> Spec {
        let namespaces: Vec<_> = ns
            .into_iter()
            .map(|(t, p)| {
                let b = LinuxNamespaceBuilder::default().typ(t);
                match p {
                    Some(p) => b.path(p).build().unwrap(),
                    None => b.build().unwrap(),
                }
            })
            .collect();
        SpecBuilder::default()
            .linux(
                LinuxBuilder::default()
                    .namespaces(namespaces)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn new_namespaces_become_flags() {
        let plan = NamespacePlan::from_spec(&spec(vec![
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Mount, None),
        ]))
        .unwrap();
        assert_eq!(plan.new_flags, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        assert!(plan.joins.is_empty());
    }

    #[test]
    fn duplicate_is_an_error() {
        let err = NamespacePlan::from_spec(&spec(vec![
            (LinuxNamespaceType::Uts, None),
            (LinuxNamespaceType::Uts, None),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("uts is listed more than once"),
            "{err}"
        );
    }

    #[test]
    fn join_checks_path_and_type() {
        let err = NamespacePlan::from_spec(&spec(vec![(
            LinuxNamespaceType::Network,
            Some("/nonexistent/ns"),
        )]))
        .unwrap_err();
        assert!(
            matches!(
                err,
                NamespaceError::Open {
                    kind: "network",
                    ..
                }
            ),
            "{err}"
        );
        let err = NamespacePlan::from_spec(&spec(vec![(
            LinuxNamespaceType::Network,
            Some("/etc/hostname"),
        )]))
        .unwrap_err();
        assert!(matches!(err, NamespaceError::NotNamespace { .. }), "{err}");
        let err = NamespacePlan::from_spec(&spec(vec![(
            LinuxNamespaceType::Network,
            Some("/proc/self/ns/uts"),
        )]))
        .unwrap_err();
        assert!(
            err.to_string().contains("is a uts namespace, not network"),
            "{err}"
        );
        let err = NamespacePlan::from_spec(&spec(vec![(
            LinuxNamespaceType::Network,
            Some("proc/self/ns/net"),
        )]))
        .unwrap_err();
        assert!(matches!(err, NamespaceError::RelativePath { .. }), "{err}");
        let plan = NamespacePlan::from_spec(&spec(vec![
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Network, Some("/proc/self/ns/net")),
            (LinuxNamespaceType::User, Some("/proc/self/ns/user")),
        ]))
        .unwrap();
        assert_eq!(plan.joins[0].kind.name, "user", "user ns is joined first");
        assert!(plan.has(libc::CLONE_NEWNET) && !plan.is_new(libc::CLONE_NEWNET));
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let s = spec(vec![(LinuxNamespaceType::User, None)]);
        assert!(matches!(
            NamespacePlan::from_spec(&s),
            Err(NamespaceError::UsernsWithoutMappings)
        ));
        let mut s = spec(vec![(LinuxNamespaceType::User, None)]);
        let m = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100000u32)
            .size(65536u32)
            .build()
            .unwrap();
        if let Some(l) = s.linux_mut() {
            l.set_uid_mappings(Some(vec![m]));
            l.set_gid_mappings(Some(vec![m]));
        }
        let plan = NamespacePlan::from_spec(&s).unwrap();
        assert_eq!(map_text(&plan.uid_map), "0 100000 65536\n");
        let mut s = spec(vec![(LinuxNamespaceType::Pid, None)]);
        if let Some(l) = s.linux_mut() {
            l.set_uid_mappings(Some(vec![m]));
        }
        assert!(matches!(
            NamespacePlan::from_spec(&s),
            Err(NamespaceError::MappingsWithoutUserns)
        ));
    }
}
