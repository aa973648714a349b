//! Persisted volume metadata: one JSON file per volume, written atomically
//! (temporary file, fsync, rename, fsync of the directory) so a crash leaves
//! either the old or the new record, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::driver::Options;
use crate::error::{Error, Result};

/// One caller's hold on a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CallerRef {
    pub caller: Caller,
    pub count: u32,
}

/// Everything the service knows about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VolumeRecord {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub options: Options,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at: String,
    /// Id passed to the driver's mount while any caller holds the volume.
    #[serde(default)]
    pub mount_id: Option<String>,
    #[serde(default)]
    pub mountpoint: Option<PathBuf>,
    /// Holders by caller id.
    #[serde(default)]
    pub refs: BTreeMap<String, CallerRef>,
}

/// The directory of records.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
    sync: bool,
}

impl Store {
    pub fn open(state_dir: &Path, sync: bool) -> Result<Self> {
        let dir = state_dir.join("volumes");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::sys("creating state directory", &dir, e))?;
        Ok(Store { dir, sync })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn load_all(&self) -> Result<Vec<VolumeRecord>> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::sys("reading state directory", &self.dir, e))?;
        let mut records = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::sys("reading state directory", &self.dir, e))?
                .path();
            if path.extension().is_none_or(|ext| ext != "json") {
                // Leftover temporary files of an interrupted write.
                if path.extension().is_some_and(|ext| ext == "tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let data =
                std::fs::read(&path).map_err(|e| Error::sys("reading volume state", &path, e))?;
            let record: VolumeRecord = serde_json::from_slice(&data).map_err(|e| Error::State {
                path: path.clone(),
                message: e.to_string(),
            })?;
            records.push(record);
        }
        Ok(records)
    }

    pub fn save(&self, record: &VolumeRecord) -> Result<()> {
        let path = self.path(&record.name);
        let tmp = self.dir.join(format!("{}.tmp", record.name));
        let data = serde_json::to_vec_pretty(record).map_err(|e| Error::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&data)?;
            if self.sync {
                file.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            if self.sync {
                std::fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::sys("writing volume state", &path, e)
        })
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::sys("removing volume state", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> VolumeRecord {
        VolumeRecord {
            name: name.into(),
            driver: "local".into(),
            options: Options::new(),
            labels: BTreeMap::from([("a".into(), "b".into())]),
            created_at: "2026-01-01T00:00:00Z".into(),
            mount_id: None,
            mountpoint: None,
            refs: BTreeMap::new(),
        }
    }

    #[test]
    fn save_load_delete_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        store.save(&record("one")).unwrap();
        store.save(&record("two")).unwrap();
        std::fs::write(dir.path().join("volumes/three.tmp"), b"{torn").unwrap();
        let mut all = store.load_all().unwrap();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(all, vec![record("one"), record("two")]);
        assert!(!dir.path().join("volumes/three.tmp").exists());
        store.delete("one").unwrap();
        store.delete("one").unwrap();
        assert_eq!(store.load_all().unwrap().len(), 1);
    }

    #[test]
    fn corrupt_record_is_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        std::fs::write(dir.path().join("volumes/bad.json"), b"not json").unwrap();
        let err = store.load_all().unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
