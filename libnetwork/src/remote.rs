//! Docker's network plugin protocol: JSON over HTTP on a unix socket.
//!
//! [`RemoteDriver`] and [`RemoteIpam`] use a plugin (`NetworkDriver.*`,
//! `IpamDriver.*`) found in a plugin directory (Docker's is
//! `/run/docker/plugins`); [`serve`] exposes any [`Driver`] and [`Ipam`] of
//! ours as such a plugin.
//!
//! One extension: a plugin may answer `Join` without `InterfaceName` when
//! it plugged the interface into `SandboxKey` itself (our server does, so
//! the veth is still created directly in the sandbox). Otherwise the client
//! moves `SrcName` into the sandbox, renaming it in the same request, and
//! sets addresses and routes, as Docker does.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use rtnetlink::LinkUnspec;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::driver::{Driver, HostContext, SandboxHandle};
use crate::error::{Error, Result};
use crate::ipam::{Ipam, Pool, PoolRequest};
use crate::model::{EndpointConfig, EndpointInfo, NetworkConfig, NetworkInfo, Scope, SubnetInfo};
use crate::netns::NetNs;
use crate::nl;

const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";
/// Join option carrying the interface name we want inside the sandbox.
pub const IFNAME_OPTION: &str = "com.berth.ifname";
const GENERIC: &str = "com.docker.network.generic";

/// Find plugin `name` in `dir`: `NAME.sock`, `NAME/NAME.sock`, or a
/// `NAME.spec` file holding `unix:///path`.
pub fn discover(dir: &Path, name: &str) -> Result<PathBuf> {
    for p in [
        dir.join(format!("{name}.sock")),
        dir.join(name).join(format!("{name}.sock")),
    ] {
        if p.exists() {
            return Ok(p);
        }
    }
    let spec = dir.join(format!("{name}.spec"));
    if let Ok(text) = std::fs::read_to_string(&spec) {
        if let Some(path) = text.trim().strip_prefix("unix://") {
            return Ok(PathBuf::from(path));
        }
        return Err(Error::Plugin {
            plugin: name.into(),
            reason: format!("{}: only unix:// addresses are supported", spec.display()),
        });
    }
    Err(Error::NotFound {
        kind: "plugin",
        name: format!("{name} in {}", dir.display()),
    })
}

/// A connection recipe for one plugin.
#[derive(Debug, Clone)]
pub struct PluginClient {
    name: String,
    socket: PathBuf,
}

impl PluginClient {
    /// Talk to the plugin listening on `socket`.
    pub fn new(name: impl Into<String>, socket: impl Into<PathBuf>) -> Self {
        PluginClient {
            name: name.into(),
            socket: socket.into(),
        }
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Plugin {
            plugin: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// POST `/{method}` with `body` and decode the answer; an `Err` field
    /// in the answer becomes an error.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, body: &Value) -> Result<T> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.err(format!("connect {}: {e}", self.socket.display())))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.err(e.to_string()))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/{method}"))
            .header("content-type", CONTENT_TYPE)
            .header("host", "plugin")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| self.err(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| self.err(format!("{method}: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.err(format!("{method}: {e}")))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("{method}: bad JSON answer ({e})")))?;
        if let Some(e) = v
            .get("Err")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            return Err(self.err(format!("{method}: {e}")));
        }
        if !status.is_success() {
            return Err(self.err(format!("{method}: HTTP {status}")));
        }
        serde_json::from_value(v)
            .map_err(|e| self.err(format!("{method}: unexpected answer ({e})")))
    }

    /// `Plugin.Activate`: the APIs the plugin implements.
    pub async fn activate(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Act {
            #[serde(rename = "Implements", default)]
            implements: Vec<String>,
        }
        Ok(self
            .call::<Act>("Plugin.Activate", &json!({}))
            .await?
            .implements)
    }
}

#[derive(Debug, Default, Deserialize)]
struct Empty {}

#[derive(Debug, Default, Deserialize)]
struct InterfaceName {
    #[serde(rename = "SrcName", default)]
    src_name: String,
}

#[derive(Debug, Default, Deserialize)]
struct JoinResponse {
    #[serde(rename = "InterfaceName", default)]
    interface_name: Option<InterfaceName>,
    #[serde(rename = "Gateway", default)]
    gateway: String,
    #[serde(rename = "GatewayIPv6", default)]
    gateway_v6: String,
}

/// A network driver served by a plugin.
#[derive(Debug)]
pub struct RemoteDriver {
    client: PluginClient,
    scope: Scope,
}

impl RemoteDriver {
    /// Find plugin `name` in `plugin_dir`, activate it and check that it is
    /// a network driver.
    ///
    /// ```no_run
    /// # async fn demo(ctl: &libnetwork::Controller) -> libnetwork::Result<()> {
    /// let drv = libnetwork::remote::RemoteDriver::connect("/run/docker/plugins".as_ref(), "weave").await?;
    /// ctl.register_driver(std::sync::Arc::new(drv));
    /// # Ok(()) }
    /// ```
    pub async fn connect(plugin_dir: &Path, name: &str) -> Result<Self> {
        let client = PluginClient::new(name, discover(plugin_dir, name)?);
        if !client
            .activate()
            .await?
            .iter()
            .any(|i| i == "NetworkDriver")
        {
            return Err(client.err("does not implement NetworkDriver"));
        }
        #[derive(Deserialize)]
        struct Caps {
            #[serde(rename = "Scope", default)]
            scope: String,
        }
        let caps: Caps = client
            .call("NetworkDriver.GetCapabilities", &json!({}))
            .await?;
        let scope = if caps.scope == "global" {
            Scope::Global
        } else {
            Scope::Local
        };
        Ok(RemoteDriver { client, scope })
    }
}

fn ip_data(net: &NetworkInfo, v6: bool) -> Vec<Value> {
    net.subnets
        .iter()
        .filter(|s| s.subnet.addr().is_ipv6() == v6)
        .map(|s| {
            json!({
                "AddressSpace": "",
                "Pool": s.subnet.to_string(),
                "Gateway": s.gateway.map(|g| format!("{g}/{}", s.subnet.prefix_len())).unwrap_or_default(),
                "AuxAddresses": s.aux_addresses.iter().map(|(k, v)| (k.clone(), format!("{v}/{}", s.subnet.prefix_len()))).collect::<BTreeMap<_, _>>(),
            })
        })
        .collect()
}

#[async_trait]
impl Driver for RemoteDriver {
    fn name(&self) -> &str {
        &self.client.name
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    async fn create_network(&self, _host: &HostContext, net: &NetworkInfo) -> Result<()> {
        let body = json!({
            "NetworkID": net.id,
            "Options": { GENERIC: net.config.options, "com.docker.network.enable_ipv6": net.config.enable_ipv6, "com.docker.network.internal": net.config.internal },
            "IPv4Data": ip_data(net, false),
            "IPv6Data": ip_data(net, true),
        });
        self.client
            .call::<Empty>("NetworkDriver.CreateNetwork", &body)
            .await
            .map(|_| ())
    }

    async fn delete_network(&self, _host: &HostContext, net: &NetworkInfo) -> Result<()> {
        self.client
            .call::<Empty>(
                "NetworkDriver.DeleteNetwork",
                &json!({ "NetworkID": net.id }),
            )
            .await
            .map(|_| ())
    }

    async fn create_endpoint(
        &self,
        _host: &HostContext,
        net: &NetworkInfo,
        ep: &EndpointInfo,
    ) -> Result<()> {
        let v4 = ep
            .addresses
            .iter()
            .find(|a| a.addr().is_ipv4())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let v6 = ep
            .addresses
            .iter()
            .find(|a| a.addr().is_ipv6())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let body = json!({
            "NetworkID": net.id,
            "EndpointID": ep.id,
            "Interface": {
                "Address": v4,
                "AddressIPv6": v6,
                "MacAddress": ep.config.mac.map(|m| m.to_string()).unwrap_or_default(),
            },
            "Options": { "com.berth.endpoint.name": ep.config.name, "com.berth.ports": ep.config.ports },
        });
        self.client
            .call::<Value>("NetworkDriver.CreateEndpoint", &body)
            .await
            .map(|_| ())
    }

    async fn delete_endpoint(
        &self,
        _host: &HostContext,
        net: &NetworkInfo,
        ep: &EndpointInfo,
    ) -> Result<()> {
        self.client
            .call::<Empty>(
                "NetworkDriver.DeleteEndpoint",
                &json!({ "NetworkID": net.id, "EndpointID": ep.id }),
            )
            .await
            .map(|_| ())
    }

    async fn join(
        &self,
        host: &HostContext,
        net: &NetworkInfo,
        ep: &mut EndpointInfo,
        sb: &SandboxHandle,
    ) -> Result<()> {
        let ifname = ep.ifname.clone().unwrap_or_else(|| "eth0".into());
        let body = json!({
            "NetworkID": net.id,
            "EndpointID": ep.id,
            "SandboxKey": sb.netns.path(),
            "Options": { IFNAME_OPTION: ifname },
        });
        let resp: JoinResponse = self.client.call("NetworkDriver.Join", &body).await?;
        let Some(src) = resp.interface_name.filter(|i| !i.src_name.is_empty()) else {
            return Ok(()); // plugged into the sandbox by the plugin
        };
        // Move and rename in one request, then configure inside.
        let index = nl::require_link(&host.netlink, &src.src_name).await?;
        host.netlink
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(ifname.clone())
                    .setns_by_fd(sb.netns.raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| {
                Error::netlink(format!("move {} into sandbox {}", src.src_name, sb.id), e)
            })?;
        let inner = nl::require_link(&sb.netlink, &ifname).await?;
        let gws: Vec<IpAddr> = [resp.gateway, resp.gateway_v6]
            .iter()
            .filter_map(|g| g.split('/').next().and_then(|g| g.parse().ok()))
            .collect();
        nl::configure(&sb.netlink, inner, &ep.addresses, &gws).await
    }

    async fn leave(
        &self,
        _host: &HostContext,
        net: &NetworkInfo,
        ep: &EndpointInfo,
        _sb: &SandboxHandle,
    ) -> Result<()> {
        self.client
            .call::<Empty>(
                "NetworkDriver.Leave",
                &json!({ "NetworkID": net.id, "EndpointID": ep.id }),
            )
            .await
            .map(|_| ())
    }
}

/// An IPAM driver served by a plugin.
#[derive(Debug)]
pub struct RemoteIpam {
    client: PluginClient,
}

impl RemoteIpam {
    /// Find plugin `name` in `plugin_dir`, activate it and check that it is
    /// an IPAM driver.
    pub async fn connect(plugin_dir: &Path, name: &str) -> Result<Self> {
        let client = PluginClient::new(name, discover(plugin_dir, name)?);
        if !client.activate().await?.iter().any(|i| i == "IpamDriver") {
            return Err(client.err("does not implement IpamDriver"));
        }
        Ok(RemoteIpam { client })
    }
}

#[async_trait]
impl Ipam for RemoteIpam {
    fn name(&self) -> &str {
        &self.client.name
    }

    fn keeps_state(&self) -> bool {
        true
    }

    async fn request_pool(&self, req: &PoolRequest) -> Result<Pool> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(rename = "PoolID")]
            pool_id: String,
            #[serde(rename = "Pool")]
            pool: String,
        }
        let body = json!({
            "AddressSpace": "",
            "Pool": req.subnet.map(|s| s.to_string()).unwrap_or_default(),
            "SubPool": req.range.map(|s| s.to_string()).unwrap_or_default(),
            "Options": {},
            "V6": req.v6,
        });
        let r: Resp = self.client.call("IpamDriver.RequestPool", &body).await?;
        let subnet: IpNet = r
            .pool
            .parse()
            .map_err(|_| self.client.err(format!("bad pool {:?}", r.pool)))?;
        Ok(Pool {
            id: r.pool_id,
            subnet,
            range: req.range,
        })
    }

    async fn release_pool(&self, pool_id: &str) -> Result<()> {
        self.client
            .call::<Empty>("IpamDriver.ReleasePool", &json!({ "PoolID": pool_id }))
            .await
            .map(|_| ())
    }

    async fn request_address(&self, pool_id: &str, preferred: Option<IpAddr>) -> Result<IpAddr> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(rename = "Address")]
            address: String,
        }
        let body = json!({
            "PoolID": pool_id,
            "Address": preferred.map(|a| a.to_string()).unwrap_or_default(),
            "Options": {},
        });
        let r: Resp = self.client.call("IpamDriver.RequestAddress", &body).await?;
        let ip = r.address.split('/').next().unwrap_or_default();
        ip.parse()
            .map_err(|_| self.client.err(format!("bad address {:?}", r.address)))
    }

    async fn release_address(&self, pool_id: &str, addr: IpAddr) -> Result<()> {
        self.client
            .call::<Empty>(
                "IpamDriver.ReleaseAddress",
                &json!({ "PoolID": pool_id, "Address": addr.to_string() }),
            )
            .await
            .map(|_| ())
    }
}

/// What a plugin server exposes.
pub struct ServedPlugin {
    /// A network driver, if any.
    pub driver: Option<Arc<dyn Driver>>,
    /// An IPAM driver, if any.
    pub ipam: Option<Arc<dyn Ipam>>,
    /// The host context the driver works in.
    pub host: HostContext,
}

#[derive(Default)]
struct ServerState {
    nets: HashMap<String, NetworkInfo>,
    eps: HashMap<String, EndpointInfo>,
    sandboxes: HashMap<String, SandboxHandle>,
}

struct Server {
    plugin: ServedPlugin,
    state: Mutex<ServerState>,
}

#[derive(Deserialize)]
struct IpData {
    #[serde(rename = "Pool")]
    pool: String,
    #[serde(rename = "Gateway", default)]
    gateway: String,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(field, why.to_string())
}

impl Server {
    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn driver(&self) -> Result<&Arc<dyn Driver>> {
        self.plugin.driver.as_ref().ok_or_else(|| Error::NotFound {
            kind: "API",
            name: "NetworkDriver".into(),
        })
    }

    fn ipam(&self) -> Result<&Arc<dyn Ipam>> {
        self.plugin.ipam.as_ref().ok_or_else(|| Error::NotFound {
            kind: "API",
            name: "IpamDriver".into(),
        })
    }

    fn network(&self, v: &Value) -> Result<NetworkInfo> {
        let id = s(v, "NetworkID");
        self.lock().nets.get(&id).cloned().ok_or(Error::NotFound {
            kind: "network",
            name: id,
        })
    }

    fn endpoint(&self, v: &Value) -> Result<EndpointInfo> {
        let id = s(v, "EndpointID");
        self.lock().eps.get(&id).cloned().ok_or(Error::NotFound {
            kind: "endpoint",
            name: id,
        })
    }

    async fn handle(&self, method: &str, v: Value) -> Result<Value> {
        let host = &self.plugin.host;
        match method {
            "Plugin.Activate" => {
                let mut imp = Vec::new();
                if self.plugin.driver.is_some() {
                    imp.push("NetworkDriver");
                }
                if self.plugin.ipam.is_some() {
                    imp.push("IpamDriver");
                }
                Ok(json!({ "Implements": imp }))
            }
            "NetworkDriver.GetCapabilities" => {
                let scope = match self.driver()?.scope() {
                    Scope::Global => "global",
                    Scope::Local => "local",
                };
                Ok(json!({ "Scope": scope, "ConnectivityScope": scope }))
            }
            "NetworkDriver.CreateNetwork" => {
                let id = s(&v, "NetworkID");
                if id.len() < 12 {
                    return Err(bad("NetworkID", "must have at least 12 characters"));
                }
                let opts = v.get("Options").cloned().unwrap_or(Value::Null);
                let options: BTreeMap<String, String> = opts
                    .get(GENERIC)
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| v.to_string()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut subnets = Vec::new();
                for key in ["IPv4Data", "IPv6Data"] {
                    let data: Vec<IpData> =
                        serde_json::from_value(v.get(key).cloned().unwrap_or(json!([])))
                            .map_err(|e| bad(key, e))?;
                    for d in data {
                        let subnet: IpNet =
                            d.pool.parse().map_err(|e| bad(&format!("{key}.Pool"), e))?;
                        let gateway = d
                            .gateway
                            .split('/')
                            .next()
                            .filter(|g| !g.is_empty())
                            .map(str::parse)
                            .transpose()
                            .map_err(|e| bad(&format!("{key}.Gateway"), e))?;
                        subnets.push(SubnetInfo {
                            pool_id: d.pool.clone(),
                            subnet,
                            range: None,
                            gateway,
                            aux_addresses: BTreeMap::new(),
                        });
                    }
                }
                let mut config =
                    NetworkConfig::builder(crate::model::short_id(&id), self.driver()?.name())
                        .build();
                config.options = options;
                config.internal = opts
                    .get("com.docker.network.internal")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                config.enable_ipv6 = subnets.iter().any(|s| s.subnet.addr().is_ipv6());
                let net = NetworkInfo {
                    id: id.clone(),
                    config,
                    subnets,
                };
                self.driver()?.create_network(host, &net).await?;
                self.lock().nets.insert(id, net);
                Ok(json!({}))
            }
            "NetworkDriver.DeleteNetwork" => {
                let net = self.network(&v)?;
                self.driver()?.delete_network(host, &net).await?;
                self.lock().nets.remove(&net.id);
                Ok(json!({}))
            }
            "NetworkDriver.CreateEndpoint" => {
                let net = self.network(&v)?;
                let iface = v.get("Interface").cloned().unwrap_or(Value::Null);
                let mut addresses = Vec::new();
                for k in ["Address", "AddressIPv6"] {
                    let a = s(&iface, k);
                    if !a.is_empty() {
                        addresses.push(
                            a.parse::<IpNet>()
                                .map_err(|e| bad(&format!("Interface.{k}"), e))?,
                        );
                    }
                }
                let mac = match s(&iface, "MacAddress") {
                    m if m.is_empty() => None,
                    m => Some(
                        m.parse::<crate::MacAddress>()
                            .map_err(|e| bad("Interface.MacAddress", e))?,
                    ),
                };
                let opts = v.get("Options").cloned().unwrap_or(Value::Null);
                let ports = opts
                    .get("com.berth.ports")
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| bad("Options.com.berth.ports", e))?
                    .unwrap_or_default();
                let name = opts
                    .get("com.berth.endpoint.name")
                    .and_then(Value::as_str)
                    .unwrap_or("ep")
                    .to_string();
                let ep = EndpointInfo {
                    id: s(&v, "EndpointID"),
                    network_id: net.id.clone(),
                    config: EndpointConfig {
                        name,
                        ports,
                        mac,
                        ..Default::default()
                    },
                    addresses,
                    sandbox_id: None,
                    ifname: None,
                    host_ifname: None,
                    mac: None,
                };
                if ep.id.len() < 12 {
                    return Err(bad("EndpointID", "must have at least 12 characters"));
                }
                self.driver()?.create_endpoint(host, &net, &ep).await?;
                self.lock().eps.insert(ep.id.clone(), ep);
                Ok(json!({ "Interface": {} }))
            }
            "NetworkDriver.EndpointOperInfo" => Ok(json!({ "Value": {} })),
            "NetworkDriver.DeleteEndpoint" => {
                let net = self.network(&v)?;
                let ep = self.endpoint(&v)?;
                self.driver()?.delete_endpoint(host, &net, &ep).await?;
                self.lock().eps.remove(&ep.id);
                Ok(json!({}))
            }
            "NetworkDriver.Join" => {
                let net = self.network(&v)?;
                let mut ep = self.endpoint(&v)?;
                let key = s(&v, "SandboxKey");
                let netns = NetNs::open(&key)?;
                let sb = SandboxHandle {
                    id: key.clone(),
                    netlink: netns.netlink()?,
                    netns,
                };
                ep.ifname = Some(
                    v.get("Options")
                        .and_then(|o| o.get(IFNAME_OPTION))
                        .and_then(Value::as_str)
                        .unwrap_or("eth0")
                        .to_string(),
                );
                ep.sandbox_id = Some(key);
                self.driver()?.join(host, &net, &mut ep, &sb).await?;
                let mut st = self.lock();
                st.sandboxes.insert(ep.id.clone(), sb);
                st.eps.insert(ep.id.clone(), ep);
                Ok(json!({}))
            }
            "NetworkDriver.Leave" => {
                let net = self.network(&v)?;
                let ep = self.endpoint(&v)?;
                let sb = self
                    .lock()
                    .sandboxes
                    .remove(&ep.id)
                    .ok_or(Error::NotFound {
                        kind: "joined endpoint",
                        name: ep.id.clone(),
                    })?;
                self.driver()?.leave(host, &net, &ep, &sb).await?;
                Ok(json!({}))
            }
            "NetworkDriver.DiscoverNew"
            | "NetworkDriver.DiscoverDelete"
            | "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity"
            | "NetworkDriver.AllocateNetwork"
            | "NetworkDriver.FreeNetwork" => Ok(json!({})),
            "IpamDriver.GetCapabilities" => Ok(json!({ "RequiresMACAddress": false })),
            "IpamDriver.GetDefaultAddressSpaces" => Ok(
                json!({ "LocalDefaultAddressSpace": "local", "GlobalDefaultAddressSpace": "global" }),
            ),
            "IpamDriver.RequestPool" => {
                let parse = |k: &str| -> Result<Option<IpNet>> {
                    let t = s(&v, k);
                    if t.is_empty() {
                        Ok(None)
                    } else {
                        t.parse().map(Some).map_err(|e| bad(k, e))
                    }
                };
                let req = PoolRequest {
                    subnet: parse("Pool")?,
                    range: parse("SubPool")?,
                    v6: v.get("V6").and_then(Value::as_bool).unwrap_or(false),
                };
                let pool = self.ipam()?.request_pool(&req).await?;
                Ok(json!({ "PoolID": pool.id, "Pool": pool.subnet.to_string(), "Data": {} }))
            }
            "IpamDriver.ReleasePool" => {
                self.ipam()?.release_pool(&s(&v, "PoolID")).await?;
                Ok(json!({}))
            }
            "IpamDriver.RequestAddress" => {
                let pool_id = s(&v, "PoolID");
                let want = s(&v, "Address");
                let want = if want.is_empty() {
                    None
                } else {
                    Some(want.parse::<IpAddr>().map_err(|e| bad("Address", e))?)
                };
                let a = self.ipam()?.request_address(&pool_id, want).await?;
                let prefix = pool_id
                    .parse::<IpNet>()
                    .map(|n| n.prefix_len())
                    .unwrap_or(if a.is_ipv4() { 32 } else { 128 });
                Ok(json!({ "Address": format!("{a}/{prefix}"), "Data": {} }))
            }
            "IpamDriver.ReleaseAddress" => {
                let a = s(&v, "Address");
                let a: IpAddr = a
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| bad("Address", e))?;
                self.ipam()?.release_address(&s(&v, "PoolID"), a).await?;
                Ok(json!({}))
            }
            other => Err(Error::NotFound {
                kind: "plugin method",
                name: other.to_string(),
            }),
        }
    }
}

/// Serve `plugin` on a unix socket at `socket` until the returned task is
/// aborted. The socket file is replaced if it exists.
///
/// ```no_run
/// # async fn demo(host: libnetwork::HostContext) -> libnetwork::Result<()> {
/// use std::sync::Arc;
/// use libnetwork::remote::{serve, ServedPlugin};
/// let plugin = ServedPlugin { driver: Some(Arc::new(libnetwork::drivers::BridgeDriver::new())), ipam: None, host };
/// let task = serve(plugin, "/run/docker/plugins/berth.sock".as_ref())?;
/// # task.abort(); Ok(()) }
/// ```
pub fn serve(plugin: ServedPlugin, socket: &Path) -> Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .map_err(|e| Error::io(format!("bind {}", socket.display()), e))?;
    let server = Arc::new(Server {
        plugin,
        state: Mutex::new(ServerState::default()),
    });
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(dispatch(&server, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "plugin connection ended");
                }
            });
        }
    }))
}

async fn dispatch(server: &Server, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let method = req.uri().path().trim_start_matches('/').to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "Err": e.to_string() })),
    };
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({ "Err": format!("bad JSON: {e}") }),
                )
            }
        }
    };
    match server.handle(&method, v).await {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => {
            let status = if matches!(
                e,
                Error::NotFound {
                    kind: "plugin method",
                    ..
                }
            ) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            reply(status, json!({ "Err": e.to_string() }))
        }
    }
}

fn reply(status: StatusCode, v: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_finds_sockets_and_specs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.sock"), b"").unwrap();
        std::fs::write(dir.path().join("b.spec"), b"unix:///run/b.sock\n").unwrap();
        std::fs::write(dir.path().join("c.spec"), b"tcp://127.0.0.1:1\n").unwrap();
        assert_eq!(
            discover(dir.path(), "a").unwrap(),
            dir.path().join("a.sock")
        );
        assert_eq!(
            discover(dir.path(), "b").unwrap(),
            PathBuf::from("/run/b.sock")
        );
        assert!(discover(dir.path(), "c")
            .unwrap_err()
            .to_string()
            .contains("unix://"));
        assert!(matches!(
            discover(dir.path(), "d").unwrap_err(),
            Error::NotFound { .. }
        ));
    }
}
