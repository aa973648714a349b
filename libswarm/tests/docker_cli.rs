//! The real `docker` CLI against `dockerserver` over the fake backend.
//!
//! Skips (with a printed reason) when no `docker` binary is on PATH. The
//! server runs in-process on a socket in a temp dir; every CLI call runs as
//! a subprocess with a timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use libswarm::dockerserver::{self, ListenAddr, ServerHandle};
use libswarm::fake::FakeBackend;
use tokio::io::AsyncWriteExt;

struct Cli {
    dir: tempfile::TempDir,
    host: String,
    _server: Option<ServerHandle>,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn docker_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("docker"))
        .find(|p| p.is_file())
}

async fn start() -> Option<Cli> {
    if docker_binary().is_none() {
        eprintln!(
            "SKIP: no `docker` CLI on PATH (install docker-ce-cli or docker.io to run this test)"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let server = dockerserver::serve(
        Arc::new(FakeBackend::new()),
        &ListenAddr::Unix(sock.clone()),
    )
    .await
    .unwrap();
    Some(Cli {
        host: format!("unix://{}", sock.display()),
        dir,
        _server: Some(server),
    })
}

impl Cli {
    async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn docker");
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(data).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("docker {args:?} timed out"))
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None).await
    }

    /// Runs and insists on success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(
            out.code, 0,
            "docker {args:?} failed: stdout {:?} stderr {:?}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_commands() {
    let Some(cli) = start().await else { return };
    let v = cli
        .ok(&[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
        ])
        .await;
    assert_eq!(v.trim(), "1.44 1.24");
    let info = cli
        .ok(&["info", "--format", "{{.Name}} {{.Containers}}"])
        .await;
    assert_eq!(info.trim(), "fake 0");
    assert_eq!(cli.ok(&["ps", "-q"]).await.trim(), "");
    let images = cli
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert!(images.contains("busybox:latest"), "{images}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_attached_detached_and_rm() {
    let Some(cli) = start().await else { return };
    // Attached, auto-removed, output and exit code come back.
    let out = cli
        .run(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo hello; echo oops >&2; exit 3",
        ])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "hello\n");
    assert!(out.stderr.contains("oops"), "{}", out.stderr);
    assert_eq!(
        cli.ok(&["ps", "-aq"]).await.trim(),
        "",
        "--rm left a container"
    );

    // Stdin through an attached run (client half-close ends stdin only).
    let out = cli
        .run_with(&["run", "-i", "--rm", "busybox", "cat"], Some(b"ping\n"))
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "ping\n"),
        "{}",
        out.stderr
    );

    // Detached, then the lifecycle verbs.
    let id = cli
        .ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"])
        .await;
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = cli.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).await;
    assert!(ps.starts_with("web Up"), "{ps}");
    let state = cli
        .ok(&["inspect", "--format", "{{.State.Status}} {{.Name}}", "web"])
        .await;
    assert_eq!(state.trim(), "running /web");
    cli.ok(&["stop", "-t", "1", "web"]).await;
    assert_eq!(cli.ok(&["wait", "web"]).await.trim(), "143");
    cli.ok(&["start", "web"]).await;
    cli.ok(&["kill", "web"]).await;
    assert_eq!(cli.ok(&["wait", "web"]).await.trim(), "137");
    cli.ok(&["rm", "web"]).await;
    let gone = cli.run(&["inspect", "web"]).await;
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("No such"), "{}", gone.stderr);

    // create + start, rm -f of a running container.
    cli.ok(&["create", "--name", "c2", "busybox", "sleep", "1000"])
        .await;
    cli.ok(&["start", "c2"]).await;
    let busy = cli.run(&["rm", "c2"]).await;
    assert_ne!(busy.code, 0, "rm of a running container must fail");
    cli.ok(&["rm", "-f", "c2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_and_exec() {
    let Some(cli) = start().await else { return };
    cli.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 0.3; echo b >&2; echo c",
    ])
    .await;
    let out = cli.run(&["logs", "-f", "talker"]).await;
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, "a\nc\n");
    assert_eq!(out.stderr, "b\n");
    let tail = cli.ok(&["logs", "--tail", "1", "talker"]).await;
    assert_eq!(tail, "c\n");

    cli.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .await;
    assert_eq!(cli.ok(&["exec", "box", "echo", "hi"]).await, "hi\n");
    assert_eq!(
        cli.ok(&["exec", "-t", "box", "echo", "tty"])
            .await
            .trim_end(),
        "tty"
    );
    let code = cli.run(&["exec", "box", "sh", "-c", "exit 4"]).await.code;
    assert_eq!(code, 4);
    let out = cli
        .run_with(&["exec", "-i", "box", "cat"], Some(b"via exec\n"))
        .await;
    assert_eq!(out.stdout, "via exec\n", "{}", out.stderr);
    cli.ok(&["rm", "-f", "box", "talker"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_and_volumes() {
    let Some(cli) = start().await else { return };
    let id = cli.ok(&["network", "create", "backend"]).await;
    assert_eq!(id.trim().len(), 64);
    let ls = cli.ok(&["network", "ls", "--format", "{{.Name}}"]).await;
    for n in ["bridge", "host", "none", "backend"] {
        assert!(ls.lines().any(|l| l == n), "{n} missing from {ls}");
    }
    assert_eq!(
        cli.ok(&["network", "inspect", "--format", "{{.Driver}}", "backend"])
            .await
            .trim(),
        "bridge"
    );
    cli.ok(&["run", "-d", "--name", "app", "busybox", "sleep", "1000"])
        .await;
    cli.ok(&["network", "connect", "backend", "app"]).await;
    let nets = cli
        .ok(&[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "app",
        ])
        .await;
    assert!(
        nets.contains("backend") && nets.contains("bridge"),
        "{nets}"
    );
    let busy = cli.run(&["network", "rm", "backend"]).await;
    assert_ne!(busy.code, 0, "removing a network in use must fail");
    cli.ok(&["network", "disconnect", "backend", "app"]).await;
    cli.ok(&["network", "rm", "backend"]).await;
    let missing = cli.run(&["network", "inspect", "backend"]).await;
    assert_ne!(missing.code, 0);

    assert_eq!(cli.ok(&["volume", "create", "data"]).await.trim(), "data");
    let ls = cli
        .ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .await;
    assert!(ls.lines().any(|l| l == "data local"), "{ls}");
    let mp = cli
        .ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "data"])
        .await;
    assert!(mp.contains("data"), "{mp}");
    cli.ok(&["volume", "rm", "data"]).await;
    assert_ne!(cli.run(&["volume", "inspect", "data"]).await.code, 0);
    cli.ok(&["rm", "-f", "app"]).await;
}

/// A minimal `docker save` archive: manifest.json + config.
fn saved_image_tar(tag: &str) -> Vec<u8> {
    let config = br#"{"config":{"Cmd":["echo","from-loaded-image"]},"comment":"test"}"#;
    let manifest = format!(r#"[{{"Config":"cfg.json","RepoTags":["{tag}"],"Layers":[]}}]"#);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("cfg.json", &config[..]),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_load_import_rmi_and_events() {
    let Some(cli) = start().await else { return };
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tar_path = cli.dir.path().join("img.tar");
    std::fs::write(&tar_path, saved_image_tar("test/loaded:1")).unwrap();
    let out = cli.ok(&["load", "-i", tar_path.to_str().unwrap()]).await;
    assert!(out.contains("Loaded image: test/loaded:1"), "{out}");
    assert_eq!(
        cli.ok(&["run", "--rm", "test/loaded:1"]).await,
        "from-loaded-image\n"
    );

    let rootfs = cli.dir.path().join("rootfs.tar");
    std::fs::write(&rootfs, saved_image_tar("ignored:1")).unwrap();
    let id = cli
        .ok(&[
            "import",
            "--change",
            "CMD [\"echo\",\"imported\"]",
            rootfs.to_str().unwrap(),
            "test/imported:2",
        ])
        .await;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        cli.ok(&["run", "--rm", "test/imported:2"]).await,
        "imported\n"
    );
    let images = cli
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert!(
        images.contains("test/loaded:1") && images.contains("test/imported:2"),
        "{images}"
    );
    assert_eq!(
        cli.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Comment}}",
            "test/loaded:1"
        ])
        .await
        .trim(),
        "test"
    );
    let rmi = cli.ok(&["rmi", "test/loaded:1"]).await;
    assert!(rmi.contains("Untagged: test/loaded:1"), "{rmi}");
    assert_ne!(
        cli.run(&["image", "inspect", "test/loaded:1"]).await.code,
        0
    );

    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = cli
        .ok(&[
            "events",
            "--since",
            &t0.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--format",
            "{{.Type}} {{.Action}}",
        ])
        .await;
    for action in [
        "container create",
        "container start",
        "container die",
        "container destroy",
    ] {
        assert!(
            events.contains(action),
            "{action} missing from events: {events}"
        );
    }
    assert!(
        !events.contains("image"),
        "type filter let image events through: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_are_json_404s_and_versions_are_negotiated() {
    let Some(cli) = start().await else { return };
    // Raw HTTP over the socket: a miss, a too-new version, the ping headers.
    use tokio::io::AsyncReadExt;
    let sock = cli.host.trim_start_matches("unix://").to_string();
    async fn raw(sock: &str, req: &str) -> String {
        let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    }
    let r = raw(
        &sock,
        "GET /v1.44/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(
        r.contains("{\"message\":\"page not found: GET /v1.44/nope\"}"),
        "{r}"
    );
    let r = raw(
        &sock,
        "GET /v1.99/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("too new"),
        "{r}"
    );
    let r = raw(
        &sock,
        "GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.to_ascii_lowercase().contains("api-version: 1.44"), "{r}");
    let r = raw(
        &sock,
        "GET /containers/nope/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("No such container: nope"),
        "{r}"
    );
    // And the CLI against an older pinned API version still works.
    let mut cmd = tokio::process::Command::new("docker");
    let out = cmd
        .args(["version", "--format", "{{.Client.APIVersion}}"])
        .env("DOCKER_HOST", &cli.host)
        .env("DOCKER_API_VERSION", "1.41")
        .env("DOCKER_CONFIG", cli.dir.path().join("config"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.41");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_through_a_dockerserver_debug_cluster_pipeline() {
    if docker_binary().is_none() {
        eprintln!("SKIP: no `docker` CLI on PATH");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/c.sock", dir.path().display());
    let pipeline = libswarm::pipeline::build(&[
        format!("dockerserver {host}"),
        "debug".to_string(),
        "cluster n1:zone=eu@fake n2:zone=us@fake".to_string(),
    ])
    .await
    .unwrap();
    let cli = Cli {
        host,
        dir,
        _server: None,
    };
    let out = cli
        .run(&[
            "run",
            "--rm",
            "-e",
            "constraint:zone==us",
            "busybox",
            "echo",
            "from-us",
        ])
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "from-us\n"),
        "{}",
        out.stderr
    );
    for i in 0..4 {
        cli.ok(&[
            "run",
            "-d",
            "--name",
            &format!("c{i}"),
            "busybox",
            "sleep",
            "100",
        ])
        .await;
    }
    let nodes = cli
        .ok(&["ps", "--format", "{{.Label \"com.docker.swarm.node\"}}"])
        .await;
    let mut nodes: Vec<&str> = nodes.lines().collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n1", "n2", "n2"], "spread over two nodes");
    let node = cli
        .ok(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"com.docker.swarm.node\"}}",
            "c0",
        ])
        .await;
    assert!(node.trim() == "n1" || node.trim() == "n2", "{node}");
    assert_eq!(cli.ok(&["exec", "c3", "echo", "routed"]).await, "routed\n");
    let info = cli
        .ok(&["info", "--format", "{{.Name}} {{.Containers}}"])
        .await;
    assert_eq!(info.trim(), "berth-cluster 4");
    cli.ok(&["rm", "-f", "c0", "c1", "c2", "c3"]).await;
    pipeline.shutdown().await;
}
