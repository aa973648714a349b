//! berthd's image store: `docker import` of the busybox rootfs tar into a
//! fresh store (hash, unpack once, config, manifest, index) against
//! `podman import` of the same tar into a fresh podman store, and the
//! per-container overlay rootfs mount + unmount.
//!
//! Root only (overlayfs, podman's overlay driver); skips otherwise.
//! podman runs with a private --root/--runroot under a temp dir, removed
//! after each sample: the machine's real podman store is never touched.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use examples::images::{busybox_import_options, write_busybox_rootfs_tar, ImageStore};

fn podman_import(dir: &Path, tar: &Path) {
    let out = Command::new("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args([
            "--storage-driver",
            "overlay",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
        ])
        .args(["import", "--quiet"])
        .arg(tar)
        .arg("busybox:latest")
        .output()
        .expect("run podman");
    assert!(
        out.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn images(c: &mut Criterion) {
    if !nix_is_root() {
        eprintln!("skipping images benches: need root (overlayfs, podman storage)");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let mut tar = Vec::new();
    write_busybox_rootfs_tar(&mut tar).expect("busybox tar (install busybox-static)");
    let tar_path = work.path().join("busybox.tar");
    std::fs::write(&tar_path, &tar).expect("write tar");
    let options = busybox_import_options();

    let podman = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !podman {
        eprintln!("podman not installed: no anchor for the import benchmark");
    }
    // podman keeps its lock table in shared memory outside --root; remove
    // it afterwards if this run is what created it.
    let podman_shm = Path::new("/dev/shm/libpod_lock");
    let podman_shm_existed = podman_shm.exists();
    // The same import on this VM's ext4 disk and on tmpfs (the library's
    // own cost, without the shared disk's fsync latency).
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let mut places = vec![("disk", work.path().to_path_buf())];
    places.extend(shm.as_ref().map(|d| ("tmpfs", d.path().to_path_buf())));
    let mut g = c.benchmark_group("images_import_busybox");
    g.sample_size(20).measurement_time(Duration::from_secs(15));
    for (place, base) in &places {
        g.bench_function(format!("berth/{place}"), |b| {
            b.iter_batched(
                || tempfile::tempdir_in(base).expect("temp dir"),
                |dir| {
                    let store = ImageStore::open(dir.path()).expect("open store");
                    store.import(&tar[..], &options).expect("import");
                    dir // dropped (removed) outside the timing
                },
                BatchSize::PerIteration,
            )
        });
        if podman {
            g.bench_function(format!("podman/{place}"), |b| {
                b.iter_batched(
                    || tempfile::tempdir_in(base).expect("temp dir"),
                    |dir| {
                        podman_import(dir.path(), &tar_path);
                        dir
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
    if podman && !podman_shm_existed {
        let _ = std::fs::remove_file(podman_shm);
    }

    let store = ImageStore::open(work.path().join("store")).expect("open store");
    store.import(&tar[..], &options).expect("import");
    let mut n = 0u64;
    let mut g = c.benchmark_group("images_overlay");
    g.bench_function("mount_unmount", |b| {
        b.iter(|| {
            n += 1;
            let rootfs = store
                .mount("busybox", &work.path().join(format!("c{n}")))
                .expect("mount");
            rootfs.unmount().expect("unmount");
        })
    });
    g.finish();
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

criterion_group!(benches, images);
criterion_main!(benches);
