//! Root tests: every namespace type, new and joined by path, and the errors
//! for bad namespace paths.

mod core_common;

use core_common::{assert_no_children, host_ns, root_or_skip, Env};
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType as T};

const ALL: [(&str, T); 8] = [
    ("mnt", T::Mount),
    ("pid", T::Pid),
    ("net", T::Network),
    ("ipc", T::Ipc),
    ("uts", T::Uts),
    ("cgroup", T::Cgroup),
    ("user", T::User),
    ("time", T::Time),
];

fn script() -> String {
    ALL.iter()
        .map(|(n, _)| format!("readlink /proc/self/ns/{n};"))
        .collect()
}

fn ns_lines(log: &str) -> Vec<String> {
    log.lines().map(String::from).collect()
}

#[test]
fn every_namespace_new() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec(
        &format!(
            "{} cat /proc/self/uid_map /proc/self/gid_map; echo pid=$$",
            script()
        ),
        |s| {
            let l = s.linux_mut().as_mut().unwrap();
            let ns = ALL
                .iter()
                .map(|(_, t)| LinuxNamespaceBuilder::default().typ(*t).build().unwrap())
                .collect();
            l.set_namespaces(Some(ns));
            let m = LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(0u32)
                .size(65536u32)
                .build()
                .unwrap();
            l.set_uid_mappings(Some(vec![m]));
            l.set_gid_mappings(Some(vec![m]));
        },
    );
    let (code, log) = env.run("allns");
    assert_eq!(code, 0, "{log}");
    let lines = ns_lines(&log);
    for (i, (name, _)) in ALL.iter().enumerate() {
        assert_ne!(lines[i], host_ns(name), "{name} namespace is new");
    }
    assert!(
        log.contains("         0          0      65536"),
        "uid_map written: {log}"
    );
    assert!(log.contains("pid=1"), "init is pid 1: {log}");
}

#[test]
fn no_optional_namespaces_means_host_ones() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec(&script(), |s| {
        let l = s.linux_mut().as_mut().unwrap();
        l.set_namespaces(Some(vec![LinuxNamespaceBuilder::default()
            .typ(T::Mount)
            .build()
            .unwrap()]));
        s.set_hostname(None);
        // sysfs in the host net namespace, cgroup without cgroupns: fine as root.
    });
    let (code, log) = env.run("fewns");
    assert_eq!(code, 0, "{log}");
    let lines = ns_lines(&log);
    assert_ne!(lines[0], host_ns("mnt"));
    for (i, (name, _)) in ALL.iter().enumerate().skip(1) {
        assert_eq!(lines[i], host_ns(name), "{name} namespace is the host's");
    }
}

#[test]
fn join_namespaces_by_path() {
    if !root_or_skip() {
        return;
    }
    // A holder process with its own net, uts, ipc and pid namespaces.
    let holder = std::process::Command::new("unshare")
        .args([
            "--kill-child",
            "--net",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--mount-proc",
            "sleep",
            "100",
        ])
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = holder.id();
    // The sleep inside is the child of unshare; wait for it to exist.
    let mut inner = None;
    for _ in 0..200 {
        if let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            if let Some(p) = c.split_whitespace().next() {
                inner = Some(p.to_string());
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let guard = Kill(holder);
    let inner = inner.expect("unshare's child");
    let link = |n: &str| {
        std::fs::read_link(format!("/proc/{inner}/ns/{n}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let env = Env::with_spec(&format!("{} echo pid=$$", script()), |s| {
        let l = s.linux_mut().as_mut().unwrap();
        let mut ns = vec![LinuxNamespaceBuilder::default()
            .typ(T::Mount)
            .build()
            .unwrap()];
        for (name, t) in [
            ("net", T::Network),
            ("uts", T::Uts),
            ("ipc", T::Ipc),
            ("pid", T::Pid),
        ] {
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(t)
                    .path(format!("/proc/{inner}/ns/{name}"))
                    .build()
                    .unwrap(),
            );
        }
        l.set_namespaces(Some(ns));
    });
    let (code, log) = env.run("joinns");
    assert_eq!(code, 0, "{log}");
    let lines = ns_lines(&log);
    assert_eq!(lines[1], link("pid"), "joined pid ns");
    assert_eq!(lines[2], link("net"), "joined net ns");
    assert_eq!(lines[3], link("ipc"), "joined ipc ns");
    assert_eq!(lines[4], link("uts"), "joined uts ns");
    assert!(
        !log.contains("pid=1\n"),
        "not the init of the joined pid ns: {log}"
    );
    assert_eq!(
        host_ns("pid_for_children"),
        host_ns("pid"),
        "the runtime went back to its pid ns"
    );
    drop(guard);
}

#[test]
fn bad_namespace_paths_are_clear_errors_and_leave_nothing() {
    if !root_or_skip() {
        return;
    }
    for (path, t, want) in [
        ("/nonexistent/ns/net", T::Network, "No such file"),
        (
            "/proc/self/ns/uts",
            T::Network,
            "is a uts namespace, not network",
        ),
        ("/etc/hostname", T::Ipc, "not a namespace file"),
    ] {
        let env = Env::with_spec("true", |s| {
            let l = s.linux_mut().as_mut().unwrap();
            let mut ns: Vec<_> = l
                .namespaces()
                .clone()
                .unwrap()
                .into_iter()
                .filter(|n| n.typ() != t)
                .collect();
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(t)
                    .path(path)
                    .build()
                    .unwrap(),
            );
            l.set_namespaces(Some(ns));
        });
        let err = env.create("badns").unwrap_err().to_string();
        assert!(
            err.contains(want) && err.contains("linux.namespaces"),
            "{err}"
        );
        assert!(!env.state_dir("badns").exists());
    }
    assert_no_children();
}

/// linux.timeOffsets: the init unshares the time namespace, writes the
/// offsets, and the container's clocks are shifted from its first
/// instruction; bad offsets are refused naming the field.
#[test]
fn time_offsets_shift_the_containers_clocks() {
    if !root_or_skip() {
        return;
    }
    const YEAR: i64 = 365 * 86_400;
    let with_offsets = |s: &mut oci_spec::runtime::Spec, time_ns: bool, clock: &str| {
        let l = s.linux_mut().as_mut().unwrap();
        let mut ns = l.namespaces().clone().unwrap_or_default();
        ns.retain(|n| n.typ() != T::Time);
        if time_ns {
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(T::Time)
                    .build()
                    .unwrap(),
            );
        }
        l.set_namespaces(Some(ns));
        let off = |secs| {
            oci_spec::runtime::LinuxTimeOffsetBuilder::default()
                .secs(secs)
                .nanosecs(5u32)
                .build()
                .unwrap()
        };
        l.set_time_offsets(Some(
            [
                (clock.to_string(), off(YEAR)),
                ("monotonic".to_string(), off(7)),
            ]
            .into_iter()
            .collect(),
        ));
    };
    let env = Env::with_spec(
        "cut -d. -f1 /proc/uptime; readlink /proc/self/ns/time",
        |s| with_offsets(s, true, "boottime"),
    );
    let host_uptime = || -> i64 {
        let text = std::fs::read_to_string("/proc/uptime").unwrap();
        text.split('.').next().unwrap().parse().unwrap()
    };
    let before = host_uptime();
    let (code, log) = env.run("timens");
    let after = host_uptime();
    assert_eq!(code, 0, "{log}");
    let mut lines = log.lines();
    let uptime: i64 = lines.next().unwrap().parse().unwrap();
    assert!(
        (before + YEAR..=after + YEAR + 1).contains(&uptime),
        "uptime {uptime} in the container, {before}..{after} on the host: {log}"
    );
    assert_ne!(
        lines.next().unwrap(),
        host_ns("time"),
        "a new time namespace"
    );

    // Offsets without a new time namespace, or for another clock.
    for (time_ns, clock, field) in [
        (false, "boottime", "linux.timeOffsets"),
        (true, "realtime", "linux.timeOffsets.realtime"),
    ] {
        env.edit_spec(|s| with_offsets(s, time_ns, clock));
        let err = env.create("badtime").unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        assert!(!env.state_dir("badtime").exists());
    }
    assert_no_children();
}
