//! The bridge driver: a Linux bridge on the host, one veth pair per
//! endpoint with its container end created directly in the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::IpNet;
use netlink_packet_route::link::{InfoData, InfoPortKind, InfoVeth};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};
use tokio::task::JoinHandle;

use crate::driver::{Driver, HostContext, SandboxHandle};
use crate::error::{Error, Result};
use crate::firewall::{
    endpoint_add_batch, endpoint_del_batch, rebuild_batch, FwEndpoint, FwNetwork, PortMapping,
};
use crate::mac::MacAddress;
use crate::model::{EndpointInfo, NetworkInfo};
use crate::nl;

#[derive(Debug, Clone)]
struct BridgeNet {
    fw: FwNetwork,
    mtu: Option<u32>,
    gateways: Vec<IpAddr>,
}

#[derive(Debug, Default)]
struct State {
    nets: BTreeMap<String, BridgeNet>,
    eps: BTreeMap<String, FwEndpoint>,
    // host ports claimed by every endpoint, joined or not
    claimed: BTreeMap<String, Vec<PortMapping>>,
    forwarding_on: (bool, bool),
}

/// The bridge driver. Options: `name` (bridge name, default `br-<id12>`),
/// `icc` (default true), `masquerade` (default true).
#[derive(Debug, Default)]
pub struct BridgeDriver {
    state: Mutex<State>,
    // veth deletions still running in the background, by host-side name
    pending: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl BridgeDriver {
    /// A new driver with no networks.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bridge name a network uses.
    pub fn bridge_name(net: &NetworkInfo) -> String {
        net.option("name")
            .map(str::to_string)
            .unwrap_or_else(|| format!("br-{}", net.short_id()))
    }

    fn veth_name(ep: &EndpointInfo) -> String {
        format!("veth{}", &ep.id[..11])
    }

    fn describe(net: &NetworkInfo) -> Result<BridgeNet> {
        let bridge = Self::bridge_name(net);
        if bridge.is_empty() || bridge.len() > 15 {
            return Err(Error::invalid(
                "options.name",
                format!("{bridge:?} is not 1 to 15 characters"),
            ));
        }
        Ok(BridgeNet {
            fw: FwNetwork {
                bridge,
                subnets: net.subnets.iter().map(|s| s.subnet).collect(),
                internal: net.config.internal,
                icc: net.bool_option("icc", true)?,
                masquerade: net.bool_option("masquerade", true)?,
            },
            mtu: net.config.mtu,
            gateways: net.subnets.iter().filter_map(|s| s.gateway).collect(),
        })
    }

    fn fw_endpoint(ep: &EndpointInfo) -> FwEndpoint {
        FwEndpoint {
            id: ep.short_id().to_string(),
            addrs: ep.addresses.iter().map(|a| a.addr()).collect(),
            ports: ep.config.ports.clone(),
        }
    }

    async fn rebuild(&self, host: &HostContext) -> Result<()> {
        let batch = {
            let st = self.lock();
            let nets: Vec<FwNetwork> = st.nets.values().map(|n| n.fw.clone()).collect();
            let eps: Vec<FwEndpoint> = st.eps.values().cloned().collect();
            rebuild_batch(&host.nft_table, &nets, &eps)
        };
        host.nft.apply(batch).await
    }

    async fn ensure_forwarding(&self, host: &HostContext, v4: bool, v6: bool) -> Result<()> {
        let (on4, on6) = self.lock().forwarding_on;
        if v4 && !on4 {
            host.netns.sysctl("ipv4/ip_forward", "1")?;
        }
        if v6 && !on6 {
            host.netns.sysctl("ipv6/conf/all/forwarding", "1")?;
        }
        let mut st = self.lock();
        st.forwarding_on = (on4 || v4, on6 || v6);
        Ok(())
    }

    async fn ensure_bridge(
        &self,
        host: &HostContext,
        bn: &BridgeNet,
        subnets: &[(IpAddr, u8)],
    ) -> Result<u32> {
        let h = &host.netlink;
        let index =
            match nl::link_index(h, &bn.fw.bridge).await? {
                Some(i) => i,
                None => {
                    let mut b = LinkBridge::new(&bn.fw.bridge);
                    if let Some(mtu) = bn.mtu {
                        b = b.mtu(mtu);
                    }
                    h.link().add(b.build()).execute().await.map_err(|e| {
                        Error::netlink(format!("create bridge {}", bn.fw.bridge), e)
                    })?;
                    nl::require_link(h, &bn.fw.bridge).await?
                }
            };
        for (gw, prefix) in subnets {
            let net =
                IpNet::new(*gw, *prefix).map_err(|e| Error::invalid("gateway", e.to_string()))?;
            nl::add_address(h, index, net).await?;
        }
        nl::link_up(h, index).await?;
        if subnets.iter().any(|(gw, _)| gw.is_ipv4()) {
            // Published ports reached through the host's 127.0.0.1 are
            // DNATed out of this bridge with a loopback source (then
            // masqueraded): the kernel routes those only with
            // route_localnet (Docker does the same without its proxy).
            let key = format!("ipv4/conf/{}/route_localnet", bn.fw.bridge);
            host.netns.sysctl(&key, "1")?;
        }
        Ok(index)
    }

    /// A host address must be of a family the endpoint has (NAT does not
    /// translate between families) and not IPv6 loopback, which the
    /// kernel never routes out of `lo` (IPv4 has `route_localnet`).
    fn check_host_ip(ep: &EndpointInfo, p: &PortMapping, i: usize) -> Result<()> {
        let Some(h) = p.host_ip else {
            return Ok(());
        };
        let field = format!("ports[{i}].host_ip");
        if !ep
            .addresses
            .iter()
            .any(|a| a.addr().is_ipv4() == h.is_ipv4())
        {
            let fam = if h.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(Error::invalid(
                field,
                format!("cannot map from {h} to an endpoint without an {fam} address"),
            ));
        }
        if h.is_ipv6() && h.is_loopback() {
            return Err(Error::invalid(
                field,
                "IPv6 loopback cannot be forwarded to a container (no userland proxy)",
            ));
        }
        Ok(())
    }

    fn gateway_prefixes(net: &NetworkInfo) -> Vec<(IpAddr, u8)> {
        net.subnets
            .iter()
            .filter_map(|s| s.gateway.map(|g| (g, s.subnet.prefix_len())))
            .collect()
    }
}

#[async_trait]
impl Driver for BridgeDriver {
    fn name(&self) -> &str {
        "bridge"
    }

    async fn create_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()> {
        let bn = Self::describe(net)?;
        if let Some(other) = self
            .lock()
            .nets
            .values()
            .find(|n| n.fw.bridge == bn.fw.bridge)
        {
            return Err(Error::InUse(format!(
                "bridge {} is used by another network",
                other.fw.bridge
            )));
        }
        let has_v6 = net.subnets.iter().any(|s| s.subnet.addr().is_ipv6());
        if !net.config.internal {
            self.ensure_forwarding(host, true, has_v6).await?;
        }
        if let Err(e) = self
            .ensure_bridge(host, &bn, &Self::gateway_prefixes(net))
            .await
        {
            let _ = nl::del_link_by_name(&host.netlink, &bn.fw.bridge).await;
            return Err(e);
        }
        let bridge = bn.fw.bridge.clone();
        self.lock().nets.insert(net.id.clone(), bn);
        if let Err(e) = self.rebuild(host).await {
            self.lock().nets.remove(&net.id);
            let _ = nl::del_link_by_name(&host.netlink, &bridge).await;
            return Err(e);
        }
        Ok(())
    }

    async fn delete_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()> {
        let removed = self.lock().nets.remove(&net.id);
        let bridge = removed
            .map(|b| b.fw.bridge)
            .unwrap_or_else(|| Self::bridge_name(net));
        self.rebuild(host).await?;
        nl::del_link_by_name(&host.netlink, &bridge).await
    }

    async fn create_endpoint(
        &self,
        _host: &HostContext,
        _net: &NetworkInfo,
        ep: &EndpointInfo,
    ) -> Result<()> {
        for (i, p) in ep.config.ports.iter().enumerate() {
            p.validate(&format!("ports[{i}]"))?;
            Self::check_host_ip(ep, p, i)?;
        }
        let mut st = self.lock();
        for (i, p) in ep.config.ports.iter().enumerate() {
            for (j, q) in ep.config.ports.iter().enumerate().skip(i + 1) {
                // One endpoint may take a port on 0.0.0.0 and on [::].
                if p.clashes(q) {
                    return Err(Error::invalid(
                        format!("ports[{j}]"),
                        format!("overlaps ports[{i}]"),
                    ));
                }
            }
            for (owner, ports) in st.claimed.iter().filter(|(id, _)| **id != ep.id) {
                // Endpoints may share a port on different host addresses.
                if let Some(q) = ports.iter().find(|q| p.clashes(q)) {
                    return Err(Error::PortTaken {
                        proto: p.proto.as_str().to_string(),
                        port: p.host_port,
                        host_ip: q
                            .host_ip
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        owner: crate::model::short_id(owner).to_string(),
                    });
                }
            }
        }
        if !ep.config.ports.is_empty() {
            st.claimed.insert(ep.id.clone(), ep.config.ports.clone());
        }
        Ok(())
    }

    async fn delete_endpoint(
        &self,
        _host: &HostContext,
        _net: &NetworkInfo,
        ep: &EndpointInfo,
    ) -> Result<()> {
        self.lock().claimed.remove(&ep.id);
        Ok(())
    }

    async fn join(
        &self,
        host: &HostContext,
        net: &NetworkInfo,
        ep: &mut EndpointInfo,
        sb: &SandboxHandle,
    ) -> Result<()> {
        let bn = self
            .lock()
            .nets
            .get(&net.id)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "bridge network",
                name: net.config.name.clone(),
            })?;
        let ifname = ep.ifname.clone().unwrap_or_else(|| "eth0".into());
        let veth = Self::veth_name(ep);
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&veth);
        if let Some(p) = pending {
            let _ = p.await;
        }
        let bridge_index = nl::require_link(&host.netlink, &bn.fw.bridge).await?;

        // One request creates the pair, enslaves our end and puts the other
        // end, already named, straight into the sandbox. (Bringing a peer
        // up in the same request fails with ENOTCONN when it is born in
        // another namespace, so the sandbox side is set up below.)
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(ifname.clone())
            .setns_by_fd(sb.netns.raw_fd());
        if let Some(mtu) = bn.mtu {
            peer = peer.mtu(mtu);
        }
        // The address is set at birth, in the sandbox (netavark style).
        let mac = match ep.config.mac {
            Some(m) => m,
            None => MacAddress::random()?,
        };
        peer = peer.address(mac.octets().to_vec());
        let mut msg = LinkVeth::new(&veth, &ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .controller(bridge_index)
            .up();
        if let Some(mtu) = bn.mtu {
            msg = msg.mtu(mtu);
        }
        host.netlink
            .link()
            .add(msg.build())
            .execute()
            .await
            .map_err(|e| {
                Error::netlink(
                    format!("create veth {veth} with {ifname} in sandbox {}", sb.id),
                    e,
                )
            })?;
        ep.host_ifname = Some(veth.clone());
        ep.mac = Some(mac);

        let fw = Self::fw_endpoint(ep);
        let result = async {
            let sandbox_side = async {
                let index = nl::require_link(&sb.netlink, &ifname).await?;
                let gateways: &[IpAddr] = if bn.fw.internal { &[] } else { &bn.gateways };
                nl::configure(&sb.netlink, index, &ep.addresses, gateways).await
            };
            let host_side = async {
                if !fw.ports.is_empty() || !bn.fw.icc {
                    let mut port = LinkMessageBuilder::<LinkBridgePort>::default()
                        .name(veth.clone())
                        .set_port_kind(InfoPortKind::Bridge)
                        .hairpin(!fw.ports.is_empty());
                    if !bn.fw.icc {
                        port = port.isolated(true);
                    }
                    host.netlink
                        .link()
                        .set_port(port.build())
                        .execute()
                        .await
                        .map_err(|e| {
                            Error::netlink(format!("set bridge port flags on {veth}"), e)
                        })?;
                }
                host.nft
                    .apply(endpoint_add_batch(&host.nft_table, &fw))
                    .await
            };
            futures::try_join!(sandbox_side, host_side)?;
            // The sandbox end is up now: settle our end's carrier too, so
            // the bridge port forwards before join returns.
            nl::link_index(&host.netlink, &veth).await.map(|_| ())
        }
        .await;
        if let Err(e) = result {
            let _ = nl::del_link_by_name(&host.netlink, &veth).await;
            return Err(e);
        }
        self.lock().eps.insert(ep.id.clone(), fw);
        Ok(())
    }

    async fn leave(
        &self,
        host: &HostContext,
        _net: &NetworkInfo,
        ep: &EndpointInfo,
        sb: &SandboxHandle,
    ) -> Result<()> {
        let fw = self
            .lock()
            .eps
            .remove(&ep.id)
            .unwrap_or_else(|| Self::fw_endpoint(ep));
        host.nft
            .apply(endpoint_del_batch(&host.nft_table, &fw))
            .await?;
        // Addresses go now, so they can be reused at once; the veth's
        // deletion waits for an RCU grace period (tens of ms), so it runs in
        // the background.
        if let Some(ifname) = &ep.ifname {
            if let Some(index) = nl::link_index(&sb.netlink, ifname).await? {
                for a in &ep.addresses {
                    nl::del_address(&sb.netlink, index, *a).await?;
                }
            }
        }
        let veth = ep
            .host_ifname
            .clone()
            .unwrap_or_else(|| Self::veth_name(ep));
        let h = host.netlink.clone();
        let name = veth.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = nl::del_link_by_name(&h, &name).await {
                tracing::warn!(veth = %name, error = %e, "deleting veth failed");
            }
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(veth, task);
        Ok(())
    }

    async fn restore(
        &self,
        host: &HostContext,
        nets: &[NetworkInfo],
        eps: &[EndpointInfo],
    ) -> Result<()> {
        let mut bridges = Vec::new();
        for net in nets.iter().filter(|n| n.config.driver == "bridge") {
            let bn = Self::describe(net)?;
            bridges.push(
                self.ensure_bridge(host, &bn, &Self::gateway_prefixes(net))
                    .await?,
            );
            let has_v6 = net.subnets.iter().any(|s| s.subnet.addr().is_ipv6());
            if !net.config.internal {
                self.ensure_forwarding(host, true, has_v6).await?;
            }
            self.lock().nets.insert(net.id.clone(), bn);
        }
        {
            let mut st = self.lock();
            for ep in eps {
                if !st.nets.contains_key(&ep.network_id) {
                    continue;
                }
                if !ep.config.ports.is_empty() {
                    st.claimed.insert(ep.id.clone(), ep.config.ports.clone());
                }
                if ep.sandbox_id.is_some() {
                    st.eps.insert(ep.id.clone(), Self::fw_endpoint(ep));
                }
            }
        }
        let known: Vec<&str> = eps
            .iter()
            .filter(|e| e.sandbox_id.is_some())
            .filter_map(|e| e.host_ifname.as_deref())
            .collect();
        self.remove_orphan_veths(host, &bridges, &known).await?;
        self.rebuild(host).await
    }

    async fn reload(&self, host: &HostContext) -> Result<()> {
        self.rebuild(host).await
    }
}

impl BridgeDriver {
    /// Delete veths on our bridges that no endpoint owns: what a controller
    /// that crashed in the middle of a join left behind.
    async fn remove_orphan_veths(
        &self,
        host: &HostContext,
        bridges: &[u32],
        known: &[&str],
    ) -> Result<()> {
        use futures::TryStreamExt;
        use netlink_packet_route::link::LinkAttribute;
        let mut orphans = Vec::new();
        let mut links = host.netlink.link().get().execute();
        while let Some(msg) = links
            .try_next()
            .await
            .map_err(|e| Error::netlink("list links", e))?
        {
            let mut name = None;
            let mut on_ours = false;
            for a in &msg.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Controller(c) => on_ours = bridges.contains(c),
                    _ => {}
                }
            }
            if let Some(n) =
                name.filter(|n| on_ours && n.starts_with("veth") && !known.contains(&n.as_str()))
            {
                orphans.push(n);
            }
        }
        for n in orphans {
            tracing::info!(veth = %n, "removing a veth left by a crashed controller");
            nl::del_link_by_name(&host.netlink, &n).await?;
        }
        Ok(())
    }

    /// Wait for background veth deletions (tests and shutdown).
    pub async fn settle(&self) {
        let tasks: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, t)| t)
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}
