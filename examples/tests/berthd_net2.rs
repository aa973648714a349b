//! berthd networking follow-ups through the real docker CLI, in a fake
//! host namespace (tests/common/netns.rs: the real host's network is never
//! touched): `--mac-address`, IPv6 published ports and `--link`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{start_net as start, NamedNs, NetDaemon, HOST_IP};

const HTTPD: &str =
    "mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p 80 -h /www";

/// The fake host's and the outside's IPv6 addresses on the uplink.
const HOST_IP6: &str = "fd99::1";
const OUTSIDE_IP6: &str = "fd99::2";

/// `link/ether` of eth0 as the container sees it.
fn eth0_mac(d: &NetDaemon, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["busybox", "cat", "/sys/class/net/eth0/address"]);
    d.ok(&all).trim().to_string()
}

/// A raw API request over berthd's socket (what a client other than the
/// docker CLI could send): (HTTP status, body).
fn api(d: &NetDaemon, method: &str, path: &str, body: &str) -> (u16, String) {
    let sock = d.host.trim_start_matches("unix://");
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["--unix-socket", sock, "-X", method])
        .args(["-H", "Content-Type: application/json", "-d", body])
        .arg(format!("http://localhost/v1.44{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `curl -g` (literal IPv6 brackets) from `ns`, retried for a few seconds
/// while the server starts; `None` when it never answered.
fn fetch6(ns: &NamedNs, url: &str, patience: Duration) -> Option<String> {
    let deadline = Instant::now() + patience;
    loop {
        let out = ns.exec(&["curl", "-g", "-s", "-m", "2", url]);
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mac_address_is_the_containers_and_inspect_shows_it() {
    let Some(d) = start() else { return };
    let mac = "02:42:ac:11:00:99";
    assert_eq!(eth0_mac(&d, &["--mac-address", mac]), mac, "default bridge");
    d.ok(&["network", "create", "--subnet", "10.77.0.0/24", "macnet"]);
    assert_eq!(
        eth0_mac(
            &d,
            &["--network", "macnet", "--mac-address", "02:00:00:00:77:01"]
        ),
        "02:00:00:00:77:01",
        "user network"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--mac-address",
        mac,
        "busybox",
        "sleep",
        "300",
    ]);
    let shown = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.MacAddress}} {{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}",
        "m1",
    ]);
    assert_eq!(shown.trim(), format!("{mac} {mac}"));
    let net = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.MacAddress}}{{end}}",
        "bridge",
    ]);
    assert_eq!(net.trim(), mac);
    // A restart joins again with the same address.
    d.ok(&["restart", "-t", "0", "m1"]);
    let inside = d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(inside.trim(), mac);
    // Without --mac-address: a generated one, and inspect tells which.
    d.ok(&["run", "-d", "--name", "m2", "busybox", "sleep", "300"]);
    let shown = d.ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", "m2"]);
    let inside = d.ok(&["exec", "m2", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(shown.trim(), inside.trim());
    assert_ne!(shown.trim(), mac);
    assert_eq!(shown.trim().len(), 17, "{shown}");
    d.ok(&["rm", "-f", "m1", "m2"]);

    // Bad addresses: the CLI's own check, the daemon's for other clients
    // (Docker's words, naming the value), and an address no interface can
    // have; none leaves anything behind.
    let before = d.traces();
    d.fails(
        &[
            "run",
            "--rm",
            "--mac-address",
            "02:42:zz:11:00:99",
            "busybox",
            "true",
        ],
        "02:42:zz:11:00:99",
    );
    let (code, body) = api(
        &d,
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"NetworkingConfig":{"EndpointsConfig":{"bridge":{"MacAddress":"02:42:zz:11:00:99"}}}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid MAC address 02:42:zz:11:00:99"),
        "{body}"
    );
    let (code, body) = api(
        &d,
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"MacAddress":"nope"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid MAC address nope"), "{body}");
    d.fails(
        &[
            "run",
            "--rm",
            "--mac-address",
            "01:00:5e:00:00:01",
            "busybox",
            "true",
        ],
        "multicast",
    );
    assert_eq!(d.traces(), before);
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
    d.ok(&["network", "rm", "macnet"]);
}

#[test]
fn ipv6_and_per_address_published_ports_serve_from_outside() {
    let Some(d) = start() else { return };
    // IPv6 on the uplink between the outside and the fake host.
    for (ns, cidr, dev) in [
        (&d.fake_host, format!("{HOST_IP6}/64"), "uplink"),
        (&d.outside, format!("{OUTSIDE_IP6}/64"), "eth0"),
    ] {
        common::netns::ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", dev, "nodad"]);
    }
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:88::/64",
        "--subnet",
        "10.88.0.0/24",
        "v6net",
    ]);
    // -p 8080:80 on a dual-stack network: both families.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "w6",
        "--network",
        "v6net",
        "-p",
        "8080:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let patience = Duration::from_secs(10);
    let v6 = format!("http://[{HOST_IP6}]:8080/");
    let v4 = format!("http://{HOST_IP}:8080/");
    assert_eq!(
        fetch6(&d.outside, &v6, patience).as_deref(),
        Some("hello-berth\n"),
        "IPv6 from outside"
    );
    assert_eq!(
        fetch6(&d.outside, &v4, patience).as_deref(),
        Some("hello-berth\n"),
        "IPv4 from outside"
    );
    assert_eq!(
        fetch6(&d.fake_host, &v6, patience).as_deref(),
        Some("hello-berth\n"),
        "IPv6 from the host"
    );
    let ports = d.ok(&["port", "w6"]);
    assert!(
        ports.contains("80/tcp -> 0.0.0.0:8080") && ports.contains("80/tcp -> [::]:8080"),
        "{ports}"
    );
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains("[::]:8080->80/tcp"), "{ps}");
    // -p [::]:8081:80: IPv6 only.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "w6only",
        "--network",
        "v6net",
        "-p",
        "[::]:8081:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let url = format!("http://[{HOST_IP6}]:8081/");
    assert_eq!(
        fetch6(&d.outside, &url, patience).as_deref(),
        Some("hello-berth\n"),
        "[::] from outside"
    );
    let url4 = format!("http://{HOST_IP}:8081/");
    assert_eq!(fetch6(&d.outside, &url4, Duration::ZERO), None, "not IPv4");
    let ports = d.ok(&["port", "w6only"]);
    assert_eq!(ports.trim(), "80/tcp -> [::]:8081");
    // Stopping withdraws the IPv6 rules with the rest.
    d.ok(&["rm", "-f", "w6", "w6only"]);
    assert_eq!(fetch6(&d.outside, &v6, Duration::ZERO), None, "withdrawn");
    d.ok(&["network", "rm", "v6net"]);

    // An IPv6 host address on a network without IPv6: refused (berthd has
    // no userland proxy), leaving nothing.
    let before = d.traces();
    d.fails(
        &["run", "-d", "-p", "[::]:8082:80", "busybox", "true"],
        "Cannot map from IPv6 [::]:8082 to an IPv4-only container",
    );
    d.fails(
        &["run", "-d", "-p", "[::1]:8082:80", "busybox", "true"],
        "network bridge has no IPv6 subnet",
    );
    assert_eq!(d.traces(), before);
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");

    // Two containers publish one port on different host addresses.
    let on = |addr: &str| format!("{addr}:8090:80");
    let (lo, up) = (on("127.0.0.1"), on(HOST_IP));
    d.ok(&[
        "run", "-d", "--name", "lo", "-p", &lo, "busybox", "sh", "-c", HTTPD,
    ]);
    let other = "mkdir -p /www && echo other > /www/index.html && exec httpd -f -p 80 -h /www";
    d.ok(&[
        "run", "-d", "--name", "up", "-p", &up, "busybox", "sh", "-c", other,
    ]);
    let url = format!("http://{HOST_IP}:8090/");
    assert_eq!(
        fetch6(&d.outside, &url, patience).as_deref(),
        Some("other\n")
    );
    assert_eq!(
        fetch6(&d.fake_host, "http://127.0.0.1:8090/", patience).as_deref(),
        Some("hello-berth\n")
    );
    d.fails(
        &["run", "-d", "-p", "8090:80", "busybox", "true"],
        "port is already allocated",
    );
    d.ok(&["rm", "-f", "lo", "up"]);
}

#[test]
fn links_name_the_target_in_hosts_and_environment() {
    let Some(d) = start() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "-e",
        "POSTGRES_USER=app",
        "--expose",
        "5432",
        "busybox",
        "sleep",
        "300",
    ]);
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"]);
    let ip = ip.trim();
    let out = d.ok(&[
        "run",
        "--rm",
        "--name",
        "web",
        "--link",
        "db:webdb",
        "-e",
        "WEBDB_ENV_POSTGRES_USER=mine",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; env; echo ---; ping -c 1 -W 2 webdb >/dev/null && echo reached",
    ]);
    let (hosts, rest) = out.split_once("---\n").unwrap();
    let (env, ping) = rest.split_once("---\n").unwrap();
    assert!(
        hosts.contains(&format!("{ip}\twebdb dbhost db\n")),
        "{hosts}"
    );
    let env: Vec<&str> = env.lines().collect();
    for want in [
        format!("WEBDB_PORT=tcp://{ip}:5432"),
        format!("WEBDB_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("WEBDB_PORT_5432_TCP_ADDR={ip}"),
        "WEBDB_PORT_5432_TCP_PORT=5432".into(),
        "WEBDB_PORT_5432_TCP_PROTO=tcp".into(),
        "WEBDB_NAME=/web/webdb".into(),
        // The container's own -e wins over the link's variable.
        "WEBDB_ENV_POSTGRES_USER=mine".into(),
    ] {
        assert!(env.contains(&want.as_str()), "{want} not in {env:?}");
    }
    assert!(
        !env.iter().any(|e| e.starts_with("WEBDB_ENV_PATH=")),
        "{env:?}"
    );
    assert_eq!(ping, "reached\n", "the alias resolves and answers");
    // Without an alias: the name and the hostname.
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--link",
        "db",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.contains(&format!("{ip}\tdb dbhost\n")), "{hosts}");

    // The target restarts with another address: the linking container's
    // /etc/hosts follows.
    d.ok(&[
        "run", "-d", "--name", "app", "--link", "db:d", "busybox", "sleep", "300",
    ]);
    d.ok(&["restart", "-t", "0", "db"]);
    let moved = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"]);
    let moved = moved.trim();
    assert_ne!(
        moved, ip,
        "the bridge's IPAM hands out addresses round robin"
    );
    let hosts = d.ok(&["exec", "app", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{moved}\td dbhost db\n")),
        "{hosts}"
    );
    assert!(!hosts.contains(&format!("{ip}\t")), "{hosts}");
    // As Docker, links are checked at every start: not while the target
    // is stopped; once it runs again, with its new address.
    d.ok(&["stop", "-t", "0", "app", "db"]);
    d.fails(
        &["start", "app"],
        "Cannot link to a non running container: /db AS /app/d",
    );
    d.ok(&["start", "db"]);
    d.ok(&["start", "app"]);
    let now = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"]);
    let hosts = d.ok(&["exec", "app", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{}\td dbhost db\n", now.trim())),
        "{hosts}"
    );
    d.ok(&["rm", "-f", "app"]);

    // On a user-defined network a link is a name only the linking
    // container's resolver answers (no hosts line, no variables).
    d.ok(&["network", "create", "--subnet", "10.79.0.0/24", "linknet"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "udb",
        "--network",
        "linknet",
        "busybox",
        "sleep",
        "300",
    ]);
    let probe = "ping -c 1 -W 2 store >/dev/null 2>&1 && echo reached || echo unknown; \
                 grep -c store /etc/hosts; env | grep -c ^STORE_; true";
    let linked = d.ok(&[
        "run",
        "--rm",
        "--network",
        "linknet",
        "--link",
        "udb:store",
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    assert_eq!(linked, "reached\n0\n0\n");
    let unlinked = d.ok(&[
        "run",
        "--rm",
        "--network",
        "linknet",
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    assert_eq!(
        unlinked, "unknown\n0\n0\n",
        "other containers do not see it"
    );
    // network connect --link: the same, for the connected container (one
    // made on a user-defined network, so it uses the embedded resolver).
    d.ok(&["network", "create", "--subnet", "10.80.0.0/24", "other"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "u2",
        "--network",
        "other",
        "busybox",
        "sleep",
        "300",
    ]);
    d.fails(
        &["network", "connect", "--link", "gone:x", "linknet", "u2"],
        "could not get container for gone",
    );
    d.fails(
        &["network", "connect", "--link", "db:x", "bridge", "udb"],
        "only supported on user-defined networks",
    );
    d.ok(&["network", "connect", "--link", "udb:cache", "linknet", "u2"]);
    let out = d.ok(&[
        "exec",
        "u2",
        "sh",
        "-c",
        "ping -c 1 -W 2 cache >/dev/null && echo reached",
    ]);
    assert_eq!(out, "reached\n");
    d.ok(&["rm", "-f", "u2"]);
    d.ok(&["network", "rm", "other"]);
    d.ok(&["rm", "-f", "udb"]);

    // Refusals, each leaving nothing behind.
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let before = d.traces();
    d.fails(
        &["run", "--rm", "--link", "nope:x", "busybox", "true"],
        "could not get container for nope",
    );
    d.fails(
        &[
            "run", "--rm", "--name", "w2", "--link", "idle", "busybox", "true",
        ],
        "Cannot link to a non running container: /idle AS /w2/idle",
    );
    d.fails(
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "--link",
            "db",
            "busybox",
            "true",
        ],
        "host type networking can't be used with links",
    );
    d.fails(
        &[
            "run",
            "--rm",
            "--network",
            "linknet",
            "--link",
            "gone:x",
            "busybox",
            "true",
        ],
        "could not get container for gone",
    );
    assert_eq!(d.traces(), before);
    d.ok(&["rm", "-f", "db", "idle"]);
    d.ok(&["network", "rm", "linknet"]);
}
