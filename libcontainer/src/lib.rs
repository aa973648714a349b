//! Sandboxing for container engines: OCI runtime-spec bundles, namespaces,
//! cgroups, rootfs and mounts, and the create/start/kill/delete lifecycle.
//!
//! [`ContainerBuilder`] validates a bundle's config.json into a plan of
//! plain data, clones the init straight into its namespaces (no re-exec of
//! our binary, no JSON after fork) and leaves it waiting on an exec fifo;
//! [`Container`] starts, inspects, signals and deletes it, also from a later
//! process through the state kept under the root directory.
//!
//! ```no_run
//! use libcontainer::{Container, ContainerBuilder, Status};
//! let mut c = ContainerBuilder::new("demo", "/tmp/bundle").root("/run/berth").create()?;
//! assert_eq!(c.status(), Status::Created);
//! c.start()?;
//! let exit_code = c.wait()?;
//! c.delete(false)?;
//! # let _ = exit_code;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`fixtures`] builds busybox bundles for tests and benchmarks.

pub mod capabilities;
pub mod cgroups;
pub mod features;
pub mod fixtures;

pub mod builder;
pub mod channel;
pub mod clone;
pub mod console;
pub mod container;
pub mod exec;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod mount_options;
pub mod namespaces;
pub mod plan;
pub mod rootfs;
pub mod state;
pub mod syscall;

pub use builder::{ContainerBuilder, CreateError, CreateExtension, DEFAULT_ROOT};
pub use container::{Container, ContainerError};
pub use init::InitExtension;
pub use state::{OciState, Status};
pub mod lsm;
pub mod seccomp;
pub mod security;
