//! Docker-like views of images: `docker images` rows and
//! `docker image inspect` documents (field names as Docker's API).

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::Result;
use super::staging::layer_size;
use super::store::{ImageRecord, ImageStore};

/// One row of `docker images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// The image ID: the config digest, `sha256:…`.
    pub id: String,
    /// The manifest digest (how the OCI layout names the image).
    pub manifest_digest: String,
    /// `name:tag`s; empty for a dangling image.
    pub repo_tags: Vec<String>,
    /// `repo@sha256:…` the image was pulled as.
    pub repo_digests: Vec<String>,
    /// Creation time from the config (RFC 3339), if it has one.
    pub created: Option<String>,
    /// Total size of the unpacked layers' files, in bytes.
    pub size: u64,
}

/// `docker image inspect` of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// The image ID: the config digest, `sha256:…`.
    pub id: String,
    /// `name:tag`s; empty for a dangling image.
    pub repo_tags: Vec<String>,
    /// `repo@sha256:…` the image was pulled as (the registry's digests).
    pub repo_digests: Vec<String>,
    /// Creation time (RFC 3339), if the config has one.
    pub created: Option<String>,
    /// Author, if the config has one.
    pub author: Option<String>,
    /// Total size of the unpacked layers' files, in bytes.
    pub size: u64,
    /// CPU architecture (`amd64`, …).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// The run defaults of the image.
    pub config: InspectConfig,
    /// The layers.
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
}

/// The `Config` section of `docker image inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Default arguments (after the entrypoint).
    pub cmd: Option<Vec<String>>,
    /// The entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// The working directory (empty: `/`).
    pub working_dir: String,
    /// The user (empty: root).
    pub user: String,
    /// `port/proto` keys, as Docker prints them.
    pub exposed_ports: BTreeMap<String, Empty>,
    /// Volume paths, as Docker prints them.
    pub volumes: BTreeMap<String, Empty>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The stop signal, if set.
    pub stop_signal: Option<String>,
}

/// An empty JSON object, as the values of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// The `RootFS` section of `docker image inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The layer diff-ids, bottom first.
    pub layers: Vec<String>,
}

impl ImageStore {
    /// All images, newest first (`docker images`).
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let digests = super::repo_digests::all(&self.layout);
        let mut rows: Vec<ImageSummary> = self
            .records()?
            .iter()
            .map(|r| ImageSummary {
                id: r.config_digest.to_string(),
                manifest_digest: r.manifest_digest.to_string(),
                repo_tags: r.names.iter().map(ToString::to_string).collect(),
                repo_digests: digests
                    .get(&r.manifest_digest.to_string())
                    .cloned()
                    .unwrap_or_default(),
                created: r.config.created().clone(),
                size: self.size_of(r),
            })
            .collect();
        rows.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(rows)
    }

    /// `docker image inspect` of `reference` (name, ID or short ID).
    pub fn inspect(&self, reference: &str) -> Result<ImageInspect> {
        let r = self.record(reference)?;
        let c = r.config.config().clone().unwrap_or_default();
        let keys = |v: &Option<Vec<String>>| -> BTreeMap<String, Empty> {
            v.iter().flatten().map(|k| (k.clone(), Empty {})).collect()
        };
        Ok(ImageInspect {
            id: r.config_digest.to_string(),
            repo_tags: r.names.iter().map(ToString::to_string).collect(),
            repo_digests: super::repo_digests::of(&self.layout, &r.manifest_digest),
            created: r.config.created().clone(),
            author: r.config.author().clone(),
            size: self.size_of(&r),
            architecture: r.config.architecture().to_string(),
            os: r.config.os().to_string(),
            config: InspectConfig {
                env: c.env().clone().unwrap_or_default(),
                cmd: c.cmd().clone(),
                entrypoint: c.entrypoint().clone(),
                working_dir: c.working_dir().clone().unwrap_or_default(),
                user: c.user().clone().unwrap_or_default(),
                exposed_ports: keys(c.exposed_ports()),
                volumes: keys(c.volumes()),
                labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
                stop_signal: c.stop_signal().clone(),
            },
            root_fs: InspectRootFs {
                kind: "layers".into(),
                layers: r.config.rootfs().diff_ids().clone(),
            },
        })
    }

    fn size_of(&self, r: &ImageRecord) -> u64 {
        r.diff_ids()
            .unwrap_or_default()
            .iter()
            .map(|d| layer_size(&self.layout, d))
            .sum()
    }
}
