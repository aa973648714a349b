//! The local driver against the real kernel: tmpfs, binds, ext4 on loop
//! devices, size-limited images. Root only; each test runs in its own mount
//! namespace and cleans up through `Scratch` guards.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::*;
use libvolume::*;

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fill(path: &std::path::Path, mib: usize) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..mib {
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

fn fs_type(path: &std::path::Path) -> nix::sys::statfs::FsType {
    nix::sys::statfs::statfs(path).unwrap().filesystem_type()
}

#[tokio::test(flavor = "current_thread")]
async fn tmpfs_with_size_and_mode() {
    if skip_unless_root("tmpfs_with_size_and_mode") {
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let local = LocalDriver::builder(scratch.path()).build().unwrap();
    local
        .create(
            "scratch",
            &opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=2m,mode=0710,nosuid"),
            ]),
        )
        .await
        .unwrap();
    let path = local.mount("scratch", "m1").await.unwrap();
    assert_eq!(fs_type(&path), nix::sys::statfs::TMPFS_MAGIC);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o710
    );
    fill(&path.join("small"), 1).unwrap();
    let err = fill(&path.join("big"), 3).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    local.unmount("scratch", "m1").await.unwrap();
    assert!(mounts_under(scratch.path()).is_empty());
    assert!(
        !path.join("small").exists(),
        "tmpfs content is gone after unmount"
    );
    local.remove("scratch").await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn bind_of_host_path_keeps_host_data_on_remove() {
    if skip_unless_root("bind_of_host_path_keeps_host_data_on_remove") {
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let host = scratch.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("hello"), "from host").unwrap();
    let local = LocalDriver::builder(scratch.path().join("vols"))
        .build()
        .unwrap();
    let device = host.to_str().unwrap();
    local
        .create(
            "rw-bind",
            &opts(&[("type", "none"), ("device", device), ("o", "bind")]),
        )
        .await
        .unwrap();
    local
        .create(
            "ro-bind",
            &opts(&[("type", "none"), ("device", device), ("o", "bind,ro")]),
        )
        .await
        .unwrap();
    let rw = local.mount("rw-bind", "a").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(rw.join("hello")).unwrap(),
        "from host"
    );
    std::fs::write(rw.join("back"), "from volume").unwrap();
    let ro = local.mount("ro-bind", "b").await.unwrap();
    let err = std::fs::write(ro.join("nope"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // Removing a still-mounted bind volume unmounts it and never deletes through it.
    local.remove("rw-bind").await.unwrap();
    local.unmount("ro-bind", "b").await.unwrap();
    local.remove("ro-bind").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(host.join("back")).unwrap(),
        "from volume"
    );
    assert!(host.join("hello").exists());
    assert!(mounts_under(scratch.path()).is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn ext4_on_a_loop_device_and_on_an_image_file() {
    if skip_unless_root("ext4_on_a_loop_device_and_on_an_image_file") {
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let image = scratch.path().join("fs.img");
    ext4_image(&image, 16);
    let dev = libvolume::local::attach_loop(&image, false).unwrap();
    let local = LocalDriver::builder(scratch.path().join("vols"))
        .build()
        .unwrap();
    local
        .create(
            "on-dev",
            &opts(&[("type", "ext4"), ("device", dev.path().to_str().unwrap())]),
        )
        .await
        .unwrap();
    let path = local.mount("on-dev", "a").await.unwrap();
    assert_eq!(fs_type(&path), nix::sys::statfs::EXT4_SUPER_MAGIC);
    std::fs::write(path.join("kept"), "persisted").unwrap();
    local.unmount("on-dev", "a").await.unwrap();
    local.remove("on-dev").await.unwrap();
    libvolume::local::detach_loop(dev.path()).unwrap();
    drop(dev);

    // The same image as a device file path: attached to a loop device on mount.
    local
        .create(
            "on-img",
            &opts(&[("type", "ext4"), ("device", image.to_str().unwrap())]),
        )
        .await
        .unwrap();
    let path = local.mount("on-img", "a").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(path.join("kept")).unwrap(),
        "persisted"
    );
    assert_eq!(loops_backed_under(scratch.path()).len(), 1);
    local.unmount("on-img", "a").await.unwrap();
    local.remove("on-img").await.unwrap();
    assert!(mounts_under(scratch.path()).is_empty());
    // Auto-clear: the loop device went with the unmount.
    for _ in 0..50 {
        if loops_backed_under(scratch.path()).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(loops_backed_under(scratch.path()).is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn size_limits_a_plain_volume() {
    if skip_unless_root("size_limits_a_plain_volume") {
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let local = LocalDriver::builder(scratch.path()).build().unwrap();
    local
        .create("quota", &opts(&[("size", "16m")]))
        .await
        .unwrap();
    let path = local.mount("quota", "a").await.unwrap();
    assert_eq!(fs_type(&path), nix::sys::statfs::EXT4_SUPER_MAGIC);
    fill(&path.join("fits"), 4).unwrap();
    let err = fill(&path.join("too-big"), 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    local.unmount("quota", "a").await.unwrap();
    local.remove("quota").await.unwrap();
    assert!(mounts_under(scratch.path()).is_empty());
    assert!(!scratch.path().join("quota").exists());
}

#[tokio::test(flavor = "current_thread")]
async fn service_restart_unmounts_stale_tmpfs() {
    if skip_unless_root("service_restart_unmounts_stale_tmpfs") {
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let state = scratch.path().join("state");
    let root = scratch.path().join("vols");
    let service = |root: std::path::PathBuf| {
        let state = state.clone();
        async move {
            VolumeService::builder(&state)
                .driver(Arc::new(LocalDriver::builder(root).build().unwrap()))
                .build()
                .await
                .unwrap()
        }
    };
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    {
        let svc = service(root.clone()).await;
        svc.create(
            CreateVolume::named("ephemeral")
                .option("type", "tmpfs")
                .option("device", "tmpfs"),
        )
        .await
        .unwrap();
        let path = svc
            .mount("ephemeral", Caller::with_pid("ctr", child.id() as i32))
            .await
            .unwrap();
        assert_eq!(fs_type(&path), nix::sys::statfs::TMPFS_MAGIC);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        mounts_under(scratch.path()).len(),
        1,
        "mount outlives the service"
    );
    let svc = service(root).await;
    assert!(
        mounts_under(scratch.path()).is_empty(),
        "stale mount cleaned on restore"
    );
    assert!(svc.inspect("ephemeral").await.unwrap().is_dangling());
    svc.remove("ephemeral", false).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn failed_network_mount_is_a_clear_error_and_leaves_nothing() {
    if skip_unless_root("failed_network_mount_is_a_clear_error_and_leaves_nothing") {
        return;
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems.lines().any(|l| l.trim_end().ends_with("nfs")) {
        // With nfs in the kernel the mount would try to reach a server.
        println!("skipping failed_network_mount_is_a_clear_error_and_leaves_nothing: kernel has nfs and there is no nfs server here");
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let local = LocalDriver::builder(scratch.path()).build().unwrap();
    local
        .create(
            "share",
            &opts(&[
                ("type", "nfs"),
                ("device", ":/export"),
                ("o", "addr=localhost,ro"),
            ]),
        )
        .await
        .unwrap();
    let err = local.mount("share", "a").await.unwrap_err().to_string();
    assert!(err.contains("failed to mount local volume"), "{err}");
    assert!(mounts_under(scratch.path()).is_empty());
    // Still removable after the failure.
    local.remove("share").await.unwrap();
    assert!(!scratch.path().join("share").exists());
}
