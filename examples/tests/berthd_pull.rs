//! Registry pulls: the real docker CLI against berthd, pulling from a
//! local registry (Debian's `docker-registry`, the CNCF distribution
//! registry) that the test starts on a free loopback port with a temp
//! config and storage, and fills with busybox through `skopeo copy`. A
//! small fake registry in the test serves a corrupt and a truncated blob.
//!
//! Skips with a printed reason when not root, without the docker CLI, or
//! without docker-registry or skopeo (CI installs both: .ci/apt-packages).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use examples::images::{sha256_of, ImageStore, PullProgress, RegistryConfig};

const REGISTRY: &str = "/usr/bin/docker-registry";
const SKOPEO: &str = "/usr/bin/skopeo";
const HTPASSWD: &str = "/usr/bin/htpasswd";

/// A docker-registry on 127.0.0.1:<free port> (plain HTTP, or HTTPS with
/// a certificate for `TLS_NAME` from a CA of its own); Drop kills it and
/// removes its config, certificates and storage.
struct LocalRegistry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// `user:password` the registry asks for (htpasswd), if any.
    creds: Option<String>,
}

impl LocalRegistry {
    fn start() -> Option<Self> {
        Self::start_with(false)
    }

    fn start_with(tls: bool) -> Option<Self> {
        Self::start_opts(tls, None)
    }

    /// A registry that wants `user`/`password` (htpasswd, bcrypt).
    fn start_with_auth(user: &str, password: &str) -> Option<Self> {
        if !Path::new(HTPASSWD).is_file() {
            eprintln!("SKIP: {HTPASSWD} is not installed (apt-get install apache2-utils)");
            return None;
        }
        Self::start_opts(false, Some((user, password)))
    }

    fn start_opts(tls: bool, auth: Option<(&str, &str)>) -> Option<Self> {
        let tools: &[&str] = if tls {
            &[REGISTRY, SKOPEO, OPENSSL]
        } else {
            &[REGISTRY, SKOPEO]
        };
        for tool in tools {
            if !Path::new(tool).is_file() {
                eprintln!("SKIP: {tool} is not installed (apt-get install docker-registry skopeo openssl)");
                return None;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("registry")
            .tempdir()
            .unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: berth-test\n",
            dir.path().join("data").display()
        );
        if tls {
            make_certificates(dir.path());
            yaml += &format!(
                "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\n",
                dir.path().display()
            );
        }
        if let Some((user, password)) = auth {
            let out = Command::new(HTPASSWD)
                .args(["-Bbn", user, password])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            yaml += &format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            );
        }
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let creds = auth.map(|(u, p)| format!("{u}:{p}"));
        let registry = Self {
            child,
            dir,
            port,
            creds,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_get(port, "/v2/").is_none() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Push the busybox image (a `docker save` archive) as `name:tag`;
    /// returns the manifest digest the registry knows it by.
    fn push_busybox(&self, name_tag: &str) -> String {
        let archive = self.dir.path().join("busybox.tar");
        if !archive.exists() {
            examples::images::write_busybox_image_archive(std::fs::File::create(&archive).unwrap())
                .unwrap();
        }
        let dest = format!("docker://{}/{name_tag}", self.host());
        let src = format!("docker-archive:{}", archive.display());
        let creds: Vec<String> = self.creds.iter().map(|c| format!("--creds={c}")).collect();
        let dest_creds: Vec<String> = self
            .creds
            .iter()
            .map(|c| format!("--dest-creds={c}"))
            .collect();
        let out = Command::new(SKOPEO)
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .args(&dest_creds)
            .args([&src, &dest])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(SKOPEO)
            .args([
                "--insecure-policy",
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
            ])
            .args(&creds)
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name the HTTPS registry's certificate is for.
const TLS_NAME: &str = "registry.berth.test";
const OPENSSL: &str = "/usr/bin/openssl";

/// A CA (`ca.crt`) and a server certificate for `TLS_NAME` it signed
/// (`server.crt`, `server.key`) in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new(OPENSSL)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=berth test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                &format!("/CN={TLS_NAME}"),
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext"),
        format!("subjectAltName=DNS:{TLS_NAME}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.0 GET on loopback: the status line, if any answer came.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_string)
}

/// Files under `dir`, recursively (to show that a failed pull left none).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_under(&p));
        }
        out.push(p);
    }
    out.sort();
    out
}

#[test]
fn pull_run_digest_and_errors_through_the_docker_cli() {
    let Some(d) = start() else { return };
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let host = registry.host();
    let digest = registry.push_busybox("busybox:latest");
    let image = format!("{host}/busybox");

    let since = unix_now().to_string();
    let out = d.docker(&["pull", &image]);
    assert_eq!(out.code, 0, "docker pull: {}", out.stderr);
    let until = (unix_now() + 1).to_string();
    let events = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=pull",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(events.trim(), format!("image pull {image}:latest {image}"));
    // The CLI shows the engine's progress as it comes, as from dockerd.
    for line in [
        "latest: Pulling from busybox",
        "Pull complete",
        "Digest: sha256:",
        &format!("Status: Downloaded newer image for {image}:latest"),
    ] {
        assert!(out.stdout.contains(line), "no {line:?} in {}", out.stdout);
    }
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains(&format!("{image}:latest")), "{images}");
    let out = d.docker(&["run", "--rm", &image, "echo", "ok"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "ok\n"),
        "{}",
        out.stderr
    );

    // docker run of an image that is not here pulls it first.
    d.ok(&["rmi", &image]);
    let out = d.docker(&["run", "--rm", &image, "echo", "pulled"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "pulled\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("Unable to find image '{image}:latest' locally")),
        "{}",
        out.stderr
    );

    // By digest: the image is there untagged and runs by that reference.
    d.ok(&["rmi", &image]);
    let pinned = format!("{image}@{digest}");
    let out = d.docker(&["pull", &pinned]);
    assert_eq!(out.code, 0, "docker pull by digest: {}", out.stderr);
    let repo_digests = d.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &pinned]);
    assert_eq!(repo_digests.trim(), format!("[\"{pinned}\"]"));
    let listed = d.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert!(
        listed.contains(&format!("{image} <none> {digest}")),
        "{listed}"
    );
    let out = d.docker(&["run", "--rm", &pinned, "echo", "pinned"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "pinned\n"),
        "{}",
        out.stderr
    );

    // Docker's errors: an unknown tag, an unreachable registry.
    let out = d.docker(&["pull", &format!("{image}:nope")]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains(&format!("manifest for {image}:nope not found"))
            && out.stderr.contains("manifest unknown"),
        "{}",
        out.stderr
    );
    let dead = format!("127.0.0.1:{}", free_port());
    let out = d.docker(&["pull", &format!("{dead}/busybox")]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&format!("dial tcp {dead}"))
            && out.stderr.contains("connection refused"),
        "{}",
        out.stderr
    );
    assert_eq!(containers_left(&d), 0);
}

/// `docker login` and pulls from a registry that wants a password: no
/// credentials and a wrong password fail with Docker's words, a login
/// then a pull work (the CLI sends the stored credentials).
#[test]
fn login_then_pull_from_a_registry_with_htpasswd() {
    let Some(d) = start() else { return };
    let Some(registry) = LocalRegistry::start_with_auth("berth", "s3cret-pw") else {
        return;
    };
    let host = registry.host();
    registry.push_busybox("busybox:latest");
    let image = format!("{host}/busybox");

    let out = d.docker(&["pull", &image]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no basic auth credentials"),
        "{}",
        out.stderr
    );

    let login = |password: &str| {
        d.docker_with_stdin(
            &["login", &host, "-u", "berth", "--password-stdin"],
            Some(format!("{password}\n").as_bytes()),
        )
    };
    let out = login("wrong");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&format!(
            "login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"
        )),
        "{}",
        out.stderr
    );
    let out = login("s3cret-pw");
    assert_eq!(out.code, 0, "docker login: {}", out.stderr);
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.stdout);

    let out = d.docker(&["pull", &image]);
    assert_eq!(out.code, 0, "docker pull after login: {}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "Status: Downloaded newer image for {image}:latest"
        )),
        "{}",
        out.stdout
    );
    let out = d.docker(&["run", "--rm", &image, "echo", "ok"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "ok\n"),
        "{}",
        out.stderr
    );

    // After a logout the CLI sends nothing again.
    d.ok(&["logout", &host]);
    d.ok(&["rmi", &image]);
    let out = d.docker(&["pull", &image]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no basic auth credentials"),
        "{}",
        out.stderr
    );
    assert_eq!(containers_left(&d), 0);
}

/// What the store reports while pulling, and that layers it has are not
/// fetched again.
#[test]
fn store_pull_reports_progress_and_skips_present_layers() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: unpacking layers needs root (file owners)");
        return;
    }
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let digest = registry.push_busybox("busybox:latest");
    registry.push_busybox("other:1");
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pull = |reference: String| {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let pulled = rt
            .block_on(store.pull(&reference, &RegistryConfig::new(), move |p| {
                sink.lock().unwrap().push(p)
            }))
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        (pulled, seen)
    };
    let statuses = |seen: &[PullProgress]| -> Vec<&'static str> {
        seen.iter()
            .filter_map(|p| match p {
                PullProgress::Layer { status, .. } => Some(*status),
                PullProgress::Resolved { .. } | PullProgress::Downloading { .. } => None,
            })
            .collect()
    };

    let (first, seen) = pull(format!("{}/busybox", registry.host()));
    assert!(first.updated);
    assert_eq!(first.digest.to_string(), digest);
    assert_eq!(
        seen[0],
        PullProgress::Resolved {
            reference: "latest".into(),
            repository: "busybox".into()
        }
    );
    assert_eq!(
        statuses(&seen),
        [
            "Pulling fs layer",
            "Download complete",
            "Extracting",
            "Pull complete"
        ]
    );
    // Byte counts end at the layer's size.
    let last_count = seen.iter().rev().find_map(|p| match p {
        PullProgress::Downloading { current, total, .. } => Some((*current, *total)),
        _ => None,
    });
    let (current, total) = last_count.expect("no Downloading progress");
    assert!(current <= total && total > 0, "{current}/{total}");
    let name = format!("{}/busybox:latest", registry.host());
    assert_eq!(store.image_id(&name).unwrap(), first.id);
    // skopeo compressed the layer on push: this was a gzip layer.
    let manifest = dir
        .path()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let manifest = std::fs::read_to_string(manifest).unwrap();
    assert!(
        manifest.contains("tar.gzip") || manifest.contains("tar+gzip"),
        "{manifest}"
    );

    let (again, _) = pull(format!("{}/busybox", registry.host()));
    assert!(!again.updated, "a second pull is up to date");

    let (other, seen) = pull(format!("{}/other:1", registry.host()));
    assert!(other.updated);
    assert_eq!(statuses(&seen), ["Already exists"]);
    assert_eq!(other.id, first.id);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

/// A tar of regular files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    out.write_all(data).unwrap();
    out.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// One answer of the fake registry.
#[derive(Clone)]
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// The Content-Length announced (more than the body: a cut answer).
    length: usize,
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
    let length = body.len();
    Reply {
        status: "200 OK",
        content_type,
        body,
        length,
    }
}

/// A fake registry serving one busybox image (an uncompressed layer) in
/// several repositories: `bad` (the layer corrupt), `cut` (the layer cut
/// short), `auth` (behind Docker's Bearer token flow: a 401 challenge
/// naming `/token`, which hands out the token; its layer sent slowly in
/// 8 pieces), `multi` (an OCI index
/// listing arm64 and amd64), `zstd` (a zstd layer type), `gone` (an
/// unknown repository: NAME_UNKNOWN), `two` (a second, gzip layer on
/// top, with a whiteout) and `private` (its token realm wants the
/// Basic credentials berth:s3cret; `/v2/` answers a login the same way). Returns its
/// port and the index's digest; the thread ends with the test process.
fn fake_registry() -> (u16, String) {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const BLOB: &str = "application/octet-stream";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A busybox rootfs made unique: one imported by the engine in the
    // same second would be byte-identical, already stored, and then a
    // corrupt copy of it would never be fetched.
    let layer = {
        let dir = tempfile::tempdir().unwrap();
        libcontainer::fixtures::write_rootfs(dir.path()).unwrap();
        let nonce = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
        std::fs::write(dir.path().join("registry-nonce"), nonce).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.append_dir_all(".", dir.path()).unwrap();
        tar.into_inner().unwrap()
    };
    let diff_id = sha256_of(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    )
    .into_bytes();
    let manifest_with = |layer_type: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"{layer_type}","digest":"{diff_id}","size":{}}}]}}"#,
            sha256_of(&config),
            config.len(),
            layer.len()
        )
        .into_bytes()
    };
    let manifest = manifest_with("application/vnd.oci.image.layer.v1.tar");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9,"platform":{{"architecture":"arm64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        sha256_of(b"arm64"),
        sha256_of(&manifest),
        manifest.len()
    )
    .into_bytes();

    let mut routes: std::collections::HashMap<(&str, String), Reply> = Default::default();
    for repo in ["bad", "cut", "auth", "multi", "zstd"] {
        routes.insert(
            (repo, format!("/blobs/{}", sha256_of(&config))),
            ok(BLOB, config.clone()),
        );
        routes.insert(
            (repo, "/manifests/latest".into()),
            ok(OCI_MANIFEST, manifest.clone()),
        );
    }
    let layer_path = format!("/blobs/{diff_id}");
    let mut corrupt = layer.clone();
    corrupt[600] ^= 0xff;
    routes.insert(("bad", layer_path.clone()), ok(BLOB, corrupt));
    let mut cut = ok(BLOB, layer[..layer.len() / 2].to_vec());
    cut.length = layer.len();
    routes.insert(("cut", layer_path.clone()), cut);
    for repo in ["auth", "multi", "private"] {
        routes.insert((repo, layer_path.clone()), ok(BLOB, layer.clone()));
    }
    routes.insert(
        ("private", format!("/blobs/{}", sha256_of(&config))),
        ok(BLOB, config.clone()),
    );
    routes.insert(
        ("private", "/manifests/latest".into()),
        ok(OCI_MANIFEST, manifest.clone()),
    );
    routes.insert(
        ("multi", "/manifests/latest".into()),
        ok("application/vnd.oci.image.index.v1+json", index.clone()),
    );
    routes.insert(
        ("multi", format!("/manifests/{}", sha256_of(&manifest))),
        ok(OCI_MANIFEST, manifest.clone()),
    );
    routes.insert(
        ("zstd", "/manifests/latest".into()),
        ok(
            OCI_MANIFEST,
            manifest_with("application/vnd.oci.image.layer.v1.tar+zstd"),
        ),
    );
    // `two`: busybox, then a gzip layer adding /hello.txt and deleting
    // /bin/ls with a whiteout.
    let top = gzip(&tar_of(&[("hello.txt", b"two\n"), ("bin/.wh.ls", b"")]));
    let top_diff = sha256_of(&gunzip(&top));
    let two_config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}","{top_diff}"]}}}}"#
    )
    .into_bytes();
    let two = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{diff_id}","size":{}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        sha256_of(&two_config),
        two_config.len(),
        layer.len(),
        sha256_of(&top),
        top.len()
    )
    .into_bytes();
    routes.insert(("two", "/manifests/latest".into()), ok(OCI_MANIFEST, two));
    routes.insert(
        ("two", format!("/blobs/{}", sha256_of(&two_config))),
        ok(BLOB, two_config),
    );
    routes.insert(("two", layer_path.clone()), ok(BLOB, layer.clone()));
    routes.insert(
        ("two", format!("/blobs/{}", sha256_of(&top))),
        ok(BLOB, top),
    );

    let token = ok("application/json", br#"{"token":"t0k3n"}"#.to_vec());
    let index_digest = sha256_of(&index).to_string();
    let challenge = format!(
        "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:auth:pull\"\r\n"
    );
    let private_token = ok("application/json", br#"{"token":"pr1v4te"}"#.to_vec());
    let private_challenge = |scope: &str| {
        format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\"{scope}\r\n")
    };
    let (login_challenge, pull_challenge) = (
        private_challenge(""),
        private_challenge(",scope=\"repository:private:pull\""),
    );

    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut byte = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                req.push(byte[0]);
            }
            let req = String::from_utf8_lossy(&req);
            let path = req.split(' ').nth(1).unwrap_or("");
            let has = |header: &str| req.lines().any(|l| l.eq_ignore_ascii_case(header));
            let authorized = has("authorization: bearer t0k3n");
            let private_ok = has("authorization: bearer pr1v4te");
            // berth:s3cret
            let good_login = has("authorization: basic YmVydGg6czNjcmV0");
            let private_token_asked = path.starts_with("/token?")
                && (path.contains("scope=repository%3Aprivate%3Apull") || !path.contains("scope="));
            let (repo, rest) = path
                .strip_prefix("/v2/")
                .and_then(|p| p.split_once('/'))
                .unwrap_or(("", path));
            let unauthorized = Reply {
                status: "401 Unauthorized",
                ..ok(
                    "application/json",
                    br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
                )
            };
            let not_found = Reply {
                status: "404 Not Found",
                ..ok("application/json", br#"{"errors":[]}"#.to_vec())
            };
            let name_unknown = Reply {
                status: "404 Not Found",
                ..ok(
                    "application/json",
                    br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#.to_vec(),
                )
            };
            let reply =
                if path.starts_with("/token?") && path.contains("scope=repository%3Aauth%3Apull") {
                    token.clone()
                } else if private_token_asked && good_login {
                    private_token.clone()
                } else if private_token_asked {
                    unauthorized.clone()
                } else if path == "/v2/" && private_ok {
                    ok("application/json", b"{}".to_vec())
                } else if (path == "/v2/" || repo == "private") && !private_ok {
                    unauthorized.clone()
                } else if repo == "auth" && !authorized {
                    unauthorized
                } else {
                    routes
                        .get(&(repo, format!("/{rest}")))
                        .cloned()
                        .unwrap_or(if repo == "gone" {
                            name_unknown
                        } else {
                            not_found
                        })
                };
            let extra = match (reply.status.starts_with("401"), repo) {
                (false, _) => "",
                _ if path.starts_with("/token?") => "",
                _ if path == "/v2/" => login_challenge.as_str(),
                (true, "private") => pull_challenge.as_str(),
                (true, _) => challenge.as_str(),
            };
            let head = format!(
                "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                reply.status, reply.content_type, reply.length
            );
            let _ = s.write_all(head.as_bytes());
            if repo == "auth" && rest.starts_with("blobs/") && reply.body.len() > 64 * 1024 {
                // The layer slowly, for the engine's byte counts.
                for piece in reply.body.chunks(reply.body.len().div_ceil(8)) {
                    let _ = s.write_all(piece);
                    let _ = s.flush();
                    std::thread::sleep(Duration::from_millis(40));
                }
            } else {
                let _ = s.write_all(&reply.body);
            }
        }
    });
    (port, index_digest)
}

/// `docker login` to a registry whose challenge names a token realm: the
/// credentials go there (Basic), for a login (no scope) and for pulls.
#[test]
fn login_and_pull_through_a_token_realm() {
    let Some(d) = start() else { return };
    let host = format!("127.0.0.1:{}", fake_registry().0);
    let image = format!("{host}/private");
    let out = d.docker(&["pull", &image]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("pull access denied for") && out.stderr.contains("docker login"),
        "{}",
        out.stderr
    );
    let login = |password: &str| {
        d.docker_with_stdin(
            &["login", &host, "-u", "berth", "--password-stdin"],
            Some(format!("{password}\n").as_bytes()),
        )
    };
    let out = login("nope");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("failed with status: 401 Unauthorized"),
        "{}",
        out.stderr
    );
    let out = login("s3cret");
    assert_eq!(out.code, 0, "docker login: {}", out.stderr);
    let out = d.docker(&["run", "--rm", &image, "/bin/echo", "private"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "private\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn bearer_token_flow() {
    let Some(d) = start() else { return };
    let image = format!("127.0.0.1:{}/auth", fake_registry().0);
    let out = d.docker(&["run", "--rm", &image, "/bin/echo", "authorized"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "authorized\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn corrupt_or_cut_blob_leaves_no_partial_image() {
    let Some(d) = start() else { return };
    let (port, _) = fake_registry();
    let images_dir = d.root().join("images");
    let before = files_under(&images_dir);
    let index = std::fs::read(images_dir.join("index.json")).unwrap();

    let out = d.docker(&["pull", &format!("127.0.0.1:{port}/bad")]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("digest mismatch"), "{}", out.stderr);
    let out = d.docker(&["pull", &format!("127.0.0.1:{port}/cut")]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let out = d.docker(&["pull", &format!("127.0.0.1:{port}/gone")]);
    assert_ne!(out.code, 0);
    let denied = format!(
        "pull access denied for 127.0.0.1:{port}/gone, repository does not exist or may require 'docker login'"
    );
    assert!(out.stderr.contains(&denied), "{}", out.stderr);

    assert_eq!(files_under(&images_dir), before, "a failed pull left files");
    assert_eq!(std::fs::read(images_dir.join("index.json")).unwrap(), index);
    let out = d.docker(&["run", "--rm", &format!("127.0.0.1:{port}/bad"), "true"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Unable to find image"),
        "{}",
        out.stderr
    );
    assert_eq!(files_under(&images_dir), before);
}

/// The engine's progress stream, message by message, as
/// `POST /images/create` is to stream it; a failed pull ends it with the
/// error.
#[test]
fn engine_pull_stream_messages() {
    use futures::StreamExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: unpacking layers needs root (file owners)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = examples::engine::LocalBackend::open(examples::engine::EngineConfig {
        root: dir.path().join("root"),
        state_dir: dir.path().join("run"),
        shim_program: env!("CARGO_BIN_EXE_berthd").into(),
    })
    .unwrap();
    let (port, index_digest) = fake_registry();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let collect = |reference: String| {
        rt.block_on(async { engine.pull_stream(&reference).collect::<Vec<_>>().await })
    };

    // First (the good image has the same layer digest, which a later
    // pull would find stored and not fetch): the corrupt layer.
    let failed = collect(format!("127.0.0.1:{port}/bad"));
    let err = failed.last().unwrap().as_ref().unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(failed[..failed.len() - 1].iter().all(Result::is_ok));

    let zstd = collect(format!("127.0.0.1:{port}/zstd"));
    let err = zstd.last().unwrap().as_ref().unwrap_err();
    assert!(
        err.to_string()
            .contains("zstd-compressed layers are not supported"),
        "{err}"
    );
    assert_eq!(err.http_status(), 400);

    let image = format!("127.0.0.1:{port}/auth");
    let messages: Vec<libswarm::PullMessage> = collect(image.clone())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // The layer comes in 8 pieces over ~320 ms: a few `Downloading`
    // lines with byte counts, not one per piece (at most one per 100 ms).
    let downloading: Vec<&libswarm::PullMessage> = messages
        .iter()
        .filter(|m| m.status == "Downloading")
        .collect();
    assert!(
        (2..=5).contains(&downloading.len()),
        "{} Downloading lines: {downloading:?}",
        downloading.len()
    );
    let counts: Vec<(u64, u64)> = downloading
        .iter()
        .map(|m| {
            let d = m.progress_detail.unwrap();
            (d.current.unwrap(), d.total.unwrap())
        })
        .collect();
    let total = counts[0].1;
    assert!(
        counts.windows(2).all(|w| w[0].0 < w[1].0)
            && counts.iter().all(|c| c.1 == total && c.0 <= total),
        "{counts:?}"
    );
    assert_eq!(downloading[0].id, messages[1].id);
    let statuses: Vec<&str> = messages
        .iter()
        .map(|m| m.status.as_str())
        .filter(|s| *s != "Downloading")
        .collect();
    assert_eq!(
        statuses[..5],
        [
            "Pulling from auth",
            "Pulling fs layer",
            "Download complete",
            "Extracting",
            "Pull complete"
        ]
    );
    assert!(statuses[5].starts_with("Digest: sha256:"), "{statuses:?}");
    assert_eq!(
        statuses[6],
        format!("Status: Downloaded newer image for {image}:latest")
    );
    assert_eq!(statuses.len(), 7);
    assert_eq!(messages[0].id.as_deref(), Some("latest"));
    assert_eq!(messages[1].id.as_ref().map(String::len), Some(12));
    let again = collect(image.clone());
    let last = again.last().unwrap().as_ref().unwrap();
    assert_eq!(
        last.status,
        format!("Status: Image is up to date for {image}:latest")
    );

    // An index: the amd64 entry is pulled (its layer is stored by now).
    let multi = format!("127.0.0.1:{port}/multi");
    let messages: Vec<libswarm::PullMessage> = collect(multi.clone())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(messages[1].status, "Already exists");
    assert_eq!(messages[2].status, format!("Digest: {index_digest}"));
    assert_eq!(
        messages.last().unwrap().status,
        format!("Status: Downloaded newer image for {multi}:latest")
    );
    // By the index's digest: the platform manifest it was pulled as.
    let images = ImageStore::open(dir.path().join("root/images")).unwrap();
    let pinned = format!("{multi}@{index_digest}");
    let inspect = images.inspect(&pinned).unwrap();
    // The same manifest as `auth`'s: both names, both repository digests.
    assert!(inspect.repo_digests.contains(&pinned), "{inspect:?}");
    assert_eq!(inspect.repo_digests.len(), 2, "{inspect:?}");
    assert!(inspect.repo_tags.contains(&format!("{multi}:latest")));
    drop(rt);
    remove_leftovers(dir.path());
}

/// HTTPS: a registry whose certificate chains to a CA found only in the
/// certs dir (`<dir>/<host:port>/ca.crt`, as Docker's certs.d); insecure
/// registries reached over unverified HTTPS or, when TLS fails, plain
/// HTTP. The
/// registry's name resolves to 127.0.0.1 through an /etc/hosts bind
/// mount in a mount namespace of this test's own (its threads and
/// children follow it); the host's files are not touched.
#[test]
fn https_with_a_certs_dir_ca_and_insecure_registries() {
    use nix::mount::{mount, MsFlags};
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: a private /etc/hosts needs root (mount namespace)");
        return;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    let hosts = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(hosts.path(), format!("127.0.0.1 localhost {TLS_NAME}\n")).unwrap();
    mount(
        Some(hosts.path()),
        "/etc/hosts",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();

    let Some(registry) = LocalRegistry::start_with(true) else {
        return;
    };
    registry.push_busybox("busybox:latest");
    let domain = format!("{TLS_NAME}:{}", registry.port);
    let certs = tempfile::tempdir().unwrap();
    std::fs::create_dir(certs.path().join(&domain)).unwrap();
    std::fs::copy(
        registry.dir.path().join("ca.crt"),
        certs.path().join(&domain).join("ca.crt"),
    )
    .unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(store_dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = format!("{domain}/busybox");

    // Without the CA the certificate is refused.
    let err = rt
        .block_on(store.pull(&image, &RegistryConfig::new(), |_| {}))
        .unwrap_err();
    assert!(
        err.to_string().contains("tls") && err.to_string().contains(&domain),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());

    let config = RegistryConfig::new().certs_dir(certs.path());
    let pulled = rt.block_on(store.pull(&image, &config, |_| {})).unwrap();
    assert!(pulled.updated);
    assert_eq!(
        store.image_id(&format!("{image}:latest")).unwrap(),
        pulled.id
    );

    // An insecure registry, as dockerd: HTTPS without checking the
    // certificate, or plain HTTP when its TLS handshake fails.
    let insecure = RegistryConfig::new().insecure(&domain);
    let other_store = tempfile::tempdir().unwrap();
    let other = ImageStore::open(other_store.path()).unwrap();
    let unverified = rt.block_on(other.pull(&image, &insecure, |_| {})).unwrap();
    assert_eq!(unverified.id, pulled.id);
    let plain = LocalRegistry::start().unwrap();
    plain.push_busybox("plain:1");
    let plain_domain = format!("{TLS_NAME}:{}", plain.port);
    let plain_image = format!("{plain_domain}/plain:1");
    let err = rt
        .block_on(other.pull(&plain_image, &RegistryConfig::new(), |_| {}))
        .unwrap_err();
    assert!(err.to_string().contains("tls"), "{err}");
    let insecure = RegistryConfig::new().insecure(TLS_NAME);
    let fell_back = rt
        .block_on(other.pull(&plain_image, &insecure, |_| {}))
        .unwrap();
    assert!(fell_back.updated);
    assert_eq!(other.image_id(&plain_image).unwrap(), fell_back.id);
}

/// A two-layer image: layers stacked in order, the gzip top layer's file
/// and whiteout seen by the container.
#[test]
fn two_layers_stack_in_order() {
    let Some(d) = start() else { return };
    let (port, _) = fake_registry();
    let image = format!("127.0.0.1:{port}/two");
    d.ok(&["pull", &image]);
    let out = d.docker(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "cat /hello.txt; test -e /bin/ls || echo gone; echo | /bin/cat",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "two\ngone\n\n"),
        "{}",
        out.stderr
    );
    let layers = d.ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &image]);
    assert_eq!(layers.trim(), "2");
}

/// libswarm's adapters carry pulls and logins: a RemoteClient (libchan)
/// to a remote server whose backend is a DockerClient of berthd, as a
/// multi-host setup would chain them. The progress lines and Docker's
/// errors come through, and so do the credentials.
#[test]
fn login_and_pull_progress_through_libswarm_adapters() {
    use futures::StreamExt;
    use libswarm::dockerserver::ListenAddr;
    use libswarm::{Backend, RegistryAuth};
    let Some(d) = start() else { return };
    let Some(registry) = LocalRegistry::start_with_auth("berth", "s3cret-pw") else {
        return;
    };
    let host = registry.host();
    registry.push_busybox("busybox:latest");
    let image = format!("{host}/busybox");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let docker = libswarm::dockerclient::DockerClient::connect(ListenAddr::Unix(
            d.dir.path().join("s.sock"),
        ))
        .await
        .unwrap();
        let relay_addr = ListenAddr::Unix(d.dir.path().join("relay.sock"));
        let relay = libswarm::remote::serve(Arc::new(docker), &relay_addr)
            .await
            .unwrap();
        let chain = libswarm::remote::RemoteClient::connect(&relay_addr)
            .await
            .unwrap();
        let auth = |password: &str| RegistryAuth {
            username: "berth".into(),
            password: password.into(),
            server_address: host.clone(),
        };

        let e = chain.registry_login(auth("wrong")).await.unwrap_err();
        assert!(e.message.contains("401 Unauthorized"), "{e}");
        assert_eq!(
            chain.registry_login(auth("s3cret-pw")).await.unwrap(),
            "Login Succeeded"
        );

        // Without credentials the registry refuses; the error comes
        // through the chain.
        let refused = match chain.image_pull_progress(&image, None).await {
            Err(e) => e,
            Ok(s) => s
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .find_map(Result::err)
                .expect("an error"),
        };
        assert!(
            refused.message.contains("no basic auth credentials"),
            "{refused}"
        );

        let lines: Vec<_> = chain
            .image_pull_progress(&image, Some(auth("s3cret-pw")))
            .await
            .unwrap()
            .collect()
            .await;
        let statuses: Vec<String> = lines.into_iter().map(|m| m.unwrap().status).collect();
        assert!(
            statuses.iter().any(|s| s == "Pull complete"),
            "{statuses:?}"
        );
        assert_eq!(
            statuses.last().unwrap(),
            &format!("Status: Downloaded newer image for {image}:latest")
        );
        drop(chain);
        relay.shutdown().await;
    });
    let images = d.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(images.contains(&image), "{images}");
}
