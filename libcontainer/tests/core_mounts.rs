//! Root tests: the rootfs (pivot, readonly, propagation), each mount kind,
//! devices, masked and read-only paths, hostname, sysctl, and that a
//! symlink in the rootfs never leads a mount outside it.

mod core_common;

use core_common::{assert_no_children, assert_no_mounts_under, root_or_skip, Env};
use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType, MountBuilder, Spec};

fn add_mount(s: &mut Spec, dest: &str, typ: Option<&str>, src: &str, opts: &[&str]) {
    let mut b = MountBuilder::default()
        .destination(dest)
        .source(src)
        .options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    s.mounts_mut()
        .get_or_insert_with(Vec::new)
        .push(b.build().unwrap());
}

/// `grep`-style lookup of the mountinfo line for `dest` in the log.
fn line_for<'a>(log: &'a str, dest: &str) -> &'a str {
    log.lines()
        .find(|l| l.split(' ').nth(4) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest} in:\n{log}"))
}

#[test]
fn every_mount_kind_with_its_options() {
    if !root_or_skip() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file"), "hostfile\n").unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    let sub_tmp = host.path().join("sub");
    // A mount below the rbind source: rbind carries it, bind does not.
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub_tmp)
        .status()
        .unwrap();
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(sub_tmp.clone());
    std::fs::write(sub_tmp.join("inner"), "x").unwrap();
    let h = host.path().to_str().unwrap().to_string();
    let env = Env::with_spec(
        "cat /proc/self/mountinfo; cat /ro-file; test -f /rbind/sub/inner && echo rbind-sub; \
         test -f /bind/sub/inner || echo bind-nosub; touch /ro-file 2>/dev/null || echo ro-ok; \
         ls /sys/fs/cgroup/ | tr '\\n' ' '; echo; ls /dev/mqueue >/dev/null && echo mq-ok; \
         stat -c '%a' /scratch",
        |s| {
            add_mount(
                s,
                "/ro-file",
                Some("bind"),
                &format!("{h}/file"),
                &["bind", "ro", "nosuid"],
            );
            add_mount(s, "/rbind", None, &h, &["rbind", "rprivate"]);
            add_mount(s, "/bind", None, &h, &["bind"]);
            add_mount(
                s,
                "/scratch",
                Some("tmpfs"),
                "tmpfs",
                &["nodev", "mode=1700", "size=1m"],
            );
        },
    );
    let (code, log) = env.run("mounts");
    assert_eq!(code, 0, "{log}");
    assert!(line_for(&log, "/proc").contains(" - proc "));
    assert!(line_for(&log, "/sys").contains(" ro,"), "sysfs ro");
    assert!(line_for(&log, "/dev").contains(" - tmpfs "));
    assert!(line_for(&log, "/dev/pts").contains(" - devpts "));
    assert!(line_for(&log, "/dev/shm").contains(" - tmpfs "));
    assert!(line_for(&log, "/dev/mqueue").contains(" - mqueue "));
    assert!(
        line_for(&log, "/scratch").contains("size=1024k"),
        "tmpfs data passed"
    );
    assert!(line_for(&log, "/scratch").contains("nodev"));
    let ro = line_for(&log, "/ro-file");
    assert!(ro.contains(" ro,") && ro.contains("nosuid"), "{ro}");
    assert!(log.contains("hostfile\n") && log.contains("ro-ok"));
    assert!(
        log.contains("rbind-sub") && log.contains("bind-nosub"),
        "{log}"
    );
    assert!(log.contains("mq-ok"));
    assert!(log.contains("1700"), "tmpfs mode");
    // This host is hybrid: the cgroup mount holds the v1 hierarchies.
    let has_cpu = std::path::Path::new("/sys/fs/cgroup/cpu").exists();
    if has_cpu {
        assert!(log.contains("cpu "), "cgroup hierarchies mounted: {log}");
    }
    assert_no_mounts_under(env.rootfs().as_path());
}

#[test]
fn devices_symlinks_hostname_sysctl() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec(
        "ls -l /dev/null /dev/fuse /dev/tty | cut -c1-10; for l in fd stdin ptmx; do readlink /dev/$l; done; \
         hostname; cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward; echo a > /dev/null && echo null-ok",
        |s| {
            s.set_domainname(Some("example.org".into()));
            let l = s.linux_mut().as_mut().unwrap();
            let fuse = LinuxDeviceBuilder::default()
                .path("/dev/fuse")
                .typ(LinuxDeviceType::C)
                .major(10)
                .minor(229)
                .file_mode(0o600u32)
                .build()
                .unwrap();
            l.set_devices(Some(vec![fuse]));
            l.set_sysctl(Some([("net.ipv4.ip_forward".to_string(), "1".to_string())].into()));
        },
    );
    let (code, log) = env.run("devs");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.starts_with("crw-------\ncrw-rw-rw-\ncrw-rw-rw-\n"),
        "fuse 0600, null and tty 0666: {log}"
    );
    assert!(
        log.contains("/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n"),
        "{log}"
    );
    assert!(log.contains("berth\nexample.org\n1\n"), "{log}");
    assert!(log.contains("null-ok"));
}

#[test]
fn readonly_root_masked_and_readonly_paths_and_propagation() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec(
        "touch /newfile 2>/dev/null || echo root-ro; cat /proc/keys | wc -c; \
         ls /proc/acpi | wc -l; (echo 1 > /proc/sys/kernel/hostname) 2>/dev/null || echo sys-ro; \
         awk '$5 == \"/\"' /proc/self/mountinfo",
        |s| {
            s.root_mut().as_mut().unwrap().set_readonly(Some(true));
            let l = s.linux_mut().as_mut().unwrap();
            l.set_masked_paths(Some(vec![
                "/proc/keys".into(),
                "/proc/acpi".into(),
                "/proc/nonexistent".into(),
            ]));
            s.linux_mut()
                .as_mut()
                .unwrap()
                .set_rootfs_propagation(Some("rprivate".into()));
        },
    );
    let (code, log) = env.run("ro");
    assert_eq!(code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "root-ro");
    assert_eq!(lines[1], "0", "/proc/keys is masked by /dev/null");
    assert_eq!(lines[2], "0", "/proc/acpi is masked by an empty tmpfs");
    assert_eq!(lines[3], "sys-ro", "/proc/sys is read-only");
    assert!(
        lines[4].contains(" ro,") && !lines[4].contains("shared:"),
        "{}",
        lines[4]
    );
}

#[test]
fn shared_rootfs_propagation() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec("awk '$5 == \"/\"' /proc/self/mountinfo", |s| {
        s.linux_mut()
            .as_mut()
            .unwrap()
            .set_rootfs_propagation(Some("shared".into()));
    });
    let (code, log) = env.run("shared");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("shared:"), "{log}");
}

#[test]
fn symlink_in_rootfs_pointing_outside_never_escapes() {
    if !root_or_skip() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    let env = Env::with_spec("true", |s| {
        add_mount(s, "/escape/x", Some("tmpfs"), "tmpfs", &[]);
    });
    std::os::unix::fs::symlink(&target, env.rootfs().join("escape")).unwrap();
    let err = env.create("escape").unwrap_err().to_string();
    assert!(err.contains("/escape") && err.contains("symlink"), "{err}");
    assert!(!target.exists(), "nothing created outside the rootfs");
    assert!(!env.state_dir("escape").exists());
    assert_no_mounts_under(outside.path());
    assert_no_children();

    // An absolute symlink to an existing dir resolves inside the rootfs.
    std::fs::remove_file(env.rootfs().join("escape")).unwrap();
    std::fs::create_dir(env.rootfs().join("inside")).unwrap();
    std::os::unix::fs::symlink("/inside", env.rootfs().join("escape")).unwrap();
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, env.rootfs().join("inside/x")).unwrap_or(());
    std::fs::remove_file(env.rootfs().join("inside/x")).unwrap();
    env.edit_spec(|s| {
        s.process_mut().as_mut().unwrap().set_args(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "grep -c ' /inside/x ' /proc/self/mountinfo > /out/log".into(),
        ]));
    });
    let (code, log) = env.run("inside");
    assert_eq!(
        (code, log.trim()),
        (0, "1"),
        "mounted at /inside/x within the rootfs"
    );
    assert!(std::fs::read_dir(&target).unwrap().next().is_none());
}

#[test]
fn process_user_env_cwd_rlimits() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec(
        "id; umask; pwd; echo $FOO; ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj",
        |s| {
            let p = s.process_mut().as_mut().unwrap();
            let mut user = p.user().clone();
            user.set_uid(1000);
            user.set_gid(1000);
            user.set_additional_gids(Some(vec![10, 20]));
            user.set_umask(Some(0o027));
            p.set_user(user);
            p.set_cwd("/tmp".into());
            p.set_env(Some(vec!["PATH=/bin".into(), "FOO=bar baz".into()]));
            p.set_no_new_privileges(Some(true));
            p.set_oom_score_adj(Some(500));
            let r = oci_spec::runtime::PosixRlimitBuilder::default()
                .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
                .soft(100u64)
                .hard(200u64)
                .build()
                .unwrap();
            p.set_rlimits(Some(vec![r]));
        },
    );
    std::fs::set_permissions(
        &env.out,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let (code, log) = env.run("user");
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        log,
        "uid=1000 gid=1000 groups=10,20\n0027\n/tmp\nbar baz\n100\n200\nNoNewPrivs:\t1\n500\n"
    );
}

#[test]
fn rlimit_and_oom_errors_name_the_field() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec("true", |s| {
        let p = s.process_mut().as_mut().unwrap();
        let r = oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
            .soft(1u64 << 40)
            .hard(1u64 << 40)
            .build()
            .unwrap();
        p.set_rlimits(Some(vec![r]));
    });
    match env.create("rlim") {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("process.rlimits RLIMIT_NOFILE"), "{e}");
            assert!(!env.state_dir("rlim").exists());
        }
        // A machine with CAP_SYS_RESOURCE may raise it.
        Ok(c) => c.delete(true).unwrap(),
    }
    let env = Env::with_spec("true", |s| {
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_oom_score_adj(Some(-999));
    });
    match env.create("oom") {
        Err(e) => assert!(e.to_string().contains("process.oomScoreAdj"), "{e}"),
        Ok(c) => c.delete(true).unwrap(),
    }
    assert!(!env.state_dir("oom").exists());
    assert_no_children();
}
