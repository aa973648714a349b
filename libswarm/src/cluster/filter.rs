//! Placement constraints and affinities, in classic Swarm syntax:
//! `zone==eu-*`, `node!=node-3`, `disk==/ssd|nvme/`, soft `zone==~eu-1`;
//! `container==web`, `container!=db`, `image==redis`, soft `image==~redis`.
//! They come from the container's environment (`constraint:…`,
//! `affinity:…`) or from the labels `com.docker.swarm.constraints` and
//! `com.docker.swarm.affinities` (JSON lists).

use std::collections::HashMap;
use std::fmt;

use crate::models::ContainerConfig;
use crate::{Error, Result};

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
}

impl Matcher {
    fn parse(v: &str) -> Result<Matcher> {
        if v.len() >= 2 && v.starts_with('/') && v.ends_with('/') {
            let re = regex::Regex::new(&format!("^(?:{})$", &v[1..v.len() - 1]))
                .map_err(|e| Error::bad_request(format!("constraint regex {v}: {e}")))?;
            return Ok(Matcher::Regex(re));
        }
        if v.contains(['*', '?', '[']) {
            let g = globset::Glob::new(v)
                .map_err(|e| Error::bad_request(format!("constraint glob {v}: {e}")))?;
            return Ok(Matcher::Glob(g.compile_matcher()));
        }
        Ok(Matcher::Exact(v.to_string()))
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == s,
            Matcher::Glob(g) => g.is_match(s),
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

/// `key==value` / `key!=value` on node name (`node`) or labels; `~` makes
/// it a preference.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// `node` or a label key.
    pub key: String,
    /// `==` (true) or `!=` (false).
    pub equal: bool,
    /// A preference, not a requirement.
    pub soft: bool,
    value: String,
    matcher: Matcher,
}

fn split_op(expr: &str) -> Result<(&str, bool, bool, &str)> {
    let (key, equal, rest) = if let Some((k, v)) = expr.split_once("==") {
        (k, true, v)
    } else if let Some((k, v)) = expr.split_once("!=") {
        (k, false, v)
    } else {
        return Err(Error::bad_request(format!(
            "constraint {expr:?}: want key==value or key!=value"
        )));
    };
    let (soft, value) = match rest.strip_prefix('~') {
        Some(v) => (true, v),
        None => (false, rest),
    };
    let key = key.trim();
    if key.is_empty() || value.is_empty() {
        return Err(Error::bad_request(format!(
            "constraint {expr:?}: key and value must not be empty"
        )));
    }
    Ok((key, equal, soft, value.trim()))
}

impl Constraint {
    /// Parses `key==value`, `key!=value`, with `~` after the operator for soft.
    pub fn parse(expr: &str) -> Result<Constraint> {
        let (key, equal, soft, value) = split_op(expr)?;
        let key = key
            .strip_prefix("node.labels.")
            .or_else(|| key.strip_prefix("engine.labels."))
            .unwrap_or(key);
        Ok(Constraint {
            key: key.to_string(),
            equal,
            soft,
            value: value.to_string(),
            matcher: Matcher::parse(value)?,
        })
    }

    /// Does a node with this name and labels satisfy it?
    pub fn matches(&self, node: &str, labels: &HashMap<String, String>) -> bool {
        let found = if self.key == "node" {
            self.matcher.is_match(node)
        } else {
            labels
                .get(&self.key)
                .is_some_and(|v| self.matcher.is_match(v))
        };
        found == self.equal
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        let soft = if self.soft { "~" } else { "" };
        write!(f, "{}{op}{soft}{}", self.key, self.value)
    }
}

/// What an affinity points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AffinityTarget {
    /// A container (name or id).
    Container(String),
    /// An image reference (normalized, `busybox` → `busybox:latest`).
    Image(String),
}

/// Place near (`==`) or away from (`!=`) a container or image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    /// The container or image.
    pub target: AffinityTarget,
    /// Near (true) or away (false).
    pub equal: bool,
    /// A preference, not a requirement.
    pub soft: bool,
}

impl Affinity {
    /// Parses `container==web`, `image!=redis`, with `~` for soft.
    pub fn parse(expr: &str) -> Result<Affinity> {
        let (key, equal, soft, value) = split_op(expr)?;
        let target = match key {
            "container" => AffinityTarget::Container(value.trim_start_matches('/').to_string()),
            "image" => AffinityTarget::Image(normalize_image(value)),
            other => {
                return Err(Error::bad_request(format!(
                    "affinity {expr:?}: unknown kind {other:?} (want container or image)"
                )))
            }
        };
        Ok(Affinity {
            target,
            equal,
            soft,
        })
    }
}

/// `busybox` → `busybox:latest`.
pub fn normalize_image(r: &str) -> String {
    let r = r
        .strip_prefix("docker.io/library/")
        .or_else(|| r.strip_prefix("docker.io/"))
        .unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || r.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// The raw constraint and affinity expressions of a container config
/// (env `constraint:…`/`affinity:…` and the swarm labels), unparsed.
pub fn expressions(config: &ContainerConfig) -> Result<(Vec<String>, Vec<String>)> {
    let mut constraints = Vec::new();
    let mut affinities = Vec::new();
    for e in config.env.iter().flatten() {
        if let Some(c) = e.strip_prefix("constraint:") {
            constraints.push(c.to_string());
        } else if let Some(a) = e.strip_prefix("affinity:") {
            affinities.push(a.to_string());
        }
    }
    if let Some(labels) = &config.labels {
        for (label, into_constraints) in [
            ("com.docker.swarm.constraints", true),
            ("com.docker.swarm.affinities", false),
        ] {
            if let Some(raw) = labels.get(label) {
                let list: Vec<String> = serde_json::from_str(raw).map_err(|e| {
                    Error::bad_request(format!("label {label}: want a JSON list of strings: {e}"))
                })?;
                if into_constraints {
                    constraints.extend(list);
                } else {
                    affinities.extend(list);
                }
            }
        }
    }
    Ok((constraints, affinities))
}

/// Constraints and affinities of a container config (env and labels), parsed.
pub fn from_config(config: &ContainerConfig) -> Result<(Vec<Constraint>, Vec<Affinity>)> {
    let (c, a) = expressions(config)?;
    let constraints = c
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<_>>()?;
    let affinities = a
        .iter()
        .map(|a| Affinity::parse(a))
        .collect::<Result<_>>()?;
    Ok((constraints, affinities))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_match_exact_glob_regex_and_negation() {
        let labels: HashMap<String, String> = [("zone".to_string(), "eu-west".to_string())].into();
        assert!(Constraint::parse("zone==eu-west")
            .unwrap()
            .matches("n", &labels));
        assert!(Constraint::parse("zone==eu-*")
            .unwrap()
            .matches("n", &labels));
        assert!(Constraint::parse("zone==/eu-(west|east)/")
            .unwrap()
            .matches("n", &labels));
        assert!(!Constraint::parse("zone!=eu-*")
            .unwrap()
            .matches("n", &labels));
        assert!(Constraint::parse("node==n").unwrap().matches("n", &labels));
        assert!(Constraint::parse("node.labels.zone!=us")
            .unwrap()
            .matches("n", &labels));
        assert!(!Constraint::parse("missing==x")
            .unwrap()
            .matches("n", &labels));
        let soft = Constraint::parse("zone==~eu").unwrap();
        assert!(soft.soft);
        assert_eq!(soft.to_string(), "zone==~eu");
    }

    #[test]
    fn bad_expressions_name_themselves() {
        for bad in ["zone", "==x", "zone==", "zone==/(/"] {
            let e = Constraint::parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::BadRequest);
            assert!(e.message.contains("constraint"), "{}", e.message);
        }
        assert!(Affinity::parse("volume==x")
            .unwrap_err()
            .message
            .contains("volume"));
    }

    #[test]
    fn config_env_and_labels_are_read() {
        let config = ContainerConfig {
            env: Some(vec![
                "A=b".into(),
                "constraint:zone==eu".into(),
                "affinity:image==redis".into(),
            ]),
            labels: Some(
                [(
                    "com.docker.swarm.constraints".to_string(),
                    r#"["disk!=hdd"]"#.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let (c, a) = from_config(&config).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(a[0].target, AffinityTarget::Image("redis:latest".into()));
    }
}
