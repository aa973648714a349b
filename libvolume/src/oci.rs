//! Turning a mounted volume into an entry of an OCI runtime spec's `mounts`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};

use crate::error::{Error, Result};

/// Mount propagation for the volume inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Events flow neither way (Docker's default for volumes).
    #[default]
    RPrivate,
    /// Events flow both ways.
    RShared,
    /// Host mounts appear in the container, not the reverse.
    RSlave,
    /// Non-recursive variants.
    Private,
    /// See [`Propagation::RShared`].
    Shared,
    /// See [`Propagation::RSlave`].
    Slave,
}

impl Propagation {
    fn as_option(self) -> &'static str {
        match self {
            Propagation::RPrivate => "rprivate",
            Propagation::RShared => "rshared",
            Propagation::RSlave => "rslave",
            Propagation::Private => "private",
            Propagation::Shared => "shared",
            Propagation::Slave => "slave",
        }
    }
}

/// A volume placed in a container: a bind of its host path.
///
/// ```
/// use libvolume::{Propagation, VolumeMount};
/// let m = VolumeMount::new("/var/lib/berth/volumes/data/_data", "/data")
///     .read_only(true)
///     .propagation(Propagation::RSlave)
///     .build()
///     .unwrap();
/// assert_eq!(m.typ().as_deref(), Some("bind"));
/// assert_eq!(m.options().as_ref().unwrap(), &["rbind", "ro", "rslave"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    source: PathBuf,
    destination: PathBuf,
    read_only: bool,
    propagation: Propagation,
    extra: Vec<String>,
}

impl VolumeMount {
    /// `source` is the host path from [`crate::VolumeService::mount`];
    /// `destination` an absolute path in the container.
    pub fn new(source: impl AsRef<Path>, destination: impl AsRef<Path>) -> Self {
        VolumeMount {
            source: source.as_ref().to_path_buf(),
            destination: destination.as_ref().to_path_buf(),
            read_only: false,
            propagation: Propagation::default(),
            extra: Vec::new(),
        }
    }

    /// Read-only in the container.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Mount propagation.
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }

    /// Another mount option (`nosuid`, `nodev`, `noexec` …).
    pub fn option(mut self, option: impl Into<String>) -> Self {
        self.extra.push(option.into());
        self
    }

    /// The OCI `mounts` entry.
    pub fn build(self) -> Result<Mount> {
        if !self.destination.is_absolute() {
            return Err(Error::option(
                "oci",
                format!("mount destination {:?} must be absolute", self.destination),
            ));
        }
        if !self.source.is_absolute() {
            return Err(Error::option(
                "oci",
                format!("mount source {:?} must be absolute", self.source),
            ));
        }
        let mut options = vec![
            "rbind".to_string(),
            if self.read_only { "ro" } else { "rw" }.to_string(),
            self.propagation.as_option().to_string(),
        ];
        options.extend(self.extra);
        MountBuilder::default()
            .destination(self.destination)
            .typ("bind")
            .source(self.source)
            .options(options)
            .build()
            .map_err(|e| Error::option("oci", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_rw_and_rejects_relative() {
        let m = VolumeMount::new("/v/_data", "/data")
            .option("nosuid")
            .build()
            .unwrap();
        assert_eq!(m.destination(), Path::new("/data"));
        assert_eq!(m.source().as_deref(), Some(Path::new("/v/_data")));
        assert_eq!(
            m.options().as_ref().unwrap(),
            &["rbind", "rw", "rprivate", "nosuid"]
        );
        assert!(VolumeMount::new("/v", "data")
            .build()
            .unwrap_err()
            .to_string()
            .contains("destination"));
        assert!(VolumeMount::new("v", "/data")
            .build()
            .unwrap_err()
            .to_string()
            .contains("source"));
    }
}
