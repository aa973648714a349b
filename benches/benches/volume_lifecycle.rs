//! libvolume latency: a local volume's create / mount / unmount / remove
//! through the service, the same for a volume behind our plugin server over
//! a unix socket, and one plugin call's round trip.
//!
//! The local volumes here are plain directories: no kernel mount, so the
//! figures are the library's own cost plus its state writes, measured with
//! the state on disk (fsynced, the default, and not) and on tmpfs.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use libvolume::plugin::{
    Plugin, PluginAddr, PluginClient, PluginDriver, PluginServer, RetryPolicy,
};
use libvolume::{Caller, CreateVolume, LocalDriver, VolumeDriver, VolumeService};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn shm_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().expect("tempdir"))
}

async fn service(state: &Path, sync: bool) -> VolumeService {
    VolumeService::builder(state)
        .sync_state(sync)
        .build()
        .await
        .expect("service")
}

async fn lifecycle(svc: &VolumeService, driver: &str) {
    let vol = svc
        .create(CreateVolume::named("bench-vol").driver(driver))
        .await
        .expect("create");
    svc.mount(&vol.name, Caller::new("bench"))
        .await
        .expect("mount");
    svc.unmount(&vol.name, "bench").await.expect("unmount");
    svc.remove(&vol.name, false).await.expect("remove");
}

/// lifecycle, create+remove and mount+unmount of `driver` volumes.
fn bench_service(
    c: &mut Criterion,
    rt: &Runtime,
    group: &str,
    label: &str,
    svc: &VolumeService,
    driver: &str,
) {
    let mut g = c.benchmark_group(group);
    g.bench_function(format!("lifecycle_{label}"), |b| {
        b.iter(|| rt.block_on(lifecycle(svc, driver)))
    });
    g.bench_function(format!("create_remove_{label}"), |b| {
        b.iter(|| {
            rt.block_on(async {
                svc.create(CreateVolume::named("cr-vol").driver(driver))
                    .await
                    .expect("create");
                svc.remove("cr-vol", false).await.expect("remove");
            })
        })
    });
    rt.block_on(svc.create(CreateVolume::named("mnt-vol").driver(driver)))
        .expect("create");
    g.bench_function(format!("mount_unmount_{label}"), |b| {
        b.iter(|| {
            rt.block_on(async {
                svc.mount("mnt-vol", Caller::new("bench"))
                    .await
                    .expect("mount");
                svc.unmount("mnt-vol", "bench").await.expect("unmount");
            })
        })
    });
    rt.block_on(svc.remove("mnt-vol", false)).expect("remove");
    g.finish();
}

fn bench_local(c: &mut Criterion) {
    let rt = runtime();
    let disk = tempfile::tempdir().expect("tempdir");
    let shm = shm_tempdir();
    for (label, dir, sync) in [
        ("disk_fsync", disk.path(), true),
        ("disk_nosync", disk.path(), false),
        ("tmpfs", shm.path(), true),
    ] {
        let dir = dir.join(label);
        let svc = rt.block_on(service(&dir.join("state"), sync));
        let local = LocalDriver::builder(dir.join("vols"))
            .build()
            .expect("local");
        svc.register_driver(Arc::new(local));
        bench_service(c, &rt, "volume_local", label, &svc, "local");
    }
}

fn bench_plugin(c: &mut Criterion) {
    let rt = runtime();
    let dir = shm_tempdir();
    let sock = dir.path().join("bench.sock");
    let local = LocalDriver::builder(dir.path().join("plugin-vols"))
        .build()
        .expect("local");
    let _server = rt
        .block_on(PluginServer::new(Arc::new(local)).serve_unix(&sock))
        .expect("server");
    let plugin = Plugin {
        name: "benchplug".into(),
        addr: PluginAddr::Unix(sock),
    };
    let driver = rt
        .block_on(PluginDriver::activate_with(
            PluginClient::new(plugin),
            RetryPolicy::default(),
        ))
        .expect("activate");

    let mut g = c.benchmark_group("volume_plugin");
    g.bench_function("roundtrip_capabilities", |b| {
        b.iter(|| rt.block_on(driver.capabilities()).expect("capabilities"))
    });
    rt.block_on(driver.create("rt-vol", &Default::default()))
        .expect("create");
    g.bench_function("roundtrip_path", |b| {
        b.iter(|| rt.block_on(driver.path("rt-vol")).expect("path"))
    });
    g.finish();

    let svc = rt.block_on(service(&dir.path().join("state"), true));
    svc.register_driver(Arc::new(driver));
    bench_service(c, &rt, "volume_plugin", "tmpfs", &svc, "benchplug");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_local, bench_plugin
}
criterion_main!(benches);
