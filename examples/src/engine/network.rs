//! Container networking for berthd through libnetwork: a default `bridge`
//! network (Docker's 172.17.0.0/16 on a bridge named `berth0`), user
//! networks with the embedded DNS (127.0.0.11) between containers by name,
//! published ports, and the `docker network` commands.
//!
//! Each container gets a sandbox (a network namespace libnetwork creates
//! and pins) before it starts; the OCI spec's network namespace `path`
//! points at it and `/etc/hosts` and `/etc/resolv.conf` are bind-mounted
//! from the container's directory. The controller manages the namespace
//! given to [`Networking::start`] (berthd's `--network-host-netns`), so
//! the tests run the "host" side in a namespace of their own.

pub mod default_bridge;
pub mod links;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use libnetwork::{
    Controller, ControllerConfig, EndpointConfig, EndpointInfo, IpamPoolConfig, MacAddress,
    NetworkConfig, NetworkInfo, PortMapping, Proto, SandboxConfig, SandboxInfo,
};
use libswarm::models::{
    EndpointSettings, HostConfig, Ipam, IpamConfig, Network, NetworkContainer,
    NetworkCreateRequest, NetworkSettings, PortBinding,
};
use libswarm::{filter_matches, ContainerCreateBody, Error, NetworkListOptions, Result};
use oci_spec::runtime::Spec;
use serde_json::json;

use default_bridge::DefaultBridge;

/// The default network's name, subnet and bridge.
pub const DEFAULT_NETWORK: &str = "bridge";
const DEFAULT_SUBNET: &str = "172.17.0.0/16";
const DEFAULT_BRIDGE: &str = "berth0";

/// How a container is networked (`--network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `none`: a namespace with loopback only.
    None,
    /// `host`: the daemon's namespace.
    Host,
    /// A network by name or id (`default` means `bridge`).
    Network(String),
    /// `container:NAME`: another container's namespace, hosts and
    /// resolv.conf.
    Container(String),
}

/// `HostConfig.NetworkMode` as a [`Mode`].
pub fn mode(host: &HostConfig) -> Result<Mode> {
    match host.network_mode.as_deref().unwrap_or("") {
        "" | "default" => Ok(Mode::Network(DEFAULT_NETWORK.into())),
        "none" => Ok(Mode::None),
        "host" => Ok(Mode::Host),
        m => match m.strip_prefix("container:") {
            Some("") => Err(Error::bad_request(format!("invalid network mode: {m}"))),
            Some(target) => Ok(Mode::Container(target.to_string())),
            None => Ok(Mode::Network(m.to_string())),
        },
    }
}

/// Docker's refusals for `--network container:` (the target owns the
/// hostname, DNS, hosts file, ports and MAC address).
pub fn check_container_mode(body: &ContainerCreateBody) -> Result<()> {
    let host = body.host_config.clone().unwrap_or_default();
    if !matches!(mode(&host)?, Mode::Container(_)) {
        return Ok(());
    }
    let set = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let given = |v: &Option<String>| v.as_ref().is_some_and(|v| !v.is_empty());
    let ports = host.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
        || host.publish_all_ports == Some(true);
    let conflict = if given(&body.config.hostname) {
        "hostname and the network mode"
    } else if set(&host.links) {
        "container type network can't be used with links. This would result in undefined behavior"
    } else if set(&host.dns) {
        "dns and the network mode"
    } else if set(&host.extra_hosts) {
        "custom host-to-IP mapping and the network mode"
    } else if ports {
        "port publishing and the container type network mode"
    } else if given(&body.config.mac_address) {
        "mac-address and the network mode"
    } else {
        return Ok(());
    };
    Err(Error::bad_request(format!(
        "conflicting options: {conflict}"
    )))
}

/// Without networking (berthd started with `--network-host-netns none`),
/// published ports cannot work: refused rather than silently ignored.
pub fn check_offline(host: &HostConfig) -> Result<()> {
    let ports = host.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
        || host.publish_all_ports == Some(true);
    if ports {
        return Err(Error::bad_request(
            "publishing ports needs networking, and this berthd was started with --network-host-netns none",
        ));
    }
    if host.links.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(Error::bad_request(
            "--link needs networking, and this berthd was started with --network-host-netns none",
        ));
    }
    Ok(())
}

/// What the spec needs to know about a container's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    /// A fresh, empty namespace (also berthd without networking).
    Isolated,
    /// No network namespace of its own.
    Host,
    /// A sandbox namespace with its hosts and resolv.conf files (none
    /// when sharing the namespace of a container berthd networks not).
    Joined {
        /// The namespace to enter.
        netns: PathBuf,
        /// Bind-mounted at /etc/hosts.
        hosts: Option<PathBuf>,
        /// Bind-mounted at /etc/resolv.conf.
        resolv_conf: Option<PathBuf>,
    },
}

/// Puts a [`NetSpec`] into a built spec.
pub fn apply(spec: Spec, net: &NetSpec) -> Result<Spec> {
    if *net == NetSpec::Isolated {
        return Ok(spec);
    }
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::internal(e.to_string()))?;
    if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
        if let NetSpec::Joined { netns, .. } = net {
            ns.push(json!({"type": "network", "path": netns}));
        }
    }
    if let NetSpec::Joined {
        hosts, resolv_conf, ..
    } = net
    {
        if let Some(m) = v["mounts"].as_array_mut() {
            let files = [("/etc/hosts", hosts), ("/etc/resolv.conf", resolv_conf)];
            for (dest, src) in files
                .into_iter()
                .filter_map(|(d, s)| Some((d, s.as_ref()?)))
            {
                m.push(json!({"destination": dest, "type": "bind", "source": src,
                    "options": ["rbind", "rprivate"]}));
            }
        }
    }
    serde_json::from_value(v).map_err(|e| Error::internal(format!("network spec: {e}")))
}

/// A failed join as Docker words it (`docker run -p` on a taken port).
fn attach_err(e: libnetwork::Error, endpoint: &str) -> Error {
    match e {
        libnetwork::Error::PortTaken { port, host_ip, .. } => Error::conflict(format!(
            "driver failed programming external connectivity on endpoint {endpoint}: \
             Bind for {host_ip}:{port} failed: port is already allocated"
        )),
        libnetwork::Error::InUse(m) if m.starts_with("address ") => {
            Error::conflict(format!("Address already in use ({m})"))
        }
        e => net_err(e),
    }
}

fn net_err(e: libnetwork::Error) -> Error {
    use libnetwork::Error as E;
    match &e {
        E::NotFound { kind, name } => Error::not_found(format!("{kind} {name} not found")),
        E::Duplicate { .. } | E::InUse(_) | E::PortTaken { .. } => Error::conflict(e.to_string()),
        E::InvalidConfig { .. } | E::Overlap { .. } | E::Exhausted(_) => {
            Error::bad_request(e.to_string())
        }
        _ => Error::internal(e.to_string()),
    }
}

/// First host port handed out for `-p CONTAINER` (Linux's default
/// ephemeral range, as Docker).
const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// `-p` bindings as libnetwork port mappings (host port 0: pick one).
pub fn port_mappings(host: &HostConfig) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    let mut keys: Vec<_> = host.port_bindings.iter().flatten().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, bindings) in keys {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let bad = || Error::bad_request(format!("invalid published port {key:?} (-p)"));
        let container_port: u16 = port.parse().map_err(|_| bad())?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            _ => return Err(bad()),
        };
        for b in bindings.iter().flatten() {
            // No host port (`-p 80`): 0 here, a free one picked at attach.
            let hp = match b.host_port.as_deref().unwrap_or("") {
                "" => "0",
                hp => hp,
            };
            let (lo, hi) = hp.split_once('-').unwrap_or((hp, hp));
            let lo: u16 = lo.parse().map_err(|_| bad())?;
            let hi: u16 = hi.parse().map_err(|_| bad())?;
            let mut m = PortMapping::new(proto, lo, container_port);
            if hi != lo {
                m.host_port_end = Some(hi);
            }
            // No address: both families; 0.0.0.0 or [::]: one of them.
            m.host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" => None,
                ip => Some(
                    ip.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .map_err(|_| bad())?,
                ),
            };
            out.push(m);
        }
    }
    Ok(out)
}

/// berthd has no userland proxy: an IPv6 host address can only be
/// NATed to a container with an IPv6 address (Docker without its proxy
/// logs this and skips the mapping; a port that silently never answers
/// is worse, so it is refused).
fn check_host_families(ports: &[PortMapping], net: &NetworkInfo, endpoint: &str) -> Result<()> {
    let has_v6 = net.subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    for p in ports {
        if let Some(h) = p.host_ip.filter(|h| h.is_ipv6() && !has_v6) {
            return Err(Error::bad_request(format!(
                "driver failed programming external connectivity on endpoint {endpoint}: \
                 Cannot map from IPv6 [{h}]:{} to an IPv4-only container because the userland proxy is disabled \
                 (network {} has no IPv6 subnet)",
                p.host_port, net.config.name
            )));
        }
    }
    Ok(())
}

/// The host addresses a mapping shows in `docker port`/`ps`/inspect: a
/// mapping without one is published on 0.0.0.0 and, when the endpoint
/// has IPv6, on `::` too (as Docker shows it).
fn host_bindings(p: &PortMapping, ep: &EndpointInfo) -> Vec<String> {
    if let Some(h) = p.host_ip {
        return vec![h.to_string()];
    }
    let mut out = vec!["0.0.0.0".to_string()];
    if ep.addresses.iter().any(|a| a.addr().is_ipv6()) {
        out.push("::".into());
    }
    out
}

/// The /etc/hosts Docker writes: loopback names, `--add-host` entries,
/// then the container's own addresses with its hostname.
pub fn hosts_file(hostname: &str, addrs: &[IpAddr], extra: &[(String, IpAddr)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, a) in extra {
        s.push_str(&format!("{a}\t{name}\n"));
    }
    for a in addrs {
        s.push_str(&format!("{a}\t{hostname}\n"));
    }
    s
}

/// The container config with the image's `ExposedPorts` added (Docker
/// merges them the same way; `-P` publishes them all).
pub fn with_image_ports(
    mut body: ContainerCreateBody,
    image_ports: &[String],
) -> ContainerCreateBody {
    if !image_ports.is_empty() {
        let ports = body.config.exposed_ports.get_or_insert_with(HashMap::new);
        for p in image_ports {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            ports.entry(key).or_default();
        }
    }
    body
}

/// `-P`: every exposed port not already published, on a free host port.
fn publish_all(
    exposed: Option<&HashMap<String, HashMap<(), ()>>>,
    published: &[PortMapping],
) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    let mut keys: Vec<&String> = exposed.into_iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    for key in keys {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let bad = || Error::bad_request(format!("invalid exposed port {key:?} (--expose)"));
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            _ => return Err(bad()),
        };
        let (lo, hi) = port.split_once('-').unwrap_or((port, port));
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        for p in lo..=hi {
            let taken = published
                .iter()
                .chain(&out)
                .any(|m| m.proto == proto && m.container_port == p);
            if !taken {
                out.push(PortMapping::new(proto, 0, p));
            }
        }
    }
    Ok(out)
}

/// `--add-host NAME:IP` entries; `host-gateway` is the network's gateway.
fn extra_hosts(host: &HostConfig, net: &NetworkInfo) -> Result<Vec<(String, IpAddr)>> {
    let mut out = Vec::new();
    for e in host.extra_hosts.iter().flatten() {
        let bad = || Error::bad_request(format!("invalid IP address in add-host: {e:?}"));
        let (name, ip) = e
            .split_once(':')
            .or_else(|| e.split_once('='))
            .ok_or_else(bad)?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let addr = if ip == "host-gateway" {
            net.subnets
                .iter()
                .find_map(|s| s.gateway.filter(|g| g.is_ipv4()))
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "--add-host {e}: network {} has no gateway",
                        net.config.name
                    ))
                })?
        } else {
            ip.parse().map_err(|_| bad())?
        };
        if name.is_empty() {
            return Err(bad());
        }
        out.push((name.to_string(), addr));
    }
    Ok(out)
}

/// `--dns` servers (the upstreams of the embedded resolver on user
/// networks).
fn dns_servers(host: &HostConfig) -> Result<Vec<IpAddr>> {
    host.dns
        .iter()
        .flatten()
        .map(|d| {
            d.parse()
                .map_err(|_| Error::bad_request(format!("{d} is not an ip address (--dns)")))
        })
        .collect()
}

/// The container's resolv.conf from `base` (the host's, or the embedded
/// resolver's) with `--dns`, `--dns-search` and `--dns-option` applied
/// as Docker does; with the embedded resolver the servers stay
/// 127.0.0.11 (it forwards to `--dns`).
pub fn resolv_conf_text(base: &str, host: &HostConfig, embedded: bool) -> String {
    let given = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    let servers = given(&host.dns).filter(|_| !embedded);
    let search = given(&host.dns_search);
    let options = given(&host.dns_options);
    let mut out: Vec<String> = Vec::new();
    for line in base.lines() {
        let key = line.split_whitespace().next().unwrap_or("");
        let replaced = match key {
            "nameserver" => servers.is_some(),
            "search" | "domain" => search.is_some(),
            "options" => options.is_some(),
            _ => false,
        };
        if !replaced {
            out.push(line.to_string());
        }
    }
    for s in servers.iter().flatten() {
        out.push(format!("nameserver {s}"));
    }
    // `--dns-search .`: no search domains.
    if let Some(s) = search.filter(|s| s.iter().any(|d| d != ".")) {
        out.push(format!("search {}", s.join(" ")));
    }
    if let Some(o) = options {
        out.push(format!("options {}", o.join(" ")));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Docker's check for `--ip`/`--ip6`: the address is in a subnet of the
/// network.
fn in_subnet(net: &NetworkInfo, addr: IpAddr) -> Result<()> {
    if net.subnets.iter().any(|s| s.subnet.contains(&addr)) {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "no configured subnet or ip-range contain the IP address {addr}"
    )))
}

/// Legacy links are made at create; `network connect --link` names are
/// for user-defined networks (as Docker).
const CONNECT_LINKS: &str =
    "--link with docker network connect is only supported on user-defined networks";

/// A container's link variables, and its targets as (id, the names of
/// their /etc/hosts lines).
/// Link variables, (target id, hosts names), and the targets not running
/// yet (Docker checks and resolves them at start).
type Linked = (Vec<String>, Vec<(String, String)>, Vec<links::Target>);

/// `--link` on a user-defined network: in Docker a name only the linking
/// container resolves (its sandbox's resolver), alias → the target's name
/// on the network, looked up at query time; no hosts lines, no variables.
/// Targets come resolved from the backend (HostConfig.Links) and as given
/// in the endpoint settings.
fn resolver_links(
    targets: &[links::Target],
    settings: Option<&EndpointSettings>,
) -> Result<BTreeMap<String, String>> {
    let mut out: BTreeMap<String, String> = targets
        .iter()
        .map(|t| (t.alias.clone(), t.name.clone()))
        .collect();
    for l in settings
        .and_then(|s| s.links.as_ref())
        .into_iter()
        .flatten()
    {
        let (name, alias) = links::parse(l)?;
        out.entry(alias).or_insert(name);
    }
    Ok(out)
}

/// `--mac-address` (`MacAddress` of the endpoint settings, or of the
/// container config before API 1.44), refused as Docker words it.
fn parse_mac(m: &str) -> Result<MacAddress> {
    m.parse()
        .map_err(|_| Error::bad_request(format!("invalid MAC address {m}")))
}

/// The endpoint a container asks for on `net`: `--network-alias`,
/// `--ip`, `--ip6` (static addresses only on user networks with a
/// subnet, as Docker).
fn endpoint_config(
    name: &str,
    net: &NetworkInfo,
    settings: Option<&EndpointSettings>,
) -> Result<EndpointConfig> {
    let mut ep = EndpointConfig::builder(name);
    let Some(s) = settings else {
        return Ok(ep.build());
    };
    for a in s.aliases.iter().flatten() {
        ep = ep.alias(a);
    }
    if let Some(m) = s.mac_address.as_deref().filter(|m| !m.is_empty()) {
        ep = ep.mac(parse_mac(m)?);
    }
    let ipam = s.ipam_config.as_ref();
    let v4 = ipam
        .and_then(|i| i.ipv4_address.clone())
        .filter(|a| !a.is_empty());
    let v6 = ipam
        .and_then(|i| i.ipv6_address.clone())
        .filter(|a| !a.is_empty());
    if v4.is_none() && v6.is_none() {
        return Ok(ep.build());
    }
    if net.config.name == DEFAULT_NETWORK {
        return Err(Error::bad_request(
            "user specified IP address is supported on user defined networks only",
        ));
    }
    let user_subnet = |v6: bool| {
        let pools = if v6 {
            &net.config.ipv6
        } else {
            &net.config.ipv4
        };
        pools.iter().any(|p| p.subnet.is_some())
    };
    if let Some(a) = v4 {
        if !user_subnet(false) {
            return Err(Error::bad_request(
                "user specified IP address is supported only when connecting to networks with user configured subnets",
            ));
        }
        let a = a
            .parse()
            .map_err(|_| Error::bad_request(format!("invalid IPv4 address: {a}")))?;
        in_subnet(net, IpAddr::from(a))?;
        ep = ep.ipv4(a);
    }
    if let Some(a) = v6 {
        if !user_subnet(true) {
            return Err(Error::bad_request(
                "user specified IP address is supported only when connecting to networks with user configured subnets",
            ));
        }
        let a = a
            .parse()
            .map_err(|_| Error::bad_request(format!("invalid IPv6 address: {a}")))?;
        in_subnet(net, IpAddr::from(a))?;
        ep = ep.ipv6(a);
    }
    Ok(ep.build())
}

/// The host's resolv.conf without loopback resolvers (unreachable from a
/// container's namespace), as Docker does on the default bridge.
pub fn host_resolv_conf(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let mut it = l.split_whitespace();
            !(it.next() == Some("nameserver")
                && it
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|a| a.is_loopback()))
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.contains("nameserver") {
        s.push_str("\nnameserver 8.8.8.8\nnameserver 8.8.4.4");
    }
    s.push('\n');
    s
}

#[derive(Debug, Clone)]
struct Attached {
    name: String,
    sandbox: SandboxInfo,
    /// Network name → endpoint.
    endpoints: BTreeMap<String, EndpointInfo>,
    /// While the container is stopped: (network name, network id,
    /// endpoint config) to join again at start.
    parked: Vec<(String, String, EndpointConfig)>,
    hostname: String,
    hosts: PathBuf,
    resolv_conf: PathBuf,
    /// `--add-host` entries (name, address).
    extra: Vec<(String, IpAddr)>,
    /// Containers made with `--network container:` this one.
    shared_by: BTreeSet<String>,
    /// `--link` variables for the spec, until the backend takes them.
    link_env: Vec<String>,
    /// `--link` targets: (id, the names of its /etc/hosts line).
    links: Vec<(String, String)>,
    /// `--link` targets that were not running at create: their variables
    /// and hosts lines are made at the first start.
    pending_links: Vec<links::Target>,
    /// Started since it joined its networks (a created container has
    /// endpoints but does not run: no link to it yet).
    started: bool,
}

/// What berthd keeps of an [`Attached`] in the container's directory
/// (`network.json`), so a restarted berthd finds its containers'
/// networks again; libnetwork keeps the sandbox and endpoints.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    name: String,
    hostname: String,
    extra: Vec<(String, IpAddr)>,
    parked: Vec<(String, String, EndpointConfig)>,
    #[serde(default)]
    shared_by: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    links: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_links: Vec<links::Target>,
    #[serde(default = "yes")]
    started: bool,
}

fn yes() -> bool {
    true
}

const SAVED: &str = "network.json";

impl Attached {
    /// Writes `network.json` next to the hosts file (temp file, rename).
    fn save(&self) {
        let saved = Saved {
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            extra: self.extra.clone(),
            parked: self.parked.clone(),
            shared_by: self.shared_by.clone(),
            links: self.links.clone(),
            pending_links: self.pending_links.clone(),
            started: self.started,
        };
        let path = self.hosts.with_file_name(SAVED);
        let tmp = self.hosts.with_file_name(".network.json.tmp");
        let written = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|j| std::fs::write(&tmp, j))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "saving the container's networks");
        }
    }

    /// Rewrites /etc/hosts in place (it is bind-mounted, so the inode
    /// stays): one line per address on each joined network, as Docker
    /// does on `network connect`.
    fn write_hosts(&self) -> std::io::Result<()> {
        let addrs: Vec<IpAddr> = self
            .endpoints
            .values()
            .flat_map(|e| e.addresses.iter().map(|a| a.addr()))
            .collect();
        std::fs::write(&self.hosts, hosts_file(&self.hostname, &addrs, &self.extra))
    }
}

/// berthd's networks: one libnetwork controller and the sandboxes and
/// endpoints of the containers.
pub struct Networking {
    ctl: Arc<Controller>,
    /// The namespace managed as the host (`--network host` joins it).
    host_netns: PathBuf,
    attached: Mutex<HashMap<String, Attached>>,
}

impl std::fmt::Debug for Networking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networking").finish_non_exhaustive()
    }
}

impl Networking {
    /// Starts the controller (state in `state_dir`) on the namespace at
    /// `host_netns` and makes sure the default `bridge` network exists.
    pub async fn start(state_dir: &Path, host_netns: &Path) -> Result<Arc<Networking>> {
        Self::start_with(state_dir, host_netns, &DefaultBridge::default()).await
    }

    /// [`start`](Self::start) with the default `bridge` shaped by `bridge`
    /// (dockerd's `--ipv6 --fixed-cidr-v6`). A default bridge an earlier
    /// run left with other IPv6 settings is made again, as dockerd does,
    /// unless containers are still on it.
    pub async fn start_with(
        state_dir: &Path,
        host_netns: &Path,
        bridge: &DefaultBridge,
    ) -> Result<Arc<Networking>> {
        let ctl = Controller::new(ControllerConfig::new(state_dir).host_netns(host_netns))
            .await
            .map_err(net_err)?;
        let wanted_v6 = bridge.ipv6_subnet.as_deref();
        let existing = ctl.network(DEFAULT_NETWORK).await.ok();
        if let Some(n) = &existing {
            let v6 = n
                .subnets
                .iter()
                .map(|s| s.subnet)
                .find(|s| s.addr().is_ipv6());
            if v6.map(|s| s.to_string()).as_deref() != wanted_v6 {
                ctl.delete_network(&n.id).await.map_err(|e| {
                    Error::conflict(format!(
                        "--ipv6/--fixed-cidr-v6 change the default bridge, which has containers ({e}); remove them first"
                    ))
                })?;
            }
        }
        if ctl.network(DEFAULT_NETWORK).await.is_err() {
            let parse = |s: &str| {
                s.parse()
                    .map_err(|e| Error::bad_request(format!("subnet {s}: {e}")))
            };
            let mut cfg = NetworkConfig::builder(DEFAULT_NETWORK, "bridge")
                .subnet(parse(DEFAULT_SUBNET)?)
                .option("name", DEFAULT_BRIDGE);
            if let Some(v6) = wanted_v6 {
                cfg = cfg.subnet(parse(v6)?).enable_ipv6(true);
            }
            ctl.create_network(cfg.build()).await.map_err(net_err)?;
        }
        Ok(Arc::new(Networking {
            ctl,
            host_netns: host_netns.to_path_buf(),
            attached: Mutex::new(HashMap::new()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Attached>> {
        self.attached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the container's sandbox and joins its network; writes its
    /// hosts and resolv.conf files into `dir`.
    pub async fn attach_container(
        &self,
        id: &str,
        name: &str,
        hostname: &str,
        body: &ContainerCreateBody,
        dir: &Path,
        links: &[links::Target],
    ) -> Result<NetSpec> {
        let host = &body.host_config.clone().unwrap_or_default();
        let net = match mode(host)? {
            Mode::Host if !links.is_empty() => {
                return Err(Error::bad_request(
                    "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                ))
            }
            Mode::None if !links.is_empty() => {
                return Err(Error::bad_request(
                    "--link is only supported on the default bridge network",
                ))
            }
            Mode::None => return Ok(NetSpec::Isolated),
            Mode::Host => return self.host_mode(host, dir).await,
            Mode::Container(target) => {
                // The backend resolves and checks the target first.
                return self.shared_with(id, &target).ok_or_else(|| {
                    Error::bad_request(format!("container {target} has no network namespace"))
                });
            }
            // 400, not 404: the docker CLI answers a 404 by pulling the image.
            Mode::Network(n) => self
                .ctl
                .network(&n)
                .await
                .map_err(|_| Error::bad_request(format!("network {n} not found")))?,
        };
        let mut ports = port_mappings(host)?;
        if host.publish_all_ports == Some(true) {
            ports.extend(publish_all(body.config.exposed_ports.as_ref(), &ports)?);
        }
        self.pick_free_ports(&mut ports);
        let dns = net.config.name != DEFAULT_NETWORK;
        let mut extra = extra_hosts(host, &net)?;
        let (link_env, link_hosts, pending_links) = self.linked(name, links, dns, &mut extra)?;
        // --network-alias and --ip, keyed by the network as the client named it.
        let wanted = host.network_mode.as_deref().unwrap_or("");
        let settings = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .and_then(|m| m.get(wanted).or_else(|| m.get(&net.config.name)));
        let resolver_links = if dns {
            resolver_links(links, settings)?
        } else {
            BTreeMap::new()
        };
        let mut ep = endpoint_config(name, &net, settings)?;
        if let Some(m) = body.config.mac_address.as_deref().filter(|m| !m.is_empty()) {
            ep.mac = ep.mac.or(Some(parse_mac(m)?));
        }
        check_host_families(&ports, &net, name)?;
        ep.aliases.push(hostname.to_string());
        ep.ports = ports;
        if !dns {
            ep.aliases.clear();
        }
        let mut seen = std::collections::HashSet::new();
        ep.aliases.retain(|a| a != name && seen.insert(a.clone()));
        let sb = self
            .ctl
            .create_sandbox(SandboxConfig {
                links: resolver_links,
                ..SandboxConfig::new(id)
                    .hostname(hostname)
                    .embedded_dns(dns)
                    .dns_servers(dns_servers(host)?)
            })
            .await
            .map_err(net_err)?;
        let ep = match self.ctl.attach(&net.id, &sb.id, ep).await {
            Ok(ep) => ep,
            Err(e) => {
                let _ = self.ctl.delete_sandbox(&sb.id).await;
                return Err(attach_err(e, name));
            }
        };
        let hosts = dir.join("hosts");
        let resolv_conf = dir.join("resolv.conf");
        let base = if dns {
            std::fs::read_to_string(self.ctl.resolv_conf_path(&sb.id))
        } else {
            std::fs::read_to_string("/etc/resolv.conf").map(|t| host_resolv_conf(&t))
        };
        let netns = sb.netns_path.clone();
        let attached = Attached {
            name: name.to_string(),
            sandbox: sb,
            endpoints: BTreeMap::from([(net.config.name.clone(), ep)]),
            parked: Vec::new(),
            hostname: hostname.to_string(),
            hosts: hosts.clone(),
            resolv_conf: resolv_conf.clone(),
            extra,
            shared_by: BTreeSet::new(),
            link_env,
            links: link_hosts,
            pending_links,
            started: false,
        };
        let written = base
            .and_then(|b| std::fs::write(&resolv_conf, resolv_conf_text(&b, host, dns)))
            .and_then(|_| attached.write_hosts());
        attached.save();
        self.lock().insert(id.to_string(), attached);
        if let Err(e) = written {
            self.release(id).await;
            return Err(Error::internal(format!("writing hosts/resolv.conf: {e}")));
        }
        Ok(NetSpec::Joined {
            netns,
            hosts: Some(hosts),
            resolv_conf: Some(resolv_conf),
        })
    }

    /// `--link` targets of container `name` on the default bridge (on a
    /// user-defined network they are resolver names instead): their
    /// /etc/hosts entries go into `extra`; returns the link variables and
    /// (target id, hosts names) to follow the targets' restarts.
    fn linked(
        &self,
        name: &str,
        links: &[links::Target],
        user_network: bool,
        extra: &mut Vec<(String, IpAddr)>,
    ) -> Result<Linked> {
        if links.is_empty() {
            return Ok(Default::default());
        }
        if user_network {
            // Names in the sandbox's resolver instead (resolver_links).
            return Ok(Default::default());
        }
        let map = self.lock();
        let mut env = Vec::new();
        let mut hosts = Vec::new();
        let mut pending = Vec::new();
        for t in links {
            hosts.push((t.id.clone(), links::hosts_names(t)));
            if !t.running {
                // Accepted at create as Docker; start checks it again.
                pending.push(t.clone());
                continue;
            }
            let (addrs, v4) = Self::link_addrs(&map, t)?;
            extra.extend(addrs.iter().map(|a| links::hosts_entry(t, *a)));
            env.extend(links::env_vars(name, t, v4));
        }
        Ok((env, hosts, pending))
    }

    /// The default-bridge addresses of link target `t`, and its IPv4 one
    /// (the link variables'), or Docker's error when it has none.
    fn link_addrs(
        map: &HashMap<String, Attached>,
        t: &links::Target,
    ) -> Result<(Vec<IpAddr>, IpAddr)> {
        let addrs: Vec<IpAddr> = map
            .get(&t.id)
            .and_then(|a| a.endpoints.get(DEFAULT_NETWORK))
            .map(|ep| ep.addresses.iter().map(|a| a.addr()).collect())
            .unwrap_or_default();
        match addrs.iter().find(|a| a.is_ipv4()).copied() {
            Some(v4) => Ok((addrs, v4)),
            None => Err(Error::bad_request(format!(
                "Cannot link to /{}, as it does not belong to the default network",
                t.name
            ))),
        }
    }

    /// At the first start of container `id`: the variables and /etc/hosts
    /// lines of the links whose targets did not run at create (they run
    /// now: [`check_links_running`](Self::check_links_running) came first).
    /// The variables go into the bundle's spec, which the shim reads.
    fn resolve_pending_links(&self, id: &str) -> Result<()> {
        let mut map = self.lock();
        let Some(a) = map.get(id).filter(|a| !a.pending_links.is_empty()) else {
            return Ok(());
        };
        let mut env = Vec::new();
        let mut lines = Vec::new();
        for t in &a.pending_links {
            let (addrs, v4) = Self::link_addrs(&map, t)?;
            env.extend(links::env_vars(&a.name, t, v4));
            lines.extend(addrs.iter().map(|ip| links::hosts_entry(t, *ip)));
        }
        let bundle = a.hosts.parent().map(Path::to_path_buf).unwrap_or_default();
        links::add_env_to_bundle(&bundle, &env)
            .map_err(|e| Error::internal(format!("adding the link variables to the spec: {e}")))?;
        let Some(a) = map.get_mut(id) else {
            return Ok(());
        };
        let names: BTreeSet<String> = lines.iter().map(|(n, _)| n.clone()).collect();
        a.extra.retain(|(n, _)| !names.contains(n));
        a.extra.extend(lines);
        a.pending_links.clear();
        a.save();
        a.write_hosts()
            .map_err(|e| Error::internal(format!("writing {}: {e}", a.hosts.display())))
    }

    /// Container `id` joined the default bridge again (with new
    /// addresses): the /etc/hosts lines of the containers linked to it
    /// follow, as Docker's parent hosts updates.
    fn update_linking_hosts(map: &mut HashMap<String, Attached>, id: &str) {
        let addrs: Vec<IpAddr> = map
            .get(id)
            .and_then(|a| a.endpoints.get(DEFAULT_NETWORK))
            .map(|ep| ep.addresses.iter().map(|a| a.addr()).collect())
            .unwrap_or_default();
        if addrs.is_empty() {
            return;
        }
        for p in map.values_mut() {
            let names: Vec<String> = (p.links.iter())
                .filter(|(t, _)| t == id)
                .map(|(_, n)| n.clone())
                .collect();
            for n in &names {
                p.extra.retain(|(e, _)| e != n);
                p.extra.extend(addrs.iter().map(|a| (n.clone(), *a)));
            }
            if !names.is_empty() {
                p.save();
                if let Err(e) = p.write_hosts() {
                    tracing::warn!(container = %p.name, error = %e, "updating a link in /etc/hosts");
                }
            }
        }
    }

    /// Docker checks legacy links at every start: each target must run
    /// (be joined to its networks, not parked).
    fn check_links_running(&self, id: &str) -> Result<()> {
        let map = self.lock();
        let Some(a) = map.get(id) else {
            return Ok(());
        };
        for (target, names) in &a.links {
            let t = map.get(target);
            if t.is_some_and(|t| t.started && !t.endpoints.is_empty()) {
                continue;
            }
            let alias = names.split(' ').next().unwrap_or(names);
            let tname = t.map_or(target.as_str(), |t| t.name.as_str());
            return Err(Error::conflict(format!(
                "Cannot link to a non running container: /{tname} AS /{}/{alias}",
                a.name
            )));
        }
        Ok(())
    }

    /// The `--link` variables of a container just attached (once).
    pub fn take_link_env(&self, id: &str) -> Vec<String> {
        self.lock()
            .get_mut(id)
            .map(|a| std::mem::take(&mut a.link_env))
            .unwrap_or_default()
    }

    /// `--network host`: the namespace managed as the host (not
    /// berthd's own, which differs under `--network-host-netns`), with
    /// the host's /etc/hosts (plus `--add-host`) and resolv.conf (with
    /// the `--dns*` flags), as Docker.
    async fn host_mode(&self, host: &HostConfig, dir: &Path) -> Result<NetSpec> {
        let bridge = self.ctl.network(DEFAULT_NETWORK).await.map_err(net_err)?;
        let extra = extra_hosts(host, &bridge)?;
        let mut hosts_text =
            std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts_file("", &[], &[]));
        if !hosts_text.ends_with('\n') {
            hosts_text.push('\n');
        }
        for (name, a) in &extra {
            hosts_text.push_str(&format!("{a}\t{name}\n"));
        }
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (hosts, resolv_conf) = (dir.join("hosts"), dir.join("resolv.conf"));
        std::fs::write(&hosts, hosts_text)
            .and_then(|_| std::fs::write(&resolv_conf, resolv_conf_text(&resolv, host, false)))
            .map_err(|e| Error::internal(format!("writing hosts/resolv.conf: {e}")))?;
        Ok(NetSpec::Joined {
            netns: self.host_netns.clone(),
            hosts: Some(hosts),
            resolv_conf: Some(resolv_conf),
        })
    }

    /// `--network container:TARGET` for container `joiner`: the namespace
    /// and files of `target` (an id), if it has a sandbox. The joiner's
    /// later starts are checked against the target's state
    /// ([`unpark`](Self::unpark)).
    pub fn shared_with(&self, joiner: &str, target: &str) -> Option<NetSpec> {
        let mut map = self.lock();
        let a = map.get_mut(target)?;
        if a.shared_by.insert(joiner.to_string()) {
            a.save();
        }
        Some(NetSpec::Joined {
            netns: a.sandbox.netns_path.clone(),
            hosts: Some(a.hosts.clone()),
            resolv_conf: Some(a.resolv_conf.clone()),
        })
    }

    /// Gives mappings without a host port the lowest free one of the
    /// ephemeral range (free among our endpoints; the firewall's DNAT
    /// takes precedence over host sockets anyway).
    fn pick_free_ports(&self, ports: &mut [PortMapping]) {
        let mut used: std::collections::HashSet<(Proto, u16)> = self
            .lock()
            .values()
            .flat_map(|a| a.endpoints.values())
            .flat_map(|e| e.config.ports.iter())
            .flat_map(|p| {
                let (lo, hi) = p.host_range();
                (lo..=hi).map(move |n| (p.proto, n))
            })
            .collect();
        used.extend(ports.iter().map(|p| (p.proto, p.host_port)));
        for p in ports.iter_mut().filter(|p| p.host_port == 0) {
            if let Some(n) = EPHEMERAL_PORTS
                .clone()
                .find(|n| !used.contains(&(p.proto, *n)))
            {
                p.host_port = n;
                used.insert((p.proto, n));
            }
        }
    }

    /// After a berthd restart: the sandboxes and endpoints libnetwork kept,
    /// matched with the `network.json` of each container under
    /// `containers` (running containers stay joined; stopped ones keep
    /// their parked networks for the next start). A sandbox whose
    /// container is gone (a crash mid-create) is deleted.
    pub async fn restore(&self, containers: &Path) {
        let endpoints = self.ctl.endpoints().await;
        let networks = self.ctl.networks().await;
        for sb in self.ctl.sandboxes().await {
            let dir = containers.join(&sb.config.container_id);
            let saved = std::fs::read(dir.join(SAVED))
                .map_err(|e| e.to_string())
                .and_then(|j| serde_json::from_slice::<Saved>(&j).map_err(|e| e.to_string()));
            let saved = match saved {
                Ok(s) => s,
                Err(e) if dir.exists() => {
                    tracing::warn!(dir = %dir.display(), error = %e, "container networks not restored");
                    continue;
                }
                Err(_) => {
                    tracing::info!(sandbox = %sb.id, "deleting the sandbox of a container that is gone");
                    for ep in endpoints
                        .iter()
                        .filter(|e| e.sandbox_id.as_ref() == Some(&sb.id))
                    {
                        let _ = self.ctl.detach(&ep.id).await;
                    }
                    let _ = self.ctl.delete_sandbox(&sb.id).await;
                    continue;
                }
            };
            let joined = endpoints
                .iter()
                .filter(|e| e.sandbox_id.as_ref() == Some(&sb.id))
                .filter_map(|e| {
                    let net = networks.iter().find(|n| n.id == e.network_id)?;
                    Some((net.config.name.clone(), e.clone()))
                })
                .collect();
            let attached = Attached {
                name: saved.name,
                sandbox: sb.clone(),
                endpoints: joined,
                parked: saved.parked,
                hostname: saved.hostname,
                hosts: dir.join("hosts"),
                resolv_conf: dir.join("resolv.conf"),
                extra: saved.extra,
                shared_by: saved.shared_by,
                link_env: Vec::new(),
                links: saved.links,
                pending_links: saved.pending_links,
                started: saved.started,
            };
            self.lock().insert(sb.config.container_id.clone(), attached);
        }
    }

    /// A container stopped: leave its networks (freeing its addresses,
    /// published ports and DNS names, as Docker) but keep its namespace,
    /// which its spec names, for the next start.
    pub async fn park(&self, id: &str) {
        let eps: Vec<(String, EndpointInfo)> = match self.lock().get_mut(id) {
            Some(a) => std::mem::take(&mut a.endpoints).into_iter().collect(),
            None => return,
        };
        let mut parked = Vec::new();
        for (net, ep) in eps {
            if let Err(e) = self.ctl.detach(&ep.id).await {
                tracing::warn!(%id, error = %e, "leaving a network at container exit");
            }
            parked.push((net, ep.network_id, ep.config));
        }
        if let Some(a) = self.lock().get_mut(id) {
            a.parked.extend(parked);
            a.started = false;
            a.save();
        }
    }

    /// A container starts again: join the networks [`park`](Self::park)
    /// left; on failure (a port taken meanwhile) nothing stays joined.
    pub async fn unpark(&self, id: &str) -> Result<()> {
        // A container sharing a stopped container's namespace would start
        // with loopback only; Docker refuses.
        if let Some(t) = self.lock().values().find(|a| a.shared_by.contains(id)) {
            if t.endpoints.is_empty() && !t.parked.is_empty() {
                return Err(Error::conflict(format!(
                    "cannot join network of a non running container: {}",
                    t.name
                )));
            }
        }
        self.check_links_running(id)?;
        self.resolve_pending_links(id)?;
        let (parked, sb) = match self.lock().get_mut(id) {
            Some(a) if !a.parked.is_empty() => {
                (std::mem::take(&mut a.parked), a.sandbox.id.clone())
            }
            Some(a) => {
                if !a.started {
                    a.started = true;
                    a.save();
                }
                return Ok(());
            }
            None => return Ok(()),
        };
        let mut joined = Vec::new();
        for (net, net_id, cfg) in &parked {
            match self.ctl.attach(net_id, &sb, cfg.clone()).await {
                Ok(ep) => joined.push((net.clone(), ep)),
                Err(e) => {
                    for (_, ep) in &joined {
                        let _ = self.ctl.detach(&ep.id).await;
                    }
                    if let Some(a) = self.lock().get_mut(id) {
                        a.parked = parked;
                    }
                    return Err(net_err(e));
                }
            }
        }
        let mut map = self.lock();
        let Some(a) = map.get_mut(id) else {
            return Ok(());
        };
        a.endpoints.extend(joined);
        a.started = true;
        a.save();
        let written = a
            .write_hosts()
            .map_err(|e| Error::internal(format!("writing {}: {e}", a.hosts.display())));
        Self::update_linking_hosts(&mut map, id);
        written
    }

    /// Leaves and deletes the container's endpoints and its sandbox.
    pub async fn release(&self, id: &str) {
        let removed = {
            let mut map = self.lock();
            for t in map.values_mut().filter(|t| t.shared_by.contains(id)) {
                t.shared_by.remove(id);
                t.save();
            }
            map.remove(id)
        };
        let Some(a) = removed else {
            return;
        };
        if let Err(e) = self.ctl.delete_sandbox(&a.sandbox.id).await {
            tracing::warn!(%id, error = %e, "deleting the network sandbox");
        }
        for ep in a.endpoints.values() {
            if let Err(e) = self.ctl.delete_endpoint(&ep.id).await {
                tracing::warn!(%id, error = %e, "deleting a network endpoint");
            }
        }
    }

    /// The published ports and networks of a `docker ps` row.
    pub fn summarize(&self, c: &mut libswarm::models::ContainerSummary) {
        use libswarm::models::{ContainerSummaryNetworkSettings, Port, PortTypeEnum};
        let Some(id) = c.id.clone() else { return };
        let map = self.lock();
        let Some(a) = map.get(&id) else { return };
        let mut ports = Vec::new();
        for ep in a.endpoints.values() {
            for p in &ep.config.ports {
                for ip in host_bindings(p, ep) {
                    ports.push(Port {
                        ip: Some(ip),
                        private_port: p.container_port,
                        public_port: Some(p.host_port),
                        typ: Some(match p.proto {
                            Proto::Tcp => PortTypeEnum::TCP,
                            Proto::Udp => PortTypeEnum::UDP,
                            Proto::Sctp => PortTypeEnum::SCTP,
                        }),
                    });
                }
            }
        }
        c.ports = Some(ports);
        c.network_settings = Some(ContainerSummaryNetworkSettings {
            networks: Some(
                a.endpoints
                    .iter()
                    .map(|(n, ep)| (n.clone(), endpoint_settings(ep)))
                    .collect(),
            ),
        });
    }

    /// `NetworkSettings` for inspect.
    pub fn settings(&self, id: &str) -> Option<NetworkSettings> {
        let map = self.lock();
        let a = map.get(id)?;
        let networks: HashMap<String, EndpointSettings> = a
            .endpoints
            .iter()
            .map(|(n, ep)| (n.clone(), endpoint_settings(ep)))
            .collect();
        let mut s = NetworkSettings {
            sandbox_id: Some(a.sandbox.id.clone()),
            sandbox_key: Some(a.sandbox.netns_path.display().to_string()),
            ..Default::default()
        };
        if let Some(ep) = a.endpoints.get(DEFAULT_NETWORK) {
            let e = endpoint_settings(ep);
            s.endpoint_id = e.endpoint_id;
            s.ip_address = e.ip_address;
            s.ip_prefix_len = e.ip_prefix_len;
            s.gateway = e.gateway;
            s.mac_address = e.mac_address;
            s.bridge = Some(DEFAULT_BRIDGE.into());
        }
        let mut ports = HashMap::new();
        for ep in a.endpoints.values() {
            for p in &ep.config.ports {
                let proto = match p.proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                    Proto::Sctp => "sctp",
                };
                let bindings = ports
                    .entry(format!("{}/{proto}", p.container_port))
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new);
                for ip in host_bindings(p, ep) {
                    bindings.push(PortBinding {
                        host_ip: Some(ip),
                        host_port: Some(p.host_port.to_string()),
                    });
                }
            }
        }
        s.ports = Some(ports);
        s.networks = Some(networks);
        Some(s)
    }

    /// `docker network create`.
    pub async fn create(&self, req: NetworkCreateRequest) -> Result<String> {
        if req.name.is_empty() || !libswarm::util::valid_name(&req.name) {
            return Err(Error::bad_request(format!(
                "invalid network name {:?}",
                req.name
            )));
        }
        if self.ctl.network(&req.name).await.is_ok() {
            return Err(Error::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let driver = req.driver.clone().filter(|d| !d.is_empty());
        let mut b = NetworkConfig::builder(&req.name, driver.as_deref().unwrap_or("bridge"))
            .internal(req.internal.unwrap_or(false))
            .enable_ipv6(req.enable_ipv6.unwrap_or(false));
        let pools = req
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default();
        let given = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
        for p in pools {
            let bad = |f: &str, v: &str| Error::bad_request(format!("invalid {f} {v:?}"));
            let mut pool = IpamPoolConfig::default();
            if let Some(s) = given(&p.subnet) {
                pool.subnet = Some(s.parse().map_err(|_| bad("--subnet", &s))?);
            }
            if let Some(s) = given(&p.ip_range) {
                pool.ip_range = Some(s.parse().map_err(|_| bad("--ip-range", &s))?);
            }
            if let Some(s) = given(&p.gateway) {
                pool.gateway = Some(s.parse().map_err(|_| bad("--gateway", &s))?);
            }
            b = b.pool(pool);
        }
        for (k, v) in req.options.iter().flatten() {
            let k = k.strip_prefix("com.docker.network.bridge.").unwrap_or(k);
            b = b.option(k, v);
        }
        for (k, v) in req.labels.iter().flatten() {
            b = b.label(k, v);
        }
        let info = self.ctl.create_network(b.build()).await.map_err(net_err)?;
        Ok(info.id)
    }

    fn to_model(&self, n: &NetworkInfo) -> Network {
        let map = self.lock();
        let containers = map
            .iter()
            .filter_map(|(cid, a)| {
                let ep = a.endpoints.values().find(|e| e.network_id == n.id)?;
                let v4 = ep.addresses.iter().find(|a| a.addr().is_ipv4());
                let v6 = ep.addresses.iter().find(|a| a.addr().is_ipv6());
                Some((
                    cid.clone(),
                    NetworkContainer {
                        name: Some(a.name.clone()),
                        endpoint_id: Some(ep.id.clone()),
                        ipv4_address: v4.map(|a| a.to_string()),
                        ipv6_address: v6.map(|a| a.to_string()),
                        mac_address: Some(ep.mac.map(|m| m.to_string()).unwrap_or_default()),
                    },
                ))
            })
            .collect();
        Network {
            name: Some(n.config.name.clone()),
            id: Some(n.id.clone()),
            scope: Some("local".into()),
            driver: Some(n.config.driver.clone()),
            enable_ipv6: Some(n.subnets.iter().any(|s| s.subnet.addr().is_ipv6())),
            ipam: Some(Ipam {
                driver: Some(n.config.ipam_driver.clone()),
                config: Some(
                    n.subnets
                        .iter()
                        .map(|s| IpamConfig {
                            subnet: Some(s.subnet.to_string()),
                            ip_range: s.range.map(|r| r.to_string()),
                            gateway: s.gateway.map(|g| g.to_string()),
                            auxiliary_addresses: None,
                        })
                        .collect(),
                ),
                options: None,
            }),
            internal: Some(n.config.internal),
            attachable: Some(false),
            ingress: Some(false),
            containers: Some(containers),
            options: Some(n.config.options.clone().into_iter().collect()),
            labels: Some(n.config.labels.clone().into_iter().collect()),
            ..Default::default()
        }
    }

    /// `docker network ls`.
    pub async fn list(&self, options: &NetworkListOptions) -> Vec<Network> {
        let mut nets = self.ctl.networks().await;
        nets.retain(|n| {
            filter_matches(&options.filters, "name", |w| n.config.name.contains(w))
                && filter_matches(&options.filters, "id", |w| n.id.starts_with(w))
                && filter_matches(&options.filters, "driver", |w| n.config.driver == w)
        });
        nets.iter().map(|n| self.to_model(n)).collect()
    }

    /// `docker network inspect`.
    pub async fn inspect(&self, key: &str) -> Result<Network> {
        let n = self.ctl.network(key).await.map_err(net_err)?;
        Ok(self.to_model(&n))
    }

    /// `docker network rm`.
    pub async fn remove(&self, key: &str) -> Result<()> {
        let n = self.ctl.network(key).await.map_err(net_err)?;
        if n.config.name == DEFAULT_NETWORK {
            return Err(Error::conflict(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
        let users: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, a)| a.endpoints.values().any(|e| e.network_id == n.id))
            .map(|(_, a)| a.name.clone())
            .collect();
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                n.config.name,
                n.id,
                users.join(", ")
            )));
        }
        self.ctl.delete_network(&n.id).await.map_err(net_err)
    }

    /// `docker network connect`: a new endpoint joined to the container's
    /// sandbox (`--alias`, `--ip`, `--ip6`); its address goes into the
    /// container's /etc/hosts.
    pub async fn connect(
        &self,
        network: &str,
        id: &str,
        settings: Option<&EndpointSettings>,
    ) -> Result<()> {
        let n = self.ctl.network(network).await.map_err(net_err)?;
        let (sb, name) = {
            let map = self.lock();
            let a = map.get(id).ok_or_else(|| {
                Error::bad_request(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                )
            })?;
            let on = |net: &str| {
                a.endpoints.contains_key(net) || a.parked.iter().any(|(p, _, _)| p == net)
            };
            if on(&n.config.name) {
                return Err(Error::conflict(format!(
                    "endpoint with name {} already exists in network {}",
                    a.name, n.config.name
                )));
            }
            (a.sandbox.id.clone(), a.name.clone())
        };
        let links = self.connect_links(&n, settings)?;
        let cfg = endpoint_config(&name, &n, settings)?;
        let ep = self
            .ctl
            .attach(&n.id, &sb, cfg)
            .await
            .map_err(|e| attach_err(e, &name))?;
        if !links.is_empty() {
            if let Err(e) = self.ctl.add_sandbox_links(&sb, &links).await {
                let _ = self.ctl.detach(&ep.id).await;
                return Err(net_err(e));
            }
        }
        let (orphan, written) = {
            let mut map = self.lock();
            match map.get_mut(id) {
                Some(a) => {
                    a.endpoints.insert(n.config.name.clone(), ep);
                    a.save();
                    (None, a.write_hosts())
                }
                None => (Some(ep.id), Ok(())),
            }
        };
        if let Some(ep) = orphan {
            // The container went away meanwhile.
            let _ = self.ctl.detach(&ep).await;
        }
        written.map_err(|e| Error::internal(format!("updating /etc/hosts: {e}")))
    }

    /// `network connect --link NAME:ALIAS`: resolver names, on
    /// user-defined networks only, for containers berthd networks.
    fn connect_links(
        &self,
        n: &NetworkInfo,
        settings: Option<&EndpointSettings>,
    ) -> Result<BTreeMap<String, String>> {
        let wanted = resolver_links(&[], settings)?;
        if wanted.is_empty() {
            return Ok(wanted);
        }
        if n.config.name == DEFAULT_NETWORK {
            return Err(Error::bad_request(CONNECT_LINKS));
        }
        let map = self.lock();
        let mut out = BTreeMap::new();
        for (alias, target) in wanted {
            // The resolver knows containers by name: an id becomes one.
            let name = (map.iter())
                .find(|(id, a)| a.name == target || id.starts_with(target.as_str()))
                .map(|(_, a)| a.name.clone())
                .ok_or_else(|| {
                    Error::bad_request(format!("could not get container for {target}"))
                })?;
            out.insert(alias, name);
        }
        Ok(out)
    }

    /// `docker network disconnect`; the address leaves /etc/hosts.
    pub async fn disconnect(&self, network: &str, id: &str) -> Result<()> {
        let n = self.ctl.network(network).await.map_err(net_err)?;
        let (ep, written) = {
            let mut map = self.lock();
            let found = map.get_mut(id).and_then(|a| {
                let parked = a.parked.len();
                a.parked.retain(|(net, _, _)| *net != n.config.name);
                let ep = a.endpoints.remove(&n.config.name);
                let changed = ep.is_some() || a.parked.len() != parked;
                changed.then(|| {
                    a.save();
                    (ep, a.write_hosts())
                })
            });
            found.ok_or_else(|| {
                Error::conflict(format!(
                    "container {id} is not connected to network {}",
                    n.config.name
                ))
            })?
        };
        if let Some(ep) = ep {
            self.ctl.detach(&ep.id).await.map_err(net_err)?;
        }
        written.map_err(|e| Error::internal(format!("updating /etc/hosts: {e}")))
    }
}

fn endpoint_settings(ep: &EndpointInfo) -> EndpointSettings {
    let v4 = ep.addresses.iter().find(|a| a.addr().is_ipv4());
    let v6 = ep.addresses.iter().find(|a| a.addr().is_ipv6());
    EndpointSettings {
        network_id: Some(ep.network_id.clone()),
        endpoint_id: Some(ep.id.clone()),
        ip_address: v4.map(|a| a.addr().to_string()),
        ip_prefix_len: v4.map(|a| i64::from(a.prefix_len())),
        global_ipv6_address: v6.map(|a| a.addr().to_string()),
        global_ipv6_prefix_len: v6.map(|a| i64::from(a.prefix_len())),
        mac_address: ep.mac.map(|m| m.to_string()),
        aliases: Some(ep.config.aliases.clone()),
        dns_names: Some(
            std::iter::once(ep.config.name.clone())
                .chain(ep.config.aliases.iter().cloned())
                .collect(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_ports_parse() {
        let mut h = HostConfig::default();
        assert_eq!(mode(&h).unwrap(), Mode::Network("bridge".into()));
        h.network_mode = Some("none".into());
        assert_eq!(mode(&h).unwrap(), Mode::None);
        h.network_mode = Some("container:x".into());
        assert_eq!(mode(&h).unwrap(), Mode::Container("x".into()));
        h.network_mode = Some("container:".into());
        assert!(mode(&h).is_err());
        h.network_mode = Some("container:x".into());
        let mut body = ContainerCreateBody {
            host_config: Some(h.clone()),
            ..Default::default()
        };
        assert!(check_container_mode(&body).is_ok());
        body.config.hostname = Some("h".into());
        let e = check_container_mode(&body).unwrap_err();
        assert!(
            e.to_string().contains("conflicting options: hostname"),
            "{e}"
        );
        body.config.hostname = None;
        h.publish_all_ports = Some(true);
        body.host_config = Some(h.clone());
        let e = check_container_mode(&body).unwrap_err();
        assert!(e.to_string().contains("port publishing"), "{e}");
        h.publish_all_ports = None;
        h.network_mode = None;
        h.port_bindings = Some(HashMap::from([(
            "80/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some(String::new()),
                host_port: Some("8080".into()),
            }]),
        )]));
        let p = port_mappings(&h).unwrap();
        assert_eq!((p[0].host_port, p[0].container_port), (8080, 80));
        assert_eq!(p[0].host_ip, None);
        h.port_bindings = Some(HashMap::from([(
            "53/udp".to_string(),
            Some(vec![PortBinding::default()]),
        )]));
        let p = port_mappings(&h).unwrap();
        assert_eq!(
            (p[0].proto, p[0].host_port, p[0].container_port),
            (Proto::Udp, 0, 53)
        );
        h.port_bindings = Some(HashMap::from([("x/tcp".to_string(), None)]));
        assert!(port_mappings(&h)
            .unwrap_err()
            .to_string()
            .contains("invalid published port"));
    }

    #[test]
    fn host_addresses_choose_families_and_show_both() {
        let bind = |ip: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some("8080".into()),
        };
        let h = HostConfig {
            port_bindings: Some(HashMap::from([(
                "80/tcp".to_string(),
                Some(vec![
                    bind(""),
                    bind("0.0.0.0"),
                    bind("::"),
                    bind("[fd00::1]"),
                ]),
            )])),
            ..Default::default()
        };
        let got: Vec<_> = port_mappings(&h)
            .unwrap()
            .iter()
            .map(|p| p.host_ip.map(|i| i.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                None,
                Some("0.0.0.0".into()),
                Some("::".into()),
                Some("fd00::1".into())
            ]
        );
        let ep = |addrs: &[&str]| EndpointInfo {
            id: "e".repeat(64),
            network_id: "n".into(),
            config: EndpointConfig::default(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            sandbox_id: None,
            ifname: None,
            host_ifname: None,
            mac: None,
        };
        let any = PortMapping::new(Proto::Tcp, 8080, 80);
        assert_eq!(host_bindings(&any, &ep(&["172.17.0.2/16"])), ["0.0.0.0"]);
        assert_eq!(
            host_bindings(&any, &ep(&["172.17.0.2/16", "fd00::2/64"])),
            ["0.0.0.0", "::"]
        );
        let net = |subnets: &[&str]| NetworkInfo {
            id: "n".repeat(64),
            config: NetworkConfig::builder("bridge", "bridge").build(),
            subnets: subnets
                .iter()
                .map(|s| libnetwork::SubnetInfo {
                    pool_id: String::new(),
                    subnet: s.parse().unwrap(),
                    range: None,
                    gateway: None,
                    aux_addresses: Default::default(),
                })
                .collect(),
        };
        let v6 = PortMapping {
            host_ip: Some("::".parse().unwrap()),
            ..any.clone()
        };
        let e = check_host_families(&[any.clone(), v6.clone()], &net(&["172.17.0.0/16"]), "web")
            .unwrap_err()
            .to_string();
        assert!(e.contains("endpoint web") && e.contains("[::]:8080"), "{e}");
        assert!(check_host_families(&[v6], &net(&["172.17.0.0/16", "fd00::/64"]), "w").is_ok());
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").unwrap().to_string(),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("zz").unwrap_err().to_string(),
            "invalid MAC address zz"
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_resolvers() {
        let r = host_resolv_conf("nameserver 127.0.0.53\nsearch lan\n");
        assert!(!r.contains("127.0.0.53"), "{r}");
        assert!(r.contains("search lan") && r.contains("nameserver 8.8.8.8"));
        let r = host_resolv_conf("nameserver 10.0.0.1\n");
        assert_eq!(r, "nameserver 10.0.0.1\n");
    }

    #[test]
    fn hosts_file_lists_extra_hosts_then_every_address() {
        let addrs = ["172.17.0.2".parse().unwrap(), "10.1.0.5".parse().unwrap()];
        let extra = [("db".to_string(), "10.9.9.9".parse().unwrap())];
        let h = hosts_file("web", &addrs, &extra);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"), "{h}");
        assert!(
            h.ends_with("10.9.9.9\tdb\n172.17.0.2\tweb\n10.1.0.5\tweb\n"),
            "{h}"
        );
    }

    #[test]
    fn dns_flags_rewrite_resolv_conf() {
        let base = "# host\nnameserver 10.0.0.1\nsearch lan\noptions edns0\n";
        let mut h = HostConfig::default();
        assert_eq!(resolv_conf_text(base, &h, false), base);
        h.dns = Some(vec!["1.1.1.1".into(), "9.9.9.9".into()]);
        h.dns_search = Some(vec!["a.example".into(), "b.example".into()]);
        h.dns_options = Some(vec!["ndots:2".into()]);
        assert_eq!(
            resolv_conf_text(base, &h, false),
            "# host\nnameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch a.example b.example\noptions ndots:2\n"
        );
        // The embedded resolver stays the server; it forwards to --dns.
        let r = resolv_conf_text("nameserver 127.0.0.11\noptions ndots:0\n", &h, true);
        assert_eq!(
            r,
            "nameserver 127.0.0.11\nsearch a.example b.example\noptions ndots:2\n"
        );
        h.dns_search = Some(vec![".".into()]);
        assert!(!resolv_conf_text(base, &h, false).contains("search"));
        assert_eq!(dns_servers(&h).unwrap().len(), 2);
        h.dns = Some(vec!["nope".into()]);
        assert!(dns_servers(&h).unwrap_err().to_string().contains("--dns"));
    }

    #[test]
    fn publish_all_skips_published_ports_and_expands_ranges() {
        let exposed = HashMap::from([
            ("80/tcp".to_string(), HashMap::new()),
            ("53/udp".to_string(), HashMap::new()),
            ("7000-7001/tcp".to_string(), HashMap::new()),
        ]);
        let published = [PortMapping::new(Proto::Tcp, 8080, 80)];
        let p = publish_all(Some(&exposed), &published).unwrap();
        let got: Vec<_> = p
            .iter()
            .map(|m| (m.proto, m.host_port, m.container_port))
            .collect();
        assert_eq!(
            got,
            [
                (Proto::Udp, 0, 53),
                (Proto::Tcp, 0, 7000),
                (Proto::Tcp, 0, 7001)
            ]
        );
        let bad = HashMap::from([("x/tcp".to_string(), HashMap::new())]);
        assert!(publish_all(Some(&bad), &[]).is_err());
        let body = with_image_ports(ContainerCreateBody::default(), &["8000/tcp".into()]);
        assert!(body.config.exposed_ports.unwrap().contains_key("8000/tcp"));
    }
}
