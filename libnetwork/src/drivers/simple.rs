//! The `null` driver (a sandbox with loopback only) and the `host` driver
//! (the container shares the host's namespace: nothing to plug).

use async_trait::async_trait;

use crate::driver::{Driver, HostContext, SandboxHandle};
use crate::error::Result;
use crate::model::{EndpointInfo, NetworkInfo};

/// Networks without connectivity: joining leaves the sandbox with `lo`.
#[derive(Debug, Default)]
pub struct NullDriver;

/// The host's own network: joining changes nothing; the container is
/// expected to run in the host namespace.
#[derive(Debug, Default)]
pub struct HostDriver;

macro_rules! nothing_to_plug {
    ($ty:ty, $name:literal) => {
        #[async_trait]
        impl Driver for $ty {
            fn name(&self) -> &str {
                $name
            }
            fn needs_ipam(&self) -> bool {
                false
            }
            async fn create_network(&self, _host: &HostContext, _net: &NetworkInfo) -> Result<()> {
                Ok(())
            }
            async fn delete_network(&self, _host: &HostContext, _net: &NetworkInfo) -> Result<()> {
                Ok(())
            }
            async fn join(
                &self,
                _h: &HostContext,
                _n: &NetworkInfo,
                _e: &mut EndpointInfo,
                _s: &SandboxHandle,
            ) -> Result<()> {
                Ok(())
            }
            async fn leave(
                &self,
                _h: &HostContext,
                _n: &NetworkInfo,
                _e: &EndpointInfo,
                _s: &SandboxHandle,
            ) -> Result<()> {
                Ok(())
            }
        }
    };
}

nothing_to_plug!(NullDriver, "null");
nothing_to_plug!(HostDriver, "host");
