//! Manager-level unit tests on a fake filesystem: exactly which files get
//! which values, in which order, for each resource on v1, v2 and hybrid.

use std::path::Path;
use std::sync::Arc;

use oci_spec::runtime::{Linux, LinuxResources};

use super::*;

const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const V2_MOUNTINFO: &str =
    "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
const V2_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids";

/// A fake hybrid host shaped like the test machine.
fn hybrid_host() -> (MemFs, Hierarchies, OwnCgroups) {
    let fs = MemFs::new();
    let cg = Path::new("/sys/fs/cgroup");
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
    ] {
        fs.mkdir_p(cg.join(c));
    }
    fs.template(
        cg.join("memory"),
        &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
        ],
    );
    fs.template(
        cg.join("cpuset"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    fs.set(cg.join("cpuset/cpuset.cpus"), "0-1\n");
    fs.set(cg.join("cpuset/cpuset.mems"), "0\n");
    fs.set(cg.join("cpuset/cpuset.effective_cpus"), "0-1\n");
    fs.set(cg.join("cpuset/cpuset.effective_mems"), "0\n");
    fs.template(
        cg.join("unified"),
        &[
            ("cgroup.controllers", "hugetlb"),
            ("hugetlb.2MB.max", "max"),
        ],
    );
    fs.set(cg.join("unified/cgroup.controllers"), "hugetlb\n");
    fs.set(cg.join("unified/cgroup.subtree_control"), "\n");
    let hier = Hierarchies::from_mountinfo(HYBRID_MOUNTINFO, Some("hugetlb")).unwrap();
    let own = OwnCgroups::parse("4:memory:/process_api/x\n0::/\n");
    (fs, hier, own)
}

/// A fake pure v2 host with the usual controllers.
fn v2_host() -> (MemFs, Hierarchies, OwnCgroups) {
    let fs = MemFs::new();
    let root = Path::new("/sys/fs/cgroup");
    fs.set(root.join("cgroup.controllers"), V2_CONTROLLERS);
    fs.set(root.join("cgroup.subtree_control"), "");
    fs.set(root.join("cpuset.cpus.effective"), "0-3");
    fs.template(
        root,
        &[
            ("cgroup.controllers", V2_CONTROLLERS),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.high", "max"),
            ("hugetlb.2MB.max", "max"),
            ("cpuset.cpus.effective", "0-3"),
        ],
    );
    let hier = Hierarchies::from_mountinfo(V2_MOUNTINFO, Some(V2_CONTROLLERS)).unwrap();
    let own = OwnCgroups::parse("0::/user.slice/session.scope\n");
    (fs, hier, own)
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn config(path: &str, json: &str) -> CgroupConfig {
    CgroupConfig::new(
        CgroupPath::parse(Some(Path::new(path)), "c").unwrap(),
        resources(json),
    )
}

fn create(
    fs: &MemFs,
    hier: &Hierarchies,
    own: &OwnCgroups,
    cfg: &CgroupConfig,
) -> Result<CgroupManager> {
    CgroupManager::create_with(Arc::new(fs.clone()), hier, own, cfg)
}

#[test]
fn hybrid_creates_every_hierarchy_and_puts_hugetlb_on_unified() {
    let (fs, hier, own) = hybrid_host();
    let cfg = config(
        "/berth/c1",
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#,
    );
    let m = create(&fs, &hier, &own, &cfg).unwrap();
    assert_eq!(m.mode(), CgroupMode::Hybrid);
    assert_eq!(
        m.v1_dir("memory"),
        Some(Path::new("/sys/fs/cgroup/memory/berth/c1"))
    );
    assert_eq!(
        m.v1_dir("name=systemd"),
        Some(Path::new("/sys/fs/cgroup/systemd/berth/c1"))
    );
    assert_eq!(
        m.unified_dir(),
        Some(Path::new("/sys/fs/cgroup/unified/berth/c1"))
    );
    assert!(fs.is_dir("/sys/fs/cgroup/pids/berth/c1"));
    // hugetlb enabled for the children of the unified root and /berth.
    let w = fs.writes_under("/sys/fs/cgroup/unified");
    assert!(
        w.contains(&("cgroup.subtree_control".into(), "+hugetlb".into())),
        "{w:?}"
    );
    assert!(
        w.contains(&("berth/cgroup.subtree_control".into(), "+hugetlb".into())),
        "{w:?}"
    );
    assert!(
        w.contains(&("berth/c1/hugetlb.2MB.max".into(), "4194304".into())),
        "{w:?}"
    );
    // New cpuset cgroups inherit cpus/mems from the parent before use.
    let w = fs.writes_under("/sys/fs/cgroup/cpuset");
    assert_eq!(
        w[..2],
        [
            ("berth/cpuset.cpus".into(), "0-1".into()),
            ("berth/cpuset.mems".into(), "0".into())
        ]
    );
    assert_eq!(
        fs.get("/sys/fs/cgroup/cpuset/berth/c1/cpuset.cpus")
            .as_deref(),
        Some("0-1")
    );
}

#[test]
fn v1_memory_writes_limit_before_memsw_on_a_fresh_cgroup() {
    let (fs, hier, own) = hybrid_host();
    let cfg = config(
        "/c",
        r#"{"memory": {"limit": 4194304, "swap": 8388608, "reservation": 2097152,
             "swappiness": 10, "disableOOMKiller": true}}"#,
    );
    create(&fs, &hier, &own, &cfg).unwrap();
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/memory/c"),
        [
            ("memory.limit_in_bytes".to_string(), "4194304".to_string()),
            ("memory.memsw.limit_in_bytes".into(), "8388608".into()),
            ("memory.soft_limit_in_bytes".into(), "2097152".into()),
            ("memory.swappiness".into(), "10".into()),
            ("memory.oom_control".into(), "1".into()),
        ]
    );
}

#[test]
fn v1_memory_update_raises_memsw_first_when_growing() {
    let (fs, hier, own) = hybrid_host();
    let m = create(
        &fs,
        &hier,
        &own,
        &config("/c", r#"{"memory": {"limit": 4194304, "swap": 4194304}}"#),
    )
    .unwrap();
    fs.clear_writes();
    m.update(&resources(
        r#"{"memory": {"limit": 16777216, "swap": 33554432}}"#,
    ))
    .unwrap();
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/memory/c"),
        [
            (
                "memory.memsw.limit_in_bytes".to_string(),
                "33554432".to_string()
            ),
            ("memory.limit_in_bytes".into(), "16777216".into()),
        ]
    );
    // Shrinking: memory first.
    fs.clear_writes();
    m.update(&resources(
        r#"{"memory": {"limit": 8388608, "swap": 8388608}}"#,
    ))
    .unwrap();
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/memory/c")[0].0,
        "memory.limit_in_bytes"
    );
}

#[test]
fn v1_cpu_pids_blkio_net_writes() {
    let (fs, hier, own) = hybrid_host();
    fs.template(
        "/sys/fs/cgroup/blkio",
        &[("blkio.bfq.weight", "100"), ("blkio.bfq.weight_device", "")],
    );
    let cfg = config(
        "/c",
        r#"{"cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimePeriod": 1000000,
                    "realtimeRuntime": 10000, "idle": 1, "cpus": "1", "mems": "0"},
            "pids": {"limit": 1},
            "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]}}"#,
    );
    create(&fs, &hier, &own, &cfg).unwrap();
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/cpu/c"),
        [
            ("cpu.shares".to_string(), "512".to_string()),
            ("cpu.cfs_period_us".into(), "100000".into()),
            ("cpu.cfs_quota_us".into(), "50000".into()),
            ("cpu.rt_period_us".into(), "1000000".into()),
            ("cpu.rt_runtime_us".into(), "10000".into()),
            ("cpu.idle".into(), "1".into()),
        ]
    );
    let cpuset = fs.writes_under("/sys/fs/cgroup/cpuset/c");
    assert_eq!(
        cpuset[cpuset.len() - 2..],
        [
            ("cpuset.cpus".into(), "1".into()),
            ("cpuset.mems".into(), "0".into())
        ]
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/pids/c"),
        [("pids.max".to_string(), "1".to_string())]
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/blkio/c"),
        [
            ("blkio.bfq.weight".to_string(), "300".to_string()),
            ("blkio.bfq.weight_device".into(), "8:0 200".into()),
            (
                "blkio.throttle.read_bps_device".into(),
                "8:0 1048576".into()
            ),
            ("blkio.throttle.write_iops_device".into(), "8:16 100".into()),
        ]
    );
}

#[test]
fn v1_devices_deny_all_then_replay_rules() {
    let (fs, hier, own) = hybrid_host();
    let linux: Linux = serde_json::from_str(
        r#"{"cgroupsPath": "/c", "resources": {"devices": [{"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]},
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}"#,
    )
    .unwrap();
    let cfg = CgroupConfig::from_spec(&linux, "c").unwrap();
    create(&fs, &hier, &own, &cfg).unwrap();
    let w = fs.writes_under("/sys/fs/cgroup/devices/c");
    assert_eq!(w[0], ("devices.deny".into(), "a".into()));
    assert_eq!(w[1], ("devices.deny".into(), "a".into()));
    assert!(w.contains(&("devices.allow".into(), "c 1:3 rwm".into())));
    assert!(w.contains(&("devices.allow".into(), "c 10:229 rwm".into())));
    assert_eq!(
        w.last().unwrap(),
        &("devices.deny".into(), "c 1:3 w".into())
    );
}

#[test]
fn missing_controller_names_the_field_and_cleans_up() {
    let (fs, hier, own) = hybrid_host();
    let cfg = config(
        "/berth/c",
        r#"{"pids": {"limit": 5}, "network": {"classID": 1048577}}"#,
    );
    let err = create(&fs, &hier, &own, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.resources.network.classID: the net_cls cgroup controller is not available on this host (hybrid cgroup host)"
    );
    assert!(!fs.is_dir("/sys/fs/cgroup/pids/berth/c"));
    assert!(!fs.is_dir("/sys/fs/cgroup/pids/berth"));
    assert!(!fs.is_dir("/sys/fs/cgroup/unified/berth"));
}

#[test]
fn bad_values_name_their_field() {
    let (fs, hier, own) = hybrid_host();
    let cases = [
        (r#"{"cpu": {"cpus": "0-7"}}"#, "linux.resources.cpu.cpus:"),
        (r#"{"cpu": {"mems": "3"}}"#, "linux.resources.cpu.mems:"),
        (
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
            "linux.resources.hugepageLimits[0].pageSize:",
        ),
        (
            r#"{"memory": {"limit": 8388608, "swap": 4194304}}"#,
            "linux.resources.memory.swap:",
        ),
        (
            r#"{"memory": {"swappiness": 200}}"#,
            "linux.resources.memory.swappiness:",
        ),
        (
            r#"{"unified": {"memory.high": "1G"}}"#,
            "linux.resources.unified[\"memory.high\"]:",
        ),
        (
            r#"{"unified": {"../x": "1"}}"#,
            "linux.resources.unified[\"../x\"]:",
        ),
        (
            r#"{"blockIO": {"weight": 100}}"#,
            "linux.resources.blockIO.weight:",
        ),
    ];
    for (json, prefix) in cases {
        let err = create(&fs, &hier, &own, &config("/c", json)).unwrap_err();
        assert!(err.to_string().starts_with(prefix), "{json}: {err}");
        assert!(!fs.is_dir("/sys/fs/cgroup/memory/c"), "{json}: leftover");
    }
}

#[test]
fn v2_writes_converted_values() {
    let (fs, hier, own) = v2_host();
    let cfg = config(
        "/berth/c",
        r#"{"memory": {"limit": 4194304, "swap": 12582912, "reservation": 1048576},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
            "pids": {"limit": 1},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": -1}],
            "unified": {"memory.high": "3145728"}}"#,
    );
    let m = create(&fs, &hier, &own, &cfg).unwrap();
    assert_eq!(m.mode(), CgroupMode::V2);
    assert!(m.v1_dir("memory").is_none());
    let root = fs.writes_under("/sys/fs/cgroup");
    assert_eq!(
        root[0],
        (
            "cgroup.subtree_control".into(),
            "+cpuset +cpu +io +memory +hugetlb +pids".into()
        )
    );
    assert_eq!(
        root[1],
        (
            "berth/cgroup.subtree_control".into(),
            "+cpuset +cpu +io +memory +hugetlb +pids".into()
        )
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/berth/c"),
        [
            ("memory.swap.max".to_string(), "8388608".to_string()),
            ("memory.max".into(), "4194304".into()),
            ("memory.low".into(), "1048576".into()),
            ("pids.max".into(), "1".into()),
            ("cpu.weight".into(), "39".into()),
            ("cpu.max".into(), "50000 100000".into()),
            ("cpuset.cpus".into(), "0-1".into()),
            ("io.weight".into(), "4950".into()),
            ("io.max".into(), "8:0 rbps=1000".into()),
            ("hugetlb.2MB.max".into(), "max".into()),
            ("memory.high".into(), "3145728".into()),
        ]
    );
}

#[test]
fn v2_relative_path_goes_under_the_parent_of_our_cgroup() {
    let (fs, hier, own) = v2_host();
    let m = create(&fs, &hier, &own, &config("pod/ctr", "{}")).unwrap();
    assert_eq!(
        m.unified_dir(),
        Some(Path::new("/sys/fs/cgroup/user.slice/pod/ctr"))
    );
}

#[test]
fn v2_refuses_realtime_and_leaf_weight() {
    let (fs, hier, own) = v2_host();
    let err = create(
        &fs,
        &hier,
        &own,
        &config("/c", r#"{"cpu": {"realtimeRuntime": 100}}"#),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.cpu.realtimeRuntime:"),
        "{err}"
    );
    let err = create(&fs, &hier, &own, &config("/c", r#"{"cpu": {"cpus": "9"}}"#)).unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.cpu.cpus:"),
        "{err}"
    );
}

#[test]
fn delete_removes_only_what_we_created() {
    let (fs, hier, own) = hybrid_host();
    fs.mkdir_p("/sys/fs/cgroup/memory/existing");
    let m = create(&fs, &hier, &own, &config("/existing/c", "{}")).unwrap();
    // A sub-cgroup the container made for itself.
    fs.mkdir_p("/sys/fs/cgroup/memory/existing/c/inner");
    assert!(fs.is_dir("/sys/fs/cgroup/freezer/existing/c"));
    m.delete(DeleteOptions::default()).unwrap();
    assert!(!fs.is_dir("/sys/fs/cgroup/memory/existing/c"));
    assert!(!fs.is_dir("/sys/fs/cgroup/freezer/existing"));
    assert!(!fs.is_dir("/sys/fs/cgroup/unified/existing"));
    assert!(
        fs.is_dir("/sys/fs/cgroup/memory/existing"),
        "pre-existing parent kept"
    );
}

#[test]
fn delete_keeps_a_parent_another_container_uses() {
    let (fs, hier, own) = hybrid_host();
    let a = create(&fs, &hier, &own, &config("/berth/a", "{}")).unwrap();
    let _b = create(&fs, &hier, &own, &config("/berth/b", "{}")).unwrap();
    a.delete(DeleteOptions::default()).unwrap();
    assert!(!fs.is_dir("/sys/fs/cgroup/pids/berth/a"));
    assert!(fs.is_dir("/sys/fs/cgroup/pids/berth/b"));
}

#[test]
fn add_pid_writes_every_hierarchy_once() {
    let (fs, hier, own) = hybrid_host();
    let m = create(&fs, &hier, &own, &config("/c", "{}")).unwrap();
    fs.clear_writes();
    m.add_pid(nix::unistd::Pid::from_raw(42)).unwrap();
    let w = fs.writes();
    assert_eq!(w.len(), 10, "9 v1 hierarchies + unified: {w:?}");
    assert!(w
        .iter()
        .all(|(p, v)| p.ends_with("c/cgroup.procs") && v == "42"));
    fs.clear_writes();
    m.add_pid_v1(nix::unistd::Pid::from_raw(42)).unwrap();
    assert_eq!(fs.writes().len(), 9);
}

#[test]
fn manager_round_trips_through_json() {
    let (fs, hier, own) = hybrid_host();
    let m = create(&fs, &hier, &own, &config("/c", "{}")).unwrap();
    let json = serde_json::to_string(&m).unwrap();
    let back: CgroupManager = serde_json::from_str(&json).unwrap();
    assert_eq!(back.mode(), CgroupMode::Hybrid);
    assert_eq!(back.all_dirs(), m.all_dirs());
    let back = back.with_fs(Arc::new(fs.clone()));
    back.delete(DeleteOptions::default()).unwrap();
    assert!(!fs.is_dir("/sys/fs/cgroup/memory/c"));
}

#[test]
fn v1_freezer_and_stats_read_back() {
    let (fs, hier, own) = hybrid_host();
    fs.template("/sys/fs/cgroup/freezer", &[("freezer.state", "THAWED")]);
    let m = create(&fs, &hier, &own, &config("/c", "{}")).unwrap();
    // The fake "kernel" settles immediately: the written value is read back.
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());
    let d = Path::new("/sys/fs/cgroup/memory/c");
    fs.set(d.join("memory.usage_in_bytes"), "1048576\n");
    fs.set(d.join("memory.max_usage_in_bytes"), "2097152\n");
    fs.set(d.join("memory.failcnt"), "3\n");
    fs.set(d.join("memory.stat"), "cache 4096\nrss 8192\n");
    fs.set(
        d.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    let p = Path::new("/sys/fs/cgroup/pids/c");
    fs.set(p.join("pids.current"), "1\n");
    fs.set(p.join("pids.max"), "max\n");
    let a = Path::new("/sys/fs/cgroup/cpuacct/c");
    fs.set(a.join("cpuacct.usage"), "5000\n");
    fs.set(a.join("cpuacct.usage_percpu"), "2000 3000 \n");
    fs.set(a.join("cpuacct.stat"), "user 1\nsystem 2\n");
    fs.set(
        "/sys/fs/cgroup/cpu/c/cpu.stat",
        "nr_periods 7\nnr_throttled 1\nthrottled_time 99\n",
    );
    fs.set(
        "/sys/fs/cgroup/blkio/c/blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    );
    fs.set(
        "/sys/fs/cgroup/blkio/c/blkio.throttle.io_serviced_recursive",
        "8:0 Read 1\n",
    );
    fs.set("/sys/fs/cgroup/unified/c/hugetlb.2MB.current", "0\n");
    fs.mkdir_p("/sys/kernel/mm/hugepages/hugepages-2048kB");
    let s = m.stats().unwrap();
    let mem = s.memory.unwrap();
    assert_eq!(
        (mem.usage, mem.max_usage, mem.failcnt, mem.oom_kills),
        (1 << 20, Some(2 << 20), 3, 2)
    );
    assert_eq!(mem.stat["rss"], 8192);
    assert_eq!(
        s.pids.unwrap(),
        PidsStats {
            current: 1,
            limit: u64::MAX
        }
    );
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage_total, 5000);
    assert_eq!(cpu.usage_per_cpu, [2000, 3000]);
    assert_eq!(cpu.nr_throttled, 1);
    assert!(cpu.usage_system > cpu.usage_user);
    let blk = s.blkio.unwrap();
    assert_eq!(blk.io_service_bytes.len(), 2);
    assert_eq!(blk.io_service_bytes[0].value, 4096);
    assert_eq!(s.hugetlb["2MB"].usage, 0);
}

#[test]
fn v2_stats_parse() {
    let (fs, hier, own) = v2_host();
    let m = create(&fs, &hier, &own, &config("/c", "{}")).unwrap();
    let d = Path::new("/sys/fs/cgroup/c");
    fs.set(d.join("memory.current"), "4096\n");
    fs.set(d.join("memory.stat"), "anon 4096\n");
    fs.set(
        d.join("memory.events"),
        "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
    );
    fs.set(
        d.join("cpu.stat"),
        "usage_usec 10\nuser_usec 4\nsystem_usec 6\n",
    );
    fs.set(d.join("pids.current"), "2\n");
    fs.set(d.join("pids.max"), "10\n");
    fs.set(
        d.join("io.stat"),
        "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    let s = m.stats().unwrap();
    let mem = s.memory.unwrap();
    assert_eq!(
        (mem.usage, mem.limit, mem.failcnt, mem.oom_kills),
        (4096, u64::MAX, 5, 1)
    );
    assert_eq!(s.cpu.unwrap().usage_total, 10_000);
    assert_eq!(s.pids.unwrap().limit, 10);
    let io = s.blkio.unwrap();
    assert_eq!(io.io_service_bytes[1].op, "Write");
    assert_eq!(io.io_service_bytes[1].value, 1024);
    assert_eq!(io.io_serviced.len(), 2);
}

/// A pure v1 host with net_cls/net_prio and hugetlb mounted too.
fn v1_host() -> (MemFs, Hierarchies, OwnCgroups) {
    let mi = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
27 20 0:24 / /sys/fs/cgroup/hugetlb rw - cgroup cgroup rw,hugetlb
28 20 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
    let fs = MemFs::new();
    for d in ["cpu,cpuacct", "net_cls,net_prio", "hugetlb", "memory"] {
        fs.mkdir_p(Path::new("/sys/fs/cgroup").join(d));
    }
    fs.template(
        "/sys/fs/cgroup/hugetlb",
        &[
            ("hugetlb.2MB.limit_in_bytes", "-1"),
            ("hugetlb.1GB.limit_in_bytes", "-1"),
        ],
    );
    let hier = Hierarchies::from_mountinfo(mi, None).unwrap();
    (fs, hier, OwnCgroups::parse("4:memory:/\n"))
}

#[test]
fn v1_host_net_hugetlb_and_comounted_cpu() {
    let (fs, hier, own) = v1_host();
    assert_eq!(hier.mode(), CgroupMode::V1);
    let cfg = config(
        "/c",
        r#"{"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 1}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}, {"pageSize": "1GB", "limit": -1}],
            "cpu": {"shares": 256, "burst": 1000},
            "memory": {"kernelTCP": 1048576}}"#,
    );
    let m = create(&fs, &hier, &own, &cfg).unwrap();
    assert!(m.unified_dir().is_none());
    assert_eq!(
        m.v1_dir("cpu"),
        m.v1_dir("cpuacct"),
        "co-mounted: one directory"
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/net_cls,net_prio/c"),
        [
            ("net_cls.classid".to_string(), "1048577".to_string()),
            ("net_prio.ifpriomap".into(), "eth0 5".into()),
            ("net_prio.ifpriomap".into(), "lo 1".into()),
        ]
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/hugetlb/c"),
        [
            (
                "hugetlb.2MB.limit_in_bytes".to_string(),
                "4194304".to_string()
            ),
            ("hugetlb.1GB.limit_in_bytes".into(), "-1".into()),
        ]
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/cpu,cpuacct/c"),
        [
            ("cpu.shares".to_string(), "256".to_string()),
            ("cpu.cfs_burst_us".into(), "1000".into())
        ]
    );
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/memory/c"),
        [(
            "memory.kmem.tcp.limit_in_bytes".to_string(),
            "1048576".to_string()
        )]
    );
    // Unified keys need a cgroup2 mount.
    let err = create(
        &fs,
        &hier,
        &own,
        &config("/d", r#"{"unified": {"pids.max": "3"}}"#),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.unified:"),
        "{err}"
    );
}

#[test]
fn v1_cpu_quota_goes_first_when_the_period_is_refused() {
    let (fs, hier, own) = v1_host();
    fs.fail_writes(
        "/sys/fs/cgroup/cpu,cpuacct/c/cpu.cfs_period_us",
        libc::EINVAL,
    );
    let err = create(
        &fs,
        &hier,
        &own,
        &config("/c", r#"{"cpu": {"quota": 1000, "period": 2000}}"#),
    )
    .unwrap_err();
    // The quota was tried first on the retry, then the period failed again.
    assert!(
        err.to_string().starts_with("linux.resources.cpu.period:"),
        "{err}"
    );
    assert_eq!(
        fs.writes(),
        [(
            Path::new("/sys/fs/cgroup/cpu,cpuacct/c/cpu.cfs_quota_us").to_path_buf(),
            "1000".to_string()
        )]
    );
}

#[test]
fn v2_cpu_idle_burst_and_bfq_weight() {
    let (fs, hier, own) = v2_host();
    fs.template("/sys/fs/cgroup", &[("io.bfq.weight", "default 100")]);
    let cfg = config(
        "/c",
        r#"{"cpu": {"quota": -1, "period": 50000, "burst": 500, "idle": 1},
            "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 50}]}}"#,
    );
    create(&fs, &hier, &own, &cfg).unwrap();
    assert_eq!(
        fs.writes_under("/sys/fs/cgroup/c"),
        [
            ("cpu.max".to_string(), "max 50000".to_string()),
            ("cpu.max.burst".into(), "500".into()),
            ("cpu.idle".into(), "1".into()),
            ("io.bfq.weight".into(), "300".into()),
            ("io.bfq.weight".into(), "8:0 50".into()),
        ]
    );
}

#[test]
fn v2_freeze_waits_for_cgroup_events() {
    let (fs, hier, own) = v2_host();
    let m = create(&fs, &hier, &own, &config("/c", "{}")).unwrap();
    // The fake kernel reports the cgroup frozen: freeze writes
    // cgroup.freeze and returns once cgroup.events agrees.
    fs.set("/sys/fs/cgroup/c/cgroup.freeze", "0");
    fs.set("/sys/fs/cgroup/c/cgroup.events", "populated 1\nfrozen 1\n");
    m.freeze().unwrap();
    assert_eq!(
        fs.get("/sys/fs/cgroup/c/cgroup.freeze").as_deref(),
        Some("1")
    );
    assert!(m.is_frozen().unwrap());
}

#[test]
fn the_default_parent_is_kept_for_the_next_container() {
    let (fs, hier, own) = hybrid_host();
    let a = create(&fs, &hier, &own, &config("/berth/a", "{}")).unwrap();
    let b = create(&fs, &hier, &own, &config("/berth/b", "{}")).unwrap();
    a.delete(DeleteOptions::default()).unwrap();
    assert!(fs.is_dir("/sys/fs/cgroup/memory/berth/b"));
    assert!(!fs.is_dir("/sys/fs/cgroup/memory/berth/a"));
    b.delete(DeleteOptions::default()).unwrap();
    assert!(!fs.is_dir("/sys/fs/cgroup/memory/berth/b"));
    assert!(!fs.is_dir("/sys/fs/cgroup/unified/berth/b"));
    // The shared parent stays, so the next create makes only its leaf.
    assert!(fs.is_dir("/sys/fs/cgroup/memory/berth"));
    assert!(fs.is_dir("/sys/fs/cgroup/unified/berth"));
    // Other parents are never touched.
    fs.mkdir_p("/sys/fs/cgroup/memory/mine");
    let c = create(&fs, &hier, &own, &config("/mine/c", "{}")).unwrap();
    c.delete(DeleteOptions::default()).unwrap();
    assert!(fs.is_dir("/sys/fs/cgroup/memory/mine"));
}
