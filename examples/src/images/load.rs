//! `docker load`: docker-save archives (`manifest.json`, configs and
//! layer tars, legacy `<id>/layer.tar` or `blobs/sha256/…`) and OCI image
//! archives (`oci-layout`, `index.json`, `blobs/`). Every blob is checked
//! against its digest, every layer against the config's diff-ids.

use std::fs::File;
use std::io::{BufReader, Read};

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder,
    MediaType,
};
use serde::Deserialize;

use super::archive::{ArchiveFile, ArchiveFiles};
use super::digest::{parse_sha256, verify};
use super::error::{io_err, json_err, ImageError, Result};
use super::reference::ImageRef;
use super::staging::Staging;
use super::store::ImageStore;
use super::tags::{NAME_ANNOTATION, REF_NAME_ANNOTATION};
use super::unpack::{sniff, Compression};

pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub(crate) const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// One image `load` brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The manifest digest in the store.
    pub manifest_digest: Digest,
    /// The names it was tagged with (none: it is dangling).
    pub names: Vec<ImageRef>,
}

/// One image of a docker-save `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The platform name of this machine in OCI terms.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The digest a docker-save path implies (`blobs/sha256/<hex>`,
/// `<hex>.json`, `<hex>/layer.tar`), if any.
fn implied_digest(path: &str) -> Option<Digest> {
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    (hex.len() == 64).then(|| parse_sha256(&format!("sha256:{hex}"), path).ok())?
}

fn layer_media_type(file: &ArchiveFile, what: &str) -> Result<MediaType> {
    let mut reader = BufReader::new(File::open(&file.path).map_err(io_err("open", &file.path))?);
    match sniff(&mut reader, what)? {
        Compression::None => Ok(MediaType::ImageLayer),
        Compression::Gzip => Ok(MediaType::ImageLayerGzip),
        Compression::Zstd => Err(ImageError::UnsupportedMediaType {
            what: what.to_string(),
            media_type: "zstd-compressed layer".into(),
        }),
    }
}

fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(json_err(what))
}

fn diff_ids(config: &ImageConfiguration, what: &str) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .enumerate()
        .map(|(i, d)| parse_sha256(d, &format!("{what} rootfs.diff_ids[{i}]")))
        .collect()
}

fn count_mismatch(what: &str, layers: usize, diff_ids: usize) -> ImageError {
    ImageError::BadArchive(format!(
        "{what}: {layers} layers but the config lists {diff_ids} diff_ids"
    ))
}

impl ImageStore {
    /// Load a `docker save` or OCI image archive (plain or gzip) and
    /// return the images it held. Nothing is stored unless all of them
    /// check out.
    ///
    /// ```no_run
    /// use examples::images::ImageStore;
    /// let store = ImageStore::open("/var/lib/berth/images")?;
    /// for image in store.load(std::fs::File::open("busybox.tar")?)? {
    ///     println!("Loaded image: {:?} ({})", image.names, image.id);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&self, archive: impl Read) -> Result<Vec<LoadedImage>> {
        let mut staging = Staging::new(&self.layout, self.whiteouts.as_ref())?;
        let files = ArchiveFiles::read(&mut staging, archive)?;
        let loaded = if files.contains("manifest.json") {
            load_docker_save(&mut staging, &files)?
        } else if files.contains("index.json") {
            load_oci(&mut staging, &files)?
        } else {
            return Err(ImageError::BadArchive(
                "neither manifest.json (docker save) nor index.json (OCI layout) found".into(),
            ));
        };
        if loaded.is_empty() {
            return Err(ImageError::BadArchive("the archive holds no image".into()));
        }
        staging.commit()?;
        for image in &loaded {
            tracing::info!(id = %image.id, names = ?image.names, "loaded image");
        }
        Ok(loaded)
    }
}

fn load_docker_save(staging: &mut Staging<'_>, files: &ArchiveFiles) -> Result<Vec<LoadedImage>> {
    let entries: Vec<SaveEntry> =
        serde_json::from_slice(&files.bytes("manifest.json", "manifest.json")?)
            .map_err(json_err("manifest.json"))?;
    let mut loaded = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let what = format!("manifest.json[{i}]");
        let config_file = files.require(&entry.config, &format!("{what}.Config"))?;
        if let Some(expected) = implied_digest(&entry.config) {
            verify(
                &format!("{what}.Config {}", entry.config),
                &expected,
                &config_file.digest,
            )?;
        }
        let config_what = format!("{what}.Config {}", entry.config);
        let config = parse_config(&files.bytes(&entry.config, &config_what)?, &config_what)?;
        let diff_ids = diff_ids(&config, &config_what)?;
        if diff_ids.len() != entry.layers.len() {
            return Err(count_mismatch(&what, entry.layers.len(), diff_ids.len()));
        }
        let mut layers = Vec::new();
        for (j, (path, diff_id)) in entry.layers.iter().zip(&diff_ids).enumerate() {
            let layer_what = format!("{what}.Layers[{j}] {path}");
            let file = files.require(path, &format!("{what}.Layers[{j}]"))?;
            if let Some(expected) = implied_digest(path) {
                verify(&layer_what, &expected, &file.digest)?;
            }
            let media_type = layer_media_type(file, &layer_what)?;
            staging.add_blob(&file.digest, &file.path);
            staging.layer(&file.digest, diff_id, &layer_what)?;
            layers.push(Descriptor::new(media_type, file.size, file.digest.clone()));
        }
        staging.add_blob(&config_file.digest, &config_file.path);
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_file.size,
                config_file.digest.clone(),
            ))
            .layers(layers)
            .build()
            .map_err(|e| ImageError::BadArchive(format!("{what}: building a manifest: {e}")))?;
        let bytes = serde_json::to_vec(&manifest).map_err(json_err(&what))?;
        let manifest_digest = staging.add_bytes(&bytes, &what)?;
        let names = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| t.parse::<ImageRef>())
            .collect::<Result<Vec<_>>>()?;
        staging.add_image(
            Descriptor::new(
                MediaType::ImageManifest,
                bytes.len() as u64,
                manifest_digest.clone(),
            ),
            names.clone(),
        );
        loaded.push(LoadedImage {
            id: config_file.digest.clone(),
            manifest_digest,
            names,
        });
    }
    Ok(loaded)
}

/// A blob of an OCI archive, checked against its descriptor.
fn oci_blob<'f>(files: &'f ArchiveFiles, desc: &Descriptor, what: &str) -> Result<&'f ArchiveFile> {
    let digest = parse_sha256(desc.digest().as_ref(), &format!("{what}.digest"))?;
    let file = files.require(&format!("blobs/sha256/{}", digest.digest()), what)?;
    verify(what, &digest, &file.digest)?;
    if file.size != desc.size() {
        return Err(ImageError::BadArchive(format!(
            "{what}: size {} in the descriptor but the blob has {} bytes",
            desc.size(),
            file.size
        )));
    }
    Ok(file)
}

fn unsupported(what: &str, media_type: &MediaType) -> ImageError {
    ImageError::UnsupportedMediaType {
        what: what.to_string(),
        media_type: media_type.to_string(),
    }
}

/// The name an OCI index entry carries: containerd/docker's full-name
/// annotation, or an OCI ref name that is a full `name:tag`.
fn oci_name(desc: &Descriptor) -> Result<Option<ImageRef>> {
    let Some(annotations) = desc.annotations() else {
        return Ok(None);
    };
    if let Some(name) = annotations.get(NAME_ANNOTATION) {
        return name.parse().map(Some);
    }
    match annotations.get(REF_NAME_ANNOTATION) {
        // A bare tag ("latest") names no repository: leave it untagged.
        Some(r) if r.contains(':') || r.contains('/') => r.parse().map(Some),
        _ => Ok(None),
    }
}

fn load_oci(staging: &mut Staging<'_>, files: &ArchiveFiles) -> Result<Vec<LoadedImage>> {
    let layout: serde_json::Value =
        serde_json::from_slice(&files.bytes("oci-layout", "oci-layout")?)
            .map_err(json_err("oci-layout"))?;
    let version = layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if version != "1.0.0" {
        return Err(ImageError::BadArchive(format!(
            "oci-layout: imageLayoutVersion {version:?} is not supported (want \"1.0.0\")"
        )));
    }
    let index: ImageIndex = serde_json::from_slice(&files.bytes("index.json", "index.json")?)
        .map_err(json_err("index.json"))?;
    let mut loaded = Vec::new();
    for (i, top) in index.manifests().iter().enumerate() {
        let what = format!("index.json manifests[{i}]");
        let names = oci_name(top)?.into_iter().collect::<Vec<_>>();
        let desc = select_manifest(files, top, &what, 0)?;
        let manifest_file = oci_blob(files, &desc, &what)?;
        let manifest: ImageManifest = serde_json::from_slice(&files.bytes(
            &format!("blobs/sha256/{}", manifest_file.digest.digest()),
            &what,
        )?)
        .map_err(json_err(&what))?;
        let config_what = format!("{what} config");
        let config_desc = manifest.config();
        match config_desc.media_type() {
            MediaType::ImageConfig => {}
            MediaType::Other(t) if t == DOCKER_CONFIG => {}
            other => return Err(unsupported(&config_what, other)),
        }
        let config_file = oci_blob(files, config_desc, &config_what)?;
        let config = parse_config(
            &files.bytes(
                &format!("blobs/sha256/{}", config_file.digest.digest()),
                &config_what,
            )?,
            &config_what,
        )?;
        let diff_ids = diff_ids(&config, &config_what)?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(count_mismatch(
                &what,
                manifest.layers().len(),
                diff_ids.len(),
            ));
        }
        for (j, (layer, diff_id)) in manifest.layers().iter().zip(&diff_ids).enumerate() {
            let layer_what = format!("{what} layers[{j}]");
            match layer.media_type() {
                MediaType::ImageLayer
                | MediaType::ImageLayerGzip
                | MediaType::ImageLayerNonDistributable
                | MediaType::ImageLayerNonDistributableGzip => {}
                MediaType::Other(t) if t == DOCKER_LAYER_GZIP || t == DOCKER_LAYER => {}
                other => return Err(unsupported(&layer_what, other)),
            }
            let file = oci_blob(files, layer, &layer_what)?;
            staging.add_blob(&file.digest, &file.path);
            staging.layer(&file.digest, diff_id, &layer_what)?;
        }
        staging.add_blob(&config_file.digest, &config_file.path);
        staging.add_blob(&manifest_file.digest, &manifest_file.path);
        staging.add_image(
            Descriptor::new(
                MediaType::ImageManifest,
                manifest_file.size,
                manifest_file.digest.clone(),
            ),
            names.clone(),
        );
        loaded.push(LoadedImage {
            id: config_file.digest.clone(),
            manifest_digest: manifest_file.digest.clone(),
            names,
        });
    }
    Ok(loaded)
}

/// Follow image indexes (multi-platform images) down to the manifest for
/// this machine's platform.
fn select_manifest(
    files: &ArchiveFiles,
    desc: &Descriptor,
    what: &str,
    depth: usize,
) -> Result<Descriptor> {
    match desc.media_type() {
        MediaType::ImageManifest => Ok(desc.clone()),
        MediaType::Other(t) if t == DOCKER_MANIFEST => Ok(desc.clone()),
        MediaType::ImageIndex if depth < 4 => nested(files, desc, what, depth),
        MediaType::Other(t) if t == DOCKER_MANIFEST_LIST && depth < 4 => {
            nested(files, desc, what, depth)
        }
        other => Err(unsupported(what, other)),
    }
}

fn nested(files: &ArchiveFiles, desc: &Descriptor, what: &str, depth: usize) -> Result<Descriptor> {
    let file = oci_blob(files, desc, what)?;
    let index: ImageIndex =
        serde_json::from_slice(&std::fs::read(&file.path).map_err(io_err("read", &file.path))?)
            .map_err(json_err(what))?;
    let arch = host_arch();
    let chosen = index
        .manifests()
        .iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .ok_or_else(|| {
            ImageError::BadArchive(format!(
                "{what}: no manifest for linux/{arch} in the image index"
            ))
        })?;
    select_manifest(files, chosen, &format!("{what} (linux/{arch})"), depth + 1)
}
