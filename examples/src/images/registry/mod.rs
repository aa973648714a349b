//! A client of the OCI distribution API (Docker registries): image
//! references with a registry host, manifests and blobs over HTTP/1.1
//! (plain HTTP for loopback and insecure registries, HTTPS with rustls
//! otherwise) and the Bearer token flow registries answer a `401` with.
//!
//! Built on hyper's connection API, already used by libswarm's Docker API
//! client and server, with rustls (ring provider) and the system's CA
//! bundle: no second HTTP stack for the workspace.

mod auth;
mod client;
mod config;
mod remote_ref;

use std::time::Duration;

use super::error::ImageError;

pub use auth::{login, login_domain, Credentials};
pub(crate) use client::{content_type, next_frame, read_small, Registry};
pub use config::RegistryConfig;
pub use remote_ref::{RemoteRef, DOCKER_HUB};

/// How long to wait for a connection or for the next bytes of a response.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Manifest media types we ask for, best first.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Errors talking to a registry. Messages follow Docker's wording where
/// the docker CLI users know it ("manifest unknown", "dial tcp").
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry could not be reached.
    #[error("Get \"{url}\": dial tcp {host}: {reason}")]
    Connect {
        /// The URL requested.
        url: String,
        /// `host:port` dialled.
        host: String,
        /// Why it failed (connection refused, timeout, TLS).
        reason: String,
    },
    /// The HTTP exchange failed after connecting.
    #[error("Get \"{url}\": {reason}")]
    Http {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The registry wants credentials and we have none.
    #[error("Get \"{url}\": no basic auth credentials")]
    NoCredentials {
        /// The URL requested.
        url: String,
    },
    /// The registry refused the credentials.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed {
        /// The URL the credentials went to.
        url: String,
        /// The status, as `401 Unauthorized`.
        status: String,
    },
    /// The tag or digest is not in the repository.
    #[error("manifest for {reference} not found: manifest unknown: manifest unknown")]
    ManifestUnknown {
        /// The full reference.
        reference: String,
    },
    /// The repository does not exist or we may not pull it.
    #[error("pull access denied for {repository}, repository does not exist or may require 'docker login': {message}")]
    Denied {
        /// The repository.
        repository: String,
        /// The registry's message.
        message: String,
    },
    /// Any other error answer of the registry.
    #[error("{url}: {status}: {message}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error code and message, or the body.
        message: String,
    },
    /// A manifest, config or layer the store cannot use.
    #[error("{0}")]
    Unsupported(String),
    /// The local image store failed or refused the content.
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// Shorthand for this module's results.
pub type RegistryResult<T> = std::result::Result<T, RegistryError>;
