//! The kernel calls that set up a container's filesystem, behind a trait so
//! that the mount logic can be unit-tested without root (youki's model).
//!
//! [`LinuxSyscall`] calls the kernel; tests use a recorder that logs calls.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Turn a `-1` return into the thread's errno.
pub(crate) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The path through which the kernel reaches an open file: mounting onto it
/// mounts onto exactly the file we opened, whatever a symlink says later.
pub fn fd_path(fd: RawFd) -> CString {
    // A formatted integer never contains NUL.
    CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

/// Kernel calls used while building a container's root filesystem.
pub trait Syscall {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()>;
    /// umount2(2).
    fn umount2(&self, target: &CStr, flags: libc::c_int) -> io::Result<()>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> io::Result<()>;
    /// chroot(2).
    fn chroot(&self, path: &CStr) -> io::Result<()>;
    /// chdir(2).
    fn chdir(&self, path: &CStr) -> io::Result<()>;
    /// mknodat(2) of `name` (no slash) in the directory `dir`.
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: libc::mode_t,
        dev: libc::dev_t,
    ) -> io::Result<()>;
    /// fchownat(2) without following a final symlink.
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        uid: libc::uid_t,
        gid: libc::gid_t,
    ) -> io::Result<()>;
    /// symlinkat(2): create `name` in `dir` pointing at `target`.
    fn symlinkat(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()>;
    /// mkdirat(2).
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()>;
    /// openat(2) of a single component (callers pass O_NOFOLLOW|O_EXCL to create).
    fn openat(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<OwnedFd>;
    /// openat2(2) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: symlinks are
    /// resolved as if `root` were `/`, so nothing escapes it.
    fn open_in_root(
        &self,
        root: BorrowedFd<'_>,
        path: &CStr,
        flags: libc::c_int,
    ) -> io::Result<OwnedFd>;
    /// sethostname(2).
    fn sethostname(&self, name: &[u8]) -> io::Result<()>;
    /// setdomainname(2).
    fn setdomainname(&self, name: &[u8]) -> io::Result<()>;
    /// Flags of the mount holding `path` (statvfs f_flag translated to MS_*).
    fn mount_flags(&self, path: &CStr) -> io::Result<libc::c_ulong>;
    /// A user namespace holding these `uid_map`/`gid_map` lines, as an fd
    /// of `/proc/PID/ns/user` of a short-lived child living in it.
    fn new_userns(&self, uid_map: &[u8], gid_map: &[u8]) -> io::Result<OwnedFd>;
    /// open_tree(2) of a host path with OPEN_TREE_CLONE: a detached copy
    /// of the mount (of the whole tree below it with `recursive`).
    fn open_tree(&self, path: &CStr, recursive: bool) -> io::Result<OwnedFd>;
    /// mount_setattr(2) on the detached mount `tree` itself.
    fn mount_setattr(
        &self,
        tree: BorrowedFd<'_>,
        recursive: bool,
        attr: &MountAttr,
    ) -> io::Result<()>;
    /// move_mount(2) of the detached mount `tree` onto the opened `target`.
    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()>;
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    /// MOUNT_ATTR_* to set.
    pub attr_set: u64,
    /// MOUNT_ATTR_* to clear.
    pub attr_clr: u64,
    /// MS_* propagation (0: unchanged).
    pub propagation: u64,
    /// The user namespace of MOUNT_ATTR_IDMAP.
    pub userns_fd: u64,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Write the maps of a child that sits in a fresh user namespace and open
/// that namespace.
fn userns_of(pid: i32, uid_map: &[u8], gid_map: &[u8]) -> io::Result<OwnedFd> {
    // Root of the parent namespace may write gid_map without "deny" in setgroups.
    std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
    std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
    Ok(std::fs::File::open(format!("/proc/{pid}/ns/user"))?.into())
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

fn opt_ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> io::Result<()> {
        // SAFETY: all pointers are NUL-terminated strings or null, valid for the call.
        check(unsafe {
            libc::mount(
                opt_ptr(source),
                target.as_ptr(),
                opt_ptr(fstype),
                flags,
                opt_ptr(data).cast(),
            )
        })
        .map(drop)
    }

    fn umount2(&self, target: &CStr, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: target is a valid C string.
        check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> io::Result<()> {
        // SAFETY: both are valid C strings; pivot_root has no libc wrapper.
        let ret =
            unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
        check(ret as libc::c_int).map(drop)
    }

    fn chroot(&self, path: &CStr) -> io::Result<()> {
        // SAFETY: valid C string.
        check(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
    }

    fn chdir(&self, path: &CStr) -> io::Result<()> {
        // SAFETY: valid C string.
        check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        mode: libc::mode_t,
        dev: libc::dev_t,
    ) -> io::Result<()> {
        // SAFETY: dir is an open fd, name a valid C string.
        check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
    }

    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        uid: libc::uid_t,
        gid: libc::gid_t,
    ) -> io::Result<()> {
        // SAFETY: dir is an open fd, name a valid C string.
        check(unsafe {
            libc::fchownat(
                dir.as_raw_fd(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }

    fn symlinkat(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        // SAFETY: dir is an open fd, both strings valid.
        check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
    }

    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
        // SAFETY: dir is an open fd, name a valid C string.
        check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
    }

    fn openat(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<OwnedFd> {
        // SAFETY: dir is an open fd, name a valid C string.
        let fd = check(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: the kernel just gave us this fd and nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn open_in_root(
        &self,
        root: BorrowedFd<'_>,
        path: &CStr,
        flags: libc::c_int,
    ) -> io::Result<OwnedFd> {
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: `how` is a valid open_how of the size we pass; path is a C string.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let fd = check(fd as libc::c_int)?;
        // SAFETY: the kernel just gave us this fd and nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn sethostname(&self, name: &[u8]) -> io::Result<()> {
        // SAFETY: pointer and length describe `name`.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
    }

    fn setdomainname(&self, name: &[u8]) -> io::Result<()> {
        // SAFETY: pointer and length describe `name`.
        check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
    }

    fn mount_flags(&self, path: &CStr) -> io::Result<libc::c_ulong> {
        // SAFETY: an all-zero statvfs is a valid out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: path is a C string, st a valid out-pointer.
        check(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
        let f = st.f_flag;
        let mut out = 0;
        for (vfs, ms) in [
            (libc::ST_RDONLY, libc::MS_RDONLY),
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f & vfs != 0 {
                out |= ms;
            }
        }
        Ok(out)
    }

    fn new_userns(&self, uid_map: &[u8], gid_map: &[u8]) -> io::Result<OwnedFd> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array of two ints.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: the kernel just gave us these fds and nobody else owns them.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child only calls close, read and _exit (async-signal-safe).
        match unsafe { crate::clone::clone_process(libc::CLONE_NEWUSER, None)? } {
            crate::clone::Forked::Child => {
                // SAFETY: plain calls on our copies of the pipe fds; the
                // read returns when the parent closes its write end.
                unsafe {
                    libc::close(wr.as_raw_fd());
                    let mut b = 0u8;
                    libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                    libc::_exit(0)
                }
            }
            crate::clone::Forked::Parent(pid) => {
                drop(rd);
                let ns = userns_of(pid, uid_map, gid_map);
                drop(wr);
                // SAFETY: reaping our own child; a null status is allowed.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                ns
            }
        }
    }

    fn open_tree(&self, path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
        let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
        if recursive {
            flags |= AT_RECURSIVE;
        }
        // SAFETY: path is a C string; open_tree has no libc wrapper.
        let fd =
            unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
        let fd = check(fd as libc::c_int)?;
        // SAFETY: the kernel just gave us this fd and nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn mount_setattr(
        &self,
        tree: BorrowedFd<'_>,
        recursive: bool,
        attr: &MountAttr,
    ) -> io::Result<()> {
        let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
        if recursive {
            flags |= AT_RECURSIVE;
        }
        // SAFETY: tree is an open fd, "" a C string, attr a valid
        // mount_attr of the size given; no libc wrapper exists.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                flags,
                attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        check(ret as libc::c_int).map(drop)
    }

    fn move_mount(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: both fds are open, "" is a C string; no libc wrapper exists.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                target.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        check(ret as libc::c_int).map(drop)
    }
}

#[cfg(test)]
pub(crate) mod recorder {
    //! A fake kernel that records calls, for unit tests without root.
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Records every call as a line of text; opened paths get real fds
    /// (of /dev/null) so that `/proc/self/fd/N` names map back to paths.
    #[derive(Default)]
    pub struct Recorder {
        pub calls: RefCell<Vec<String>>,
        fds: RefCell<HashMap<String, String>>,
        /// Make pivot_root fail with EINVAL (a rootfs on the initramfs).
        pub fail_pivot: std::cell::Cell<bool>,
    }

    impl Recorder {
        fn name(&self, target: &CStr) -> String {
            let t = target.to_string_lossy().into_owned();
            self.fds.borrow().get(&t).cloned().unwrap_or(t)
        }
        fn log(&self, s: String) {
            self.calls.borrow_mut().push(s);
        }
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: Option<&CStr>,
            target: &CStr,
            fstype: Option<&CStr>,
            flags: libc::c_ulong,
            data: Option<&CStr>,
        ) -> io::Result<()> {
            let s = |o: Option<&CStr>| o.map(|c| c.to_string_lossy().into_owned());
            let source = source.map(|c| self.name(c));
            self.log(format!(
                "mount {:?} {} {:?} {:#x} {:?}",
                source,
                self.name(target),
                s(fstype),
                flags,
                s(data)
            ));
            Ok(())
        }
        fn umount2(&self, target: &CStr, flags: libc::c_int) -> io::Result<()> {
            self.log(format!("umount2 {} {flags}", self.name(target)));
            Ok(())
        }
        fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> io::Result<()> {
            self.log(format!("pivot_root {new_root:?} {put_old:?}"));
            if self.fail_pivot.get() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(())
        }
        fn chroot(&self, path: &CStr) -> io::Result<()> {
            self.log(format!("chroot {path:?}"));
            Ok(())
        }
        fn chdir(&self, path: &CStr) -> io::Result<()> {
            self.log(format!("chdir {}", self.name(path)));
            Ok(())
        }
        fn mknodat(
            &self,
            _dir: BorrowedFd<'_>,
            name: &CStr,
            mode: libc::mode_t,
            dev: libc::dev_t,
        ) -> io::Result<()> {
            self.log(format!("mknod {name:?} {mode:o} {dev}"));
            Ok(())
        }
        fn fchownat(
            &self,
            _dir: BorrowedFd<'_>,
            name: &CStr,
            uid: libc::uid_t,
            gid: libc::gid_t,
        ) -> io::Result<()> {
            self.log(format!("chown {name:?} {uid}:{gid}"));
            Ok(())
        }
        fn symlinkat(&self, target: &CStr, _dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
            self.log(format!("symlink {name:?} -> {target:?}"));
            Ok(())
        }
        fn mkdirat(
            &self,
            _dir: BorrowedFd<'_>,
            name: &CStr,
            _mode: libc::mode_t,
        ) -> io::Result<()> {
            self.log(format!("mkdir {name:?}"));
            Ok(())
        }
        fn openat(
            &self,
            _dir: BorrowedFd<'_>,
            name: &CStr,
            _flags: libc::c_int,
            _mode: libc::mode_t,
        ) -> io::Result<OwnedFd> {
            self.log(format!("create {name:?}"));
            Ok(std::fs::File::open("/dev/null")?.into())
        }
        fn open_in_root(
            &self,
            _root: BorrowedFd<'_>,
            path: &CStr,
            _flags: libc::c_int,
        ) -> io::Result<OwnedFd> {
            let fd: OwnedFd = std::fs::File::open("/dev/null")?.into();
            self.fds.borrow_mut().insert(
                fd_path(fd.as_raw_fd()).to_string_lossy().into_owned(),
                path.to_string_lossy().into_owned(),
            );
            Ok(fd)
        }
        fn sethostname(&self, name: &[u8]) -> io::Result<()> {
            self.log(format!("sethostname {}", String::from_utf8_lossy(name)));
            Ok(())
        }
        fn setdomainname(&self, name: &[u8]) -> io::Result<()> {
            self.log(format!("setdomainname {}", String::from_utf8_lossy(name)));
            Ok(())
        }
        fn mount_flags(&self, _path: &CStr) -> io::Result<libc::c_ulong> {
            Ok(libc::MS_NOSUID)
        }
        fn new_userns(&self, uid_map: &[u8], gid_map: &[u8]) -> io::Result<OwnedFd> {
            self.log(format!(
                "userns uid_map={:?} gid_map={:?}",
                String::from_utf8_lossy(uid_map),
                String::from_utf8_lossy(gid_map)
            ));
            Ok(std::fs::File::open("/dev/null")?.into())
        }
        fn open_tree(&self, path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
            self.log(format!("open_tree {path:?} recursive={recursive}"));
            Ok(std::fs::File::open("/dev/null")?.into())
        }
        fn mount_setattr(
            &self,
            _tree: BorrowedFd<'_>,
            recursive: bool,
            attr: &MountAttr,
        ) -> io::Result<()> {
            self.log(format!(
                "mount_setattr set={:#x} clr={:#x} recursive={recursive}",
                attr.attr_set, attr.attr_clr
            ));
            Ok(())
        }
        fn move_mount(&self, _tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
            let t = fd_path(target.as_raw_fd());
            self.log(format!("move_mount {}", self.name(&t)));
            Ok(())
        }
    }
}
