//! Persisted state: one JSON file per object, written atomically
//! (temporary file in the same directory, then rename).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A directory of JSON records grouped by kind (`networks`, `endpoints`,
/// `sandboxes`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (and create) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for kind in ["networks", "endpoints", "sandboxes", "netns"] {
            let dir = root.join(kind);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        Ok(Store { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: &str, id: &str) -> PathBuf {
        self.root.join(kind).join(format!("{id}.json"))
    }

    /// Write a record atomically.
    pub fn put<T: Serialize>(&self, kind: &str, id: &str, value: &T) -> Result<()> {
        let path = self.path(kind, id);
        let tmp = self.root.join(kind).join(format!(".{id}.tmp"));
        let data = serde_json::to_vec(value).map_err(|e| Error::State {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, data).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("rename to {}", path.display()), e))
    }

    /// Remove a record (absent is fine).
    pub fn delete(&self, kind: &str, id: &str) -> Result<()> {
        let path = self.path(kind, id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
        }
    }

    /// Every record of a kind; leftover temporary files of a crashed writer
    /// are removed.
    pub fn list<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>> {
        let dir = self.root.join(kind);
        let rd =
            std::fs::read_dir(&dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let data = std::fs::read(&path)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
            let value = serde_json::from_slice(&data).map_err(|e| Error::State {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            out.push(value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_list_delete_and_crash_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put("networks", "a", &vec![1, 2]).unwrap();
        store.put("networks", "b", &vec![3]).unwrap();
        std::fs::write(dir.path().join("networks/.c.tmp"), b"{half").unwrap();
        let mut all: Vec<Vec<i32>> = store.list("networks").unwrap();
        all.sort();
        assert_eq!(all, vec![vec![1, 2], vec![3]]);
        assert!(!dir.path().join("networks/.c.tmp").exists());
        store.delete("networks", "a").unwrap();
        store.delete("networks", "a").unwrap();
        assert_eq!(store.list::<Vec<i32>>("networks").unwrap().len(), 1);
        std::fs::write(dir.path().join("networks/bad.json"), b"{").unwrap();
        let err = store.list::<Vec<i32>>("networks").unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
    }
}
