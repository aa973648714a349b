//! Staging of an import: blobs and unpacked layers are written under
//! `tmp/` first, checked, and only then renamed into the store under its
//! lock with the index update. A failed import drops the staging
//! directory, so nothing half-written ever shows in the store.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use super::digest::{verify, HashingWriter};
use super::error::{io_err, read_err, ImageError, Result};
use super::layout::{sync_parent, Layout};
use super::reference::ImageRef;
use super::tags;
use super::unpack::{diff_id_of, Unpacker, WhiteoutWriter};

/// Name of the unpacked tree inside a layer directory.
pub(crate) const LAYER_DIFF: &str = "diff";
/// Name of the metadata file inside a layer directory.
const LAYER_META: &str = "layer.json";

/// What we keep about an unpacked layer next to its tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayerMeta {
    pub(crate) diff_id: Digest,
    pub(crate) size: u64,
}

/// Read a layer directory's metadata (size 0 when it is missing).
pub(crate) fn layer_size(layout: &Layout, diff_id: &Digest) -> u64 {
    let path = layout.layer_dir(diff_id).join(LAYER_META);
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LayerMeta>(&b).ok())
        .map_or(0, |m| m.size)
}

/// One image waiting to be committed.
struct StagedImage {
    manifest: Descriptor,
    names: Vec<ImageRef>,
}

/// Blobs, layers and images of one import in progress.
pub(crate) struct Staging<'s> {
    layout: &'s Layout,
    whiteouts: &'s dyn WhiteoutWriter,
    dir: tempfile::TempDir,
    counter: usize,
    blobs: HashMap<Digest, PathBuf>,
    layers: HashMap<Digest, PathBuf>,
    /// Layer blob digest → its verified diff-id.
    diff_ids: HashMap<Digest, Digest>,
    /// Layers the staged images need that were already in the store.
    reused_layers: Vec<Digest>,
    images: Vec<StagedImage>,
}

impl<'s> Staging<'s> {
    pub(crate) fn new(layout: &'s Layout, whiteouts: &'s dyn WhiteoutWriter) -> Result<Self> {
        let tmp = layout.tmp_dir();
        let dir = tempfile::Builder::new()
            .prefix(&super::layout::tmp_prefix("staging"))
            .tempdir_in(&tmp)
            .map_err(io_err("create staging dir in", &tmp))?;
        Ok(Self {
            layout,
            whiteouts,
            dir,
            counter: 0,
            blobs: HashMap::new(),
            layers: HashMap::new(),
            diff_ids: HashMap::new(),
            reused_layers: Vec::new(),
            images: Vec::new(),
        })
    }

    fn next_path(&mut self, prefix: &str) -> PathBuf {
        self.counter += 1;
        self.dir.path().join(format!("{prefix}-{}", self.counter))
    }

    /// Copy `reader` into a staged file, hashing it on the way.
    pub(crate) fn stage_reader(
        &mut self,
        reader: impl Read,
        what: &str,
    ) -> Result<(Digest, u64, PathBuf)> {
        let path = self.next_path("file");
        let file = File::create(&path).map_err(io_err("create", &path))?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
        let mut reader = reader;
        io::copy(&mut reader, &mut writer).map_err(read_err(what))?;
        let (buffered, digest, len) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| io_err("write", &path)(e.into_error()))?;
        file.sync_all().map_err(io_err("fsync", &path))?;
        Ok((digest, len, path))
    }

    /// Register a staged file as the blob `digest` (it was hashed when staged).
    pub(crate) fn add_blob(&mut self, digest: &Digest, path: &Path) {
        self.blobs
            .entry(digest.clone())
            .or_insert_with(|| path.to_path_buf());
    }

    /// Stage `bytes` as a blob; returns its digest.
    pub(crate) fn add_bytes(&mut self, bytes: &[u8], what: &str) -> Result<Digest> {
        let (digest, _, path) = self.stage_reader(bytes, what)?;
        self.add_blob(&digest, &path);
        Ok(digest)
    }

    /// Open a blob, staged or already in the store.
    fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self
            .blobs
            .get(digest)
            .cloned()
            .unwrap_or_else(|| self.layout.blob_path(digest));
        File::open(&path).map_err(io_err("open blob", &path))
    }

    /// Make sure the layer blob `blob` is unpacked (staged or in the store)
    /// and that its content is `expected` (the config's diff-id).
    pub(crate) fn layer(&mut self, blob: &Digest, expected: &Digest, what: &str) -> Result<()> {
        if let Some(known) = self.diff_ids.get(blob) {
            return verify(what, expected, known);
        }
        let present =
            self.layers.contains_key(expected) || self.layout.layer_dir(expected).exists();
        if present {
            if !self.layers.contains_key(expected) {
                self.reused_layers.push(expected.clone());
            }
            // Unpacked once already: only check the content matches.
            if blob != expected {
                let actual = diff_id_of(self.open_blob(blob)?, what)?;
                verify(what, expected, &actual)?;
            }
        } else {
            let dir = self.next_path("layer");
            let diff = dir.join(LAYER_DIFF);
            fs::create_dir_all(&diff).map_err(io_err("create", &diff))?;
            let unpacked =
                Unpacker::new(&diff, what, self.whiteouts).unpack(self.open_blob(blob)?)?;
            verify(what, expected, &unpacked.diff_id)?;
            let meta = LayerMeta {
                diff_id: unpacked.diff_id,
                size: unpacked.size,
            };
            let meta_path = dir.join(LAYER_META);
            let bytes =
                serde_json::to_vec(&meta).map_err(|e| io_err("encode", &meta_path)(e.into()))?;
            fs::write(&meta_path, bytes).map_err(io_err("write", &meta_path))?;
            self.layers.insert(expected.clone(), dir);
        }
        self.diff_ids.insert(blob.clone(), expected.clone());
        Ok(())
    }

    /// Queue an image (its manifest blob must be staged or stored).
    pub(crate) fn add_image(&mut self, manifest: Descriptor, names: Vec<ImageRef>) {
        self.images.push(StagedImage { manifest, names });
    }

    /// Move everything into the store and update the index, under the
    /// store lock. Returns each image's manifest digest and names.
    pub(crate) fn commit(self) -> Result<Vec<(Digest, Vec<ImageRef>)>> {
        let _lock = self.layout.lock()?;
        // A concurrent `remove` may have collected a layer we found
        // unpacked before taking the lock: refuse rather than commit an
        // image with a missing layer.
        if let Some(gone) = self
            .reused_layers
            .iter()
            .find(|d| !self.layout.layer_dir(d).exists())
        {
            return Err(ImageError::Conflict(format!(
                "layer {gone} was removed while the import ran; retry the import"
            )));
        }
        for (digest, path) in &self.blobs {
            let dst = self.layout.blob_path(digest);
            if !dst.exists() {
                fs::rename(path, &dst).map_err(io_err("move blob into", &dst))?;
            }
        }
        sync_parent(&self.layout.blob_path(&super::digest::sha256_of(b"")))?;
        for (diff_id, dir) in &self.layers {
            let dst = self.layout.layer_dir(diff_id);
            if !dst.exists() {
                fs::rename(dir, &dst).map_err(io_err("move layer into", &dst))?;
            }
        }
        let mut index = self.layout.read_index()?;
        let mut out = Vec::new();
        for image in &self.images {
            if image.names.is_empty() {
                tags::add(&mut index, &image.manifest, None);
            }
            for name in &image.names {
                tags::add(&mut index, &image.manifest, Some(name));
            }
            out.push((image.manifest.digest().clone(), image.names.clone()));
        }
        self.layout.write_index(&index)?;
        tracing::debug!(
            images = out.len(),
            blobs = self.blobs.len(),
            layers = self.layers.len(),
            "committed import"
        );
        Ok(out)
    }
}
