//! Image references: `name[:tag]` as Docker's CLI accepts them.

use std::fmt;
use std::str::FromStr;

use super::error::ImageError;

/// A repository name with a tag, e.g. `busybox:latest`.
///
/// Docker Hub prefixes are dropped (`docker.io/library/busybox` is
/// `busybox`), a missing tag is `latest`, and digests (`@sha256:…`) are
/// not references to a tag.
///
/// ```
/// use examples::images::ImageRef;
/// let r: ImageRef = "docker.io/library/busybox".parse()?;
/// assert_eq!(r.to_string(), "busybox:latest");
/// # Ok::<(), examples::images::ImageError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    repo: String,
    tag: String,
}

impl ImageRef {
    /// The repository part (`busybox`, `localhost:5000/team/app`).
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The tag part (`latest`).
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repo, self.tag)
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    !c.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && c.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
        })
}

fn valid_host(c: &str) -> bool {
    let (host, port) = c.split_once(':').unwrap_or((c, ""));
    !host.is_empty()
        && host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-'))
        && port.chars().all(|ch| ch.is_ascii_digit())
}

impl FromStr for ImageRef {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        if s.contains('@') {
            return Err(invalid(
                s,
                "digest references are not supported by the local store",
            ));
        }
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, "latest"),
        };
        if !valid_tag(tag) {
            return Err(invalid(
                s,
                format!("tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
            ));
        }
        let repo = repo
            .strip_prefix("docker.io/library/")
            .or_else(|| repo.strip_prefix("docker.io/"))
            .or_else(|| repo.strip_prefix("index.docker.io/library/"))
            .unwrap_or(repo);
        let mut parts: Vec<&str> = repo.split('/').collect();
        let first_is_host = parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
        if first_is_host {
            if !valid_host(parts[0]) {
                return Err(invalid(
                    s,
                    format!("registry host {:?} is not valid", parts[0]),
                ));
            }
            parts.remove(0);
        }
        if let Some(bad) = parts.iter().find(|p| !valid_path_component(p)) {
            return Err(invalid(
                s,
                format!("repository name component {bad:?} must be lowercase letters, digits and separators"),
            ));
        }
        Ok(Self {
            repo: repo.to_string(),
            tag: tag.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> String {
        s.parse::<ImageRef>().unwrap().to_string()
    }

    #[test]
    fn normalizes() {
        assert_eq!(parse("busybox"), "busybox:latest");
        assert_eq!(parse("busybox:1.36"), "busybox:1.36");
        assert_eq!(parse("docker.io/library/busybox:x"), "busybox:x");
        assert_eq!(parse("docker.io/me/app"), "me/app:latest");
        assert_eq!(
            parse("localhost:5000/team/app"),
            "localhost:5000/team/app:latest"
        );
        assert_eq!(parse("localhost:5000/app:v1"), "localhost:5000/app:v1");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "Busybox",
            "a b",
            "busybox:",
            "x:-tag",
            "busybox@sha256:00",
            "/x",
            "a//b",
        ] {
            let err = bad.parse::<ImageRef>().unwrap_err();
            assert!(
                matches!(err, ImageError::InvalidReference { .. }),
                "{bad}: {err}"
            );
        }
    }
}
