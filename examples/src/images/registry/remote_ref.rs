//! Image references with a registry host: `[host[:port]/]path[:tag][@digest]`
//! with Docker's defaults.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

use super::{RegistryError, RegistryResult};
use crate::images::digest::parse_sha256;
use crate::images::reference::ImageRef;

/// Docker Hub's registry host, the default domain of short names.
pub const DOCKER_HUB: &str = "docker.io";

/// A reference to an image in a registry: `[host[:port]/]path[:tag][@digest]`,
/// with Docker's defaults (`busybox` is `docker.io/library/busybox:latest`).
///
/// ```
/// use examples::images::RemoteRef;
/// let r: RemoteRef = "busybox".parse()?;
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// let r: RemoteRef = "127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".parse()?;
/// assert_eq!((r.domain(), r.path()), ("127.0.0.1:5000", "team/app"));
/// assert!(r.tag().is_none() && r.digest().is_some());
/// # Ok::<(), examples::images::RegistryError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl RemoteRef {
    /// The registry host (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path in the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, when pulled by tag.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest, when pulled by digest.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository as Docker shows it (`busybox`,
    /// `127.0.0.1:5000/busybox`).
    pub fn familiar_repo(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The reference as Docker shows it (`busybox:latest`,
    /// `127.0.0.1:5000/busybox@sha256:…`).
    pub fn familiar(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("{}@{d}", self.familiar_repo()),
            (Some(t), None) => format!("{}:{t}", self.familiar_repo()),
            (None, None) => self.familiar_repo(),
        }
    }

    /// The name the local store tags a pull by tag with.
    pub fn store_name(&self) -> Option<ImageRef> {
        let tag = self.tag.as_ref()?;
        format!("{}:{tag}", self.familiar_repo()).parse().ok()
    }

    /// What `/v2/<path>/manifests/<this>` asks for: the digest if there
    /// is one, else the tag.
    pub(crate) fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    !c.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && c.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
        })
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl FromStr for RemoteRef {
    type Err = RegistryError;

    fn from_str(s: &str) -> RegistryResult<Self> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let digest = parse_sha256(d, "digest").map_err(|e| invalid(s, e.to_string()))?;
                (n, Some(digest))
            }
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(t) = tag.filter(|t| !valid_tag(t)) {
            return Err(invalid(
                s,
                format!("tag {t:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
            ));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest.to_string())
            }
            _ => (DOCKER_HUB, name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB
        } else {
            domain
        };
        if !valid_domain(domain) {
            return Err(invalid(s, format!("registry host {domain:?} is not valid")));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_component(c)) {
            return Err(invalid(
                s,
                format!("repository name component {bad:?} must be lowercase letters, digits and separators"),
            ));
        }
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            domain: domain.to_string(),
            path,
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RemoteRef {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults_and_hosts() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("busybox").familiar(), "busybox:latest");
        assert_eq!(r("me/app:1").to_string(), "docker.io/me/app:1");
        assert_eq!(
            r("index.docker.io/library/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        let local = r("127.0.0.1:5000/busybox");
        assert_eq!(
            (local.domain(), local.path(), local.tag()),
            ("127.0.0.1:5000", "busybox", Some("latest"))
        );
        assert_eq!(
            local.store_name().unwrap().to_string(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(r("localhost/a/b:v2").familiar(), "localhost/a/b:v2");
        let hex = "a".repeat(64);
        let pinned = r(&format!("quay.io/x/y:1@sha256:{hex}"));
        assert_eq!(pinned.manifest_ref(), format!("sha256:{hex}"));
        assert!(pinned.store_name().is_some());
        let by_digest = r(&format!("busybox@sha256:{hex}"));
        assert_eq!(by_digest.tag(), None);
        assert_eq!(by_digest.store_name(), None);
        assert_eq!(by_digest.familiar(), format!("busybox@sha256:{hex}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:00",
            "busybox@md5:00",
            "host:99999/x",
            "a//b",
            "x:-t",
        ] {
            let err = bad.parse::<RemoteRef>().unwrap_err();
            assert!(
                matches!(err, RegistryError::InvalidReference { .. }),
                "{bad}: {err}"
            );
        }
    }
}
