//! The CNI plugin logic (what `berth-cni` runs): ADD, CHECK, DEL, GC,
//! VERSION and STATUS on a namespace inside a fake host; the binary itself
//! too when it has been built.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use libnetwork::cni::{run, CniEnv};
use serde_json::Value;

fn conf(data_dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"cnitest","type":"berth-cni","bridge":"cni-t0","subnet":"10.70.0.0/24",
"dataDir":"{}"{extra}}}"#,
        data_dir.display()
    )
}

fn env(cmd: &str, id: &str, netns: &std::path::Path) -> CniEnv {
    CniEnv {
        command: cmd.into(),
        container_id: id.into(),
        netns: netns.display().to_string(),
        ifname: "net1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_check_del_gc_on_a_namespace() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let host = Some(fh.host.path());
    let data = tempfile::tempdir().unwrap();
    let c1 = NamedNs::new("c1");
    let c2 = NamedNs::new("c2");
    let ports = r#","runtimeConfig":{"portMappings":[{"hostPort":8095,"containerPort":80,"protocol":"tcp"}]}"#;

    let v: Value = serde_json::from_str(
        &run(&env("VERSION", "", &c1.path()), "", None)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "1.1.0"));
    run(
        &env("STATUS", "", &c1.path()),
        &conf(data.path(), ""),
        host.clone(),
    )
    .await
    .unwrap();

    let out = run(
        &env("ADD", "c1", &c1.path()),
        &conf(data.path(), ports),
        host.clone(),
    )
    .await
    .unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["interfaces"][2]["name"], "net1");
    assert_eq!(r["ips"][0]["gateway"], "10.70.0.1");
    let ip1: std::net::IpAddr = r["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // runtimeConfig.mac (the mac capability): a bad one is refused, a
    // good one is the interface's, and the result says so.
    let err = run(
        &env("ADD", "c2", &c2.path()),
        &conf(data.path(), r#","runtimeConfig":{"mac":"02:zz"}"#),
        host.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 4);
    assert!(err.msg.contains("runtimeConfig.mac"), "{}", err.msg);
    let sandboxes = std::fs::read_dir(data.path().join("cnitest/sandboxes"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(sandboxes, 1, "only c1's sandbox: the refusal made none");
    let out = run(
        &env("ADD", "c2", &c2.path()),
        &conf(
            data.path(),
            r#","runtimeConfig":{"mac":"02:00:00:00:70:02"}"#,
        ),
        host.clone(),
    )
    .await
    .unwrap();
    let r2: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(r2["ips"][0]["address"], r["ips"][0]["address"]);
    assert_eq!(r2["interfaces"][2]["mac"], "02:00:00:00:70:02");
    let link = c2.exec(&["ip", "-o", "link", "show", "net1"]);
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("link/ether 02:00:00:00:70:02"),
        "{link:?}"
    );
    assert_eq!(r["interfaces"][2]["mac"].as_str().map(str::len), Some(17));
    run(
        &env("CHECK", "c1", &c1.path()),
        &conf(data.path(), ports),
        host.clone(),
    )
    .await
    .unwrap();

    // The attachment works: c2 reaches c1, the outside reaches the port.
    serve_tcp(&c1.ns(), addr(ip1, 80), "cni");
    assert_eq!(tcp_get(&c2.ns(), addr(ip1, 80)).unwrap(), "cni");
    assert_eq!(
        tcp_get(&fh.outside.ns(), addr(HOST_IP.parse().unwrap(), 8095)).unwrap(),
        "cni"
    );

    // CHECK notices a missing interface.
    ip(&["-n", &c2.name, "link", "del", "net1"]);
    let err = run(
        &env("CHECK", "c2", &c2.path()),
        &conf(data.path(), ""),
        host.clone(),
    )
    .await
    .unwrap_err();
    assert!(err.msg.contains("net1"), "{}", err.msg);

    // DEL twice is fine; GC removes what the runtime no longer knows.
    run(
        &env("DEL", "c1", &c1.path()),
        &conf(data.path(), ports),
        host.clone(),
    )
    .await
    .unwrap();
    run(
        &env("DEL", "c1", &c1.path()),
        &conf(data.path(), ports),
        host.clone(),
    )
    .await
    .unwrap();
    assert!(tcp_blocked(
        &fh.outside.ns(),
        addr(HOST_IP.parse().unwrap(), 8095)
    ));
    let gc = conf(data.path(), r#","cni.dev/valid-attachments":[]"#);
    run(&env("GC", "", &c1.path()), &gc, host.clone())
        .await
        .unwrap();
    assert!(std::fs::read_dir(data.path().join("cnitest/endpoints"))
        .unwrap()
        .next()
        .is_none());

    // Bad input gets a CNI error code.
    let err = run(
        &env("ADD", "c3", &c1.path()),
        r#"{"cniVersion":"9.9.9","name":"x"}"#,
        host.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 1);
    let err = run(
        &env("ADD", "", &c1.path()),
        &conf(data.path(), ""),
        host.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 7);
    assert!(err.to_json("1.1.0").contains("CNI_CONTAINERID"));
}

#[test]
fn the_binary_passes_add_check_del_when_built() {
    if !is_root() {
        return;
    }
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/berth-cni");
    if !bin.exists() {
        eprintln!(
            "skipping: {} is not built (cargo build -p examples --bin berth-cni)",
            bin.display()
        );
        return;
    }
    let host = NamedNs::new("chost");
    let c = NamedNs::new("cbin");
    let data = tempfile::tempdir().unwrap();
    let hostns = host.ns();
    let call = |cmd: &str| {
        let fd = hostns.raw_fd();
        let mut p = Command::new(&bin);
        p.env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", "bin1")
            .env("CNI_NETNS", c.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        // SAFETY: setns is async-signal-safe; the plugin must run in the
        // (fake) host namespace, as a runtime would run it.
        unsafe {
            p.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = p.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf(data.path(), "").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let add = call("ADD");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stdout)
    );
    let r: Value = serde_json::from_slice(&add.stdout).unwrap();
    assert_eq!(r["interfaces"][2]["name"], "eth0");
    assert!(call("CHECK").status.success());
    assert!(call("DEL").status.success());
    let check = call("CHECK");
    assert!(!check.status.success());
    let e: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(e["msg"].as_str().unwrap().contains("no attachment"), "{e}");
}
