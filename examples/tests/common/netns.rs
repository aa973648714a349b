//! berthd with networking, for berthd_net.rs and berthd_suite.rs.
//!
//! SAFETY: the real host's network is never touched. Each daemon gets a
//! fake host namespace (`ip netns add berthd-<pid>-<n>-host`) wired by a
//! veth to an "outside" namespace, and berthd runs with
//! `--network-host-netns /run/netns/<fake host>`: libnetwork creates the
//! bridge, veths and nftables table inside the fake host only. berthd
//! itself and the docker CLI stay outside (unix socket). The Drop guard
//! stops berthd, removes whatever it left, and deletes both namespaces
//! (and so every interface and nft table in them), also on failure.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Out, DOCKER};

/// The fake host's address on its uplink (reachable from `outside`).
pub const HOST_IP: &str = "10.99.0.1";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A namespace made with `ip netns add`, deleted on drop.
pub struct NamedNs {
    pub name: String,
}

impl NamedNs {
    pub fn new(tag: &str) -> NamedNs {
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

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    pub fn exec(&self, args: &[&str]) -> Output {
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

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct NetDaemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub host: String,
    // Dropped after the daemon (fields drop in order): the namespaces go
    // last, taking the bridge, veths and nft table with them.
    pub fake_host: NamedNs,
    pub outside: NamedNs,
}

/// The fake host wired to an outside namespace: `uplink` (HOST_IP) in
/// the host, `eth0` (10.99.0.2) outside. None (with a printed reason)
/// when not root.
pub fn fake_host() -> Option<(NamedNs, NamedNs)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: berthd network tests need root (namespaces, netlink, nftables)");
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
    let cidr = format!("{HOST_IP}/24");
    ip(&["-n", &fake_host.name, "addr", "add", &cidr, "dev", "uplink"]);
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
    Some((fake_host, outside))
}

/// berthd with `--network-host-netns` on a fresh fake host, busybox
/// loaded.
pub fn start_net() -> Option<NetDaemon> {
    if !Path::new(DOCKER).is_file() {
        eprintln!("SKIP: no docker CLI at {DOCKER}");
        return None;
    }
    let (fake_host, outside) = fake_host()?;
    let dir = tempfile::Builder::new()
        .prefix("berthd-net")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("s.sock");
    let host = format!("unix://{}", sock.display());
    let mut d = NetDaemon {
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

/// What berthd keeps per container, to show a failed request left
/// nothing: container dirs, sandboxes, libcontainer state, mounts under
/// the temp dir, links and nftables rules of the fake host.
#[derive(Debug, PartialEq, Eq)]
pub struct Traces {
    pub containers: BTreeSet<String>,
    pub sandboxes: BTreeSet<String>,
    pub states: BTreeSet<String>,
    pub mounts: BTreeSet<String>,
    pub links: BTreeSet<String>,
    pub nft: String,
}

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl NetDaemon {
    pub fn spawn(&mut self) {
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

    pub fn stop(&mut self) {
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

    pub fn docker(&self, args: &[&str]) -> Out {
        super::run_docker(&self.host, &self.dir.path().join("config"), args, None)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert_eq!(out.code, 0, "docker {args:?}: {}", out.stderr);
        out.stdout
    }

    /// A failing command: its stderr, which must contain `want`.
    pub fn fails(&self, args: &[&str], want: &str) -> String {
        let out = self.docker(args);
        assert_ne!(out.code, 0, "docker {args:?} succeeded: {}", out.stdout);
        assert!(
            out.stderr.contains(want),
            "docker {args:?}: want {want:?} in {}",
            out.stderr
        );
        out.stderr
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn traces(&self) -> Traces {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.path().display().to_string();
        let links = self.fake_host.exec(&["ip", "-o", "link", "show"]);
        let nft = self.fake_host.exec(&["nft", "list", "ruleset"]);
        Traces {
            containers: entries(&self.root().join("containers")),
            sandboxes: entries(&self.root().join("network/netns")),
            states: entries(&self.dir.path().join("run")),
            mounts: mounts
                .lines()
                .filter_map(|m| m.split(' ').nth(4))
                .filter(|t| t.starts_with(&dir))
                .map(String::from)
                .collect(),
            links: String::from_utf8_lossy(&links.stdout)
                .lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
                .collect(),
            nft: String::from_utf8_lossy(&nft.stdout).into_owned(),
        }
    }

    /// `curl` from `ns` (the host's busybox wget crashes here), retried
    /// for a few seconds while the server starts.
    pub fn fetch(&self, ns: &NamedNs, url: &str) -> String {
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

impl Drop for NetDaemon {
    fn drop(&mut self) {
        self.stop();
        super::remove_leftovers(self.dir.path());
    }
}
