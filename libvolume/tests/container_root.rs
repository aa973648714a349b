//! A volume shared by two containers (libcontainer): the first writes into
//! it, the second, with the volume mounted read-only, reads what was
//! written and cannot write. Root only.

mod common;

use std::sync::Arc;

use common::*;
use libcontainer::fixtures::{default_spec, BusyboxBundle};
use libcontainer::{Container, ContainerBuilder};
use libvolume::*;

/// Deletes the container (forcibly) if the test did not.
struct ContainerGuard(Option<Container>);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = c.delete(true);
        }
    }
}

/// Runs `script` in a busybox container with `mount`; returns its exit code.
fn run(dir: &std::path::Path, id: &str, mount: oci_spec::runtime::Mount, script: &str) -> i32 {
    let mut spec = default_spec();
    spec.mounts_mut().get_or_insert_with(Vec::new).push(mount);
    let bundle = BusyboxBundle::new(dir.join(id))
        .spec(spec)
        .args(["/bin/sh", "-c", script])
        .write()
        .expect("bundle");
    let created = ContainerBuilder::new(id, bundle.path())
        .root(dir.join("containers"))
        .create()
        .expect("create container");
    let mut guard = ContainerGuard(Some(created));
    let c = guard.0.as_mut().expect("container");
    c.start().expect("start");
    let code = c.wait().expect("wait");
    if let Some(c) = guard.0.take() {
        c.delete(false).expect("delete");
    }
    code
}

#[tokio::test(flavor = "current_thread")]
async fn one_container_writes_a_volume_another_reads_it() {
    if skip_unless_root("one_container_writes_a_volume_another_reads_it") {
        return;
    }
    if let Err(e) = libcontainer::fixtures::static_busybox() {
        println!("skipping one_container_writes_a_volume_another_reads_it: {e}");
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let svc = VolumeService::builder(scratch.path().join("volume-state"))
        .driver(Arc::new(
            LocalDriver::builder(scratch.path().join("volumes"))
                .build()
                .unwrap(),
        ))
        .build()
        .await
        .unwrap();
    let vol = svc
        .create(
            CreateVolume::named("shared")
                .option("type", "tmpfs")
                .option("device", "tmpfs")
                .option("o", "size=4m"),
        )
        .await
        .unwrap();
    let pid = std::process::id();

    let writer = format!("writer-{pid}");
    let path = svc.mount(&vol.name, Caller::new(&writer)).await.unwrap();
    let rw = VolumeMount::new(&path, "/data").build().unwrap();
    let code = run(
        scratch.path(),
        &writer,
        rw,
        "echo hello-from-writer > /data/msg",
    );
    assert_eq!(code, 0, "writer container");

    // The reader takes its reference before the writer drops its own, so
    // the tmpfs stays mounted between the two containers.
    let reader = format!("reader-{pid}");
    let path = svc.mount(&vol.name, Caller::new(&reader)).await.unwrap();
    svc.unmount(&vol.name, &writer).await.unwrap();
    let ro = VolumeMount::new(&path, "/data")
        .read_only(true)
        .build()
        .unwrap();
    let code = run(
        scratch.path(),
        &reader,
        ro,
        "test \"$(cat /data/msg)\" = hello-from-writer || exit 3; touch /data/nope 2>/dev/null && exit 4; exit 0",
    );
    assert_eq!(
        code, 0,
        "reader container (3: content differs, 4: read-only mount was writable)"
    );
    assert_eq!(
        std::fs::read_to_string(path.join("msg")).unwrap(),
        "hello-from-writer\n"
    );

    svc.unmount(&vol.name, &reader).await.unwrap();
    svc.remove(&vol.name, false).await.unwrap();
    assert!(mounts_under(&scratch.path().join("volumes")).is_empty());
}
