//! Interoperability with independent tools: skopeo reads our `docker
//! save` output and writes a real OCI archive that we load back. Skips
//! with a reason when skopeo is not installed; never uses the network.

use std::process::Command;

use examples::images::{import_busybox, ImageStore};

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping: {name} is not installed");
    }
    ok
}

#[test]
fn skopeo_converts_our_save_to_an_oci_archive_we_load() {
    if !tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("a")).unwrap();
    let id = import_busybox(&store).unwrap();
    let saved = dir.path().join("saved.tar");
    store
        .save(&["busybox"], std::fs::File::create(&saved).unwrap())
        .unwrap();

    let oci = dir.path().join("oci.tar");
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(format!("docker-archive:{}", saved.display()))
        .arg(format!("oci-archive:{}:busybox:skopeo", oci.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let other = ImageStore::open(dir.path().join("b")).unwrap();
    let loaded = other.load(std::fs::File::open(&oci).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names[0].to_string(), "busybox:skopeo");
    // skopeo keeps the config as it is: same image ID, same layer.
    assert_eq!(loaded[0].id, id);
    assert_eq!(
        other.inspect("busybox:skopeo").unwrap().root_fs,
        store.inspect("busybox").unwrap().root_fs
    );
    assert!(other.layer_dirs("busybox:skopeo").unwrap()[0]
        .join("bin/busybox")
        .is_file());
}

#[test]
fn umoci_unpacks_an_image_straight_from_our_store() {
    if !tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    import_busybox(&store).unwrap();

    let list = Command::new("umoci")
        .arg("ls")
        .arg("--layout")
        .arg(store.root())
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "umoci ls: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "latest");

    let bundle = dir.path().join("bundle");
    let mut unpack = Command::new("umoci");
    unpack.arg("unpack");
    if !nix::unistd::geteuid().is_root() {
        unpack.arg("--rootless");
    }
    let out = unpack
        .arg("--image")
        .arg(format!("{}:latest", store.root().display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    // umoci turned our image config into a runtime spec: Cmd and Env.
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["sh"]));
    assert!(spec["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("PATH=")));
}
