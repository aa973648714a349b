//! Build the container's root filesystem in its new mount namespace:
//! propagation, the rootfs bind, every mount, devices, /dev symlinks,
//! masked and read-only paths, then pivot_root.
//!
//! Every destination is resolved inside the rootfs with openat2
//! (RESOLVE_IN_ROOT) and mounted through `/proc/self/fd/N` of the opened
//! target, so a symlink in the rootfs never makes us touch the host.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::idmap::IdmappedTrees;
use crate::plan::{CgroupHierarchy, InitPlan, MountKind, MountOp};
use crate::syscall::{fd_path, Syscall};

/// A step of the rootfs setup failed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A kernel call failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// What we were doing.
        op: &'static str,
        /// Path inside the container (or on the host for the rootfs itself).
        path: String,
        /// The error.
        source: io::Error,
    },
    /// A destination is a symlink that leads nowhere inside the rootfs.
    #[error("{0}: is a symlink whose target does not exist inside the rootfs")]
    DanglingSymlink(String),
    /// An idmapped mount reached the init without its prepared tree.
    #[error("{0}: idmapped mount was not prepared by the runtime (idmap::prepare)")]
    NotPrepared(String),
}

fn sys<T>(op: &'static str, path: &CStr, r: io::Result<T>) -> Result<T, RootfsError> {
    r.map_err(|source| RootfsError::Sys {
        op,
        path: show(path),
        source,
    })
}

fn show(path: &CStr) -> String {
    let s = path.to_string_lossy();
    if s.starts_with('/') {
        s.into_owned()
    } else {
        format!("/{s}")
    }
}

/// What to create when a destination is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// A directory (and its parents).
    Dir,
    /// An empty file (parents as directories).
    File,
}

/// Open `rel` inside `root` (O_PATH), creating it and its parents when
/// missing. Every step is resolved with RESOLVE_IN_ROOT.
pub fn ensure<S: Syscall>(
    sys_: &S,
    root: BorrowedFd<'_>,
    rel: &CStr,
    create: Create,
) -> Result<OwnedFd, RootfsError> {
    match sys_.open_in_root(root, rel, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => {
            return Err(RootfsError::Sys {
                op: "open",
                path: show(rel),
                source: e,
            })
        }
    }
    let bytes = rel.to_bytes();
    let (parent, name) = match bytes.iter().rposition(|b| *b == b'/') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&b""[..], bytes),
    };
    let name_c = CString::new(name).unwrap_or_default();
    let parent_fd = if parent.is_empty() {
        None
    } else {
        let p = CString::new(parent).unwrap_or_default();
        Some(ensure(sys_, root, &p, Create::Dir)?)
    };
    let dir = parent_fd.as_ref().map_or(root, |f| f.as_fd());
    let made = match create {
        Create::Dir => sys_.mkdirat(dir, &name_c, 0o755),
        Create::File => sys_
            .openat(
                dir,
                &name_c,
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY,
                0o644,
            )
            .map(drop),
    };
    match made {
        Ok(()) => {}
        // It exists yet did not resolve: a dangling (or escaping) symlink.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            return Err(RootfsError::DanglingSymlink(show(rel)))
        }
        Err(e) => {
            return Err(RootfsError::Sys {
                op: "create",
                path: show(rel),
                source: e,
            })
        }
    }
    sys(
        "open",
        rel,
        sys_.open_in_root(root, rel, libc::O_PATH | libc::O_NOFOLLOW),
    )
}

/// Set up everything up to (not including) pivot_root. Runs in the init,
/// inside its new mount namespace.
/// `trees` holds the idmapped mounts the runtime prepared ([`crate::idmap`]).
pub fn prepare<S: Syscall>(
    s: &S,
    plan: &InitPlan,
    trees: &IdmappedTrees,
) -> Result<OwnedFd, RootfsError> {
    let slash = c"/";
    sys(
        "make / propagation",
        slash,
        s.mount(None, slash, None, plan.pre_propagation, None),
    )?;
    let rootfs = plan.rootfs.as_c_str();
    sys(
        "bind rootfs",
        rootfs,
        s.mount(
            Some(rootfs),
            rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        ),
    )?;
    let root = sys(
        "open rootfs",
        rootfs,
        s.openat(cwd_fd(), rootfs, libc::O_PATH | libc::O_DIRECTORY, 0),
    )?;
    let root_fd = root.as_fd();
    for (i, m) in plan.mounts.iter().enumerate() {
        mount_one(s, root_fd, m, &plan.cgroups, trees.get(i))?;
    }
    create_devices(s, root_fd, plan)?;
    Ok(root)
}

/// linux.sysctl, written through the container's new /proc before
/// readonlyPaths makes /proc/sys read-only.
pub fn write_sysctls<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    plan: &InitPlan,
) -> Result<(), RootfsError> {
    for (path, value) in &plan.sysctl {
        let fd = sys(
            "linux.sysctl: open",
            path,
            s.open_in_root(root, &rel(path), libc::O_WRONLY),
        )?;
        let f = std::fs::File::from(fd);
        sys(
            "linux.sysctl: write",
            path,
            std::io::Write::write_all(&mut &f, value),
        )?;
    }
    Ok(())
}

/// linux.maskedPaths and linux.readonlyPaths.
pub fn protect_paths<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    plan: &InitPlan,
) -> Result<(), RootfsError> {
    for p in &plan.masked_paths {
        mask(s, root, p)?;
    }
    for p in &plan.readonly_paths {
        readonly(s, root, p)?;
    }
    Ok(())
}

fn cwd_fd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid "fd" for the *at calls and is never closed.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

fn mount_one<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    m: &MountOp,
    cgroups: &[CgroupHierarchy],
    idmapped: Option<BorrowedFd<'_>>,
) -> Result<(), RootfsError> {
    let dest = m.destination.as_c_str();
    match &m.kind {
        // Idmapped in the runtime, options included: only attach it.
        MountKind::Bind { dir, .. } if m.idmap.is_some() => {
            let tree = idmapped.ok_or_else(|| RootfsError::NotPrepared(show(dest)))?;
            let create = if *dir { Create::Dir } else { Create::File };
            let target = ensure(s, root, dest, create)?;
            sys(
                "attach idmapped mount",
                dest,
                s.move_mount(tree, target.as_fd()),
            )?;
        }
        MountKind::Bind { recursive, dir } => {
            let create = if *dir { Create::Dir } else { Create::File };
            let target = ensure(s, root, dest, create)?;
            let mut flags = libc::MS_BIND;
            if *recursive {
                flags |= libc::MS_REC;
            }
            let t = fd_path(target.as_raw_fd());
            sys(
                "bind mount",
                dest,
                s.mount(Some(&m.source), &t, None, flags, None),
            )?;
            let extra = m.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
            if extra != 0 {
                let target = sys("open", dest, s.open_in_root(root, dest, libc::O_PATH))?;
                remount_bind(s, &fd_path(target.as_raw_fd()), extra, dest)?;
            }
        }
        MountKind::Filesystem => {
            let target = ensure(s, root, dest, Create::Dir)?;
            let t = fd_path(target.as_raw_fd());
            sys(
                "mount",
                dest,
                s.mount(
                    Some(&m.source),
                    &t,
                    Some(&m.fstype),
                    m.flags,
                    m.data.as_deref(),
                ),
            )?;
        }
        MountKind::Cgroup => mount_cgroups(s, root, m, cgroups)?,
    }
    if !m.propagation.is_empty() {
        let target = sys("open", dest, s.open_in_root(root, dest, libc::O_PATH))?;
        let t = fd_path(target.as_raw_fd());
        for p in &m.propagation {
            sys(
                "set propagation of",
                dest,
                s.mount(None, &t, None, *p, None),
            )?;
        }
    }
    Ok(())
}

/// Change a bind mount's flags, keeping the flags the kernel locks.
fn remount_bind<S: Syscall>(
    s: &S,
    target: &CStr,
    flags: libc::c_ulong,
    shown: &CStr,
) -> Result<(), RootfsError> {
    let current = sys("statvfs", shown, s.mount_flags(target))?;
    let keep = current & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    sys(
        "remount",
        shown,
        s.mount(
            None,
            target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | keep | flags,
            None,
        ),
    )
}

fn mount_cgroups<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    m: &MountOp,
    cgroups: &[CgroupHierarchy],
) -> Result<(), RootfsError> {
    let dest = m.destination.as_c_str();
    let target = ensure(s, root, dest, Create::Dir)?;
    let t = fd_path(target.as_raw_fd());
    if let [only] = cgroups {
        if only.dir.is_empty() {
            return sys(
                "mount cgroup2 on",
                dest,
                s.mount(Some(c"cgroup"), &t, Some(&only.fstype), m.flags, None),
            );
        }
    }
    let tmpfs_flags = m.flags & !libc::MS_RDONLY;
    sys(
        "mount tmpfs on",
        dest,
        s.mount(
            Some(c"tmpfs"),
            &t,
            Some(c"tmpfs"),
            tmpfs_flags,
            Some(c"mode=755"),
        ),
    )?;
    let top = sys(
        "open",
        dest,
        s.open_in_root(root, dest, libc::O_PATH | libc::O_DIRECTORY),
    )?;
    for h in cgroups.iter().filter(|h| !h.dir.is_empty()) {
        let mut rel = m.destination.as_bytes().to_vec();
        rel.push(b'/');
        rel.extend_from_slice(h.dir.as_bytes());
        let rel = CString::new(rel).unwrap_or_default();
        let sub = ensure(s, root, &rel, Create::Dir)?;
        let st = fd_path(sub.as_raw_fd());
        sys(
            "mount cgroup on",
            &rel,
            s.mount(
                Some(c"cgroup"),
                &st,
                Some(&h.fstype),
                m.flags,
                h.data.as_deref(),
            ),
        )?;
        // cpu,cpuacct is also reachable as cpu and cpuacct.
        if h.dir.contains(',') {
            let Ok(target) = CString::new(h.dir.as_bytes()) else {
                continue;
            };
            for part in h.dir.split(',') {
                let Ok(name) = CString::new(part) else {
                    continue;
                };
                match s.symlinkat(&target, top.as_fd(), &name) {
                    Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                        return Err(RootfsError::Sys {
                            op: "symlink",
                            path: show(&name),
                            source: e,
                        })
                    }
                    _ => {}
                }
            }
        }
    }
    if m.flags & libc::MS_RDONLY != 0 {
        let top_path = fd_path(top.as_raw_fd());
        sys(
            "remount read-only",
            dest,
            s.mount(
                Some(c"tmpfs"),
                &top_path,
                Some(c"tmpfs"),
                libc::MS_REMOUNT | m.flags,
                Some(c"mode=755"),
            ),
        )?;
    }
    Ok(())
}

fn create_devices<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    plan: &InitPlan,
) -> Result<(), RootfsError> {
    for d in &plan.devices {
        let path = d.path.as_c_str();
        if plan.bind_devices {
            let target = ensure(s, root, path, Create::File)?;
            let t = fd_path(target.as_raw_fd());
            sys(
                "bind device",
                path,
                s.mount(Some(&d.host_path), &t, None, libc::MS_BIND, None),
            )?;
            continue;
        }
        let bytes = path.to_bytes();
        let (parent, name) = match bytes.iter().rposition(|b| *b == b'/') {
            Some(i) => (Some(&bytes[..i]), &bytes[i + 1..]),
            None => (None, bytes),
        };
        let parent_fd = match parent {
            Some(p) => Some(ensure(
                s,
                root,
                &CString::new(p).unwrap_or_default(),
                Create::Dir,
            )?),
            None => None,
        };
        let dir = parent_fd.as_ref().map_or(root, |f| f.as_fd());
        let name = CString::new(name).unwrap_or_default();
        let dev = libc::makedev(d.major, d.minor);
        match s.mknodat(dir, &name, d.kind | d.mode, dev) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => {
                return Err(RootfsError::Sys {
                    op: "mknod",
                    path: show(path),
                    source: e,
                })
            }
        }
        if d.uid != 0 || d.gid != 0 {
            sys("chown", path, s.fchownat(dir, &name, d.uid, d.gid))?;
        }
    }
    if plan.dev_symlinks {
        let dev = ensure(s, root, c"dev", Create::Dir)?;
        let mut links = vec![
            (c"/proc/self/fd", c"fd"),
            (c"/proc/self/fd/0", c"stdin"),
            (c"/proc/self/fd/1", c"stdout"),
            (c"/proc/self/fd/2", c"stderr"),
            (c"pts/ptmx", c"ptmx"),
        ];
        if std::path::Path::new("/proc/kcore").exists() {
            links.push((c"/proc/kcore", c"core"));
        }
        for (target, name) in links {
            match s.symlinkat(target, dev.as_fd(), name) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                    return Err(RootfsError::Sys {
                        op: "symlink",
                        path: format!("/dev/{}", name.to_string_lossy()),
                        source: e,
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn rel(p: &CStr) -> CString {
    CString::new(
        p.to_bytes()
            .trim_ascii_start()
            .strip_prefix(b"/")
            .unwrap_or(p.to_bytes()),
    )
    .unwrap_or_default()
}

fn open_existing<S: Syscall>(
    s: &S,
    root: BorrowedFd<'_>,
    p: &CStr,
) -> Result<Option<OwnedFd>, RootfsError> {
    match s.open_in_root(root, &rel(p), libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(RootfsError::Sys {
            op: "open",
            path: show(p),
            source: e,
        }),
    }
}

fn is_dir(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: an all-zero stat is a valid out-parameter; fd is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, st a valid out-pointer, the empty path is a C string.
    let r = unsafe { libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn mask<S: Syscall>(s: &S, root: BorrowedFd<'_>, p: &CStr) -> Result<(), RootfsError> {
    let Some(fd) = open_existing(s, root, p)? else {
        return Ok(());
    };
    let t = fd_path(fd.as_raw_fd());
    if is_dir(fd.as_fd()) {
        sys(
            "mask",
            p,
            s.mount(Some(c"tmpfs"), &t, Some(c"tmpfs"), libc::MS_RDONLY, None),
        )
    } else {
        sys(
            "mask",
            p,
            s.mount(Some(c"/dev/null"), &t, None, libc::MS_BIND, None),
        )
    }
}

fn readonly<S: Syscall>(s: &S, root: BorrowedFd<'_>, p: &CStr) -> Result<(), RootfsError> {
    let Some(fd) = open_existing(s, root, p)? else {
        return Ok(());
    };
    let t = fd_path(fd.as_raw_fd());
    sys(
        "bind",
        p,
        s.mount(Some(&t), &t, None, libc::MS_BIND | libc::MS_REC, None),
    )?;
    let Some(fd) = open_existing(s, root, p)? else {
        return Ok(());
    };
    remount_bind(s, &fd_path(fd.as_raw_fd()), libc::MS_RDONLY, p)
}

/// Make the rootfs `/`: pivot_root, or MS_MOVE + chroot where pivot_root
/// is refused (a rootfs on the initramfs). [`finalize`] comes after.
pub fn pivot<S: Syscall>(s: &S, plan: &InitPlan) -> Result<(), RootfsError> {
    let rootfs = plan.rootfs.as_c_str();
    sys("chdir", rootfs, s.chdir(rootfs))?;
    let dot = c".";
    match s.pivot_root(dot, dot) {
        Ok(()) => {
            // The old root is now stacked on "."; detach it. Private
            // first, like crun: the host's mounts are only copies here,
            // and detaching a tree of slaves costs milliseconds more.
            sys(
                "make old root private",
                c"/",
                s.mount(None, dot, None, libc::MS_REC | libc::MS_PRIVATE, None),
            )?;
            sys("unmount old root", c"/", s.umount2(dot, libc::MNT_DETACH))?;
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys(
                "move rootfs",
                rootfs,
                s.mount(Some(dot), c"/", None, libc::MS_MOVE, None),
            )?;
            sys("chroot", rootfs, s.chroot(dot))?;
        }
        Err(e) => {
            return Err(RootfsError::Sys {
                op: "pivot_root",
                path: show(rootfs),
                source: e,
            })
        }
    }
    sys("chdir", c"/", s.chdir(c"/"))
}

/// After [`pivot`] and the console: root.readonly and
/// linux.rootfsPropagation.
pub fn finalize<S: Syscall>(s: &S, plan: &InitPlan) -> Result<(), RootfsError> {
    if plan.readonly_root {
        remount_bind(s, c"/", libc::MS_RDONLY, c"/")?;
    }
    if let Some(p) = plan.rootfs_propagation {
        sys(
            "set rootfsPropagation of",
            c"/",
            s.mount(None, c"/", None, p, None),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::NamespacePlan;
    use crate::syscall::recorder::Recorder;
    use oci_spec::runtime::MountBuilder;

    fn plan(spec: oci_spec::runtime::Spec, dir: &std::path::Path) -> InitPlan {
        let mut spec = spec;
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        spec.root_mut().as_mut().unwrap().set_path("rootfs".into());
        let ns = NamespacePlan::from_spec(&spec).unwrap();
        InitPlan::build(&spec, dir, &ns, String::new).unwrap()
    }

    #[test]
    fn idmapped_bind_is_only_attached() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = crate::fixtures::default_spec();
        let map = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(1000u32)
            .size(1u32)
            .build()
            .unwrap();
        let m = MountBuilder::default()
            .destination("/data")
            .source(dir.path().to_str().unwrap())
            .options(vec!["bind".into(), "ro".into(), "rprivate".into()])
            .uid_mappings(vec![map])
            .gid_mappings(vec![map])
            .build()
            .unwrap();
        spec.set_mounts(Some(vec![m]));
        let plan = plan(spec, dir.path());
        let rec = Recorder::default();
        let root: OwnedFd = std::fs::File::open("/").unwrap().into();
        let err = mount_one(&rec, root.as_fd(), &plan.mounts[0], &[], None).unwrap_err();
        assert!(matches!(err, RootfsError::NotPrepared(_)), "{err}");
        let tree: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        mount_one(&rec, root.as_fd(), &plan.mounts[0], &[], Some(tree.as_fd())).unwrap();
        // No bind and no ro remount: `ro` went into mount_setattr.
        let calls = rec.calls.borrow();
        assert_eq!(calls[0], "move_mount data", "{calls:?}");
        assert_eq!(
            calls[1],
            format!(
                "mount None data None {:#x} None",
                libc::MS_PRIVATE | libc::MS_REC
            ),
        );
        assert_eq!(calls.len(), 2, "{calls:?}");
    }

    #[test]
    fn readonly_bind_is_bind_then_remount() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = crate::fixtures::default_spec();
        let m = MountBuilder::default()
            .destination("/data")
            .source(dir.path().to_str().unwrap())
            .options(vec!["rbind".into(), "ro".into(), "rprivate".into()])
            .build()
            .unwrap();
        spec.set_mounts(Some(vec![m]));
        spec.linux_mut().as_mut().unwrap().set_masked_paths(None);
        spec.linux_mut().as_mut().unwrap().set_readonly_paths(None);
        let plan = plan(spec, dir.path());
        let rec = Recorder::default();
        let root: OwnedFd = std::fs::File::open("/").unwrap().into();
        mount_one(&rec, root.as_fd(), &plan.mounts[0], &[], None).unwrap();
        let calls = rec.calls.borrow();
        assert!(
            calls[0].starts_with(&format!("mount Some({:?}) data None 0x5000", dir.path())),
            "{calls:?}"
        );
        assert_eq!(
            calls[1], "mount None data None 0x1023 None",
            "bind|remount|nosuid|ro"
        );
        assert_eq!(
            calls[2],
            format!(
                "mount None data None {:#x} None",
                libc::MS_PRIVATE | libc::MS_REC
            )
        );
    }

    #[test]
    fn cgroup_mount_on_hybrid_host_is_tmpfs_plus_hierarchies() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(crate::fixtures::default_spec(), dir.path());
        let cg = plan
            .mounts
            .iter()
            .find(|m| m.kind == MountKind::Cgroup)
            .unwrap();
        let hier = crate::plan::cgroup_hierarchies(
            "32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
        );
        let rec = Recorder::default();
        let root: OwnedFd = std::fs::File::open("/").unwrap().into();
        mount_cgroups(&rec, root.as_fd(), cg, &hier).unwrap();
        let calls = rec.calls.borrow();
        assert!(
            calls[0].starts_with("mount Some(\"tmpfs\") sys/fs/cgroup Some(\"tmpfs\")"),
            "{calls:?}"
        );
        assert!(
            calls[1].contains("sys/fs/cgroup/cpu,cpuacct Some(\"cgroup\")")
                && calls[1].contains("Some(\"cpu,cpuacct\")")
        );
        assert_eq!(calls[2], "symlink \"cpu\" -> \"cpu,cpuacct\"");
        assert!(
            calls[4].contains("Some(\"tmpfs\")") && calls[4].ends_with("Some(\"mode=755\")"),
            "ro remount: {calls:?}"
        );
    }

    #[test]
    fn pivot_then_readonly_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = crate::fixtures::default_spec();
        spec.root_mut().as_mut().unwrap().set_readonly(Some(true));
        let plan = plan(spec, dir.path());
        let rec = Recorder::default();
        pivot(&rec, &plan).unwrap();
        finalize(&rec, &plan).unwrap();
        let calls = rec.calls.borrow();
        assert_eq!(calls[1], "pivot_root \".\" \".\"");
        assert_eq!(
            calls[2],
            format!(
                "mount None . None {:#x} None",
                libc::MS_REC | libc::MS_PRIVATE
            )
        );
        assert_eq!(calls[3], format!("umount2 . {}", libc::MNT_DETACH));
        assert!(
            calls[5].starts_with("mount None / None 0x1023"),
            "{calls:?}"
        );
    }

    #[test]
    fn pivot_falls_back_to_move_and_chroot_on_einval() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(crate::fixtures::default_spec(), dir.path());
        let rec = Recorder::default();
        rec.fail_pivot.set(true);
        pivot(&rec, &plan).unwrap();
        let calls = rec.calls.borrow();
        assert_eq!(calls[1], "pivot_root \".\" \".\"");
        assert_eq!(
            calls[2],
            format!("mount Some(\".\") / None {:#x} None", libc::MS_MOVE)
        );
        assert_eq!(calls[3], "chroot \".\"");
        assert_eq!(calls[4], "chdir /");
    }

    #[test]
    fn symlink_destination_stays_inside_the_rootfs() {
        use crate::syscall::LinuxSyscall;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let rootfd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        let err = ensure(&LinuxSyscall, rootfd.as_fd(), c"escape/x", Create::Dir).unwrap_err();
        assert!(
            matches!(err, RootfsError::DanglingSymlink(ref p) if p == "/escape"),
            "{err}"
        );
        assert!(!outside.exists(), "nothing was created outside the root");
        std::os::unix::fs::symlink("/inner", root.join("abs")).unwrap();
        std::fs::create_dir(root.join("inner")).unwrap();
        ensure(
            &LinuxSyscall,
            rootfd.as_fd(),
            c"abs/made/file",
            Create::File,
        )
        .unwrap();
        assert!(
            root.join("inner/made/file").is_file(),
            "absolute symlink resolved inside the root"
        );
    }
}
