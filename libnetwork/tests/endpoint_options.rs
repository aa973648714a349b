//! Root tests of endpoint options: MAC addresses (bridge, macvlan,
//! ipvlan) and IPv6 published ports, each in its own fake host.

mod common;

use std::net::IpAddr;

use common::*;
use libnetwork::{EndpointConfig, MacAddress, NetworkConfig, PortMapping, Proto, SandboxConfig};

/// The MAC address of `ifname` in the namespace at `path`.
fn mac_in(path: &std::path::Path, ifname: &str) -> String {
    // (sysfs shows the namespace of whoever mounted it: ask netlink.)
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(["ip", "-o", "link", "show", ifname])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether in {text}"))
        .to_string()
}

fn addr_of(ep: &libnetwork::EndpointInfo, v6: bool) -> IpAddr {
    ep.addresses
        .iter()
        .map(|a| a.addr())
        .find(|a| a.is_ipv6() == v6)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_addresses_are_set_at_birth_on_bridge_and_macvlan() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(NetworkConfig::builder("m", "bridge").build())
        .await
        .unwrap();
    let wanted: MacAddress = "02:42:ac:11:00:99".parse().unwrap();
    let a = ctl.create_sandbox(SandboxConfig::new("a")).await.unwrap();
    let ea = ctl
        .attach("m", &a.id, EndpointConfig::builder("a").mac(wanted).build())
        .await
        .unwrap();
    assert_eq!(mac_in(&a.netns_path, "eth0"), "02:42:ac:11:00:99");
    assert_eq!(ea.mac, Some(wanted));
    // Without one: a random locally administered unicast address, known
    // to the endpoint and persisted with it.
    let b = ctl.create_sandbox(SandboxConfig::new("b")).await.unwrap();
    let eb = ctl
        .attach("m", &b.id, EndpointConfig::builder("b").build())
        .await
        .unwrap();
    let got = eb.mac.expect("a generated MAC");
    assert_eq!(mac_in(&b.netns_path, "eth0"), got.to_string());
    assert_eq!(got.octets()[0] & 0x03, 0x02, "{got}");
    assert_eq!(ctl.endpoint(&eb.id).await.unwrap().mac, Some(got));
    // A group address is refused before anything is made.
    let before = ctl.endpoints().await.len();
    let err = ctl
        .create_endpoint(
            "m",
            EndpointConfig::builder("c")
                .mac("01:00:5e:00:00:01".parse::<MacAddress>().unwrap())
                .build(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("endpoint.mac") && err.contains("multicast"),
        "{err}"
    );
    assert_eq!(ctl.endpoints().await.len(), before);

    // macvlan on a veth parent in the fake host (no dummy driver needed).
    ip(&[
        "-n",
        &fh.host.name,
        "link",
        "add",
        "par0",
        "type",
        "veth",
        "peer",
        "name",
        "par0p",
    ]);
    ip(&["-n", &fh.host.name, "link", "set", "par0", "up"]);
    ip(&["-n", &fh.host.name, "link", "set", "par0p", "up"]);
    ctl.create_network(
        NetworkConfig::builder("mv", "macvlan")
            .subnet("10.60.0.0/24".parse().unwrap())
            .option("parent", "par0")
            .build(),
    )
    .await
    .unwrap();
    let c = ctl.create_sandbox(SandboxConfig::new("c")).await.unwrap();
    let mv: MacAddress = "02:00:00:00:60:01".parse().unwrap();
    let ec = ctl
        .attach("mv", &c.id, EndpointConfig::builder("c").mac(mv).build())
        .await
        .unwrap();
    assert_eq!(ec.mac, Some(mv));
    assert_eq!(mac_in(&c.netns_path, "eth0"), "02:00:00:00:60:01");
    // ipvlan interfaces have their parent's address: refused.
    ctl.create_network(
        NetworkConfig::builder("iv", "ipvlan")
            .subnet("10.61.0.0/24".parse().unwrap())
            .option("parent", "par0")
            .build(),
    )
    .await
    .unwrap();
    let err = ctl
        .create_endpoint("iv", EndpointConfig::builder("d").mac(mv).build())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("endpoint.mac") && err.contains("ipvlan"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_published_ports_reach_a_dual_stack_container() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    // IPv6 on the uplink between the outside and the fake host.
    ip(&[
        "-n",
        &fh.host.name,
        "addr",
        "add",
        "fd99::1/64",
        "dev",
        "uplink",
        "nodad",
    ]);
    ip(&[
        "-n",
        &fh.outside.name,
        "addr",
        "add",
        "fd99::2/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    let ctl = fh.ctl();
    ctl.create_network(
        NetworkConfig::builder("dual", "bridge")
            .subnet("10.62.0.0/24".parse().unwrap())
            .subnet("fd00:62::/64".parse().unwrap())
            .build(),
    )
    .await
    .unwrap();
    let sb = ctl.create_sandbox(SandboxConfig::new("web")).await.unwrap();
    let any6: IpAddr = "::".parse().unwrap();
    let any4: IpAddr = "0.0.0.0".parse().unwrap();
    let ep = ctl
        .attach(
            "dual",
            &sb.id,
            EndpointConfig::builder("web")
                // -p 8080:80: both families.
                .port(PortMapping::new(Proto::Tcp, 8080, 80))
                // -p [::]:8081:80 and -p 0.0.0.0:8081:81 on one endpoint.
                .port(PortMapping {
                    host_ip: Some(any6),
                    ..PortMapping::new(Proto::Tcp, 8081, 80)
                })
                .port(PortMapping {
                    host_ip: Some(any4),
                    ..PortMapping::new(Proto::Tcp, 8081, 81)
                })
                .build(),
        )
        .await
        .unwrap();
    let ns = ns_of(&sb.netns_path);
    let (c4, c6) = (addr_of(&ep, false), addr_of(&ep, true));
    serve_tcp(&ns, addr(c6, 80), "six");
    serve_tcp(&ns, addr(c4, 80), "four");
    serve_tcp(&ns, addr(c4, 81), "four-81");
    let host6: IpAddr = "fd99::1".parse().unwrap();
    let host4: IpAddr = HOST_IP.parse().unwrap();
    let out = fh.outside.ns();
    assert_eq!(tcp_get(&out, addr(host6, 8080)).unwrap(), "six", "v6 in");
    assert_eq!(tcp_get(&out, addr(host4, 8080)).unwrap(), "four", "v4 in");
    assert_eq!(
        tcp_get(&fh.host.ns(), addr(host6, 8080)).unwrap(),
        "six",
        "from the host itself"
    );
    assert_eq!(tcp_get(&out, addr(host6, 8081)).unwrap(), "six", "[::]");
    assert_eq!(tcp_get(&out, addr(host4, 8081)).unwrap(), "four-81");
    // Hairpin over IPv6: the container reaches its own published port.
    assert_eq!(tcp_get(&ns, addr(host6, 8080)).unwrap(), "six", "hairpin");
    // Leaving withdraws the IPv6 rules as well.
    ctl.detach(&ep.id).await.unwrap();
    assert!(tcp_blocked(&out, addr(host6, 8080)));
    assert!(tcp_blocked(&out, addr(host6, 8081)));
    let rules = fh.nft_list();
    assert!(!rules.contains(&format!("{c6} ")), "{rules}");

    // An IPv6 host address needs an IPv6 address on the endpoint, and
    // IPv6 loopback cannot be forwarded at all.
    ctl.create_network(
        NetworkConfig::builder("four", "bridge")
            .subnet("10.63.0.0/24".parse().unwrap())
            .build(),
    )
    .await
    .unwrap();
    let before = ctl.endpoints().await.len();
    for (net, host_ip, want) in [
        ("four", "::", "without an IPv6 address"),
        ("dual", "::1", "IPv6 loopback"),
    ] {
        let err = ctl
            .create_endpoint(
                net,
                EndpointConfig::builder("x")
                    .port(PortMapping {
                        host_ip: Some(host_ip.parse().unwrap()),
                        ..PortMapping::new(Proto::Tcp, 8090, 80)
                    })
                    .build(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ports[0].host_ip") && err.contains(want),
            "{err}"
        );
    }
    assert_eq!(ctl.endpoints().await.len(), before, "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_aliases_resolve_in_their_sandbox_only_and_follow_the_target() {
    if !is_root() {
        return;
    }
    use hickory_proto::rr::RecordType;
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(NetworkConfig::builder("u", "bridge").build())
        .await
        .unwrap();
    let db = ctl.create_sandbox(SandboxConfig::new("db")).await.unwrap();
    let web = ctl
        .create_sandbox(SandboxConfig::new("web").link("Database", "db"))
        .await
        .unwrap();
    let other = ctl.create_sandbox(SandboxConfig::new("o")).await.unwrap();
    let edb = ctl
        .attach("u", &db.id, EndpointConfig::builder("db").build())
        .await
        .unwrap();
    for (sb, name) in [(&web, "web"), (&other, "o")] {
        ctl.attach("u", &sb.id, EndpointConfig::builder(name).build())
            .await
            .unwrap();
    }
    let web_ns = ns_of(&web.netns_path);
    let (ans, _) = dns_query(&web_ns, "database", RecordType::A);
    assert_eq!(ans, vec![addr_of(&edb, false).to_string()]);
    let (ans, _) = dns_query(&ns_of(&other.netns_path), "database", RecordType::A);
    assert!(
        ans.is_empty(),
        "another sandbox does not see the alias: {ans:?}"
    );
    // The alias names the endpoint, not an address: it follows a re-join.
    ctl.detach(&edb.id).await.unwrap();
    let again = ctl
        .attach("u", &db.id, EndpointConfig::builder("db").build())
        .await
        .unwrap();
    assert_ne!(addr_of(&again, false), addr_of(&edb, false));
    let (ans, _) = dns_query(&web_ns, "database", RecordType::A);
    assert_eq!(ans, vec![addr_of(&again, false).to_string()]);
    // Added to a live sandbox (network connect --link), and persisted.
    let links = std::collections::BTreeMap::from([("store".to_string(), "db".to_string())]);
    let info = ctl.add_sandbox_links(&other.id, &links).await.unwrap();
    assert_eq!(info.config.links, links);
    let (ans, _) = dns_query(&ns_of(&other.netns_path), "store", RecordType::A);
    assert_eq!(ans, vec![addr_of(&again, false).to_string()]);
    assert_eq!(ctl.sandbox(&other.id).await.unwrap().config.links, links);
    assert!(ctl.add_sandbox_links("nope", &links).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_share_a_port_on_different_host_addresses() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    ip(&[
        "-n",
        &fh.host.name,
        "addr",
        "add",
        "fd99::1/64",
        "dev",
        "uplink",
        "nodad",
    ]);
    ip(&[
        "-n",
        &fh.outside.name,
        "addr",
        "add",
        "fd99::2/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    let ctl = fh.ctl();
    ctl.create_network(
        NetworkConfig::builder("share", "bridge")
            .subnet("10.64.0.0/24".parse().unwrap())
            .subnet("fd00:64::/64".parse().unwrap())
            .build(),
    )
    .await
    .unwrap();
    let on = |ip: &str, host_port: u16| PortMapping {
        host_ip: Some(ip.parse().unwrap()),
        ..PortMapping::new(Proto::Tcp, host_port, 80)
    };
    let sa = ctl.create_sandbox(SandboxConfig::new("a")).await.unwrap();
    let sb = ctl.create_sandbox(SandboxConfig::new("b")).await.unwrap();
    let ea = ctl
        .attach(
            "share",
            &sa.id,
            EndpointConfig::builder("a")
                .port(on("127.0.0.1", 8085))
                .port(on("0.0.0.0", 8086))
                .build(),
        )
        .await
        .unwrap();
    let eb = ctl
        .attach(
            "share",
            &sb.id,
            EndpointConfig::builder("b")
                .port(on(HOST_IP, 8085))
                .port(on("::", 8086))
                .build(),
        )
        .await
        .unwrap();
    serve_tcp(&ns_of(&sa.netns_path), addr(addr_of(&ea, false), 80), "a");
    serve_tcp(&ns_of(&sb.netns_path), addr(addr_of(&eb, false), 80), "b");
    serve_tcp(&ns_of(&sb.netns_path), addr(addr_of(&eb, true), 80), "b6");
    let (host4, host6): (IpAddr, IpAddr) = (HOST_IP.parse().unwrap(), "fd99::1".parse().unwrap());
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let out = fh.outside.ns();
    assert_eq!(tcp_get(&fh.host.ns(), addr(lo, 8085)).unwrap(), "a");
    assert_eq!(tcp_get(&out, addr(host4, 8085)).unwrap(), "b");
    assert_eq!(tcp_get(&out, addr(host4, 8086)).unwrap(), "a", "0.0.0.0");
    assert_eq!(tcp_get(&out, addr(host6, 8086)).unwrap(), "b6", "[::]");
    // Overlapping addresses still clash, naming the port.
    let sc = ctl.create_sandbox(SandboxConfig::new("c")).await.unwrap();
    for taken in [
        PortMapping::new(Proto::Tcp, 8085, 80),
        on(HOST_IP, 8085),
        on("::", 8086),
    ] {
        let err = ctl
            .attach(
                "share",
                &sc.id,
                EndpointConfig::builder("c").port(taken).build(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("tcp/808"), "{err}");
    }
    // One leaves; the other keeps the port.
    ctl.detach(&ea.id).await.unwrap();
    assert!(tcp_blocked(&fh.host.ns(), addr(lo, 8085)));
    assert_eq!(tcp_get(&out, addr(host4, 8085)).unwrap(), "b");
}
