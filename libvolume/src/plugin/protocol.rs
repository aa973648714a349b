//! The wire types of Docker's volume plugin protocol (JSON over HTTP POST).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::driver::{Capabilities, DriverVolume, Options};

/// The content type both sides send.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";
/// The interface name a volume plugin lists in `Implements`.
pub const VOLUME_DRIVER: &str = "VolumeDriver";

/// Endpoint paths.
pub mod method {
    /// Handshake.
    pub const ACTIVATE: &str = "/Plugin.Activate";
    /// Create a volume.
    pub const CREATE: &str = "/VolumeDriver.Create";
    /// Remove a volume.
    pub const REMOVE: &str = "/VolumeDriver.Remove";
    /// Mount a volume.
    pub const MOUNT: &str = "/VolumeDriver.Mount";
    /// Unmount a volume.
    pub const UNMOUNT: &str = "/VolumeDriver.Unmount";
    /// Path of a volume.
    pub const PATH: &str = "/VolumeDriver.Path";
    /// One volume.
    pub const GET: &str = "/VolumeDriver.Get";
    /// All volumes.
    pub const LIST: &str = "/VolumeDriver.List";
    /// Driver capabilities.
    pub const CAPABILITIES: &str = "/VolumeDriver.Capabilities";
}

/// `Create` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateRequest {
    /// Volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Driver options.
    #[serde(rename = "Opts", default)]
    pub opts: Option<Options>,
}

/// Requests that name a volume only (`Remove`, `Path`, `Get`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NameRequest {
    /// Volume name.
    #[serde(rename = "Name")]
    pub name: String,
}

/// `Mount` and `Unmount` requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRequest {
    /// Volume name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The caller's unique mount id.
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// A response carrying only `Err`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ErrResponse {
    /// Empty on success.
    #[serde(rename = "Err", default)]
    pub err: String,
}

/// `Mount` and `Path` responses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct MountpointResponse {
    /// Host path.
    #[serde(rename = "Mountpoint", default)]
    pub mountpoint: Option<PathBuf>,
    /// Empty on success.
    #[serde(rename = "Err", default)]
    pub err: String,
}

/// `Get` response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct GetResponse {
    /// The volume.
    #[serde(rename = "Volume", default)]
    pub volume: Option<DriverVolume>,
    /// Empty on success.
    #[serde(rename = "Err", default)]
    pub err: String,
}

/// `List` response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ListResponse {
    /// All volumes.
    #[serde(rename = "Volumes", default, deserialize_with = "null_as_empty")]
    pub volumes: Vec<DriverVolume>,
    /// Empty on success.
    #[serde(rename = "Err", default)]
    pub err: String,
}

/// `Capabilities` response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CapabilitiesResponse {
    /// The capabilities.
    #[serde(rename = "Capabilities", default)]
    pub capabilities: Capabilities,
}

/// `Plugin.Activate` response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ActivateResponse {
    /// Interfaces the plugin implements.
    #[serde(rename = "Implements", default, deserialize_with = "null_as_empty")]
    pub implements: Vec<String>,
}

fn null_as_empty<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(de)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_docker() {
        let req = MountRequest {
            name: "v".into(),
            id: "abc".into(),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"Name":"v","ID":"abc"}"#
        );
        let list: ListResponse = serde_json::from_str(r#"{"Volumes":null,"Err":""}"#).unwrap();
        assert!(list.volumes.is_empty());
        let get: GetResponse = serde_json::from_str(
            r#"{"Volume":{"Name":"v","Mountpoint":"/m","Status":{"a":1}},"Err":""}"#,
        )
        .unwrap();
        assert_eq!(get.volume.unwrap().mountpoint, Some(PathBuf::from("/m")));
        let caps: CapabilitiesResponse =
            serde_json::from_str(r#"{"Capabilities":{"Scope":"global"}}"#).unwrap();
        assert_eq!(caps.capabilities.scope, crate::Scope::Global);
        let create: CreateRequest = serde_json::from_str(r#"{"Name":"v","Opts":null}"#).unwrap();
        assert_eq!(create.opts, None);
    }
}
