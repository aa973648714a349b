//! The controller: owns networks, endpoints and sandboxes, drives the
//! drivers and IPAM, persists state and runs the embedded resolvers.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

use crate::dns::{self, DnsTable, Resolver};
use crate::driver::{Driver, HostContext, SandboxHandle};
use crate::drivers::{BridgeDriver, HostDriver, NullDriver};
use crate::error::{Error, Result};
use crate::firewall::Nft;
use crate::ipam::{Ipam, LocalIpam, PoolRequest};
use crate::model::{
    EndpointConfig, EndpointInfo, IpamPoolConfig, NetworkConfig, NetworkInfo, SandboxConfig,
    SandboxInfo, SubnetInfo,
};
use crate::netns::{NetNs, NsWorker};
use crate::nl;
use crate::store::Store;

/// How to build a [`Controller`].
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Where networks, endpoints, sandboxes and namespaces are kept.
    pub state_dir: PathBuf,
    /// The namespace to manage; `None` means the caller's.
    pub host_netns: Option<PathBuf>,
    /// Name of our nftables table (family `inet`).
    pub nft_table: String,
    /// Upstream resolvers; `None` reads the host's /etc/resolv.conf.
    pub dns_upstreams: Option<Vec<SocketAddr>>,
    /// Where unknown driver names are looked up as network/IPAM plugins
    /// (Docker's is /run/docker/plugins).
    pub plugin_dir: PathBuf,
}

impl ControllerConfig {
    /// Keep state in `state_dir`, manage the caller's namespace.
    ///
    /// ```
    /// use libnetwork::ControllerConfig;
    /// let cfg = ControllerConfig::new("/run/berth/net")
    ///     .host_netns("/run/netns/fakehost")
    ///     .nft_table("berth");
    /// assert_eq!(cfg.nft_table, "berth");
    /// ```
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ControllerConfig {
            state_dir: state_dir.into(),
            host_netns: None,
            nft_table: "berth".into(),
            dns_upstreams: None,
            plugin_dir: PathBuf::from("/run/docker/plugins"),
        }
    }
    /// Look plugins up in this directory.
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dir = dir.into();
        self
    }
    /// Manage this namespace instead of the caller's.
    pub fn host_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_netns = Some(path.into());
        self
    }
    /// Use this nftables table name.
    pub fn nft_table(mut self, name: impl Into<String>) -> Self {
        self.nft_table = name.into();
        self
    }
    /// Forward unknown names to these servers.
    pub fn dns_upstreams(mut self, servers: Vec<SocketAddr>) -> Self {
        self.dns_upstreams = Some(servers);
        self
    }
}

struct LiveSandbox {
    info: SandboxInfo,
    handle: SandboxHandle,
    resolver: Option<Resolver>,
}

#[derive(Default)]
struct State {
    networks: BTreeMap<String, NetworkInfo>,
    endpoints: BTreeMap<String, EndpointInfo>,
    sandboxes: BTreeMap<String, LiveSandbox>,
}

/// The entry point: create networks, sandboxes and endpoints and plug them
/// together.
///
/// ```no_run
/// # async fn demo() -> libnetwork::Result<()> {
/// use libnetwork::{Controller, ControllerConfig, NetworkConfig, EndpointConfig, SandboxConfig};
/// let ctl = Controller::new(ControllerConfig::new("/run/berth/net")).await?;
/// let net = ctl.create_network(NetworkConfig::builder("web", "bridge").build()).await?;
/// let sb = ctl.create_sandbox(SandboxConfig::new("c1")).await?;
/// let ep = ctl.create_endpoint(&net.id, EndpointConfig::builder("c1").build()).await?;
/// ctl.join(&ep.id, &sb.id).await?;
/// # Ok(()) }
/// ```
pub struct Controller {
    host: HostContext,
    store: Store,
    drivers: RwLock<HashMap<String, Arc<dyn Driver>>>,
    ipams: RwLock<HashMap<String, Arc<dyn Ipam>>>,
    bridge: Arc<BridgeDriver>,
    dns: Arc<DnsTable>,
    upstreams: Vec<SocketAddr>,
    plugin_dir: PathBuf,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("state_dir", &self.store.root())
            .finish()
    }
}

fn new_id() -> String {
    let mut b = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Controller {
    /// Start a controller: open the host namespace, register the built-in
    /// drivers, restore persisted state and clean up what a crashed
    /// controller left behind.
    pub async fn new(config: ControllerConfig) -> Result<Arc<Self>> {
        let netns = match &config.host_netns {
            Some(p) => NetNs::open(p)?,
            None => NetNs::current()?,
        };
        let netlink = netns.netlink()?;
        let worker = NsWorker::spawn(&netns, "berth-host")?;
        let host = HostContext {
            netns,
            netlink,
            nft: Nft::new(worker.clone()),
            worker,
            nft_table: config.nft_table.clone(),
        };
        let upstreams = match config.dns_upstreams {
            Some(u) => u,
            None => dns::parse_resolv_conf(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
        };
        let bridge = Arc::new(BridgeDriver::new());
        let mut drivers: HashMap<String, Arc<dyn Driver>> = HashMap::new();
        drivers.insert("bridge".into(), bridge.clone());
        drivers.insert("null".into(), Arc::new(NullDriver));
        drivers.insert("host".into(), Arc::new(HostDriver));
        drivers.insert(
            "macvlan".into(),
            Arc::new(crate::drivers::MacvlanDriver::default()),
        );
        drivers.insert(
            "ipvlan".into(),
            Arc::new(crate::drivers::IpvlanDriver::default()),
        );
        let mut ipams: HashMap<String, Arc<dyn Ipam>> = HashMap::new();
        ipams.insert("default".into(), Arc::new(LocalIpam::default()));
        let ctl = Arc::new(Controller {
            host,
            store: Store::open(&config.state_dir)?,
            drivers: RwLock::new(drivers),
            ipams: RwLock::new(ipams),
            bridge,
            dns: Arc::new(DnsTable::default()),
            upstreams,
            plugin_dir: config.plugin_dir.clone(),
            state: tokio::sync::Mutex::new(State::default()),
        });
        ctl.restore().await?;
        Ok(ctl)
    }

    /// Add (or replace) a network driver.
    pub fn register_driver(&self, driver: Arc<dyn Driver>) {
        self.drivers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(driver.name().to_string(), driver);
    }

    /// Add (or replace) an IPAM driver.
    pub fn register_ipam(&self, ipam: Arc<dyn Ipam>) {
        self.ipams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ipam.name().to_string(), ipam);
    }

    /// The host context drivers get (for embedding custom drivers).
    pub fn host(&self) -> &HostContext {
        &self.host
    }

    /// A registered driver, or a plugin of that name found in the plugin
    /// directory (then registered).
    async fn driver_or_plugin(&self, name: &str) -> Result<Arc<dyn Driver>> {
        if let Ok(d) = self.driver(name) {
            return Ok(d);
        }
        match crate::remote::RemoteDriver::connect(&self.plugin_dir, name).await {
            Ok(d) => {
                let d: Arc<dyn Driver> = Arc::new(d);
                self.register_driver(d.clone());
                Ok(d)
            }
            Err(Error::NotFound { .. }) => self.driver(name),
            Err(e) => Err(e),
        }
    }

    /// A registered IPAM driver, or a plugin of that name.
    async fn ipam_or_plugin(&self, name: &str) -> Result<Arc<dyn Ipam>> {
        if let Ok(i) = self.ipam(name) {
            return Ok(i);
        }
        match crate::remote::RemoteIpam::connect(&self.plugin_dir, name).await {
            Ok(i) => {
                let i: Arc<dyn Ipam> = Arc::new(i);
                self.register_ipam(i.clone());
                Ok(i)
            }
            Err(Error::NotFound { .. }) => self.ipam(name),
            Err(e) => Err(e),
        }
    }

    /// An in-process IPAM whose allocations we replay on restart (plugins
    /// keep their own state).
    fn replayable_ipam(&self, name: &str) -> Option<Arc<dyn Ipam>> {
        self.ipam(name).ok().filter(|i| !i.keeps_state())
    }

    fn driver(&self, name: &str) -> Result<Arc<dyn Driver>> {
        self.drivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "network driver",
                name: name.to_string(),
            })
    }

    fn ipam(&self, name: &str) -> Result<Arc<dyn Ipam>> {
        self.ipams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "IPAM driver",
                name: name.to_string(),
            })
    }

    fn find_network<'a>(st: &'a State, key: &str) -> Result<&'a NetworkInfo> {
        st.networks
            .get(key)
            .or_else(|| st.networks.values().find(|n| n.config.name == key))
            .or_else(|| {
                st.networks
                    .values()
                    .find(|n| key.len() >= 6 && n.id.starts_with(key))
            })
            .ok_or_else(|| Error::NotFound {
                kind: "network",
                name: key.to_string(),
            })
    }

    async fn request_pools(
        &self,
        ipam: &dyn Ipam,
        pools: &[IpamPoolConfig],
        v6: bool,
        restoring: bool,
    ) -> Result<Vec<SubnetInfo>> {
        let mut out: Vec<SubnetInfo> = Vec::new();
        let defaults = [IpamPoolConfig::default()];
        let pools = if pools.is_empty() {
            &defaults[..]
        } else {
            pools
        };
        let result = async {
            for (i, p) in pools.iter().enumerate() {
                let field = if v6 {
                    format!("ipv6[{i}]")
                } else {
                    format!("ipv4[{i}]")
                };
                if let Some(s) = p.subnet {
                    if s.addr().is_ipv6() != v6 {
                        return Err(Error::invalid(
                            format!("{field}.subnet"),
                            format!("{s} is of the wrong address family"),
                        ));
                    }
                }
                let pool = ipam
                    .request_pool(&PoolRequest {
                        subnet: p.subnet,
                        range: p.ip_range,
                        v6,
                    })
                    .await?;
                out.push(SubnetInfo {
                    pool_id: pool.id.clone(),
                    subnet: pool.subnet,
                    range: pool.range,
                    gateway: None,
                    aux_addresses: BTreeMap::new(),
                });
                let gw = ipam
                    .request_address(&pool.id, p.gateway)
                    .await
                    .map_err(|e| match e {
                        Error::InvalidConfig { reason, .. } => {
                            Error::invalid(format!("{field}.gateway"), reason)
                        }
                        e => e,
                    })?;
                let last = out.len() - 1;
                out[last].gateway = Some(gw);
                for (name, addr) in &p.aux_addresses {
                    ipam.request_address(&pool.id, Some(*addr))
                        .await
                        .map_err(|e| match e {
                            Error::InvalidConfig { reason, .. } => {
                                Error::invalid(format!("{field}.aux_addresses.{name}"), reason)
                            }
                            e => e,
                        })?;
                    out[last].aux_addresses.insert(name.clone(), *addr);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            if !restoring {
                for s in &out {
                    let _ = ipam.release_pool(&s.pool_id).await;
                }
            }
            return Err(e);
        }
        Ok(out)
    }

    /// Create a network.
    pub async fn create_network(&self, config: NetworkConfig) -> Result<NetworkInfo> {
        if config.name.is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        let mut st = self.state.lock().await;
        if st.networks.values().any(|n| n.config.name == config.name) {
            return Err(Error::Duplicate {
                kind: "network",
                name: config.name,
            });
        }
        let driver = self.driver_or_plugin(&config.driver).await?;
        let ipam = self.ipam_or_plugin(&config.ipam_driver).await?;
        let mut subnets = Vec::new();
        if driver.needs_ipam() {
            subnets = self
                .request_pools(ipam.as_ref(), &config.ipv4, false, false)
                .await?;
            if config.enable_ipv6 {
                match self
                    .request_pools(ipam.as_ref(), &config.ipv6, true, false)
                    .await
                {
                    Ok(v6) => subnets.extend(v6),
                    Err(e) => {
                        for s in &subnets {
                            let _ = ipam.release_pool(&s.pool_id).await;
                        }
                        return Err(e);
                    }
                }
            }
        }
        let info = NetworkInfo {
            id: new_id(),
            config,
            subnets,
        };
        // Persist first: a crash during creation leaves a record that the
        // next controller completes or removes, never an unknown bridge.
        self.store.put("networks", &info.id, &info)?;
        if let Err(e) = driver.create_network(&self.host, &info).await {
            let _ = self.store.delete("networks", &info.id);
            for s in &info.subnets {
                let _ = ipam.release_pool(&s.pool_id).await;
            }
            return Err(e);
        }
        tracing::info!(network = %info.config.name, id = %info.short_id(), "network created");
        st.networks.insert(info.id.clone(), info.clone());
        Ok(info)
    }

    /// Delete a network that has no endpoints.
    pub async fn delete_network(&self, key: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let net = Self::find_network(&st, key)?.clone();
        let n = st
            .endpoints
            .values()
            .filter(|e| e.network_id == net.id)
            .count();
        if n > 0 {
            return Err(Error::InUse(format!(
                "network {} has {n} endpoint(s)",
                net.config.name
            )));
        }
        self.driver(&net.config.driver)?
            .delete_network(&self.host, &net)
            .await?;
        let ipam = self.ipam(&net.config.ipam_driver)?;
        for s in &net.subnets {
            let _ = ipam.release_pool(&s.pool_id).await;
        }
        self.store.delete("networks", &net.id)?;
        st.networks.remove(&net.id);
        Ok(())
    }

    /// A network by id, name or id prefix.
    pub async fn network(&self, key: &str) -> Result<NetworkInfo> {
        Self::find_network(&*self.state.lock().await, key).cloned()
    }

    /// Every network.
    pub async fn networks(&self) -> Vec<NetworkInfo> {
        self.state.lock().await.networks.values().cloned().collect()
    }

    /// An endpoint by id.
    pub async fn endpoint(&self, id: &str) -> Result<EndpointInfo> {
        self.state
            .lock()
            .await
            .endpoints
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "endpoint",
                name: id.to_string(),
            })
    }

    /// Create an endpoint on a network and allocate its addresses.
    pub async fn create_endpoint(
        &self,
        network: &str,
        config: EndpointConfig,
    ) -> Result<EndpointInfo> {
        if config.name.is_empty() {
            return Err(Error::invalid("endpoint.name", "must not be empty"));
        }
        if let Some(mac) = config.mac {
            mac.validate("endpoint.mac")?;
        }
        let mut st = self.state.lock().await;
        let net = Self::find_network(&st, network)?.clone();
        if st
            .endpoints
            .values()
            .any(|e| e.network_id == net.id && e.config.name == config.name)
        {
            return Err(Error::Duplicate {
                kind: "endpoint",
                name: config.name,
            });
        }
        let driver = self.driver(&net.config.driver)?;
        let ipam = self.ipam(&net.config.ipam_driver)?;
        let mut addresses: Vec<IpNet> = Vec::new();
        let mut held: Vec<(String, IpAddr)> = Vec::new();
        let result = async {
            let v4 = net.subnets.iter().find(|s| s.subnet.addr().is_ipv4());
            let v6 = net.subnets.iter().find(|s| s.subnet.addr().is_ipv6());
            if let Some(want) = config.ipv4 {
                if v4.is_none() {
                    return Err(Error::invalid(
                        "endpoint.ipv4",
                        format!("network {} has no IPv4 subnet", net.config.name),
                    ));
                }
                let s = net
                    .subnets
                    .iter()
                    .find(|s| s.subnet.contains(&IpAddr::V4(want)))
                    .ok_or_else(|| {
                        Error::invalid(
                            "endpoint.ipv4",
                            format!("{want} is in no subnet of network {}", net.config.name),
                        )
                    })?;
                let a = ipam
                    .request_address(&s.pool_id, Some(IpAddr::V4(want)))
                    .await?;
                held.push((s.pool_id.clone(), a));
                addresses.push(
                    IpNet::new(a, s.subnet.prefix_len())
                        .map_err(|e| Error::invalid("endpoint.ipv4", e.to_string()))?,
                );
            } else if let Some(s) = v4 {
                let a = ipam.request_address(&s.pool_id, None).await?;
                held.push((s.pool_id.clone(), a));
                addresses.push(
                    IpNet::new(a, s.subnet.prefix_len())
                        .map_err(|e| Error::invalid("endpoint.ipv4", e.to_string()))?,
                );
            }
            if let Some(s) = v6 {
                let want = config.ipv6.map(IpAddr::V6);
                let a = ipam.request_address(&s.pool_id, want).await?;
                held.push((s.pool_id.clone(), a));
                addresses.push(
                    IpNet::new(a, s.subnet.prefix_len())
                        .map_err(|e| Error::invalid("endpoint.ipv6", e.to_string()))?,
                );
            } else if config.ipv6.is_some() {
                return Err(Error::invalid(
                    "endpoint.ipv6",
                    format!("network {} has no IPv6 subnet", net.config.name),
                ));
            }
            let ep = EndpointInfo {
                id: new_id(),
                network_id: net.id.clone(),
                config: config.clone(),
                addresses: addresses.clone(),
                sandbox_id: None,
                ifname: None,
                host_ifname: None,
                mac: None,
            };
            driver.create_endpoint(&self.host, &net, &ep).await?;
            if let Err(e) = self.store.put("endpoints", &ep.id, &ep) {
                let _ = driver.delete_endpoint(&self.host, &net, &ep).await;
                return Err(e);
            }
            Ok(ep)
        }
        .await;
        match result {
            Ok(ep) => {
                st.endpoints.insert(ep.id.clone(), ep.clone());
                Ok(ep)
            }
            Err(e) => {
                for (pool, a) in held {
                    let _ = ipam.release_address(&pool, a).await;
                }
                Err(e)
            }
        }
    }

    /// Delete an endpoint that is not joined; its addresses are released.
    pub async fn delete_endpoint(&self, id: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let ep = st
            .endpoints
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "endpoint",
                name: id.to_string(),
            })?;
        if let Some(sb) = &ep.sandbox_id {
            return Err(Error::InUse(format!(
                "endpoint {} is joined to sandbox {}",
                ep.config.name,
                crate::model::short_id(sb)
            )));
        }
        let net = st
            .networks
            .get(&ep.network_id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "network",
                name: ep.network_id.clone(),
            })?;
        self.driver(&net.config.driver)?
            .delete_endpoint(&self.host, &net, &ep)
            .await?;
        self.release_addresses(&net, &ep).await;
        self.store.delete("endpoints", &ep.id)?;
        st.endpoints.remove(&ep.id);
        Ok(())
    }

    async fn release_addresses(&self, net: &NetworkInfo, ep: &EndpointInfo) {
        let Ok(ipam) = self.ipam(&net.config.ipam_driver) else {
            return;
        };
        for a in &ep.addresses {
            if let Some(s) = net.subnets.iter().find(|s| s.subnet.contains(&a.addr())) {
                if let Err(e) = ipam.release_address(&s.pool_id, a.addr()).await {
                    tracing::warn!(address = %a, error = %e, "release failed");
                }
            }
        }
    }

    /// Create a sandbox: a namespace of its own or an existing one, with
    /// loopback up and (optionally) the embedded resolver.
    pub async fn create_sandbox(&self, config: SandboxConfig) -> Result<SandboxInfo> {
        if config.container_id.is_empty() {
            return Err(Error::invalid("sandbox.container_id", "must not be empty"));
        }
        let mut st = self.state.lock().await;
        if st
            .sandboxes
            .values()
            .any(|s| s.info.config.container_id == config.container_id)
        {
            return Err(Error::Duplicate {
                kind: "sandbox",
                name: config.container_id,
            });
        }
        let id = new_id();
        let (netns, owned) = match &config.netns_path {
            Some(p) => {
                if !p.exists() {
                    return Err(Error::NotFound {
                        kind: "sandbox network namespace",
                        name: p.display().to_string(),
                    });
                }
                (NetNs::open(p)?, false)
            }
            None => (
                NetNs::create(self.store.root().join("netns").join(&id))?,
                true,
            ),
        };
        let info = SandboxInfo {
            id: id.clone(),
            config,
            netns_path: netns.path().to_path_buf(),
            owned_netns: owned,
        };
        match self.start_sandbox(&info, netns).await {
            Ok(live) => {
                if let Err(e) = self.store.put("sandboxes", &id, &info) {
                    drop(live);
                    self.remove_netns(&info);
                    return Err(e);
                }
                st.sandboxes.insert(id, live);
                Ok(info)
            }
            Err(e) => {
                self.remove_netns(&info);
                Err(e)
            }
        }
    }

    fn remove_netns(&self, info: &SandboxInfo) {
        if info.owned_netns {
            if let Err(e) = NetNs::remove_pinned(&info.netns_path) {
                tracing::warn!(error = %e, "removing sandbox namespace failed");
            }
        }
        let _ = std::fs::remove_file(self.resolv_conf_path(&info.id));
    }

    /// The resolv.conf written for a sandbox with the embedded resolver.
    pub fn resolv_conf_path(&self, sandbox_id: &str) -> PathBuf {
        self.store
            .root()
            .join("sandboxes")
            .join(format!("{sandbox_id}.resolv.conf"))
    }

    async fn start_sandbox(&self, info: &SandboxInfo, netns: NetNs) -> Result<LiveSandbox> {
        let netlink = netns.netlink()?;
        let lo = nl::require_link(&netlink, "lo").await?;
        nl::link_up(&netlink, lo).await?;
        let resolver = if info.config.embedded_dns {
            let upstreams = if info.config.dns_servers.is_empty() {
                self.upstreams.clone()
            } else {
                let servers = info.config.dns_servers.iter();
                servers.map(|ip| SocketAddr::new(*ip, 53)).collect()
            };
            let r = Resolver::start(
                &netns,
                self.dns.clone(),
                upstreams,
                self.host.worker.clone(),
            )?;
            r.set_links(&info.config.links);
            let path = self.resolv_conf_path(&info.id);
            std::fs::write(&path, dns::sandbox_resolv_conf(&[]))
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
            Some(r)
        } else {
            None
        };
        Ok(LiveSandbox {
            info: info.clone(),
            handle: SandboxHandle {
                id: info.id.clone(),
                netns,
                netlink,
            },
            resolver,
        })
    }

    /// Leave every endpoint of a sandbox and remove it (and its namespace
    /// if we made it).
    pub async fn delete_sandbox(&self, id: &str) -> Result<()> {
        let joined: Vec<String> = {
            let st = self.state.lock().await;
            if !st.sandboxes.contains_key(id) {
                return Err(Error::NotFound {
                    kind: "sandbox",
                    name: id.to_string(),
                });
            }
            st.endpoints
                .values()
                .filter(|e| e.sandbox_id.as_deref() == Some(id))
                .map(|e| e.id.clone())
                .collect()
        };
        for ep in joined {
            self.leave(&ep, id).await?;
        }
        let mut st = self.state.lock().await;
        if let Some(live) = st.sandboxes.remove(id) {
            drop(live.resolver);
            self.remove_netns(&live.info);
        }
        self.store.delete("sandboxes", id)
    }

    /// Add link aliases to a live sandbox's resolver (`docker network
    /// connect --link`); see [`SandboxConfig::link`]. Persisted with the
    /// sandbox; on failure nothing changes.
    ///
    /// [`SandboxConfig::link`]: crate::SandboxConfig::link
    pub async fn add_sandbox_links(
        &self,
        id: &str,
        links: &BTreeMap<String, String>,
    ) -> Result<SandboxInfo> {
        let mut st = self.state.lock().await;
        let live = st.sandboxes.get_mut(id).ok_or_else(|| Error::NotFound {
            kind: "sandbox",
            name: id.to_string(),
        })?;
        let mut info = live.info.clone();
        info.config
            .links
            .extend(links.iter().map(|(a, t)| (a.clone(), t.clone())));
        self.store.put("sandboxes", id, &info)?;
        if let Some(r) = &live.resolver {
            r.set_links(&info.config.links);
        }
        live.info = info.clone();
        Ok(info)
    }

    /// A sandbox by id.
    pub async fn sandbox(&self, id: &str) -> Result<SandboxInfo> {
        self.state
            .lock()
            .await
            .sandboxes
            .get(id)
            .map(|s| s.info.clone())
            .ok_or_else(|| Error::NotFound {
                kind: "sandbox",
                name: id.to_string(),
            })
    }

    /// The sandbox made for a container id.
    pub async fn sandbox_for_container(&self, container_id: &str) -> Option<SandboxInfo> {
        self.state
            .lock()
            .await
            .sandboxes
            .values()
            .find(|s| s.info.config.container_id == container_id)
            .map(|s| s.info.clone())
    }

    /// Every endpoint.
    pub async fn endpoints(&self) -> Vec<EndpointInfo> {
        self.state
            .lock()
            .await
            .endpoints
            .values()
            .cloned()
            .collect()
    }

    /// Every sandbox.
    pub async fn sandboxes(&self) -> Vec<SandboxInfo> {
        self.state
            .lock()
            .await
            .sandboxes
            .values()
            .map(|s| s.info.clone())
            .collect()
    }

    /// Check that a joined endpoint's interface is in its sandbox with its
    /// addresses (CNI's CHECK).
    pub async fn verify(&self, endpoint_id: &str) -> Result<()> {
        use futures::TryStreamExt;
        let (ep, handle) = {
            let st = self.state.lock().await;
            let ep = st
                .endpoints
                .get(endpoint_id)
                .cloned()
                .ok_or_else(|| Error::NotFound {
                    kind: "endpoint",
                    name: endpoint_id.to_string(),
                })?;
            let sb = ep
                .sandbox_id
                .as_ref()
                .and_then(|s| st.sandboxes.get(s))
                .ok_or_else(|| Error::NotFound {
                    kind: "joined sandbox of endpoint",
                    name: ep.config.name.clone(),
                })?;
            (ep, sb.handle.clone())
        };
        let ifname = ep.ifname.clone().unwrap_or_default();
        let index = nl::require_link(&handle.netlink, &ifname).await?;
        let mut found = Vec::new();
        let mut addrs = handle
            .netlink
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(|e| Error::netlink("list addresses", e))?
        {
            for a in msg.attributes {
                if let netlink_packet_route::address::AddressAttribute::Address(ip) = a {
                    found.push(ip);
                }
            }
        }
        for want in &ep.addresses {
            if !found.contains(&want.addr()) {
                return Err(Error::NotFound {
                    kind: "address on the sandbox interface",
                    name: format!("{want} on {ifname}"),
                });
            }
        }
        Ok(())
    }

    /// Plug an endpoint into a sandbox. Its names resolve in every sandbox
    /// on the network when this returns.
    pub async fn join(&self, endpoint_id: &str, sandbox_id: &str) -> Result<EndpointInfo> {
        let mut st = self.state.lock().await;
        let mut ep = st
            .endpoints
            .get(endpoint_id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "endpoint",
                name: endpoint_id.to_string(),
            })?;
        if let Some(other) = &ep.sandbox_id {
            return Err(Error::InUse(format!(
                "endpoint {} is already joined to sandbox {}",
                ep.config.name,
                crate::model::short_id(other)
            )));
        }
        let sb = st
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| Error::NotFound {
                kind: "sandbox",
                name: sandbox_id.to_string(),
            })?;
        let handle = sb.handle.clone();
        let hostname = sb.info.config.hostname.clone();
        let net = st
            .networks
            .get(&ep.network_id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "network",
                name: ep.network_id.clone(),
            })?;
        let used: Vec<&str> = st
            .endpoints
            .values()
            .filter(|e| e.sandbox_id.as_deref() == Some(sandbox_id))
            .filter_map(|e| e.ifname.as_deref())
            .collect();
        let ifname = match &ep.config.ifname {
            Some(n) if used.contains(&n.as_str()) => {
                return Err(Error::InUse(format!(
                    "interface {n} already exists in sandbox {}",
                    &sandbox_id[..sandbox_id.len().min(12)]
                )));
            }
            Some(n) if n.is_empty() || n.len() > 15 || n.contains('/') => {
                return Err(Error::invalid(
                    "endpoint.ifname",
                    format!("{n:?} is not a valid interface name"),
                ));
            }
            Some(n) => n.clone(),
            None => (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(&n.as_str()))
                .unwrap_or_default(),
        };
        ep.ifname = Some(ifname);
        ep.sandbox_id = Some(sandbox_id.to_string());
        let driver = self.driver(&net.config.driver)?;
        driver.join(&self.host, &net, &mut ep, &handle).await?;
        if let Err(e) = self.store.put("endpoints", &ep.id, &ep) {
            let _ = driver.leave(&self.host, &net, &ep, &handle).await;
            return Err(e);
        }
        let mut names = vec![ep.config.name.clone()];
        names.extend(ep.config.aliases.iter().cloned());
        names.extend(hostname);
        self.dns.register(
            &net.id,
            &ep.id,
            names,
            ep.addresses.iter().map(|a| a.addr()).collect(),
        );
        if let Some(r) = st
            .sandboxes
            .get(sandbox_id)
            .and_then(|s| s.resolver.as_ref())
        {
            r.add_network(&net.id);
        }
        st.endpoints.insert(ep.id.clone(), ep.clone());
        Ok(ep)
    }

    /// Unplug an endpoint from its sandbox. Slow kernel cleanup (the
    /// veth's deletion) continues in the background.
    pub async fn leave(&self, endpoint_id: &str, sandbox_id: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let mut ep = st
            .endpoints
            .get(endpoint_id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "endpoint",
                name: endpoint_id.to_string(),
            })?;
        if ep.sandbox_id.as_deref() != Some(sandbox_id) {
            return Err(Error::invalid(
                "sandbox",
                format!(
                    "endpoint {} is not joined to sandbox {sandbox_id}",
                    ep.config.name
                ),
            ));
        }
        let sb = st
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| Error::NotFound {
                kind: "sandbox",
                name: sandbox_id.to_string(),
            })?;
        let handle = sb.handle.clone();
        let net = st
            .networks
            .get(&ep.network_id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "network",
                name: ep.network_id.clone(),
            })?;
        self.dns.unregister(&net.id, &ep.id);
        let still_on_net = st.endpoints.values().any(|e| {
            e.id != ep.id && e.network_id == net.id && e.sandbox_id.as_deref() == Some(sandbox_id)
        });
        if !still_on_net {
            if let Some(r) = st
                .sandboxes
                .get(sandbox_id)
                .and_then(|s| s.resolver.as_ref())
            {
                r.remove_network(&net.id);
            }
        }
        self.driver(&net.config.driver)?
            .leave(&self.host, &net, &ep, &handle)
            .await?;
        ep.sandbox_id = None;
        ep.ifname = None;
        ep.host_ifname = None;
        self.store.put("endpoints", &ep.id, &ep)?;
        st.endpoints.insert(ep.id.clone(), ep);
        Ok(())
    }

    /// Create an endpoint and join it in one call.
    pub async fn attach(
        &self,
        network: &str,
        sandbox_id: &str,
        config: EndpointConfig,
    ) -> Result<EndpointInfo> {
        let ep = self.create_endpoint(network, config).await?;
        match self.join(&ep.id, sandbox_id).await {
            Ok(ep) => Ok(ep),
            Err(e) => {
                let _ = self.delete_endpoint(&ep.id).await;
                Err(e)
            }
        }
    }

    /// Leave and delete an endpoint in one call.
    pub async fn detach(&self, endpoint_id: &str) -> Result<()> {
        let sb = self.endpoint(endpoint_id).await?.sandbox_id;
        if let Some(sb) = sb {
            self.leave(endpoint_id, &sb).await?;
        }
        self.delete_endpoint(endpoint_id).await
    }

    /// Rebuild every driver's firewall rules from state (after someone
    /// flushed the ruleset).
    pub async fn reload(&self) -> Result<()> {
        let _st = self.state.lock().await;
        let drivers: Vec<Arc<dyn Driver>> = self
            .drivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for d in drivers {
            d.reload(&self.host).await?;
        }
        Ok(())
    }

    /// Wait for background cleanup (veth deletions) to finish.
    pub async fn settle(&self) {
        self.bridge.settle().await;
    }

    async fn restore(&self) -> Result<()> {
        let mut st = self.state.lock().await;
        let networks: Vec<NetworkInfo> = self.store.list("networks")?;
        let mut endpoints: Vec<EndpointInfo> = self.store.list("endpoints")?;
        let sandboxes: Vec<SandboxInfo> = self.store.list("sandboxes")?;
        // Replay IPAM: pools, gateways, aux and endpoint addresses are
        // requested again exactly, so nothing is handed out twice.
        for net in &networks {
            st.networks.insert(net.id.clone(), net.clone());
            let Some(ipam) = self.replayable_ipam(&net.config.ipam_driver) else {
                continue;
            };
            for s in &net.subnets {
                ipam.request_pool(&PoolRequest {
                    subnet: Some(s.subnet),
                    range: s.range,
                    v6: s.subnet.addr().is_ipv6(),
                })
                .await?;
                for a in s.gateway.iter().chain(s.aux_addresses.values()) {
                    ipam.request_address(&s.pool_id, Some(*a)).await?;
                }
            }
        }
        endpoints.retain(|e| {
            let keep = st.networks.contains_key(&e.network_id);
            if !keep {
                let _ = self.store.delete("endpoints", &e.id);
            }
            keep
        });
        for ep in &endpoints {
            let net = &st.networks[&ep.network_id];
            let Some(ipam) = self.replayable_ipam(&net.config.ipam_driver) else {
                continue;
            };
            for a in &ep.addresses {
                if let Some(s) = net.subnets.iter().find(|s| s.subnet.contains(&a.addr())) {
                    ipam.request_address(&s.pool_id, Some(a.addr())).await?;
                }
            }
        }
        // Sandboxes whose namespace is gone (the container died with the
        // old controller) are dropped and their endpoints unplugged.
        let mut live_ids = Vec::new();
        for sb in sandboxes {
            let is_netns = nix::sys::statfs::statfs(&sb.netns_path)
                .map(|f| f.filesystem_type() == nix::sys::statfs::FsType(libc::NSFS_MAGIC))
                .unwrap_or(false);
            let opened = if is_netns {
                NetNs::open(&sb.netns_path)
            } else {
                Err(Error::NotFound {
                    kind: "sandbox network namespace",
                    name: sb.netns_path.display().to_string(),
                })
            };
            match opened {
                Ok(ns) => match self.start_sandbox(&sb, ns).await {
                    Ok(live) => {
                        live_ids.push(sb.id.clone());
                        st.sandboxes.insert(sb.id.clone(), live);
                    }
                    Err(e) => {
                        tracing::warn!(sandbox = %sb.id, error = %e, "cannot restore sandbox; dropping it");
                        self.remove_netns(&sb);
                        let _ = self.store.delete("sandboxes", &sb.id);
                    }
                },
                Err(_) => {
                    self.remove_netns(&sb);
                    let _ = self.store.delete("sandboxes", &sb.id);
                }
            }
        }
        for ep in endpoints.iter_mut() {
            if let Some(sb) = &ep.sandbox_id {
                if !live_ids.contains(sb) {
                    if let Some(v) = &ep.host_ifname {
                        let _ = nl::del_link_by_name(&self.host.netlink, v).await;
                    }
                    ep.sandbox_id = None;
                    ep.ifname = None;
                    ep.host_ifname = None;
                    self.store.put("endpoints", &ep.id, ep)?;
                }
            }
        }
        // Pinned namespaces no sandbox refers to: a crash mid-creation.
        if let Ok(rd) = std::fs::read_dir(self.store.root().join("netns")) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !st.sandboxes.contains_key(&name) {
                    let _ = NetNs::remove_pinned(entry.path());
                }
            }
        }
        for ep in &endpoints {
            if let Some(sb) = &ep.sandbox_id {
                let net = &st.networks[&ep.network_id];
                let mut names = vec![ep.config.name.clone()];
                names.extend(ep.config.aliases.iter().cloned());
                self.dns.register(
                    &net.id,
                    &ep.id,
                    names,
                    ep.addresses.iter().map(|a| a.addr()).collect(),
                );
                if let Some(r) = st.sandboxes.get(sb).and_then(|s| s.resolver.as_ref()) {
                    r.add_network(&net.id);
                }
            }
            st.endpoints.insert(ep.id.clone(), ep.clone());
        }
        let nets: Vec<NetworkInfo> = st.networks.values().cloned().collect();
        let drivers: Vec<Arc<dyn Driver>> = self
            .drivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for d in drivers {
            let mine: Vec<NetworkInfo> = nets
                .iter()
                .filter(|n| n.config.driver == d.name())
                .cloned()
                .collect();
            if mine.is_empty() && d.name() != "bridge" {
                continue;
            }
            d.restore(&self.host, &mine, &endpoints).await?;
        }
        Ok(())
    }
}
