//! Built-in drivers.

pub mod bridge;
pub mod simple;

pub use bridge::BridgeDriver;
pub use simple::{HostDriver, NullDriver};
pub mod macvlan;
pub use macvlan::{IpvlanDriver, MacvlanDriver};
