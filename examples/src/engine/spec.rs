//! The OCI runtime spec of a container: the image's run defaults with
//! `docker create`'s options on top (Docker's defaults for the rest).

use std::path::Path;

use libswarm::models::HostConfig;
use libswarm::ContainerCreateBody;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::seccomp::{self, SeccompError};
use crate::images::ImageRuntimeConfig;

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors in the create options, named by their `docker create` flag.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No command: neither the image nor the request gives one.
    #[error("no command specified")]
    NoCommand,
    /// `-u` names a user that is not in the image's passwd file.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// `--cap-add`/`--cap-drop` names no capability.
    #[error("invalid capability {0:?} (--cap-add/--cap-drop)")]
    BadCapability(String),
    /// A `--tmpfs` or `-w` path that is not absolute.
    #[error("{flag} path {path:?} is not absolute")]
    NotAbsolute {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: String,
    },
    /// A bad `--security-opt seccomp=…` profile.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The assembled spec did not parse (a bug in this module).
    #[error("building the OCI spec: {0}")]
    Build(String),
}

/// What the spec is built from.
pub struct SpecInput<'a> {
    /// The create request.
    pub body: &'a ContainerCreateBody,
    /// The image's run defaults.
    pub image: &'a ImageRuntimeConfig,
    /// The container id (default hostname, cgroup name).
    pub id: &'a str,
    /// The mounted rootfs (for user lookup and `root.path`).
    pub rootfs: &'a Path,
}

/// The process arguments (entrypoint + cmd, with overrides).
pub fn command_line(body: &ContainerCreateBody, image: &ImageRuntimeConfig) -> Vec<String> {
    image.command_line(
        body.config.entrypoint.as_deref(),
        body.config.cmd.as_deref(),
    )
}

/// Builds the spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let cfg = &input.body.config;
    let host = input.body.host_config.clone().unwrap_or_default();
    let args = command_line(input.body, input.image);
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let mut env = input.image.env_with(cfg.env.as_deref().unwrap_or_default());
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let hostname = cfg
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| libswarm::util::short_id(input.id).to_string());
    env.push(format!("HOSTNAME={hostname}"));
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| input.image.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(SpecError::NotAbsolute {
            flag: "-w",
            path: cwd,
        });
    }
    let user = cfg
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| input.image.user.clone())
        .unwrap_or_else(|| "0".into());
    let (uid, gid) = resolve_user(&user, input.rootfs)?;
    let caps = capabilities(&host)?;
    let opts: Vec<&String> = host.security_opt.iter().flatten().collect();
    let no_new_privs = opts
        .iter()
        .any(|o| *o == "no-new-privileges" || *o == "no-new-privileges:true");
    let seccomp_opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
    let seccomp = seccomp::for_container(&seccomp::choice(&seccomp_opts), &caps)?;

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "root": {"path": input.rootfs, "readonly": host.readonly_rootfs.unwrap_or(false)},
        "hostname": hostname,
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": cwd,
            "noNewPrivileges": no_new_privs,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
        },
        "mounts": default_mounts(),
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "network"},
            ],
            "cgroupsPath": format!("/berth/{}", input.id),
            "resources": resources(&host),
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    });
    if let Some(profile) = seccomp {
        spec["linux"]["seccomp"] = profile;
    }
    if let Some(tmpfs) = &host.tmpfs {
        let mounts = spec["mounts"].as_array_mut().ok_or(SpecError::NoCommand)?;
        let mut paths: Vec<_> = tmpfs.iter().collect();
        paths.sort();
        for (path, opts) in paths {
            if !path.starts_with('/') {
                return Err(SpecError::NotAbsolute {
                    flag: "--tmpfs",
                    path: path.clone(),
                });
            }
            let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into()];
            options.extend(opts.split(',').filter(|o| !o.is_empty()).map(String::from));
            mounts.push(json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}));
        }
    }
    serde_json::from_value(spec).map_err(|e| SpecError::Build(e.to_string()))
}

fn default_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ])
}

fn resources(host: &HostConfig) -> Value {
    let mut r = json!({});
    if let Some(mem) = host.memory.filter(|m| *m > 0) {
        r["memory"] = json!({"limit": mem});
    }
    if let Some(nano) = host.nano_cpus.filter(|n| *n > 0) {
        let period: i64 = 100_000;
        r["cpu"] = json!({"quota": nano * period / 1_000_000_000, "period": period});
    }
    if let Some(pids) = host.pids_limit.filter(|p| *p > 0) {
        r["pids"] = json!({"limit": pids});
    }
    r
}

/// Docker's default set with `--cap-add` then `--cap-drop` applied
/// (`ALL` allowed in both).
pub fn capabilities(host: &HostConfig) -> Result<Vec<String>, SpecError> {
    let norm = |c: &String| -> Result<String, SpecError> {
        let up = c.trim().to_ascii_uppercase();
        let name = if up.starts_with("CAP_") || up == "ALL" {
            up
        } else {
            format!("CAP_{up}")
        };
        if name == "ALL" || name.parse::<caps::Capability>().is_ok() {
            Ok(name)
        } else {
            Err(SpecError::BadCapability(c.clone()))
        }
    };
    let mut set: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for c in host.cap_add.iter().flatten() {
        let c = norm(c)?;
        if c == "ALL" {
            set = caps::all().iter().map(|c| c.to_string()).collect();
        } else if !set.contains(&c) {
            set.push(c);
        }
    }
    for c in host.cap_drop.iter().flatten() {
        let c = norm(c)?;
        if c == "ALL" {
            set.clear();
        } else {
            set.retain(|s| *s != c);
        }
    }
    set.sort();
    Ok(set)
}

/// `-u user[:group]`: numbers as they are, names looked up in the
/// rootfs's /etc/passwd and /etc/group (`root` always works).
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32), SpecError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(rootfs.join(file)).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name) && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    };
    let (uid, pw_gid) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_uid_gid(rootfs, n).unwrap_or(0)),
        Err(_) if u == "root" => (0, 0),
        Err(_) => lookup("etc/passwd", u).ok_or_else(|| SpecError::UnknownUser(u.into()))?,
    };
    let gid = match g {
        None => pw_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) if g == "root" => 0,
            Err(_) => lookup_group(rootfs, g).ok_or_else(|| SpecError::UnknownUser(user.into()))?,
        },
    };
    Ok((uid, gid))
}

fn lookup_group(rootfs: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(rootfs.join("etc/group")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

fn lookup_uid_gid(rootfs: &Path, uid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[3].parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libswarm::models::ContainerConfig;

    fn body(cmd: &[&str], host: HostConfig) -> ContainerCreateBody {
        ContainerCreateBody {
            config: ContainerConfig {
                image: Some("busybox".into()),
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                env: Some(vec!["A=1".into()]),
                ..Default::default()
            },
            host_config: Some(host),
            networking_config: None,
        }
    }

    #[test]
    fn spec_takes_image_defaults_and_options() {
        let image = ImageRuntimeConfig {
            env: vec!["A=0".into(), "B=2".into()],
            cmd: vec!["sh".into()],
            working_dir: Some("/tmp".into()),
            ..Default::default()
        };
        let host = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(20),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["net_raw".into()]),
            cap_add: Some(vec!["SYS_ADMIN".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            tmpfs: Some([("/run".to_string(), "size=1m".to_string())].into()),
            ..Default::default()
        };
        let b = body(&["echo", "hi"], host);
        let dir = tempfile::tempdir().unwrap();
        let spec = build(&SpecInput {
            body: &b,
            image: &image,
            id: "0123456789abcdef",
            rootfs: dir.path(),
        })
        .unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["process"]["args"], json!(["echo", "hi"]));
        let env: Vec<String> = serde_json::from_value(v["process"]["env"].clone()).unwrap();
        assert!(env.contains(&"A=1".into()) && env.contains(&"B=2".into()));
        assert!(!env.contains(&"A=0".into()));
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        assert_eq!(v["process"]["cwd"], "/tmp");
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["noNewPrivileges"], true);
        // Docker's default profile: an allowlist; CAP_SYS_ADMIN allows unshare.
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let allowed: Vec<&Value> = v["linux"]["seccomp"]["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap())
            .collect();
        assert!(allowed.contains(&&json!("unshare")));
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 20);
        let caps: Vec<String> =
            serde_json::from_value(v["process"]["capabilities"]["bounding"].clone()).unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".into()));
        assert!(!caps.contains(&"CAP_NET_RAW".into()));
        assert!(caps.contains(&"CAP_CHOWN".into()));
        let run = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/run")
            .unwrap();
        assert_eq!(run["type"], "tmpfs");
    }

    #[test]
    fn bad_options_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let image = ImageRuntimeConfig::default();
        let mk = |b: &ContainerCreateBody| {
            build(&SpecInput {
                body: b,
                image: &image,
                id: "x",
                rootfs: dir.path(),
            })
            .unwrap_err()
            .to_string()
        };
        let host = HostConfig {
            cap_add: Some(vec!["FLY".into()]),
            ..Default::default()
        };
        assert!(mk(&body(&["true"], host)).contains("FLY"));
        assert_eq!(
            mk(&body(&[], HostConfig::default())),
            "no command specified"
        );
        let mut b = body(&["true"], HostConfig::default());
        b.config.user = Some("nobody".into());
        assert!(mk(&b).contains("unable to find user nobody"));
    }

    #[test]
    fn users_resolve_from_passwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "web:x:33:34::/:/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("etc/group"), "staff:x:50:\n").unwrap();
        assert_eq!(resolve_user("web", dir.path()).unwrap(), (33, 34));
        assert_eq!(resolve_user("33", dir.path()).unwrap(), (33, 34));
        assert_eq!(resolve_user("web:staff", dir.path()).unwrap(), (33, 50));
        assert_eq!(resolve_user("1000:7", dir.path()).unwrap(), (1000, 7));
    }
}
