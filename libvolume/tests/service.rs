//! The volume service over plain local volumes and a counting driver (no root).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use libvolume::*;

/// Records calls; mount returns a fixed path.
#[derive(Default)]
struct Counting {
    calls: Mutex<Vec<String>>,
    volumes: Mutex<BTreeMap<String, Options>>,
}

impl Counting {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl VolumeDriver for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    async fn create(&self, name: &str, opts: &Options) -> Result<()> {
        if opts.contains_key("bad") {
            return Err(Error::InvalidOption {
                driver: "counting".into(),
                message: "invalid option: \"bad\"".into(),
            });
        }
        self.calls.lock().unwrap().push(format!("create {name}"));
        self.volumes
            .lock()
            .unwrap()
            .insert(name.into(), opts.clone());
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<()> {
        self.calls.lock().unwrap().push(format!("remove {name}"));
        self.volumes.lock().unwrap().remove(name);
        Ok(())
    }
    async fn mount(&self, name: &str, _id: &str) -> Result<PathBuf> {
        self.calls.lock().unwrap().push(format!("mount {name}"));
        Ok(PathBuf::from(format!("/mnt/{name}")))
    }
    async fn unmount(&self, name: &str, _id: &str) -> Result<()> {
        self.calls.lock().unwrap().push(format!("unmount {name}"));
        Ok(())
    }
    async fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        Ok(Some(PathBuf::from(format!("/mnt/{name}"))))
    }
    async fn get(&self, name: &str) -> Result<DriverVolume> {
        Ok(DriverVolume {
            name: name.into(),
            ..Default::default()
        })
    }
    async fn list(&self) -> Result<Vec<DriverVolume>> {
        Ok(vec![])
    }
    async fn capabilities(&self) -> Result<Capabilities> {
        Ok(Capabilities::default())
    }
}

struct Env {
    _dir: tempfile::TempDir,
    state: PathBuf,
    root: PathBuf,
    counting: Arc<Counting>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Env {
            state: dir.path().join("state"),
            root: dir.path().join("volumes"),
            _dir: dir,
            counting: Arc::new(Counting::default()),
        }
    }

    async fn service(&self) -> VolumeService {
        VolumeService::builder(&self.state)
            .driver(Arc::new(LocalDriver::builder(&self.root).build().unwrap()))
            .driver(self.counting.clone())
            .build()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn create_inspect_list_remove() {
    let env = Env::new();
    let svc = env.service().await;
    let named = svc
        .create(CreateVolume::named("web-data").label("app", "web"))
        .await
        .unwrap();
    assert_eq!(named.driver, "local");
    let anon = svc
        .create(CreateVolume::anonymous().driver("counting"))
        .await
        .unwrap();
    assert_eq!(anon.name.len(), 64);
    // Same name and driver again: the existing volume.
    assert_eq!(
        svc.create(CreateVolume::named("web-data"))
            .await
            .unwrap()
            .name,
        "web-data"
    );
    let conflict = svc
        .create(CreateVolume::named("web-data").driver("counting"))
        .await
        .unwrap_err();
    assert!(matches!(conflict, Error::Conflict { .. }), "{conflict}");

    let inspected = svc.inspect("web-data").await.unwrap();
    assert_eq!(inspected.mountpoint, Some(env.root.join("web-data/_data")));
    assert_eq!(inspected.labels.get("app").map(String::as_str), Some("web"));
    assert!(svc.inspect("nope").await.unwrap_err().is_not_found());

    assert_eq!(svc.list(&ListFilter::default()).await.unwrap().len(), 2);
    let by_label = svc
        .list(&ListFilter::default().label("app=web"))
        .await
        .unwrap();
    assert_eq!(by_label.len(), 1);
    let by_driver = svc
        .list(&ListFilter::default().driver("counting"))
        .await
        .unwrap();
    assert_eq!(by_driver[0].name, anon.name);
    assert!(svc
        .list(&ListFilter::default().name("zzz"))
        .await
        .unwrap()
        .is_empty());

    svc.remove("web-data", false).await.unwrap();
    assert!(!env.root.join("web-data").exists());
    assert!(svc
        .remove("web-data", false)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn bad_names_drivers_and_options_are_clear_errors() {
    let env = Env::new();
    let svc = env.service().await;
    let e = svc.create(CreateVolume::named("../etc")).await.unwrap_err();
    assert!(e.to_string().contains("includes invalid characters"), "{e}");
    let e = svc
        .create(CreateVolume::named("vol").driver("nosuch"))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "volume driver \"nosuch\" not found");
    let e = svc
        .create(CreateVolume::named("vol").option("colour", "blue"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid option: \"colour\""), "{e}");
    let e = svc
        .create(
            CreateVolume::named("vol")
                .driver("counting")
                .option("bad", "1"),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("\"bad\""), "{e}");
    assert!(svc.list(&ListFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn reference_counts_per_caller() {
    let env = Env::new();
    let svc = env.service().await;
    svc.create(CreateVolume::named("shared").driver("counting"))
        .await
        .unwrap();
    let p1 = svc.mount("shared", Caller::new("c1")).await.unwrap();
    let p2 = svc.mount("shared", Caller::new("c2")).await.unwrap();
    svc.mount("shared", Caller::new("c1")).await.unwrap();
    assert_eq!(p1, p2);
    assert_eq!(env.counting.calls(), ["create shared", "mount shared"]);

    let held = svc.inspect("shared").await.unwrap();
    assert_eq!(held.callers.len(), 2);
    assert!(!held.is_dangling());
    assert_eq!(
        svc.list(&ListFilter::default().dangling(true))
            .await
            .unwrap()
            .len(),
        0
    );

    let e = svc.remove("shared", false).await.unwrap_err();
    assert!(matches!(e, Error::InUse { .. }), "{e}");
    let e = svc.unmount("shared", "stranger").await.unwrap_err();
    assert!(matches!(e, Error::NotMounted { .. }), "{e}");

    svc.unmount("shared", "c1").await.unwrap();
    svc.unmount("shared", "c2").await.unwrap();
    assert_eq!(env.counting.calls().len(), 2, "c1 still holds one mount");
    svc.unmount("shared", "c1").await.unwrap();
    assert_eq!(env.counting.calls().last().unwrap(), "unmount shared");
    assert!(svc.inspect("shared").await.unwrap().is_dangling());
}

#[tokio::test]
async fn forced_remove_unmounts_first() {
    let env = Env::new();
    let svc = env.service().await;
    svc.create(CreateVolume::named("held").driver("counting"))
        .await
        .unwrap();
    svc.mount("held", Caller::new("c1")).await.unwrap();
    svc.remove("held", true).await.unwrap();
    assert_eq!(
        env.counting.calls(),
        ["create held", "mount held", "unmount held", "remove held"]
    );
}

#[tokio::test]
async fn prune_removes_only_unused_matching() {
    let env = Env::new();
    let svc = env.service().await;
    for (name, app) in [("pa", "a"), ("pb", "b"), ("pc", "a")] {
        svc.create(CreateVolume::named(name).label("app", app))
            .await
            .unwrap();
    }
    svc.mount("pc", Caller::new("c")).await.unwrap();
    let mut pruned = svc
        .prune(&ListFilter::default().label("app=a"))
        .await
        .unwrap();
    pruned.sort();
    assert_eq!(pruned, ["pa"]);
    let left: Vec<_> = svc
        .list(&ListFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(left, ["pb", "pc"]);
}

#[tokio::test]
async fn restart_restores_state_and_drops_dead_callers() {
    let env = Env::new();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    {
        let svc = env.service().await;
        svc.create(
            CreateVolume::named("keep")
                .driver("counting")
                .label("k", "v"),
        )
        .await
        .unwrap();
        svc.create(CreateVolume::named("stale").driver("counting"))
            .await
            .unwrap();
        svc.mount("keep", Caller::new("persistent")).await.unwrap();
        svc.mount("stale", Caller::with_pid("short-lived", child.id() as i32))
            .await
            .unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = env.counting.calls().len();

    let svc = env.service().await;
    let keep = svc.inspect("keep").await.unwrap();
    assert_eq!(keep.labels.get("k").map(String::as_str), Some("v"));
    assert_eq!(keep.callers.len(), 1);
    let stale = svc.inspect("stale").await.unwrap();
    assert!(
        stale.is_dangling(),
        "dead caller's reference must be dropped"
    );
    let after = env.counting.calls()[before..].to_vec();
    assert!(after.contains(&"unmount stale".to_string()), "{after:?}");
    assert!(
        after.contains(&"mount keep".to_string()),
        "driver told again about live mount: {after:?}"
    );
    // The live caller can still release its mount.
    svc.unmount("keep", "persistent").await.unwrap();
    assert_eq!(env.counting.calls().last().unwrap(), "unmount keep");
}

/// A pluggable liveness check: here every caller is dead.
struct NobodyAlive;
impl Liveness for NobodyAlive {
    fn is_alive(&self, _: &Caller) -> bool {
        false
    }
}

#[tokio::test]
async fn liveness_is_pluggable() {
    let env = Env::new();
    {
        let svc = env.service().await;
        svc.create(CreateVolume::named("vol").driver("counting"))
            .await
            .unwrap();
        svc.mount("vol", Caller::new("c")).await.unwrap();
    }
    let svc = VolumeService::builder(&env.state)
        .driver(env.counting.clone())
        .liveness(Arc::new(NobodyAlive))
        .build()
        .await
        .unwrap();
    assert!(svc.inspect("vol").await.unwrap().is_dangling());
    assert_eq!(env.counting.calls().last().unwrap(), "unmount vol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_mount_once_and_unmount_once() {
    let env = Env::new();
    let svc = env.service().await;
    svc.create(CreateVolume::named("busy").driver("counting"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let caller = format!("c{}", i % 8);
                svc.mount("busy", Caller::new(&caller)).await.unwrap();
                tokio::task::yield_now().await;
                svc.unmount("busy", &caller).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let calls = env.counting.calls();
    let mounts = calls.iter().filter(|c| *c == "mount busy").count();
    let unmounts = calls.iter().filter(|c| *c == "unmount busy").count();
    assert!(mounts >= 1 && mounts == unmounts, "{calls:?}");
    assert!(svc.inspect("busy").await.unwrap().is_dangling());
    // Every mount the driver saw was released: nothing is left mounted.
    assert_eq!(calls.last().unwrap(), "unmount busy");
}

#[tokio::test]
async fn inspect_reports_driver_status() {
    let env = Env::new();
    let svc = env.service().await;
    svc.create(
        CreateVolume::named("tmp-vol")
            .option("type", "tmpfs")
            .option("device", "tmpfs"),
    )
    .await
    .unwrap();
    let v = svc.inspect("tmp-vol").await.unwrap();
    assert_eq!(
        v.status.get("mounted"),
        Some(&serde_json::Value::Bool(false))
    );
    assert_eq!(v.mountpoint, Some(env.root.join("tmp-vol/_data")));
}

#[tokio::test]
async fn forced_remove_forgets_volumes_of_a_missing_driver() {
    let env = Env::new();
    {
        let svc = env.service().await;
        svc.create(CreateVolume::named("orphan").driver("counting"))
            .await
            .unwrap();
    }
    // Restart without the driver that made the volume.
    let svc = VolumeService::builder(&env.state).build().await.unwrap();
    assert_eq!(svc.inspect("orphan").await.unwrap().driver, "counting");
    let e = svc.remove("orphan", false).await.unwrap_err();
    assert!(matches!(e, Error::UnknownDriver { .. }), "{e}");
    svc.remove("orphan", true).await.unwrap();
    assert!(svc.inspect("orphan").await.unwrap_err().is_not_found());
    let svc = VolumeService::builder(&env.state).build().await.unwrap();
    assert!(svc.list(&ListFilter::default()).await.unwrap().is_empty());
}

/// Mount of "slow" waits until released; everything else is immediate.
struct Gated {
    gate: tokio::sync::Notify,
    entered: tokio::sync::Notify,
}

#[async_trait]
impl VolumeDriver for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    async fn create(&self, _: &str, _: &Options) -> Result<()> {
        Ok(())
    }
    async fn remove(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn mount(&self, name: &str, _: &str) -> Result<PathBuf> {
        if name == "slow" {
            self.entered.notify_one();
            self.gate.notified().await;
        }
        Ok(PathBuf::from(format!("/mnt/{name}")))
    }
    async fn unmount(&self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    async fn path(&self, _: &str) -> Result<Option<PathBuf>> {
        Ok(None)
    }
    async fn get(&self, name: &str) -> Result<DriverVolume> {
        Ok(DriverVolume {
            name: name.into(),
            ..Default::default()
        })
    }
    async fn list(&self) -> Result<Vec<DriverVolume>> {
        Ok(vec![])
    }
    async fn capabilities(&self) -> Result<Capabilities> {
        Ok(Capabilities::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_driver_call_holds_up_only_its_volume() {
    let env = Env::new();
    let gated = Arc::new(Gated {
        gate: tokio::sync::Notify::new(),
        entered: tokio::sync::Notify::new(),
    });
    let svc = VolumeService::builder(&env.state)
        .driver(gated.clone())
        .build()
        .await
        .unwrap();
    for name in ["slow", "fast"] {
        svc.create(CreateVolume::named(name).driver("gated"))
            .await
            .unwrap();
    }
    let slow = tokio::spawn({
        let svc = svc.clone();
        async move { svc.mount("slow", Caller::new("c1")).await }
    });
    gated.entered.notified().await;
    let others = async {
        svc.mount("fast", Caller::new("c2")).await.unwrap();
        svc.unmount("fast", "c2").await.unwrap();
        svc.create(CreateVolume::named("third").driver("gated"))
            .await
            .unwrap();
        svc.remove("third", false).await.unwrap();
        assert_eq!(svc.list(&ListFilter::default()).await.unwrap().len(), 2);
        assert!(svc.inspect("slow").await.unwrap().is_dangling());
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), others)
        .await
        .expect("other volumes were blocked by a slow mount");
    gated.gate.notify_one();
    assert_eq!(slow.await.unwrap().unwrap(), PathBuf::from("/mnt/slow"));
    assert!(!svc.inspect("slow").await.unwrap().is_dangling());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_create_and_remove_stay_consistent() {
    let env = Env::new();
    let svc = env.service().await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    svc.create(CreateVolume::named("flip").driver("counting"))
                        .await
                        .map(|_| ())
                } else {
                    match svc.remove("flip", false).await {
                        Err(Error::NotFound { .. }) => Ok(()),
                        other => other,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // The table, the published copy and the state on disk agree.
    let listed = svc.list(&ListFilter::default()).await.unwrap();
    let exists = svc.inspect("flip").await.is_ok();
    assert_eq!(listed.len(), usize::from(exists));
    let reopened = env.service().await;
    assert_eq!(reopened.inspect("flip").await.is_ok(), exists);
    let creates = env
        .counting
        .calls()
        .iter()
        .filter(|c| *c == "create flip")
        .count();
    let removes = env
        .counting
        .calls()
        .iter()
        .filter(|c| *c == "remove flip")
        .count();
    assert_eq!(creates - removes, usize::from(exists));
}
