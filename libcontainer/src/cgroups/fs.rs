//! The filesystem seam: every cgroup file access goes through [`CgroupFs`],
//! so unit tests can check exactly what would be written without root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::{CgroupError, Result};

/// File operations the cgroup code needs. Paths are absolute.
pub trait CgroupFs: Send + Sync + Debug {
    /// Read a whole file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Write `data` to an existing file in one `write(2)` (cgroup files
    /// parse each write on its own and never create new files).
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    /// Create one directory; `AlreadyExists` if it is there.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Remove one empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether the file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// The sub-directories of a directory.
    fn sub_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl CgroupFs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let written = file.write(data.as_bytes())?;
        if written != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write ({written} of {} bytes)", data.len()),
            ));
        }
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn sub_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        Ok(dirs)
    }
}

#[derive(Debug, Default)]
struct MemState {
    files: BTreeMap<PathBuf, String>,
    dirs: BTreeSet<PathBuf>,
    writes: Vec<(PathBuf, String)>,
    failing: BTreeMap<PathBuf, i32>,
    templates: Vec<(PathBuf, Vec<(String, String)>)>,
}

/// An in-memory filesystem that records every write, for unit tests of the
/// cgroup logic (also useful to embedders testing their own resource
/// translation).
///
/// A write succeeds when the parent directory exists (the file is created
/// and keeps the last written value); seed files with [`MemFs::set`] to make
/// optional kernel files "exist" or to give reads a value.
#[derive(Debug, Default, Clone)]
pub struct MemFs {
    state: Arc<Mutex<MemState>>,
}

impl MemFs {
    /// An empty filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A poisoned lock only means another test thread panicked; the data
        // is still usable for assertions.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create a directory and all its parents.
    pub fn mkdir_p(&self, path: impl AsRef<Path>) {
        let mut st = self.lock();
        for anc in path.as_ref().ancestors() {
            st.dirs.insert(anc.to_path_buf());
        }
    }

    /// Set a file's content (creating its parent directories), not recorded
    /// as a write.
    pub fn set(&self, path: impl AsRef<Path>, content: &str) {
        let path = path.as_ref();
        if let Some(parent) = path.parent() {
            self.mkdir_p(parent);
        }
        self.lock()
            .files
            .insert(path.to_path_buf(), content.to_string());
    }

    /// Files the "kernel" creates in every new directory under `root`
    /// (name, initial content), like cgroupfs does.
    pub fn template(&self, root: impl AsRef<Path>, files: &[(&str, &str)]) {
        let files = files
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        self.lock()
            .templates
            .push((root.as_ref().to_path_buf(), files));
    }

    /// Make writes to `path` fail with `errno`.
    pub fn fail_writes(&self, path: impl AsRef<Path>, errno: i32) {
        self.lock()
            .failing
            .insert(path.as_ref().to_path_buf(), errno);
    }

    /// Every write so far, in order.
    pub fn writes(&self) -> Vec<(PathBuf, String)> {
        self.lock().writes.clone()
    }

    /// Writes so far as `(file name relative to base, value)` pairs.
    pub fn writes_under(&self, base: impl AsRef<Path>) -> Vec<(String, String)> {
        let base = base.as_ref();
        self.writes()
            .into_iter()
            .filter_map(|(p, v)| {
                p.strip_prefix(base)
                    .ok()
                    .map(|rel| (rel.to_string_lossy().into_owned(), v))
            })
            .collect()
    }

    /// Forget the recorded writes (files keep their content).
    pub fn clear_writes(&self) {
        self.lock().writes.clear();
    }

    /// Current content of a file.
    pub fn get(&self, path: impl AsRef<Path>) -> Option<String> {
        self.lock().files.get(path.as_ref()).cloned()
    }

    /// Whether a directory exists.
    pub fn is_dir(&self, path: impl AsRef<Path>) -> bool {
        self.lock().dirs.contains(path.as_ref())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl CgroupFs for MemFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.lock()
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(errno) = st.failing.get(path) {
            return Err(io::Error::from_raw_os_error(*errno));
        }
        let parent_ok = path.parent().is_some_and(|p| st.dirs.contains(p));
        if !parent_ok {
            return Err(not_found(path));
        }
        st.files.insert(path.to_path_buf(), data.to_string());
        st.writes.push((path.to_path_buf(), data.to_string()));
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if st.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
        }
        if !path.parent().is_some_and(|p| st.dirs.contains(p)) {
            return Err(not_found(path));
        }
        st.dirs.insert(path.to_path_buf());
        let files: Vec<(String, String)> = st
            .templates
            .iter()
            .filter(|(root, _)| path.starts_with(root))
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        for (name, content) in files {
            st.files.insert(path.join(name), content);
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if st.dirs.iter().any(|d| d.parent() == Some(path)) {
            // cgroupfs refuses to remove a cgroup with children.
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        if !st.dirs.remove(path) {
            return Err(not_found(path));
        }
        st.files.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.dirs.contains(path) || st.files.contains_key(path)
    }

    fn sub_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let st = self.lock();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        Ok(st
            .dirs
            .iter()
            .filter(|d| d.parent() == Some(path))
            .cloned()
            .collect())
    }
}

/// Helpers over any [`CgroupFs`] that turn `io::Error`s into
/// [`CgroupError`]s naming the file.
pub(crate) trait FsExt {
    fn write_file(&self, path: &Path, data: &str) -> Result<()>;
    fn read_file(&self, path: &Path) -> Result<String>;
    fn read_trimmed(&self, path: &Path) -> Result<String>;
    fn read_u64(&self, path: &Path) -> Result<u64>;
}

impl<T: CgroupFs + ?Sized> FsExt for T {
    fn write_file(&self, path: &Path, data: &str) -> Result<()> {
        tracing::trace!(path = %path.display(), data, "cgroup write");
        self.write(path, data)
            .map_err(|e| CgroupError::io("write", path, e))
    }

    fn read_file(&self, path: &Path) -> Result<String> {
        self.read(path)
            .map_err(|e| CgroupError::io("read", path, e))
    }

    fn read_trimmed(&self, path: &Path) -> Result<String> {
        Ok(self.read_file(path)?.trim().to_string())
    }

    fn read_u64(&self, path: &Path) -> Result<u64> {
        let s = self.read_trimmed(path)?;
        if s == "max" {
            return Ok(u64::MAX);
        }
        s.parse()
            .map_err(|_| CgroupError::parse(path, format!("not a number: {s:?}")))
    }
}
