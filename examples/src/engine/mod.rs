//! The local engine of `berthd`: a libswarm [`Backend`](libswarm::Backend)
//! that keeps images in [`crate::images::ImageStore`] and runs containers
//! with libcontainer, one small monitor process ([`shim`]) per container
//! that owns the container's I/O (the json-file log, the exit record) and
//! outlives berthd, so containers survive a daemon restart.
//!
//! - [`spec`]: the OCI spec from the image config and `docker create`
//!   options (Docker's default capabilities, masked paths, resources)
//! - [`shim`]: the per-container monitor (berthd re-executed)
//! - [`monitor`]: the libchan protocol between berthd and a shim
//! - [`logs`]: `docker logs` streamed from the json-file log on disk
//! - [`logrot`]: json-file rotation (`--log-opt max-size/max-file`)
//! - [`boot`]: containers after a host reboot (boot ids, leftovers)
//! - [`network`]: containers on libnetwork networks (opt-in)
//! - [`LocalBackend`]: the `Backend`, served by `libswarm::dockerserver`

mod backend;
pub mod boot;
pub mod events;
pub mod exec;
pub mod logrot;
pub mod logs;
pub mod monitor;
pub mod network;
mod record;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod stats;
pub mod top;
pub mod volume;

pub use backend::{EngineConfig, LocalBackend};
