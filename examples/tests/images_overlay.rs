//! Root tests: busybox imported from Debian's busybox-static, stacked
//! with a real overlayfs mount per container, whiteouts as overlayfs sees
//! them, and cleanup by the guard even when the test fails midway.

use std::fs;
use std::path::Path;

use examples::images::{import_busybox, sha256_of, ImageStore, OverlayMount, BUSYBOX_IMAGE};

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("skipping {test}: needs root (mount, mknod, trusted.* xattrs)");
    false
}

fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.display().to_string();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}

#[test]
fn busybox_overlay_rootfs_takes_writes_in_upper_only() {
    if !root_or_skip("busybox_overlay_rootfs_takes_writes_in_upper_only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let id = import_busybox(&store).unwrap();
    assert_eq!(store.image_id(BUSYBOX_IMAGE).unwrap(), id);
    let config = store.runtime_config("busybox").unwrap();
    assert_eq!(config.cmd, ["sh"]);
    assert!(config.env.iter().any(|e| e.starts_with("PATH=")));
    let inspect = store.inspect("busybox").unwrap();
    assert!(
        inspect.size > 500_000,
        "busybox is in the layer: {}",
        inspect.size
    );

    let container = dir.path().join("c1");
    let mount = store.mount("busybox", &container).unwrap();
    let rootfs = mount.rootfs();
    assert!(is_mounted(&rootfs));
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(fs::symlink_metadata(rootfs.join("bin/sh"))
        .unwrap()
        .file_type()
        .is_symlink());

    fs::write(rootfs.join("tmp/hello"), b"written in the container").unwrap();
    fs::remove_file(rootfs.join("etc/hosts")).unwrap();
    assert_eq!(
        fs::read(mount.upper().join("tmp/hello")).unwrap(),
        b"written in the container"
    );
    let layer = &store.layer_dirs("busybox").unwrap()[0];
    assert!(
        !layer.join("tmp/hello").exists(),
        "the shared layer is untouched"
    );
    assert!(
        layer.join("etc/hosts").exists(),
        "a delete is a whiteout in upper"
    );

    // A second container sees the pristine image.
    let other = store.mount("busybox", &dir.path().join("c2")).unwrap();
    assert!(!other.rootfs().join("tmp/hello").exists());
    assert!(other.rootfs().join("etc/hosts").exists());
    drop(other);

    mount.unmount().unwrap();
    assert!(!is_mounted(&rootfs));
    assert!(!container.exists());
}

#[test]
fn guard_unmounts_and_removes_on_panic() {
    if !root_or_skip("guard_unmounts_and_removes_on_panic") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    import_busybox(&store).unwrap();
    let container = dir.path().join("c");
    let merged = container.join("merged");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mount = store.mount("busybox", &container).unwrap();
        assert!(is_mounted(&mount.rootfs()));
        panic!("a failing test step");
    }));
    assert!(result.is_err());
    assert!(!is_mounted(&merged));
    assert!(!container.exists());
    // A mount kept past its guard is cleaned up by path.
    let kept = store.mount("busybox", &container).unwrap().keep();
    assert!(is_mounted(&merged));
    OverlayMount::cleanup(&kept).unwrap();
    assert!(!is_mounted(&merged) && !container.exists());
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if name.ends_with('/') { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn whiteouts_hide_lower_files_through_overlayfs() {
    if !root_or_skip("whiteouts_hide_lower_files_through_overlayfs") {
        return;
    }
    let base = tar_of(&[
        ("etc/", b""),
        ("etc/keep", b"k"),
        ("etc/gone", b"g"),
        ("cache/", b""),
        ("cache/old", b"o"),
    ]);
    let top = tar_of(&[
        ("etc/.wh.gone", b""),
        ("cache/.wh..wh..opq", b""),
        ("cache/new", b"n"),
    ]);
    let diff_ids = [sha256_of(&base).to_string(), sha256_of(&top).to_string()];
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_of(&config).digest());
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["wh:1"], "Layers": ["a/layer.tar", "b/layer.tar"]}
    ]))
    .unwrap();
    let archive = tar_of(&[
        ("manifest.json", &manifest),
        (&config_name, &config),
        ("a/layer.tar", &base),
        ("b/layer.tar", &top),
    ]);

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    store.load(&archive[..]).unwrap();
    let top_dir = &store.layer_dirs("wh:1").unwrap()[1];
    let meta = fs::symlink_metadata(top_dir.join("etc/gone")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        meta.file_type().is_char_device() && meta.rdev() == 0,
        "0/0 char device"
    );
    assert_eq!(
        xattr::get(top_dir.join("cache"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    let mount = store.mount("wh:1", &dir.path().join("c")).unwrap();
    let root = mount.rootfs();
    assert!(root.join("etc/keep").exists());
    assert!(
        !root.join("etc/gone").exists(),
        "whiteout hides the lower file"
    );
    assert!(
        !root.join("cache/old").exists(),
        "opaque dir hides the lower dir's content"
    );
    assert!(root.join("cache/new").exists());
}

#[test]
fn a_layer_repeated_in_the_stack_mounts_with_its_top_place_winning() {
    if !root_or_skip("a_layer_repeated_in_the_stack_mounts_with_its_top_place_winning") {
        return;
    }
    let a = tar_of(&[("f", b"from a")]);
    let b = tar_of(&[("f", b"from b"), ("only-b", b"b")]);
    let diff_ids = [sha256_of(&a), sha256_of(&b), sha256_of(&a)].map(|d| d.to_string());
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_of(&config).digest());
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["aba:1"], "Layers": ["a/layer.tar", "b/layer.tar", "a/layer.tar"]}
    ]))
    .unwrap();
    let archive = tar_of(&[
        ("manifest.json", &manifest),
        (&config_name, &config),
        ("a/layer.tar", &a),
        ("b/layer.tar", &b),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    store.load(&archive[..]).unwrap();
    let mount = store.mount("aba:1", &dir.path().join("c")).unwrap();
    assert_eq!(fs::read(mount.rootfs().join("f")).unwrap(), b"from a");
    assert!(mount.rootfs().join("only-b").exists());
}

#[test]
fn an_image_with_more_layers_than_paths_fit_in_a_page_mounts() {
    if !root_or_skip("an_image_with_more_layers_than_paths_fit_in_a_page_mounts") {
        return;
    }
    const LAYERS: usize = 60;
    let layers: Vec<Vec<u8>> = (0..LAYERS)
        .map(|i| {
            tar_of(&[
                (&format!("f{i}"), format!("{i}").as_bytes()),
                ("top", format!("{i}").as_bytes()),
            ])
        })
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_of(l).to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_of(&config).digest());
    let paths: Vec<String> = (0..LAYERS).map(|i| format!("l{i}/layer.tar")).collect();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["tall:1"], "Layers": paths}
    ]))
    .unwrap();
    let mut files: Vec<(&str, &[u8])> = vec![("manifest.json", &manifest), (&config_name, &config)];
    files.extend(
        paths
            .iter()
            .map(String::as_str)
            .zip(layers.iter().map(Vec::as_slice)),
    );
    let archive = tar_of(&files);

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    store.load(&archive[..]).unwrap();
    let lowers = store.layer_dirs("tall:1").unwrap();
    let joined: usize = lowers.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(
        joined > 4096,
        "the test needs paths longer than a page: {joined}"
    );
    let mount = store.mount("tall:1", &dir.path().join("c")).unwrap();
    for i in 0..LAYERS {
        assert!(mount.rootfs().join(format!("f{i}")).exists(), "layer {i}");
    }
    assert_eq!(
        fs::read(mount.rootfs().join("top")).unwrap(),
        format!("{}", LAYERS - 1).as_bytes()
    );
}
