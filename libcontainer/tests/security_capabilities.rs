//! Capabilities applied in forked children (root): a dropped capability
//! makes the operation it guards fail, the bounding set shrinks, and an
//! ambient capability survives setuid + exec of a non-root helper.

mod security_common;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use libcontainer::capabilities::{
    host_bounding_set, kernel_last_cap, set_keep_caps, set_no_new_privileges, CapabilityPlan,
};
use nix::sys::wait::WaitStatus;
use security_common::{errno, root_or_skip, run};

const CHOWN: u64 = 1 << 0;
const NET_RAW: u64 = 1 << 13;
const SETPCAP: u64 = 1 << 8;

/// Everything the host lets us hold, minus `drop`, in every set but ambient.
fn all_but(drop: u64) -> CapabilityPlan {
    let last_cap = kernel_last_cap();
    let all = host_bounding_set(last_cap) & !drop;
    CapabilityPlan {
        bounding: all,
        effective: all,
        inheritable: all,
        permitted: all,
        ambient: 0,
        last_cap,
    }
}

fn exited(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child: {other:?}"),
    }
}

fn try_chown(plan: CapabilityPlan, path: &CString) -> i32 {
    exited(run(|| {
        if plan.drop_bounding().is_err() || plan.apply().is_err() {
            return 90;
        }
        // SAFETY: chown of a valid path.
        match unsafe { libc::chown(path.as_ptr(), 4242, 4242) } {
            0 => 0,
            _ if errno() == libc::EPERM => 1,
            _ => 2,
        }
    }))
}

#[test]
fn dropped_cap_chown_makes_chown_fail() {
    if !root_or_skip("dropped_cap_chown_makes_chown_fail") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let c = CString::new(file.to_str().unwrap()).unwrap();
    assert_eq!(try_chown(all_but(CHOWN), &c), 1, "chown without CAP_CHOWN");
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);
    assert_eq!(try_chown(all_but(0), &c), 0, "chown with CAP_CHOWN");
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 4242);
}

#[test]
fn dropped_cap_net_raw_makes_raw_sockets_fail() {
    if !root_or_skip("dropped_cap_net_raw_makes_raw_sockets_fail") {
        return;
    }
    let raw_socket = |plan: CapabilityPlan| {
        exited(run(|| {
            if plan.drop_bounding().is_err() || plan.apply().is_err() {
                return 90;
            }
            // SAFETY: socket with constant arguments; closed below.
            let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
            if s >= 0 {
                // SAFETY: `s` is our socket.
                unsafe { libc::close(s) };
                return 0;
            }
            if errno() == libc::EPERM {
                1
            } else {
                2
            }
        }))
    };
    assert_eq!(raw_socket(all_but(NET_RAW)), 1);
    assert_eq!(raw_socket(all_but(0)), 0);
}

#[test]
fn bounding_set_is_dropped_and_no_new_privs_sticks() {
    if !root_or_skip("bounding_set_is_dropped_and_no_new_privs_sticks") {
        return;
    }
    let plan = all_but(NET_RAW | SETPCAP);
    let code = exited(run(|| {
        if plan.drop_bounding().is_err() || plan.apply().is_err() {
            return 90;
        }
        if set_no_new_privileges().is_err() {
            return 91;
        }
        // SAFETY: prctl reads with integer arguments.
        unsafe {
            if libc::prctl(libc::PR_CAPBSET_READ, 13) != 0 {
                return 3;
            }
            if libc::prctl(libc::PR_CAPBSET_READ, 0) != 1 {
                return 4;
            }
            if libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 {
                return 5;
            }
        }
        // Without CAP_SETPCAP the bounding set can no longer be changed.
        if all_but(CHOWN | NET_RAW | SETPCAP).drop_bounding().is_ok() {
            return 6;
        }
        0
    }));
    assert_eq!(code, 0);
}

/// Becomes `nobody` keeping caps, applies `plan`, and execs busybox chown.
fn chown_as_nobody(plan: CapabilityPlan, file: &std::path::Path) -> i32 {
    let busybox = libcontainer::fixtures::static_busybox().expect("busybox-static");
    let bb = CString::new(busybox.to_str().unwrap()).unwrap();
    let target = CString::new(file.to_str().unwrap()).unwrap();
    let argv = [
        c"chown".as_ptr(),
        c"65534".as_ptr(),
        target.as_ptr(),
        std::ptr::null(),
    ];
    exited(run(|| {
        if plan.drop_bounding().is_err() || set_keep_caps(true).is_err() {
            return 90;
        }
        // SAFETY: credential changes of this child only.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(65534, 65534, 65534) != 0
                || libc::setresuid(65534, 65534, 65534) != 0
            {
                return 91;
            }
        }
        if set_keep_caps(false).is_err() || plan.apply().is_err() {
            return 92;
        }
        // SAFETY: valid NUL-terminated argv; on success this never returns.
        unsafe { libc::execv(bb.as_ptr(), argv.as_ptr()) };
        93
    }))
}

#[test]
fn ambient_capability_survives_exec_of_a_non_root_helper() {
    if !root_or_skip("ambient_capability_survives_exec_of_a_non_root_helper") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("owned-by-root");
    std::fs::write(&file, "x").unwrap();
    let last_cap = kernel_last_cap();
    let with = |ambient| CapabilityPlan {
        bounding: CHOWN,
        effective: CHOWN,
        inheritable: CHOWN,
        permitted: CHOWN,
        ambient,
        last_cap,
    };
    // Without the ambient set, nobody's exec'd chown has no capability.
    assert_eq!(chown_as_nobody(with(0), &file), 1);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);
    assert_eq!(chown_as_nobody(with(CHOWN), &file), 0);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 65534);
}

#[test]
fn caps_the_host_lacks_are_left_out_instead_of_failing() {
    if !root_or_skip("caps_the_host_lacks_are_left_out_instead_of_failing") {
        return;
    }
    let last_cap = kernel_last_cap();
    let every = if last_cap >= 63 {
        u64::MAX
    } else {
        (1 << (last_cap + 1)) - 1
    };
    let plan = CapabilityPlan {
        bounding: every,
        effective: every,
        inheritable: every,
        permitted: every,
        ambient: 0,
        last_cap,
    };
    let code = exited(run(|| if plan.apply().is_ok() { 0 } else { 1 }));
    assert_eq!(code, 0);
}
