//! Root tests: all six hooks run at their point with the state on stdin,
//! and a failing hook fails the operation leaving nothing behind.

mod core_common;

use core_common::{assert_no_children, root_or_skip, Env};
use oci_spec::runtime::{Hook, HookBuilder, HooksBuilder, Spec};
use std::path::Path;

/// A hook that appends `<name> <status> <pid-seen>` and its ns to `log`.
fn recorder(name: &str, log: &Path) -> Hook {
    let script = format!(
        "read -r state; s=${{state#*\\\"status\\\":\\\"}}; echo \"{name} ${{s%%\\\"*}} $(readlink /proc/self/ns/mnt)\" >> {}",
        log.display()
    );
    HookBuilder::default()
        .path("/bin/sh")
        .args(vec!["sh".to_string(), "-c".to_string(), script])
        .build()
        .unwrap()
}

fn failing(code: i32) -> Hook {
    HookBuilder::default()
        .path("/bin/sh")
        .args(vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("exit {code}"),
        ])
        .build()
        .unwrap()
}

/// startContainer runs after pivot_root: it logs through the /out bind.
fn set_hooks(s: &mut Spec, log: &Path, fail: Option<&str>) {
    let h = |n: &str| {
        let path = if n == "startContainer" {
            Path::new("/out/hooks.log")
        } else {
            log
        };
        let mut v = vec![recorder(n, path)];
        if fail == Some(n) {
            v.push(failing(9));
        }
        v
    };
    s.set_hooks(Some(
        HooksBuilder::default()
            .prestart(h("prestart"))
            .create_runtime(h("createRuntime"))
            .create_container(h("createContainer"))
            .start_container(h("startContainer"))
            .poststart(h("poststart"))
            .poststop(h("poststop"))
            .build()
            .unwrap(),
    ));
}

#[test]
fn all_hooks_run_in_order_with_state() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("echo ran");
    let log = env.out.join("hooks.log");
    env.edit_spec(|s| set_hooks(s, &log, None));
    let (code, out) = env.run("hooks");
    assert_eq!((code, out.as_str()), (0, "ran\n"));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let names: Vec<&str> = lines.iter().map(|l| l[0]).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_mnt = host_mnt.to_str().unwrap();
    assert_eq!(
        lines[0][2], host_mnt,
        "prestart runs in the runtime namespace"
    );
    assert_eq!(
        lines[1][2], host_mnt,
        "createRuntime runs in the runtime namespace"
    );
    assert_ne!(
        lines[2][2], host_mnt,
        "createContainer runs in the container namespace"
    );
    assert_ne!(
        lines[3][2], host_mnt,
        "startContainer runs in the container namespace"
    );
    assert_eq!(lines[0][1], "creating");
    assert_eq!(lines[4][1], "running");
    assert_eq!(lines[5][1], "stopped");
}

#[test]
fn failing_create_hooks_fail_create_and_leave_nothing() {
    if !root_or_skip() {
        return;
    }
    for phase in ["prestart", "createRuntime", "createContainer"] {
        let env = Env::new("echo never");
        let log = env.out.join("hooks.log");
        env.edit_spec(|s| set_hooks(s, &log, Some(phase)));
        let err = env.create("failhook").unwrap_err().to_string();
        assert!(
            err.contains(&format!("{phase} hook 1")) && err.contains("exit status 9"),
            "{err}"
        );
        assert!(!env.state_dir("failhook").exists(), "state dir removed");
        assert_no_children();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.lines().last().unwrap().starts_with("poststop"),
            "poststop runs after a failed {phase}: {text}"
        );
        assert_eq!(env.log(), "");
    }
}

#[test]
fn failing_poststart_and_poststop_only_warn() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("echo ran");
    let log = env.out.join("hooks.log");
    env.edit_spec(|s| {
        set_hooks(s, &log, None);
        let mut h = s.hooks().clone().unwrap();
        h.set_poststart(Some(vec![failing(1)]));
        h.set_poststop(Some(vec![failing(1)]));
        s.set_hooks(Some(h));
    });
    let (code, out) = env.run("warnhook");
    assert_eq!((code, out.as_str()), (0, "ran\n"));
    assert!(!env.state_dir("warnhook").exists());
}

#[test]
fn hook_timeout_fails_create() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec("true", |s| {
        let slow = HookBuilder::default()
            .path("/bin/sleep")
            .args(vec!["sleep".to_string(), "30".to_string()])
            .timeout(1)
            .build()
            .unwrap();
        s.set_hooks(Some(
            HooksBuilder::default()
                .create_runtime(vec![slow])
                .build()
                .unwrap(),
        ));
    });
    let t = std::time::Instant::now();
    let err = env.create("slowhook").unwrap_err().to_string();
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(t.elapsed().as_secs() < 10);
    assert!(!env.state_dir("slowhook").exists());
    assert_no_children();
}

#[test]
fn failing_start_container_hook_fails_start() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("echo never");
    env.edit_spec(|s| {
        s.set_hooks(Some(
            HooksBuilder::default()
                .start_container(vec![failing(4)])
                .build()
                .unwrap(),
        ));
    });
    let mut c = env.create("startfail").unwrap();
    let err = c.start().unwrap_err().to_string();
    assert!(
        err.contains("startContainer hook 0") && err.contains("exit status 4"),
        "{err}"
    );
    assert_ne!(c.wait().unwrap(), 0);
    c.delete(false).unwrap();
    assert_eq!(env.log(), "", "the user process never ran");
}
