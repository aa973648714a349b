//! Sandboxing for container engines: OCI runtime-spec bundles, namespaces,
//! cgroups, rootfs and mounts, and the create/start/kill/delete lifecycle.
//!
//! The container lifecycle is not implemented yet: see the status table in
//! the README. [`fixtures`] builds busybox bundles for tests and benchmarks.

pub mod capabilities;
pub mod features;
pub mod fixtures;
pub mod lsm;
pub mod seccomp;
