//! `docker import --change` instructions: the Dockerfile subset that
//! only touches the image config.

use std::collections::HashMap;

use oci_spec::image::Config;

use super::error::{ImageError, Result};

/// One parsed `--change` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `CMD ["a","b"]` or `CMD a b` (shell form: `/bin/sh -c`).
    Cmd(Vec<String>),
    /// `ENTRYPOINT …`, same forms as `CMD`.
    Entrypoint(Vec<String>),
    /// `ENV K=V …` or `ENV K V`.
    Env(Vec<(String, String)>),
    /// `WORKDIR /path`.
    WorkingDir(String),
    /// `USER name[:group]`.
    User(String),
    /// `EXPOSE 80 53/udp`.
    Expose(Vec<String>),
    /// `VOLUME /data` or `VOLUME ["/a","/b"]`.
    Volume(Vec<String>),
    /// `LABEL k=v …`.
    Label(Vec<(String, String)>),
    /// `STOPSIGNAL SIGTERM`.
    StopSignal(String),
}

fn bad(change: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidChange {
        change: change.to_string(),
        reason: reason.into(),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Exec form (a JSON array) or shell form (`/bin/sh -c "…"`).
fn command(change: &str, rest: &str) -> Result<Vec<String>> {
    if rest.starts_with('[') {
        serde_json::from_str(rest)
            .map_err(|e| bad(change, format!("not a JSON array of strings: {e}")))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
    }
}

fn pairs(change: &str, rest: &str, allow_space_form: bool) -> Result<Vec<(String, String)>> {
    if !rest.contains('=') {
        if allow_space_form {
            if let Some((k, v)) = rest.split_once(char::is_whitespace) {
                return Ok(vec![(k.to_string(), unquote(v))]);
            }
        }
        return Err(bad(change, "want KEY=value"));
    }
    rest.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(change, format!("{kv:?} is not KEY=value")))?;
            if k.is_empty() {
                return Err(bad(change, "empty key"));
            }
            Ok((k.to_string(), unquote(v)))
        })
        .collect()
}

impl std::str::FromStr for Change {
    type Err = ImageError;

    fn from_str(change: &str) -> Result<Self> {
        let trimmed = change.trim();
        let (word, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(bad(change, format!("{word} needs an argument")));
        }
        Ok(match word.to_ascii_uppercase().as_str() {
            "CMD" => Change::Cmd(command(change, rest)?),
            "ENTRYPOINT" => Change::Entrypoint(command(change, rest)?),
            "ENV" => Change::Env(pairs(change, rest, true)?),
            "LABEL" => Change::Label(pairs(change, rest, false)?),
            "WORKDIR" => {
                let dir = unquote(rest);
                if !dir.starts_with('/') {
                    return Err(bad(change, "WORKDIR must be an absolute path"));
                }
                Change::WorkingDir(dir)
            }
            "USER" => Change::User(unquote(rest)),
            "STOPSIGNAL" => Change::StopSignal(unquote(rest)),
            "EXPOSE" => Change::Expose(
                rest.split_whitespace()
                    .map(|p| {
                        let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                        match (port.parse::<u16>(), proto) {
                            (Ok(_), "tcp" | "udp" | "sctp") => Ok(format!("{port}/{proto}")),
                            _ => Err(bad(change, format!("{p:?} is not PORT[/tcp|udp|sctp]"))),
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            "VOLUME" => Change::Volume(if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|e| bad(change, format!("not a JSON array of strings: {e}")))?
            } else {
                rest.split_whitespace().map(String::from).collect()
            }),
            other => return Err(bad(change, format!("{other} is not supported by import (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"))),
        })
    }
}

impl Change {
    /// Apply the instruction to an image config.
    pub fn apply(&self, config: &mut Config) {
        match self {
            Change::Cmd(c) => {
                config.set_cmd(Some(c.clone()));
            }
            Change::Entrypoint(e) => {
                config.set_entrypoint(Some(e.clone()));
            }
            Change::Env(vars) => {
                let mut env = config.env().clone().unwrap_or_default();
                for (k, v) in vars {
                    env.retain(|kv| kv.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                config.set_env(Some(env));
            }
            Change::WorkingDir(w) => {
                config.set_working_dir(Some(w.clone()));
            }
            Change::User(u) => {
                config.set_user(Some(u.clone()));
            }
            Change::Expose(ports) => {
                let mut all = config.exposed_ports().clone().unwrap_or_default();
                all.extend(ports.iter().cloned());
                all.sort();
                all.dedup();
                config.set_exposed_ports(Some(all));
            }
            Change::Volume(vols) => {
                let mut all = config.volumes().clone().unwrap_or_default();
                all.extend(vols.iter().cloned());
                all.sort();
                all.dedup();
                config.set_volumes(Some(all));
            }
            Change::Label(labels) => {
                let mut all: HashMap<String, String> = config.labels().clone().unwrap_or_default();
                all.extend(labels.iter().cloned());
                config.set_labels(Some(all));
            }
            Change::StopSignal(s) => {
                config.set_stop_signal(Some(s.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Change {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_docker_forms() {
        assert_eq!(
            p(r#"CMD ["sh","-c","echo hi"]"#),
            Change::Cmd(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            p("CMD echo hi"),
            Change::Cmd(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            p("entrypoint [\"/bin/httpd\"]"),
            Change::Entrypoint(vec!["/bin/httpd".into()])
        );
        assert_eq!(
            p("ENV A=1 B=\"two\""),
            Change::Env(vec![("A".into(), "1".into()), ("B".into(), "two".into())])
        );
        assert_eq!(
            p("ENV A one two"),
            Change::Env(vec![("A".into(), "one two".into())])
        );
        assert_eq!(p("WORKDIR /srv"), Change::WorkingDir("/srv".into()));
        assert_eq!(
            p("EXPOSE 80 53/udp"),
            Change::Expose(vec!["80/tcp".into(), "53/udp".into()])
        );
        assert_eq!(
            p("VOLUME /data /logs"),
            Change::Volume(vec!["/data".into(), "/logs".into()])
        );
    }

    #[test]
    fn rejects_bad_changes_naming_them() {
        for bad in [
            "RUN echo",
            "CMD",
            "CMD [\"unterminated\"",
            "WORKDIR rel",
            "EXPOSE 99999",
            "ENV =x",
            "LABEL x",
        ] {
            let err = bad.parse::<Change>().unwrap_err();
            assert!(
                err.to_string()
                    .contains(bad.split_whitespace().next().unwrap()),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn applies_to_config() {
        let mut c = Config::default();
        p("ENV PATH=/bin").apply(&mut c);
        p("ENV PATH=/usr/bin X=1").apply(&mut c);
        p("EXPOSE 80").apply(&mut c);
        p("EXPOSE 80/tcp 443").apply(&mut c);
        assert_eq!(c.env().clone().unwrap(), vec!["PATH=/usr/bin", "X=1"]);
        assert_eq!(
            c.exposed_ports().clone().unwrap(),
            vec!["443/tcp", "80/tcp"]
        );
    }
}
