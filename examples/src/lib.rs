//! Library code shared by berth's example binaries.
//!
//! - [`images`]: the local image store of the example engine `berthd`
//!   (OCI image layout on disk, `docker load`/`import`/`save`, layers
//!   unpacked once and stacked with overlayfs per container).

pub mod images;
