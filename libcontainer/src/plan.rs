//! Validate a [`Spec`] and turn it into an [`InitPlan`]: plain data the
//! container's init follows after clone, with no JSON and no decisions left.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, LinuxIdMapping, Mount, PosixRlimitType, Spec};

use crate::mount_options::{self, Recursive};
use crate::namespaces::NamespacePlan;

/// A config.json that cannot be run, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A required field is missing.
    #[error("config.json: {0} is missing")]
    Missing(&'static str),
    /// A field has a bad value.
    #[error("config.json: {field}: {reason}")]
    Invalid {
        /// The field, e.g. `mounts[2].destination`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A path named by a field does not work.
    #[error("config.json: {field} {path:?}: {source}")]
    Path {
        /// The field.
        field: String,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// linux.timeOffsets → lines `<clock id> <secs> <nanosecs>` (CLOCK_MONOTONIC
/// and CLOCK_BOOTTIME, the only clocks a time namespace offsets).
fn time_offsets(
    offsets: Option<&std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>>,
    ns: &NamespacePlan,
) -> Result<Option<Vec<u8>>, PlanError> {
    let Some(offsets) = offsets.filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    if !ns.is_new(libc::CLONE_NEWTIME) {
        return Err(invalid(
            "linux.timeOffsets",
            "needs a new time namespace (a \"time\" entry without path in linux.namespaces)",
        ));
    }
    let mut names: Vec<&String> = offsets.keys().collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let field = format!("linux.timeOffsets.{name}");
        let clock = match name.as_str() {
            "monotonic" => libc::CLOCK_MONOTONIC,
            "boottime" => libc::CLOCK_BOOTTIME,
            _ => return Err(invalid(field, "only monotonic and boottime can be offset")),
        };
        let o = &offsets[name];
        let nanos = o.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            return Err(invalid(
                format!("{field}.nanosecs"),
                format!("{nanos} is not below 1000000000"),
            ));
        }
        text.push_str(&format!("{clock} {} {nanos}\n", o.secs().unwrap_or(0)));
    }
    Ok(Some(text.into_bytes()))
}

fn cstring(field: &str, bytes: impl Into<Vec<u8>>) -> Result<CString, PlanError> {
    CString::new(bytes).map_err(|_| invalid(field, "contains a NUL byte"))
}

/// `/a/b` → `a/b` as a C string (openat2 resolves it inside the root).
fn rel_cstring(field: &str, path: &Path) -> Result<CString, PlanError> {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(field, format!("{path:?} must not contain `..`")));
    }
    cstring(field, rel.as_os_str().as_bytes())
}

/// What kind of mount a [`MountOp`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A bind mount of a host path.
    Bind {
        /// rbind.
        recursive: bool,
        /// The source is a directory (the target is created as one).
        dir: bool,
    },
    /// A filesystem: proc, sysfs, tmpfs, devpts, mqueue, …
    Filesystem,
    /// `cgroup`/`cgroup2`: the host's hierarchies, remounted.
    Cgroup,
}

/// One mount of `mounts`, ready to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOp {
    /// Destination inside the rootfs, relative (`dev/pts`).
    pub destination: CString,
    /// The kind.
    pub kind: MountKind,
    /// Source (host path for binds, a name otherwise).
    pub source: CString,
    /// Filesystem type.
    pub fstype: CString,
    /// MS_* flags.
    pub flags: libc::c_ulong,
    /// Propagation changes after mounting.
    pub propagation: Vec<libc::c_ulong>,
    /// Filesystem data (`mode=755,size=65536k`).
    pub data: Option<CString>,
    /// An idmapped bind mount (`uidMappings`/`gidMappings`, `idmap`).
    pub idmap: Option<crate::idmap::IdmapPlan>,
}

/// A cgroup hierarchy of the host, remounted for a `cgroup` mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupHierarchy {
    /// Directory name under the mount point (`cpu,cpuacct`; empty for a
    /// pure cgroup2 host where the hierarchy is the mount point itself).
    pub dir: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: CString,
    /// Mount data (`cpu,cpuacct`, `none,name=systemd`).
    pub data: Option<CString>,
}

/// A device node to create in the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the rootfs, relative (`dev/null`).
    pub path: CString,
    /// Absolute host path, bind-mounted instead when mknod is not allowed.
    pub host_path: CString,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: libc::mode_t,
    /// Permission bits.
    pub mode: libc::mode_t,
    /// Device major.
    pub major: u32,
    /// Device minor.
    pub minor: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// One rlimit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlimitPlan {
    /// RLIMIT_* resource.
    pub resource: libc::c_int,
    /// The name in config.json, for errors.
    pub name: &'static str,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// The container process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    /// argv.
    pub args: Vec<CString>,
    /// Paths to try with execve, in order (PATH search done up front).
    pub exec_paths: Vec<CString>,
    /// envp.
    pub env: Vec<CString>,
    /// Working directory inside the container.
    pub cwd: CString,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// umask.
    pub umask: Option<u32>,
    /// PR_SET_NO_NEW_PRIVS.
    pub no_new_privileges: bool,
    /// /proc/self/oom_score_adj.
    pub oom_score_adj: Option<i32>,
    /// setrlimit calls.
    pub rlimits: Vec<RlimitPlan>,
}

/// Everything the init does between clone and exec, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPlan {
    /// Absolute, canonical rootfs on the host.
    pub rootfs: CString,
    /// Set up a rootfs (false when an existing mount namespace is joined).
    pub setup_rootfs: bool,
    /// Propagation of `/` before any mount (never shared: pivot_root needs that).
    pub pre_propagation: libc::c_ulong,
    /// linux.rootfsPropagation, applied to the new `/` at the end.
    pub rootfs_propagation: Option<libc::c_ulong>,
    /// root.readonly.
    pub readonly_root: bool,
    /// mounts, in order.
    pub mounts: Vec<MountOp>,
    /// Host cgroup hierarchies (for `cgroup` mounts).
    pub cgroups: Vec<CgroupHierarchy>,
    /// Device nodes: the defaults when /dev is not a bind, then linux.devices.
    pub devices: Vec<DeviceNode>,
    /// Create the /dev symlinks (fd, stdin, …, ptmx).
    pub dev_symlinks: bool,
    /// Bind host devices instead of mknod (in a user namespace).
    pub bind_devices: bool,
    /// linux.maskedPaths.
    pub masked_paths: Vec<CString>,
    /// linux.readonlyPaths.
    pub readonly_paths: Vec<CString>,
    /// hostname.
    pub hostname: Option<Vec<u8>>,
    /// domainname.
    pub domainname: Option<Vec<u8>>,
    /// linux.sysctl as (/proc/sys path, value).
    pub sysctl: Vec<(CString, Vec<u8>)>,
    /// linux.timeOffsets as the text for /proc/self/timens_offsets: the
    /// init unshares the time namespace itself, writes this, and enters the
    /// namespace at execve (a clone with CLONE_NEWTIME would enter it at
    /// once, after which the offsets are frozen).
    pub time_offsets: Option<Vec<u8>>,
    /// The process.
    pub process: ProcessPlan,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// (name, major, minor) of the devices every container gets.
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

impl InitPlan {
    /// Validate `spec` (whose relative paths are relative to `bundle`) and
    /// build the plan. `ns` is the already validated namespace plan;
    /// `mountinfo` the host's /proc/self/mountinfo (read only when a cgroup
    /// mount asks for it).
    pub fn build(
        spec: &Spec,
        bundle: &Path,
        ns: &NamespacePlan,
        mountinfo: impl FnOnce() -> String,
    ) -> Result<Self, PlanError> {
        let root = spec.root().as_ref().ok_or(PlanError::Missing("root"))?;
        let root_path = bundle.join(root.path());
        let rootfs = root_path.canonicalize().map_err(|source| PlanError::Path {
            field: "root.path".into(),
            path: root_path.clone(),
            source,
        })?;
        if !rootfs.is_dir() {
            return Err(invalid(
                "root.path",
                format!("{root_path:?} is not a directory"),
            ));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or(PlanError::Missing("process"))?;
        let linux = spec.linux().as_ref();
        let userns = ns.has(libc::CLONE_NEWUSER);
        if !ns.has(libc::CLONE_NEWNS) {
            return Err(invalid("linux.namespaces", "a mount namespace is required"));
        }
        let setup_rootfs = ns.is_new(libc::CLONE_NEWNS);

        let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            None | Some("") => None,
            Some(p) => Some(mount_options::propagation(p).ok_or_else(|| {
                invalid(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                )
            })?),
        };
        let pre_propagation = match propagation {
            Some(p) if p & libc::MS_PRIVATE != 0 => p | libc::MS_REC,
            _ => libc::MS_SLAVE | libc::MS_REC,
        };

        let mut mounts = Vec::new();
        let mut wants_cgroups = false;
        let userns_maps = match linux.map(|l| (l.uid_mappings(), l.gid_mappings())) {
            Some((Some(u), Some(g))) if ns.is_new(libc::CLONE_NEWUSER) => {
                Some((u.as_slice(), g.as_slice()))
            }
            _ => None,
        };
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            let op = mount_op(i, m, bundle, userns_maps)?;
            wants_cgroups |= op.kind == MountKind::Cgroup;
            mounts.push(op);
        }
        let cgroups = if wants_cgroups {
            cgroup_hierarchies(&mountinfo())
        } else {
            Vec::new()
        };

        // Default devices go into /dev unless the bundle binds its own /dev.
        let dev_is_bind = mounts.iter().any(|m| {
            m.destination.as_bytes() == b"dev" && matches!(m.kind, MountKind::Bind { .. })
        });
        let mut devices = Vec::new();
        if !dev_is_bind {
            for (name, major, minor) in DEFAULT_DEVICES {
                devices.push(DeviceNode {
                    path: cstring("device", format!("dev/{name}"))?,
                    host_path: cstring("device", format!("/dev/{name}"))?,
                    kind: libc::S_IFCHR,
                    mode: 0o666,
                    major,
                    minor,
                    uid: 0,
                    gid: 0,
                });
            }
        }
        for (i, d) in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("linux.devices[{i}]");
            if !d.path().is_absolute() {
                return Err(invalid(
                    format!("{field}.path"),
                    format!("{:?} must be absolute", d.path()),
                ));
            }
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(invalid(format!("{field}.type"), "must be c, b, u or p"))
                }
            };
            let num = |v: i64, what: &str| {
                u32::try_from(v)
                    .map_err(|_| invalid(format!("{field}.{what}"), format!("{v} is out of range")))
            };
            let node = DeviceNode {
                path: rel_cstring(&field, d.path())?,
                host_path: cstring(&field, d.path().as_os_str().as_bytes())?,
                kind,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                major: num(d.major(), "major")?,
                minor: num(d.minor(), "minor")?,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            };
            devices.retain(|n| n.path != node.path);
            devices.push(node);
        }

        let paths = |list: Option<&Vec<String>>, field: &str| -> Result<Vec<CString>, PlanError> {
            list.into_iter()
                .flatten()
                .map(|p| {
                    if !p.starts_with('/') {
                        return Err(invalid(field, format!("{p:?} must be absolute")));
                    }
                    cstring(field, p.as_bytes())
                })
                .collect()
        };
        let masked_paths = paths(
            linux.and_then(|l| l.masked_paths().as_ref()),
            "linux.maskedPaths",
        )?;
        let readonly_paths = paths(
            linux.and_then(|l| l.readonly_paths().as_ref()),
            "linux.readonlyPaths",
        )?;

        let uts = ns.has(libc::CLONE_NEWUTS);
        let hostname = spec
            .hostname()
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.as_bytes().to_vec());
        let domainname = spec
            .domainname()
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.as_bytes().to_vec());
        if hostname.is_some() && !uts {
            return Err(invalid(
                "hostname",
                "needs a UTS namespace in linux.namespaces",
            ));
        }
        if domainname.is_some() && !uts {
            return Err(invalid(
                "domainname",
                "needs a UTS namespace in linux.namespaces",
            ));
        }
        let sysctl = sysctls(linux.and_then(|l| l.sysctl().as_ref()), ns)?;
        let time_offsets = time_offsets(linux.and_then(|l| l.time_offsets().as_ref()), ns)?;

        Ok(Self {
            rootfs: cstring("root.path", rootfs.as_os_str().as_bytes())?,
            setup_rootfs,
            pre_propagation,
            rootfs_propagation: propagation,
            readonly_root: root.readonly() == Some(true),
            mounts,
            cgroups,
            devices,
            dev_symlinks: !dev_is_bind,
            bind_devices: userns,
            masked_paths,
            readonly_paths,
            hostname,
            domainname,
            sysctl,
            time_offsets,
            process: process_plan(process)?,
        })
    }
}

fn mount_op(
    i: usize,
    m: &Mount,
    bundle: &Path,
    userns_maps: Option<(&[LinuxIdMapping], &[LinuxIdMapping])>,
) -> Result<MountOp, PlanError> {
    let field = format!("mounts[{i}]");
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(invalid(
            format!("{field}.destination"),
            format!("{dest:?} must be absolute"),
        ));
    }
    let opts = mount_options::parse(m.options().as_deref().unwrap_or_default());
    let fstype = m.typ().clone().unwrap_or_default();
    let bind = opts.bind.or((fstype == "bind").then_some(Recursive::No));
    let source = m.source().clone().unwrap_or_default();
    let (kind, source) = if let Some(rec) = bind {
        if source.as_os_str().is_empty() {
            return Err(PlanError::Missing("mounts[].source of a bind mount"));
        }
        let src = bundle.join(&source);
        let meta = std::fs::metadata(&src).map_err(|e| PlanError::Path {
            field: format!("{field}.source"),
            path: src.clone(),
            source: e,
        })?;
        (
            MountKind::Bind {
                recursive: rec == Recursive::Yes,
                dir: meta.is_dir(),
            },
            src,
        )
    } else if fstype.is_empty() {
        return Err(invalid(
            format!("{field}.type"),
            "missing (and no bind option)",
        ));
    } else if fstype == "cgroup" || fstype == "cgroup2" {
        (MountKind::Cgroup, source)
    } else {
        (MountKind::Filesystem, source)
    };
    let data = if opts.data.is_empty() {
        None
    } else {
        Some(cstring(&field, opts.data.join(","))?)
    };
    let is_bind = matches!(kind, MountKind::Bind { .. });
    let idmap = crate::idmap::plan(&field, m, &opts, is_bind, userns_maps)?;
    Ok(MountOp {
        destination: rel_cstring(&format!("{field}.destination"), dest)?,
        kind,
        source: cstring(&field, source.as_os_str().as_bytes())?,
        fstype: cstring(&field, fstype)?,
        flags: opts.flags,
        propagation: opts.propagation,
        data,
        idmap,
    })
}

/// The host's cgroup hierarchies mounted under /sys/fs/cgroup, from mountinfo.
pub fn cgroup_hierarchies(mountinfo: &str) -> Vec<CgroupHierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut l = left.split(' ');
        let (Some(root), Some(mnt)) = (l.nth(3), l.next()) else {
            continue;
        };
        let mut r = right.split(' ');
        let (Some(fstype), Some(_src), Some(super_opts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        if root != "/" && fstype == "cgroup" {
            continue;
        }
        let dir = match mnt.strip_prefix("/sys/fs/cgroup") {
            Some("") => String::new(),
            Some(rest) => match rest.strip_prefix('/') {
                Some(d) if !d.contains('/') => d.to_string(),
                _ => continue,
            },
            None => continue,
        };
        let data = match fstype {
            "cgroup" => {
                let opts: Vec<&str> = super_opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .collect();
                CString::new(opts.join(",")).ok()
            }
            "cgroup2" => None,
            _ => continue,
        };
        let Ok(fstype) = CString::new(fstype) else {
            continue;
        };
        out.push(CgroupHierarchy { dir, fstype, data });
    }
    out
}

fn sysctls(
    sysctl: Option<&HashMap<String, String>>,
    ns: &NamespacePlan,
) -> Result<Vec<(CString, Vec<u8>)>, PlanError> {
    let mut out = Vec::new();
    let mut keys: Vec<_> = sysctl.into_iter().flatten().collect();
    keys.sort();
    for (key, value) in keys {
        let field = format!("linux.sysctl[{key}]");
        let needs = if key.starts_with("net.") {
            Some((libc::CLONE_NEWNET, "network"))
        } else if key.starts_with("fs.mqueue.")
            || matches!(
                key.as_str(),
                "kernel.msgmax"
                    | "kernel.msgmnb"
                    | "kernel.msgmni"
                    | "kernel.sem"
                    | "kernel.shmall"
                    | "kernel.shmmax"
                    | "kernel.shmmni"
                    | "kernel.shm_rmid_forced"
            )
        {
            Some((libc::CLONE_NEWIPC, "ipc"))
        } else if matches!(key.as_str(), "kernel.hostname" | "kernel.domainname") {
            Some((libc::CLONE_NEWUTS, "uts"))
        } else {
            None
        };
        match needs {
            Some((flag, name)) if !ns.has(flag) => {
                return Err(invalid(field, format!("needs a {name} namespace")));
            }
            Some(_) => {}
            None => {
                return Err(invalid(
                    field,
                    "is not namespaced; refusing to change the host",
                ))
            }
        }
        if key.contains("..") || key.contains('/') && key.contains('.') {
            return Err(invalid(field, "bad key"));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        out.push((cstring(&field, path)?, value.as_bytes().to_vec()));
    }
    Ok(out)
}

fn rlimit_of(t: PosixRlimitType) -> (libc::c_int, &'static str) {
    use PosixRlimitType as R;
    match t {
        R::RlimitCpu => (libc::RLIMIT_CPU as _, "RLIMIT_CPU"),
        R::RlimitFsize => (libc::RLIMIT_FSIZE as _, "RLIMIT_FSIZE"),
        R::RlimitData => (libc::RLIMIT_DATA as _, "RLIMIT_DATA"),
        R::RlimitStack => (libc::RLIMIT_STACK as _, "RLIMIT_STACK"),
        R::RlimitCore => (libc::RLIMIT_CORE as _, "RLIMIT_CORE"),
        R::RlimitRss => (libc::RLIMIT_RSS as _, "RLIMIT_RSS"),
        R::RlimitNproc => (libc::RLIMIT_NPROC as _, "RLIMIT_NPROC"),
        R::RlimitNofile => (libc::RLIMIT_NOFILE as _, "RLIMIT_NOFILE"),
        R::RlimitMemlock => (libc::RLIMIT_MEMLOCK as _, "RLIMIT_MEMLOCK"),
        R::RlimitAs => (libc::RLIMIT_AS as _, "RLIMIT_AS"),
        R::RlimitLocks => (libc::RLIMIT_LOCKS as _, "RLIMIT_LOCKS"),
        R::RlimitSigpending => (libc::RLIMIT_SIGPENDING as _, "RLIMIT_SIGPENDING"),
        R::RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE as _, "RLIMIT_MSGQUEUE"),
        R::RlimitNice => (libc::RLIMIT_NICE as _, "RLIMIT_NICE"),
        R::RlimitRtprio => (libc::RLIMIT_RTPRIO as _, "RLIMIT_RTPRIO"),
        R::RlimitRttime => (libc::RLIMIT_RTTIME as _, "RLIMIT_RTTIME"),
    }
}

pub(crate) fn process_plan(p: &oci_spec::runtime::Process) -> Result<ProcessPlan, PlanError> {
    let args = p
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .ok_or(PlanError::Missing("process.args"))?;
    let args = args
        .iter()
        .map(|a| cstring("process.args", a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env_list = p.env().clone().unwrap_or_default();
    let mut env = Vec::with_capacity(env_list.len());
    for e in &env_list {
        if !e.contains('=') {
            return Err(invalid("process.env", format!("{e:?} is not KEY=VALUE")));
        }
        env.push(cstring("process.env", e.as_bytes())?);
    }
    let arg0 = args[0].as_bytes();
    let exec_paths = if arg0.contains(&b'/') {
        vec![args[0].clone()]
    } else {
        let path = env_list
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| {
                let mut v = d.as_bytes().to_vec();
                v.push(b'/');
                v.extend_from_slice(arg0);
                cstring("process.args[0]", v)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if !p.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} must be absolute", p.cwd()),
        ));
    }
    let mut rlimits = Vec::new();
    for r in p.rlimits().iter().flatten() {
        let (resource, name) = rlimit_of(r.typ());
        if r.soft() > r.hard() {
            return Err(invalid(
                format!("process.rlimits[{name}]"),
                format!("soft limit {} is above hard limit {}", r.soft(), r.hard()),
            ));
        }
        rlimits.push(RlimitPlan {
            resource,
            name,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..=1000"),
            ));
        }
    }
    let user = p.user();
    Ok(ProcessPlan {
        args,
        exec_paths,
        env,
        cwd: cstring("process.cwd", p.cwd().as_os_str().as_bytes())?,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        no_new_privileges: p.no_new_privileges() == Some(true),
        oom_score_adj: p.oom_score_adj(),
        rlimits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::default_spec;
    use oci_spec::runtime::{LinuxDeviceBuilder, MountBuilder};

    fn build(spec: &Spec) -> Result<InitPlan, PlanError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut spec = spec.clone();
        if let Some(r) = spec.root_mut() {
            r.set_path("rootfs".into());
        }
        let ns = NamespacePlan::from_spec(&spec).map_err(|e| invalid("ns", e.to_string()))?;
        InitPlan::build(&spec, dir.path(), &ns, || MOUNTINFO.to_string())
    }

    const MOUNTINFO: &str = "\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid shared:12 - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
";

    #[test]
    fn default_spec_plans() {
        let plan = build(&default_spec()).unwrap();
        assert!(plan.setup_rootfs);
        assert_eq!(plan.mounts[0].destination.as_bytes(), b"proc");
        assert_eq!(
            plan.mounts[1].data.as_deref().unwrap().to_bytes(),
            b"mode=755,size=65536k"
        );
        assert_eq!(plan.devices.len(), 6);
        assert_eq!(plan.hostname.as_deref(), Some(&b"berth"[..]));
        assert_eq!(plan.process.rlimits[0].name, "RLIMIT_NOFILE");
        let cg: Vec<_> = plan.cgroups.iter().map(|c| c.dir.as_str()).collect();
        assert_eq!(cg, ["unified", "cpu,cpuacct", "systemd"]);
        assert_eq!(
            plan.cgroups[2].data.as_deref().unwrap().to_bytes(),
            b"xattr,name=systemd"
        );
        assert_eq!(plan.pre_propagation, libc::MS_SLAVE | libc::MS_REC);
    }

    #[test]
    fn path_search_is_done_up_front() {
        let mut spec = default_spec();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_args(Some(vec!["true".into()]));
        let plan = build(&spec).unwrap();
        assert_eq!(
            plan.process.exec_paths[0].to_bytes(),
            b"/usr/local/sbin/true"
        );
        assert_eq!(plan.process.exec_paths.len(), 6);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut spec = default_spec();
        spec.set_process(None);
        assert_eq!(
            build(&spec).unwrap_err().to_string(),
            "config.json: process is missing"
        );

        let mut spec = default_spec();
        spec.process_mut().as_mut().unwrap().set_args(Some(vec![]));
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("process.args"));

        let mut spec = default_spec();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_cwd("relative".into());
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("process.cwd"));

        let mut spec = default_spec();
        let m = MountBuilder::default()
            .destination("/mnt")
            .source("/nonexistent/src")
            .options(vec!["rbind".into()])
            .build()
            .unwrap();
        spec.mounts_mut().as_mut().unwrap().push(m);
        let err = build(&spec).unwrap_err().to_string();
        assert!(
            err.contains("mounts[7].source") && err.contains("nonexistent"),
            "{err}"
        );

        let mut spec = default_spec();
        let m = MountBuilder::default()
            .destination("rel")
            .typ("tmpfs")
            .build()
            .unwrap();
        spec.mounts_mut().as_mut().unwrap().push(m);
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("mounts[7].destination"));

        let mut spec = default_spec();
        let m = MountBuilder::default()
            .destination("/a/../../b")
            .typ("tmpfs")
            .build()
            .unwrap();
        spec.mounts_mut().as_mut().unwrap().push(m);
        assert!(build(&spec).unwrap_err().to_string().contains("`..`"));

        let mut spec = default_spec();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_namespaces(Some(vec![]));
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("mount namespace is required"));

        let mut spec = default_spec();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_rootfs_propagation(Some("sideways".into()));
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("linux.rootfsPropagation"));

        let mut spec = default_spec();
        spec.root_mut().as_mut().unwrap().set_path("missing".into());
        let dir = tempfile::tempdir().unwrap();
        let ns = NamespacePlan::from_spec(&spec).unwrap();
        let err = InitPlan::build(&spec, dir.path(), &ns, String::new)
            .unwrap_err()
            .to_string();
        assert!(err.contains("root.path"), "{err}");
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let mut spec = default_spec();
        let l = spec.linux_mut().as_mut().unwrap();
        l.set_sysctl(Some(
            [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        ));
        let plan = build(&spec).unwrap();
        assert_eq!(
            plan.sysctl[0].0.to_bytes(),
            b"/proc/sys/net/ipv4/ip_forward"
        );
        let l = spec.linux_mut().as_mut().unwrap();
        l.set_sysctl(Some(
            [("vm.swappiness".to_string(), "1".to_string())].into(),
        ));
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("not namespaced"));
    }

    #[test]
    fn devices_are_validated_and_override_defaults() {
        let mut spec = default_spec();
        let d = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .file_mode(0o600u32)
            .build()
            .unwrap();
        let f = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .build()
            .unwrap();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_devices(Some(vec![d, f]));
        let plan = build(&spec).unwrap();
        assert_eq!(plan.devices.len(), 7);
        let null = plan
            .devices
            .iter()
            .find(|d| d.path.as_bytes() == b"dev/null")
            .unwrap();
        assert_eq!(null.mode, 0o600);
        let bad = LinuxDeviceBuilder::default()
            .path("/dev/x")
            .typ(LinuxDeviceType::C)
            .major(-1)
            .minor(0)
            .build()
            .unwrap();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_devices(Some(vec![bad]));
        assert!(build(&spec)
            .unwrap_err()
            .to_string()
            .contains("linux.devices[0].major"));
    }
}
