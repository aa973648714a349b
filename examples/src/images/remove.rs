//! `docker rmi`: untag, then delete the blobs and unpacked layers no
//! other image needs. Images used by containers are kept unless forced;
//! the engine says which are in use through [`ImageUsage`].

use std::collections::HashSet;
use std::fs;

use oci_spec::image::Digest;

use super::error::{io_err, ImageError, Result};
use super::reference::ImageRef;
use super::store::ImageStore;
use super::tags;

/// The engine's answer to "which containers use this image?".
///
/// Closures implement it:
///
/// ```
/// use examples::images::ImageUsage;
/// let usage = |id: &str| if id.ends_with("ab") { vec!["web".to_string()] } else { vec![] };
/// assert_eq!(usage.containers_using("sha256:ab"), vec!["web"]);
/// ```
pub trait ImageUsage {
    /// IDs (or names) of the containers created from the image with this
    /// ID (`sha256:…`, the config digest).
    fn containers_using(&self, image_id: &str) -> Vec<String>;
}

impl<F: Fn(&str) -> Vec<String>> ImageUsage for F {
    fn containers_using(&self, image_id: &str) -> Vec<String> {
        self(image_id)
    }
}

/// No container uses any image (tools without containers).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoContainers;

impl ImageUsage for NoContainers {
    fn containers_using(&self, _image_id: &str) -> Vec<String> {
        Vec::new()
    }
}

/// What `remove` did, in order, as `docker rmi` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// `Untagged: name:tag`.
    Untagged(ImageRef),
    /// `Deleted: sha256:…` (the image ID).
    Deleted(Digest),
}

fn short(id: &Digest) -> &str {
    libswarm::util::short_id(id.digest())
}

impl ImageStore {
    /// Remove `reference` (`name[:tag]` or image ID) as `docker rmi`
    /// does. By name: untag; delete the image when that was its last name
    /// and no container uses it (forced: untag and keep it dangling). By
    /// ID: refuse if it has several names or is in use, unless `force`.
    ///
    /// ```no_run
    /// use examples::images::{ImageStore, NoContainers};
    /// let store = ImageStore::open("/var/lib/berth/images")?;
    /// for step in store.remove("busybox", false, &NoContainers)? {
    ///     println!("{step:?}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        usage: &dyn ImageUsage,
    ) -> Result<Vec<Removed>> {
        let _lock = self.layout.lock()?;
        let mut index = self.layout.read_index()?;
        let (manifest, by_name) = self.resolve(&index, reference)?;
        let record = self.load_record(&index, &manifest)?;
        let id = record.config_digest.clone();
        let users = usage.containers_using(id.as_ref());
        let mut done = Vec::new();

        let delete = match by_name {
            Some(name) if record.names.len() > 1 => {
                tags::untag_keep(&mut index, &name);
                done.push(Removed::Untagged(name));
                false
            }
            Some(name) => {
                if let (Some(container), false) = (users.first(), force) {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {}",
                        short(&id)
                    )));
                }
                tags::untag_keep(&mut index, &name);
                done.push(Removed::Untagged(name));
                users.is_empty()
            }
            None => {
                if !force {
                    if record.names.len() > 1 {
                        return Err(ImageError::Conflict(format!(
                            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                            short(&id)
                        )));
                    }
                    if let Some(container) = users.first() {
                        return Err(ImageError::Conflict(format!(
                            "conflict: unable to delete {} (must be forced) - image is being used by container {container}",
                            short(&id)
                        )));
                    }
                }
                for name in &record.names {
                    tags::untag_keep(&mut index, name);
                    done.push(Removed::Untagged(name.clone()));
                }
                true
            }
        };
        if delete {
            tags::remove_image(&mut index, &manifest);
            done.push(Removed::Deleted(id));
        }
        self.layout.write_index(&index)?;
        if delete {
            // Layers of an image still used by a container (forced
            // removal) stay: they are lower dirs of live mounts.
            self.collect_garbage(&index, &record, users.is_empty())?;
        }
        Ok(done)
    }

    /// Delete the blobs and layer dirs of `gone` no remaining image uses.
    /// Called with the store lock held, after the index was written.
    fn collect_garbage(
        &self,
        index: &oci_spec::image::ImageIndex,
        gone: &super::store::ImageRecord,
        drop_layers: bool,
    ) -> Result<()> {
        let mut blobs_kept = HashSet::new();
        let mut layers_kept = HashSet::new();
        for desc in tags::manifests(index) {
            let r = self.load_record(index, desc.digest())?;
            blobs_kept.insert(r.manifest_digest.clone());
            blobs_kept.insert(r.config_digest.clone());
            blobs_kept.extend(r.manifest.layers().iter().map(|l| l.digest().clone()));
            layers_kept.extend(r.diff_ids()?);
        }
        let mut candidates = vec![gone.manifest_digest.clone(), gone.config_digest.clone()];
        candidates.extend(gone.manifest.layers().iter().map(|l| l.digest().clone()));
        for blob in candidates.iter().filter(|b| !blobs_kept.contains(*b)) {
            let path = self.layout.blob_path(blob);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("remove blob", &path)(e))
                }
                _ => {}
            }
        }
        if drop_layers {
            for diff_id in gone
                .diff_ids()?
                .iter()
                .filter(|d| !layers_kept.contains(*d))
            {
                let dir = self.layout.layer_dir(diff_id);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(io_err("remove layer", &dir))?;
                }
            }
        }
        Ok(())
    }
}
