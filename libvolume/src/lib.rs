//! Volumes with pluggable drivers and Docker's volume plugin protocol.
//!
//! - [`VolumeService`]: named volumes (create, inspect, list with filters,
//!   remove, prune) and per-caller mount reference counts, persisted in a
//!   state directory and restored after a restart.
//! - [`VolumeDriver`]: the async trait drivers implement.
//! - [`LocalDriver`]: Docker's `local` driver (directories, tmpfs, binds,
//!   filesystems on devices or images, nfs, size-limited loop images).
//! - [`plugin`]: a client for any Docker volume plugin, discovery, and a
//!   server exposing any driver as a plugin.
//! - [`VolumeMount`]: a mounted volume as an OCI runtime-spec mount.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libvolume::{Caller, CreateVolume, LocalDriver, VolumeMount, VolumeService};
//!
//! # async fn demo() -> libvolume::Result<()> {
//! let service = VolumeService::builder("/var/lib/berth/volume-state")
//!     .driver(Arc::new(LocalDriver::builder("/var/lib/berth/volumes").build()?))
//!     .build()
//!     .await?;
//! let vol = service.create(CreateVolume::named("web-data")).await?;
//! let host_path = service.mount(&vol.name, Caller::new("ctr-1")).await?;
//! let oci_mount = VolumeMount::new(&host_path, "/data").build()?;
//! # let _ = oci_mount;
//! # Ok(())
//! # }
//! ```

mod caller;
mod driver;
mod error;
pub mod local;
mod name;
mod oci;
pub mod plugin;
mod service;
mod store;
mod time;

pub use caller::{Caller, Liveness, ProcLiveness};
pub use driver::{Capabilities, DriverVolume, Options, Scope, VolumeDriver};
pub use error::{Error, Result};
pub use local::{LocalDriver, LocalDriverBuilder, LocalOptions};
pub use name::{generate_name, validate_name};
pub use oci::{Propagation, VolumeMount};
pub use service::{
    CreateVolume, ListFilter, Volume, VolumeService, VolumeServiceBuilder, DEFAULT_DRIVER,
};
