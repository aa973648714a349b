//! `docker import`: a rootfs tar (plain or gzip) becomes a one-layer
//! image with a generated config, changed by `--change` instructions.

use std::io::Read;

use oci_spec::image::{
    Arch, Config, Descriptor, Digest, History, ImageConfiguration, ImageManifestBuilder, MediaType,
    Os, RootFs,
};

use super::changes::Change;
use super::error::{json_err, ImageError, Result};
use super::load::host_arch;
use super::reference::ImageRef;
use super::staging::Staging;
use super::store::ImageStore;
use super::time::now_rfc3339;
use super::unpack::decompressed;

/// Options of [`ImageStore::import`], a builder.
///
/// ```
/// use examples::images::ImportOptions;
/// let opts = ImportOptions::new()
///     .tag("busybox:latest")
///     .change("CMD [\"sh\"]")
///     .change("ENV PATH=/bin")
///     .message("from Debian's busybox-static");
/// assert_eq!(opts.changes().len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    tag: Option<String>,
    changes: Vec<String>,
    message: Option<String>,
}

impl ImportOptions {
    /// No tag, no changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tag the image `name[:tag]`.
    pub fn tag(mut self, reference: impl Into<String>) -> Self {
        self.tag = Some(reference.into());
        self
    }

    /// Add a `--change` instruction (`CMD`, `ENTRYPOINT`, `ENV`,
    /// `WORKDIR`, `USER`, `EXPOSE`, `VOLUME`, `LABEL`, `STOPSIGNAL`).
    pub fn change(mut self, instruction: impl Into<String>) -> Self {
        self.changes.push(instruction.into());
        self
    }

    /// The commit message (`docker import --message`), kept in history.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The change instructions given so far.
    pub fn changes(&self) -> &[String] {
        &self.changes
    }
}

impl ImageStore {
    /// Import a rootfs tar as a new one-layer image; returns its ID.
    /// The options are checked before anything is read.
    ///
    /// ```no_run
    /// use examples::images::{ImageStore, ImportOptions};
    /// let store = ImageStore::open("/var/lib/berth/images")?;
    /// let id = store.import(std::fs::File::open("rootfs.tar.gz")?, &ImportOptions::new().tag("app:1"))?;
    /// assert_eq!(store.image_id("app:1")?, id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import(&self, rootfs_tar: impl Read, options: &ImportOptions) -> Result<Digest> {
        let name = options
            .tag
            .as_deref()
            .map(str::parse::<ImageRef>)
            .transpose()?;
        let changes = options
            .changes
            .iter()
            .map(|c| c.parse::<Change>())
            .collect::<Result<Vec<_>>>()?;

        let mut staging = Staging::new(&self.layout, self.whiteouts.as_ref())?;
        // Stored uncompressed: the blob digest is the diff-id, and
        // nothing is spent compressing a layer that never leaves the host.
        let (layer, layer_size, layer_path) =
            staging.stage_reader(decompressed(rootfs_tar, "rootfs tar")?, "rootfs tar")?;
        staging.add_blob(&layer, &layer_path);
        staging.layer(&layer, &layer, "rootfs tar")?;

        let created = now_rfc3339();
        let mut run = Config::default();
        for change in &changes {
            change.apply(&mut run);
        }
        let mut rootfs = RootFs::default();
        rootfs.set_diff_ids(vec![layer.to_string()]);
        let mut history = History::default();
        history.set_created(Some(created.clone()));
        history.set_created_by(Some("Imported from -".into()));
        history.set_comment(options.message.clone());
        let mut config = ImageConfiguration::default();
        config.set_created(Some(created));
        config.set_architecture(Arch::from(host_arch()));
        config.set_os(Os::from("linux"));
        config.set_config(Some(run));
        config.set_rootfs(rootfs);
        config.set_history(Some(vec![history]));
        let config_bytes = serde_json::to_vec(&config).map_err(json_err("generated config"))?;
        let config_digest = staging.add_bytes(&config_bytes, "generated config")?;

        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                config_digest.clone(),
            ))
            .layers(vec![Descriptor::new(
                MediaType::ImageLayer,
                layer_size,
                layer.clone(),
            )])
            .build()
            .map_err(|e| ImageError::BadArchive(format!("building the manifest: {e}")))?;
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(json_err("generated manifest"))?;
        let manifest_digest = staging.add_bytes(&manifest_bytes, "generated manifest")?;
        staging.add_image(
            Descriptor::new(
                MediaType::ImageManifest,
                manifest_bytes.len() as u64,
                manifest_digest,
            ),
            name.into_iter().collect(),
        );
        staging.commit()?;
        tracing::info!(id = %config_digest, tag = ?options.tag, "imported image");
        Ok(config_digest)
    }
}
