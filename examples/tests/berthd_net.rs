//! berthd networking through the real docker CLI, in a fake host
//! namespace (see tests/common/netns.rs: the real host's network is never
//! touched).

mod common;

use common::netns::{start_net as start, NetDaemon, HOST_IP};

const HTTPD: &str =
    "mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn published_port_serves_from_fake_host_and_inspect_shows_network() {
    let Some(d) = start() else { return };
    d.ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sh", "-c", HTTPD,
    ]);
    let url = format!("http://{HOST_IP}:8080/");
    assert_eq!(d.fetch(&d.outside, &url), "hello-berth\n", "from outside");
    assert_eq!(
        d.fetch(&d.fake_host, &url),
        "hello-berth\n",
        "from the host"
    );
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:8080/"),
        "hello-berth\n",
        "from the host's loopback"
    );
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
        "web",
    ]);
    assert!(ip.starts_with("172.17."), "{ip}");
    assert!(ip.trim_end().ends_with(" bridge"), "{ip}");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains("web 0.0.0.0:8080->80/tcp"), "{ps}");
    let ports = d.ok(&["port", "web"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:8080"), "{ports}");
    // The bridge and the table live in the fake host only.
    let links = d.fake_host.exec(&["ip", "-o", "link", "show", "berth0"]);
    assert!(links.status.success(), "no berth0 in the fake host");
    // A taken port is refused and leaves nothing behind.
    let out = d.docker(&["run", "-d", "-p", "8080:80", "busybox", "true"]);
    assert_ne!(out.code, 0);
    assert_eq!(d.ok(&["ps", "-a", "-q"]).lines().count(), 1);
    // /etc/hosts and resolv.conf as Docker writes them.
    let out = d.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        out.contains("\tbox\n") && out.contains("localhost"),
        "{out}"
    );
    // --network none: loopback only.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    // --network host: the fake host's namespace (never berthd's own),
    // with the host's hosts and resolv.conf files.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "extra:10.5.5.5",
        "busybox",
        "sh",
        "-c",
        "ip -o link; cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(
        out.contains(": uplink") && out.contains(": berth0"),
        "{out}"
    );
    assert!(out.contains("10.5.5.5\textra\n"), "{out}");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if let Some(ns) = host_resolv.lines().find(|l| l.starts_with("nameserver")) {
        assert!(out.contains(ns), "{out}");
    }
    // -p CONTAINER: a free host port from the ephemeral range.
    d.ok(&[
        "run", "-d", "--name", "eph", "-p", "80", "busybox", "sh", "-c", HTTPD,
    ]);
    let port = d.ok(&["port", "eph", "80"]);
    assert_eq!(port.lines().next(), Some("0.0.0.0:32768"), "{port}");
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:32768/"),
        "hello-berth\n"
    );
    // A stopped container frees its port; started again, it takes it back.
    d.ok(&["stop", "-t", "1", "web"]);
    d.ok(&[
        "run", "-d", "--name", "web2", "-p", "8080:80", "busybox", "sh", "-c", HTTPD,
    ]);
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:8080/"),
        "hello-berth\n"
    );
    let out = d.docker(&["start", "web"]);
    assert_ne!(out.code, 0, "web started with its port taken");
    d.ok(&["rm", "-f", "web2"]);
    d.ok(&["start", "web"]);
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:8080/"),
        "hello-berth\n"
    );
    d.ok(&["rm", "-f", "web", "eph"]);
    let sandboxes = std::fs::read_dir(d.dir.path().join("root/network/netns"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(sandboxes, 0, "sandbox namespaces left after rm");
}

#[test]
fn user_network_dns_connect_disconnect_and_rm() {
    let Some(mut d) = start() else { return };
    d.ok(&["network", "create", "appnet"]);
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(
        ls.contains("bridge bridge") && ls.contains("appnet bridge"),
        "{ls}"
    );
    let out = d.docker(&["network", "create", "appnet"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);

    d.ok(&[
        "run",
        "-d",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        "--name",
        "srv",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let fetch = "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://srv/ && exit 0; sleep 0.3; done; exit 1";
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        fetch,
    ]);
    assert_eq!(out, "hello-berth\n");
    let by_alias = fetch.replace("http://srv/", "http://www/");
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        &by_alias,
    ]);
    assert_eq!(out, "hello-berth\n", "--network-alias");
    let resolv = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");

    // A container on the default bridge joins appnet and is found by name.
    d.ok(&["run", "-d", "--name", "late", "busybox", "sleep", "60"]);
    d.ok(&["network", "connect", "appnet", "late"]);
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "late",
    ]);
    assert_eq!(nets.trim(), "appnet bridge");
    let ping = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "ping",
        "-c1",
        "-W2",
        "late",
    ]);
    assert_eq!(ping.code, 0, "{} {}", ping.stdout, ping.stderr);
    let inspect = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]);
    assert!(
        inspect.contains("srv") && inspect.contains("late"),
        "{inspect}"
    );
    d.ok(&["network", "disconnect", "appnet", "late"]);
    let ping = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "ping",
        "-c1",
        "-W1",
        "late",
    ]);
    assert_ne!(ping.code, 0, "late still reachable after disconnect");

    let out = d.docker(&["network", "rm", "appnet"]);
    assert_ne!(out.code, 0, "removed a network in use");
    assert!(out.stderr.contains("active endpoints"), "{}", out.stderr);
    d.ok(&["rm", "-f", "srv", "late"]);
    // Networks survive a daemon restart.
    d.stop();
    d.spawn();
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.contains("appnet") && ls.contains("bridge"), "{ls}");
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(out.contains("127.0.0.11"), "{out}");
    d.ok(&["network", "rm", "appnet"]);
    assert!(!d.ok(&["network", "ls"]).contains("appnet"));
    let out = d.docker(&["network", "rm", "bridge"]);
    assert_ne!(out.code, 0);
    let out = d.docker(&["run", "--rm", "--network", "nope", "busybox", "true"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("network nope not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn publish_all_static_ips_and_hosts_follow_connect() {
    let Some(d) = start() else { return };
    // -P: the image's ExposedPorts and --expose, each on a free host port.
    let img = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}}",
        "busybox",
    ]);
    assert!(!img.contains("/tcp"), "the test image exposes {img}");
    d.ok(&[
        "run", "-d", "--name", "pall", "-P", "--expose", "80", "--expose", "81/udp", "busybox",
        "sh", "-c", HTTPD,
    ]);
    let ports = d.ok(&["port", "pall"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:32768"), "{ports}");
    assert!(ports.contains("81/udp -> 0.0.0.0:32768"), "{ports}");
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:32768/"),
        "hello-berth\n"
    );
    // An image that exposes ports: -P publishes them too.
    let rootfs = d.dir.path().join("rootfs.tar");
    examples::images::write_busybox_rootfs_tar_file(&rootfs).unwrap();
    d.ok(&[
        "import",
        "-c",
        "EXPOSE 90",
        "-c",
        "CMD [\"sh\"]",
        rootfs.to_str().unwrap(),
        "exposing",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pimg",
        "-P",
        "exposing",
        "sh",
        "-c",
        "mkdir /www && echo from-image > /www/index.html && exec httpd -f -p 90 -h /www",
    ]);
    let port = d.ok(&["port", "pimg", "90"]);
    let url = format!(
        "http://127.0.0.1:{}/",
        port.trim().rsplit(':').next().unwrap()
    );
    assert_eq!(d.fetch(&d.fake_host, &url), "from-image\n", "{port}");
    d.ok(&["rm", "-f", "pimg"]);
    let exposed = d.ok(&["inspect", "-f", "{{json .Config.ExposedPorts}}", "pall"]);
    assert!(
        exposed.contains("80/tcp") && exposed.contains("81/udp"),
        "{exposed}"
    );

    // --ip on a user network with a subnet; Docker's errors elsewhere.
    d.ok(&["network", "create", "--subnet", "10.77.0.0/24", "fixed"]);
    d.ok(&["network", "create", "auto"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pinned",
        "--network",
        "fixed",
        "--ip",
        "10.77.0.50",
        "--hostname",
        "pin",
        "busybox",
        "sleep",
        "60",
    ]);
    let addr = d.ok(&[
        "exec",
        "pinned",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'",
    ]);
    assert_eq!(addr.trim(), "10.77.0.50/24");
    let hosts = d.ok(&["exec", "pinned", "cat", "/etc/hosts"]);
    assert!(hosts.ends_with("10.77.0.50\tpin\n"), "{hosts}");
    d.fails(
        &[
            "run",
            "--rm",
            "--network",
            "fixed",
            "--ip",
            "10.77.0.50",
            "busybox",
            "true",
        ],
        "Address already in use",
    );
    d.fails(
        &["run", "--rm", "--ip", "172.17.0.50", "busybox", "true"],
        "user specified IP address is supported on user defined networks only",
    );
    d.fails(
        &[
            "run",
            "--rm",
            "--network",
            "fixed",
            "--ip",
            "10.80.0.5",
            "busybox",
            "true",
        ],
        "no configured subnet or ip-range contain the IP address 10.80.0.5",
    );
    d.fails(
        &["run", "--rm", "--network", "auto", "--ip", "172.18.0.50", "busybox", "true"],
        "user specified IP address is supported only when connecting to networks with user configured subnets",
    );

    // connect --ip: the new address is in the container's /etc/hosts at
    // once; disconnect takes it out.
    d.ok(&["network", "connect", "--ip", "10.77.0.60", "fixed", "pall"]);
    let hosts = d.ok(&["exec", "pall", "cat", "/etc/hosts"]);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "pall"]);
    assert!(
        hosts.contains(&format!("10.77.0.60\t{}\n", &id[..12])),
        "{hosts}"
    );
    let ping = d.docker(&["exec", "pinned", "ping", "-c1", "-W2", "pall"]);
    assert_eq!(ping.code, 0, "{}{}", ping.stdout, ping.stderr);
    d.fails(
        &["network", "connect", "fixed", "pall"],
        "already exists in network fixed",
    );
    d.ok(&["network", "disconnect", "fixed", "pall"]);
    let hosts = d.ok(&["exec", "pall", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("10.77.0.60"), "{hosts}");
    d.fails(
        &["network", "connect", "nonet", "pall"],
        "network nonet not found",
    );

    // --network container:NAME shares the namespace and the files.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:pinned",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'; cat /etc/hosts",
    ]);
    assert!(out.starts_with("10.77.0.50/24\n"), "{out}");
    assert!(out.ends_with("10.77.0.50\tpin\n"), "{out}");
    d.fails(
        &[
            "run",
            "--rm",
            "--network",
            "container:nosuch",
            "busybox",
            "true",
        ],
        "No such container: nosuch",
    );
    for (flag, value, conflict) in [
        ("--hostname", "h", "hostname"),
        ("-p", "80", "port publishing"),
        ("--add-host", "a:10.0.0.1", "custom host-to-IP mapping"),
        ("--dns", "10.0.0.1", "dns"),
    ] {
        d.fails(
            &[
                "run",
                "--rm",
                "--network",
                "container:pinned",
                flag,
                value,
                "busybox",
                "true",
            ],
            &format!("conflicting options: {conflict}"),
        );
    }
    // Started later, a joiner needs its target running, as Docker's.
    d.ok(&[
        "create",
        "--name",
        "joiner",
        "--network",
        "container:pinned",
        "busybox",
        "sleep",
        "60",
    ]);
    d.ok(&["stop", "-t", "0", "pinned"]);
    d.fails(
        &["start", "joiner"],
        "cannot join network of a non running container: pinned",
    );
    d.ok(&["start", "pinned", "joiner"]);
    let addr = d.ok(&[
        "exec",
        "joiner",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'",
    ]);
    assert_eq!(addr.trim(), "10.77.0.50/24");
    d.ok(&["rm", "-f", "joiner"]);
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    d.fails(
        &[
            "run",
            "--rm",
            "--network",
            "container:idle",
            "busybox",
            "true",
        ],
        "cannot join network of a non running container: idle",
    );
    d.ok(&["rm", "-f", "pall", "pinned", "idle"]);
    d.ok(&["network", "rm", "fixed", "auto"]);
    // --ip6 on a dual-stack network: both addresses, both in /etc/hosts.
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:77::/64",
        "--subnet",
        "10.78.0.0/24",
        "dual",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "dual",
        "--ip",
        "10.78.0.9",
        "--ip6",
        "fd00:77::50",
        "--hostname",
        "two",
        "busybox",
        "sh",
        "-c",
        "ip -o addr show eth0 | awk '{print $4}'; cat /etc/hosts",
    ]);
    assert!(
        out.contains("10.78.0.9/24\n") && out.contains("fd00:77::50/64\n"),
        "{out}"
    );
    assert!(
        out.contains("10.78.0.9\ttwo\n") && out.contains("fd00:77::50\ttwo\n"),
        "{out}"
    );
    d.ok(&["network", "rm", "dual"]);
}

#[test]
fn add_host_and_dns_options_shape_the_files() {
    let Some(d) = start() else { return };
    let out = d.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.local:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.99.0.1",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:3",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(out.contains("10.1.2.3\tdb.local\n"), "{out}");
    assert!(out.contains("172.17.0.1\tgw\n"), "{out}");
    assert!(out.contains("nameserver 10.99.0.1\n"), "{out}");
    assert!(!out.contains("nameserver 8.8.8.8"), "{out}");
    assert!(out.contains("search corp.example\n"), "{out}");
    assert!(out.contains("options ndots:3\n"), "{out}");
    // On a user network the embedded resolver stays the nameserver (it
    // forwards to --dns: libnetwork's SandboxConfig::dns_servers).
    d.ok(&["network", "create", "dnsnet"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "dnsnet",
        "--dns-search",
        "corp.example",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(out.contains("nameserver 127.0.0.11\n"), "{out}");
    assert!(out.contains("search corp.example\n"), "{out}");
    d.fails(
        &["run", "--rm", "--dns", "not-an-ip", "busybox", "true"],
        "not-an-ip",
    );
    d.ok(&["network", "rm", "dnsnet"]);
}

#[test]
fn networks_of_live_containers_survive_a_daemon_restart() {
    let Some(mut d) = start() else { return };
    d.ok(&["network", "create", "keep"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "--network",
        "keep",
        "-p",
        "8080:80",
        "--add-host",
        "db:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "keep",
        "busybox",
        "sleep",
        "60",
    ]);
    d.ok(&[
        "run", "-d", "--name", "parked", "-p", "8081:80", "busybox", "sleep", "60",
    ]);
    d.ok(&["stop", "-t", "0", "parked"]);
    let ip = |d: &NetDaemon, n: &str| {
        d.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            n,
        ])
    };
    let before = ip(&d, "live");
    assert!(before.starts_with("172."), "{before}");
    // berthd goes away; the containers keep running under their shims.
    d.stop();
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:8080/"),
        "hello-berth\n",
        "served while berthd is down"
    );
    d.spawn();
    assert_eq!(ip(&d, "live"), before, "inspect after the restart");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains("live 0.0.0.0:8080->80/tcp"), "{ps}");
    let net = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "keep",
    ]);
    assert!(net.contains("live"), "{net}");
    // Names still resolve, ports stay taken, connect still edits hosts.
    let fetch =
        "for i in 1 2 3 4 5; do wget -q -O - http://live/ && exit 0; sleep 0.3; done; exit 1";
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "keep",
            "busybox",
            "sh",
            "-c",
            fetch
        ]),
        "hello-berth\n"
    );
    d.fails(
        &["run", "--rm", "-p", "8080:80", "busybox", "true"],
        "port is already allocated",
    );
    d.ok(&["network", "connect", "bridge", "live"]);
    let hosts = d.ok(&["exec", "live", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.1.2.3\tdb\n"), "{hosts}");
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "live"]);
    let own = format!("\t{}\n", &id[..12]);
    assert_eq!(
        hosts.matches(&own).count(),
        2,
        "one line per network: {hosts}"
    );
    // Stopped and created containers join their networks at start.
    d.ok(&["start", "parked", "later"]);
    let ports = d.ok(&["port", "parked"]);
    assert!(ports.contains("0.0.0.0:8081"), "{ports}");
    assert!(ip(&d, "later").starts_with("172."), "later has no address");
    d.ok(&["rm", "-f", "live", "parked", "later"]);
    d.ok(&["network", "rm", "keep"]);
    let t = d.traces();
    assert!(t.sandboxes.is_empty() && t.containers.is_empty(), "{t:?}");
}
