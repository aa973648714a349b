//! The OCI image layout on disk: `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`, plus our own `layers/` (unpacked layers), `tmp/`
//! (staging, same filesystem so commits are renames) and `lock`.
//!
//! Every file is written to `tmp/`, fsynced and renamed into place, so a
//! crash leaves either the old or the new content, never a torn file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Digest, ImageIndex, ImageIndexBuilder};

use super::digest::{sha256_of, verify};
use super::error::{io_err, json_err, ImageError, Result};

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Paths and atomic file operations of one store root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

/// An exclusive lock on the store, held while the index or blobs change.
pub(crate) struct StoreLock {
    _lock: Flock<File>,
}

impl Layout {
    /// Create (if needed) and open the layout at `root`.
    pub(crate) fn init(root: &Path) -> Result<Self> {
        let layout = Self {
            root: root.to_path_buf(),
        };
        for dir in [layout.blobs_dir(), layout.layers_dir(), layout.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        let _lock = layout.lock()?;
        layout.remove_stale_tmp();
        let marker = root.join("oci-layout");
        if !marker.exists() {
            layout.write_atomic(&marker, OCI_LAYOUT.as_bytes())?;
        }
        if !layout.index_path().exists() {
            layout.write_index(&empty_index()?)?;
        }
        Ok(layout)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Where the blob named `digest` lives (digests are sha256, checked
    /// when parsed, so the hex part is a safe file name).
    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.digest())
    }

    /// The directory of the unpacked layer with this diff-id.
    pub(crate) fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.digest())
    }

    /// Take the store's exclusive lock (flock: also between processes).
    pub(crate) fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| ImageError::Io {
            op: "lock",
            path,
            source: e.into(),
        })?;
        Ok(StoreLock { _lock: lock })
    }

    /// Read a blob and check that it hashes to its name.
    pub(crate) fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(io_err("read blob", &path))?;
        verify(
            &format!("blob {}", path.display()),
            digest,
            &sha256_of(&bytes),
        )?;
        Ok(bytes)
    }

    /// Store `bytes` as a blob (a no-op when it exists) and return its digest.
    #[cfg(test)]
    pub(crate) fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = sha256_of(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// The index of tagged and untagged images.
    pub(crate) fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&bytes).map_err(json_err(&path.display().to_string()))
    }

    /// Replace the index atomically. Call with the store lock held.
    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).map_err(json_err("index.json"))?;
        self.write_atomic(&self.index_path(), &bytes)
    }

    /// Write `bytes` to `path` through a fsynced temp file and a rename.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp_dir = self.tmp_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix(&tmp_prefix("write"))
            .tempfile_in(&tmp_dir)
            .map_err(io_err("create temp file in", &tmp_dir))?;
        tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_err("fsync", path))?;
        tmp.persist(path).map_err(|e| ImageError::Io {
            op: "rename into place",
            path: path.to_path_buf(),
            source: e.error,
        })?;
        sync_parent(path)
    }
}

/// The prefix of temp files and dirs this process makes under `tmp/`:
/// it carries our pid so that a later `open` can tell leftovers of a
/// crashed process from the work of a live one.
pub(crate) fn tmp_prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

impl Layout {
    /// Remove what crashed processes left under `tmp/` (their pid is gone).
    fn remove_stale_tmp(&self) {
        let tmp = self.tmp_dir();
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if alive {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a crashed import's leftovers")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove stale temp entry")
                }
            }
        }
    }
}

/// fsync the directory holding `path` so a rename into it is durable.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", dir))?;
    }
    Ok(())
}

fn empty_index() -> Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .map_err(|e| ImageError::BadArchive(format!("building an empty index: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_layout_and_blobs_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::init(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
        assert!(layout.read_index().unwrap().manifests().is_empty());
        let d = layout.write_blob(b"{}").unwrap();
        assert_eq!(layout.read_blob(&d).unwrap(), b"{}");
        // A corrupted blob is refused on read.
        fs::write(layout.blob_path(&d), b"{ }").unwrap();
        assert!(matches!(
            layout.read_blob(&d),
            Err(ImageError::DigestMismatch { .. })
        ));
        // Opening again keeps what is there; nothing is left in tmp/.
        Layout::init(dir.path()).unwrap();
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn open_removes_leftovers_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::init(dir.path()).unwrap();
        let tmp = layout.tmp_dir();
        // pid 0 is never a process we could be racing with.
        fs::create_dir_all(tmp.join("staging-0-abc/layer-1/diff")).unwrap();
        fs::write(tmp.join("write-0-xyz"), b"half").unwrap();
        fs::write(tmp.join("junk"), b"?").unwrap();
        let ours = tmp.join(tmp_prefix("staging") + "live");
        fs::create_dir(&ours).unwrap();
        Layout::init(dir.path()).unwrap();
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, vec![ours]);
    }
}
