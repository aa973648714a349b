//! berthd networking, third round, through the real docker CLI in a fake
//! host namespace (tests/common/netns.rs: the real host's network is never
//! touched): IPv6 on the default bridge (`--ipv6 --fixed-cidr-v6`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{fake_host, NamedNs, NetDaemon, HOST_IP};

const HTTPD: &str =
    "mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p 80 -h /www";
const SUBNET6: &str = "fd00:dead:beef::/64";
const HOST_IP6: &str = "fd99::1";
const OUTSIDE_IP6: &str = "fd99::2";

/// berthd on a fresh fake host with `extra` daemon flags, busybox loaded
/// (common::netns::start_net with flags; its Drop guard cleans up).
fn start_with(extra: &[&str]) -> Option<NetDaemon> {
    if !std::path::Path::new(common::DOCKER).is_file() {
        eprintln!("SKIP: no docker CLI at {}", common::DOCKER);
        return None;
    }
    let (fake_host, outside) = fake_host()?;
    let dir = tempfile::Builder::new()
        .prefix("berthd-net3")
        .tempdir()
        .unwrap();
    let host = format!("unix://{}", dir.path().join("s.sock").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_berthd"))
        .args(["--host", &host])
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .arg("--network-host-netns")
        .arg(fake_host.path())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let d = NetDaemon {
        child: Some(child),
        dir,
        host,
        fake_host,
        outside,
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "berthd said {line:?}");
    let archive = d.dir.path().join("busybox.tar");
    examples::images::write_busybox_image_archive(std::fs::File::create(&archive).unwrap())
        .unwrap();
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    Some(d)
}

/// `curl -g` from `ns`, retried for a few seconds while the server starts;
/// `None` when it never answered.
fn fetch(ns: &NamedNs, url: &str, patience: Duration) -> Option<String> {
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
fn bad_ipv6_daemon_flags_name_the_flag_and_berthd_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, want) in [
        (
            &["--ipv6", "--fixed-cidr-v6", "10.1.0.0/16"][..],
            "--fixed-cidr-v6: \"10.1.0.0/16\" is not an IPv6 subnet",
        ),
        (
            &["--ipv6", "--fixed-cidr-v6", "fd00::/129"][..],
            "--fixed-cidr-v6: ",
        ),
        (
            &["--ipv6"][..],
            "Specify an IPv6 subnet using --fixed-cidr-v6",
        ),
        (&["--fixed-cidr-v6", "fd00::/64"][..], "needs --ipv6"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--host")
            .arg(format!("unix://{}", dir.path().join("s.sock").display()))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .args(["--network-host-netns", "none"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} started");
        assert!(
            stderr.contains(want),
            "{flags:?}: want {want:?} in {stderr}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
    assert!(!dir.path().join("s.sock").exists());
}

#[test]
fn default_bridge_with_ipv6_reaches_containers_over_both_families() {
    let Some(d) = start_with(&["--ipv6", "--fixed-cidr-v6", SUBNET6]) else {
        return;
    };
    for (ns, cidr, dev) in [
        (&d.fake_host, format!("{HOST_IP6}/64"), "uplink"),
        (&d.outside, format!("{OUTSIDE_IP6}/64"), "eth0"),
    ] {
        common::netns::ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", dev, "nodad"]);
    }
    let net = d.ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ]);
    assert_eq!(net.trim(), format!("true 172.17.0.0/16 {SUBNET6}"));

    d.ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sh", "-c", HTTPD,
    ]);
    let v6 = d.ok(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.bridge.GlobalIPv6Address}}",
        "web",
    ]);
    let v6 = v6.trim().to_string();
    assert!(v6.starts_with("fd00:dead:beef::"), "{v6:?}");
    let patience = Duration::from_secs(10);
    // From the fake host straight to the container's IPv6 address.
    let direct = format!("http://[{v6}]/");
    assert_eq!(
        fetch(&d.fake_host, &direct, patience).as_deref(),
        Some("hello-berth\n"),
        "host to container over IPv6"
    );
    // From another container on the default bridge.
    let got = d.ok(&["run", "--rm", "busybox", "wget", "-q", "-O", "-", &direct]);
    assert_eq!(got, "hello-berth\n", "container to container over IPv6");
    let own = d.ok(&[
        "run", "--rm", "busybox", "ip", "-6", "-o", "addr", "show", "eth0",
    ]);
    assert!(own.contains("fd00:dead:beef::"), "{own}");
    // -p 8080:80 on the default bridge: both families from outside.
    for url in [
        format!("http://[{HOST_IP6}]:8080/"),
        format!("http://{HOST_IP}:8080/"),
    ] {
        assert_eq!(
            fetch(&d.outside, &url, patience).as_deref(),
            Some("hello-berth\n"),
            "{url} from outside"
        );
    }
    let ports = d.ok(&["port", "web"]);
    assert!(
        ports.contains("80/tcp -> 0.0.0.0:8080") && ports.contains("80/tcp -> [::]:8080"),
        "{ports}"
    );
    d.ok(&["rm", "-f", "web"]);
    let url = format!("http://[{HOST_IP6}]:8080/");
    assert_eq!(fetch(&d.outside, &url, Duration::ZERO), None, "withdrawn");
    // berthd again without the flags: the default bridge is IPv4 only.
    let mut d = d;
    d.stop();
    d.spawn();
    let net = d.ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ]);
    assert_eq!(net.trim(), "false 172.17.0.0/16");
    let own = d.ok(&[
        "run", "--rm", "busybox", "ip", "-6", "-o", "addr", "show", "eth0",
    ]);
    assert!(!own.contains("fd00:dead:beef::"), "{own}");
}

#[test]
fn link_to_a_stopped_target_is_checked_at_start_as_docker() {
    let Some(mut d) = start_with(&[]) else { return };
    // The target exists but has never run: create accepts the link.
    d.ok(&[
        "create",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "-e",
        "SECRET=s",
        "--expose",
        "80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let app = |name: &str, link: &str| {
        vec![
            "create".to_string(),
            "--name".into(),
            name.into(),
            "--link".into(),
            link.into(),
            "busybox".into(),
            "sh".into(),
            "-c".into(),
            "env > /tmp/env; exec sleep 60".into(),
        ]
    };
    let args = app("app", "db:d");
    d.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    d.fails(
        &["start", "app"],
        "Cannot link to a non running container: /db AS /app/d",
    );
    let state = d.ok(&["inspect", "--format", "{{.State.Status}}", "app"]);
    assert_eq!(state.trim(), "created");
    // Another one made while db is stopped, kept across a berthd restart.
    let args = app("app2", "db:d2");
    d.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    d.stop();
    d.spawn();
    d.ok(&["start", "db"]);
    let ip = d.ok(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.bridge.IPAddress}}",
        "db",
    ]);
    let ip = ip.trim().to_string();
    for (name, alias) in [("app", "d"), ("app2", "d2")] {
        d.ok(&["start", name]);
        let prefix = alias.to_uppercase();
        let deadline = Instant::now() + Duration::from_secs(5);
        let env = loop {
            let env = d.docker(&["exec", name, "cat", "/tmp/env"]).stdout;
            if !env.is_empty() || Instant::now() > deadline {
                break env;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for want in [
            format!("{prefix}_PORT_80_TCP_ADDR={ip}\n"),
            format!("{prefix}_NAME=/{name}/{alias}\n"),
            format!("{prefix}_ENV_SECRET=s\n"),
        ] {
            assert!(env.contains(&want), "{name}: {want:?} not in {env}");
        }
        let hosts = d.ok(&["exec", name, "cat", "/etc/hosts"]);
        assert!(
            hosts.contains(&format!("{ip}\t{alias} dbhost db\n")),
            "{name}: {hosts}"
        );
        let url = format!("http://{alias}/");
        let got = d.ok(&["exec", name, "wget", "-q", "-O", "-", &url]);
        assert_eq!(got, "hello-berth\n", "{name} reaches db by its alias");
    }
    // Stopped again: the next start is refused again.
    d.ok(&["stop", "-t", "0", "app", "db"]);
    d.fails(
        &["start", "app"],
        "Cannot link to a non running container: /db AS /app/d",
    );
    d.ok(&["rm", "-f", "app", "app2", "db"]);
}
