//! `docker pull` (`POST /images/create?fromImage=…`) through the image
//! store's registry client: Docker's JSON progress messages, the `pull`
//! event, and Docker's errors ("manifest unknown", "dial tcp …").
//!
//! `docker run` of an image that is not here needs nothing more: create
//! answers 404 "No such image", and the CLI says "Unable to find image …
//! locally", pulls, and creates again, as against dockerd.

use futures::StreamExt;
use libswarm::{BoxStream, Error, ErrorKind, ProgressDetail, PullMessage, RegistryAuth, Result};

use super::{image_err, LocalBackend};
use crate::engine::events::Kind;
use crate::images::{Credentials, PullProgress, RegistryConfig, RegistryError, RemoteRef};

/// The short layer ID Docker's progress lines show.
fn short(digest: &crate::images::Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// One Docker JSON progress message for `p`.
pub(crate) fn progress_message(p: &PullProgress) -> PullMessage {
    match p {
        PullProgress::Resolved {
            reference,
            repository,
        } => PullMessage {
            id: Some(reference.clone()),
            ..PullMessage::status(format!("Pulling from {repository}"))
        },
        PullProgress::Layer { digest, status } => PullMessage {
            id: Some(short(digest)),
            progress_detail: Some(ProgressDetail::default()),
            ..PullMessage::status(*status)
        },
        PullProgress::Downloading {
            digest,
            current,
            total,
        } => PullMessage {
            id: Some(short(digest)),
            progress_detail: Some(ProgressDetail {
                current: Some(*current),
                total: Some(*total),
            }),
            ..PullMessage::status("Downloading")
        },
    }
}

/// A login's error: a refusal is a 401, as dockerd answers. (Only here: a
/// 401 to a pull would have the docker CLI prompt for a login.)
pub(crate) fn login_err(e: RegistryError) -> Error {
    match e {
        e @ RegistryError::LoginFailed { .. } => Error::new(ErrorKind::Unauthorized, e.to_string()),
        e => registry_err(e),
    }
}

/// A registry error as the Docker API error docker's CLI prints.
pub(crate) fn registry_err(e: RegistryError) -> Error {
    match e {
        e @ (RegistryError::ManifestUnknown { .. } | RegistryError::Denied { .. }) => {
            Error::not_found(e.to_string())
        }
        e @ RegistryError::InvalidReference { .. } => Error::bad_request(e.to_string()),
        RegistryError::Store(e) => image_err(e),
        e => Error::internal(e.to_string()),
    }
}

impl LocalBackend {
    /// How to reach registries: berthd's `--insecure-registry` and
    /// `--registry-certs-dir`; call before serving.
    pub fn set_registry_config(&self, config: RegistryConfig) {
        if let Ok(mut c) = self.inner.registries.write() {
            *c = config;
        }
    }

    /// Pull `reference` into the image store, as a stream of Docker's
    /// JSON progress messages while it runs, ending with the `Digest:`
    /// and `Status:` lines, or with the error. What `POST /images/create`
    /// streams to `docker pull`. Call it within a tokio runtime: the pull
    /// runs as a task of its own.
    ///
    /// ```no_run
    /// # async fn f(engine: examples::engine::LocalBackend) -> libswarm::Result<()> {
    /// use futures::StreamExt;
    /// let mut progress = engine.pull_stream("127.0.0.1:5000/busybox:latest");
    /// while let Some(message) = progress.next().await {
    ///     println!("{}", message?.status);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn pull_stream(&self, reference: &str) -> BoxStream<Result<PullMessage>> {
        self.pull_stream_auth(reference, None)
    }

    /// [`LocalBackend::pull_stream`] sending `auth` (what `docker login`
    /// stored; `X-Registry-Auth`) to the registry.
    pub fn pull_stream_auth(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
    ) -> BoxStream<Result<PullMessage>> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let engine = self.clone();
        let reference = reference.to_string();
        tokio::spawn(async move {
            let progress = tx.clone();
            let done = engine
                .pull(&reference, auth, move |p| {
                    tracing::debug!(?p, "pull progress");
                    let _ = progress.unbounded_send(Ok(progress_message(&p)));
                })
                .await;
            match done {
                Ok(last) => last.into_iter().for_each(|m| {
                    let _ = tx.unbounded_send(Ok(m));
                }),
                Err(e) => {
                    let _ = tx.unbounded_send(Err(e));
                }
            }
        });
        rx.boxed()
    }

    fn registry_config(&self) -> RegistryConfig {
        self.inner
            .registries
            .read()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// `docker login`: check `auth` against its registry, as dockerd
    /// (nothing is stored: the docker CLI keeps the credentials).
    pub async fn login(&self, auth: RegistryAuth) -> Result<String> {
        let server = auth.server_address.clone();
        crate::images::login(
            &server,
            &Credentials::new(auth.username, auth.password),
            &self.registry_config(),
        )
        .await
        .map_err(login_err)?;
        tracing::info!(server, "registry login succeeded");
        Ok("Login Succeeded".into())
    }

    /// [`LocalBackend::pull_stream`] run to its end, the progress logged
    /// (`Backend::image_pull`, for callers that want no progress).
    pub(super) async fn pull_logged(&self, reference: &str) -> Result<()> {
        let mut messages = self.pull_stream(reference);
        while let Some(message) = messages.next().await {
            let message = message?;
            tracing::info!(status = %message.status, id = ?message.id, "pull");
        }
        Ok(())
    }

    /// The pull itself; returns the closing `Digest:` and `Status:` lines.
    async fn pull(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
        progress: impl Fn(PullProgress) + Send + Sync + 'static,
    ) -> Result<[PullMessage; 2]> {
        let remote: RemoteRef = reference.parse().map_err(registry_err)?;
        let mut config = self.registry_config();
        if let Some(auth) = auth {
            config = config.credentials(Credentials::new(auth.username, auth.password));
        }
        let pulled = self
            .inner
            .images
            .pull(reference, &config, progress)
            .await
            .map_err(registry_err)?;
        let shown = remote.familiar();
        let name = remote.familiar_repo();
        self.inner
            .events
            .publish(Kind::Image, "pull", &shown, &[("name", &name)]);
        let status = if pulled.updated {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        };
        Ok([
            PullMessage::status(format!("Digest: {}", pulled.digest)),
            PullMessage::status(status),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_dockers() {
        let d = crate::images::sha256_of(b"layer");
        let m = progress_message(&PullProgress::Layer {
            digest: d.clone(),
            status: "Pull complete",
        });
        assert_eq!(m.id.as_deref(), Some(&d.digest()[..12]));
        assert_eq!(m.status, "Pull complete");
        assert_eq!(
            serde_json::to_value(&m).unwrap()["progressDetail"],
            serde_json::json!({})
        );
        let m = progress_message(&PullProgress::Downloading {
            digest: d.clone(),
            current: 10,
            total: 20,
        });
        assert_eq!(m.status, "Downloading");
        assert_eq!(
            serde_json::to_value(&m).unwrap()["progressDetail"],
            serde_json::json!({"current": 10, "total": 20})
        );
        let m = progress_message(&PullProgress::Resolved {
            reference: "latest".into(),
            repository: "library/busybox".into(),
        });
        assert_eq!(m.status, "Pulling from library/busybox");
        assert_eq!(m.id.as_deref(), Some("latest"));
    }

    #[test]
    fn errors_keep_dockers_kinds() {
        let unknown = registry_err(RegistryError::ManifestUnknown {
            reference: "127.0.0.1:1/busybox:nope".into(),
        });
        assert_eq!(unknown.http_status(), 404);
        assert!(unknown.to_string().contains("manifest unknown"));
        let bad = registry_err("Bad".parse::<RemoteRef>().unwrap_err());
        assert_eq!(bad.http_status(), 400);
        let refused = || RegistryError::LoginFailed {
            url: "http://127.0.0.1:1/v2/".into(),
            status: "401 Unauthorized".into(),
        };
        assert_eq!(login_err(refused()).http_status(), 401);
        // Not a 401 on a pull: the CLI would prompt for a login.
        assert_eq!(registry_err(refused()).http_status(), 500);
    }
}
