//! Library code shared by berth's example binaries.
//!
//! - [`images`]: the local image store of the example engine `berthd`
//!   (OCI image layout on disk, `docker load`/`import`/`save`, layers
//!   unpacked once and stacked with overlayfs per container).
//! - [`engine`]: berthd's local libswarm `Backend` (containers run by
//!   libcontainer, images from [`images`]).

pub mod engine;
pub mod images;
