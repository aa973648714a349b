//! The `VolumeDriver` trait every backend implements: the local driver,
//! plugin clients, or your own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Driver options as given on create (`-o key=value`).
pub type Options = BTreeMap<String, String>;

/// Where a driver's volumes are visible: to this host only, or cluster wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Volumes exist on this host only.
    #[default]
    Local,
    /// Volumes are shared across hosts.
    Global,
}

/// What a driver can do, as `VolumeDriver.Capabilities` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    /// Visibility of the driver's volumes.
    #[serde(rename = "Scope", default)]
    pub scope: Scope,
}

/// A volume as a driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DriverVolume {
    /// Volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Where the data is on the host, when the driver knows it.
    #[serde(
        rename = "Mountpoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mountpoint: Option<PathBuf>,
    /// Creation time (RFC 3339) when known.
    #[serde(rename = "CreatedAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Driver specific status.
    #[serde(rename = "Status", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status: BTreeMap<String, serde_json::Value>,
}

/// A volume backend. Methods mirror Docker's volume plugin protocol, so any
/// driver can be served as a plugin ([`crate::plugin::PluginServer`]) and any
/// plugin used as a driver ([`crate::plugin::PluginDriver`]).
///
/// `mount` may be called several times with different `id`s; a driver that
/// really mounts something keeps its own count per id.
///
/// ```
/// use async_trait::async_trait;
/// use libvolume::{Capabilities, DriverVolume, Options, Result, VolumeDriver};
/// use std::path::PathBuf;
///
/// struct Fixed;
///
/// #[async_trait]
/// impl VolumeDriver for Fixed {
///     fn name(&self) -> &str { "fixed" }
///     async fn create(&self, _: &str, _: &Options) -> Result<()> { Ok(()) }
///     async fn remove(&self, _: &str) -> Result<()> { Ok(()) }
///     async fn mount(&self, _: &str, _: &str) -> Result<PathBuf> { Ok("/srv".into()) }
///     async fn unmount(&self, _: &str, _: &str) -> Result<()> { Ok(()) }
///     async fn path(&self, _: &str) -> Result<Option<PathBuf>> { Ok(Some("/srv".into())) }
///     async fn get(&self, name: &str) -> Result<DriverVolume> {
///         Ok(DriverVolume { name: name.into(), ..Default::default() })
///     }
///     async fn list(&self) -> Result<Vec<DriverVolume>> { Ok(vec![]) }
///     async fn capabilities(&self) -> Result<Capabilities> { Ok(Capabilities::default()) }
/// }
/// ```
#[async_trait]
pub trait VolumeDriver: Send + Sync {
    /// The driver's name (`local`, or the plugin's name).
    fn name(&self) -> &str;
    /// Creates a volume; creating an existing volume again succeeds.
    async fn create(&self, name: &str, opts: &Options) -> Result<()>;
    /// Removes a volume and its data.
    async fn remove(&self, name: &str) -> Result<()>;
    /// Makes the volume available and returns its host path.
    async fn mount(&self, name: &str, id: &str) -> Result<PathBuf>;
    /// Releases the mount made with the same `id`.
    async fn unmount(&self, name: &str, id: &str) -> Result<()>;
    /// The host path of a volume if it is mounted (or always available).
    async fn path(&self, name: &str) -> Result<Option<PathBuf>>;
    /// One volume; [`crate::Error::NotFound`] when it does not exist.
    async fn get(&self, name: &str) -> Result<DriverVolume>;
    /// All volumes the driver knows.
    async fn list(&self) -> Result<Vec<DriverVolume>>;
    /// The driver's capabilities.
    async fn capabilities(&self) -> Result<Capabilities>;
}
