//! Root tests of the cgroups module on this machine's real hierarchies
//! (hybrid: v1 controllers plus hugetlb on the unified mount; also works on
//! a pure v1 host). Each test makes uniquely named cgroups and removes them
//! in a Drop guard, also when it fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libcontainer::cgroups::{
    CgroupConfig, CgroupManager, CgroupMode, CgroupPath, DeleteOptions, Hierarchies, OomEvent,
    RealFs,
};
use nix::unistd::Pid;
use oci_spec::runtime::{Linux, LinuxResources};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "/berth-cgtest-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Skip (with the reason printed) unless root on a host with v1 memory.
fn usable() -> Option<Hierarchies> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let h = Hierarchies::detect(&RealFs).ok()?;
    if h.mode() == CgroupMode::V2 || !h.v1.contains_key("memory") {
        eprintln!(
            "skipped: needs cgroup v1 controllers (this host is {:?})",
            h.mode()
        );
        return None;
    }
    Some(h)
}

/// Deletes the cgroups (killing what is left) when dropped.
struct Guard(CgroupManager);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.delete(DeleteOptions { kill: true }) {
            eprintln!("cleanup of {:?} failed: {e}", self.0.all_dirs());
        }
    }
}

/// Kills and reaps a child when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn create(path: &str, resources: &str) -> Guard {
    let res: LinuxResources = serde_json::from_str(resources).unwrap();
    let cfg = CgroupConfig::new(CgroupPath::parse(Some(Path::new(path)), "t").unwrap(), res);
    Guard(CgroupManager::create(&cfg).unwrap())
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// A shell that waits for a line on stdin before running `script`, so it
/// can be put into the cgroup first.
fn gated_shell(script: &str) -> ChildGuard {
    ChildGuard(
        Command::new("/bin/sh")
            .args(["-c", &format!("read _ ; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn release(child: &mut ChildGuard) -> (i32, String, String) {
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut out = String::new();
    let mut err = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.0.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

fn pid_of(c: &ChildGuard) -> Pid {
    Pid::from_raw(c.0.id() as i32)
}

fn block_device() -> Option<String> {
    let mut devs: Vec<PathBuf> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    devs.sort();
    devs.iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("loop"))
        .find_map(|p| std::fs::read_to_string(p.join("dev")).ok())
        .map(|s| s.trim().to_string())
}

#[test]
fn limits_are_written_and_read_back() {
    let Some(h) = usable() else { return };
    let name = unique("limits");
    let dev = block_device();
    let throttle = dev
        .as_deref()
        .and_then(|d| d.split_once(':'))
        .map(|(ma, mi)| format!(r#", "blockIO": {{"throttleReadBpsDevice": [{{"major": {ma}, "minor": {mi}, "rate": 1048576}}]}}"#))
        .unwrap_or_default();
    let hugetlb = if h.placement("hugetlb").is_some()
        && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
    {
        r#", "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]"#
    } else {
        ""
    };
    let g = create(
        &name,
        &format!(
            r#"{{"memory": {{"limit": 4194304, "swap": 8388608, "reservation": 2097152, "swappiness": 0}},
                "pids": {{"limit": 7}},
                "cpu": {{"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"}}{throttle}{hugetlb}}}"#
        ),
    );
    let m = &g.0;
    let mem = m.v1_dir("memory").unwrap();
    assert_eq!(read(mem, "memory.limit_in_bytes"), "4194304");
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "8388608");
    }
    assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "2097152");
    assert_eq!(read(m.v1_dir("pids").unwrap(), "pids.max"), "7");
    let cpu = m.v1_dir("cpu").unwrap();
    assert_eq!(read(cpu, "cpu.shares"), "512");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(m.v1_dir("cpuset").unwrap(), "cpuset.cpus"), "0");
    if let Some(d) = &dev {
        let blkio = m.v1_dir("blkio").unwrap();
        assert_eq!(
            read(blkio, "blkio.throttle.read_bps_device"),
            format!("{d} 1048576")
        );
    }
    if !hugetlb.is_empty() {
        let dir = m.v1_dir("hugetlb").or(m.unified_dir()).unwrap();
        let file = if m.v1_dir("hugetlb").is_some() {
            "hugetlb.2MB.limit_in_bytes"
        } else {
            "hugetlb.2MB.max"
        };
        assert_eq!(read(dir, file), "4194304");
    }
    // The manager survives a trip through the container state.
    let m2: CgroupManager = serde_json::from_str(&serde_json::to_string(m).unwrap()).unwrap();
    m2.update(
        &serde_json::from_str(
            r#"{"pids": {"limit": 9}, "memory": {"limit": 16777216, "swap": 33554432}}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(read(m.v1_dir("pids").unwrap(), "pids.max"), "9");
    assert_eq!(read(mem, "memory.limit_in_bytes"), "16777216");
    let dirs: Vec<PathBuf> = m.all_dirs().into_iter().map(Path::to_path_buf).collect();
    drop(g);
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn process_joins_every_hierarchy_and_is_frozen_listed_and_killed() {
    if usable().is_none() {
        return;
    }
    let name = unique("proc");
    let g = create(
        &name,
        r#"{"memory": {"limit": 4194304}, "pids": {"limit": 1}}"#,
    );
    let mut child = ChildGuard(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = pid_of(&child);
    g.0.add_pid(pid).unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own
        .lines()
        .filter(|l| !l.ends_with(":/") || l.starts_with("0::"))
    {
        assert!(line.ends_with(&name), "not in {name}: {line}");
    }
    assert!(
        own.lines().filter(|l| l.ends_with(&name)).count() >= 9,
        "{own}"
    );
    assert_eq!(g.0.pids().unwrap(), [pid]);
    let stats = g.0.stats().unwrap();
    assert_eq!(stats.pids.as_ref().unwrap().current, 1);
    assert_eq!(stats.pids.as_ref().unwrap().limit, 1);
    assert_eq!(stats.memory.as_ref().unwrap().limit, 4194304);
    assert!(stats.cpu.is_some());

    g.0.freeze().unwrap();
    assert!(g.0.is_frozen().unwrap());
    assert_eq!(
        read(g.0.v1_dir("freezer").unwrap(), "freezer.state"),
        "FROZEN"
    );
    g.0.thaw().unwrap();
    assert!(!g.0.is_frozen().unwrap());

    g.0.kill_all().unwrap();
    let status = child.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(g.0.pids().unwrap().is_empty());
}

#[test]
fn pids_limit_one_starts_a_process_but_refuses_a_fork() {
    if usable().is_none() {
        return;
    }
    let g = create(
        &unique("pids1"),
        r#"{"pids": {"limit": 1}, "memory": {"limit": 4194304, "swap": 4194304}}"#,
    );
    let mut child = gated_shell("echo started; /bin/true && echo forked");
    g.0.add_pid(pid_of(&child)).unwrap();
    let (_code, out, err) = release(&mut child);
    assert!(
        out.contains("started"),
        "process did not run: {out:?} {err:?}"
    );
    assert!(!out.contains("forked"), "fork was allowed: {out:?}");
    let events = read(g.0.v1_dir("pids").unwrap(), "pids.events");
    assert!(
        events.contains("max 1") || events.split_whitespace().nth(1).is_some_and(|n| n != "0"),
        "{events}"
    );
}

#[test]
fn four_mib_memory_runs_a_process_and_oom_is_reported() {
    if usable().is_none() {
        return;
    }
    let g = create(
        &unique("oom"),
        r#"{"memory": {"limit": 4194304, "swap": 4194304}}"#,
    );
    let mut ok = gated_shell("echo alive");
    g.0.add_pid(pid_of(&ok)).unwrap();
    let (code, out, _) = release(&mut ok);
    assert_eq!((code, out.trim()), (0, "alive"));

    let mut watcher = g.0.oom_watcher().unwrap();
    let mut hog = gated_shell("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    g.0.add_pid(pid_of(&hog)).unwrap();
    let (code, _, _) = release(&mut hog);
    assert_ne!(code, 0, "64 MiB fit in a 4 MiB cgroup");
    match watcher.wait(Some(Duration::from_secs(5))).unwrap() {
        OomEvent::Oom(n) => assert!(n >= 1),
        other => panic!("expected an OOM event, got {other:?}"),
    }
    assert!(g.0.stats().unwrap().memory.unwrap().oom_kills >= 1);
}

#[test]
fn device_rules_deny_dev_null() {
    if usable().is_none() {
        return;
    }
    let name = unique("dev");
    let linux: Linux = serde_json::from_str(&format!(
        r#"{{"cgroupsPath": "{name}", "resources": {{"devices": [
            {{"allow": true, "access": "rwm"}},
            {{"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}}]}}}}"#
    ))
    .unwrap();
    let g = Guard(CgroupManager::create(&CgroupConfig::from_spec(&linux, "t").unwrap()).unwrap());
    let list = read(g.0.v1_dir("devices").unwrap(), "devices.list");
    assert!(
        list.contains("a *:* rwm") || list.contains("c 1:3 r"),
        "{list}"
    );
    let mut child =
        gated_shell("cat /dev/null && echo read-ok; echo x > /dev/null && echo write-ok");
    g.0.add_pid(pid_of(&child)).unwrap();
    let (_, out, err) = release(&mut child);
    assert!(out.contains("read-ok"), "{out} {err}");
    assert!(
        !out.contains("write-ok"),
        "write to /dev/null allowed: {out}"
    );
    assert!(
        err.contains("Operation not permitted") || err.contains("ermission"),
        "{err}"
    );

    // update moves the live list to the new rules (difference only).
    let allow_null: LinuxResources = serde_json::from_str(
        r#"{"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                        {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]}"#,
    )
    .unwrap();
    g.0.update(&allow_null).unwrap();
    let list = read(g.0.v1_dir("devices").unwrap(), "devices.list");
    assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    assert!(list.lines().any(|l| l == "b 7:0 r"), "{list}");
    assert!(!list.contains("a *:*"), "{list}");
    let mut child = gated_shell("echo x > /dev/null && echo write-ok");
    g.0.add_pid(pid_of(&child)).unwrap();
    let (_, out, err) = release(&mut child);
    assert!(out.contains("write-ok"), "{out} {err}");
}

#[test]
fn bad_values_fail_cleanly() {
    let Some(h) = usable() else { return };
    let cases = [
        (r#"{"cpu": {"cpus": "0-4095"}}"#, "linux.resources.cpu.cpus"),
        (
            r#"{"network": {"classID": 1}}"#,
            "linux.resources.network.classID",
        ),
        (
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
            "linux.resources.hugepageLimits[0]",
        ),
    ];
    for (json, field) in cases {
        if field.contains("network") && h.placement("net_cls").is_some() {
            continue;
        }
        let name = unique("bad");
        let res: LinuxResources = serde_json::from_str(json).unwrap();
        let cfg = CgroupConfig::new(CgroupPath::parse(Some(Path::new(&name)), "t").unwrap(), res);
        let err = CgroupManager::create(&cfg).unwrap_err();
        assert!(err.to_string().starts_with(field), "{json}: {err}");
        for m in h.v1.values() {
            let d = m.mount_point.join(name.trim_start_matches('/'));
            assert!(!d.exists(), "{} left behind", d.display());
        }
    }
}

#[test]
fn nested_default_parent_is_created_and_removed() {
    if usable().is_none() {
        return;
    }
    let parent = unique("parent");
    let g = create(&format!("{parent}/a/b"), "{}");
    let pids = g.0.v1_dir("pids").unwrap().to_path_buf();
    assert!(pids.ends_with("a/b") && pids.exists());
    // A sub-cgroup the container made for itself goes too.
    std::fs::create_dir(pids.join("inner")).unwrap();
    drop(g);
    let top = Path::new("/sys/fs/cgroup/pids").join(parent.trim_start_matches('/'));
    assert!(!top.exists(), "{} left behind", top.display());
}

#[test]
fn realtime_budget_reaches_a_nested_cgroup() {
    let Some(h) = usable() else { return };
    let Some(cpu) = h.v1.get("cpu") else { return };
    if !cpu.mount_point.join("cpu.rt_runtime_us").exists() {
        eprintln!("skipped: kernel without CONFIG_RT_GROUP_SCHED");
        return;
    }
    let g = create(
        &format!("{}/nested/rt", unique("rt")),
        r#"{"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 10000}}"#,
    );
    let d = g.0.v1_dir("cpu").unwrap();
    assert_eq!(read(d, "cpu.rt_runtime_us"), "10000");
    assert_eq!(read(d, "cpu.rt_period_us"), "1000000");
    assert_eq!(read(d.parent().unwrap(), "cpu.rt_runtime_us"), "10000");
}

#[test]
fn delete_with_kill_ends_a_frozen_container() {
    if usable().is_none() {
        return;
    }
    let g = create(&unique("frozen"), r#"{"pids": {"limit": 4}}"#);
    let mut child = ChildGuard(Command::new("sleep").arg("30").spawn().unwrap());
    g.0.add_pid(pid_of(&child)).unwrap();
    g.0.freeze().unwrap();
    let dirs: Vec<PathBuf> = g.0.all_dirs().into_iter().map(Path::to_path_buf).collect();
    // A frozen task only dies once thawed: kill_all freezes, kills, thaws.
    g.0.delete(DeleteOptions { kill: true }).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGKILL));
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
