//! Docker's volume plugin protocol in both directions: [`PluginDriver`]
//! uses any plugin as a driver, [`PluginServer`] serves any driver as a
//! plugin, [`PluginDiscovery`] finds plugins where Docker looks.

mod client;
mod discovery;
pub mod protocol;
mod server;

pub use client::{Plugin, PluginAddr, PluginClient, PluginDriver, RetryPolicy};
pub use discovery::PluginDiscovery;
pub use server::{PluginServer, ServerHandle};
