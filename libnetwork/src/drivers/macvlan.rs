//! `macvlan` and `ipvlan` drivers: sub-interfaces of a host parent link,
//! created directly inside the sandbox.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use netlink_packet_route::link::{IpVlanFlags, IpVlanMode, LinkMessage, MacVlanMode};
use rtnetlink::{LinkIpVlan, LinkMacVlan, LinkVlan};

use crate::driver::{Driver, HostContext, SandboxHandle};
use crate::error::{Error, Result};
use crate::model::{EndpointInfo, NetworkInfo};
use crate::nl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Macvlan,
    Ipvlan,
}

#[derive(Debug, Default)]
struct Shared {
    // network id -> vlan sub-interface we created (removed with the network)
    created_parents: Mutex<BTreeMap<String, String>>,
}

/// The macvlan driver. Options: `parent` (required; `eth0.100` creates an
/// 802.1q sub-interface of eth0 with VLAN 100), `mode` (bridge, private,
/// vepa, passthru; default bridge).
#[derive(Debug, Default)]
pub struct MacvlanDriver {
    shared: Shared,
}

/// The ipvlan driver. Options: `parent` (as for macvlan), `mode` (l2, l3,
/// l3s; default l2), `flag` (bridge, private, vepa; default bridge).
#[derive(Debug, Default)]
pub struct IpvlanDriver {
    shared: Shared,
}

fn parent(net: &NetworkInfo) -> Result<String> {
    let p = net
        .option("parent")
        .ok_or_else(|| Error::invalid("options.parent", "the parent interface is required"))?;
    if p.is_empty() || p.len() > 15 {
        return Err(Error::invalid(
            "options.parent",
            format!("{p:?} is not 1 to 15 characters"),
        ));
    }
    Ok(p.to_string())
}

fn macvlan_mode(net: &NetworkInfo) -> Result<MacVlanMode> {
    match net.option("mode").unwrap_or("bridge") {
        "bridge" => Ok(MacVlanMode::Bridge),
        "private" => Ok(MacVlanMode::Private),
        "vepa" => Ok(MacVlanMode::Vepa),
        "passthru" => Ok(MacVlanMode::Passthrough),
        m => Err(Error::invalid(
            "options.mode",
            format!("{m:?} is not bridge, private, vepa or passthru"),
        )),
    }
}

fn ipvlan_mode(net: &NetworkInfo) -> Result<(IpVlanMode, IpVlanFlags)> {
    let mode = match net.option("mode").unwrap_or("l2") {
        "l2" => IpVlanMode::L2,
        "l3" => IpVlanMode::L3,
        "l3s" => IpVlanMode::L3S,
        m => {
            return Err(Error::invalid(
                "options.mode",
                format!("{m:?} is not l2, l3 or l3s"),
            ))
        }
    };
    let flag = match net.option("flag").unwrap_or("bridge") {
        "bridge" => IpVlanFlags::empty(),
        "private" => IpVlanFlags::Private,
        "vepa" => IpVlanFlags::Vepa,
        f => {
            return Err(Error::invalid(
                "options.flag",
                format!("{f:?} is not bridge, private or vepa"),
            ))
        }
    };
    Ok((mode, flag))
}

impl Shared {
    async fn create_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()> {
        let parent = parent(net)?;
        if nl::link_index(&host.netlink, &parent).await?.is_some() {
            return Ok(());
        }
        // `base.VID`: an 802.1q sub-interface we create and later remove.
        let (base, vid) = parent
            .rsplit_once('.')
            .and_then(|(b, v)| v.parse::<u16>().ok().map(|v| (b.to_string(), v)))
            .ok_or_else(|| Error::NotFound {
                kind: "parent interface",
                name: parent.clone(),
            })?;
        if vid == 0 || vid > 4094 {
            return Err(Error::invalid(
                "options.parent",
                format!("VLAN id {vid} is not 1 to 4094"),
            ));
        }
        let base_index = nl::require_link(&host.netlink, &base).await?;
        host.netlink
            .link()
            .add(LinkVlan::new(&parent, base_index, vid).up().build())
            .execute()
            .await
            .map_err(|e| Error::netlink(format!("create VLAN interface {parent}"), e))?;
        self.created_parents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(net.id.clone(), parent);
        Ok(())
    }

    async fn delete_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()> {
        let created = self
            .created_parents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&net.id);
        if let Some(p) = created {
            nl::del_link_by_name(&host.netlink, &p).await?;
        }
        Ok(())
    }

    async fn join(
        &self,
        kind: Kind,
        host: &HostContext,
        net: &NetworkInfo,
        ep: &mut EndpointInfo,
        sb: &SandboxHandle,
    ) -> Result<()> {
        let parent_index = nl::require_link(&host.netlink, &parent(net)?).await?;
        let ifname = ep.ifname.clone().unwrap_or_else(|| "eth0".into());
        let mut msg: LinkMessage = match kind {
            Kind::Macvlan => {
                let mut b = LinkMacVlan::new(&ifname, parent_index, macvlan_mode(net)?)
                    .setns_by_fd(sb.netns.raw_fd());
                if let Some(mtu) = net.config.mtu {
                    b = b.mtu(mtu);
                }
                let mac = match ep.config.mac {
                    Some(m) => m,
                    None => crate::MacAddress::random()?,
                };
                ep.mac = Some(mac);
                b.address(mac.octets().to_vec()).build()
            }
            Kind::Ipvlan => {
                let (mode, flag) = ipvlan_mode(net)?;
                let mut b = LinkIpVlan::new(&ifname, parent_index, mode)
                    .flag(flag)
                    .setns_by_fd(sb.netns.raw_fd());
                if let Some(mtu) = net.config.mtu {
                    b = b.mtu(mtu);
                }
                b.build()
            }
        };
        msg.header.index = 0;
        // Created by the host's socket (the parent is looked up there) but
        // born inside the sandbox.
        host.netlink.link().add(msg).execute().await.map_err(|e| {
            Error::netlink(
                format!(
                    "create {ifname} on {} in sandbox {}",
                    parent(net).unwrap_or_default(),
                    sb.id
                ),
                e,
            )
        })?;
        let result = async {
            let index = nl::require_link(&sb.netlink, &ifname).await?;
            nl::configure(&sb.netlink, index, &ep.addresses, &[]).await?;
            if !net.config.internal {
                let l3 = kind == Kind::Ipvlan && matches!(net.option("mode"), Some("l3" | "l3s"));
                for s in &net.subnets {
                    if l3 {
                        // L3 mode has no neighbours to resolve: route via the device.
                        let mut m = match s.subnet {
                            ipnet::IpNet::V4(_) => {
                                rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                                    .output_interface(index)
                                    .build()
                            }
                            ipnet::IpNet::V6(_) => {
                                rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                                    .output_interface(index)
                                    .build()
                            }
                        };
                        m.header.scope = netlink_packet_route::route::RouteScope::Link;
                        match sb.netlink.route().add(m).execute().await {
                            Ok(()) => {}
                            Err(e) if nl::errno(&e) == Some(libc::EEXIST) => {}
                            Err(e) => return Err(Error::netlink("add default route", e)),
                        }
                    } else if let Some(gw) = s.gateway {
                        nl::add_default_route(&sb.netlink, gw, Some(index)).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = nl::del_link_by_name(&sb.netlink, &ifname).await;
            return Err(e);
        }
        Ok(())
    }

    async fn leave(&self, ep: &EndpointInfo, sb: &SandboxHandle) -> Result<()> {
        let Some(ifname) = ep.ifname.clone() else {
            return Ok(());
        };
        if let Some(index) = nl::link_index(&sb.netlink, &ifname).await? {
            for a in &ep.addresses {
                nl::del_address(&sb.netlink, index, *a).await?;
            }
        }
        let h = sb.netlink.clone();
        tokio::spawn(async move {
            if let Err(e) = nl::del_link_by_name(&h, &ifname).await {
                tracing::warn!(error = %e, "deleting sandbox interface failed");
            }
        });
        Ok(())
    }
}

macro_rules! sub_interface_driver {
    ($ty:ty, $name:literal, $kind:expr, $check:expr) => {
        #[async_trait]
        impl Driver for $ty {
            fn name(&self) -> &str {
                $name
            }
            async fn create_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()> {
                ($check)(net)?;
                self.shared.create_network(host, net).await
            }
            async fn delete_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()> {
                self.shared.delete_network(host, net).await
            }
            async fn create_endpoint(
                &self,
                _host: &HostContext,
                _net: &NetworkInfo,
                ep: &EndpointInfo,
            ) -> Result<()> {
                // An ipvlan interface has its parent's address.
                if $kind == Kind::Ipvlan && ep.config.mac.is_some() {
                    return Err(Error::invalid(
                        "endpoint.mac",
                        "ipvlan interfaces do not support custom mac address assignment",
                    ));
                }
                Ok(())
            }
            async fn join(
                &self,
                host: &HostContext,
                net: &NetworkInfo,
                ep: &mut EndpointInfo,
                sb: &SandboxHandle,
            ) -> Result<()> {
                self.shared.join($kind, host, net, ep, sb).await
            }
            async fn leave(
                &self,
                _host: &HostContext,
                _net: &NetworkInfo,
                ep: &EndpointInfo,
                sb: &SandboxHandle,
            ) -> Result<()> {
                self.shared.leave(ep, sb).await
            }
        }
    };
}

sub_interface_driver!(MacvlanDriver, "macvlan", Kind::Macvlan, |n| macvlan_mode(n)
    .map(|_| ()));
sub_interface_driver!(IpvlanDriver, "ipvlan", Kind::Ipvlan, |n| ipvlan_mode(n)
    .map(|_| ()));
