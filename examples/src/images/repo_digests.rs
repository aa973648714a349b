//! Repository digests (`repo@sha256:…`, Docker's `RepoDigests`): the
//! registry digest each pulled image was found under, kept in
//! `repo-digests.json` next to `index.json` as a map from the stored
//! manifest digest to its repository digests. For a multi-platform image
//! the registry digest is the index's while the store keeps the platform
//! manifest, so `name@digest` references need this map to resolve.
//!
//! The file is a cache beside the index: entries of images no longer in
//! the index are ignored when read and dropped on the next write.

use std::collections::BTreeMap;
use std::fs;

use oci_spec::image::{Digest, ImageIndex};

use super::error::{json_err, Result};
use super::layout::Layout;
use super::tags;

const FILE: &str = "repo-digests.json";

type Map = BTreeMap<String, Vec<String>>;

fn read(layout: &Layout) -> Map {
    let path = layout.root().join(FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable repo digests");
            Map::new()
        }),
        Err(_) => Map::new(),
    }
}

/// Record that `manifest` (a stored image) was pulled as `repo_digest`.
/// Takes the store lock.
pub(crate) fn record(layout: &Layout, manifest: &Digest, repo_digest: &str) -> Result<()> {
    let _lock = layout.lock()?;
    let index = layout.read_index()?;
    let present: Vec<String> = tags::manifests(&index)
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let mut map = read(layout);
    map.retain(|m, _| present.contains(m));
    // A repository digest names one image: a newer pull moves it.
    for digests in map.values_mut() {
        digests.retain(|d| d != repo_digest);
    }
    map.retain(|_, digests| !digests.is_empty());
    map.entry(manifest.to_string())
        .or_default()
        .push(repo_digest.to_string());
    let path = layout.root().join(FILE);
    let bytes = serde_json::to_vec_pretty(&map).map_err(json_err(FILE))?;
    layout.write_atomic(&path, &bytes)
}

/// [`record`], a failure only logged: the image is committed by then,
/// and without the entry it only lacks its RepoDigests.
pub(crate) fn record_or_warn(layout: &Layout, manifest: &Digest, repo_digest: &str) {
    if let Err(e) = record(layout, manifest, repo_digest) {
        tracing::warn!(%manifest, repo_digest, error = %e, "could not record the repository digest");
    }
}

/// Every stored manifest's repository digests (keyed `sha256:…`).
pub(crate) fn all(layout: &Layout) -> BTreeMap<String, Vec<String>> {
    read(layout)
}

/// The repository digests of the stored manifest `manifest`.
pub(crate) fn of(layout: &Layout, manifest: &Digest) -> Vec<String> {
    read(layout)
        .remove(&manifest.to_string())
        .unwrap_or_default()
}

/// The stored manifest `repo_digest` names, if that image is still here.
pub(crate) fn lookup(layout: &Layout, index: &ImageIndex, repo_digest: &str) -> Option<Digest> {
    let (manifest, _) = read(layout)
        .into_iter()
        .find(|(_, digests)| digests.iter().any(|d| d == repo_digest))?;
    tags::manifests(index)
        .into_iter()
        .map(|d| d.digest().clone())
        .find(|d| d.to_string() == manifest)
}
