//! Root tests of `berth-runtime` as runc users drive it: separate
//! invocations for create/start/state/kill/delete, `run` output and exit
//! status, list, spec and error logging.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// A bundle and state root; force-deletes its containers on drop.
struct Env {
    dir: tempfile::TempDir,
    ids: Vec<String>,
}

impl Env {
    fn new(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        BusyboxBundle::new(dir.path().join("bundle"))
            .args(args.iter().copied())
            .write()
            .unwrap();
        Self {
            dir,
            ids: Vec::new(),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root()).args(args);
        c
    }
    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }
    /// `create` with the container's stdio on files (it outlives us, so a
    /// pipe would never reach EOF); returns (success, stderr of create).
    fn create(&mut self, id: &str) -> (bool, String) {
        self.ids.push(id.into());
        let bundle = self.bundle();
        let err = self.dir.path().join(format!("{id}.stderr"));
        let ok = self
            .cmd(&["create", "--bundle", bundle.to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap()
            .success();
        (ok, std::fs::read_to_string(&err).unwrap_or_default())
    }
    fn status(&self, id: &str) -> String {
        let o = self.out(&["state", id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["status"].as_str().unwrap().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.out(&["delete", "--force", id]);
        }
    }
}

fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("condition not reached in 5s");
}

#[test]
fn run_prints_output_and_exits_with_the_status() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(&[
        "/bin/sh",
        "-c",
        "echo hello from $(hostname); echo oops >&2; exit 42",
    ]);
    let bundle = env.bundle();
    let o = env.out(&["run", "--bundle", bundle.to_str().unwrap(), "r1"]);
    assert_eq!(o.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from berth\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    assert!(!env.root().join("r1").exists(), "run deletes the container");
}

#[test]
fn run_reports_death_by_signal() {
    if !root_or_skip() {
        return;
    }
    // Without a pid namespace the shell is not an init and SIGKILL works.
    let env = Env::new(&["/bin/sh", "-c", "kill -9 $$"]);
    let mut spec = oci_spec::runtime::Spec::load(env.bundle().join("config.json")).unwrap();
    let l = spec.linux_mut().as_mut().unwrap();
    let ns: Vec<_> = l
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Pid)
        .collect();
    l.set_namespaces(Some(ns));
    spec.save(env.bundle().join("config.json")).unwrap();
    let bundle = env.bundle();
    let o = env.out(&["run", "--bundle", bundle.to_str().unwrap(), "sig"]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn lifecycle_across_invocations_like_runc() {
    if !root_or_skip() {
        return;
    }
    let mut env = Env::new(&["/bin/sleep", "100"]);
    let (ok, err) = env.create("life");
    assert!(ok, "{err}");
    assert_eq!(env.status("life"), "created");
    let list = env.out(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.starts_with("ID") && text.contains("life") && text.contains("created"),
        "{text}"
    );
    let json = env.out(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["id"], "life");

    assert!(env.out(&["start", "life"]).status.success());
    assert_eq!(env.status("life"), "running");
    let o = env.out(&["start", "life"]);
    assert!(!o.status.success(), "second start fails");
    let o = env.out(&["delete", "life"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("running"));

    assert!(env.out(&["kill", "life", "KILL"]).status.success());
    wait_for(|| env.status("life") == "stopped");
    let o = env.out(&["state", "life"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pid"], 0, "a stopped container shows pid 0 like runc");
    let o = env.out(&["kill", "life", "9"]);
    assert!(!o.status.success(), "kill of a stopped container fails");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not running"));
    assert!(env.out(&["delete", "life"]).status.success());
    assert!(!env.root().join("life").exists());
    let o = env.out(&["state", "life"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    assert!(
        env.out(&["delete", "--force", "life"]).status.success(),
        "force delete of nothing is fine"
    );
}

#[test]
fn kill_by_name_and_force_delete() {
    if !root_or_skip() {
        return;
    }
    let mut env = Env::new(&[
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 0.1; done",
    ]);
    assert!(env.create("k").0);
    assert!(env.out(&["start", "k"]).status.success());
    // An init only gets signals it has a handler for: wait for the trap.
    let ready = env.bundle().join("rootfs/tmp/ready");
    wait_for(|| ready.exists());
    assert!(env.out(&["kill", "k", "SIGTERM"]).status.success());
    wait_for(|| env.status("k") == "stopped");
    assert!(env.out(&["delete", "k"]).status.success());

    assert!(env.create("f").0);
    assert!(env.out(&["start", "f"]).status.success());
    assert!(!env.out(&["kill", "f", "NOSUCHSIG"]).status.success());
    assert!(env.out(&["delete", "--force", "f"]).status.success());
    assert!(!env.root().join("f").exists());
}

#[test]
fn errors_go_to_stderr_and_the_json_log() {
    if !root_or_skip() {
        return;
    }
    let mut env = Env::new(&["/bin/true"]);
    let log = env.dir.path().join("log.json");
    std::fs::write(env.bundle().join("config.json"), "{\"ociVersion\": 1}").unwrap();
    let bundle = env.bundle();
    env.ids.push("bad".into());
    let o = env
        .cmd(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "bad",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.json"));
    let line = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["message"].as_str().unwrap().contains("config.json"),
        "{line}"
    );
    assert!(!env.root().join("bad").exists());
}

/// `--debug --log FILE`: every event once, on its own line, in the log
/// and on stderr (an error used to repeat its cause on the same line).
#[test]
fn debug_log_has_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{\"ociVersion\": 1}").unwrap();
    let log = dir.path().join("debug.log");
    let o = Command::new(BIN)
        .arg("--root")
        .arg(dir.path().join("state"))
        .args([
            "--debug",
            "--log",
            log.to_str().unwrap(),
            "create",
            "--bundle",
        ])
        .arg(&bundle)
        .arg("bad")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    for out in [text.as_str(), &stderr] {
        assert!(out.ends_with('\n'), "{out:?}");
        assert_eq!(out.lines().count(), 1, "{out:?}");
        assert_eq!(out.matches("expected a string").count(), 1, "{out:?}");
    }
    if !root_or_skip() {
        return;
    }
    // A container's debug events, each once.
    let env = Env::new(&["/bin/true"]);
    let bundle = env.bundle();
    let o = env.out(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        "dbg",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    let events: Vec<&str> = text.lines().skip(1).collect();
    assert!(!events.is_empty(), "{text:?}");
    for e in &events {
        assert!(e.contains(" DEBUG ") || e.contains(" WARN "), "{text:?}");
        let body = e.split_once(": ").map_or(*e, |(_, b)| b);
        assert_eq!(text.matches(body).count(), 1, "{body:?} twice in {text:?}");
    }
}

#[test]
fn spec_writes_a_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let spec = oci_spec::runtime::Spec::load(dir.path().join("config.json")).unwrap();
    assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    let again = Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success(), "does not overwrite");
}

#[test]
fn capabilities_and_seccomp_are_applied() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(&[
        "/bin/sh",
        "-c",
        "grep CapEff /proc/self/status; mkdir /tmp/x 2>/dev/null || echo mkdir-denied",
    ]);
    let path = env.bundle().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let bundle = env.bundle();
    let o = env.out(&["run", "--bundle", bundle.to_str().unwrap(), "sec"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // runc's default set: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
    assert_eq!(out, "CapEff:\t0000000020000420\nmkdir-denied\n");
}

#[test]
fn run_forwards_signals_to_the_container() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(&[
        "/bin/sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let bundle = env.bundle();
    let mut child = env
        .cmd(&["run", "--bundle", bundle.to_str().unwrap(), "fwd"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: signalling the runtime process we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(3));
    assert!(!env.root().join("fwd").exists());
}

/// The container's cgroup in the pids hierarchy (v1/hybrid hosts).
fn pids_cgroup(id: &str) -> Option<PathBuf> {
    let base = Path::new("/sys/fs/cgroup/pids");
    base.exists().then(|| base.join("berth").join(id))
}

#[test]
fn cgroups_are_made_and_removed_also_after_a_failed_create() {
    if !root_or_skip() {
        return;
    }
    let id = format!("cg{}", std::process::id());
    let Some(cg) = pids_cgroup(&id) else {
        eprintln!("skipped: no v1 pids hierarchy");
        return;
    };
    let mut env = Env::new(&["/bin/sleep", "100"]);
    assert!(env.create(&id).0);
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert_eq!(env.status(&id), "created");
    assert_eq!(
        procs.lines().count(),
        1,
        "the init is in its cgroup: {procs}"
    );
    assert!(env.out(&["start", &id]).status.success());
    assert!(env.out(&["kill", "--all", &id, "KILL"]).status.success());
    wait_for(|| env.status(&id) == "stopped");
    assert!(env.out(&["delete", &id]).status.success());
    assert!(!cg.exists(), "cgroup removed by delete");

    let mut bad = Env::new(&["/no/such/binary"]);
    let (ok, err) = bad.create(&id);
    assert!(!ok && err.contains("/no/such/binary"), "{err}");
    assert!(!cg.exists(), "cgroup removed after a failed create");
    assert!(!bad.root().join(&id).exists());
}
