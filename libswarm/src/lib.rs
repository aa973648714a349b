//! Adapter-based composition of container engine backends.
//!
//! [`Backend`] is one typed, object-safe async interface for what a
//! container engine does (containers, exec, images, networks, volumes,
//! events, system info). Everything else here is a `Backend` that serves,
//! wraps or composes other backends:
//!
//! - [`fake`]: an in-memory reference engine, the leaf for tests;
//! - [`dockerserver`]: serves any backend as the Docker Engine API;
//! - [`dockerclient`]: a backend that drives any Docker Engine API endpoint;
//! - [`debug`]: logs every call and result through `tracing`;
//! - [`cluster`]: one backend over many nodes, with a scheduler;
//! - [`remote`]: serves a backend over libchan, and connects to one;
//! - [`pipeline`]: builds chains from strings like
//!   `dockerserver unix:///run/x.sock` `debug` `fake`.
//!
//! The [`suite`] module is a behaviour suite any backend can be run against.

pub mod backend;
pub mod cluster;
pub mod debug;
pub mod dockerclient;
pub mod dockerserver;
pub mod error;
pub mod fake;
pub mod pipeline;
pub mod remote;
pub mod stdcopy;
pub mod suite;
pub mod types;
pub mod util;

/// Docker Engine API models (from `bollard-stubs`, API 1.44).
pub use bollard_stubs::models;

pub use backend::Backend;
pub use error::{Error, ErrorKind, Result};
pub use types::*;

/// The Docker Engine API version berth speaks.
pub const API_VERSION: &str = "1.44";
/// The oldest Docker Engine API version berth accepts.
pub const MIN_API_VERSION: &str = "1.24";
