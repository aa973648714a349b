//! Root tests of the bridge driver, each in its own fake host.

mod common;

use std::net::IpAddr;

use common::*;
use hickory_proto::rr::RecordType;
use libnetwork::{EndpointConfig, NetworkConfig, PortMapping, Proto, SandboxConfig};

fn v4(ep: &libnetwork::EndpointInfo) -> IpAddr {
    ep.addresses
        .iter()
        .find(|a| a.addr().is_ipv4())
        .unwrap()
        .addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_talk_and_resolve_each_other() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    let net = ctl
        .create_network(NetworkConfig::builder("front", "bridge").build())
        .await
        .unwrap();
    assert_eq!(net.subnets[0].subnet.to_string(), "172.17.0.0/16");
    let a = ctl.create_sandbox(SandboxConfig::new("a")).await.unwrap();
    let b = ctl.create_sandbox(SandboxConfig::new("b")).await.unwrap();
    let ea = ctl
        .attach("front", &a.id, EndpointConfig::builder("alpha").build())
        .await
        .unwrap();
    let eb = ctl
        .attach(
            "front",
            &b.id,
            EndpointConfig::builder("beta").alias("db").build(),
        )
        .await
        .unwrap();
    assert_eq!(ea.ifname.as_deref(), Some("eth0"));
    let (na, nb) = (ns_of(&a.netns_path), ns_of(&b.netns_path));
    assert!(
        ping(&a.netns_path, v4(&eb)),
        "ICMP echo between the sandboxes"
    );
    serve_tcp(&nb, addr(v4(&eb), 7000), "hello from beta");
    assert_eq!(
        tcp_get(&na, addr(v4(&eb), 7000)).unwrap(),
        "hello from beta"
    );
    // Names and aliases resolve as soon as join returned.
    let (ans, _) = dns_query(&na, "beta", RecordType::A);
    assert_eq!(ans, vec![v4(&eb).to_string()]);
    let (ans, _) = dns_query(&na, "db.", RecordType::A);
    assert_eq!(ans, vec![v4(&eb).to_string()]);
    let (ans, _) = dns_query(&nb, "alpha", RecordType::A);
    assert_eq!(ans, vec![v4(&ea).to_string()]);
    let IpAddr::V4(b4) = v4(&eb) else {
        unreachable!()
    };
    let o = b4.octets();
    let (ans, _) = dns_query(
        &na,
        &format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]),
        RecordType::PTR,
    );
    assert_eq!(ans, vec!["beta.".to_string()]);
    // Unknown names go upstream; with none configured that is SERVFAIL.
    let (ans, rcode) = dns_query(&na, "nothing.example.", RecordType::A);
    assert!(ans.is_empty());
    assert_eq!(rcode, "ServFail");
    let resolv = std::fs::read_to_string(ctl.resolv_conf_path(&a.id)).unwrap();
    assert!(resolv.contains("nameserver 127.0.0.11"));
    // Leave: the name is gone and the address comes back to the pool.
    ctl.detach(&eb.id).await.unwrap();
    let (ans, _) = dns_query(&na, "beta", RecordType::A);
    assert!(ans.is_empty(), "{ans:?}");
    ctl.delete_sandbox(&b.id).await.unwrap();
    ctl.delete_sandbox(&a.id).await.unwrap();
    ctl.delete_endpoint(&ea.id).await.unwrap();
    ctl.settle().await;
    ctl.delete_network("front").await.unwrap();
    assert!(
        !fh.host_links()
            .iter()
            .any(|l| l.starts_with("br-") || l.starts_with("veth")),
        "{:?}",
        fh.host_links()
    );
    assert!(std::fs::read_dir(fh.state.path().join("netns"))
        .unwrap()
        .next()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_answer_from_host_outside_and_hairpin() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(
        NetworkConfig::builder("pub", "bridge")
            .subnet("10.40.0.0/24".parse().unwrap())
            .build(),
    )
    .await
    .unwrap();
    let sb = ctl.create_sandbox(SandboxConfig::new("web")).await.unwrap();
    let ep = ctl
        .attach(
            "pub",
            &sb.id,
            EndpointConfig::builder("web")
                .port(PortMapping::new(Proto::Tcp, 8080, 80))
                .port(PortMapping::new(Proto::Udp, 8053, 53))
                .port(PortMapping {
                    host_ip: Some(HOST_IP.parse().unwrap()),
                    ..PortMapping::new(Proto::Tcp, 8081, 80)
                })
                .port(PortMapping {
                    host_port_end: Some(9002),
                    ..PortMapping::new(Proto::Tcp, 9000, 7000)
                })
                .build(),
        )
        .await
        .unwrap();
    let ns = ns_of(&sb.netns_path);
    serve_tcp(&ns, addr(v4(&ep), 80), "web");
    serve_tcp(&ns, addr(v4(&ep), 7001), "range");
    let host_ip: IpAddr = HOST_IP.parse().unwrap();
    assert_eq!(
        tcp_get(&fh.outside.ns(), addr(host_ip, 8080)).unwrap(),
        "web",
        "from the outside"
    );
    assert_eq!(
        tcp_get(&fh.host.ns(), addr(host_ip, 8080)).unwrap(),
        "web",
        "from the host"
    );
    assert_eq!(
        tcp_get(&fh.host.ns(), addr("127.0.0.1".parse().unwrap(), 8080)).unwrap(),
        "web",
        "from the host's loopback"
    );
    assert_eq!(
        tcp_get(&fh.outside.ns(), addr(host_ip, 9001)).unwrap(),
        "range",
        "port range"
    );
    assert_eq!(tcp_get(&ns, addr(host_ip, 8080)).unwrap(), "web", "hairpin");
    serve_udp(&ns, addr(v4(&ep), 53), "udp");
    assert_eq!(
        udp_get(&fh.outside.ns(), addr(host_ip, 8053)).unwrap(),
        "udp",
        "udp from the outside"
    );
    // The port is taken for everybody else.
    let other = ctl
        .create_sandbox(SandboxConfig::new("other"))
        .await
        .unwrap();
    let err = ctl
        .attach(
            "pub",
            &other.id,
            EndpointConfig::builder("other")
                .port(PortMapping::new(Proto::Tcp, 8080, 81))
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tcp/8080"), "{err}");
    // Leaving withdraws the rules at once.
    ctl.detach(&ep.id).await.unwrap();
    assert!(tcp_blocked(&fh.outside.ns(), addr(host_ip, 8080)));
    assert!(
        !fh.nft_list().contains(&v4(&ep).to_string()),
        "{}",
        fh.nft_list()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_network_has_no_way_out_and_networks_are_isolated() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(NetworkConfig::builder("open", "bridge").build())
        .await
        .unwrap();
    ctl.create_network(
        NetworkConfig::builder("closed", "bridge")
            .internal(true)
            .build(),
    )
    .await
    .unwrap();
    ctl.create_network(NetworkConfig::builder("other", "bridge").build())
        .await
        .unwrap();
    let s1 = ctl.create_sandbox(SandboxConfig::new("s1")).await.unwrap();
    let s2 = ctl.create_sandbox(SandboxConfig::new("s2")).await.unwrap();
    let s3 = ctl.create_sandbox(SandboxConfig::new("s3")).await.unwrap();
    let e1 = ctl
        .attach("open", &s1.id, EndpointConfig::builder("s1").build())
        .await
        .unwrap();
    let _e2 = ctl
        .attach("closed", &s2.id, EndpointConfig::builder("s2").build())
        .await
        .unwrap();
    let e3 = ctl
        .attach("other", &s3.id, EndpointConfig::builder("s3").build())
        .await
        .unwrap();
    let outside_ip: IpAddr = OUTSIDE_IP.parse().unwrap();
    serve_tcp(&fh.outside.ns(), addr(outside_ip, 5000), "outside");
    // An ordinary network gets out (masqueraded) ...
    assert_eq!(
        tcp_get(&ns_of(&s1.netns_path), addr(outside_ip, 5000)).unwrap(),
        "outside"
    );
    // ... an internal one does not.
    assert!(tcp_blocked(&ns_of(&s2.netns_path), addr(outside_ip, 5000)));
    // Two networks cannot reach each other.
    serve_tcp(&ns_of(&s3.netns_path), addr(v4(&e3), 6000), "s3");
    serve_tcp(&ns_of(&s1.netns_path), addr(v4(&e1), 6000), "s1");
    assert!(tcp_blocked(&ns_of(&s1.netns_path), addr(v4(&e3), 6000)));
    assert!(tcp_blocked(&ns_of(&s3.netns_path), addr(v4(&e1), 6000)));
    // And names of other networks are not visible.
    let (ans, _) = dns_query(&ns_of(&s1.netns_path), "s3", RecordType::A);
    assert!(ans.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_network_carries_ipv6_and_answers_aaaa() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    let net = ctl
        .create_network(
            NetworkConfig::builder("dual", "bridge")
                .subnet("10.41.0.0/24".parse().unwrap())
                .subnet("fd00:41::/64".parse().unwrap())
                .mtu(1400)
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(net.subnets.len(), 2);
    let a = ctl.create_sandbox(SandboxConfig::new("a6")).await.unwrap();
    let b = ctl.create_sandbox(SandboxConfig::new("b6")).await.unwrap();
    let _ea = ctl
        .attach("dual", &a.id, EndpointConfig::builder("a6").build())
        .await
        .unwrap();
    let eb = ctl
        .attach(
            "dual",
            &b.id,
            EndpointConfig::builder("b6")
                .ipv6("fd00:41::99".parse().unwrap())
                .build(),
        )
        .await
        .unwrap();
    let b6: IpAddr = "fd00:41::99".parse().unwrap();
    assert!(eb.addresses.iter().any(|a| a.addr() == b6));
    serve_tcp(&ns_of(&b.netns_path), addr(b6, 7100), "six");
    assert_eq!(
        tcp_get(&ns_of(&a.netns_path), addr(b6, 7100)).unwrap(),
        "six"
    );
    let (ans, _) = dns_query(&ns_of(&a.netns_path), "b6", RecordType::AAAA);
    assert_eq!(ans, vec!["fd00:41::99".to_string()]);
    // The MTU reached the sandbox's interface.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", a.netns_path.display()))
        .args(["ip", "-o", "link", "show", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("mtu 1400"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_forwarded_to_a_host_loopback_upstream() {
    if !is_root() {
        return;
    }
    let mut fh = FakeHost::new().await;
    // Stand-ins for systemd-resolved on 127.0.0.53 (the controller's
    // upstream) and for a `--dns` server on 127.0.0.54 inside the fake
    // host: unreachable from the sandbox, reachable from the host
    // namespace. Each answers every A query with its own address.
    for (bind, answer) in [
        ("127.0.0.53:53", "192.0.2.7"),
        ("127.0.0.54:53", "192.0.2.8"),
    ] {
        let upstream = fh
            .host
            .ns()
            .run(|| std::net::UdpSocket::bind(bind))
            .unwrap()
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = upstream.recv_from(&mut buf) {
                let q = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
                let mut r = hickory_proto::op::Message::response(q.metadata.id, q.metadata.op_code);
                let query = q.queries[0].clone();
                r.add_query(query.clone());
                r.add_answer(hickory_proto::rr::Record::from_rdata(
                    query.name().clone(),
                    60,
                    hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A(
                        answer.parse().unwrap(),
                    )),
                ));
                let _ = upstream.send_to(&r.to_vec().unwrap(), peer);
            }
        });
    }
    fh.ctl.take();
    fh.ctl = Some(
        libnetwork::Controller::new(
            fh.config()
                .dns_upstreams(vec!["127.0.0.53:53".parse().unwrap()]),
        )
        .await
        .unwrap(),
    );
    let ctl = fh.ctl();
    ctl.create_network(NetworkConfig::builder("fw", "bridge").build())
        .await
        .unwrap();
    let s = ctl.create_sandbox(SandboxConfig::new("q")).await.unwrap();
    ctl.attach("fw", &s.id, EndpointConfig::builder("q").build())
        .await
        .unwrap();
    let (ans, rcode) = dns_query(&ns_of(&s.netns_path), "www.example.test.", RecordType::A);
    assert_eq!(
        (ans, rcode.as_str()),
        (vec!["192.0.2.7".to_string()], "NoError")
    );
    // A sandbox with servers of its own forwards to them instead.
    let own = SandboxConfig::new("r").dns_servers(vec!["127.0.0.54".parse().unwrap()]);
    let r = ctl.create_sandbox(own).await.unwrap();
    ctl.attach("fw", &r.id, EndpointConfig::builder("r").build())
        .await
        .unwrap();
    let (ans, _) = dns_query(&ns_of(&r.netns_path), "www.example.test.", RecordType::A);
    assert_eq!(ans, vec!["192.0.2.8".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icc_off_keeps_neighbours_apart_but_lets_them_out() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    ctl.create_network(
        NetworkConfig::builder("noicc", "bridge")
            .option("icc", "false")
            .build(),
    )
    .await
    .unwrap();
    let a = ctl.create_sandbox(SandboxConfig::new("a")).await.unwrap();
    let b = ctl.create_sandbox(SandboxConfig::new("b")).await.unwrap();
    ctl.attach("noicc", &a.id, EndpointConfig::builder("a").build())
        .await
        .unwrap();
    let eb = ctl
        .attach("noicc", &b.id, EndpointConfig::builder("b").build())
        .await
        .unwrap();
    let outside_ip: IpAddr = OUTSIDE_IP.parse().unwrap();
    serve_tcp(&fh.outside.ns(), addr(outside_ip, 5001), "out");
    assert_eq!(
        tcp_get(&ns_of(&a.netns_path), addr(outside_ip, 5001)).unwrap(),
        "out"
    );
    serve_tcp(&ns_of(&b.netns_path), addr(v4(&eb), 6001), "b");
    assert!(tcp_blocked(&ns_of(&a.netns_path), addr(v4(&eb), 6001)));
}
