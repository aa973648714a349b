//! A cgroup directory seen through a [`CgroupFs`].

use std::path::{Path, PathBuf};

use super::error::{CgroupError, Result};
use super::fs::{CgroupFs, FsExt};

/// One cgroup directory: writes and reads of its files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dir<'a> {
    pub fs: &'a dyn CgroupFs,
    pub path: &'a Path,
}

impl<'a> Dir<'a> {
    pub fn new(fs: &'a dyn CgroupFs, path: &'a Path) -> Self {
        Self { fs, path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.fs.exists(&self.file(name))
    }

    pub fn write(&self, name: &str, value: impl AsRef<str>) -> Result<()> {
        self.fs.write_file(&self.file(name), value.as_ref())
    }

    /// Write a file the kernel may not have; a missing file is reported as
    /// the field's feature missing on this host.
    pub fn write_for(&self, field: &str, name: &str, value: impl AsRef<str>) -> Result<()> {
        let path = self.file(name);
        match self.fs.write(&path, value.as_ref()) {
            Ok(()) => {
                tracing::trace!(path = %path.display(), value = value.as_ref(), "cgroup write");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CgroupError::invalid(
                field,
                format!("this kernel has no {name} (the feature is not supported here)"),
            )),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(CgroupError::invalid(
                field,
                format!(
                    "the kernel refused {:?} for {}",
                    value.as_ref(),
                    path.display()
                ),
            )),
            Err(e) => Err(CgroupError::io("write", path, e)),
        }
    }

    pub fn read(&self, name: &str) -> Result<String> {
        self.fs.read_file(&self.file(name))
    }

    pub fn read_trimmed(&self, name: &str) -> Result<String> {
        self.fs.read_trimmed(&self.file(name))
    }

    pub fn read_u64(&self, name: &str) -> Result<u64> {
        self.fs.read_u64(&self.file(name))
    }

    /// Read a u64 file, `None` if it does not exist.
    pub fn read_u64_opt(&self, name: &str) -> Result<Option<u64>> {
        if !self.has(name) {
            return Ok(None);
        }
        self.read_u64(name).map(Some)
    }
}

/// Parse `key value` lines (memory.stat, cpu.stat, memory.events …).
pub(crate) fn parse_flat_keyed(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}
