//! Root tests of `berth-runtime` pause/state/delete of a paused container,
//! and `exec` into a running one.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libcontainer::fixtures::BusyboxBundle;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    if libcontainer::fixtures::static_busybox().is_err() {
        eprintln!("skipped: no static busybox");
        return false;
    }
    true
}

/// A bundle and state root; force-deletes its container on drop.
struct Env {
    dir: tempfile::TempDir,
    id: String,
}

impl Env {
    /// A created-and-started container running `args`.
    fn started(id: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        BusyboxBundle::new(dir.path().join("bundle"))
            .args(args.iter().copied())
            .write()
            .unwrap();
        let env = Self {
            dir,
            id: format!("{id}-{}", std::process::id()),
        };
        let bundle = env.dir.path().join("bundle");
        let ok = env
            .cmd(&["create", "--bundle", bundle.to_str().unwrap(), &env.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "create failed");
        env.ok(&["start", &env.id]);
        env
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root()).args(args);
        c
    }
    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", &self.id])).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.out(&["delete", "--force", &self.id]);
    }
}

#[test]
fn paused_shows_in_state_and_force_delete_is_quick() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started("pause", &["sleep", "100"]);
    let id = env.id.clone();
    assert_eq!(env.state()["status"], "running");
    env.ok(&["pause", &id]);
    assert_eq!(env.state()["status"], "paused");
    env.ok(&["resume", &id]);
    assert_eq!(env.state()["status"], "running");
    env.ok(&["pause", &id]);
    let o = env.out(&["delete", &id]);
    assert!(!o.status.success(), "a paused container needs --force");
    let pid = env.state()["pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let freezer = cgroup
        .lines()
        .find_map(|l| l.split_once(":freezer:").map(|(_, p)| p.to_string()))
        .map(|p| PathBuf::from(format!("/sys/fs/cgroup/freezer{p}")));
    let t = Instant::now();
    env.ok(&["delete", "--force", &id]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert!(!env.root().join(&id).exists());
    if let Some(f) = freezer {
        assert!(!f.exists(), "cgroup {f:?} left behind");
    }
    // Dead: gone, or a zombie waiting for its reaper (not us).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, r)| &r[..1]);
    assert!(matches!(state, None | Some("Z") | Some("X")), "{stat}");
}
