//! Seccomp profiles in Docker's format: berthd's default profile (an
//! allowlist equivalent to Docker's default, kept as tables below) and
//! `--security-opt seccomp=PROFILE` (the docker CLI sends the file's
//! contents), resolved for the container's capabilities, the host
//! architecture and kernel into the OCI `linux.seccomp` that
//! libcontainer compiles.
//!
//! Docker's profile format: `defaultAction`, `defaultErrnoRet`,
//! `architectures` or `archMap`, and `syscalls` rules with `names`,
//! `action`, `errnoRet`, `args`, and `includes`/`excludes` conditions on
//! capabilities (all listed must be held), architectures and `minKernel`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Errors in a `--security-opt seccomp=…` profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not valid JSON of Docker's profile format.
    #[error("decoding seccomp profile failed: {0}")]
    Decode(String),
    /// A rule has no syscall names.
    #[error("seccomp profile: syscalls[{0}] has no names")]
    NoNames(usize),
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// berthd's default profile.
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=PROFILE` (JSON text in Docker's format).
    Custom(String),
}

/// Picks the seccomp choice out of `HostConfig.SecurityOpt` (the last
/// `seccomp` entry wins; `seccomp=builtin` is the default).
pub fn choice(security_opt: &[String]) -> Choice {
    let mut c = Choice::Default;
    for o in security_opt {
        let Some(v) = o
            .strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
        else {
            continue;
        };
        c = match v.trim() {
            "unconfined" => Choice::Unconfined,
            "" | "builtin" => Choice::Default,
            text => Choice::Custom(text.to_string()),
        };
    }
    c
}

/// A Docker seccomp profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Action for syscalls no rule names.
    pub default_action: String,
    /// Errno of an `SCMP_ACT_ERRNO` default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures (SCMP names), when there is no `archMap`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Native architecture → sub-architectures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    /// `SECCOMP_FILTER_FLAG_*` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture (`SCMP_ARCH_X86_64`).
    pub architecture: String,
    /// Architectures its processes may also use (`SCMP_ARCH_X86` …).
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Syscall names.
    #[serde(default)]
    pub names: Vec<String>,
    /// One syscall name (the old form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO` …
    pub action: String,
    /// Errno of `SCMP_ACT_ERRNO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions (all must hold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// The rule applies only when all of these hold.
    #[serde(default)]
    pub includes: Condition,
    /// The rule does not apply when any of these holds.
    #[serde(default)]
    pub excludes: Condition,
}

/// An argument condition (the OCI spec's shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Argument index.
    pub index: u32,
    /// Compared value.
    pub value: u64,
    /// Second value (`SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_NE`, `SCMP_CMP_MASKED_EQ` …
    pub op: String,
}

/// `includes`/`excludes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Capabilities (`CAP_SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Architectures as Go names them (`amd64`, `arm64` …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// Kernel version (`4.8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// Where the profile is resolved: capabilities, architecture, kernel.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The container's capabilities (`CAP_…`).
    pub caps: &'a [String],
    /// Go's name of the architecture (`amd64`).
    pub arch: &'a str,
    /// Kernel (major, minor).
    pub kernel: (u32, u32),
}

impl Target<'_> {
    /// The running host with `caps`.
    pub fn host(caps: &[String]) -> Target<'_> {
        Target {
            caps,
            arch: go_arch(std::env::consts::ARCH),
            kernel: host_kernel(),
        }
    }
}

/// Go's architecture name (what Docker profiles use) of a Rust one.
pub fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "mips64" => "mips64le",
        other => other,
    }
}

fn scmp_native(go: &str) -> &'static str {
    match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "s390x" => "SCMP_ARCH_S390X",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "loong64" => "SCMP_ARCH_LOONGARCH64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        _ => "",
    }
}

fn host_kernel() -> (u32, u32) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_kernel(&release).unwrap_or((0, 0))
}

fn parse_kernel(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl Profile {
    /// Parses a profile in Docker's format.
    pub fn parse(text: &str) -> Result<Profile, SeccompError> {
        let p: Profile =
            serde_json::from_str(text).map_err(|e| SeccompError::Decode(e.to_string()))?;
        for (i, r) in p.syscalls.iter().enumerate() {
            if r.names.is_empty() && r.name.is_none() {
                return Err(SeccompError::NoNames(i));
            }
        }
        Ok(p)
    }

    /// The OCI `linux.seccomp` for `target`: rules whose conditions do not
    /// hold are left out, `archMap` picks the native architecture's entry.
    pub fn resolve(&self, target: &Target<'_>) -> Value {
        let native = scmp_native(target.arch);
        let mut arches: Vec<String> = Vec::new();
        if self.arch_map.is_empty() {
            arches.clone_from(&self.architectures);
        } else {
            for a in self.arch_map.iter().filter(|a| a.architecture == native) {
                arches.push(a.architecture.clone());
                arches.extend(a.sub_architectures.iter().cloned());
            }
        }
        let syscalls: Vec<Value> = self
            .syscalls
            .iter()
            .filter(|r| applies(r, target))
            .map(|r| {
                let mut names = r.names.clone();
                names.extend(r.name.clone());
                let mut v = json!({"names": names, "action": r.action});
                if let Some(e) = r.errno_ret {
                    v["errnoRet"] = json!(e);
                }
                if !r.args.is_empty() {
                    v["args"] = json!(r.args);
                }
                v
            })
            .collect();
        let mut v = json!({
            "defaultAction": self.default_action,
            "architectures": arches,
            "syscalls": syscalls,
        });
        if let Some(e) = self.default_errno_ret {
            v["defaultErrnoRet"] = json!(e);
        }
        if !self.flags.is_empty() {
            v["flags"] = json!(self.flags);
        }
        v
    }
}

fn applies(r: &Rule, t: &Target<'_>) -> bool {
    let has = |c: &String| t.caps.iter().any(|h| h == c);
    let kernel_at_least = |v: &Option<String>| {
        v.as_deref()
            .and_then(parse_kernel)
            .is_some_and(|min| t.kernel >= min)
    };
    let (inc, exc) = (&r.includes, &r.excludes);
    if exc.arches.iter().any(|a| a == t.arch)
        || exc.caps.iter().any(has)
        || kernel_at_least(&exc.min_kernel)
    {
        return false;
    }
    (inc.arches.is_empty() || inc.arches.iter().any(|a| a == t.arch))
        && inc.caps.iter().all(has)
        && (inc.min_kernel.is_none() || kernel_at_least(&inc.min_kernel))
}

/// The OCI `linux.seccomp` for `choice` on this host with `caps`; None
/// when unconfined.
pub fn for_container(choice: &Choice, caps: &[String]) -> Result<Option<Value>, SeccompError> {
    let target = Target::host(caps);
    match choice {
        Choice::Unconfined => Ok(None),
        Choice::Default => Ok(Some(default_profile().resolve(&target))),
        Choice::Custom(text) => Ok(Some(Profile::parse(text)?.resolve(&target))),
    }
}

/// Syscalls every container may make (Docker's default allowlist; names a
/// kernel or architecture lacks are skipped when compiled).
#[rustfmt::skip]
pub const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
    "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
    "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
    "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc",
    "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
    "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause",
    "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
    "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes",
    "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
];

/// Syscalls allowed when the container holds a capability (Docker's
/// conditional rules).
#[rustfmt::skip]
pub const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
            "fspick", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
            "name_to_handle_at", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
            "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Architecture-specific syscalls (Go architecture names).
#[rustfmt::skip]
pub const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32", "386"], &["arch_prctl", "modify_ldt"]),
    (
        &["arm", "arm64"],
        &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    ),
    (
        &["s390", "s390x"],
        &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// `personality` values a container may set (Linux, `PER_LINUX32`,
/// `UNAME26`, both, and the query `0xffffffff`).
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// The namespace flags of `clone` that need `CAP_SYS_ADMIN` (NEWNS,
/// NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET).
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// berthd's default profile: deny (EPERM) what is not allowed.
pub fn default_profile() -> Profile {
    let allow = |names: &[&str]| Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: "SCMP_ACT_ALLOW".into(),
        ..Default::default()
    };
    let caps = |c: &str| Condition {
        caps: vec![c.to_string()],
        ..Default::default()
    };
    let mut rules = vec![allow(ALLOWED)];
    for p in PERSONALITIES {
        rules.push(Rule {
            args: vec![Arg {
                index: 0,
                value: *p,
                value_two: 0,
                op: "SCMP_CMP_EQ".into(),
            }],
            ..allow(&["personality"])
        });
    }
    // AF_VSOCK sockets reach the hypervisor: not by default.
    rules.push(Rule {
        args: vec![Arg {
            index: 0,
            value: libc::AF_VSOCK as u64,
            value_two: 0,
            op: "SCMP_CMP_NE".into(),
        }],
        ..allow(&["socket"])
    });
    // ptrace and process_vm_* are safe from kernel 4.8 on.
    rules.push(Rule {
        includes: Condition {
            min_kernel: Some("4.8".into()),
            ..Default::default()
        },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    for (arches, names) in BY_ARCH {
        rules.push(Rule {
            includes: Condition {
                arches: arches.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            ..allow(names)
        });
    }
    for (cap, names) in BY_CAPABILITY {
        rules.push(Rule {
            includes: caps(cap),
            ..allow(names)
        });
    }
    // Without CAP_SYS_ADMIN: clone without namespace flags (the flags are
    // argument 1 on s390), clone3 answers ENOSYS so libc falls back to it.
    for (index, arches) in [(0, false), (1, true)] {
        let s390 = vec!["s390".to_string(), "s390x".to_string()];
        let (includes, excludes) = if arches {
            (s390, Vec::new())
        } else {
            (Vec::new(), s390)
        };
        rules.push(Rule {
            args: vec![Arg {
                index,
                value: CLONE_NAMESPACES,
                value_two: 0,
                op: "SCMP_CMP_MASKED_EQ".into(),
            }],
            includes: Condition {
                arches: includes,
                ..Default::default()
            },
            excludes: Condition {
                caps: vec!["CAP_SYS_ADMIN".into()],
                arches: excludes,
                ..Default::default()
            },
            ..allow(&["clone"])
        });
    }
    rules.push(Rule {
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: caps("CAP_SYS_ADMIN"),
        ..allow(&["clone3"])
    });
    let arch_map = |native: &str, subs: &[&str]| ArchMap {
        architecture: native.into(),
        sub_architectures: subs.iter().map(|s| s.to_string()).collect(),
    };
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: vec![
            arch_map("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            arch_map("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
            arch_map("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
            arch_map("SCMP_ARCH_PPC64LE", &[]),
            arch_map("SCMP_ARCH_RISCV64", &[]),
            arch_map("SCMP_ARCH_LOONGARCH64", &[]),
            arch_map(
                "SCMP_ARCH_MIPSEL64",
                &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
            ),
        ],
        syscalls: rules,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_allowed(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    fn amd64(caps: &[String]) -> Target<'_> {
        Target {
            caps,
            arch: "amd64",
            kernel: (6, 1),
        }
    }

    #[test]
    fn default_is_an_allowlist_conditioned_on_caps_and_arch() {
        let v = default_profile().resolve(&amd64(&[]));
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let allowed = names_allowed(&v);
        for n in ["read", "execve", "arch_prctl", "ptrace", "mkdir"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        for n in [
            "unshare",
            "mount",
            "setns",
            "reboot",
            "init_module",
            "keyctl",
            "chroot",
        ] {
            assert!(!allowed.contains(&n.to_string()), "{n}");
        }
        // clone with a namespace-flag mask, clone3 ENOSYS.
        let rules = v["syscalls"].as_array().unwrap();
        let clone: Vec<_> = rules
            .iter()
            .filter(|r| r["names"] == json!(["clone"]))
            .collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["index"], 0);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        let clone3 = rules
            .iter()
            .find(|r| r["names"] == json!(["clone3"]))
            .unwrap();
        assert_eq!(clone3["errnoRet"], libc::ENOSYS);

        let caps = vec!["CAP_SYS_ADMIN".to_string(), "CAP_SYS_CHROOT".to_string()];
        let v = default_profile().resolve(&amd64(&caps));
        let allowed = names_allowed(&v);
        for n in ["unshare", "mount", "clone", "clone3", "chroot"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        // No masked clone rule or clone3 ENOSYS with CAP_SYS_ADMIN.
        let rules = v["syscalls"].as_array().unwrap();
        assert!(!rules
            .iter()
            .any(|r| r.get("args").is_some() && r["names"] == json!(["clone"])));
        // Old kernels: no ptrace.
        let old = Target {
            kernel: (4, 4),
            ..amd64(&[])
        };
        assert!(!names_allowed(&default_profile().resolve(&old)).contains(&"ptrace".into()));
        let arm = Target {
            arch: "arm64",
            ..amd64(&[])
        };
        let v = default_profile().resolve(&arm);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(!names_allowed(&v).contains(&"arch_prctl".into()));
    }

    #[test]
    fn security_opts_pick_the_profile() {
        let o = |s: &[&str]| choice(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(o(&[]), Choice::Default);
        assert_eq!(o(&["no-new-privileges"]), Choice::Default);
        assert_eq!(o(&["seccomp=unconfined"]), Choice::Unconfined);
        assert_eq!(o(&["seccomp:unconfined"]), Choice::Unconfined);
        assert_eq!(o(&["seccomp={}"]), Choice::Custom("{}".into()));
        assert!(for_container(&Choice::Unconfined, &[]).unwrap().is_none());
    }

    #[test]
    fn custom_profiles_resolve_and_bad_ones_are_named() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"name": "chroot", "action": "SCMP_ACT_ERRNO",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#;
        let v = Profile::parse(text).unwrap().resolve(&amd64(&[]));
        assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(v["syscalls"][0]["errnoRet"], 1);
        // The resolved profile is what the OCI spec takes.
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v).unwrap();
        let e = Profile::parse("{nope").unwrap_err().to_string();
        assert!(e.starts_with("decoding seccomp profile failed"), "{e}");
        let e = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("syscalls[0]"), "{e}");
    }

    #[test]
    fn default_profile_compiles_with_libseccomp() {
        let caps: Vec<String> = super::super::spec::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let v = for_container(&Choice::Default, &caps).unwrap().unwrap();
        let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v).unwrap();
        libcontainer::seccomp::SeccompProgram::compile(&s).unwrap();
    }
}
