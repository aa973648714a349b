//! nftables backend: our own `inet` table, one atomic batch per change.
//!
//! Batches are handed to libnftables in-process (loaded with `dlopen`, so no
//! -dev package is needed to build) on a worker thread that lives in the
//! host namespace: no fork/exec per join (a spawned `nft` costs several
//! milliseconds), and the netlink socket libnftables opens belongs to the
//! namespace we manage. If the library is missing we fall back to running
//! `nft -f -` from that same thread, whose children inherit its namespace.
//!
//! Layout: published ports are elements of maps: a mapping on every host
//! address and one port is an element of the `dnat4`/`dnat6` maps; the
//! others are elements of verdict maps keyed by host address (`ports4`,
//! `ports6`), family (`any4`, `any6`) or port range (`port_ranges`), each
//! pointing at a per-endpoint chain holding the DNAT rules. Joining or leaving only adds or deletes those elements and the
//! chain, so the cost does not grow with the number of endpoints and no rule
//! handles are needed. Network-level rules (isolation, ICC, masquerade) are
//! rebuilt together with the table, which is also what `reload` does.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::netns::NsWorker;

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The nftables keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl std::str::FromStr for Proto {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            other => Err(Error::invalid(
                "port.protocol",
                format!("{other:?} is not tcp, udp or sctp"),
            )),
        }
    }
}

/// A published port: `host_ip:host_port[-host_port_end]` to
/// `container_port[..]`. A range is one map element and one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Protocol.
    pub proto: Proto,
    /// Host address to match; `None` matches every local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// First host port.
    pub host_port: u16,
    /// Last host port of a range (inclusive); `None` for one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    /// First container port; a range keeps the host range's length.
    pub container_port: u16,
}

impl PortMapping {
    /// One port, any host address.
    pub fn new(proto: Proto, host_port: u16, container_port: u16) -> Self {
        PortMapping {
            proto,
            host_ip: None,
            host_port,
            host_port_end: None,
            container_port,
        }
    }

    /// The inclusive host port range.
    pub fn host_range(&self) -> (u16, u16) {
        (self.host_port, self.host_port_end.unwrap_or(self.host_port))
    }

    /// Check ports and ranges; `field` names the entry in errors.
    pub fn validate(&self, field: &str) -> Result<()> {
        let (lo, hi) = self.host_range();
        if lo == 0 || self.container_port == 0 {
            return Err(Error::invalid(field, "port 0 cannot be published"));
        }
        if hi < lo {
            return Err(Error::invalid(
                field,
                format!("range {lo}-{hi} ends before it starts"),
            ));
        }
        if u32::from(self.container_port) + u32::from(hi - lo) > 65535 {
            return Err(Error::invalid(field, "container port range passes 65535"));
        }
        Ok(())
    }

    /// Whether the two mappings' host addresses can receive the same
    /// packet: `None` (every address of both families) overlaps all,
    /// an unspecified address (`0.0.0.0`, `::`) every address of its
    /// family, and different families never overlap.
    pub fn shares_host_address(&self, other: &PortMapping) -> bool {
        match (self.host_ip, other.host_ip) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => {
                a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified() || a == b)
            }
        }
    }

    /// Whether two mappings cannot both be published: a common host port
    /// on overlapping host addresses ([`shares_host_address`]); port
    /// ranges clash on any address (they share one interval map).
    ///
    /// [`shares_host_address`]: PortMapping::shares_host_address
    pub fn clashes(&self, other: &PortMapping) -> bool {
        let range = |p: &PortMapping| p.host_port_end.is_some_and(|e| e != p.host_port);
        self.conflicts(other) && (range(self) || range(other) || self.shares_host_address(other))
    }

    /// Whether two mappings claim a common host port (same protocol and
    /// overlapping ports), whatever their host addresses.
    pub fn conflicts(&self, other: &PortMapping) -> bool {
        let (a0, a1) = self.host_range();
        let (b0, b1) = other.host_range();
        self.proto == other.proto && a0 <= b1 && b0 <= a1
    }
}

/// A bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwNetwork {
    /// The bridge's name.
    pub bridge: String,
    /// Its subnets.
    pub subnets: Vec<IpNet>,
    /// No traffic in or out of the host.
    pub internal: bool,
    /// Endpoints on the bridge may talk to each other.
    pub icc: bool,
    /// Masquerade outbound traffic.
    pub masquerade: bool,
}

/// An endpoint's published ports as the firewall sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwEndpoint {
    /// Short unique id (chain name suffix).
    pub id: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
    /// Its published ports.
    pub ports: Vec<PortMapping>,
}

fn q(name: &str) -> String {
    format!("\"{name}\"")
}

/// The batch that recreates our table from scratch: used when a network is
/// added or removed and by `reload`.
pub fn rebuild_batch(table: &str, nets: &[FwNetwork], eps: &[FwEndpoint]) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{"
    );
    // Single ports live in a hash map; only ranges need the interval map,
    // whose updates make nft read back all its elements (O(n) per join).
    // Plain published ports (any host address, one port) are data only:
    // elements of the DNAT maps, so a join adds no chain and no rule.
    b.push_str("  map dnat4 { type inet_proto . inet_service : ipv4_addr . inet_service ; }\n");
    b.push_str("  map dnat6 { type inet_proto . inet_service : ipv6_addr . inet_service ; }\n");
    b.push_str("  map ports4 { type ipv4_addr . inet_proto . inet_service : verdict ; }\n");
    b.push_str("  map ports6 { type ipv6_addr . inet_proto . inet_service : verdict ; }\n");
    b.push_str("  map any4 { type inet_proto . inet_service : verdict ; }\n");
    b.push_str("  map any6 { type inet_proto . inet_service : verdict ; }\n");
    b.push_str(
        "  map port_ranges { type inet_proto . inet_service : verdict ; flags interval ; }\n",
    );
    for (name, hook, prio) in [
        ("prerouting", "prerouting", "dstnat"),
        ("output", "output", "-100"),
    ] {
        let _ = writeln!(
            b,
            "  chain {name} {{ type nat hook {hook} priority {prio} ; policy accept ; fib daddr type local meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4 ; fib daddr type local meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat6 ; fib daddr type local ip daddr . meta l4proto . th dport vmap @ports4 ; fib daddr type local ip6 daddr . meta l4proto . th dport vmap @ports6 ; fib daddr type local meta nfproto ipv4 meta l4proto . th dport vmap @any4 ; fib daddr type local meta nfproto ipv6 meta l4proto . th dport vmap @any6 ; fib daddr type local meta l4proto . th dport vmap @port_ranges ; }}"
        );
    }
    b.push_str(
        "  chain postrouting { type nat hook postrouting priority srcnat ; policy accept ;\n",
    );
    for n in nets {
        let br = q(&n.bridge);
        if n.subnets.iter().any(|s| matches!(s, IpNet::V4(_))) {
            // Published ports reached through the host's loopback.
            let _ = writeln!(b, "    ip saddr 127.0.0.0/8 oifname {br} masquerade ;");
        }
        for s in &n.subnets {
            let fam = if matches!(s, IpNet::V4(_)) {
                "ip"
            } else {
                "ip6"
            };
            // Hairpin: a container reaching a published port of its own
            // network through a host address must see replies come from
            // the host (postrouting knows no input interface, so match the
            // source subnet).
            let _ = writeln!(
                b,
                "    {fam} saddr {s} oifname {br} ct status dnat masquerade ;"
            );
            if n.masquerade && !n.internal {
                let _ = writeln!(b, "    {fam} saddr {s} oifname != {br} masquerade ;");
            }
        }
    }
    b.push_str(
        "  }\n  chain forward { type filter hook forward priority filter ; policy accept ;\n",
    );
    for n in nets {
        let _ = writeln!(
            b,
            "    oifname {} ct state established,related accept ;",
            q(&n.bridge)
        );
    }
    for n in nets {
        let br = q(&n.bridge);
        let verdict = if n.icc { "accept" } else { "drop" };
        let _ = writeln!(b, "    iifname {br} oifname {br} {verdict} ;");
    }
    for n in nets {
        let br = q(&n.bridge);
        if n.internal {
            let _ = writeln!(b, "    oifname {br} drop ;\n    iifname {br} drop ;");
        } else {
            // Published ports come in; nothing else from another network or
            // the outside is forwarded onto the bridge (isolation).
            let _ = writeln!(
                b,
                "    oifname {br} ct status dnat accept ;\n    oifname {br} drop ;"
            );
        }
    }
    for n in nets.iter().filter(|n| !n.internal) {
        let _ = writeln!(b, "    iifname {} accept ;", q(&n.bridge));
    }
    b.push_str("  }\n}\n");
    for ep in eps {
        b.push_str(&endpoint_add_batch(table, ep));
    }
    b
}

/// A mapping that fits the DNAT maps: any host address, one port.
fn plain(p: &PortMapping) -> bool {
    p.host_ip.is_none() && p.host_port_end.is_none_or(|e| e == p.host_port)
}

fn dnat_rules(ep: &FwEndpoint) -> Vec<String> {
    let mut rules = Vec::new();
    for p in ep.ports.iter().filter(|p| !plain(p)) {
        let (lo, hi) = p.host_range();
        let proto = p.proto.as_str();
        let dport = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        for addr in &ep.addrs {
            let (fam, nfproto, to) = match addr {
                IpAddr::V4(a) => ("ip", "ipv4", a.to_string()),
                IpAddr::V6(a) => ("ip6", "ipv6", format!("[{a}]")),
            };
            let daddr = match p.host_ip {
                Some(h) if h.is_ipv4() != addr.is_ipv4() => continue,
                Some(h) if !h.is_unspecified() => format!("{fam} daddr {h} "),
                _ => format!("meta nfproto {nfproto} "),
            };
            let target = if lo == hi {
                format!("{to}:{}", p.container_port)
            } else if lo == p.container_port {
                to
            } else {
                let pairs: Vec<String> = (lo..=hi)
                    .map(|h| format!("{h} : {}", p.container_port + (h - lo)))
                    .collect();
                format!("{to} : {proto} dport map {{ {} }}", pairs.join(", "))
            };
            rules.push(format!(
                "{daddr}{proto} dport {dport} dnat {fam} to {target}"
            ));
        }
    }
    rules
}

/// The verdict map a chain-routed mapping's element goes to: one port on
/// one host address in `ports4`/`ports6` (so endpoints may share a port
/// on different addresses), on `0.0.0.0`/`::` in `any4`/`any6`, and port
/// ranges (any address) in the interval map `port_ranges`.
fn verdict_map(p: &PortMapping) -> &'static str {
    let (lo, hi) = p.host_range();
    match p.host_ip {
        _ if lo != hi => "port_ranges",
        Some(IpAddr::V4(a)) if !a.is_unspecified() => "ports4",
        Some(IpAddr::V6(a)) if !a.is_unspecified() => "ports6",
        Some(IpAddr::V6(_)) => "any6",
        _ => "any4",
    }
}

/// Elements of the verdict maps for the endpoint's chain-routed mappings,
/// by map, each once (an IPv4 and an IPv6 range of one port share one).
fn elements(ep: &FwEndpoint, with_verdict: bool) -> Vec<(&'static str, Vec<String>)> {
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for p in ep.ports.iter().filter(|p| !plain(p)) {
        let (lo, hi) = p.host_range();
        let proto = p.proto.as_str();
        let map = verdict_map(p);
        let mut key = match map {
            "port_ranges" if lo != hi => format!("{proto} . {lo}-{hi}"),
            "ports4" | "ports6" => match p.host_ip {
                Some(h) => format!("{h} . {proto} . {lo}"),
                None => format!("{proto} . {lo}"),
            },
            _ => format!("{proto} . {lo}"),
        };
        if with_verdict {
            key = format!("{key} : goto ep-{}", ep.id);
        }
        match out.iter_mut().find(|(m, _)| *m == map) {
            Some((_, els)) if els.contains(&key) => {}
            Some((_, els)) => els.push(key),
            None => out.push((map, vec![key])),
        }
    }
    out
}

/// The batch that publishes an endpoint's ports (empty without ports).
pub fn endpoint_add_batch(table: &str, ep: &FwEndpoint) -> String {
    let mut b = String::new();
    for (map, el) in map_elements(ep, true) {
        let _ = writeln!(b, "add element inet {table} {map} {{ {} }}", el.join(", "));
    }
    if ep.ports.iter().all(plain) {
        return b;
    }
    let _ = writeln!(b, "add chain inet {table} ep-{}", ep.id);
    for r in dnat_rules(ep) {
        let _ = writeln!(b, "add rule inet {table} ep-{} {r}", ep.id);
    }
    for (map, els) in elements(ep, true) {
        let _ = writeln!(b, "add element inet {table} {map} {{ {} }}", els.join(", "));
    }
    b
}

/// Elements of the DNAT maps for the endpoint's plain mappings.
fn map_elements(ep: &FwEndpoint, with_value: bool) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for (map, v4) in [("dnat4", true), ("dnat6", false)] {
        let Some(addr) = ep.addrs.iter().find(|a| a.is_ipv4() == v4) else {
            continue;
        };
        let els: Vec<String> = ep
            .ports
            .iter()
            .filter(|p| plain(p))
            .map(|p| {
                let key = format!("{} . {}", p.proto.as_str(), p.host_port);
                if with_value {
                    format!("{key} : {addr} . {}", p.container_port)
                } else {
                    key
                }
            })
            .collect();
        if !els.is_empty() {
            out.push((map, els));
        }
    }
    out
}

/// The batch that withdraws an endpoint's ports (empty without ports).
pub fn endpoint_del_batch(table: &str, ep: &FwEndpoint) -> String {
    let mut b = String::new();
    for (map, el) in map_elements(ep, false) {
        let _ = writeln!(
            b,
            "delete element inet {table} {map} {{ {} }}",
            el.join(", ")
        );
    }
    if ep.ports.iter().all(plain) {
        return b;
    }
    for (map, els) in elements(ep, false) {
        let _ = writeln!(
            b,
            "delete element inet {table} {map} {{ {} }}",
            els.join(", ")
        );
    }
    let _ = write!(
        b,
        "flush chain inet {table} ep-{id}\ndelete chain inet {table} ep-{id}\n",
        id = ep.id
    );
    b
}

/// Runs nftables batches inside one namespace.
#[derive(Debug, Clone)]
pub struct Nft {
    worker: NsWorker,
}

impl Nft {
    /// Use `worker`'s namespace for every batch.
    pub fn new(worker: NsWorker) -> Self {
        Nft { worker }
    }

    /// Apply `batch` atomically (all or nothing).
    pub async fn apply(&self, batch: String) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.worker.run(move || run_batch(&batch)).await?
    }

    /// Run a read-only command such as `list table inet berth` and return
    /// its output (tests and diagnostics; never on the hot path).
    pub async fn query(&self, cmd: String) -> Result<String> {
        self.worker.run(move || run_nft_binary(&cmd, true)).await?
    }
}

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxInt = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxStr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

struct LibNft {
    ctx: *mut c_void,
    run: RunCmd,
    error_buffer: CtxStr,
}

thread_local! {
    // One context per worker thread; it never leaves the thread.
    static LIBNFT: Option<LibNft> = load_libnftables();
}

fn load_libnftables() -> Option<LibNft> {
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols have the
    // C signatures of libnftables' public API (nftables/libnftables.h),
    // which we transmute to exactly those function pointer types. The
    // library handle is never closed, so the pointers stay valid.
    unsafe {
        let handle = libc::dlopen(
            c"libnftables.so.1".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        );
        if handle.is_null() {
            tracing::debug!("libnftables.so.1 not found; using the nft binary");
            return None;
        }
        let sym = |name: &CStr| {
            let p = libc::dlsym(handle, name.as_ptr());
            (!p.is_null()).then_some(p)
        };
        let new = sym(c"nft_ctx_new")?;
        let buffer_output = sym(c"nft_ctx_buffer_output")?;
        let buffer_error = sym(c"nft_ctx_buffer_error")?;
        let error_buffer = sym(c"nft_ctx_get_error_buffer")?;
        let run = sym(c"nft_run_cmd_from_buffer")?;
        let new: CtxNew = std::mem::transmute::<*mut c_void, CtxNew>(new);
        let buffer_output: CtxInt = std::mem::transmute::<*mut c_void, CtxInt>(buffer_output);
        let buffer_error: CtxInt = std::mem::transmute::<*mut c_void, CtxInt>(buffer_error);
        let ctx = new(0);
        if ctx.is_null() {
            return None;
        }
        buffer_output(ctx);
        buffer_error(ctx);
        Some(LibNft {
            ctx,
            run: std::mem::transmute::<*mut c_void, RunCmd>(run),
            error_buffer: std::mem::transmute::<*mut c_void, CtxStr>(error_buffer),
        })
    }
}

fn run_batch(batch: &str) -> Result<()> {
    let via_lib = LIBNFT.with(|lib| {
        let lib = lib.as_ref()?;
        let cmd = match CString::new(batch) {
            Ok(c) => c,
            Err(_) => return Some(Err(Error::Nftables("batch contains a NUL byte".into()))),
        };
        // SAFETY: ctx is a live context owned by this thread; cmd is a valid
        // C string for the duration of the call; the error buffer is a C
        // string owned by ctx, copied before the next call.
        let rc = unsafe { (lib.run)(lib.ctx, cmd.as_ptr()) };
        if rc == 0 {
            return Some(Ok(()));
        }
        let msg = unsafe {
            let p = (lib.error_buffer)(lib.ctx);
            if p.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Some(Err(Error::Nftables(msg.trim().to_string())))
    });
    match via_lib {
        Some(r) => r,
        None => run_nft_binary(batch, false).map(|_| ()),
    }
}

fn run_nft_binary(input: &str, capture: bool) -> Result<String> {
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(if capture {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run nft", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| Error::io("write to nft", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("wait for nft", e))?;
    if !out.status.success() {
        return Err(Error::Nftables(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> FwEndpoint {
        FwEndpoint {
            id: "abc".into(),
            addrs: vec!["172.18.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            ports: vec![
                PortMapping {
                    host_ip: Some("10.0.0.1".parse().unwrap()),
                    ..PortMapping::new(Proto::Tcp, 8080, 80)
                },
                PortMapping {
                    host_port_end: Some(8002),
                    ..PortMapping::new(Proto::Udp, 8000, 9000)
                },
            ],
        }
    }

    #[test]
    fn endpoint_batches_are_one_chain_and_one_element_per_mapping() {
        let add = endpoint_add_batch("berth", &ep());
        assert!(add.contains("add chain inet berth ep-abc\n"));
        assert!(add.contains("ip daddr 10.0.0.1 tcp dport 8080 dnat ip to 172.18.0.2:80"));
        assert!(
            !add.contains("ip6 daddr 10.0.0.1"),
            "v4 host ip must not produce v6 rules: {add}"
        );
        assert!(add.contains("udp dport 8000-8002 dnat ip to 172.18.0.2 : udp dport map { 8000 : 9000, 8001 : 9001, 8002 : 9002 }"));
        assert!(add.contains(
            "meta nfproto ipv6 udp dport 8000-8002 dnat ip6 to [fd00::2] : udp dport map"
        ));
        assert!(
            add.contains("add element inet berth ports4 { 10.0.0.1 . tcp . 8080 : goto ep-abc }")
        );
        assert!(
            add.contains("add element inet berth port_ranges { udp . 8000-8002 : goto ep-abc }")
        );
        let del = endpoint_del_batch("berth", &ep());
        assert_eq!(
            del,
            "delete element inet berth ports4 { 10.0.0.1 . tcp . 8080 }\ndelete element inet berth port_ranges { udp . 8000-8002 }\nflush chain inet berth ep-abc\ndelete chain inet berth ep-abc\n"
        );
        let none = FwEndpoint {
            ports: vec![],
            ..ep()
        };
        assert!(endpoint_add_batch("berth", &none).is_empty());
    }

    #[test]
    fn one_port_on_both_families_goes_to_each_familys_map() {
        let ep = FwEndpoint {
            id: "d".into(),
            addrs: vec!["172.18.0.4".parse().unwrap(), "fd00::4".parse().unwrap()],
            ports: vec![
                PortMapping {
                    host_ip: Some("::".parse().unwrap()),
                    ..PortMapping::new(Proto::Tcp, 8081, 80)
                },
                PortMapping {
                    host_ip: Some("0.0.0.0".parse().unwrap()),
                    ..PortMapping::new(Proto::Tcp, 8081, 81)
                },
            ],
        };
        let add = endpoint_add_batch("berth", &ep);
        assert!(add.contains("add element inet berth any6 { tcp . 8081 : goto ep-d }\n"));
        assert!(add.contains("add element inet berth any4 { tcp . 8081 : goto ep-d }\n"));
        assert!(add.contains("meta nfproto ipv6 tcp dport 8081 dnat ip6 to [fd00::4]:80"));
        assert!(add.contains("meta nfproto ipv4 tcp dport 8081 dnat ip to 172.18.0.4:81"));
        assert!(!add.contains("dnat ip to 172.18.0.4:80"), "{add}");
        assert!(endpoint_del_batch("berth", &ep).starts_with(
            "delete element inet berth any6 { tcp . 8081 }\ndelete element inet berth any4 { tcp . 8081 }\n"
        ));
        // A range on both families is one interval element, written once.
        let both = FwEndpoint {
            ports: vec![
                PortMapping {
                    host_ip: Some("::".parse().unwrap()),
                    host_port_end: Some(9001),
                    ..PortMapping::new(Proto::Tcp, 9000, 90)
                },
                PortMapping {
                    host_ip: Some("0.0.0.0".parse().unwrap()),
                    host_port_end: Some(9001),
                    ..PortMapping::new(Proto::Tcp, 9000, 90)
                },
            ],
            ..ep
        };
        assert!(endpoint_del_batch("berth", &both)
            .starts_with("delete element inet berth port_ranges { tcp . 9000-9001 }\nflush"));
    }

    #[test]
    fn plain_ports_are_map_elements_only() {
        let ep = FwEndpoint {
            id: "p".into(),
            addrs: vec!["172.18.0.3".parse().unwrap(), "fd00::3".parse().unwrap()],
            ports: vec![
                PortMapping::new(Proto::Tcp, 8080, 80),
                PortMapping::new(Proto::Udp, 53, 5353),
            ],
        };
        assert_eq!(
            endpoint_add_batch("berth", &ep),
            "add element inet berth dnat4 { tcp . 8080 : 172.18.0.3 . 80, udp . 53 : 172.18.0.3 . 5353 }\n\
             add element inet berth dnat6 { tcp . 8080 : fd00::3 . 80, udp . 53 : fd00::3 . 5353 }\n"
        );
        assert_eq!(
            endpoint_del_batch("berth", &ep),
            "delete element inet berth dnat4 { tcp . 8080, udp . 53 }\ndelete element inet berth dnat6 { tcp . 8080, udp . 53 }\n"
        );
    }

    #[test]
    fn rebuild_isolates_internal_and_icc_off_networks() {
        let nets = vec![
            FwNetwork {
                bridge: "br-a".into(),
                subnets: vec!["172.18.0.0/16".parse().unwrap()],
                internal: false,
                icc: true,
                masquerade: true,
            },
            FwNetwork {
                bridge: "br-b".into(),
                subnets: vec!["172.19.0.0/16".parse().unwrap()],
                internal: true,
                icc: false,
                masquerade: true,
            },
        ];
        let b = rebuild_batch("berth", &nets, &[ep()]);
        assert!(b.starts_with("table inet berth {}\ndelete table inet berth\n"));
        assert!(b.contains("ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade"));
        assert!(b.contains("ip saddr 127.0.0.0/8 oifname \"br-a\" masquerade"));
        assert!(
            !b.contains("172.19.0.0/16 oifname != \"br-b\" masquerade"),
            "internal networks are not masqueraded"
        );
        assert!(
            b.contains("ip saddr 172.18.0.0/16 oifname \"br-a\" ct status dnat masquerade"),
            "hairpin"
        );
        assert!(b.contains("iifname \"br-b\" oifname \"br-b\" drop"));
        assert!(b.contains("iifname \"br-b\" drop"));
        assert!(b.contains("oifname \"br-a\" drop"));
        assert!(b.contains("goto ep-abc"));
    }

    #[test]
    fn port_validation_and_conflicts() {
        let a = PortMapping::new(Proto::Tcp, 8080, 80);
        let b = PortMapping {
            host_port_end: Some(8090),
            ..PortMapping::new(Proto::Tcp, 8085, 80)
        };
        assert!(a.conflicts(&PortMapping::new(Proto::Tcp, 8080, 81)));
        assert!(!a.conflicts(&PortMapping::new(Proto::Udp, 8080, 80)));
        assert!(b.conflicts(&PortMapping::new(Proto::Tcp, 8090, 1)));
        assert!(PortMapping::new(Proto::Tcp, 0, 80)
            .validate("ports[0]")
            .is_err());
        let backwards = PortMapping {
            host_port_end: Some(10),
            ..PortMapping::new(Proto::Tcp, 20, 20)
        };
        assert!(backwards
            .validate("ports[1]")
            .unwrap_err()
            .to_string()
            .contains("ports[1]"));
        let v4 = PortMapping {
            host_ip: Some("0.0.0.0".parse().unwrap()),
            ..a.clone()
        };
        let v6 = PortMapping {
            host_ip: Some("::".parse().unwrap()),
            ..a.clone()
        };
        let v6_one = PortMapping {
            host_ip: Some("fd00::1".parse().unwrap()),
            ..a.clone()
        };
        assert!(!v4.shares_host_address(&v6), "families never overlap");
        assert!(!v4.clashes(&v6) && v4.clashes(&a) && a.clashes(&v6));
        let lo = PortMapping {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            ..a.clone()
        };
        assert!(!lo.clashes(&PortMapping {
            host_ip: Some("10.0.0.1".parse().unwrap()),
            ..a.clone()
        }));
        let range = |ip: &str| PortMapping {
            host_ip: Some(ip.parse().unwrap()),
            host_port_end: Some(8081),
            ..a.clone()
        };
        assert!(
            range("127.0.0.1").clashes(&range("10.0.0.1")),
            "ranges share a map"
        );
        assert!(v6.shares_host_address(&v6_one) && a.shares_host_address(&v6));
        assert!(!v6_one.shares_host_address(&PortMapping {
            host_ip: Some("fd00::2".parse().unwrap()),
            ..a.clone()
        }));
        assert_eq!("sctp".parse::<Proto>().unwrap(), Proto::Sctp);
        assert!("icmp".parse::<Proto>().is_err());
    }
}
