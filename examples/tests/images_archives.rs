//! `docker load`/`import`/`save`/`rmi` of the image store, with archives
//! built here by the tar crate. No privileges needed: whiteouts are
//! recorded by a test writer instead of device nodes.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use examples::images::{
    sha256_of, Digest, ImageError, ImageStore, ImportOptions, NoContainers, Removed, WhiteoutWriter,
};

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl WhiteoutWriter for Recorder {
    fn whiteout(&self, path: &Path) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("whiteout {}", path.display()));
        fs::write(path, b"")
    }
    fn opaque(&self, dir: &Path) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("opaque {}", dir.display()));
        Ok(())
    }
}

fn store(dir: &Path) -> ImageStore {
    ImageStore::open(dir)
        .unwrap()
        .with_whiteout_writer(Arc::new(Recorder::default()))
}

/// A tar of regular files (and `./`-style dirs when a name ends in `/`).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        if name.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
        } else {
            h.set_mode(0o644);
        }
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        // Raw name: set_path refuses "..", and hostile archives need it.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/srv",
                   "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()}
    }))
    .unwrap()
}

fn base_layer() -> Vec<u8> {
    tar_of(&[
        ("etc/", b""),
        ("etc/hostname", b"box\n"),
        ("etc/passwd", b"root:x:0:0\n"),
        ("var/cache/", b""),
        ("var/cache/old", b"x"),
    ])
}

fn top_layer() -> Vec<u8> {
    tar_of(&[
        ("etc/.wh.passwd", b""),
        ("var/cache/.wh..wh..opq", b""),
        ("srv/", b""),
        ("srv/index.html", b"hi\n"),
    ])
}

/// A docker-save archive. `legacy`: `<id>/layer.tar` and `<id>.json`
/// (Docker < 25); otherwise `blobs/sha256/…` with gzip layers.
fn docker_save(layers: &[Vec<u8>], tags: &[&str], legacy: bool) -> Vec<u8> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| sha256_of(l)).collect();
    let config = config(&diff_ids);
    let config_digest = sha256_of(&config);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if legacy {
            let path = format!("layer{i}/layer.tar");
            files.push((path.clone(), layer.clone()));
            layer_paths.push(path);
        } else {
            let gz = gzip(layer);
            let path = format!("blobs/sha256/{}", sha256_of(&gz).digest());
            files.push((path.clone(), gz));
            layer_paths.push(path);
        }
    }
    let config_path = if legacy {
        format!("{}.json", config_digest.digest())
    } else {
        format!("blobs/sha256/{}", config_digest.digest())
    };
    files.push((config_path.clone(), config));
    let manifest =
        serde_json::json!([{"Config": config_path, "RepoTags": tags, "Layers": layer_paths}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    tar_of(&refs)
}

/// An OCI archive with gzip layers, the manifest named `name`.
fn oci_archive(layers: &[Vec<u8>], name: Option<&str>, layer_media_type: &str) -> Vec<u8> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| sha256_of(l)).collect();
    let config = config(&diff_ids);
    let mut blobs: Vec<Vec<u8>> = vec![config.clone()];
    let mut layer_descs = Vec::new();
    for layer in layers {
        let gz = gzip(layer);
        layer_descs.push(serde_json::json!({"mediaType": layer_media_type, "digest": sha256_of(&gz).to_string(), "size": gz.len()}));
        blobs.push(gz);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_of(&config).to_string(), "size": config.len()},
        "layers": layer_descs
    }))
    .unwrap();
    let mut desc = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256_of(&manifest).to_string(), "size": manifest.len()});
    if let Some(n) = name {
        desc["annotations"] = serde_json::json!({"io.containerd.image.name": n, "org.opencontainers.image.ref.name": "latest"});
    }
    blobs.push(manifest);
    let index =
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [desc]})).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = blobs
        .into_iter()
        .map(|b| (format!("blobs/sha256/{}", sha256_of(&b).digest()), b))
        .collect();
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files.push(("index.json".into(), index));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    tar_of(&refs)
}

/// The store holds no image, blob, layer or temp file.
fn assert_empty(store: &ImageStore) {
    let root = store.root();
    assert!(store.list().unwrap().is_empty());
    for dir in ["blobs/sha256", "layers", "tmp"] {
        let left: Vec<_> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{dir} not empty: {left:?}");
    }
}

#[test]
fn loads_legacy_docker_save_with_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let archive = docker_save(&[base_layer(), top_layer()], &["app:1", "app:latest"], true);
    let loaded = store.load(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    let names: Vec<String> = loaded[0].names.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["app:1", "app:latest"]);

    let inspect = store.inspect("app").unwrap();
    assert_eq!(inspect.id, loaded[0].id.to_string());
    assert_eq!(inspect.repo_tags, ["app:1", "app:latest"]);
    assert_eq!(inspect.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(inspect.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(inspect.config.working_dir, "/srv");
    assert!(inspect.config.exposed_ports.contains_key("80/tcp"));
    assert!(inspect.config.volumes.contains_key("/data"));
    assert_eq!(
        inspect.root_fs.layers,
        [
            sha256_of(&base_layer()).to_string(),
            sha256_of(&top_layer()).to_string()
        ]
    );
    // Size: the files' bytes (4 + 11 + 1 + 3).
    assert_eq!(inspect.size, 19);
    let json = serde_json::to_value(&inspect).unwrap();
    assert_eq!(json["RootFS"]["Type"], "layers");
    assert_eq!(
        json["Config"]["ExposedPorts"]["80/tcp"],
        serde_json::json!({})
    );

    let dirs = store.layer_dirs("app:1").unwrap();
    assert_eq!(fs::read(dirs[0].join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(fs::read(dirs[1].join("srv/index.html")).unwrap(), b"hi\n");
    assert!(dirs[1].join("etc/passwd").exists(), "whiteout written");
    assert!(!dirs[1].join("etc/.wh.passwd").exists());

    let rc = store.runtime_config(loaded[0].id.as_ref()).unwrap();
    assert_eq!(rc.cmd, ["sh"]);
    assert_eq!(rc.env, ["PATH=/bin"]);
    assert_eq!(rc.working_dir.as_deref(), Some("/srv"));
    // The on-disk layout is an OCI layout others can read.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert!(dir.path().join("oci-layout").exists());
}

#[test]
fn loads_docker_save_with_gzip_blobs_and_shares_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .load(&docker_save(&[base_layer()], &["one"], false)[..])
        .unwrap();
    store
        .load(&docker_save(&[base_layer(), top_layer()], &["two"], false)[..])
        .unwrap();
    let one = store.layer_dirs("one").unwrap();
    let two = store.layer_dirs("two").unwrap();
    assert_eq!(one[0], two[0], "the base layer is unpacked once");
    assert_eq!(fs::read_dir(dir.path().join("layers")).unwrap().count(), 2);
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn loads_oci_archive_keeping_the_manifest_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let archive = oci_archive(
        &[base_layer()],
        Some("docker.io/library/web:2"),
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let loaded = store.load(&gzip(&archive)[..]).unwrap();
    assert_eq!(loaded[0].names[0].to_string(), "web:2");
    let list = store.list().unwrap();
    assert_eq!(
        list[0].manifest_digest,
        loaded[0].manifest_digest.to_string()
    );
    assert!(dir
        .path()
        .join("blobs/sha256")
        .join(loaded[0].manifest_digest.digest())
        .exists());
    // Short IDs resolve, as in `docker inspect 1a2b3c`.
    let short = &loaded[0].id.digest()[..10];
    assert_eq!(store.image_id(short).unwrap(), loaded[0].id);
}

#[test]
fn oci_archive_without_a_name_is_dangling() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let loaded = store
        .load(
            &oci_archive(
                &[base_layer()],
                None,
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )[..],
        )
        .unwrap();
    assert!(loaded[0].names.is_empty());
    assert!(store.list().unwrap()[0].repo_tags.is_empty());
}

fn assert_refused(archive: &[u8], check: impl Fn(&ImageError) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let err = store.load(archive).unwrap_err();
    assert!(check(&err), "unexpected error: {err}");
    assert_empty(&store);
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    // No manifest at all.
    assert_refused(
        &tar_of(&[("hello.txt", b"hi")]),
        |e| matches!(e, ImageError::BadArchive(m) if m.contains("manifest.json")),
    );
    // Not a tar.
    assert_refused(b"this is not an archive at all, just text that is long enough ......................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................", |e| {
        !e.to_string().is_empty()
    });
    // A layer listed in manifest.json but missing.
    let mut a = tar_of(&[
        (
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x"],"Layers":["l/layer.tar"]}]"#,
        ),
        ("c.json", &config(&[sha256_of(b"")])),
    ]);
    assert_refused(
        &a,
        |e| matches!(e, ImageError::BadArchive(m) if m.contains("Layers[0]") && m.contains("missing")),
    );
    // The config's diff-id does not match the layer.
    let layer = base_layer();
    let bad_config = config(&[sha256_of(b"something else")]);
    a = tar_of(&[
        (
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x"],"Layers":["l/layer.tar"]}]"#,
        ),
        ("c.json", &bad_config),
        ("l/layer.tar", &layer),
    ]);
    assert_refused(
        &a,
        |e| matches!(e, ImageError::DigestMismatch { what, .. } if what.contains("Layers[0]")),
    );
    // A blob whose content does not match its name.
    let config_bytes = config(&[sha256_of(&layer)]);
    let wrong = format!("{}.json", sha256_of(b"not the config").digest());
    let manifest = format!(r#"[{{"Config":"{wrong}","RepoTags":["x"],"Layers":["l/layer.tar"]}}]"#);
    a = tar_of(&[
        ("manifest.json", manifest.as_bytes()),
        (&wrong, &config_bytes),
        ("l/layer.tar", &layer),
    ]);
    assert_refused(
        &a,
        |e| matches!(e, ImageError::DigestMismatch { what, .. } if what.contains("Config")),
    );
    // Path traversal inside a layer.
    let evil = tar_of(&[("../../etc/evil", b"x")]);
    assert_refused(
        &docker_save(&[evil], &["x"], true),
        |e| matches!(e, ImageError::UnsafePath { path, .. } if path.contains("..")),
    );
    // Path traversal in the archive itself.
    assert_refused(&tar_of(&[("../manifest.json", b"[]")]), |e| {
        matches!(e, ImageError::UnsafePath { .. })
    });
    // Unknown and zstd layer media types.
    let a = oci_archive(
        &[base_layer()],
        Some("x"),
        "application/vnd.example.unknown",
    );
    assert_refused(
        &a,
        |e| matches!(e, ImageError::UnsupportedMediaType { media_type, .. } if media_type.contains("unknown")),
    );
    let a = oci_archive(
        &[base_layer()],
        Some("x"),
        "application/vnd.oci.image.layer.v1.tar+zstd",
    );
    assert_refused(&a, |e| matches!(e, ImageError::UnsupportedMediaType { .. }));
    // A bad tag name.
    assert_refused(&docker_save(&[base_layer()], &["Not Valid"], true), |e| {
        matches!(e, ImageError::InvalidReference { .. })
    });
}

#[test]
fn a_failed_second_image_keeps_the_first_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .load(&docker_save(&[base_layer()], &["good"], false)[..])
        .unwrap();
    let before = store.list().unwrap();
    let evil = tar_of(&[("../x", b"x")]);
    assert!(store
        .load(&docker_save(&[base_layer(), evil], &["bad"], false)[..])
        .is_err());
    assert_eq!(store.list().unwrap(), before);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(store.layer_dirs("good").unwrap()[0]
        .join("etc/hostname")
        .exists());
}

#[test]
fn import_applies_changes_and_reads_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let rootfs = tar_of(&[("bin/", b""), ("bin/tool", b"#!/bin/sh\n")]);
    let opts = ImportOptions::new()
        .tag("tool:v1")
        .change(r#"ENTRYPOINT ["/bin/tool"]"#)
        .change("CMD --help")
        .change("ENV A=1")
        .change("WORKDIR /work")
        .change("USER 1000:1000")
        .change("EXPOSE 8080");
    let id = store.import(&gzip(&rootfs)[..], &opts).unwrap();
    let inspect = store.inspect("tool:v1").unwrap();
    assert_eq!(inspect.id, id.to_string());
    assert_eq!(
        inspect.config.entrypoint,
        Some(vec!["/bin/tool".to_string()])
    );
    assert_eq!(
        inspect.config.cmd,
        Some(vec!["/bin/sh".into(), "-c".into(), "--help".into()])
    );
    assert_eq!(inspect.config.env, ["A=1"]);
    assert_eq!(inspect.config.working_dir, "/work");
    assert_eq!(inspect.config.user, "1000:1000");
    assert!(inspect.config.exposed_ports.contains_key("8080/tcp"));
    // The layer is stored uncompressed: its digest is the diff-id.
    assert_eq!(inspect.root_fs.layers, [sha256_of(&rootfs).to_string()]);
    assert_eq!(
        fs::read(store.layer_dirs(id.as_ref()).unwrap()[0].join("bin/tool")).unwrap(),
        b"#!/bin/sh\n"
    );

    let err = store
        .import(&rootfs[..], &ImportOptions::new().change("RUN make"))
        .unwrap_err();
    assert!(matches!(err, ImageError::InvalidChange { .. }), "{err}");
    let err = store
        .import(
            &tar_of(&[("../x", b"")])[..],
            &ImportOptions::new().tag("evil"),
        )
        .unwrap_err();
    assert!(matches!(err, ImageError::UnsafePath { .. }), "{err}");
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn remove_untags_then_deletes_unshared_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let a = store
        .load(&docker_save(&[base_layer()], &["a:1", "a:2"], false)[..])
        .unwrap()[0]
        .clone();
    let b = store
        .load(&docker_save(&[base_layer(), top_layer()], &["b"], false)[..])
        .unwrap()[0]
        .clone();

    // By ID with two names: refused unless forced.
    let err = store
        .remove(a.id.as_ref(), false, &NoContainers)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("referenced in multiple repositories"),
        "{err}"
    );
    // By name with another name left: untag only.
    assert_eq!(
        store.remove("a:1", false, &NoContainers).unwrap(),
        [Removed::Untagged("a:1".parse().unwrap())]
    );
    // In use: refused with Docker's message, forced keeps it dangling.
    let using = |id: &str| {
        if id == a.id.as_ref() {
            vec!["c0ffee".to_string()]
        } else {
            vec![]
        }
    };
    let err = store.remove("a:2", false, &using).unwrap_err();
    assert!(
        matches!(&err, ImageError::Conflict(m) if m.contains("container c0ffee is using")),
        "{err}"
    );
    assert_eq!(
        store.remove("a:2", true, &using).unwrap(),
        [Removed::Untagged("a:2".parse().unwrap())]
    );
    assert_eq!(store.list().unwrap().len(), 2, "a is dangling, still there");
    // Now by ID, unused: deleted; its layer is shared with b and stays.
    assert_eq!(
        store
            .remove(&a.id.digest()[..12], false, &NoContainers)
            .unwrap(),
        [Removed::Deleted(a.id.clone())]
    );
    let b_dirs = store.layer_dirs("b").unwrap();
    assert!(b_dirs.iter().all(|d| d.is_dir()));
    assert!(!dir
        .path()
        .join("blobs/sha256")
        .join(a.manifest_digest.digest())
        .exists());
    // Removing b removes everything.
    let steps = store.remove("b", false, &NoContainers).unwrap();
    assert_eq!(
        steps,
        [
            Removed::Untagged("b:latest".parse().unwrap()),
            Removed::Deleted(b.id)
        ]
    );
    assert_empty(&store);
    assert!(matches!(
        store.remove("b", false, &NoContainers),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn tag_points_a_new_name_and_moves_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let a = store
        .load(&docker_save(&[base_layer()], &["a"], false)[..])
        .unwrap()[0]
        .clone();
    store.tag("a", "copy:v2").unwrap();
    assert_eq!(store.image_id("copy:v2").unwrap(), a.id);
    assert_eq!(
        store.inspect(a.id.as_ref()).unwrap().repo_tags,
        ["a:latest", "copy:v2"]
    );
    assert!(matches!(
        store.tag("nope", "x"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        store.tag("a", "BAD"),
        Err(ImageError::InvalidReference { .. })
    ));
    // Loading another image as "a" leaves the old one dangling? No: it keeps copy:v2.
    let b = store
        .load(&docker_save(&[top_layer()], &["a"], false)[..])
        .unwrap()[0]
        .clone();
    assert_eq!(store.image_id("a").unwrap(), b.id);
    assert_eq!(store.inspect("copy:v2").unwrap().repo_tags, ["copy:v2"]);
}

#[test]
fn save_then_load_round_trips_through_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let a = store
        .load(&docker_save(&[base_layer(), top_layer()], &["rt:1"], true)[..])
        .unwrap()[0]
        .clone();
    let mut archive = Vec::new();
    store.save(&["rt:1"], &mut archive).unwrap();

    // As docker save (manifest.json wins).
    let other = tempfile::tempdir().unwrap();
    let again = self::store(other.path()).load(&archive[..]).unwrap();
    assert_eq!(again[0].id, a.id);
    assert_eq!(again[0].names[0].to_string(), "rt:1");

    // As an OCI archive: drop manifest.json from the tar.
    let mut oci = tar::Builder::new(Vec::new());
    let mut input = tar::Archive::new(&archive[..]);
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() != Some("manifest.json") {
            let header = entry.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            oci.append(&header, &data[..]).unwrap();
        }
    }
    let oci = oci.into_inner().unwrap();
    let third = tempfile::tempdir().unwrap();
    let again = self::store(third.path()).load(&oci[..]).unwrap();
    assert_eq!(again[0].id, a.id);
    assert_eq!(again[0].manifest_digest, a.manifest_digest);
    assert_eq!(again[0].names[0].to_string(), "rt:1");
}

#[test]
fn a_missing_layer_dir_is_unpacked_again_from_its_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .load(&docker_save(&[base_layer(), top_layer()], &["x"], false)[..])
        .unwrap();
    let dirs = store.layer_dirs("x").unwrap();
    fs::remove_dir_all(dirs[0].parent().unwrap()).unwrap();
    let again = store.layer_dirs("x").unwrap();
    assert_eq!(again, dirs);
    assert_eq!(fs::read(again[0].join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(store.inspect("x").unwrap().size, 19);
    // A corrupted layer blob is not unpacked silently (the gzip'd layers
    // are the blobs starting with the gzip magic).
    fs::remove_dir_all(dirs[0].parent().unwrap()).unwrap();
    for entry in fs::read_dir(store.root().join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            fs::write(&path, gzip(b"garbage that is not the layer")).unwrap();
        }
    }
    assert!(store.layer_dirs("x").is_err());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(!dirs[0].exists());
}

#[test]
fn busybox_save_archive_round_trips() {
    let mut archive = Vec::new();
    let id = examples::images::write_busybox_image_archive(&mut archive).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let loaded = store.load(&archive[..]).unwrap();
    assert_eq!(loaded[0].id, id);
    assert_eq!(loaded[0].names[0].to_string(), "busybox:latest");
    let config = store.runtime_config("busybox").unwrap();
    assert_eq!(config.cmd, ["sh"]);
    let layers = store.layer_dirs("busybox").unwrap();
    assert!(layers[0].join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(layers[0].join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
}
