//! The part of an image config an engine applies to a new container.

use oci_spec::image::ImageConfiguration;

use super::error::Result;
use super::store::ImageStore;

/// Run defaults of an image: what `docker run` takes from it unless the
/// user overrides them.
///
/// ```
/// use examples::images::ImageRuntimeConfig;
/// let c = ImageRuntimeConfig {
///     entrypoint: vec!["/bin/sh".into(), "-c".into()],
///     cmd: vec!["echo hi".into()],
///     ..Default::default()
/// };
/// assert_eq!(c.command_line(None, None), vec!["/bin/sh", "-c", "echo hi"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRuntimeConfig {
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Default arguments.
    pub cmd: Vec<String>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The working directory, if set.
    pub working_dir: Option<String>,
    /// The user (`name`, `uid`, `uid:gid` …), if set.
    pub user: Option<String>,
    /// Exposed ports as `port/proto`.
    pub exposed_ports: Vec<String>,
    /// Paths that get an anonymous volume.
    pub volumes: Vec<String>,
    /// The stop signal, if set.
    pub stop_signal: Option<String>,
}

impl ImageRuntimeConfig {
    /// Take the run defaults out of an OCI image config.
    pub fn from_config(config: &ImageConfiguration) -> Self {
        let Some(c) = config.config() else {
            return Self::default();
        };
        let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
        exposed_ports.sort();
        let mut volumes = c.volumes().clone().unwrap_or_default();
        volumes.sort();
        Self {
            env: c.env().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
            exposed_ports,
            volumes,
            stop_signal: c.stop_signal().clone(),
        }
    }

    /// The process arguments as Docker builds them: the entrypoint
    /// (or `entrypoint` override), then the user's args or else `cmd`.
    /// An overridden entrypoint drops the image's `cmd`, as in Docker.
    pub fn command_line(
        &self,
        entrypoint: Option<&[String]>,
        args: Option<&[String]>,
    ) -> Vec<String> {
        let (entry, default_cmd) = match entrypoint {
            Some(e) => (e, &[][..]),
            None => (&self.entrypoint[..], &self.cmd[..]),
        };
        let tail = match args {
            Some(a) if !a.is_empty() => a,
            _ => default_cmd,
        };
        entry.iter().chain(tail).cloned().collect()
    }

    /// The environment with `overrides` (`KEY=value`) replacing the
    /// image's values of the same key.
    pub fn env_with(&self, overrides: &[String]) -> Vec<String> {
        let key = |kv: &String| kv.split('=').next().unwrap_or("").to_string();
        let mut env: Vec<String> = self
            .env
            .iter()
            .filter(|kv| !overrides.iter().any(|o| key(o) == key(kv)))
            .cloned()
            .collect();
        env.extend(overrides.iter().cloned());
        env
    }
}

impl ImageStore {
    /// The run defaults of the image `reference`.
    pub fn runtime_config(&self, reference: &str) -> Result<ImageRuntimeConfig> {
        Ok(ImageRuntimeConfig::from_config(
            &self.record(reference)?.config,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_docker_rules() {
        let c = ImageRuntimeConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            ..Default::default()
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(c.command_line(None, None), s(&["/entry", "default"]));
        assert_eq!(c.command_line(None, Some(&s(&["x"]))), s(&["/entry", "x"]));
        assert_eq!(c.command_line(Some(&s(&["/other"])), None), s(&["/other"]));
        let no_entry = ImageRuntimeConfig {
            cmd: vec!["sh".into()],
            ..Default::default()
        };
        assert_eq!(
            no_entry.command_line(None, Some(&s(&["echo", "hi"]))),
            s(&["echo", "hi"])
        );
    }

    #[test]
    fn env_overrides_by_key() {
        let c = ImageRuntimeConfig {
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ..Default::default()
        };
        assert_eq!(
            c.env_with(&["A=2".into(), "B=3".into()]),
            vec!["PATH=/bin", "A=2", "B=3"]
        );
    }

    #[test]
    fn from_config_reads_docker_json() {
        let json = r#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w","User":"1000",
                      "ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config: ImageConfiguration = serde_json::from_str(json).unwrap();
        let c = ImageRuntimeConfig::from_config(&config);
        assert_eq!(c.cmd, vec!["sh"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(c.exposed_ports, vec!["80/tcp"]);
        assert_eq!(c.volumes, vec!["/data"]);
    }
}
