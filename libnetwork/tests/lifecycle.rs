//! Root tests of state, reload and error handling, each in its own fake host.

mod common;

use std::net::IpAddr;

use common::*;
use hickory_proto::rr::RecordType;
use libnetwork::{
    EndpointConfig, Error, IpamPoolConfig, NetworkConfig, PortMapping, Proto, SandboxConfig,
};

fn v4(ep: &libnetwork::EndpointInfo) -> IpAddr {
    ep.addresses
        .iter()
        .find(|a| a.addr().is_ipv4())
        .unwrap()
        .addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_controller_restart() {
    if !is_root() {
        return;
    }
    let mut fh = FakeHost::new().await;
    let (a, b, ea, eb) = {
        let ctl = fh.ctl();
        ctl.create_network(
            NetworkConfig::builder("keep", "bridge")
                .subnet("10.42.0.0/24".parse().unwrap())
                .build(),
        )
        .await
        .unwrap();
        let a = ctl.create_sandbox(SandboxConfig::new("a")).await.unwrap();
        let b = ctl.create_sandbox(SandboxConfig::new("b")).await.unwrap();
        let ea = ctl
            .attach("keep", &a.id, EndpointConfig::builder("a").build())
            .await
            .unwrap();
        let eb = ctl
            .attach(
                "keep",
                &b.id,
                EndpointConfig::builder("b")
                    .port(PortMapping::new(Proto::Tcp, 8081, 80))
                    .build(),
            )
            .await
            .unwrap();
        (a, b, ea, eb)
    };
    // A third sandbox whose namespace disappears while no controller runs
    // (the container died): the next controller must drop it.
    let gone = fh
        .ctl()
        .create_sandbox(SandboxConfig::new("gone"))
        .await
        .unwrap();
    let eg = fh
        .ctl()
        .attach("keep", &gone.id, EndpointConfig::builder("g").build())
        .await
        .unwrap();
    // A veth left on the bridge by a join that crashed half way.
    let bridge = format!("br-{}", &fh.ctl().network("keep").await.unwrap().id[..12]);
    ip(&[
        "-n",
        &fh.host.name,
        "link",
        "add",
        "vethorphan01",
        "master",
        &bridge,
        "type",
        "veth",
        "peer",
        "name",
        "orphanpeer",
    ]);
    fh.ctl.take();
    // Give aborted resolver tasks a moment to close their sockets.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    libnetwork::NetNs::remove_pinned(&gone.netns_path).unwrap();
    fh.start().await;
    let ctl = fh.ctl();
    let net = ctl.network("keep").await.unwrap();
    assert!(
        !fh.host_links().iter().any(|l| l == "vethorphan01"),
        "orphan veth removed"
    );
    assert_eq!(net.subnets[0].subnet.to_string(), "10.42.0.0/24");
    assert_eq!(
        ctl.endpoint(&ea.id).await.unwrap().sandbox_id.as_deref(),
        Some(a.id.as_str())
    );
    assert!(ctl.sandbox(&gone.id).await.is_err(), "dead sandbox dropped");
    assert_eq!(
        ctl.endpoint(&eg.id).await.unwrap().sandbox_id,
        None,
        "its endpoint unplugged"
    );
    // No address is handed out twice after the restart.
    let c = ctl.create_sandbox(SandboxConfig::new("c")).await.unwrap();
    let ec = ctl
        .attach("keep", &c.id, EndpointConfig::builder("c").build())
        .await
        .unwrap();
    for other in [&ea, &eb, &eg] {
        assert_ne!(v4(&ec), v4(other));
    }
    // The published port is still claimed and still works.
    let err = ctl
        .attach(
            "keep",
            &c.id,
            EndpointConfig::builder("c2")
                .port(PortMapping::new(Proto::Tcp, 8081, 80))
                .build(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PortTaken { .. }), "{err}");
    let nb = ns_of(&b.netns_path);
    serve_tcp(&nb, addr(v4(&eb), 80), "still here");
    assert_eq!(
        tcp_get(&fh.outside.ns(), addr(HOST_IP.parse().unwrap(), 8081)).unwrap(),
        "still here"
    );
    // DNS came back with the sandboxes.
    let (ans, _) = dns_query(&ns_of(&a.netns_path), "b", RecordType::A);
    assert_eq!(ans, vec![v4(&eb).to_string()]);
    // An endpoint joined before the restart leaves cleanly after it.
    let veth = ctl.endpoint(&eb.id).await.unwrap().host_ifname.unwrap();
    ctl.detach(&eb.id).await.unwrap();
    ctl.settle().await;
    assert!(tcp_blocked(
        &fh.outside.ns(),
        addr(HOST_IP.parse().unwrap(), 8081)
    ));
    assert!(!fh.host_links().contains(&veth), "{veth} deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_ruleset_comes_back_on_reload() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(NetworkConfig::builder("r", "bridge").build())
        .await
        .unwrap();
    let s = ctl.create_sandbox(SandboxConfig::new("r")).await.unwrap();
    let ep = ctl
        .attach(
            "r",
            &s.id,
            EndpointConfig::builder("r")
                .port(PortMapping::new(Proto::Tcp, 8082, 80))
                .build(),
        )
        .await
        .unwrap();
    serve_tcp(&ns_of(&s.netns_path), addr(v4(&ep), 80), "r");
    let host_ip: IpAddr = HOST_IP.parse().unwrap();
    assert_eq!(tcp_get(&fh.outside.ns(), addr(host_ip, 8082)).unwrap(), "r");
    let out = fh.host.exec(&["nft", "flush", "ruleset"]);
    assert!(out.status.success());
    assert!(!fh.nft_list().contains("berth"));
    assert!(tcp_blocked(&fh.outside.ns(), addr(host_ip, 8082)));
    ctl.reload().await.unwrap();
    assert!(
        fh.nft_list().contains(&format!("{} . 80", v4(&ep))),
        "{}",
        fh.nft_list()
    );
    assert_eq!(tcp_get(&fh.outside.ns(), addr(host_ip, 8082)).unwrap(), "r");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_leaves_nothing_behind() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    let links_before = fh.host_links();
    ctl.create_network(
        NetworkConfig::builder("one", "bridge")
            .subnet("10.43.0.0/16".parse().unwrap())
            .build(),
    )
    .await
    .unwrap();
    let links_with_one = fh.host_links();
    let count = |kind: &str| {
        std::fs::read_dir(fh.state.path().join(kind))
            .unwrap()
            .count()
    };

    // Overlapping subnets.
    let err = ctl
        .create_network(
            NetworkConfig::builder("two", "bridge")
                .subnet("10.43.7.0/24".parse().unwrap())
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("overlaps 10.43.0.0/16"), "{err}");
    // A duplicate name.
    let err = ctl
        .create_network(NetworkConfig::builder("one", "bridge").build())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err}");
    // A gateway outside the subnet names the field.
    let err = ctl
        .create_network(
            NetworkConfig::builder("gw", "bridge")
                .pool(IpamPoolConfig {
                    subnet: Some("10.44.0.0/24".parse().unwrap()),
                    gateway: Some("10.45.0.1".parse().unwrap()),
                    ..Default::default()
                })
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ipv4[0].gateway"), "{err}");
    // A bad option names the option.
    let err = ctl
        .create_network(
            NetworkConfig::builder("opt", "bridge")
                .option("icc", "maybe")
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("options.icc"), "{err}");
    // An unknown driver.
    let err = ctl
        .create_network(NetworkConfig::builder("x", "nosuch").build())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");
    assert_eq!(
        fh.host_links(),
        links_with_one,
        "failed creations leave no links"
    );
    assert_eq!(count("networks"), 1);

    // An exhausted pool: a /30 holds a gateway and one endpoint.
    ctl.create_network(
        NetworkConfig::builder("tiny", "bridge")
            .subnet("10.46.0.0/30".parse().unwrap())
            .build(),
    )
    .await
    .unwrap();
    let s = ctl.create_sandbox(SandboxConfig::new("s")).await.unwrap();
    ctl.attach("tiny", &s.id, EndpointConfig::builder("first").build())
        .await
        .unwrap();
    let err = ctl
        .attach("tiny", &s.id, EndpointConfig::builder("second").build())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exhausted(_)), "{err}");
    // A duplicate endpoint name on one network.
    let err = ctl
        .create_endpoint("tiny", EndpointConfig::builder("first").build())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err}");
    // A port already taken.
    let ep = ctl
        .attach(
            "one",
            &s.id,
            EndpointConfig::builder("p1")
                .port(PortMapping::new(Proto::Udp, 5353, 53))
                .build(),
        )
        .await
        .unwrap();
    let endpoints_before = count("endpoints");
    let err = ctl
        .attach(
            "one",
            &s.id,
            EndpointConfig::builder("p2")
                .port(PortMapping::new(Proto::Udp, 5353, 53))
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("udp/5353"), "{err}");
    assert_eq!(
        count("endpoints"),
        endpoints_before,
        "the failed endpoint is not persisted"
    );
    // A missing sandbox namespace and a missing sandbox.
    let err = ctl
        .create_sandbox(SandboxConfig::new("ghost").netns_path("/run/netns/berth-no-such-ns"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("berth-no-such-ns"), "{err}");
    let spare = ctl
        .create_endpoint("one", EndpointConfig::builder("spare").build())
        .await
        .unwrap();
    let err = ctl.join(&spare.id, "no-such-sandbox").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: "sandbox",
                ..
            }
        ),
        "{err}"
    );
    // A network with endpoints cannot go.
    let err = ctl.delete_network("one").await.unwrap_err();
    assert!(matches!(err, Error::InUse(_)), "{err}");

    // Tear everything down: nothing is left.
    ctl.delete_endpoint(&spare.id).await.unwrap();
    ctl.delete_sandbox(&s.id).await.unwrap();
    for ep in [ep.id.clone()] {
        ctl.delete_endpoint(&ep).await.unwrap();
    }
    for net in ctl.networks().await {
        for e in std::fs::read_dir(fh.state.path().join("endpoints"))
            .unwrap()
            .flatten()
        {
            let info: libnetwork::EndpointInfo =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            if info.network_id == net.id {
                ctl.delete_endpoint(&info.id).await.unwrap();
            }
        }
        ctl.delete_network(&net.id).await.unwrap();
    }
    ctl.settle().await;
    assert_eq!(fh.host_links(), links_before);
    assert_eq!(
        (
            count("networks"),
            count("endpoints"),
            count("sandboxes"),
            count("netns")
        ),
        (0, 0, 0, 0)
    );
}
