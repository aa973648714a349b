//! Our plugin client against our plugin server, discovery, and the client
//! against hand-written HTTP answers (Err under 200, garbage, retries).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libvolume::plugin::*;
use libvolume::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fast_retry(timeout_ms: u64) -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_millis(timeout_ms),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

async fn served_local(dir: &Path, sock: PathBuf) -> ServerHandle {
    let local = LocalDriver::builder(dir.join("vols")).build().unwrap();
    PluginServer::new(Arc::new(local))
        .serve_unix(sock)
        .await
        .unwrap()
}

async fn all_nine_calls(driver: &PluginDriver, vols: &Path) {
    assert_eq!(driver.capabilities().await.unwrap().scope, Scope::Local);
    driver.create("pv1", &Options::new()).await.unwrap();
    let opts = Options::from([("colour".to_string(), "blue".to_string())]);
    let err = driver.create("pv2", &opts).await.unwrap_err().to_string();
    assert!(err.contains("invalid option: \"colour\""), "{err}");
    let names: Vec<_> = driver
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["pv1"]);
    let got = driver.get("pv1").await.unwrap();
    assert_eq!(got.mountpoint, Some(vols.join("pv1/_data")));
    assert!(driver.get("nope").await.unwrap_err().is_not_found());
    assert_eq!(
        driver.path("pv1").await.unwrap(),
        Some(vols.join("pv1/_data"))
    );
    let mp = driver.mount("pv1", "id-1").await.unwrap();
    assert_eq!(mp, vols.join("pv1/_data"));
    std::fs::write(mp.join("f"), "x").unwrap();
    driver.unmount("pv1", "id-1").await.unwrap();
    driver.remove("pv1").await.unwrap();
    assert!(!vols.join("pv1").exists());
    assert!(driver.remove("pv1").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn client_and_server_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/berth.sock");
    let server = served_local(dir.path(), sock.clone()).await;
    let plugin = Plugin {
        name: "berth".into(),
        addr: server.addr().clone(),
    };
    let driver = PluginDriver::activate(plugin).await.unwrap();
    assert_eq!(driver.name(), "berth");
    all_nine_calls(&driver, &dir.path().join("vols")).await;
    server.shutdown();
    assert!(!sock.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn client_and_server_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDriver::builder(dir.path().join("vols"))
        .build()
        .unwrap();
    let server = PluginServer::new(Arc::new(local))
        .serve_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(matches!(server.addr(), PluginAddr::Tcp(_)));
    let plugin = Plugin {
        name: "berth-tcp".into(),
        addr: server.addr().clone(),
    };
    let driver = PluginDriver::activate(plugin).await.unwrap();
    all_nine_calls(&driver, &dir.path().join("vols")).await;
}

#[tokio::test]
async fn activation_waits_for_a_starting_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("late.sock");
    let plugin = Plugin {
        name: "late".into(),
        addr: PluginAddr::Unix(sock.clone()),
    };
    let dir_path = dir.path().to_path_buf();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        served_local(&dir_path, sock).await
    });
    let driver = PluginDriver::activate_with(PluginClient::new(plugin.clone()), fast_retry(5_000))
        .await
        .unwrap();
    driver.create("late-vol", &Options::new()).await.unwrap();
    drop(starter.await.unwrap());

    let gone = Plugin {
        name: "gone".into(),
        addr: PluginAddr::Unix(dir.path().join("never.sock")),
    };
    let started = std::time::Instant::now();
    let err = PluginDriver::activate_with(PluginClient::new(gone), fast_retry(200))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(err.to_string().contains("never.sock"), "{err}");
}

/// A one-shot HTTP server answering every connection with `response`,
/// handing back the requests it read.
async fn canned(
    sock: &Path,
    response: &'static str,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let listener = tokio::net::UnixListener::bind(sock).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // Read the head and a small JSON body.
            loop {
                let n = stream.read(&mut buf).await.unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if n == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
                    break;
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    rx
}

#[tokio::test]
async fn err_under_http_200_is_an_error_and_headers_are_docker_s() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("canned.sock");
    let body = r#"{"Err":"volume is cursed"}"#;
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let mut requests = canned(&sock, response).await;
    let client = PluginClient::new(Plugin {
        name: "canned".into(),
        addr: PluginAddr::Unix(sock),
    });
    let err = client
        .call::<_, plugin::protocol::ErrResponse>(
            "/VolumeDriver.Create",
            &serde_json::json!({"Name": "v"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Driver { message, .. } if message == "volume is cursed"),
        "{err:?}"
    );
    let req = requests.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        req.starts_with("post /volumedriver.create http/1.1"),
        "{req}"
    );
    assert!(
        req.contains("accept: application/vnd.docker.plugins.v1.2+json"),
        "{req}"
    );
    assert!(
        req.contains("content-type: application/vnd.docker.plugins.v1.2+json"),
        "{req}"
    );
    assert!(req.contains(r#"{"name":"v"}"#), "{req}");
}

#[tokio::test]
async fn non_json_errors_keep_status_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("broken.sock");
    let _rx = canned(
        &sock,
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9\r\nConnection: close\r\n\r\nkaboom!!!",
    )
    .await;
    let client = PluginClient::new(Plugin {
        name: "broken".into(),
        addr: PluginAddr::Unix(sock),
    });
    let err = client
        .call::<_, plugin::protocol::ErrResponse>("/VolumeDriver.List", &serde_json::json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("500") && err.contains("kaboom"), "{err}");
}

#[tokio::test]
async fn service_uses_discovered_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-plugins");
    let etc = dir.path().join("etc-plugins");
    std::fs::create_dir_all(&etc).unwrap();
    let _server = served_local(dir.path(), run.join("viasock.sock")).await;
    let tcp = PluginServer::new(Arc::new(
        LocalDriver::builder(dir.path().join("tcp-vols"))
            .build()
            .unwrap(),
    ))
    .serve_tcp("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let PluginAddr::Tcp(addr) = tcp.addr().clone() else {
        unreachable!()
    };
    std::fs::write(etc.join("viaspec.spec"), format!("tcp://{addr}\n")).unwrap();

    let svc = VolumeService::builder(dir.path().join("state"))
        .plugin_discovery(PluginDiscovery::new(vec![run], vec![etc]))
        .build()
        .await
        .unwrap();
    let v = svc
        .create(CreateVolume::named("remote").driver("viasock"))
        .await
        .unwrap();
    assert_eq!(v.driver, "viasock");
    let path = svc.mount("remote", Caller::new("c1")).await.unwrap();
    assert_eq!(path, dir.path().join("vols/remote/_data"));
    svc.unmount("remote", "c1").await.unwrap();
    svc.remove("remote", false).await.unwrap();

    svc.create(CreateVolume::named("spec-vol").driver("viaspec"))
        .await
        .unwrap();
    assert!(dir.path().join("tcp-vols/spec-vol/_data").is_dir());
    let e = svc
        .create(CreateVolume::named("x1").driver("absent"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownDriver { .. }), "{e}");
}

#[tokio::test]
async fn server_refuses_oversized_and_unknown_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = served_local(dir.path(), dir.path().join("limits.sock")).await;
    let client = PluginClient::new(Plugin {
        name: "limits".into(),
        addr: server.addr().clone(),
    });
    let huge = serde_json::json!({ "Name": "x".repeat(2 << 20) });
    let err = client
        .call::<_, plugin::protocol::ErrResponse>("/VolumeDriver.Create", &huge)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("reading request"), "{err}");
    let err = client
        .call::<_, plugin::protocol::ErrResponse>("/VolumeDriver.Explode", &serde_json::json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown plugin method"), "{err}");
    let err = client
        .call::<_, plugin::protocol::ErrResponse>(
            "/VolumeDriver.Remove",
            &serde_json::json!({"Nome": 1}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid request"), "{err}");
}

#[tokio::test]
async fn restore_looks_for_a_dead_plugin_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("plugins");
    let state = dir.path().join("state");
    let discovery = PluginDiscovery::new(vec![run.clone()], vec![]).with_retry(fast_retry(400));
    {
        let server = served_local(dir.path(), run.join("flaky.sock")).await;
        let svc = VolumeService::builder(&state)
            .plugin_discovery(discovery.clone())
            .build()
            .await
            .unwrap();
        for name in ["fa", "fb", "fc", "fd"] {
            svc.create(CreateVolume::named(name).driver("flaky"))
                .await
                .unwrap();
            svc.mount(name, Caller::new("held")).await.unwrap();
        }
        drop(server);
    }
    // The plugin died leaving a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(run.join("flaky.sock")).unwrap());
    assert!(run.join("flaky.sock").exists());
    let started = std::time::Instant::now();
    let svc = VolumeService::builder(&state)
        .plugin_discovery(discovery)
        .build()
        .await
        .unwrap();
    let took = started.elapsed();
    // One activation attempt of ~400 ms, not four.
    assert!(took >= Duration::from_millis(300), "restore took {took:?}");
    assert!(took < Duration::from_millis(1200), "restore took {took:?}");
    // Records are kept as they were until the plugin is back.
    let kept = svc.list(&ListFilter::default()).await.unwrap();
    assert_eq!(kept.len(), 4);
    assert!(kept.iter().all(|v| v.callers.len() == 1));
    let _ = std::fs::remove_file(run.join("flaky.sock"));
}

#[tokio::test]
async fn service_adopts_volumes_a_plugin_already_has() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("plugins");
    let _server = served_local(dir.path(), run.join("elder.sock")).await;
    let plugin = Plugin {
        name: "elder".into(),
        addr: PluginAddr::Unix(run.join("elder.sock")),
    };
    let direct = PluginDriver::activate(plugin).await.unwrap();
    for name in ["old-one", "old-two"] {
        direct.create(name, &Options::new()).await.unwrap();
    }
    let svc = VolumeService::builder(dir.path().join("state"))
        .plugin_discovery(PluginDiscovery::new(vec![run], vec![]))
        .build()
        .await
        .unwrap();
    svc.create(CreateVolume::named("new-one").driver("elder"))
        .await
        .unwrap();
    let mut adopted = svc.adopt("elder").await.unwrap();
    adopted.sort();
    assert_eq!(adopted, ["old-one", "old-two"]);
    assert!(
        svc.adopt("elder").await.unwrap().is_empty(),
        "adopting twice adds nothing"
    );
    let all = svc
        .list(&ListFilter::default().driver("elder"))
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let path = svc.mount("old-one", Caller::new("c")).await.unwrap();
    assert_eq!(path, dir.path().join("vols/old-one/_data"));
    svc.unmount("old-one", "c").await.unwrap();
    svc.remove("old-one", false).await.unwrap();
    assert!(direct.get("old-one").await.unwrap_err().is_not_found());
}
