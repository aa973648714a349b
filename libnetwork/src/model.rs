//! Configuration and persisted records of networks, endpoints and sandboxes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::firewall::PortMapping;
use crate::mac::MacAddress;

/// Where a driver's networks live: on this host only, or across hosts (an
/// overlay driver reports `Global` and the controller then expects its
/// network state to be shared through a cluster store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One host.
    #[default]
    Local,
    /// Many hosts.
    Global,
}

/// One subnet of a network's IPAM configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamPoolConfig {
    /// The subnet; `None` takes one from the default pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<IpNet>,
    /// Allocate dynamic addresses from this sub-range only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpNet>,
    /// The gateway; `None` takes the first free address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Addresses reserved for other hosts on the subnet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// Configuration of a new network. Build it with [`NetworkConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Unique name.
    pub name: String,
    /// Driver name: bridge, null, host, macvlan, ipvlan or a plugin's.
    pub driver: String,
    /// IPAM driver name ("default" for the local allocator).
    pub ipam_driver: String,
    /// IPv4 pools (one is requested from the defaults when empty).
    pub ipv4: Vec<IpamPoolConfig>,
    /// IPv6 pools, used when `enable_ipv6` is set.
    pub ipv6: Vec<IpamPoolConfig>,
    /// Give endpoints an IPv6 address too.
    pub enable_ipv6: bool,
    /// No connectivity outside the network.
    pub internal: bool,
    /// Driver options (bridge: `name`, `icc`, `masquerade`; macvlan:
    /// `parent`, `mode`; ipvlan: `parent`, `mode`, `flag`).
    pub options: BTreeMap<String, String>,
    /// MTU of the interfaces; `None` leaves the kernel's default.
    pub mtu: Option<u32>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
}

impl NetworkConfig {
    /// Start a configuration for a network named `name` using `driver`.
    ///
    /// ```
    /// use libnetwork::NetworkConfig;
    /// let cfg = NetworkConfig::builder("web", "bridge")
    ///     .subnet("10.10.0.0/24".parse().unwrap())
    ///     .option("icc", "false")
    ///     .build();
    /// assert_eq!(cfg.ipv4[0].subnet.unwrap().to_string(), "10.10.0.0/24");
    /// ```
    pub fn builder(name: impl Into<String>, driver: impl Into<String>) -> NetworkConfigBuilder {
        NetworkConfigBuilder {
            cfg: NetworkConfig {
                name: name.into(),
                driver: driver.into(),
                ipam_driver: "default".into(),
                ipv4: Vec::new(),
                ipv6: Vec::new(),
                enable_ipv6: false,
                internal: false,
                options: BTreeMap::new(),
                mtu: None,
                labels: BTreeMap::new(),
            },
        }
    }
}

/// Builder for [`NetworkConfig`].
#[derive(Debug, Clone)]
pub struct NetworkConfigBuilder {
    cfg: NetworkConfig,
}

impl NetworkConfigBuilder {
    /// Add a pool with this subnet (IPv4 or IPv6 by its address family;
    /// an IPv6 subnet also enables IPv6).
    pub fn subnet(self, subnet: IpNet) -> Self {
        self.pool(IpamPoolConfig {
            subnet: Some(subnet),
            ..Default::default()
        })
    }

    /// Add a fully described pool.
    pub fn pool(mut self, pool: IpamPoolConfig) -> Self {
        if matches!(pool.subnet, Some(IpNet::V6(_))) {
            self.cfg.enable_ipv6 = true;
            self.cfg.ipv6.push(pool);
        } else {
            self.cfg.ipv4.push(pool);
        }
        self
    }

    /// Give endpoints IPv6 addresses (from the default ULA pool unless an
    /// IPv6 subnet is given).
    pub fn enable_ipv6(mut self, on: bool) -> Self {
        self.cfg.enable_ipv6 = on;
        self
    }

    /// Cut the network off from everything outside it.
    pub fn internal(mut self, on: bool) -> Self {
        self.cfg.internal = on;
        self
    }

    /// Set a driver option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.cfg.options.insert(key.into(), value.into());
        self
    }

    /// Set the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.cfg.mtu = Some(mtu);
        self
    }

    /// Use another IPAM driver.
    pub fn ipam_driver(mut self, name: impl Into<String>) -> Self {
        self.cfg.ipam_driver = name.into();
        self
    }

    /// Set a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.cfg.labels.insert(key.into(), value.into());
        self
    }

    /// Finish.
    pub fn build(self) -> NetworkConfig {
        self.cfg
    }
}

/// A subnet as allocated for a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    /// The IPAM pool id.
    pub pool_id: String,
    /// The subnet.
    pub subnet: IpNet,
    /// The dynamic range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<IpNet>,
    /// The gateway address (held by the bridge for the bridge driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Reserved auxiliary addresses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// A network as created and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// 64 hex digits.
    pub id: String,
    /// What it was created with.
    pub config: NetworkConfig,
    /// Allocated subnets (IPv4 first).
    pub subnets: Vec<SubnetInfo>,
}

impl NetworkInfo {
    /// The first 12 hex digits of the id.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// A driver option, if set.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.config.options.get(key).map(String::as_str)
    }

    /// A boolean driver option, with a default; anything but a boolean is
    /// an error naming the option.
    pub fn bool_option(&self, key: &str, default: bool) -> crate::Result<bool> {
        match self.option(key) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(v) => Err(crate::Error::invalid(
                format!("options.{key}"),
                format!("{v:?} is not a boolean"),
            )),
        }
    }
}

/// Configuration of an endpoint. Build it with [`EndpointConfig::builder`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    /// Name, unique within the network; also its DNS name.
    pub name: String,
    /// More DNS names on this network.
    pub aliases: Vec<String>,
    /// A static IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// A static IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// A MAC address for the sandbox's interface; `None` picks a random
    /// one (drivers that share their parent's address refuse one).
    pub mac: Option<MacAddress>,
    /// The interface name inside the sandbox; `None` picks eth0, eth1 …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
}

impl EndpointConfig {
    /// Start a configuration for an endpoint called `name`.
    ///
    /// ```
    /// use libnetwork::{EndpointConfig, PortMapping, Proto};
    /// let ep = EndpointConfig::builder("web1")
    ///     .alias("web")
    ///     .port(PortMapping::new(Proto::Tcp, 8080, 80))
    ///     .build();
    /// assert_eq!(ep.aliases, vec!["web".to_string()]);
    /// ```
    pub fn builder(name: impl Into<String>) -> EndpointConfigBuilder {
        EndpointConfigBuilder {
            cfg: EndpointConfig {
                name: name.into(),
                ..Default::default()
            },
        }
    }
}

/// Builder for [`EndpointConfig`].
#[derive(Debug, Clone)]
pub struct EndpointConfigBuilder {
    cfg: EndpointConfig,
}

impl EndpointConfigBuilder {
    /// Add a DNS alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.cfg.aliases.push(alias.into());
        self
    }
    /// Ask for this IPv4 address.
    pub fn ipv4(mut self, addr: Ipv4Addr) -> Self {
        self.cfg.ipv4 = Some(addr);
        self
    }
    /// Ask for this IPv6 address.
    pub fn ipv6(mut self, addr: Ipv6Addr) -> Self {
        self.cfg.ipv6 = Some(addr);
        self
    }
    /// Publish a port.
    pub fn port(mut self, port: PortMapping) -> Self {
        self.cfg.ports.push(port);
        self
    }
    /// Use this MAC address (checked when the endpoint is created).
    ///
    /// ```
    /// use libnetwork::{EndpointConfig, MacAddress};
    /// let mac: MacAddress = "02:42:ac:11:00:99".parse().unwrap();
    /// let ep = EndpointConfig::builder("web1").mac(mac).build();
    /// assert_eq!(ep.mac.unwrap().to_string(), "02:42:ac:11:00:99");
    /// ```
    pub fn mac(mut self, mac: impl Into<MacAddress>) -> Self {
        self.cfg.mac = Some(mac.into());
        self
    }
    /// Name the interface inside the sandbox.
    pub fn ifname(mut self, name: impl Into<String>) -> Self {
        self.cfg.ifname = Some(name.into());
        self
    }
    /// Finish.
    pub fn build(self) -> EndpointConfig {
        self.cfg
    }
}

/// An endpoint as created and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// 64 hex digits.
    pub id: String,
    /// The network's id.
    pub network_id: String,
    /// What it was created with.
    pub config: EndpointConfig,
    /// Its addresses with their subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// The sandbox it is joined to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// The interface name inside the sandbox (eth0, eth1 …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// The host-side interface (veth) name, for drivers that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifname: Option<String>,
    /// The MAC address the sandbox's interface was given at join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
}

impl EndpointInfo {
    /// The first 12 hex digits of the id.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

/// Configuration of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// The container's name or id (the sandbox's key).
    pub container_id: String,
    /// Hostname of the container (answered by DNS too).
    pub hostname: Option<String>,
    /// Use this existing namespace instead of creating one.
    pub netns_path: Option<PathBuf>,
    /// Run the embedded DNS resolver (127.0.0.11) in the sandbox.
    pub embedded_dns: bool,
    /// Upstream servers of the embedded resolver (`docker run --dns`);
    /// empty: the controller's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<IpAddr>,
    /// Names only this sandbox's resolver answers: alias → the endpoint
    /// name it stands for (Docker's `--link` on user-defined networks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

impl SandboxConfig {
    /// A sandbox for `container_id`, with a namespace of its own and the
    /// embedded resolver.
    ///
    /// ```
    /// use libnetwork::SandboxConfig;
    /// let sb = SandboxConfig::new("c1").netns_path("/proc/1/ns/net");
    /// assert!(sb.embedded_dns);
    /// ```
    pub fn new(container_id: impl Into<String>) -> Self {
        SandboxConfig {
            container_id: container_id.into(),
            hostname: None,
            netns_path: None,
            embedded_dns: true,
            dns_servers: Vec::new(),
            links: BTreeMap::new(),
        }
    }
    /// Use an existing namespace (a bind mount or /proc/PID/ns/net).
    pub fn netns_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns_path = Some(path.into());
        self
    }
    /// Turn the embedded resolver on or off.
    pub fn embedded_dns(mut self, on: bool) -> Self {
        self.embedded_dns = on;
        self
    }
    /// Set the hostname.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }
    /// Forward names the embedded resolver does not know to these
    /// servers (port 53) instead of the controller's upstreams.
    ///
    /// ```
    /// use libnetwork::SandboxConfig;
    /// let sb = SandboxConfig::new("c1").dns_servers(vec!["9.9.9.9".parse().unwrap()]);
    /// assert_eq!(sb.dns_servers.len(), 1);
    /// ```
    pub fn dns_servers(mut self, servers: Vec<IpAddr>) -> Self {
        self.dns_servers = servers;
        self
    }
    /// Make `alias` resolve, in this sandbox only, to whatever the
    /// endpoint named `target` has on the sandbox's networks at query time.
    ///
    /// ```
    /// use libnetwork::SandboxConfig;
    /// let sb = SandboxConfig::new("web").link("database", "db");
    /// assert_eq!(sb.links["database"], "db");
    /// ```
    pub fn link(mut self, alias: impl Into<String>, target: impl Into<String>) -> Self {
        self.links.insert(alias.into(), target.into());
        self
    }
}

/// A sandbox as created and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// 64 hex digits.
    pub id: String,
    /// What it was created with.
    pub config: SandboxConfig,
    /// The namespace's path.
    pub netns_path: PathBuf,
    /// Whether we created (and must remove) the namespace.
    pub owned_netns: bool,
}

/// The first 12 characters of an id (the whole id when it is shorter), as
/// Docker shows ids. Ids can come from plugins and state files, so never
/// slice them blindly.
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod short_id_tests {
    #[test]
    fn short_ids_never_panic() {
        assert_eq!(super::short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(super::short_id("abc"), "abc");
        assert_eq!(super::short_id(""), "");
    }
}
