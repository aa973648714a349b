//! Containers after a host reboot, through the real docker CLI: berthd is
//! stopped, the "reboot" kills the containers and their shims and
//! unmounts their rootfs overlays (leaving the shim sockets, libcontainer
//! state and emptied cgroups, as a persistent exec root would), and the
//! records get another boot id (what `/proc/sys/kernel/random/boot_id`
//! says after a real reboot). The next berthd marks them exited (255),
//! cleans what the runs left, mounts the rootfs again and starts the
//! `always` and `unless-stopped` containers; the `no` one shows
//! Exited (255).
//!
//! The test's guard removes berthd, the containers, mounts and state (the
//! shared harness) and any shim of this test's root, also on failure.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A boot id no real boot has.
const OTHER_BOOT: &str = "00000000-0000-0000-0000-000000000000";

struct Env {
    d: Option<Daemon>,
    root: String,
}

impl Env {
    fn d(&self) -> &Daemon {
        self.d.as_ref().expect("daemon")
    }

    fn stop_daemon(&mut self) {
        self.d.as_mut().expect("daemon").stop(Signal::SIGTERM);
    }

    fn start_daemon(&mut self) {
        if let Err(e) = self.d.as_mut().expect("daemon").launch(&[]) {
            panic!("berthd did not start again: {e}");
        }
    }

    /// Pids of the shims of this test's root.
    fn shims(&self) -> Vec<i32> {
        pids_with_cmdline(&[&self.root, "\0shim\0"])
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.d.take());
        for pid in self.shims() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cgroup directories of container `id` under any v1 controller.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("berth").join(id)))
        .filter(|p| p.exists())
        .collect()
}

fn set_boot_id(record: &Path, boot: &str) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    assert!(
        v["running"].as_bool().unwrap(),
        "{} not running",
        record.display()
    );
    v["boot_id"] = boot.into();
    std::fs::write(record, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn after_a_reboot_always_runs_again_and_no_shows_exited_255() {
    let Some(d) = start() else { return };
    let root = d.dir.path().display().to_string();
    let mut env = Env { d: Some(d), root };
    let mut ids = Vec::new();
    for (name, policy) in [("ra", "always"), ("ru", "unless-stopped"), ("rn", "no")] {
        let id = env.d().ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sleep",
            "1000",
        ]);
        ids.push((name, id.trim().to_string()));
    }
    env.d()
        .ok(&["create", "--name", "rc", "busybox", "sh", "-c", "exit 7"]);
    let pids: Vec<i32> = ids
        .iter()
        .map(|(n, _)| {
            env.d()
                .ok(&["inspect", "-f", "{{.State.Pid}}", n])
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    let n_id = ids[2].1.clone();
    assert!(
        !cgroups_of(&n_id).is_empty(),
        "no cgroup to leak: the check is void"
    );
    let containers = env.d().root().join("containers");

    env.stop_daemon();
    // The "reboot": every process of the old boot dies, mounts go.
    let shims = env.shims();
    assert_eq!(shims.len(), 3, "one shim per running container");
    for pid in shims.iter().chain(&pids) {
        kill(Pid::from_raw(*pid), Signal::SIGKILL).unwrap();
    }
    eventually("the old boot's processes to die", || {
        !shims.iter().chain(&pids).any(|p| alive(*p))
    });
    for e in std::fs::read_dir(&containers).unwrap() {
        let merged = e.unwrap().path().join("fs/merged");
        nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    for (_, id) in &ids {
        set_boot_id(&containers.join(id).join("record.json"), OTHER_BOOT);
    }
    env.start_daemon();

    let d = env.d();
    let state = |n: &str| d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n]);
    for n in ["ra", "ru"] {
        eventually(&format!("{n} to run again"), || {
            state(n).trim() == "running 0"
        });
        // A new run in this boot, in a working rootfs.
        assert_eq!(d.ok(&["exec", n, "echo", "up"]).trim(), "up");
        let count = d.ok(&["inspect", "-f", "{{.RestartCount}}", n]);
        assert_eq!(count.trim(), "0", "a start after a reboot is no restart");
    }
    assert_eq!(state("rn").trim(), "exited 255");
    let finished = d.ok(&["inspect", "-f", "{{.State.FinishedAt}}", "rn"]);
    assert!(
        !finished.starts_with("0001-"),
        "FinishedAt not set: {finished}"
    );
    let ps = d.ok(&["ps", "-a", "--filter", "name=rn", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (255)"), "{ps}");
    // Nothing of n's old run is left: state, cgroups, shim sockets.
    let run = d.dir.path().join("run");
    assert!(!run.join(&n_id).exists(), "n's runtime state is left");
    assert_eq!(
        cgroups_of(&n_id),
        Vec::<PathBuf>::new(),
        "n's cgroups are left"
    );
    let short: String = n_id.chars().take(16).collect();
    assert!(!run.join(format!("{short}.shim")).exists());
    // The created container's rootfs is back too: it starts and runs.
    d.ok(&["start", "rc"]);
    assert_eq!(d.ok(&["wait", "rc"]).trim(), "7");
    // And n starts again by hand.
    d.ok(&["start", "rn"]);
    assert_eq!(state("rn").trim(), "running 0");
    d.ok(&["rm", "-f", "ra", "ru", "rn", "rc"]);
    assert_eq!(containers_left(d), 0);
    // No rootfs mount (old or new) outlives the containers.
    let root = d.root().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|m| m.contains(&root)).collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    eventually("the shims to end", || env.shims().is_empty());
}
