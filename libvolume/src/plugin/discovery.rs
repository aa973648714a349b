//! Finding plugins as Docker does: a socket `<name>.sock` (or
//! `<name>/<name>.sock`) in /run/docker/plugins, or a spec file
//! `<name>.spec` (a URL) or `<name>.json` (`{"Name", "Addr"}`) in
//! /etc/docker/plugins and /usr/lib/docker/plugins. Directories are
//! configurable so tests can use temporary ones.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::plugin::client::{Plugin, PluginAddr, RetryPolicy};

/// Plugin lookup by name.
///
/// ```
/// use libvolume::plugin::PluginDiscovery;
/// let d = PluginDiscovery::default();
/// assert_eq!(d.socket_dirs()[0], std::path::Path::new("/run/docker/plugins"));
/// ```
#[derive(Debug, Clone)]
pub struct PluginDiscovery {
    socket_dirs: Vec<PathBuf>,
    spec_dirs: Vec<PathBuf>,
    retry: RetryPolicy,
}

impl Default for PluginDiscovery {
    fn default() -> Self {
        PluginDiscovery {
            socket_dirs: vec![PathBuf::from("/run/docker/plugins")],
            spec_dirs: vec![
                PathBuf::from("/etc/docker/plugins"),
                PathBuf::from("/usr/lib/docker/plugins"),
            ],
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Deserialize)]
struct JsonSpec {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "TLSConfig", default)]
    tls: Option<serde_json::Value>,
}

impl PluginDiscovery {
    /// Searches only the given directories.
    pub fn new(socket_dirs: Vec<PathBuf>, spec_dirs: Vec<PathBuf>) -> Self {
        PluginDiscovery {
            socket_dirs,
            spec_dirs,
            retry: RetryPolicy::default(),
        }
    }

    /// How long activating a discovered plugin may retry (Docker's 30 s
    /// by default).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The activation retry policy.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Directories searched for sockets.
    pub fn socket_dirs(&self) -> &[PathBuf] {
        &self.socket_dirs
    }

    /// Directories searched for spec files.
    pub fn spec_dirs(&self) -> &[PathBuf] {
        &self.spec_dirs
    }

    /// The plugin called `name`; [`Error::NotFound`] when none is there.
    pub async fn find(&self, name: &str) -> Result<Plugin> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(Error::Plugin {
                plugin: name.to_string(),
                message: "a plugin name is a single file name".to_string(),
            });
        }
        for dir in &self.socket_dirs {
            for candidate in [
                dir.join(format!("{name}.sock")),
                dir.join(name).join(format!("{name}.sock")),
            ] {
                if is_socket(&candidate) {
                    return Ok(Plugin {
                        name: name.to_string(),
                        addr: PluginAddr::Unix(candidate),
                    });
                }
            }
        }
        for dir in &self.spec_dirs {
            for ext in ["spec", "json"] {
                let path = dir.join(format!("{name}.{ext}"));
                match tokio::fs::read_to_string(&path).await {
                    Ok(text) => return read_spec(name, &path, &text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::sys("reading plugin spec", path, e)),
                }
            }
        }
        Err(Error::NotFound {
            name: name.to_string(),
        })
    }

    /// Every plugin in the directories, sockets first, one per name.
    pub async fn list(&self) -> Result<Vec<Plugin>> {
        let mut names = Vec::new();
        for dir in self.socket_dirs.iter().chain(&self.spec_dirs) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let name = match file.rsplit_once('.') {
                    Some((n, "sock" | "spec" | "json")) => n.to_string(),
                    _ if entry.path().join(format!("{file}.sock")).exists() => file,
                    _ => continue,
                };
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let mut plugins = Vec::new();
        for name in names {
            match self.find(&name).await {
                Ok(p) => plugins.push(p),
                Err(e) => tracing::warn!(plugin = %name, error = %e, "skipping plugin"),
            }
        }
        Ok(plugins)
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn read_spec(name: &str, path: &Path, text: &str) -> Result<Plugin> {
    let bad = |message: String| Error::Plugin {
        plugin: name.to_string(),
        message: format!("{}: {message}", path.display()),
    };
    let (plugin_name, addr) = if path.extension().is_some_and(|e| e == "json") {
        let spec: JsonSpec = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if spec.tls.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(bad("TLS plugin connections are not supported".to_string()));
        }
        let n = if spec.name.is_empty() {
            name.to_string()
        } else {
            spec.name
        };
        (n, spec.addr)
    } else {
        (name.to_string(), text.trim().to_string())
    };
    Ok(Plugin {
        name: plugin_name,
        addr: parse_addr(&addr).map_err(bad)?,
    })
}

/// `unix:///path`, `tcp://host:port` or `http://host:port`.
pub(crate) fn parse_addr(addr: &str) -> std::result::Result<PluginAddr, String> {
    if let Some(path) = addr.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!("unix address {addr:?} needs an absolute path"));
        }
        return Ok(PluginAddr::Unix(PathBuf::from(path)));
    }
    if let Some(host) = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("http://"))
    {
        let host = host.trim_end_matches('/');
        if host.is_empty() || !host.contains(':') {
            return Err(format!("address {addr:?} needs host:port"));
        }
        return Ok(PluginAddr::Tcp(host.to_string()));
    }
    Err(format!(
        "unsupported plugin address {addr:?} (use unix:// or tcp://)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_sockets_and_specs() {
        let run = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        let lib = tempfile::tempdir().unwrap();
        let _l1 = std::os::unix::net::UnixListener::bind(run.path().join("alpha.sock")).unwrap();
        std::fs::create_dir(run.path().join("beta")).unwrap();
        let _l2 =
            std::os::unix::net::UnixListener::bind(run.path().join("beta/beta.sock")).unwrap();
        std::fs::write(etc.path().join("gamma.spec"), "tcp://127.0.0.1:9999\n").unwrap();
        std::fs::write(
            lib.path().join("delta.json"),
            r#"{"Name":"delta","Addr":"unix:///x/d.sock"}"#,
        )
        .unwrap();
        std::fs::write(
            lib.path().join("tls.json"),
            r#"{"Addr":"tcp://h:1","TLSConfig":{"CAFile":"x"}}"#,
        )
        .unwrap();
        std::fs::write(etc.path().join("bad.spec"), "ftp://x").unwrap();
        let d = PluginDiscovery::new(
            vec![run.path().to_path_buf()],
            vec![etc.path().to_path_buf(), lib.path().to_path_buf()],
        );
        assert_eq!(
            d.find("alpha").await.unwrap().addr,
            PluginAddr::Unix(run.path().join("alpha.sock"))
        );
        assert_eq!(
            d.find("beta").await.unwrap().addr,
            PluginAddr::Unix(run.path().join("beta/beta.sock"))
        );
        assert_eq!(
            d.find("gamma").await.unwrap().addr,
            PluginAddr::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            d.find("delta").await.unwrap().addr,
            PluginAddr::Unix("/x/d.sock".into())
        );
        assert!(d.find("tls").await.unwrap_err().to_string().contains("TLS"));
        assert!(d
            .find("bad")
            .await
            .unwrap_err()
            .to_string()
            .contains("unsupported plugin address"));
        assert!(d.find("nope").await.unwrap_err().is_not_found());
        assert!(d.find("../etc").await.is_err());
        let mut names: Vec<_> = d
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        names.sort();
        assert_eq!(names, ["alpha", "beta", "delta", "gamma"]);
    }
}
