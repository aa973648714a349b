//! Container links (`docker run --link NAME[:ALIAS]`). On the default
//! bridge (legacy links): the linked container's address in /etc/hosts
//! under the alias, its hostname and its name, and the environment
//! variables Docker sets for it (`ALIAS_PORT_80_TCP=tcp://172.17.0.2:80`,
//! `ALIAS_NAME`, `ALIAS_ENV_*`). On a user-defined network the alias is a
//! name in the container's own resolver instead (see `resolver_links` in
//! the parent module).

use std::collections::HashMap;
use std::net::IpAddr;

use libswarm::models::HostConfig;
use libswarm::{Error, Result};
use oci_spec::runtime::Spec;

use crate::engine::record::{Record, Status};

/// A container to link to, as the backend knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// Its id.
    pub id: String,
    /// Its name (no slash).
    pub name: String,
    /// The name the linking container uses for it.
    pub alias: String,
    /// Its hostname.
    pub hostname: String,
    /// Whether it runs (Docker links only to running containers).
    pub running: bool,
    /// Its exposed ports (`80/tcp`), image ones included.
    pub exposed: Vec<String>,
    /// Its environment as configured (image and `-e`), `NAME=value`.
    pub env: Vec<String>,
}

/// `NAME[:ALIAS]`, or `/NAME:/PARENT/ALIAS` as inspect shows links (and
/// so as a client may send them back).
pub fn parse(link: &str) -> Result<(String, String)> {
    let bad = || Error::bad_request(format!("bad format for links: {link}"));
    let mut parts = link.split(':');
    let name = parts.next().unwrap_or("").trim_start_matches('/');
    let alias = match parts.next() {
        Some(a) => a.rsplit('/').next().unwrap_or(a),
        None => name,
    };
    if name.is_empty() || alias.is_empty() || parts.next().is_some() {
        return Err(bad());
    }
    Ok((name.to_string(), alias.to_string()))
}

/// The `--link` targets of a container being created, looked up among
/// `records` with `resolve` (name, id or id prefix to id).
pub fn targets(
    records: &HashMap<String, Record>,
    host: &HostConfig,
    resolve: impl Fn(&HashMap<String, Record>, &str) -> Result<String>,
) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for link in host.links.iter().flatten() {
        let (name, alias) = parse(link)?;
        // 400, not 404: the docker CLI answers a 404 by pulling the image.
        let id = resolve(records, &name).map_err(|e| {
            Error::bad_request(format!("could not get container for {name}: {}", e.message))
        })?;
        let r = records
            .get(&id)
            .ok_or_else(|| Error::bad_request(format!("could not get container for {name}")))?;
        out.push(Target {
            id: id.clone(),
            name: r.name.clone(),
            alias,
            hostname: r
                .body
                .config
                .hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| libswarm::util::short_id(&id).to_string()),
            running: r.status == Status::Running,
            exposed: {
                let mut p: Vec<String> = r
                    .body
                    .config
                    .exposed_ports
                    .iter()
                    .flat_map(|m| m.keys().cloned())
                    .collect();
                p.sort();
                p
            },
            env: configured_env(r),
        });
    }
    Ok(out)
}

/// The target's environment as its spec has it, less what Docker does
/// not pass on (PATH, HOME) or adds only at start (HOSTNAME).
fn configured_env(r: &Record) -> Vec<String> {
    let spec = std::fs::read(r.dir.join("config.json"))
        .ok()
        .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok());
    let env: Vec<String> = spec
        .and_then(|v| serde_json::from_value(v["process"]["env"].clone()).ok())
        .unwrap_or_default();
    env.into_iter()
        .filter(|e| {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            !matches!(key, "PATH" | "HOME" | "HOSTNAME")
        })
        .collect()
}

/// The /etc/hosts entry for a target at `ip`: alias, hostname and (when
/// it differs from the alias) name, on one line as Docker writes it.
pub fn hosts_entry(t: &Target, ip: IpAddr) -> (String, IpAddr) {
    (hosts_names(t), ip)
}

/// The names of the target's /etc/hosts line.
pub fn hosts_names(t: &Target) -> String {
    let mut names = format!("{} {}", t.alias, t.hostname);
    if t.alias != t.name {
        names.push(' ');
        names.push_str(&t.name);
    }
    names
}

/// `vars` added to the process environment of the spec in `bundle`
/// (`config.json`, replaced through a temp file): the variables of a link
/// whose target was not running at create are known only at start.
pub fn add_env_to_bundle(bundle: &std::path::Path, vars: &[String]) -> std::io::Result<()> {
    if vars.is_empty() {
        return Ok(());
    }
    let path = bundle.join("config.json");
    let spec: Spec = serde_json::from_slice(&std::fs::read(&path)?)?;
    let json = serde_json::to_vec(&add_env(spec, vars))?;
    let tmp = bundle.join(".config.json.links");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &path)
}

/// The variables Docker sets in a container `parent` for a link to `t`
/// at `ip` (Docker's `links.Link.ToEnv`).
pub fn env_vars(parent: &str, t: &Target, ip: IpAddr) -> Vec<String> {
    let prefix = t.alias.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, &str)> = t
        .exposed
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((n.parse().ok()?, proto))
        })
        .collect();
    // By number, tcp first among equal numbers; the first is the default.
    ports.sort_by_key(|&(n, proto)| (n, proto != "tcp", proto));
    let mut env = Vec::new();
    if let Some((n, proto)) = ports.first() {
        env.push(format!("{prefix}_PORT={proto}://{ip}:{n}"));
    }
    // Runs of at least three consecutive entries also get _START/_END
    // variables, keyed by the run's first port.
    let mut i = 0;
    while i < ports.len() {
        let j = run_end(&ports, i);
        if j > i + 1 {
            let ((n, proto), (m, last)) = (ports[i], ports[j]);
            let key = format!("{prefix}_PORT_{n}_{}", proto.to_uppercase());
            env.push(format!("{key}_START={proto}://{ip}:{n}"));
            env.push(format!("{key}_ADDR={ip}"));
            env.push(format!("{key}_PROTO={proto}"));
            env.push(format!("{key}_PORT_START={n}"));
            let end = format!("{prefix}_PORT_{n}_{}", last.to_uppercase());
            env.push(format!("{end}_END={last}://{ip}:{m}"));
            env.push(format!("{end}_PORT_END={m}"));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (n, proto) in &ports {
        let key = format!("{prefix}_PORT_{n}_{}", proto.to_uppercase());
        env.push(format!("{key}={proto}://{ip}:{n}"));
        env.push(format!("{key}_ADDR={ip}"));
        env.push(format!("{key}_PORT={n}"));
        env.push(format!("{key}_PROTO={proto}"));
    }
    env.push(format!("{prefix}_NAME=/{parent}/{}", t.alias));
    for e in &t.env {
        if let Some((k, v)) = e.split_once('=') {
            env.push(format!("{prefix}_ENV_{k}={v}"));
        }
    }
    env
}

/// The index of the last entry of the run starting at `i`, where each
/// entry's number is at most one more than the run's count so far (Docker
/// counts entries, not distinct numbers, so 80/tcp and 80/udp extend a run).
fn run_end(ports: &[(u16, &str)], i: usize) -> usize {
    let start = u32::from(ports[i].0);
    (ports.iter().enumerate().skip(i + 1))
        .find(|(k, (n, _))| u32::from(*n) > start + (k - i) as u32)
        .map_or(ports.len() - 1, |(k, _)| k - 1)
}

/// `vars` added to the spec's process environment; the container's own
/// variables win (as in Docker, where its Config.Env replaces them).
pub fn add_env(mut spec: Spec, vars: &[String]) -> Spec {
    if vars.is_empty() {
        return spec;
    }
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
        let set: std::collections::HashSet<String> = env.iter().map(|e| key(e)).collect();
        env.extend(vars.iter().filter(|v| !set.contains(&key(v))).cloned());
        p.set_env(Some(env));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            id: "f".repeat(64),
            name: "db".into(),
            alias: "web-db".into(),
            hostname: "ffffffffffff".into(),
            running: true,
            exposed: vec!["5432/tcp".into(), "53/udp".into()],
            env: vec!["POSTGRES_USER=app".into(), "EMPTY=".into()],
        }
    }

    #[test]
    fn links_parse_like_docker() {
        assert_eq!(parse("db:alias").unwrap(), ("db".into(), "alias".into()));
        assert_eq!(parse("/db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(
            parse("/db:/web/alias").unwrap(),
            ("db".into(), "alias".into())
        );
        assert_eq!(
            parse("a:b:c").unwrap_err().to_string(),
            "bad format for links: a:b:c"
        );
        for bad in ["", ":x", "db:", "db:/web/"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_vars_and_hosts_entry_follow_docker() {
        let ip: IpAddr = "172.17.0.5".parse().unwrap();
        let env = env_vars("web", &target(), ip);
        assert_eq!(
            env,
            [
                "WEB_DB_PORT=udp://172.17.0.5:53",
                "WEB_DB_PORT_53_UDP=udp://172.17.0.5:53",
                "WEB_DB_PORT_53_UDP_ADDR=172.17.0.5",
                "WEB_DB_PORT_53_UDP_PORT=53",
                "WEB_DB_PORT_53_UDP_PROTO=udp",
                "WEB_DB_PORT_5432_TCP=tcp://172.17.0.5:5432",
                "WEB_DB_PORT_5432_TCP_ADDR=172.17.0.5",
                "WEB_DB_PORT_5432_TCP_PORT=5432",
                "WEB_DB_PORT_5432_TCP_PROTO=tcp",
                "WEB_DB_NAME=/web/web-db",
                "WEB_DB_ENV_POSTGRES_USER=app",
                "WEB_DB_ENV_EMPTY=",
            ]
        );
        let ranged = Target {
            alias: "r".into(),
            exposed: ["7000/tcp", "7001/tcp", "7002/tcp", "9000/udp"]
                .map(String::from)
                .to_vec(),
            env: vec![],
            ..target()
        };
        let env = env_vars("web", &ranged, ip);
        for want in [
            "R_PORT=tcp://172.17.0.5:7000",
            "R_PORT_7000_TCP_START=tcp://172.17.0.5:7000",
            "R_PORT_7000_TCP_PORT_START=7000",
            "R_PORT_7000_TCP_END=tcp://172.17.0.5:7002",
            "R_PORT_7000_TCP_PORT_END=7002",
            "R_PORT_7001_TCP_PORT=7001",
            "R_PORT_9000_UDP_PROTO=udp",
        ] {
            assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
        }
        assert!(!env.iter().any(|e| e.starts_with("R_PORT_9000_UDP_START")));
        assert_eq!(
            hosts_entry(&target(), ip),
            ("web-db ffffffffffff db".to_string(), ip)
        );
        let same = Target {
            alias: "db".into(),
            ..target()
        };
        assert_eq!(hosts_entry(&same, ip).0, "db ffffffffffff");
    }

    #[test]
    fn the_containers_own_variables_win() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/bin", "DB_NAME=mine"]}
        }))
        .unwrap();
        let spec = add_env(
            spec,
            &["DB_NAME=/web/db".into(), "DB_PORT=tcp://x:1".into()],
        );
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, ["PATH=/bin", "DB_NAME=mine", "DB_PORT=tcp://x:1"]);
    }
}
