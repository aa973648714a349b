//! Driver logic against a recording fake kernel (no root needed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::mount::MsFlags;

use super::*;

#[derive(Default)]
struct FakeKernel {
    calls: Mutex<Vec<String>>,
    mounted: Mutex<BTreeSet<PathBuf>>,
    fail_mount: bool,
}

impl FakeKernel {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl Mounter for FakeKernel {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        let name = target
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.log(format!(
            "mount {source} {name} {fstype:?} {:#x} {data:?}",
            flags.bits()
        ));
        if self.fail_mount {
            return Err(Error::sys(
                "mounting",
                target,
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        }
        self.mounted.lock().unwrap().insert(target.to_path_buf());
        Ok(())
    }
    fn unmount(&self, target: &Path) -> Result<()> {
        let name = target
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.log(format!("umount {name}"));
        self.mounted.lock().unwrap().remove(target);
        Ok(())
    }
    fn is_mounted(&self, target: &Path) -> Result<bool> {
        Ok(self.mounted.lock().unwrap().contains(target))
    }
    fn attach_loop(&self, image: &Path) -> Result<LoopDevice> {
        self.log(format!(
            "attach {}",
            image.file_name().unwrap().to_string_lossy()
        ));
        Ok(LoopDevice::new(PathBuf::from("/dev/loop7"), None))
    }
    fn detach_loop(&self, device: &Path) -> Result<()> {
        self.log(format!("detach {}", device.display()));
        Ok(())
    }
    fn mkfs_ext4(&self, image: &Path) -> Result<()> {
        let len = std::fs::metadata(image).unwrap().len();
        self.log(format!(
            "mkfs {} {len}",
            image.file_name().unwrap().to_string_lossy()
        ));
        Ok(())
    }
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn driver(root: &Path, kernel: &Arc<FakeKernel>) -> LocalDriver {
    LocalDriver::builder(root)
        .mounter(kernel.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn plain_volume_is_a_directory() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    d.create("plain", &Options::new()).await.unwrap();
    let path = d.mount("plain", "m1").await.unwrap();
    assert_eq!(path, root.path().join("plain/_data"));
    assert!(path.is_dir());
    assert_eq!(d.path("plain").await.unwrap(), Some(path.clone()));
    assert_eq!(d.list().await.unwrap().len(), 1);
    d.unmount("plain", "m1").await.unwrap();
    d.remove("plain").await.unwrap();
    assert!(!root.path().join("plain").exists());
    assert!(kernel.calls().is_empty());
    assert!(d.get("plain").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn tmpfs_mounts_once_and_unmounts_after_last_id() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    d.create(
        "tv",
        &opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m,mode=0700,nosuid"),
        ]),
    )
    .await
    .unwrap();
    d.mount("tv", "a").await.unwrap();
    d.mount("tv", "bv").await.unwrap();
    d.unmount("tv", "a").await.unwrap();
    assert_eq!(
        kernel.calls(),
        [format!(
            "mount tmpfs tv Some(\"tmpfs\") {:#x} Some(\"size=1m,mode=0700\")",
            MsFlags::MS_NOSUID.bits()
        )]
    );
    d.unmount("tv", "bv").await.unwrap();
    assert_eq!(kernel.calls().last().unwrap(), "umount tv");
}

#[tokio::test]
async fn read_only_bind_remounts() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    d.create(
        "bv",
        &opts(&[("type", "none"), ("device", "/srv/x"), ("o", "bind,ro")]),
    )
    .await
    .unwrap();
    d.mount("bv", "a").await.unwrap();
    let bind = MsFlags::MS_BIND;
    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    assert_eq!(
        kernel.calls(),
        [
            format!(
                "mount /srv/x bv None {:#x} None",
                (bind | MsFlags::MS_RDONLY).bits()
            ),
            format!("mount  bv None {:#x} None", remount.bits()),
        ]
    );
}

#[tokio::test]
async fn image_device_goes_through_loop_and_failure_detaches() {
    let root = tempfile::tempdir().unwrap();
    let image = root.path().join("fs.img");
    std::fs::write(&image, b"").unwrap();
    let kernel = Arc::new(FakeKernel {
        fail_mount: true,
        ..Default::default()
    });
    let d = driver(&root.path().join("vols"), &kernel);
    d.create(
        "img",
        &opts(&[("type", "ext4"), ("device", image.to_str().unwrap())]),
    )
    .await
    .unwrap();
    let err = d.mount("img", "a").await.unwrap_err().to_string();
    assert!(err.contains("failed to mount local volume"), "{err}");
    assert_eq!(
        kernel.calls(),
        [
            "attach fs.img".to_string(),
            "mount /dev/loop7 img Some(\"ext4\") 0x0 None".to_string(),
            "detach /dev/loop7".to_string()
        ]
    );
}

#[tokio::test]
async fn size_makes_an_ext4_image() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    d.create("sv", &opts(&[("size", "16m")])).await.unwrap();
    d.mount("sv", "a").await.unwrap();
    assert_eq!(
        kernel.calls(),
        [
            format!("mkfs disk.img {}", 16 << 20),
            "attach disk.img".to_string(),
            "mount /dev/loop7 sv Some(\"ext4\") 0x0 None".to_string()
        ]
    );
}

#[tokio::test]
async fn restart_keeps_options_and_cleans_mounts_on_remove() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    d.create("tv", &opts(&[("type", "tmpfs"), ("device", "tmpfs")]))
        .await
        .unwrap();
    d.mount("tv", "a").await.unwrap();
    drop(d);
    let d = driver(root.path(), &kernel);
    let got = d.get("tv").await.unwrap();
    assert_eq!(
        got.status.get("mounted"),
        Some(&serde_json::Value::Bool(true))
    );
    d.remove("tv").await.unwrap();
    assert_eq!(kernel.calls().last().unwrap(), "umount tv");
    assert!(!root.path().join("tv").exists());
}

#[tokio::test]
async fn bad_input_is_rejected_without_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    let e = d.create("x", &Options::new()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    let e = d
        .create("vol", &opts(&[("type", "tmpfs")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing required option: \"device\""), "{e}");
    assert!(std::fs::read_dir(root.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn nfs_addr_is_resolved_before_mount() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::default());
    let d = driver(root.path(), &kernel);
    d.create(
        "share",
        &opts(&[
            ("type", "nfs"),
            ("device", ":/export/data"),
            ("o", "addr=localhost,rw,nfsvers=4"),
        ]),
    )
    .await
    .unwrap();
    d.mount("share", "a").await.unwrap();
    let calls = kernel.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("mount :/export/data share Some(\"nfs\")")
            && calls[0].contains("addr=127.0.0.1,nfsvers=4"),
        "{calls:?}"
    );
    // The stored options keep the name: it is resolved again on each mount.
    let saved = std::fs::read_to_string(root.path().join("share/opts.json")).unwrap();
    assert!(saved.contains("addr=localhost"), "{saved}");
}
