//! Interoperability with independent tools: skopeo reads our `docker
//! save` output and writes a real OCI archive that we load back. Skips
//! with a reason when skopeo is not installed; never uses the network.

use std::process::Command;

use examples::images::{import_busybox, ImageStore};

fn skopeo() -> bool {
    let ok = Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("skipping: skopeo is not installed");
    }
    ok
}

#[test]
fn skopeo_converts_our_save_to_an_oci_archive_we_load() {
    if !skopeo() {
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
