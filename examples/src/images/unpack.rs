//! Unpacking one layer tar (plain or gzip) into a directory, converting
//! OCI/Docker whiteouts into overlayfs form: `.wh.NAME` becomes a 0/0
//! character device `NAME`, `.wh..wh..opq` sets `trusted.overlay.opaque=y`
//! on its directory. Paths with `..`, and paths through a symlink of the
//! layer, are refused; symlinks themselves (absolute ones too) are kept as
//! they are: they are resolved inside the container's root at run time.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use oci_spec::image::Digest;

use super::digest::HashingReader;
use super::error::{io_err, read_err, ImageError, Result};

/// The whiteout file prefix of the OCI image spec.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker of the OCI image spec.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How whiteouts are written: a seam so the conversion logic is tested
/// without the privileges `mknod` and `trusted.*` xattrs need.
pub trait WhiteoutWriter: Send + Sync {
    /// Hide the lower layers' `path` (overlayfs: a 0/0 char device).
    fn whiteout(&self, path: &Path) -> io::Result<()>;
    /// Hide the lower layers' content of directory `dir`.
    fn opaque(&self, dir: &Path) -> io::Result<()>;
}

/// The overlayfs whiteout format (needs CAP_MKNOD and CAP_SYS_ADMIN).
#[derive(Debug, Default, Clone, Copy)]
pub struct OverlayWhiteouts;

impl WhiteoutWriter for OverlayWhiteouts {
    fn whiteout(&self, path: &Path) -> io::Result<()> {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)
    }

    fn opaque(&self, dir: &Path) -> io::Result<()> {
        xattr::set(dir, "trusted.overlay.opaque", b"y")
    }
}

/// What unpacking a layer found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedLayer {
    /// The digest of the uncompressed tar (the layer's diff-id).
    pub diff_id: Digest,
    /// The total size of the regular files in the layer.
    pub size: u64,
}

/// The compression of a layer blob, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`): recognised so it can be refused clearly.
    Zstd,
}

/// Look at the first bytes of `reader` without consuming them.
pub(crate) fn sniff<R: Read>(reader: &mut BufReader<R>, what: &str) -> Result<Compression> {
    let head = reader.fill_buf().map_err(read_err(what))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// The uncompressed tar stream of a layer blob.
pub(crate) fn decompressed<'a, R: Read + 'a>(blob: R, what: &str) -> Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(256 * 1024, blob);
    match sniff(&mut reader, what)? {
        Compression::None => Ok(Box::new(reader)),
        Compression::Gzip => Ok(Box::new(GzDecoder::new(reader))),
        Compression::Zstd => Err(ImageError::UnsupportedMediaType {
            what: what.to_string(),
            media_type: "zstd-compressed layer".into(),
        }),
    }
}

/// The diff-id of a layer blob without unpacking it.
pub(crate) fn diff_id_of<R: Read>(blob: R, what: &str) -> Result<Digest> {
    let hashing = HashingReader::new(decompressed(blob, what)?);
    Ok(hashing.finish().map_err(read_err(what))?.0)
}

/// A relative, normalised form of an archive path: leading `/` and `.`
/// dropped, `..` refused. `None` for the archive root itself.
pub(crate) fn clean_path(path: &Path, what: &str) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::UnsafePath {
                    what: what.to_string(),
                    path: path.display().to_string(),
                    reason: "\"..\" would escape the layer",
                })
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Unpacks layers into directories; one per layer, used once.
pub(crate) struct Unpacker<'w> {
    dest: PathBuf,
    what: String,
    whiteouts: &'w dyn WhiteoutWriter,
    /// Parent directories already checked to be real directories.
    checked: HashSet<PathBuf>,
    as_root: bool,
}

impl<'w> Unpacker<'w> {
    /// Unpack into `dest` (which must exist and be empty).
    pub(crate) fn new(dest: &Path, what: &str, whiteouts: &'w dyn WhiteoutWriter) -> Self {
        Self {
            dest: dest.to_path_buf(),
            what: what.to_string(),
            whiteouts,
            checked: HashSet::new(),
            as_root: nix::unistd::geteuid().is_root(),
        }
    }

    /// Unpack the layer blob `blob` (plain or gzip tar).
    pub(crate) fn unpack<R: Read>(mut self, blob: R) -> Result<UnpackedLayer> {
        let what = self.what.clone();
        let mut hashing = HashingReader::new(decompressed(blob, &what)?);
        let mut size = 0;
        {
            let mut archive = tar::Archive::new(&mut hashing);
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(self.as_root);
            archive.set_unpack_xattrs(self.as_root);
            archive.set_overwrite(true);
            for entry in archive.entries().map_err(read_err(&what))? {
                let mut entry = entry.map_err(read_err(&what))?;
                size += self.unpack_entry(&mut entry)?;
            }
        }
        // The diff-id covers the whole stream, end-of-archive padding too.
        let (diff_id, _) = hashing.finish().map_err(read_err(&what))?;
        Ok(UnpackedLayer { diff_id, size })
    }

    fn unsafe_path(&self, path: &Path, reason: &'static str) -> ImageError {
        ImageError::UnsafePath {
            what: self.what.clone(),
            path: path.display().to_string(),
            reason,
        }
    }

    /// Unpack one entry; returns the bytes of file content written.
    fn unpack_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<u64> {
        let raw = entry.path().map_err(read_err(&self.what))?.into_owned();
        let Some(rel) = clean_path(&raw, &self.what)? else {
            return Ok(0); // the layer root itself
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_dir = self.ensure_dir(&parent, &raw)?;

        if name == OPAQUE_MARKER {
            return self
                .whiteouts
                .opaque(&parent_dir)
                .map(|()| 0)
                .map_err(io_err("mark opaque", &parent_dir));
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(WHITEOUT_PREFIX) || hidden.is_empty() {
                // Other AUFS metadata (.wh..wh.plnk, …): not content.
                return Ok(0);
            }
            let target = parent_dir.join(hidden);
            remove_existing(&target)?;
            return self
                .whiteouts
                .whiteout(&target)
                .map(|()| 0)
                .map_err(io_err("write whiteout", &target));
        }

        let target = parent_dir.join(&name);
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(read_err(&self.what))?
                .ok_or_else(|| self.unsafe_path(&raw, "hard link without a target"))?
                .into_owned();
            let Some(link_rel) = clean_path(&link, &self.what)? else {
                return Err(self.unsafe_path(&link, "hard link to the layer root"));
            };
            let link_parent = link_rel.parent().unwrap_or(Path::new("")).to_path_buf();
            let source = self
                .ensure_dir(&link_parent, &link)?
                .join(link_rel.file_name().unwrap_or_default());
            remove_existing(&target)?;
            fs::hard_link(&source, &target).map_err(io_err("hard link", &target))?;
            return Ok(0);
        }
        if kind.is_dir() {
            // A directory replaces a non-directory of the same name.
            if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                remove_existing(&target)?;
            }
        } else {
            remove_existing(&target)?;
        }
        entry.unpack(&target).map_err(|source| ImageError::Read {
            what: format!("{}: entry {}", self.what, rel.display()),
            source,
        })?;
        Ok(if kind.is_file() {
            entry.header().size().unwrap_or(0)
        } else {
            0
        })
    }

    /// Make sure `rel` is a real directory inside the layer (creating
    /// missing ones), never following a symlink; return its full path.
    fn ensure_dir(&mut self, rel: &Path, raw: &Path) -> Result<PathBuf> {
        let full = self.dest.join(rel);
        if rel.as_os_str().is_empty() || self.checked.contains(rel) {
            return Ok(full);
        }
        let mut at = self.dest.clone();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_path(raw, "its parent is a symlink in the layer"))
                }
                Ok(_) => return Err(self.unsafe_path(raw, "its parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&at).map_err(io_err("create", &at))?;
                }
                Err(e) => return Err(io_err("stat", &at)(e)),
            }
        }
        self.checked.insert(rel.to_path_buf());
        Ok(full)
    }
}

/// Remove whatever is at `path` (not following symlinks), if anything.
fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("remove", path)),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    /// Records whiteouts as plain marker files so no privilege is needed.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl WhiteoutWriter for Recorder {
        fn whiteout(&self, path: &Path) -> io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(format!("whiteout {}", path.display()));
            Ok(())
        }
        fn opaque(&self, dir: &Path) -> io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(format!("opaque {}", dir.display()));
            Ok(())
        }
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_size(data.len() as u64);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // set_path refuses "..": write the raw name for hostile tests.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    use tar::EntryType as T;

    #[test]
    fn converts_whiteouts_and_keeps_content() {
        let layer = tar_of(&[
            ("./", T::Directory, b"", None),
            ("etc/", T::Directory, b"", None),
            ("etc/hostname", T::Regular, b"box\n", None),
            ("etc/.wh.passwd", T::Regular, b"", None),
            ("var/cache/.wh..wh..opq", T::Regular, b"", None),
            ("bin/sh", T::Symlink, b"", Some("/bin/busybox")),
            ("etc/hn", T::Link, b"", Some("etc/hostname")),
        ]);
        for blob in [layer.clone(), gzip(&layer)] {
            let dir = tempfile::tempdir().unwrap();
            let rec = Recorder::default();
            let got = Unpacker::new(dir.path(), "layer", &rec)
                .unpack(&blob[..])
                .unwrap();
            assert_eq!(got.diff_id, super::super::digest::sha256_of(&layer));
            assert_eq!(got.size, 4);
            let d = dir.path();
            assert_eq!(
                *rec.0.lock().unwrap(),
                vec![
                    format!("whiteout {}", d.join("etc/passwd").display()),
                    format!("opaque {}", d.join("var/cache").display()),
                ]
            );
            assert_eq!(fs::read(d.join("etc/hostname")).unwrap(), b"box\n");
            assert_eq!(fs::read(d.join("etc/hn")).unwrap(), b"box\n");
            assert_eq!(
                fs::read_link(d.join("bin/sh")).unwrap(),
                Path::new("/bin/busybox")
            );
            assert!(!d.join("etc/.wh.passwd").exists());
        }
    }

    #[test]
    fn refuses_parent_dir_traversal() {
        let layer = tar_of(&[("../escape", T::Regular, b"x", None)]);
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("layer");
        fs::create_dir(&inner).unwrap();
        let err = Unpacker::new(&inner, "layer 1", &Recorder::default())
            .unpack(&layer[..])
            .unwrap_err();
        assert!(matches!(err, ImageError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("../escape"), "{err}");
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn refuses_writing_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        let layer = tar_of(&[
            ("evil", T::Symlink, b"", Some(&target)),
            ("evil/file", T::Regular, b"x", None),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let err = Unpacker::new(dir.path(), "layer", &Recorder::default())
            .unpack(&layer[..])
            .unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!outside.path().join("file").exists());
    }

    #[test]
    fn refuses_hard_link_escape_and_zstd() {
        let layer = tar_of(&[("x", T::Link, b"", Some("../../etc/passwd"))]);
        let dir = tempfile::tempdir().unwrap();
        let err = Unpacker::new(dir.path(), "layer", &Recorder::default())
            .unpack(&layer[..])
            .unwrap_err();
        assert!(matches!(err, ImageError::UnsafePath { .. }), "{err}");
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0];
        let err = Unpacker::new(dir.path(), "layer", &Recorder::default())
            .unpack(&zstd[..])
            .unwrap_err();
        assert!(
            matches!(err, ImageError::UnsupportedMediaType { .. }),
            "{err}"
        );
    }

    #[test]
    fn truncated_tar_is_an_error() {
        let layer = tar_of(&[("f", T::Regular, &[1u8; 2000], None)]);
        let dir = tempfile::tempdir().unwrap();
        let err = Unpacker::new(dir.path(), "layer", &Recorder::default())
            .unpack(&layer[..1000])
            .unwrap_err();
        assert!(err.to_string().contains("layer"), "{err}");
    }
}
