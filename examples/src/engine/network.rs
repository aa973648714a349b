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

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use libnetwork::{
    Controller, ControllerConfig, EndpointConfig, EndpointInfo, IpamPoolConfig, NetworkConfig,
    NetworkInfo, PortMapping, Proto, SandboxConfig, SandboxInfo,
};
use libswarm::models::{
    EndpointSettings, HostConfig, Ipam, IpamConfig, Network, NetworkContainer,
    NetworkCreateRequest, NetworkSettings, PortBinding,
};
use libswarm::{filter_matches, ContainerCreateBody, Error, NetworkListOptions, Result};
use oci_spec::runtime::Spec;
use serde_json::json;

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
}

/// `HostConfig.NetworkMode` as a [`Mode`].
pub fn mode(host: &HostConfig) -> Result<Mode> {
    match host.network_mode.as_deref().unwrap_or("") {
        "" | "default" => Ok(Mode::Network(DEFAULT_NETWORK.into())),
        "none" => Ok(Mode::None),
        "host" => Ok(Mode::Host),
        m if m.starts_with("container:") => Err(Error::bad_request(format!(
            "--network {m}: sharing another container's network is not supported by berthd yet"
        ))),
        m => Ok(Mode::Network(m.to_string())),
    }
}

/// What the spec needs to know about a container's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    /// A fresh, empty namespace (also berthd without networking).
    Isolated,
    /// No network namespace of its own.
    Host,
    /// A sandbox namespace with its hosts and resolv.conf files.
    Joined {
        /// The namespace to enter.
        netns: PathBuf,
        /// Bind-mounted at /etc/hosts.
        hosts: PathBuf,
        /// Bind-mounted at /etc/resolv.conf.
        resolv_conf: PathBuf,
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
            for (dest, src) in [("/etc/hosts", hosts), ("/etc/resolv.conf", resolv_conf)] {
                m.push(json!({"destination": dest, "type": "bind", "source": src,
                    "options": ["rbind", "rprivate"]}));
            }
        }
    }
    serde_json::from_value(v).map_err(|e| Error::internal(format!("network spec: {e}")))
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
            m.host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" | "0.0.0.0" | "::" => None,
                ip => Some(ip.parse::<IpAddr>().map_err(|_| bad())?),
            };
            out.push(m);
        }
    }
    Ok(out)
}

/// The /etc/hosts Docker writes: loopback names and the container's own
/// address and hostname.
pub fn hosts_file(hostname: &str, addr: Option<IpAddr>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    if let Some(a) = addr {
        s.push_str(&format!("{a}\t{hostname}\n"));
    }
    s
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
}

/// berthd's networks: one libnetwork controller and the sandboxes and
/// endpoints of the containers.
pub struct Networking {
    ctl: Arc<Controller>,
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
        let ctl = Controller::new(ControllerConfig::new(state_dir).host_netns(host_netns))
            .await
            .map_err(net_err)?;
        if ctl.network(DEFAULT_NETWORK).await.is_err() {
            let subnet = DEFAULT_SUBNET
                .parse()
                .map_err(|e| Error::internal(format!("{e}")))?;
            ctl.create_network(
                NetworkConfig::builder(DEFAULT_NETWORK, "bridge")
                    .subnet(subnet)
                    .option("name", DEFAULT_BRIDGE)
                    .build(),
            )
            .await
            .map_err(net_err)?;
        }
        Ok(Arc::new(Networking {
            ctl,
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
    ) -> Result<NetSpec> {
        let host = &body.host_config.clone().unwrap_or_default();
        let net = match mode(host)? {
            Mode::None => return Ok(NetSpec::Isolated),
            Mode::Host => return Ok(NetSpec::Host),
            // 400, not 404: the docker CLI answers a 404 by pulling the image.
            Mode::Network(n) => self
                .ctl
                .network(&n)
                .await
                .map_err(|_| Error::bad_request(format!("network {n} not found")))?,
        };
        let mut ports = port_mappings(host)?;
        self.pick_free_ports(&mut ports);
        let dns = net.config.name != DEFAULT_NETWORK;
        let sb = self
            .ctl
            .create_sandbox(SandboxConfig::new(id).hostname(hostname).embedded_dns(dns))
            .await
            .map_err(net_err)?;
        let mut ep = EndpointConfig::builder(name);
        if dns && hostname != name {
            ep = ep.alias(hostname);
        }
        // --network-alias, keyed by the network as the client named it.
        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref());
        let wanted = host.network_mode.as_deref().unwrap_or("");
        for a in endpoints
            .and_then(|m| m.get(wanted).or_else(|| m.get(&net.config.name)))
            .and_then(|e| e.aliases.as_ref())
            .into_iter()
            .flatten()
        {
            if dns && a != name && a != hostname {
                ep = ep.alias(a);
            }
        }
        for p in ports {
            ep = ep.port(p);
        }
        let ep = match self.ctl.attach(&net.id, &sb.id, ep.build()).await {
            Ok(ep) => ep,
            Err(e) => {
                let _ = self.ctl.delete_sandbox(&sb.id).await;
                return Err(net_err(e));
            }
        };
        let hosts = dir.join("hosts");
        let resolv_conf = dir.join("resolv.conf");
        let resolv = if dns {
            std::fs::read_to_string(self.ctl.resolv_conf_path(&sb.id))
        } else {
            std::fs::read_to_string("/etc/resolv.conf").map(|t| host_resolv_conf(&t))
        };
        let addr = ep.addresses.first().map(|a| a.addr());
        let written = resolv
            .and_then(|r| std::fs::write(&resolv_conf, r))
            .and_then(|_| std::fs::write(&hosts, hosts_file(hostname, addr)));
        let netns = sb.netns_path.clone();
        self.lock().insert(
            id.to_string(),
            Attached {
                name: name.to_string(),
                sandbox: sb,
                endpoints: BTreeMap::from([(net.config.name.clone(), ep)]),
                parked: Vec::new(),
                hostname: hostname.to_string(),
                hosts: hosts.clone(),
            },
        );
        if let Err(e) = written {
            self.release(id).await;
            return Err(Error::internal(format!("writing hosts/resolv.conf: {e}")));
        }
        Ok(NetSpec::Joined {
            netns,
            hosts,
            resolv_conf,
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
        }
    }

    /// A container starts again: join the networks [`park`](Self::park)
    /// left; on failure (a port taken meanwhile) nothing stays joined.
    pub async fn unpark(&self, id: &str) -> Result<()> {
        let (parked, sb) = match self.lock().get_mut(id) {
            Some(a) if !a.parked.is_empty() => {
                (std::mem::take(&mut a.parked), a.sandbox.id.clone())
            }
            _ => return Ok(()),
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
        let addr = joined
            .first()
            .and_then(|(_, ep)| ep.addresses.first())
            .map(|a| a.addr());
        a.endpoints.extend(joined);
        std::fs::write(&a.hosts, hosts_file(&a.hostname, addr))
            .map_err(|e| Error::internal(format!("writing {}: {e}", a.hosts.display())))
    }

    /// Leaves and deletes the container's endpoints and its sandbox.
    pub async fn release(&self, id: &str) {
        let Some(a) = self.lock().remove(id) else {
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
                ports.push(Port {
                    ip: Some(p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string())),
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
                ports.insert(
                    format!("{}/{proto}", p.container_port),
                    Some(vec![PortBinding {
                        host_ip: Some(p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string())),
                        host_port: Some(p.host_port.to_string()),
                    }]),
                );
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
                        mac_address: Some(String::new()),
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
    /// sandbox.
    pub async fn connect(&self, network: &str, id: &str, aliases: &[String]) -> Result<()> {
        let n = self.ctl.network(network).await.map_err(net_err)?;
        let (sb, name) = {
            let map = self.lock();
            let a = map.get(id).ok_or_else(|| {
                Error::bad_request(format!(
                    "container {id} has no network sandbox (created with --network none/host?)"
                ))
            })?;
            if a.endpoints.contains_key(&n.config.name) {
                return Err(Error::conflict(format!(
                    "endpoint with name {} already exists in network {}",
                    a.name, n.config.name
                )));
            }
            (a.sandbox.id.clone(), a.name.clone())
        };
        let mut ep = EndpointConfig::builder(&name);
        for a in aliases {
            ep = ep.alias(a);
        }
        let ep = self
            .ctl
            .attach(&n.id, &sb, ep.build())
            .await
            .map_err(net_err)?;
        let orphan = {
            let mut map = self.lock();
            match map.get_mut(id) {
                Some(a) => {
                    a.endpoints.insert(n.config.name.clone(), ep);
                    None
                }
                None => Some(ep.id),
            }
        };
        if let Some(ep) = orphan {
            // The container went away meanwhile.
            let _ = self.ctl.detach(&ep).await;
        }
        Ok(())
    }

    /// `docker network disconnect`.
    pub async fn disconnect(&self, network: &str, id: &str) -> Result<()> {
        let n = self.ctl.network(network).await.map_err(net_err)?;
        let ep = self
            .lock()
            .get_mut(id)
            .and_then(|a| {
                a.parked.retain(|(net, _, _)| *net != n.config.name);
                a.endpoints.remove(&n.config.name)
            })
            .ok_or_else(|| {
                Error::conflict(format!(
                    "container {id} is not connected to network {}",
                    n.config.name
                ))
            })?;
        self.ctl.detach(&ep.id).await.map_err(net_err)
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
        assert!(mode(&h).is_err());
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
    fn resolv_conf_drops_loopback_resolvers() {
        let r = host_resolv_conf("nameserver 127.0.0.53\nsearch lan\n");
        assert!(!r.contains("127.0.0.53"), "{r}");
        assert!(r.contains("search lan") && r.contains("nameserver 8.8.8.8"));
        let r = host_resolv_conf("nameserver 10.0.0.1\n");
        assert_eq!(r, "nameserver 10.0.0.1\n");
        assert!(hosts_file("web", "172.17.0.2".parse().ok()).ends_with("172.17.0.2\tweb\n"));
    }
}
