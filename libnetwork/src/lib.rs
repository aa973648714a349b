//! The Container Network Model on netlink and nftables.
//!
//! A [`Controller`] owns networks (made by a [`Driver`] with addresses from
//! an [`Ipam`]), endpoints (one attachment to one network) and sandboxes
//! (network namespaces). Joining an endpoint to a sandbox plugs an
//! interface into the namespace, publishes its ports through nftables and
//! makes its name resolvable by the embedded DNS server of every sandbox on
//! the network.
//!
//! Everything works on explicit namespace handles: the controller can
//! manage a "host" that is itself a network namespace, which is how the
//! tests run without touching the real host.

pub mod cni;
pub mod controller;
pub mod dns;
pub mod driver;
pub mod drivers;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod mac;
pub mod model;
pub mod netns;
pub mod nl;
pub mod remote;
pub mod store;

pub use controller::{Controller, ControllerConfig};
pub use driver::{Driver, HostContext, SandboxHandle};
pub use error::{Error, Result};
pub use firewall::{PortMapping, Proto};
pub use ipam::{Ipam, LocalIpam, Pool, PoolRequest};
pub use mac::MacAddress;
pub use model::{
    EndpointConfig, EndpointInfo, IpamPoolConfig, NetworkConfig, NetworkInfo, SandboxConfig,
    SandboxInfo, Scope, SubnetInfo,
};
pub use netns::{NetNs, NsWorker};
