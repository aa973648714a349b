//! The local engine of `berthd`: a libswarm [`Backend`](libswarm::Backend)
//! that keeps images in [`crate::images::ImageStore`] and runs containers
//! with libcontainer, one small monitor process ([`shim`]) per container
//! whose pipes carry the container's stdout and stderr into a json-file
//! style log.
//!
//! - [`spec`]: the OCI spec from the image config and `docker create`
//!   options (Docker's default capabilities, masked paths, resources)
//! - [`shim`]: the per-container monitor (berthd re-executed)
//! - [`network`]: containers on libnetwork networks (opt-in)
//! - [`LocalBackend`]: the `Backend`, served by `libswarm::dockerserver`

mod backend;
pub mod events;
pub mod exec;
pub mod network;
mod record;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod stats;
pub mod top;
pub mod volume;

pub use backend::{EngineConfig, LocalBackend};
