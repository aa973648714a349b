//! Root tests of the macvlan and ipvlan drivers over a dummy parent.

mod common;

use std::net::IpAddr;

use common::*;
use libnetwork::{EndpointConfig, NetworkConfig, SandboxConfig};

async fn pair_talks(fh: &FakeHost, net: &str, tag: &str) {
    let ctl = fh.ctl();
    let a = ctl
        .create_sandbox(SandboxConfig::new(format!("{tag}-a")))
        .await
        .unwrap();
    let b = ctl
        .create_sandbox(SandboxConfig::new(format!("{tag}-b")))
        .await
        .unwrap();
    ctl.attach(
        net,
        &a.id,
        EndpointConfig::builder(format!("{tag}-a")).build(),
    )
    .await
    .unwrap();
    let eb = ctl
        .attach(
            net,
            &b.id,
            EndpointConfig::builder(format!("{tag}-b")).build(),
        )
        .await
        .unwrap();
    let ip: IpAddr = eb.addresses[0].addr();
    serve_tcp(&ns_of(&b.netns_path), addr(ip, 7200), "sub");
    assert_eq!(
        tcp_get(&ns_of(&a.netns_path), addr(ip, 7200)).unwrap(),
        "sub",
        "{net}"
    );
    ctl.delete_sandbox(&a.id).await.unwrap();
    ctl.delete_sandbox(&b.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macvlan_and_ipvlan_sandboxes_reach_each_other_over_a_dummy_parent() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    // The parent is a dummy link where the kernel has the dummy driver;
    // this VM's kernel lacks it, so a veth (whose peer stays idle in the
    // fake host) stands in: the sub-interfaces never use the wire anyway.
    let dummy = std::process::Command::new("ip")
        .args([
            "-n",
            &fh.host.name,
            "link",
            "add",
            "dummy0",
            "type",
            "dummy",
        ])
        .status()
        .unwrap();
    if !dummy.success() {
        eprintln!("no dummy driver in this kernel: using a veth as the parent");
        ip(&[
            "-n",
            &fh.host.name,
            "link",
            "add",
            "dummy0",
            "type",
            "veth",
            "peer",
            "name",
            "dummy0p",
        ]);
        ip(&["-n", &fh.host.name, "link", "set", "dummy0p", "up"]);
    }
    ip(&["-n", &fh.host.name, "link", "set", "dummy0", "up"]);
    let ctl = fh.ctl();
    // This VM's kernel has macvlan but neither ipvlan nor 802.1q VLANs:
    // those cases run where the kernel supports them and are skipped
    // (with the reason printed) elsewhere.
    let supported = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(["-n", &fh.host.name, "link", "add"])
            .args(args)
            .status()
            .unwrap()
            .success();
        if ok {
            let _ = std::process::Command::new("ip")
                .args(["-n", &fh.host.name, "link", "del", args[0]])
                .status();
        }
        ok
    };
    let has_ipvlan = supported(&["probe0", "link", "dummy0", "type", "ipvlan"]);
    let has_vlan = supported(&["probe1", "link", "dummy0", "type", "vlan", "id", "99"]);
    let cases = [
        ("mv-bridge", "macvlan", "dummy0", "bridge", "10.50.0.0/24"),
        ("ipv-l2", "ipvlan", "dummy0", "l2", "10.51.0.0/24"),
        ("ipv-l3", "ipvlan", "dummy0", "l3", "10.52.0.0/24"),
        ("ipv-l3s", "ipvlan", "dummy0", "l3s", "10.55.0.0/24"),
        ("mv-vlan", "macvlan", "dummy0.10", "bridge", "10.53.0.0/24"),
    ];
    for (name, driver, parent, mode, subnet) in cases {
        if (driver == "ipvlan" && !has_ipvlan) || (parent.contains('.') && !has_vlan) {
            eprintln!(
                "skipping {name}: the kernel has no {}",
                if driver == "ipvlan" {
                    "ipvlan"
                } else {
                    "802.1q"
                }
            );
            continue;
        }
        ctl.create_network(
            NetworkConfig::builder(name, driver)
                .subnet(subnet.parse().unwrap())
                .option("parent", parent)
                .option("mode", mode)
                .build(),
        )
        .await
        .unwrap();
        pair_talks(&fh, name, name).await;
    }
    if has_vlan {
        assert!(
            fh.host_links().iter().any(|l| l == "dummy0.10"),
            "802.1q parent created"
        );
    } else {
        let err = ctl
            .create_network(
                NetworkConfig::builder("novlan", "macvlan")
                    .option("parent", "dummy0.10")
                    .build(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("dummy0.10"), "{err}");
    }
    // Other modes are accepted by the kernel (a private macvlan does not
    // forward between siblings, so only creation and join are checked).
    for mode in ["private", "vepa", "passthru"] {
        let name = format!("mv-{mode}");
        ctl.create_network(
            NetworkConfig::builder(&name, "macvlan")
                .subnet(format!("10.54.{}.0/24", mode.len()).parse().unwrap())
                .option("parent", "dummy0")
                .option("mode", mode)
                .build(),
        )
        .await
        .unwrap();
        let s = ctl.create_sandbox(SandboxConfig::new(&name)).await.unwrap();
        ctl.attach(&name, &s.id, EndpointConfig::builder(&name).build())
            .await
            .unwrap();
        ctl.delete_sandbox(&s.id).await.unwrap();
    }
    let err = ctl
        .create_network(
            NetworkConfig::builder("bad", "macvlan")
                .option("parent", "dummy0")
                .option("mode", "l2")
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("options.mode"), "{err}");
    let err = ctl
        .create_network(NetworkConfig::builder("noparent", "ipvlan").build())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("options.parent"), "{err}");
    for net in ctl.networks().await {
        for ep in std::fs::read_dir(fh.state.path().join("endpoints"))
            .unwrap()
            .flatten()
        {
            let info: libnetwork::EndpointInfo =
                serde_json::from_slice(&std::fs::read(ep.path()).unwrap()).unwrap();
            if info.network_id == net.id {
                ctl.delete_endpoint(&info.id).await.unwrap();
            }
        }
        ctl.delete_network(&net.id).await.unwrap();
    }
    assert!(
        !fh.host_links().iter().any(|l| l == "dummy0.10"),
        "802.1q parent removed with its network"
    );
}
