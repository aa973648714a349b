//! The one error type of the image store.

use std::path::{Path, PathBuf};

/// Errors from the image store. Messages name the file, field or argument
/// at fault; the `Display` of [`ImageError::NotFound`] and
/// [`ImageError::Conflict`] match Docker's wording so an engine can pass
/// them to the CLI as they are.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Reading an archive or layer stream failed (truncated, not a tar …).
    #[error("reading {what}: {source}")]
    Read {
        /// The archive or layer being read.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The archive is not a usable `docker save` or OCI archive.
    #[error("invalid image archive: {0}")]
    BadArchive(String),
    /// Content did not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob, layer or config concerned.
        what: String,
        /// The digest the archive or config claims.
        expected: String,
        /// The digest of the content as read.
        actual: String,
    },
    /// A media type the store does not handle (zstd layers, artifacts …).
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// The descriptor concerned.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// A path in an archive or layer that would escape its directory.
    #[error("unsafe path {path:?} in {what}: {reason}")]
    UnsafePath {
        /// The archive or layer.
        what: String,
        /// The offending path.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An image reference (`name:tag`, ID) that does not parse.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--change` instruction of `docker import` that does not parse.
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange {
        /// The instruction as given.
        change: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No image matches the reference.
    #[error("No such image: {0}")]
    NotFound(String),
    /// The operation conflicts with the store's state (in use, ambiguous).
    #[error("{0}")]
    Conflict(String),
    /// A JSON document (manifest, config, index) is malformed.
    #[error("{what}: {source}")]
    Json {
        /// The document.
        what: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Mounting or unmounting the overlay failed.
    #[error("{op} overlay at {path}: {source}")]
    Mount {
        /// mount or unmount.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        source: nix::Error,
    },
    /// Too many layers for one overlay mount option string.
    #[error("image has {layers} layers; their paths exceed the overlay mount option limit")]
    TooManyLayers {
        /// The number of layers.
        layers: usize,
    },
    /// A blocking store call run by [`super::ImageStore::run_blocking`]
    /// panicked or was cancelled.
    #[error("image store task failed: {0}")]
    Task(String),
    /// Building the busybox test image failed.
    #[error("busybox fixture: {0}")]
    Fixture(#[from] libcontainer::fixtures::FixtureError),
}

/// Shorthand for this module's results.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Map an `io::Error` to [`ImageError::Io`] naming `op` and `path`.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Map an `io::Error` while reading a stream to [`ImageError::Read`].
pub(crate) fn read_err(what: &str) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Read {
        what: what.to_string(),
        source,
    }
}

/// Map a `serde_json::Error` to [`ImageError::Json`].
pub(crate) fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> ImageError + '_ {
    move |source| ImageError::Json {
        what: what.to_string(),
        source,
    }
}
