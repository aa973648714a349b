//! Cost of a container's cgroups on the create/delete path: creating the
//! cgroups with a memory (4 MiB) and pids (1) limit and deleting them, with
//! CgroupManager (host detection included, and with the layout detected
//! once), against the bare minimum done by hand (mkdir in every hierarchy,
//! cpuset.cpus/mems filled from values read once (v1 refuses tasks in an
//! empty cpuset), two limit writes, rmdir) in the same run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use libcontainer::cgroups::{
    CgroupConfig, CgroupManager, CgroupPath, DeleteOptions, Hierarchies, OwnCgroups, RealFs,
};
use oci_spec::runtime::LinuxResources;

static N: AtomicU64 = AtomicU64::new(0);

fn next_path() -> String {
    format!(
        "/berth-bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn config(path: &str) -> CgroupConfig {
    let res: LinuxResources =
        serde_json::from_str(r#"{"memory": {"limit": 4194304}, "pids": {"limit": 1}}"#)
            .expect("resources");
    CgroupConfig::new(
        CgroupPath::parse(Some(Path::new(path)), "bench").expect("path"),
        res,
    )
}

/// Directories of every distinct hierarchy for `path` (the unified one too).
fn raw_dirs(h: &Hierarchies, path: &str) -> Vec<PathBuf> {
    let mut mounts: Vec<&Path> = h.v1.values().map(|m| m.mount_point.as_path()).collect();
    mounts.extend(h.unified.iter().map(|u| u.mount_point.as_path()));
    mounts.sort();
    mounts.dedup();
    mounts
        .into_iter()
        .map(|m| m.join(path.trim_start_matches('/')))
        .collect()
}

fn bench(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: cgroups benchmarks need root");
        return;
    }
    let hier = Hierarchies::detect(&RealFs).expect("detect");
    let own = OwnCgroups::read(&RealFs).expect("own cgroups");
    let memory = hier.v1.get("memory").map(|m| m.mount_point.clone());
    let pids = hier.v1.get("pids").map(|m| m.mount_point.clone());
    let cpuset = hier.v1.get("cpuset").map(|m| {
        let read = |f: &str| std::fs::read_to_string(m.mount_point.join(f)).expect("cpuset");
        (
            m.mount_point.clone(),
            read("cpuset.cpus"),
            read("cpuset.mems"),
        )
    });
    let mut g = c.benchmark_group("cgroups_create_delete");
    g.sample_size(50);

    g.bench_function("berth CgroupManager::create+delete", |b| {
        b.iter(|| {
            let m = CgroupManager::create(&config(&next_path())).expect("create");
            m.delete(DeleteOptions::default()).expect("delete");
        })
    });
    g.bench_function("berth create_with (layout detected once)+delete", |b| {
        b.iter(|| {
            let m =
                CgroupManager::create_with(Arc::new(RealFs), &hier, &own, &config(&next_path()))
                    .expect("create");
            m.delete(DeleteOptions::default()).expect("delete");
        })
    });
    if let (Some(memory), Some(pids)) = (memory, pids) {
        g.bench_function("raw mkdir+2 writes+rmdir (anchor)", |b| {
            b.iter(|| {
                let p = next_path();
                let rel = p.trim_start_matches('/');
                let dirs = raw_dirs(&hier, &p);
                for d in &dirs {
                    std::fs::create_dir(d).expect("mkdir");
                }
                if let Some((mount, cpus, mems)) = &cpuset {
                    std::fs::write(mount.join(rel).join("cpuset.cpus"), cpus).expect("cpus");
                    std::fs::write(mount.join(rel).join("cpuset.mems"), mems).expect("mems");
                }
                std::fs::write(memory.join(rel).join("memory.limit_in_bytes"), "4194304")
                    .expect("memory");
                std::fs::write(pids.join(rel).join("pids.max"), "1").expect("pids");
                for d in &dirs {
                    std::fs::remove_dir(d).expect("rmdir");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
