//! Image bookkeeping for the fake backend: references, `docker save`
//! tarballs and rootfs imports.

use std::collections::HashMap;
use std::io::Read;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::models::ContainerConfig;
use crate::types::ByteStream;
use crate::{Error, Result};

/// Largest tarball the fake accepts (it keeps nothing but the metadata).
const MAX_TARBALL: usize = 512 << 20;

/// An image the fake knows.
#[derive(Debug, Clone)]
pub(crate) struct FakeImage {
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) created_nanos: i64,
    pub(crate) config: ContainerConfig,
    pub(crate) size: i64,
    pub(crate) comment: String,
}

/// `busybox` → `busybox:latest`; strips the default registry prefix.
pub(crate) fn normalize_reference(reference: &str) -> String {
    let r = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || r.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// `sha256:` + hex digest of `data`.
pub(crate) fn digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

pub(crate) async fn collect(mut stream: ByteStream) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk?;
        if buf.len() + chunk.len() > MAX_TARBALL {
            return Err(Error::bad_request(format!(
                "tarball larger than {MAX_TARBALL} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[derive(serde::Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
struct ImageConfigFile {
    #[serde(default)]
    config: Option<ContainerConfig>,
    #[serde(default)]
    comment: Option<String>,
}

/// Reads a `docker save` tarball: `manifest.json` and the config files it
/// names. Layers are not kept.
pub(crate) fn parse_saved(data: &[u8], now: i64) -> Result<Vec<FakeImage>> {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut archive = tar::Archive::new(data);
    let entries = archive
        .entries()
        .map_err(|e| Error::bad_request(format!("invalid tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::bad_request(format!("invalid tar entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| Error::bad_request(format!("invalid tar path: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path == "manifest.json" || path.ends_with(".json") {
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .map_err(|e| Error::bad_request(format!("reading {path}: {e}")))?;
            files.insert(path, buf);
        }
    }
    let manifest = files.get("manifest.json").ok_or_else(|| {
        Error::bad_request("tarball has no manifest.json: not a `docker save` archive")
    })?;
    let manifest: Vec<ManifestEntry> = serde_json::from_slice(manifest)
        .map_err(|e| Error::bad_request(format!("invalid manifest.json: {e}")))?;
    let mut images = Vec::new();
    for entry in manifest {
        let raw = files.get(&entry.config).ok_or_else(|| {
            Error::bad_request(format!("manifest names missing config {:?}", entry.config))
        })?;
        let config: ImageConfigFile = serde_json::from_slice(raw).map_err(|e| {
            Error::bad_request(format!("invalid image config {}: {e}", entry.config))
        })?;
        images.push(FakeImage {
            id: digest(raw),
            repo_tags: entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| normalize_reference(t))
                .collect(),
            created_nanos: now,
            config: config.config.unwrap_or_default(),
            size: data.len() as i64,
            comment: config.comment.unwrap_or_default(),
        });
    }
    Ok(images)
}

/// Checks that `data` is a tar archive and returns its size.
pub(crate) fn check_rootfs(data: &[u8]) -> Result<i64> {
    let mut archive = tar::Archive::new(data);
    let mut size = 0i64;
    for entry in archive
        .entries()
        .map_err(|e| Error::bad_request(format!("invalid rootfs tarball: {e}")))?
    {
        let entry =
            entry.map_err(|e| Error::bad_request(format!("invalid rootfs tarball: {e}")))?;
        size += entry.size() as i64;
    }
    Ok(size)
}

/// Applies `docker import --change` instructions (CMD, ENTRYPOINT, ENV,
/// WORKDIR, LABEL, USER) to `config`.
pub(crate) fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    for change in changes {
        let change = change.trim();
        let (instr, rest) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        let words = || -> Vec<String> {
            serde_json::from_str::<Vec<String>>(rest)
                .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.into()])
        };
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => config.cmd = Some(words()),
            "ENTRYPOINT" => config.entrypoint = Some(words()),
            "ENV" => {
                let kv = rest.replacen(' ', "=", usize::from(!rest.contains('=')));
                config.env.get_or_insert_with(Vec::new).push(kv);
            }
            "WORKDIR" => config.working_dir = Some(rest.to_string()),
            "USER" => config.user = Some(rest.to_string()),
            "LABEL" => {
                let (k, v) = rest.split_once('=').ok_or_else(|| {
                    Error::bad_request(format!("LABEL wants key=value, got {rest:?}"))
                })?;
                config
                    .labels
                    .get_or_insert_with(HashMap::new)
                    .insert(k.to_string(), v.trim_matches('"').to_string());
            }
            other => {
                return Err(Error::bad_request(format!(
                    "unsupported change instruction {other:?} in {change:?}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_like_docker() {
        assert_eq!(normalize_reference("busybox"), "busybox:latest");
        assert_eq!(
            normalize_reference("docker.io/library/busybox:1"),
            "busybox:1"
        );
        assert_eq!(
            normalize_reference("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
    }

    #[test]
    fn changes_apply_and_junk_is_rejected() {
        let mut c = ContainerConfig::default();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["echo","hi"]"#.into(),
                "ENV A=b".into(),
                "LABEL x=y".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["echo", "hi"]);
        assert_eq!(c.env.unwrap(), vec!["A=b"]);
        assert!(apply_changes(&mut ContainerConfig::default(), &["RUN x".into()]).is_err());
    }

    #[test]
    fn non_tar_is_a_bad_request() {
        let err = parse_saved(
            b"definitely not a tarball, just some bytes that are long enough",
            0,
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::BadRequest);
    }
}
