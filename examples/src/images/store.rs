//! The image store: opening it, finding images by name or ID, tagging.
//! Import, export, removal and mounting live in their own modules as
//! further `impl ImageStore` blocks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, Digest, ImageConfiguration, ImageManifest};

use super::digest::parse_sha256;
use super::error::{json_err, ImageError, Result};
use super::layout::Layout;
use super::reference::ImageRef;
use super::staging::{Staging, LAYER_DIFF};
use super::tags;
use super::unpack::{OverlayWhiteouts, WhiteoutWriter};

/// A content-addressed local image store in the OCI image layout.
///
/// All methods block on filesystem work; from async code call them with
/// `tokio::task::spawn_blocking`. Several stores (threads or processes)
/// may share one root: changes take an exclusive `flock`.
///
/// ```no_run
/// use examples::images::{ImageStore, ImportOptions};
/// let store = ImageStore::open(ImageStore::DEFAULT_ROOT)?;
/// let tar = std::fs::File::open("rootfs.tar")?;
/// let id = store.import(tar, &ImportOptions::new().tag("mine:latest").change("CMD [\"sh\"]"))?;
/// println!("{id}: {:?}", store.inspect("mine")?.repo_tags);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) layout: Layout,
    pub(crate) whiteouts: Arc<dyn WhiteoutWriter>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root())
            .finish()
    }
}

/// One image as the store knows it.
#[derive(Debug, Clone)]
pub(crate) struct ImageRecord {
    pub(crate) manifest_digest: Digest,
    pub(crate) manifest: ImageManifest,
    pub(crate) config_digest: Digest,
    pub(crate) config: ImageConfiguration,
    pub(crate) names: Vec<ImageRef>,
}

impl ImageRecord {
    /// The layer diff-ids, bottom layer first.
    pub(crate) fn diff_ids(&self) -> Result<Vec<Digest>> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .enumerate()
            .map(|(i, d)| parse_sha256(d, &format!("config rootfs.diff_ids[{i}]")))
            .collect()
    }
}

impl ImageStore {
    /// berthd's default store root.
    pub const DEFAULT_ROOT: &'static str = "/var/lib/berth/images";

    /// Open the store at `root`, creating the layout if it is missing.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            layout: Layout::init(root.as_ref())?,
            whiteouts: Arc::new(OverlayWhiteouts),
        })
    }

    /// Write whiteouts with `writer` instead of overlayfs device nodes
    /// (for tests without privileges).
    pub fn with_whiteout_writer(mut self, writer: Arc<dyn WhiteoutWriter>) -> Self {
        self.whiteouts = writer;
        self
    }

    /// Run blocking store work off the async runtime's worker threads
    /// (`tokio::task::spawn_blocking`), for async engines.
    ///
    /// ```no_run
    /// # async fn f() -> examples::images::Result<()> {
    /// use examples::images::ImageStore;
    /// let store = ImageStore::open(ImageStore::DEFAULT_ROOT)?;
    /// let images = store.run_blocking(|s| s.list()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ImageStore) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| ImageError::Task(e.to_string()))?
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The image ID (config digest, `sha256:…`) of `reference`: a
    /// `name[:tag]`, a full or short image ID, or a manifest digest.
    pub fn image_id(&self, reference: &str) -> Result<Digest> {
        Ok(self.record(reference)?.config_digest)
    }

    /// Point `target` (`name[:tag]`) at the image `source` refers to.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let target: ImageRef = target.parse()?;
        let _lock = self.layout.lock()?;
        let mut index = self.layout.read_index()?;
        let (digest, _) = self.resolve(&index, source)?;
        let desc = tags::manifests(&index)
            .into_iter()
            .find(|d| d.digest() == &digest)
            .ok_or_else(|| ImageError::NotFound(source.to_string()))?;
        tags::add(&mut index, &desc, Some(&target));
        self.layout.write_index(&index)
    }

    /// The unpacked layer directories of an image, bottom layer first
    /// (what overlayfs wants reversed as `lowerdir`). Layer directories
    /// are a cache of the layer blobs: one that is missing (a crash
    /// between rename and sync, a hand-deleted dir) is unpacked again.
    pub fn layer_dirs(&self, reference: &str) -> Result<Vec<PathBuf>> {
        let record = self.record(reference)?;
        let diff_ids = record.diff_ids()?;
        let missing: Vec<(usize, &Digest)> = diff_ids
            .iter()
            .enumerate()
            .filter(|(_, d)| !self.layout.layer_dir(d).exists())
            .collect();
        if !missing.is_empty() {
            let mut staging = Staging::new(&self.layout, self.whiteouts.as_ref())?;
            for (i, diff_id) in missing {
                let blob = record.manifest.layers().get(i).ok_or_else(|| {
                    ImageError::BadArchive(format!(
                        "manifest {}: fewer layers than the config's diff_ids",
                        record.manifest_digest
                    ))
                })?;
                tracing::warn!(%diff_id, "layer directory missing; unpacking it again");
                staging.layer(blob.digest(), diff_id, &format!("layer {diff_id}"))?;
            }
            staging.commit()?;
        }
        Ok(diff_ids
            .iter()
            .map(|d| self.layout.layer_dir(d).join(LAYER_DIFF))
            .collect())
    }

    /// Load the record of `reference`.
    pub(crate) fn record(&self, reference: &str) -> Result<ImageRecord> {
        let index = self.layout.read_index()?;
        let (digest, _) = self.resolve(&index, reference)?;
        self.load_record(&index, &digest)
    }

    /// Every image of the store.
    pub(crate) fn records(&self) -> Result<Vec<ImageRecord>> {
        let index = self.layout.read_index()?;
        tags::manifests(&index)
            .iter()
            .map(|d| self.load_record(&index, d.digest()))
            .collect()
    }

    pub(crate) fn load_record(
        &self,
        index: &oci_spec::image::ImageIndex,
        digest: &Digest,
    ) -> Result<ImageRecord> {
        let bytes = self.layout.read_blob(digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(json_err(&format!("manifest {digest}")))?;
        let config_digest = manifest.config().digest().clone();
        let bytes = self.layout.read_blob(&config_digest)?;
        let config: ImageConfiguration = serde_json::from_slice(&bytes)
            .map_err(json_err(&format!("image config {config_digest}")))?;
        Ok(ImageRecord {
            manifest_digest: digest.clone(),
            manifest,
            config_digest,
            config,
            names: tags::names_of(index, digest),
        })
    }

    /// Find the manifest `reference` names: `name[:tag]` first, then an
    /// image ID (full, `sha256:`-prefixed or a unique hex prefix) or a
    /// manifest digest. Returns the manifest digest and, when found by
    /// name, the name.
    pub(crate) fn resolve(
        &self,
        index: &oci_spec::image::ImageIndex,
        reference: &str,
    ) -> Result<(Digest, Option<ImageRef>)> {
        // `name@sha256:…`: the image pulled as that repository digest
        // (an index's for a multi-platform image), else the stored
        // manifest of that digest.
        if let Some((_, digest)) = reference.split_once('@') {
            let not_found = || ImageError::NotFound(reference.to_string());
            let pulled_as = reference
                .parse::<super::RemoteRef>()
                .ok()
                .and_then(|r| super::repo_digests::lookup(&self.layout, index, &r.familiar()));
            if let Some(manifest) = pulled_as {
                return Ok((manifest, None));
            }
            let wanted = parse_sha256(digest, "digest").map_err(|_| not_found())?;
            return tags::manifests(index)
                .iter()
                .find(|d| d.digest() == &wanted)
                .map(|d| (d.digest().clone(), None))
                .ok_or_else(not_found);
        }
        let id_prefix = reference.strip_prefix("sha256:");
        if id_prefix.is_none() {
            if let Ok(name) = reference.parse::<ImageRef>() {
                if let Some(digest) = tags::lookup(index, &name) {
                    return Ok((digest, Some(name)));
                }
            }
        }
        let prefix = id_prefix.unwrap_or(reference);
        let is_hex = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !is_hex {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        let mut found: Vec<Digest> = Vec::new();
        for desc in tags::manifests(index) {
            let config = self.config_digest_of(&desc)?;
            let by_id = config.digest().starts_with(prefix);
            let by_manifest = desc.digest().digest() == prefix;
            if (by_id || by_manifest) && !found.contains(desc.digest()) {
                found.push(desc.digest().clone());
            }
        }
        match found.len() {
            0 => Err(ImageError::NotFound(reference.to_string())),
            1 => Ok((found.remove(0), None)),
            _ => Err(ImageError::Conflict(format!(
                "multiple IDs found with provided prefix: {reference}"
            ))),
        }
    }

    fn config_digest_of(&self, desc: &Descriptor) -> Result<Digest> {
        let bytes = self.layout.read_blob(desc.digest())?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(json_err(&format!("manifest {}", desc.digest())))?;
        Ok(manifest.config().digest().clone())
    }
}
