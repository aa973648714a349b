//! `docker pull`: a manifest (through an image index to this machine's
//! platform), its config and layers fetched from a registry into the
//! store. Every blob is hashed while it streams to a file under the
//! store's `tmp/`, then the whole image goes through the same staging as
//! `docker load`, so a failed pull leaves nothing behind. Layers whose
//! blob the store already has are not fetched again.

use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};
use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::digest::{parse_sha256, sha256_of};
use super::error::{io_err, json_err, ImageError};
use super::layout::tmp_prefix;
use super::load::{
    host_arch, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST_LIST,
};
use super::registry::{
    content_type, next_frame, read_small, Registry, RegistryConfig, RegistryError, RegistryResult,
    RemoteRef, MANIFEST_ACCEPT,
};
use super::repo_digests;
use super::staging::Staging;
use super::store::ImageStore;
use super::tags;

/// Layers fetched at once (dockerd's `max-concurrent-downloads`).
const CONCURRENT_DOWNLOADS: usize = 3;
/// Manifests and configs larger than this are refused (Docker's limits).
const MANIFEST_LIMIT: usize = 4 << 20;
const CONFIG_LIMIT: usize = 8 << 20;

/// What a pull is doing, for progress messages (Docker's `docker pull`
/// lines are made from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// The manifest was found: `latest: Pulling from library/busybox`.
    Resolved {
        /// The tag or digest asked for.
        reference: String,
        /// The repository path in the registry.
        repository: String,
    },
    /// A layer's progress (`Already exists`, `Pulling fs layer`,
    /// `Download complete`, `Pull complete`).
    Layer {
        /// The layer blob's digest.
        digest: Digest,
        /// Docker's status text.
        status: &'static str,
    },
    /// Bytes of a layer fetched so far (`Downloading`), at most every
    /// [`PROGRESS_INTERVAL`] per layer, as dockerd.
    Downloading {
        /// The layer blob's digest.
        digest: Digest,
        /// Bytes received.
        current: u64,
        /// The blob's size.
        total: u64,
    },
}

/// The shortest time between two `Downloading` messages of a layer.
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The result of [`ImageStore::pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The digest the reference resolved to in the registry (what
    /// `Digest:` shows): an index's for a multi-platform image.
    pub digest: Digest,
    /// False when the store already had this image under this name.
    pub updated: bool,
}

/// A manifest as fetched: its bytes, digest and media type.
struct Fetched {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: String,
}

impl ImageStore {
    /// Pull `reference` (`[host[:port]/]name[:tag][@digest]`) from its
    /// registry, calling `progress` along the way. Pulls by tag name the
    /// image `host/name:tag` in the store; pulls by digest leave it
    /// untagged, as Docker does.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), examples::images::RegistryError> {
    /// use examples::images::{ImageStore, RegistryConfig};
    /// let store = ImageStore::open("/var/lib/berth/images")?;
    /// let pulled = store
    ///     .pull("127.0.0.1:5000/busybox", &RegistryConfig::new(), |p| println!("{p:?}"))
    ///     .await?;
    /// println!("Digest: {}", pulled.digest);
    /// # Ok(()) }
    /// ```
    pub async fn pull(
        &self,
        reference: &str,
        config: &RegistryConfig,
        progress: impl Fn(PullProgress) + Send + Sync + 'static,
    ) -> RegistryResult<PulledImage> {
        let remote: RemoteRef = reference.parse()?;
        let registry = Registry::new(&remote, config)?;
        let top = fetch_manifest(&registry, &remote, &remote.manifest_ref()).await?;
        if let Some(expected) = remote.digest() {
            check_digest(&remote.to_string(), expected, &top.digest)?;
        }
        // The digest Docker prints: what the reference resolves to (the
        // index of a multi-platform image, not its platform manifest).
        let shown_digest = top.digest.clone();
        let manifest = if is_index(&top.media_type) {
            let desc = pick_platform(&top)?;
            let m = fetch_manifest(&registry, &remote, desc.digest().as_ref()).await?;
            check_digest("platform manifest", desc.digest(), &m.digest)?;
            m
        } else {
            top
        };
        progress(PullProgress::Resolved {
            reference: remote
                .tag()
                .map_or(shown_digest.to_string(), str::to_string),
            repository: remote.path().to_string(),
        });
        let parsed: ImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(json_err(&format!("manifest {}", manifest.digest)))
            .map_err(RegistryError::Store)?;
        check_config_type(parsed.config())?;
        for (i, layer) in parsed.layers().iter().enumerate() {
            check_layer_type(layer, i)?;
        }

        let store = self.clone();
        let up_to_date = {
            let name = remote.store_name();
            let digest = manifest.digest.clone();
            store
                .run_blocking(move |s| {
                    let index = s.layout.read_index()?;
                    Ok(match name {
                        Some(n) => tags::lookup(&index, &n).as_ref() == Some(&digest),
                        None => tags::manifests(&index)
                            .iter()
                            .any(|d| d.digest() == &digest),
                    })
                })
                .await?
        };
        let repo_digest = format!("{}@{shown_digest}", remote.familiar_repo());
        if up_to_date {
            let (layout, manifest_digest) = (self.layout.clone(), manifest.digest.clone());
            self.run_blocking(move |_| {
                repo_digests::record_or_warn(&layout, &manifest_digest, &repo_digest);
                Ok(())
            })
            .await?;
            let id = parsed.config().digest().clone();
            return Ok(PulledImage {
                id,
                digest: shown_digest,
                updated: false,
            });
        }

        let tmp = self.layout.tmp_dir();
        let downloads = tempfile::Builder::new()
            .prefix(&tmp_prefix("pull"))
            .tempdir_in(&tmp)
            .map_err(io_err("create download dir in", &tmp))?;
        let config_desc = parsed.config();
        let config_bytes = fetch_blob_small(&registry, config_desc, CONFIG_LIMIT).await?;
        let image_config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(json_err("image config"))?;
        let diff_ids = image_config
            .rootfs()
            .diff_ids()
            .iter()
            .enumerate()
            .map(|(i, d)| parse_sha256(d, &format!("image config rootfs.diff_ids[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if diff_ids.len() != parsed.layers().len() {
            return Err(RegistryError::Unsupported(format!(
                "manifest {}: {} layers but the config lists {} diff_ids",
                manifest.digest,
                parsed.layers().len(),
                diff_ids.len()
            )));
        }

        // Every layer is announced first, as dockerd does; the missing
        // ones are then fetched a few at a time.
        let mut layer_files: Vec<Option<PathBuf>> = Vec::new();
        let mut fetches = Vec::new();
        for (i, layer) in parsed.layers().iter().enumerate() {
            let stored = self.layout.blob_path(layer.digest()).exists();
            progress(PullProgress::Layer {
                digest: layer.digest().clone(),
                status: if stored {
                    "Already exists"
                } else {
                    "Pulling fs layer"
                },
            });
            if stored {
                layer_files.push(None);
            } else {
                let path = downloads.path().join(format!("layer-{i}"));
                layer_files.push(Some(path.clone()));
                fetches.push((layer.clone(), path));
            }
        }
        let (registry, report) = (&registry, &progress);
        futures::stream::iter(fetches)
            .map(|(layer, path): (Descriptor, PathBuf)| async move {
                fetch_blob_to_file(registry, &layer, &path, report).await?;
                report(PullProgress::Layer {
                    digest: layer.digest().clone(),
                    status: "Download complete",
                });
                Ok::<_, RegistryError>(())
            })
            .buffer_unordered(CONCURRENT_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;

        let names: Vec<_> = remote.store_name().into_iter().collect();
        let manifest_desc = Descriptor::new(
            MediaType::from(manifest.media_type.as_str()),
            manifest.bytes.len() as u64,
            manifest.digest.clone(),
        );
        let layers = parsed.layers().clone();
        let manifest_digest = manifest.digest.clone();
        let progress = std::sync::Arc::new(progress);
        let report = progress.clone();
        let id = self
            .run_blocking(move |s| {
                let mut staging = Staging::new(&s.layout, s.whiteouts.as_ref())?;
                for (i, ((layer, diff_id), file)) in
                    layers.iter().zip(&diff_ids).zip(&layer_files).enumerate()
                {
                    if let Some(path) = file {
                        staging.add_blob(layer.digest(), path);
                        report(PullProgress::Layer {
                            digest: layer.digest().clone(),
                            status: "Extracting",
                        });
                    }
                    staging.layer(
                        layer.digest(),
                        diff_id,
                        &format!("layer {i} ({})", layer.digest()),
                    )?;
                    if file.is_some() {
                        report(PullProgress::Layer {
                            digest: layer.digest().clone(),
                            status: "Pull complete",
                        });
                    }
                }
                let config_digest = staging.add_bytes(&config_bytes, "image config")?;
                staging.add_bytes(&manifest.bytes, "manifest")?;
                staging.add_image(manifest_desc, names);
                staging.commit()?;
                repo_digests::record_or_warn(&s.layout, &manifest_digest, &repo_digest);
                Ok(config_digest)
            })
            .await?;
        drop(downloads);
        tracing::info!(reference, %id, digest = %shown_digest, "pulled image");
        Ok(PulledImage {
            id,
            digest: shown_digest,
            updated: true,
        })
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_LIST || media_type == "application/vnd.oci.image.index.v1+json"
}

fn check_digest(what: &str, expected: &Digest, actual: &Digest) -> RegistryResult<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
        .into())
    }
}

/// GET a manifest; its media type from the answer's Content-Type or,
/// failing that, the document's own `mediaType`.
async fn fetch_manifest(
    registry: &Registry,
    remote: &RemoteRef,
    reference: &str,
) -> RegistryResult<Fetched> {
    let response = registry
        .get("manifests", reference, MANIFEST_ACCEPT, || {
            RegistryError::ManifestUnknown {
                reference: remote.familiar(),
            }
        })
        .await?;
    let header_type = content_type(&response);
    let bytes = read_small(response, reference, MANIFEST_LIMIT).await?;
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    let head: Head = serde_json::from_slice(&bytes).map_err(json_err("manifest"))?;
    if head.schema_version == Some(1) {
        return Err(RegistryError::Unsupported(format!(
            "{}: schema 1 manifests are not supported (push the image again with a current client)",
            remote.familiar()
        )));
    }
    let media_type = head
        .media_type
        .or(header_type.filter(|t| t != "application/json"))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    Ok(Fetched {
        digest: sha256_of(&bytes),
        bytes,
        media_type,
    })
}

/// The linux manifest for this machine's architecture in an index.
fn pick_platform(index: &Fetched) -> RegistryResult<Descriptor> {
    let parsed: ImageIndex =
        serde_json::from_slice(&index.bytes).map_err(json_err("image index"))?;
    let arch = host_arch();
    parsed
        .manifests()
        .iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .cloned()
        .ok_or_else(|| {
            RegistryError::Unsupported(format!(
                "no matching manifest for linux/{arch} in the manifest list entries"
            ))
        })
}

fn check_config_type(desc: &Descriptor) -> RegistryResult<()> {
    match desc.media_type() {
        MediaType::ImageConfig => Ok(()),
        MediaType::Other(t) if t == DOCKER_CONFIG => Ok(()),
        other => Err(RegistryError::Unsupported(format!(
            "unsupported config media type {other}: not a container image"
        ))),
    }
}

fn check_layer_type(desc: &Descriptor, i: usize) -> RegistryResult<()> {
    match desc.media_type() {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip => Ok(()),
        MediaType::Other(t) if t == DOCKER_LAYER_GZIP || t == DOCKER_LAYER => Ok(()),
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
            Err(ImageError::UnsupportedMediaType {
                what: format!(
                    "layer {i} ({}): zstd-compressed layers are not supported",
                    desc.digest()
                ),
                media_type: desc.media_type().to_string(),
            }
            .into())
        }
        other => Err(ImageError::UnsupportedMediaType {
            what: format!("layer {i} ({})", desc.digest()),
            media_type: other.to_string(),
        }
        .into()),
    }
}

fn blob_unknown(desc: &Descriptor) -> impl FnOnce() -> RegistryError + '_ {
    move || {
        RegistryError::Unsupported(format!(
            "blob unknown: blob {} is not in the registry",
            desc.digest()
        ))
    }
}

/// A small blob (the config) in memory, checked against its descriptor.
async fn fetch_blob_small(
    registry: &Registry,
    desc: &Descriptor,
    limit: usize,
) -> RegistryResult<Vec<u8>> {
    let digest = desc.digest().to_string();
    let response = registry
        .get("blobs", &digest, "*/*", blob_unknown(desc))
        .await?;
    let bytes = read_small(response, &digest, limit).await?;
    check_digest(&format!("blob {digest}"), desc.digest(), &sha256_of(&bytes))?;
    Ok(bytes)
}

/// A layer blob streamed to `path`, hashed on the way and checked
/// against its descriptor's digest and size.
async fn fetch_blob_to_file(
    registry: &Registry,
    desc: &Descriptor,
    path: &std::path::Path,
    progress: &(impl Fn(PullProgress) + Send + Sync),
) -> RegistryResult<()> {
    let digest = desc.digest().to_string();
    let response = registry
        .get("blobs", &digest, "*/*", blob_unknown(desc))
        .await?;
    let mut body = response.into_body();
    let file = tokio::fs::File::create(path)
        .await
        .map_err(io_err("create", path))?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut reported: Option<std::time::Instant> = None;
    while let Some(chunk) = next_frame(&mut body, &digest).await? {
        len += chunk.len() as u64;
        if len > desc.size() {
            return Err(ImageError::BadArchive(format!(
                "blob {digest}: the registry sent more than the {} bytes of its descriptor",
                desc.size()
            ))
            .into());
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io_err("write", path))?;
        if reported.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL) {
            reported = Some(std::time::Instant::now());
            progress(PullProgress::Downloading {
                digest: desc.digest().clone(),
                current: len,
                total: desc.size(),
            });
        }
    }
    out.flush().await.map_err(io_err("write", path))?;
    out.get_ref()
        .sync_all()
        .await
        .map_err(io_err("fsync", path))?;
    let actual = Digest::try_from(format!("sha256:{:x}", hasher.finalize()))
        .map_err(|e| ImageError::BadArchive(format!("blob {digest}: {e}")))?;
    check_digest(&format!("blob {digest}"), desc.digest(), &actual)?;
    if len != desc.size() {
        return Err(ImageError::BadArchive(format!(
            "blob {digest}: {len} bytes, its descriptor says {}",
            desc.size()
        ))
        .into());
    }
    Ok(())
}
