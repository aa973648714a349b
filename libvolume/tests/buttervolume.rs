//! Our plugin client against a real third-party plugin: buttervolume
//! (PyPI), which keeps volumes as btrfs subvolumes and answers errors as
//! HTTP 200 with a non-empty `Err`. It runs on a loop-mounted btrfs image in
//! a private mount namespace, with every path it uses inside a temporary
//! directory; guards kill it and unmount/detach everything.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use libvolume::plugin::*;
use libvolume::*;

/// Kills the plugin (TERM, then KILL) and reaps it.
struct PluginProcess(Child);

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..40 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    // pip may install scripts where PATH does not look (no shim yet).
    let python_scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", python_scripts.as_str()])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// Why btrfs or buttervolume cannot be had here, if so.
fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if which("mkfs.btrfs").is_none() || which("btrfs").is_none() {
        return Some("btrfs-progs not installed".into());
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.trim_end().ends_with("btrfs")) {
        return Some("kernel has no btrfs".into());
    }
    if which("buttervolume").is_none() {
        return Some("buttervolume not installed (pip install buttervolume)".into());
    }
    None
}

/// A btrfs filesystem on a loop-mounted image under `scratch`.
fn btrfs_mount(scratch: &Path) -> PathBuf {
    let image = scratch.join("btrfs.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let out = Command::new("mkfs.btrfs")
        .arg("-q")
        .arg("-f")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.btrfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = libvolume::local::attach_loop(&image, true).unwrap();
    let mnt = scratch.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some(dev.path()),
        &mnt,
        Some("btrfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    // The device now lives as long as the mount (auto-clear).
    drop(dev);
    mnt
}

fn start_buttervolume(scratch: &Path, mnt: &Path) -> (PluginProcess, PathBuf) {
    let run = scratch.join("run");
    let plugins = run.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let socket = plugins.join("btrfs.sock");
    let log = std::fs::File::create(scratch.join("buttervolume.log")).unwrap();
    let child = Command::new(which("buttervolume").unwrap())
        .arg("run")
        .env("BUTTERVOLUME_VOLUMES_PATH", mnt.join("volumes/"))
        .env("BUTTERVOLUME_SNAPSHOTS_PATH", mnt.join("snapshots/"))
        .env("BUTTERVOLUME_TEST_REMOTE_PATH", mnt.join("received/"))
        .env("BUTTERVOLUME_SCHEDULE", scratch.join("schedule.csv"))
        .env("BUTTERVOLUME_RUNPATH", &run)
        .env("BUTTERVOLUME_SOCKET", &socket)
        .env("BUTTERVOLUME_TIMER", "3600")
        // It asks `docker plugin inspect` for its socket at import: keep
        // that from reaching any real daemon.
        .env(
            "DOCKER_HOST",
            format!("unix://{}", scratch.join("no-docker.sock").display()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    (PluginProcess(child), socket)
}

#[tokio::test(flavor = "current_thread")]
async fn buttervolume_answers_all_nine_calls() {
    if let Some(reason) = unavailable() {
        println!("skipping buttervolume_answers_all_nine_calls: {reason}");
        return;
    }
    private_mount_namespace();
    let scratch = Scratch::new();
    let mnt = btrfs_mount(scratch.path());
    let (_plugin, socket) = start_buttervolume(scratch.path(), &mnt);
    let log = scratch.path().join("buttervolume.log");

    let client = PluginClient::new(Plugin {
        name: "btrfs".into(),
        addr: PluginAddr::Unix(socket.clone()),
    });
    let retry = RetryPolicy {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let driver = match PluginDriver::activate_with(client, retry).await {
        Ok(d) => d,
        Err(e) => panic!(
            "activation: {e}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    assert_eq!(driver.capabilities().await.unwrap().scope, Scope::Local);

    driver.create("bv-data", &Options::new()).await.unwrap();
    let listed: Vec<_> = driver
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(listed, ["bv-data"]);
    let subvol = mnt.join("volumes/bv-data");
    assert_eq!(
        driver.get("bv-data").await.unwrap().mountpoint,
        Some(subvol.clone())
    );
    assert_eq!(driver.path("bv-data").await.unwrap(), Some(subvol.clone()));
    let mp = driver.mount("bv-data", "m1").await.unwrap();
    assert_eq!(mp, subvol);
    std::fs::write(mp.join("hello"), "btrfs").unwrap();
    driver.unmount("bv-data", "m1").await.unwrap();

    // Errors come back as HTTP 200 with Err set.
    assert!(driver.get("missing").await.unwrap_err().is_not_found());
    let bad = Options::from([("copyonwrite".to_string(), "maybe".to_string())]);
    let err = driver.create("bv-bad", &bad).await.unwrap_err();
    assert!(
        matches!(&err, Error::Driver { message, .. } if message.contains("copyonwrite")),
        "{err:?}"
    );

    driver.remove("bv-data").await.unwrap();
    assert!(!subvol.exists());
    assert!(driver.list().await.unwrap().is_empty());

    // The service finds it by name through socket discovery.
    let svc = VolumeService::builder(scratch.path().join("state"))
        .plugin_discovery(PluginDiscovery::new(
            vec![socket.parent().unwrap().to_path_buf()],
            vec![],
        ))
        .build()
        .await
        .unwrap();
    let vol = svc
        .create(
            CreateVolume::named("svc-vol")
                .driver("btrfs")
                .label("via", "service"),
        )
        .await
        .unwrap();
    let path = svc.mount(&vol.name, Caller::new("c1")).await.unwrap();
    assert_eq!(path, mnt.join("volumes/svc-vol"));
    let e = svc.remove("svc-vol", false).await.unwrap_err();
    assert!(matches!(e, Error::InUse { .. }), "{e}");
    svc.unmount("svc-vol", "c1").await.unwrap();
    svc.remove("svc-vol", false).await.unwrap();
    assert!(!mnt.join("volumes/svc-vol").exists());
}
