//! berthd networking through the real docker CLI.
//!
//! SAFETY: the real host's network is never touched. Each test makes a
//! fake host namespace (`ip netns add berthd-<pid>-<n>-host`) wired by a
//! veth to an "outside" namespace, and starts berthd with
//! `--network-host-netns /run/netns/<fake host>`: libnetwork creates the
//! bridge, veths and nftables table inside the fake host only. berthd
//! itself and the docker CLI stay outside (unix socket). The Drop guard
//! stops berthd, removes whatever it left, and deletes both namespaces
//! (and so every interface and nft table in them), also on failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/local/bin/docker";
const HOST_IP: &str = "10.99.0.1";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A namespace made with `ip netns add`, deleted on drop.
struct NamedNs {
    name: String,
}

impl NamedNs {
    fn new(tag: &str) -> NamedNs {
        let name = format!(
            "berthd-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]);
        let ns = NamedNs { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for NamedNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    host: String,
    // Dropped after the daemon (fields drop in order): the namespaces go
    // last, taking the bridge, veths and nft table with them.
    fake_host: NamedNs,
    outside: NamedNs,
}

fn start() -> Option<Daemon> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: berthd network tests need root (namespaces, netlink, nftables)");
        return None;
    }
    if !Path::new(DOCKER).is_file() {
        eprintln!("SKIP: no docker CLI at {DOCKER}");
        return None;
    }
    let fake_host = NamedNs::new("host");
    let outside = NamedNs::new("out");
    ip(&[
        "-n",
        &fake_host.name,
        "link",
        "add",
        "uplink",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &outside.name,
    ]);
    ip(&[
        "-n",
        &fake_host.name,
        "addr",
        "add",
        &format!("{HOST_IP}/24"),
        "dev",
        "uplink",
    ]);
    ip(&["-n", &fake_host.name, "link", "set", "uplink", "up"]);
    ip(&[
        "-n",
        &outside.name,
        "addr",
        "add",
        "10.99.0.2/24",
        "dev",
        "eth0",
    ]);
    ip(&["-n", &outside.name, "link", "set", "eth0", "up"]);
    let dir = tempfile::Builder::new()
        .prefix("berthd-net")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("s.sock");
    let host = format!("unix://{}", sock.display());
    let mut d = Daemon {
        child: None,
        dir,
        host,
        fake_host,
        outside,
    };
    d.spawn();
    let archive = d.dir.path().join("busybox.tar");
    examples::images::write_busybox_image_archive(std::fs::File::create(&archive).unwrap())
        .unwrap();
    let out = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.code, 0, "docker load: {}", out.stderr);
    Some(d)
}

impl Daemon {
    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--host")
            .arg(&self.host)
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .arg("--network-host-netns")
            .arg(self.fake_host.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on"), "berthd said {line:?}");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn docker(&self, args: &[&str]) -> Out {
        let mut child = Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("docker {args:?} timed out");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert_eq!(out.code, 0, "docker {args:?}: {}", out.stderr);
        out.stdout
    }

    /// `curl` from `ns` (the host's busybox wget crashes here), retried for a few seconds while the
    /// server starts.
    fn fetch(&self, ns: &NamedNs, url: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = ns.exec(&["curl", "-s", "-m", "2", url]);
            if out.status.success() || Instant::now() > deadline {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let run = self.dir.path().join("run");
        if let Ok(list) = libcontainer::Container::list(&run) {
            for c in list {
                let _ = c.delete(true);
            }
        }
        // Overlay rootfs and pinned sandbox namespaces berthd left.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        for m in mounts.lines().rev() {
            if let Some(target) = m.split(' ').nth(4) {
                if target.starts_with(&root) {
                    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

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
