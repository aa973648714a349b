//! `docker save`: images out as an archive that both `docker load`
//! (`manifest.json`) and OCI tools (`oci-layout`, `index.json`) read,
//! like Docker 25's own format.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;

use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};
use serde::Serialize;

use super::error::{io_err, json_err, read_err, ImageError, Result};
use super::store::ImageStore;
use super::tags;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_name(d: &oci_spec::image::Digest) -> String {
    format!("blobs/sha256/{}", d.digest())
}

impl ImageStore {
    /// Write the images `references` (names or IDs) as one tar archive.
    /// Images named by tag carry just that tag; by ID, all their tags.
    ///
    /// ```no_run
    /// use examples::images::ImageStore;
    /// let store = ImageStore::open("/var/lib/berth/images")?;
    /// store.save(&["busybox:latest"], std::fs::File::create("busybox.tar")?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save(&self, references: &[&str], out: impl Write) -> Result<()> {
        let index = self.layout.read_index()?;
        let mut builder = tar::Builder::new(out);
        let mut written = HashSet::new();
        let mut entries = Vec::new();
        let mut descriptors = Vec::new();
        for reference in references {
            let (digest, by_name) = self.resolve(&index, reference)?;
            let record = self.load_record(&index, &digest)?;
            let names = match by_name {
                Some(n) => vec![n],
                None => record.names.clone(),
            };
            let mut blobs = vec![record.manifest_digest.clone(), record.config_digest.clone()];
            blobs.extend(record.manifest.layers().iter().map(|l| l.digest().clone()));
            for blob in blobs {
                if written.insert(blob.clone()) {
                    let path = self.layout.blob_path(&blob);
                    let mut file = File::open(&path).map_err(io_err("open blob", &path))?;
                    builder
                        .append_file(blob_name(&blob), &mut file)
                        .map_err(read_err("writing the archive"))?;
                }
            }
            entries.push(SaveEntry {
                config: blob_name(&record.config_digest),
                repo_tags: names.iter().map(ToString::to_string).collect(),
                layers: record
                    .manifest
                    .layers()
                    .iter()
                    .map(|l| blob_name(l.digest()))
                    .collect(),
            });
            let size = std::fs::metadata(self.layout.blob_path(&digest)).map_or(0, |m| m.len());
            let desc = Descriptor::new(MediaType::ImageManifest, size, digest.clone());
            if names.is_empty() {
                descriptors.push(desc);
            } else {
                let mut index = ImageIndexBuilder::default()
                    .schema_version(2u32)
                    .manifests(Vec::new())
                    .build()
                    .map_err(|e| ImageError::BadArchive(e.to_string()))?;
                for name in &names {
                    tags::add(&mut index, &desc, Some(name));
                }
                descriptors.extend(index.manifests().iter().cloned());
            }
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(descriptors)
            .build()
            .map_err(|e| ImageError::BadArchive(e.to_string()))?;
        let docs: [(&str, Vec<u8>); 3] = [
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            (
                "index.json",
                serde_json::to_vec(&index).map_err(json_err("index.json"))?,
            ),
            (
                "manifest.json",
                serde_json::to_vec(&entries).map_err(json_err("manifest.json"))?,
            ),
        ];
        for (name, bytes) in docs {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            builder
                .append_data(&mut header, name, &bytes[..])
                .map_err(read_err("writing the archive"))?;
        }
        builder
            .into_inner()
            .map_err(read_err("writing the archive"))?;
        Ok(())
    }
}
