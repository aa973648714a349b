//! A CNI 1.1 plugin over the bridge driver and the local IPAM: the logic
//! of the `berth-cni` example binary, kept here so it can be embedded and
//! tested in-process.
//!
//! Network configuration (stdin), besides `cniVersion`, `name`, `type`:
//! `bridge` (bridge name, default `cni-<name>` cut to 15 characters),
//! `subnet` / `gateway` (or `ipam.subnet` / `ipam.gateway`), `ipMasq`
//! (default true), `mtu`, `isolated` (ICC off), `dataDir` (state, default
//! `/var/lib/berth-cni`), `runtimeConfig.portMappings` (`hostPort`,
//! `containerPort`, `protocol`, `hostIP`), `runtimeConfig.mac` (the
//! interface's MAC address, the `mac` capability; the result reports the
//! address the interface has either way).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::controller::{Controller, ControllerConfig};
use crate::error::{Error, Result};
use crate::firewall::{PortMapping, Proto};
use crate::mac::MacAddress;
use crate::model::{EndpointConfig, IpamPoolConfig, NetworkConfig, SandboxConfig};

/// CNI versions this plugin speaks.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The CNI_* environment of one invocation.
#[derive(Debug, Clone, Default)]
pub struct CniEnv {
    /// CNI_COMMAND.
    pub command: String,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
}

impl CniEnv {
    /// Read the environment of this process.
    pub fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).unwrap_or_default();
        CniEnv {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
        }
    }
}

/// A CNI error: numeric code and message, printed as the spec's JSON.
#[derive(Debug)]
pub struct CniError {
    /// 1 incompatible version, 4 invalid config, 7 invalid env, 11 retry
    /// later, 999 other.
    pub code: u32,
    /// The message.
    pub msg: String,
}

impl CniError {
    fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
        }
    }

    /// The JSON object CNI callers expect on stdout.
    pub fn to_json(&self, version: &str) -> String {
        json!({ "cniVersion": version, "code": self.code, "msg": self.msg }).to_string()
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::InvalidConfig { .. } | Error::Overlap { .. } => 4,
            Error::PortTaken { .. } | Error::InUse(_) => 11,
            _ => 999,
        };
        CniError::new(code, e.to_string())
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PortMap {
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    host_ip: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMap>,
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct IpamConf {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetConf {
    cni_version: String,
    name: String,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    ipam: Option<IpamConf>,
    #[serde(default)]
    ip_masq: Option<bool>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    isolated: Option<bool>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Value>>,
}

fn parse_conf(stdin: &str) -> std::result::Result<NetConf, CniError> {
    let conf: NetConf = serde_json::from_str(stdin)
        .map_err(|e| CniError::new(4, format!("network configuration: {e}")))?;
    if conf.name.is_empty() {
        return Err(CniError::new(
            4,
            "network configuration: name must not be empty",
        ));
    }
    Ok(conf)
}

/// The version to answer with: the configuration's if we speak it.
pub fn answer_version(stdin: &str) -> String {
    serde_json::from_str::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into())
}

fn need<'a>(v: &'a str, name: &str) -> std::result::Result<&'a str, CniError> {
    if v.is_empty() {
        Err(CniError::new(7, format!("{name} is required")))
    } else {
        Ok(v)
    }
}

/// Run one CNI command. `host_netns` is the namespace to manage (`None`:
/// the caller's, as when a runtime runs the plugin). Returns what goes to
/// stdout on success.
pub async fn run(
    env: &CniEnv,
    stdin: &str,
    host_netns: Option<PathBuf>,
) -> std::result::Result<String, CniError> {
    if env.command == "VERSION" {
        return Ok(
            json!({ "cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS }).to_string(),
        );
    }
    let conf = parse_conf(stdin)?;
    if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            1,
            format!("cniVersion {} is not supported", conf.cni_version),
        ));
    }
    let data_dir = conf
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/berth-cni"));
    let mut cfg = ControllerConfig::new(data_dir.join(&conf.name))
        .dns_upstreams(vec![])
        .nft_table(format!("berth-cni-{}", conf.name));
    if let Some(h) = host_netns {
        cfg = cfg.host_netns(h);
    }
    if env.command == "STATUS" {
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| CniError::new(50, format!("{}: {e}", data_dir.display())))?;
        return Ok(String::new());
    }
    let ctl = Controller::new(cfg).await?;
    let out = match env.command.as_str() {
        "ADD" => add(&ctl, env, &conf).await,
        "DEL" => del(&ctl, env, &conf).await.map(|_| String::new()),
        "CHECK" => check(&ctl, env, &conf).await.map(|_| String::new()),
        "GC" => gc(&ctl, &conf).await.map(|_| String::new()),
        other => Err(CniError::new(4, format!("unknown CNI_COMMAND {other:?}"))),
    };
    ctl.settle().await;
    out
}

async fn ensure_network(ctl: &Controller, conf: &NetConf) -> Result<crate::model::NetworkInfo> {
    if let Ok(n) = ctl.network(&conf.name).await {
        return Ok(n);
    }
    let ipam = conf.ipam.as_ref();
    let subnet = conf
        .subnet
        .clone()
        .or_else(|| ipam.and_then(|i| i.subnet.clone()));
    let gateway = conf
        .gateway
        .clone()
        .or_else(|| ipam.and_then(|i| i.gateway.clone()));
    let pool = IpamPoolConfig {
        subnet: subnet
            .map(|s| {
                s.parse()
                    .map_err(|e| Error::invalid("subnet", format!("{s:?}: {e}")))
            })
            .transpose()?,
        gateway: gateway
            .map(|g| {
                g.parse()
                    .map_err(|e| Error::invalid("gateway", format!("{g:?}: {e}")))
            })
            .transpose()?,
        ..Default::default()
    };
    let bridge = conf.bridge.clone().unwrap_or_else(|| {
        let mut b = format!("cni-{}", conf.name);
        b.truncate(15);
        b
    });
    let mut b = NetworkConfig::builder(&conf.name, "bridge")
        .pool(pool)
        .option("name", bridge)
        .option("masquerade", conf.ip_masq.unwrap_or(true).to_string())
        .option("icc", (!conf.isolated.unwrap_or(false)).to_string());
    if let Some(m) = conf.mtu {
        b = b.mtu(m);
    }
    ctl.create_network(b.build()).await
}

fn ports(conf: &NetConf) -> std::result::Result<Vec<PortMapping>, CniError> {
    conf.runtime_config
        .port_mappings
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let proto: Proto = p
                .protocol
                .as_deref()
                .unwrap_or("tcp")
                .parse()
                .map_err(|e: Error| CniError::new(4, e.to_string()))?;
            let host_ip = match p.host_ip.as_deref() {
                None | Some("") => None,
                Some(h) => Some(h.parse().map_err(|_| {
                    CniError::new(
                        4,
                        format!("portMappings[{i}].hostIP {h:?} is not an address"),
                    )
                })?),
            };
            Ok(PortMapping {
                host_ip,
                ..PortMapping::new(proto, p.host_port, p.container_port)
            })
        })
        .collect()
}

fn endpoint_name(env: &CniEnv) -> String {
    format!("{}-{}", env.container_id, env.ifname)
}

async fn add(
    ctl: &Arc<Controller>,
    env: &CniEnv,
    conf: &NetConf,
) -> std::result::Result<String, CniError> {
    need(&env.container_id, "CNI_CONTAINERID")?;
    need(&env.netns, "CNI_NETNS")?;
    need(&env.ifname, "CNI_IFNAME")?;
    // Checked before anything is made, so a bad request leaves nothing.
    let mac = match conf.runtime_config.mac.as_deref() {
        None | Some("") => None,
        Some(m) => Some(m.parse::<MacAddress>().map_err(|_| {
            CniError::new(4, format!("runtimeConfig.mac {m:?} is not a MAC address"))
        })?),
    };
    let ports = ports(conf)?;
    let net = ensure_network(ctl, conf).await?;
    let sb = match ctl.sandbox_for_container(&env.container_id).await {
        Some(sb) => sb,
        None => {
            ctl.create_sandbox(
                SandboxConfig::new(&env.container_id)
                    .netns_path(&env.netns)
                    .embedded_dns(false),
            )
            .await?
        }
    };
    let cfg = EndpointConfig {
        ports,
        mac,
        ..EndpointConfig::builder(endpoint_name(env))
            .ifname(&env.ifname)
            .build()
    };
    let ep = match ctl.attach(&net.id, &sb.id, cfg).await {
        Ok(ep) => ep,
        Err(e) => {
            if ctl
                .endpoints()
                .await
                .iter()
                .all(|e| e.sandbox_id.as_deref() != Some(sb.id.as_str()))
            {
                let _ = ctl.delete_sandbox(&sb.id).await;
            }
            return Err(e.into());
        }
    };
    let bridge = net.option("name").unwrap_or_default().to_string();
    let ips: Vec<Value> = ep
        .addresses
        .iter()
        .map(|a| {
            let gw = net
                .subnets
                .iter()
                .find(|s| s.subnet.contains(&a.addr()))
                .and_then(|s| s.gateway);
            let mut ip = json!({ "address": a.to_string(), "interface": 2 });
            if let Some(g) = gw {
                ip["gateway"] = json!(g.to_string());
            }
            ip
        })
        .collect();
    let routes: Vec<Value> = ep
        .addresses
        .iter()
        .map(|a| json!({ "dst": if a.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" } }))
        .collect();
    Ok(json!({
        "cniVersion": conf.cni_version,
        "interfaces": [
            { "name": bridge },
            { "name": ep.host_ifname.clone().unwrap_or_default() },
            {
                "name": env.ifname,
                "mac": ep.mac.map(|m| m.to_string()).unwrap_or_default(),
                "sandbox": env.netns,
            },
        ],
        "ips": ips,
        "routes": routes,
        "dns": {},
    })
    .to_string())
}

async fn find_endpoint(
    ctl: &Controller,
    env: &CniEnv,
    conf: &NetConf,
) -> Option<crate::model::EndpointInfo> {
    let net = ctl.network(&conf.name).await.ok()?;
    let name = endpoint_name(env);
    ctl.endpoints()
        .await
        .into_iter()
        .find(|e| e.network_id == net.id && e.config.name == name)
}

async fn release(ctl: &Controller, ep: &crate::model::EndpointInfo) -> Result<()> {
    let sb = ep.sandbox_id.clone();
    ctl.detach(&ep.id).await?;
    if let Some(sb) = sb {
        if ctl
            .endpoints()
            .await
            .iter()
            .all(|e| e.sandbox_id.as_deref() != Some(sb.as_str()))
        {
            ctl.delete_sandbox(&sb).await?;
        }
    }
    Ok(())
}

async fn del(ctl: &Controller, env: &CniEnv, conf: &NetConf) -> std::result::Result<(), CniError> {
    need(&env.container_id, "CNI_CONTAINERID")?;
    // DEL is idempotent: nothing to do is success.
    if let Some(ep) = find_endpoint(ctl, env, conf).await {
        release(ctl, &ep).await?;
    }
    Ok(())
}

async fn check(
    ctl: &Controller,
    env: &CniEnv,
    conf: &NetConf,
) -> std::result::Result<(), CniError> {
    need(&env.container_id, "CNI_CONTAINERID")?;
    let ep = find_endpoint(ctl, env, conf).await.ok_or_else(|| {
        CniError::new(
            999,
            format!("no attachment of {} on {}", endpoint_name(env), conf.name),
        )
    })?;
    ctl.verify(&ep.id).await?;
    Ok(())
}

async fn gc(ctl: &Controller, conf: &NetConf) -> std::result::Result<(), CniError> {
    let valid: BTreeMap<String, ()> = conf
        .valid_attachments
        .iter()
        .flatten()
        .filter_map(|a| {
            let id = a.get("containerID")?.as_str()?;
            let ifname = a.get("ifname")?.as_str()?;
            Some((format!("{id}-{ifname}"), ()))
        })
        .collect();
    let Ok(net) = ctl.network(&conf.name).await else {
        return Ok(());
    };
    for ep in ctl
        .endpoints()
        .await
        .into_iter()
        .filter(|e| e.network_id == net.id)
    {
        if !valid.contains_key(&ep.config.name) {
            release(ctl, &ep).await?;
        }
    }
    Ok(())
}
