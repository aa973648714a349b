//! Root tests of cgroups through the container lifecycle: a busybox
//! container created by `ContainerBuilder` with the `CgroupExtension`
//! starts inside its cgroups, runs under tiny limits (pids 1, 4 MiB), and
//! is paused, listed, updated and cleaned up through the manager kept in
//! its state.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use libcontainer::cgroups::{CgroupExtension, CgroupManager, DeleteOptions};
use libcontainer::fixtures::{default_spec, BusyboxBundle};
use libcontainer::{Container, ContainerBuilder};
use oci_spec::runtime::{LinuxResources, MountBuilder, Spec};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn root_or_skip() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if libcontainer::fixtures::static_busybox().is_err() {
        eprintln!("skipped: no static busybox (apt-get install busybox-static)");
        return false;
    }
    true
}

/// A bundle running `script`, output to `<tmp>/out/log`; deletes the
/// container and its cgroups when dropped.
struct Env {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    root: PathBuf,
    id: String,
    cgroup: String,
}

impl Env {
    fn new(script: &str, resources: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let cgroup = format!("/berth-cgtest-{}-{n}-ctr", std::process::id());
        let mut spec: Spec = default_spec();
        let m = MountBuilder::default()
            .destination("/out")
            .source(out.to_str().unwrap())
            .options(vec!["rbind".to_string()])
            .build()
            .unwrap();
        spec.mounts_mut().get_or_insert_with(Vec::new).push(m);
        let res: LinuxResources = serde_json::from_str(resources).unwrap();
        let linux = spec.linux_mut().get_or_insert_with(Default::default);
        linux.set_cgroups_path(Some(PathBuf::from(&cgroup)));
        linux.set_resources(Some(res));
        let bundle = dir.path().join("bundle");
        BusyboxBundle::new(&bundle)
            .spec(spec)
            .args(["/bin/sh", "-c", &format!("exec >/out/log 2>&1; {script}")])
            .write()
            .unwrap();
        let root = dir.path().join("state");
        Self {
            dir,
            bundle,
            root,
            id: format!("cg{n}"),
            cgroup,
        }
    }

    fn create(&self) -> Container {
        ContainerBuilder::new(&self.id, &self.bundle)
            .root(&self.root)
            .create_extension(Box::new(CgroupExtension::default()))
            .create()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out/log")).unwrap_or_default()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let d = e.path().join(self.cgroup.trim_start_matches('/'));
            if d.exists() {
                v.push(d);
            }
        }
        v
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(c) = Container::load(&self.root, &self.id) {
            let m = CgroupManager::from_container(&c).ok().flatten();
            let _ = c.delete(true);
            if let Some(m) = m {
                let _ = m.delete(DeleteOptions { kill: true });
            }
        }
        for d in self.dirs() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn run(env: &Env) -> i32 {
    let mut c = env.create();
    let m = CgroupManager::from_container(&c)
        .unwrap()
        .expect("cgroup state kept");
    c.start().unwrap();
    let code = c.wait().unwrap();
    c.delete(false).unwrap();
    m.delete(DeleteOptions::default()).unwrap();
    code
}

#[test]
fn tiny_limits_still_start_a_container() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(
        "echo started; if /bin/true; then echo forked; else echo no-fork; fi",
        r#"{"pids": {"limit": 1}, "memory": {"limit": 4194304, "swap": 4194304}}"#,
    );
    let code = run(&env);
    let log = env.log();
    eprintln!("exit {code}, log {log:?}");
    assert!(
        log.contains("started"),
        "container did not run: code {code}, log {log:?}"
    );
    assert!(log.contains("can't fork"), "fork not refused: {log:?}");
    assert!(
        !log.lines().any(|l| l == "forked"),
        "pids limit 1 allowed a fork: {log:?}"
    );
    assert!(env.dirs().is_empty(), "left behind: {:?}", env.dirs());
}

#[test]
fn container_init_is_in_its_cgroups_and_can_be_paused_updated_listed() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(
        "exec sleep 100",
        r#"{"pids": {"limit": 5}, "memory": {"limit": 33554432}}"#,
    );
    let mut c = env.create();
    let m = CgroupManager::from_container(&c).unwrap().unwrap();
    // Placed before start: the init is already there while created.
    let pid = nix::unistd::Pid::from_raw(c.pid());
    assert_eq!(m.pids().unwrap(), [pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        own.lines().filter(|l| l.ends_with(&env.cgroup)).count() >= 9,
        "{own}"
    );
    c.start().unwrap();
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    m.update(&serde_json::from_str(r#"{"pids": {"limit": 9}}"#).unwrap())
        .unwrap();
    let pids = m.v1_dir("pids").or(m.unified_dir()).unwrap();
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "9"
    );
    let stats = m.stats().unwrap();
    assert_eq!(stats.pids.unwrap().current, 1);
    assert!(stats.memory.unwrap().usage > 0);
    c.delete(true).unwrap();
    m.delete(DeleteOptions { kill: true }).unwrap();
    assert!(env.dirs().is_empty(), "left behind: {:?}", env.dirs());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|s| !s.contains(&env.cgroup))
                .unwrap_or(true)
    );
}

#[test]
fn a_bad_limit_fails_create_and_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("true", r#"{"cpu": {"cpus": "0-4095"}}"#);
    let err = ContainerBuilder::new(&env.id, &env.bundle)
        .root(&env.root)
        .create_extension(Box::new(CgroupExtension::default()))
        .create()
        .unwrap_err();
    assert!(
        err.to_string().contains("linux.resources.cpu.cpus"),
        "{err}"
    );
    assert!(env.dirs().is_empty(), "left behind: {:?}", env.dirs());
    assert!(Container::load(&env.root, &env.id).is_err());
}
