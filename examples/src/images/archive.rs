//! Reading an image archive (`docker load` input) into staging: every
//! regular file is copied out once while it is hashed, symlinks and hard
//! links between entries are remembered, and the format is told apart by
//! `manifest.json` (docker save) or `oci-layout` + `index.json` (OCI).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use oci_spec::image::Digest;

use super::error::{io_err, read_err, ImageError, Result};
use super::staging::Staging;
use super::unpack::{clean_path, decompressed};

/// A file of the archive, staged and hashed.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveFile {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) path: PathBuf,
}

/// The files of an archive, by their path inside it.
#[derive(Debug, Default)]
pub(crate) struct ArchiveFiles {
    files: HashMap<String, ArchiveFile>,
    links: HashMap<String, String>,
}

/// Largest JSON document read into memory from an archive.
const MAX_JSON: u64 = 64 << 20;

fn key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Lexically resolve `target` relative to `dir` (both archive paths);
/// `None` if it leaves the archive.
fn resolve_link(dir: &Path, target: &Path) -> Option<String> {
    let mut out: Vec<String> = if target.is_absolute() {
        Vec::new()
    } else {
        dir.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    for c in target.components() {
        match c {
            Component::Normal(p) => out.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop()?;
            }
            _ => {}
        }
    }
    Some(out.join("/"))
}

impl ArchiveFiles {
    /// Read the whole archive (plain or gzip) into `staging`.
    pub(crate) fn read(staging: &mut Staging<'_>, reader: impl Read) -> Result<Self> {
        const WHAT: &str = "image archive";
        let mut archive = tar::Archive::new(decompressed(reader, WHAT)?);
        let mut out = Self::default();
        for entry in archive.entries().map_err(read_err(WHAT))? {
            let mut entry = entry.map_err(read_err(WHAT))?;
            let raw = entry.path().map_err(read_err(WHAT))?.into_owned();
            let Some(rel) = clean_path(&raw, WHAT)? else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let (digest, size, path) =
                    staging.stage_reader(&mut entry, &format!("{WHAT} entry {}", rel.display()))?;
                out.files
                    .insert(key(&rel), ArchiveFile { digest, size, path });
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(link) = entry.link_name().map_err(read_err(WHAT))? else {
                    continue;
                };
                let base = if kind.is_symlink() {
                    rel.parent().unwrap_or(Path::new(""))
                } else {
                    Path::new("")
                };
                if let Some(target) = resolve_link(base, &link) {
                    out.links.insert(key(&rel), target);
                }
            }
        }
        Ok(out)
    }

    /// Whether the archive has a file (or link to one) at `path`.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The file at `path`, following links between entries.
    pub(crate) fn get(&self, path: &str) -> Option<&ArchiveFile> {
        let mut path = clean_path(Path::new(path), "")
            .ok()??
            .to_string_lossy()
            .into_owned();
        for _ in 0..16 {
            if let Some(f) = self.files.get(&path) {
                return Some(f);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }

    /// The file at `path`, or a clear error naming the field that named it.
    pub(crate) fn require(&self, path: &str, field: &str) -> Result<&ArchiveFile> {
        self.get(path).ok_or_else(|| {
            ImageError::BadArchive(format!("{field}: {path:?} is missing from the archive"))
        })
    }

    /// Read a (JSON) file into memory.
    pub(crate) fn bytes(&self, path: &str, field: &str) -> Result<Vec<u8>> {
        let file = self.require(path, field)?;
        if file.size > MAX_JSON {
            return Err(ImageError::BadArchive(format!(
                "{field}: {path:?} is too large ({} bytes)",
                file.size
            )));
        }
        fs::read(&file.path).map_err(io_err("read", &file.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_lexically_inside_the_archive() {
        assert_eq!(
            resolve_link(Path::new("a"), Path::new("../b/layer.tar")).as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(resolve_link(Path::new(""), Path::new("../x")), None);
        assert_eq!(
            resolve_link(Path::new("a/b"), Path::new("/c")).as_deref(),
            Some("c")
        );
    }
}
