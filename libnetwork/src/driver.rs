//! The network driver interface.

use async_trait::async_trait;

use crate::error::Result;
use crate::firewall::Nft;
use crate::model::{EndpointInfo, NetworkInfo, Scope};
use crate::netns::{NetNs, NsWorker};

/// The host side: the namespace the controller manages (the real host, or a
/// fake one in tests) with a netlink handle and a worker thread inside it.
#[derive(Debug, Clone)]
pub struct HostContext {
    /// The namespace.
    pub netns: NetNs,
    /// rtnetlink bound to it.
    pub netlink: rtnetlink::Handle,
    /// A thread living in it (sockets, sysctls).
    pub worker: NsWorker,
    /// nftables bound to it.
    pub nft: Nft,
    /// Our nftables table's name.
    pub nft_table: String,
}

/// A sandbox's side, handed to [`Driver::join`] and [`Driver::leave`].
#[derive(Debug, Clone)]
pub struct SandboxHandle {
    /// The sandbox id.
    pub id: String,
    /// Its namespace.
    pub netns: NetNs,
    /// rtnetlink bound to it.
    pub netlink: rtnetlink::Handle,
}

/// A network driver. Local drivers (bridge, macvlan …) and remote plugins
/// implement it; an overlay driver would report [`Scope::Global`] and do
/// its per-host work in `join`/`leave` with the same handles.
///
/// Calls for one network are not made concurrently by the controller.
#[async_trait]
pub trait Driver: Send + Sync {
    /// The name networks use to select it.
    fn name(&self) -> &str;

    /// Local or global scope.
    fn scope(&self) -> Scope {
        Scope::Local
    }

    /// Whether networks of this driver get IPAM pools and endpoints get
    /// addresses (false for `null` and `host`).
    fn needs_ipam(&self) -> bool {
        true
    }

    /// Check the configuration and create what the network needs on the
    /// host (a bridge, firewall rules …).
    async fn create_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()>;

    /// Undo [`Driver::create_network`].
    async fn delete_network(&self, host: &HostContext, net: &NetworkInfo) -> Result<()>;

    /// Validate an endpoint before addresses are committed (ports, options).
    async fn create_endpoint(
        &self,
        _host: &HostContext,
        _net: &NetworkInfo,
        _ep: &EndpointInfo,
    ) -> Result<()> {
        Ok(())
    }

    /// Forget an endpoint that is not joined.
    async fn delete_endpoint(
        &self,
        _host: &HostContext,
        _net: &NetworkInfo,
        _ep: &EndpointInfo,
    ) -> Result<()> {
        Ok(())
    }

    /// Plug the endpoint into the sandbox: create its interface there,
    /// set addresses and routes. May record interface names in `ep`.
    async fn join(
        &self,
        host: &HostContext,
        net: &NetworkInfo,
        ep: &mut EndpointInfo,
        sandbox: &SandboxHandle,
    ) -> Result<()>;

    /// Unplug the endpoint. Slow kernel work (deleting links) should be
    /// left running in the background; addresses must be gone on return
    /// so that they can be handed out again.
    async fn leave(
        &self,
        host: &HostContext,
        net: &NetworkInfo,
        ep: &EndpointInfo,
        sandbox: &SandboxHandle,
    ) -> Result<()>;

    /// Re-learn networks and endpoints after a restart (no kernel changes
    /// beyond recreating what is missing).
    async fn restore(
        &self,
        _host: &HostContext,
        _nets: &[NetworkInfo],
        _eps: &[EndpointInfo],
    ) -> Result<()> {
        Ok(())
    }

    /// Rebuild firewall rules from the driver's state (after someone
    /// flushed the ruleset).
    async fn reload(&self, _host: &HostContext) -> Result<()> {
        Ok(())
    }
}
