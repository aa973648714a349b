//! Fake hosts for root tests: every test builds its own "host" inside a
//! network namespace it created, and the guard removes it on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};
use libnetwork::{Controller, ControllerConfig, NetNs};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: needs root (network namespaces, netlink, nftables)");
    false
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace made with `ip netns add`, deleted on drop.
pub struct NamedNs {
    pub name: String,
}

impl NamedNs {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("bn{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        NamedNs { name }
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    pub fn ns(&self) -> NetNs {
        NetNs::open(self.path()).expect("open netns")
    }
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
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

/// A fake host namespace, an "outside" namespace wired to it by a veth
/// (host 10.99.0.1/24, outside 10.99.0.2/24), a state directory, and the
/// controller managing the fake host.
pub struct FakeHost {
    pub ctl: Option<Arc<Controller>>,
    pub host: NamedNs,
    pub outside: NamedNs,
    pub state: tempfile::TempDir,
}

pub const HOST_IP: &str = "10.99.0.1";
pub const OUTSIDE_IP: &str = "10.99.0.2";

impl FakeHost {
    pub async fn new() -> Self {
        let host = NamedNs::new("host");
        let outside = NamedNs::new("out");
        ip(&[
            "-n",
            &host.name,
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
            &host.name,
            "addr",
            "add",
            "10.99.0.1/24",
            "dev",
            "uplink",
        ]);
        ip(&["-n", &host.name, "link", "set", "uplink", "up"]);
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
        ip(&[
            "-n",
            &outside.name,
            "route",
            "add",
            "default",
            "via",
            "10.99.0.1",
        ]);
        // A single-link RTM_GETLINK settles pending carrier changes now
        // rather than on the kernel's link-watch workqueue.
        ip(&["-n", &host.name, "link", "show", "dev", "uplink"]);
        ip(&["-n", &outside.name, "link", "show", "dev", "eth0"]);
        let state = tempfile::tempdir().expect("tempdir");
        let mut fh = FakeHost {
            ctl: None,
            host,
            outside,
            state,
        };
        fh.start().await;
        fh
    }

    pub fn config(&self) -> ControllerConfig {
        ControllerConfig::new(self.state.path())
            .host_netns(self.host.path())
            .dns_upstreams(vec![])
    }

    pub async fn start(&mut self) {
        self.ctl = Some(Controller::new(self.config()).await.expect("controller"));
    }

    pub fn ctl(&self) -> &Arc<Controller> {
        self.ctl.as_ref().expect("controller running")
    }

    /// Links in the fake host, by name.
    pub fn host_links(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.host.name, "-o", "link", "show"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|s| s.split('@').next().unwrap_or(s).to_string())
            .collect()
    }

    pub fn nft_list(&self) -> String {
        String::from_utf8_lossy(&self.host.exec(&["nft", "list", "ruleset"]).stdout).into_owned()
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        self.ctl.take();
        // Sandboxes' pinned namespaces live in the state dir: unmount them
        // before the temp dir goes.
        if let Ok(rd) = std::fs::read_dir(self.state.path().join("netns")) {
            for e in rd.flatten() {
                let _ = NetNs::remove_pinned(e.path());
            }
        }
    }
}

pub fn ns_of(path: &std::path::Path) -> NetNs {
    NetNs::open(path).expect("open sandbox netns")
}

/// A TCP server in `ns` on `addr` that answers every connection with
/// `reply` (runs until the namespace or process goes).
pub fn serve_tcp(ns: &NetNs, addr: SocketAddr, reply: &'static str) {
    let listener = ns
        .run(move || TcpListener::bind(addr))
        .expect("enter ns")
        .expect("bind");
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let _ = c.write_all(reply.as_bytes());
        }
    });
}

fn tcp_get_once(ns: &NetNs, addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    ns.run(move || {
        let mut c = TcpStream::connect_timeout(&addr, timeout)?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    })
    .expect("enter ns")
}

/// Connect from `ns` to `addr` and read what the server says. A lost first
/// SYN (the machine is shared and busy) is retried: up to 3 attempts.
pub fn tcp_get(ns: &NetNs, addr: SocketAddr) -> std::io::Result<String> {
    let mut last = None;
    for _ in 0..3 {
        match tcp_get_once(ns, addr, Duration::from_millis(800)) {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no attempt")))
}

/// Whether a connection from `ns` to `addr` fails (one attempt: callers
/// first show the same path works where it should).
pub fn tcp_blocked(ns: &NetNs, addr: SocketAddr) -> bool {
    tcp_get_once(ns, addr, Duration::from_millis(600)).is_err()
}

/// Ask the embedded resolver in `ns` for `name` of `rtype`; returns the
/// answers as text and the response code.
pub fn dns_query(ns: &NetNs, name: &str, rtype: RecordType) -> (Vec<String>, String) {
    let mut msg = Message::query();
    msg.metadata.id = 4242;
    msg.metadata.recursion_desired = true;
    msg.add_query(hickory_proto::op::Query::query(
        Name::from_ascii(name).unwrap(),
        rtype,
    ));
    let bytes = msg.to_vec().unwrap();
    let reply = ns
        .run(move || {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.send_to(&bytes, "127.0.0.11:53")?;
            let mut buf = [0u8; 2048];
            let n = s.recv(&mut buf)?;
            Ok::<_, std::io::Error>(buf[..n].to_vec())
        })
        .expect("enter ns")
        .expect("dns reply");
    let reply = Message::from_vec(&reply).unwrap();
    let answers = reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::PTR(p) => p.0.to_ascii(),
            other => format!("{other:?}"),
        })
        .collect();
    (answers, format!("{:?}", reply.metadata.response_code))
}

pub fn addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A UDP server in `ns` on `addr` answering every datagram with `reply`.
pub fn serve_udp(ns: &NetNs, addr: SocketAddr, reply: &'static str) {
    let sock = ns
        .run(move || UdpSocket::bind(addr))
        .expect("enter ns")
        .expect("bind udp");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(reply.as_bytes(), peer);
        }
    });
}

/// Send a datagram from `ns` to `addr` and return the answer (3 tries).
pub fn udp_get(ns: &NetNs, addr: SocketAddr) -> std::io::Result<String> {
    ns.run(move || {
        let s = UdpSocket::bind(if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        s.set_read_timeout(Some(Duration::from_millis(700)))?;
        let mut last = None;
        for _ in 0..3 {
            s.send_to(b"ping", addr)?;
            let mut buf = [0u8; 512];
            match s.recv(&mut buf) {
                Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no answer")))
    })
    .expect("enter ns")
}

/// ICMP echo from `ns` to `ip` with busybox ping (entered with nsenter).
pub fn ping(netns_path: &std::path::Path, ip: IpAddr) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", netns_path.display()))
        .args(["busybox", "ping", "-c", "1", "-W", "2", &ip.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
