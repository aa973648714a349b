//! End to end: a real container (libcontainer, busybox) runs in a sandbox
//! made by the controller, reaches another sandbox and resolves its name
//! through the embedded DNS.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;

use common::*;
use libcontainer::fixtures::{default_spec, BusyboxBundle};
use libcontainer::{Container, ContainerBuilder};
use libnetwork::{EndpointConfig, NetworkConfig, SandboxConfig};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, MountBuilder};

struct Ctr {
    root: PathBuf,
    id: String,
}

impl Drop for Ctr {
    fn drop(&mut self) {
        if let Ok(c) = Container::load(&self.root, &self.id) {
            let _ = c.delete(true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busybox_container_in_a_sandbox_reaches_a_peer_by_name() {
    if !is_root() {
        return;
    }
    if libcontainer::fixtures::static_busybox().is_err() {
        eprintln!("skipping: no static busybox (apt-get install busybox-static)");
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(NetworkConfig::builder("e2e", "bridge").build())
        .await
        .unwrap();
    let server = ctl
        .create_sandbox(SandboxConfig::new("server"))
        .await
        .unwrap();
    let es = ctl
        .attach(
            "e2e",
            &server.id,
            EndpointConfig::builder("server").alias("api").build(),
        )
        .await
        .unwrap();
    let ip: IpAddr = es.addresses[0].addr();
    serve_tcp(
        &ns_of(&server.netns_path),
        addr(ip, 7400),
        "hello container",
    );
    let client = ctl
        .create_sandbox(SandboxConfig::new("client"))
        .await
        .unwrap();
    ctl.attach("e2e", &client.id, EndpointConfig::builder("client").build())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut spec = default_spec();
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let mut namespaces: Vec<LinuxNamespace> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    let mut netns = LinuxNamespace::default();
    netns.set_typ(LinuxNamespaceType::Network);
    netns.set_path(Some(client.netns_path.clone()));
    namespaces.push(netns);
    linux.set_namespaces(Some(namespaces));
    let mounts = spec.mounts_mut().get_or_insert_with(Vec::new);
    for (src, dst) in [
        (out.clone(), "/out"),
        (ctl.resolv_conf_path(&client.id), "/etc/resolv.conf"),
    ] {
        mounts.push(
            MountBuilder::default()
                .destination(dst)
                .source(src)
                .options(vec!["rbind".to_string()])
                .build()
                .unwrap(),
        );
    }
    let bundle = dir.path().join("bundle");
    BusyboxBundle::new(&bundle)
        .spec(spec)
        .args(["/bin/sh", "-c", "exec >/out/log 2>&1; cat /etc/resolv.conf; nslookup api; nc -w 3 api 7400 || nc -w 3 $(nslookup api | awk '/^Address/ {a=$NF} END {print a}') 7400"])
        .write()
        .unwrap();
    let ctr = Ctr {
        root: dir.path().join("state"),
        id: format!("netc{}", std::process::id()),
    };
    let mut c = ContainerBuilder::new(&ctr.id, &bundle)
        .root(&ctr.root)
        .create()
        .unwrap();
    c.start().unwrap();
    let code = c.wait().unwrap();
    let log = std::fs::read_to_string(out.join("log")).unwrap_or_default();
    assert!(log.contains("nameserver 127.0.0.11"), "{log}");
    assert!(log.contains(&ip.to_string()), "api resolved to {ip}: {log}");
    assert!(log.contains("hello container"), "{log}");
    assert_eq!(code, 0, "{log}");
}
