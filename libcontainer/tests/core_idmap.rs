//! Root tests: idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`),
//! without and with a user namespace for the container, and bad mappings
//! refused before anything exists.

mod core_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use core_common::{assert_no_children, assert_no_mounts_under, root_or_skip, Env};
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder,
    Spec,
};

fn idm(container: u32, host: u32, size: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()
        .unwrap()
}

/// What the container does: show owners, append, create.
const SCRIPT: &str = "id -u; stat -c 'dir=%u:%g' /data; stat -c 'file=%u:%g' /data/f; \
     echo more >> /data/f && echo appended; touch /data/new && echo created; \
     stat -c 'new=%u:%g' /data/new";

/// A host directory owned by 0:0 (mode 0700, so only its owner may write)
/// holding `f` (0:0, 0644), and a bundle that binds it at /data with
/// `maps` and runs SCRIPT as 1000:1000. `/out` is opened up so uid 1000
/// can write its log.
fn env_with(maps: Vec<LinuxIdMapping>, edit: impl FnOnce(&mut Spec)) -> (Env, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(data.join("f"), "start\n").unwrap();
    let src = data.to_str().unwrap().to_string();
    let env = Env::with_spec(SCRIPT, |s| {
        let m = MountBuilder::default()
            .destination("/data")
            .source(src)
            .options(vec!["bind".to_string()])
            .uid_mappings(maps.clone())
            .gid_mappings(maps)
            .build()
            .unwrap();
        s.mounts_mut().get_or_insert_with(Vec::new).push(m);
        let p = s.process_mut().as_mut().unwrap();
        let mut user = p.user().clone();
        user.set_uid(1000);
        user.set_gid(1000);
        p.set_user(user);
        edit(s);
    });
    std::fs::set_permissions(&env.out, std::fs::Permissions::from_mode(0o777)).unwrap();
    (env, tmp)
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn check_outcome(log: &str, data: &Path) {
    assert!(log.starts_with("1000\n"), "runs as uid 1000: {log}");
    assert!(log.contains("dir=1000:1000"), "{log}");
    assert!(log.contains("file=1000:1000"), "{log}");
    assert!(log.contains("appended") && log.contains("created"), "{log}");
    assert!(log.contains("new=1000:1000"), "{log}");
    // On the host, nothing changed owner: the new file is 0:0.
    assert_eq!(owner(data), (0, 0));
    assert_eq!(owner(&data.join("f")), (0, 0));
    assert_eq!(
        owner(&data.join("new")),
        (0, 0),
        "created through the idmap"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("f")).unwrap(),
        "start\nmore\n"
    );
    assert_no_mounts_under(data);
}

#[test]
fn idmapped_bind_without_user_namespace() {
    if !root_or_skip() {
        return;
    }
    // On disk 0 is seen as 1000 (and 1000 is stored as 0).
    let (env, data) = env_with(vec![idm(0, 1000, 1)], |_| {});
    let (code, log) = env.run("idmap-plain");
    assert_eq!(code, 0, "{log}");
    check_outcome(&log, data.path());
    assert_no_children();
}

#[test]
fn idmapped_bind_in_a_user_namespace() {
    if !root_or_skip() {
        return;
    }
    // The container's root is host root (so it can reach the bundle), its
    // uid 1000 is host 101000; the mount shows on-disk 0 as 101000, which
    // the container sees as its 1000.
    let (env, data) = env_with(vec![idm(0, 101_000, 1)], |s| {
        let l = s.linux_mut().as_mut().unwrap();
        let mut ns = l.namespaces().clone().unwrap_or_default();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        l.set_namespaces(Some(ns));
        let maps = vec![idm(0, 0, 1), idm(1, 100_001, 65_535)];
        l.set_uid_mappings(Some(maps.clone()));
        l.set_gid_mappings(Some(maps));
    });
    let (code, log) = env.run("idmap-userns");
    assert_eq!(code, 0, "{log}");
    check_outcome(&log, data.path());
    assert_no_children();
}

#[test]
fn bad_mappings_name_the_field_and_leave_nothing() {
    if !root_or_skip() {
        return;
    }
    for (maps, field) in [
        (vec![idm(0, 1000, 0)], "uidMappings[0].size: must not be 0"),
        (
            vec![idm(0, 1000, 1), idm(1, u32::MAX - 1, 2)],
            "uidMappings[1].size: hostID 4294967294 + size 2 overflows",
        ),
    ] {
        let (env, data) = env_with(maps, |_| {});
        let spec = env.bundle.load_spec().unwrap();
        let index = spec.mounts().as_ref().unwrap().len() - 1;
        let err = env.create("idmap-bad").unwrap_err().to_string();
        assert!(
            err.contains(&format!("mounts[{index}].{field}")),
            "names the field: {err}"
        );
        assert!(!env.state_dir("idmap-bad").exists(), "no state left");
        assert_no_mounts_under(data.path());
        assert_no_children();
    }
}

#[test]
fn idmap_option_reuses_the_container_mappings() {
    if !root_or_skip() {
        return;
    }
    // `idmap` without mappings of its own takes linux.uidMappings. A file
    // owned by 5 on disk: through the idmap it is the container's 5, while
    // a plain bind shows host 5 unmapped (nobody).
    let data = tempfile::tempdir().unwrap();
    let f = data.path().join("f");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(5), Some(5)).unwrap();
    let src = data.path().to_str().unwrap().to_string();
    let env = Env::with_spec(
        "stat -c '%n=%u:%g' /data/f /plain/f /ro/f; touch /ro/f || echo ro-refused",
        |s| {
            for (dest, opts) in [
                ("/data", vec!["bind", "idmap"]),
                ("/plain", vec!["bind"]),
                ("/ro", vec!["bind", "idmap", "ro"]),
            ] {
                let m = MountBuilder::default()
                    .destination(dest)
                    .source(src.clone())
                    .options(opts.into_iter().map(String::from).collect::<Vec<_>>())
                    .build()
                    .unwrap();
                s.mounts_mut().get_or_insert_with(Vec::new).push(m);
            }
            let l = s.linux_mut().as_mut().unwrap();
            let mut ns = l.namespaces().clone().unwrap_or_default();
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .unwrap(),
            );
            l.set_namespaces(Some(ns));
            // Host root stays root, so the init can reach the 0700 bundle.
            let maps = vec![idm(0, 0, 1), idm(1, 100_001, 65_535)];
            l.set_uid_mappings(Some(maps.clone()));
            l.set_gid_mappings(Some(maps));
        },
    );
    let (code, log) = env.run("idmap-opt");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("/data/f=5:5"), "{log}");
    assert!(log.contains("/plain/f=65534:65534"), "{log}");
    assert!(log.contains("/ro/f=5:5"), "{log}");
    assert!(
        log.contains("Read-only file system") && log.contains("ro-refused"),
        "`ro` is applied with the idmap: {log}"
    );
    assert_eq!(owner(&f), (5, 5));
}

#[test]
fn a_filesystem_without_idmap_support_fails_create_cleanly() {
    if !root_or_skip() {
        return;
    }
    // procfs cannot be idmapped. First with a helper namespace (before the
    // state exists), then with the container's own (after the clone).
    for (id, own_maps) in [("idmap-proc-helper", false), ("idmap-proc-own", true)] {
        let env = Env::with_spec("true", |s| {
            let mut b = MountBuilder::default()
                .destination("/data")
                .source("/proc/sys/kernel");
            if own_maps {
                b = b.options(vec!["rbind".to_string(), "idmap".to_string()]);
            } else {
                b = b
                    .options(vec!["rbind".to_string()])
                    .uid_mappings(vec![idm(0, 1000, 1)])
                    .gid_mappings(vec![idm(0, 1000, 1)]);
            }
            s.mounts_mut()
                .get_or_insert_with(Vec::new)
                .push(b.build().unwrap());
            let l = s.linux_mut().as_mut().unwrap();
            let mut ns = l.namespaces().clone().unwrap_or_default();
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .unwrap(),
            );
            l.set_namespaces(Some(ns));
            let maps = vec![idm(0, 0, 1), idm(1, 100_001, 65_535)];
            l.set_uid_mappings(Some(maps.clone()));
            l.set_gid_mappings(Some(maps));
        });
        let err = env.create(id).unwrap_err().to_string();
        assert!(
            err.contains("idmapped mount of /proc/sys/kernel: mount_setattr")
                && err.contains("support idmapped mounts"),
            "{id}: {err}"
        );
        assert!(!env.state_dir(id).exists(), "{id}: no state left");
        assert_no_children();
        assert_no_mounts_under(&env.rootfs());
    }
}
