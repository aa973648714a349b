//! Seccomp filters loaded in forked children: the child installs the
//! compiled program (after no_new_privs, so no root is needed), tries
//! syscalls and reports through its exit status.

mod security_common;

use libcontainer::capabilities::set_no_new_privileges;
use libcontainer::seccomp::SeccompProgram;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use security_common::{errno, profile, run, DOCKER_DEFAULT};
use serde_json::json;

fn compile(v: serde_json::Value) -> SeccompProgram {
    SeccompProgram::compile(&profile(v)).expect("compile")
}

/// Loads `program` in a child after no_new_privs, then runs `f`.
fn with_filter(program: &SeccompProgram, f: impl FnOnce() -> i32) -> WaitStatus {
    run(|| {
        if set_no_new_privileges().is_err() {
            return 90;
        }
        if program.load().is_err() {
            return 91;
        }
        f()
    })
}

/// getppid ignores its arguments, but seccomp sees them: a harmless probe.
fn getppid_with(arg0: u64) -> (i64, i32) {
    // SAFETY: getppid takes no arguments and has no side effects.
    let rc = unsafe { libc::syscall(libc::SYS_getppid, arg0) };
    (rc, if rc < 0 { errno() } else { 0 })
}

#[test]
fn denied_syscall_returns_the_configured_errno() {
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EADDRNOTAVAIL}]}));
    let status = with_filter(&p, || {
        let (rc, e) = getppid_with(0);
        // SAFETY: getpid has no side effects.
        let pid_ok = unsafe { libc::getpid() } > 0;
        match (rc, e, pid_ok) {
            (-1, libc::EADDRNOTAVAIL, true) => 0,
            (-1, _, _) => 2,
            _ => 3,
        }
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0));
}

#[test]
fn default_errno_ret_applies_to_unlisted_syscalls() {
    let p = compile(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENOMSG,
        "syscalls": [{"names": ["exit_group", "exit", "getpid"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    let status = with_filter(&p, || match getppid_with(0) {
        (-1, libc::ENOMSG) => 0,
        _ => 4,
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0));
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": action}]}));
        let status = with_filter(&p, || {
            getppid_with(0);
            5 // not reached
        });
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
            "{action}: {status:?}"
        );
    }
}

const PROBES: [u64; 5] = [0, 5, 6, 7, 0x1_0000_0005];

/// Bit i of the exit status is set when PROBES[i] got the errno.
fn matched_probes(p: &SeccompProgram) -> u8 {
    let status = with_filter(p, || {
        let mut bits = 0;
        for (i, v) in PROBES.iter().enumerate() {
            if getppid_with(*v) == (-1, libc::EDOM) {
                bits |= 1 << i;
            }
        }
        bits
    });
    match status {
        WaitStatus::Exited(_, code) => code as u8,
        other => panic!("child: {other:?}"),
    }
}

#[test]
fn every_comparison_matches_as_specified() {
    // value 6 (MASKED_EQ: mask 0xff, valueTwo 5); 64-bit values included.
    let cases: [(&str, u8); 7] = [
        ("SCMP_CMP_EQ", 0b00100),
        ("SCMP_CMP_NE", 0b11011),
        ("SCMP_CMP_LT", 0b00011),
        ("SCMP_CMP_LE", 0b00111),
        ("SCMP_CMP_GT", 0b11000),
        ("SCMP_CMP_GE", 0b11100),
        ("SCMP_CMP_MASKED_EQ", 0b10010),
    ];
    for (op, want) in cases {
        let (value, two) = if op == "SCMP_CMP_MASKED_EQ" {
            (0xff, 5)
        } else {
            (6, 0)
        };
        let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM,
             "args": [{"index": 0, "value": value, "valueTwo": two, "op": op}]}]}));
        assert_eq!(matched_probes(&p), want, "{op}");
    }
}

#[test]
fn masked_eq_on_high_bits() {
    // Match when bit 33 is set, whatever the low bits.
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM,
         "args": [{"index": 0, "value": 1u64 << 33, "valueTwo": 1u64 << 33,
                   "op": "SCMP_CMP_MASKED_EQ"}]}]}));
    let status = with_filter(&p, || {
        let hit = getppid_with((1 << 33) | 7) == (-1, libc::EDOM);
        let miss = getppid_with((1 << 32) | 7).0 > 0;
        if hit && miss {
            0
        } else {
            6
        }
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn same_argument_twice_is_or_and_different_arguments_are_and() {
    // Two comparisons of arg 0: either one matches.
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM, "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(matched_probes(&p), 0b01001);
    // arg0 == 5 AND arg1 == 0 (arg1 is 0 in every probe) vs arg1 == 1.
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM, "args": [
            {"index": 0, "value": 5, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    let status = with_filter(&p, || {
        // SAFETY: getppid ignores its arguments.
        let both = unsafe { libc::syscall(libc::SYS_getppid, 5u64, 1u64) } == -1;
        let one = unsafe { libc::syscall(libc::SYS_getppid, 5u64, 0u64) } > 0;
        if both && one {
            0
        } else {
            7
        }
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn filter_flags_load() {
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_LOG"}]}));
    let status = with_filter(&p, || if getppid_with(0).0 > 0 { 0 } else { 8 });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn docker_default_profile_allows_a_real_program_and_denies_the_rest() {
    let busybox = libcontainer::fixtures::static_busybox().expect("busybox-static");
    let spec: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(DOCKER_DEFAULT).unwrap();
    let p = SeccompProgram::compile(&spec).unwrap();
    let bb = std::ffi::CString::new(busybox.as_os_str().as_encoded_bytes()).unwrap();
    let argv = [
        c"sh".as_ptr(),
        c"-c".as_ptr(),
        c"echo hi > /dev/null && ls / >/dev/null".as_ptr(),
        std::ptr::null(),
    ];
    let status = with_filter(&p, || {
        // SAFETY: plain syscalls with valid arguments; unshare/personality
        // are expected to be refused by the filter.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != -1 || errno() != libc::EPERM {
                return 10;
            }
            if libc::syscall(libc::SYS_clone3, 0usize, 0usize) != -1 || errno() != libc::ENOSYS {
                return 11;
            }
            if libc::personality(1) != -1 || errno() != libc::EPERM {
                return 12;
            }
            if libc::personality(0xffff_ffff) == -1 {
                return 13;
            }
            if libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) != -1 || errno() != libc::EPERM {
                return 14;
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if s < 0 {
                return 15;
            }
            libc::close(s);
            // clone with a namespace flag is refused (MASKED_EQ rule) ...
            if libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWNET as u64 | libc::SIGCHLD as u64,
                0,
                0,
                0,
                0,
            ) != -1
                || errno() != libc::EPERM
            {
                return 16;
            }
            // ... a plain fork and exec of a shell work.
            libc::execv(bb.as_ptr(), argv.as_ptr());
        }
        17
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

fn status_pid(s: &WaitStatus) -> nix::unistd::Pid {
    s.pid().expect("pid")
}

#[test]
fn loading_without_no_new_privs_or_cap_sys_admin_is_a_clear_error() {
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let plan = libcontainer::capabilities::CapabilityPlan {
        last_cap: libcontainer::capabilities::kernel_last_cap(),
        ..Default::default()
    };
    // Report the error's errno through the exit status.
    let status = run(|| {
        if plan.apply().is_err() {
            return 90;
        }
        match p.load() {
            Err(libcontainer::seccomp::SeccompError::Load { errno, .. }) => errno as i32,
            _ => 0,
        }
    });
    assert!(
        matches!(status, WaitStatus::Exited(_, libc::EACCES)),
        "{status:?}"
    );
    let err = libcontainer::seccomp::SeccompError::Load {
        flags: 0,
        errno: nix::errno::Errno::EACCES,
    };
    assert!(err.to_string().contains("no_new_privs"), "{err}");
}
