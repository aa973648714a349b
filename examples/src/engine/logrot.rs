//! json-file log rotation, as Docker's json-file driver does it:
//! `--log-opt max-size=10m --log-opt max-file=3` keeps at most three
//! files (`container.log`, `.1`, `.2`, the oldest dropped) of at most
//! 10 MiB each (a file is rotated before a line would take it past the
//! size, so only a single longer line exceeds it).
//!
//! - [`merge_and_verify`]: a container's `HostConfig.LogConfig` merged with
//!   the daemon's `--log-opt` defaults and checked at `docker create`, with
//!   Docker's errors naming the option;
//! - [`RotatingLog`]: the shim's writer;
//! - [`open_set`]: the files in order for `docker logs`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libswarm::models::HostConfigLogConfig;

/// The one log driver berthd has (and the default).
pub const JSON_FILE: &str = "json-file";

/// Log drivers Docker registers that berthd does not implement.
const OTHER_DOCKER_DRIVERS: &[&str] = &[
    "none",
    "local",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// Errors in a log configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogConfigError {
    /// A driver Docker does not know either.
    #[error("logger: no log driver named '{0}' is registered")]
    UnknownDriver(String),
    /// A Docker driver berthd does not implement.
    #[error("log driver '{0}' is not supported by berthd (only json-file is)")]
    Unsupported(String),
    /// An option json-file does not have.
    #[error("unknown log opt '{0}' for json-file log driver")]
    UnknownOpt(String),
    /// An option with a bad value.
    #[error("invalid log opt '{opt}' for json-file log driver: {why}")]
    Invalid {
        /// The option.
        opt: String,
        /// Why.
        why: String,
    },
    /// A daemon `--log-opt` not of the form `key=value`.
    #[error("invalid --log-opt '{0}': want key=value")]
    NotKeyValue(String),
}

fn invalid(opt: &str, why: impl Into<String>) -> LogConfigError {
    LogConfigError::Invalid {
        opt: opt.to_string(),
        why: why.into(),
    }
}

/// How the json-file log rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Rotate before a file would pass this size (`None`: never).
    pub max_size: Option<u64>,
    /// Files kept, the live one included (at least 1).
    pub max_file: u32,
}

impl Rotation {
    /// No rotation: one file that grows.
    pub const NONE: Rotation = Rotation {
        max_size: None,
        max_file: 1,
    };

    /// The rotation of json-file options (checked: Docker's errors).
    pub fn from_opts(opts: &HashMap<String, String>) -> Result<Rotation, LogConfigError> {
        let mut r = Rotation::NONE;
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => {
                    let size = parse_size(v).map_err(|why| invalid(k, why))?;
                    if size <= 0 {
                        return Err(invalid(k, "max-size must be a positive number"));
                    }
                    r.max_size = Some(size as u64);
                }
                "max-file" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| invalid(k, format!("'{v}' is not a number")))?;
                    if n < 1 {
                        return Err(invalid(k, "max-file cannot be less than 1"));
                    }
                    r.max_file = u32::try_from(n).map_err(|_| invalid(k, "too many files"))?;
                }
                "compress" => match v.as_str() {
                    "false" | "0" => {}
                    "true" | "1" => {
                        return Err(invalid(k, "compression is not supported by berthd"));
                    }
                    _ => return Err(invalid(k, format!("'{v}' is not a boolean"))),
                },
                "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {
                    return Err(invalid(k, "not supported by berthd yet"));
                }
                _ => return Err(LogConfigError::UnknownOpt(k.clone())),
            }
        }
        Ok(r)
    }

    /// The rotation of a stored (already checked) log configuration;
    /// none when it is missing or somehow bad.
    pub fn of(config: Option<&HostConfigLogConfig>) -> Rotation {
        config
            .and_then(|c| c.config.as_ref())
            .and_then(|o| Rotation::from_opts(o).ok())
            .unwrap_or(Rotation::NONE)
    }
}

/// Docker's `units.RAMInBytes`: `10m`, `512k`, `1.5g`, `100` (bytes),
/// binary multiples, an optional `i` and `b`, any case.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim_end_matches(['b', 'B']);
    let t = t.trim_end_matches(['i', 'I']);
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c.to_ascii_lowercase())),
        _ => (t, None),
    };
    // Docker allows one space between the number and the unit.
    let num = num.strip_suffix(' ').unwrap_or(num);
    if num.is_empty()
        || !num.chars().all(|c| c.is_ascii_digit() || c == '.')
        || num.starts_with('.')
    {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let shift = match unit {
        None => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        Some(_) => return Err(bad()),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// The daemon's `--log-opt key=value` flags as options (checked).
pub fn daemon_opts(flags: &[String]) -> Result<HashMap<String, String>, LogConfigError> {
    let mut opts = HashMap::new();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| LogConfigError::NotKeyValue(f.clone()))?;
        opts.insert(k.to_string(), v.to_string());
    }
    Rotation::from_opts(&opts)?;
    Ok(opts)
}

/// A container's log configuration as dockerd stores it: the driver
/// defaults to json-file, the daemon's options fill in what the container
/// did not set, and the result is checked.
pub fn merge_and_verify(
    config: Option<HostConfigLogConfig>,
    defaults: &HashMap<String, String>,
) -> Result<HostConfigLogConfig, LogConfigError> {
    let config = config.unwrap_or_default();
    let driver = config.typ.filter(|t| !t.is_empty());
    match driver.as_deref() {
        None | Some(JSON_FILE) => {}
        Some(d) if OTHER_DOCKER_DRIVERS.contains(&d) => {
            return Err(LogConfigError::Unsupported(d.to_string()))
        }
        Some(d) => return Err(LogConfigError::UnknownDriver(d.to_string())),
    }
    let mut opts = config.config.unwrap_or_default();
    for (k, v) in defaults {
        opts.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Rotation::from_opts(&opts)?;
    Ok(HostConfigLogConfig {
        typ: Some(JSON_FILE.to_string()),
        config: Some(opts),
    })
}

/// `docker create`: stores the container's merged and checked log
/// configuration in its `HostConfig` (what `docker inspect` shows and the
/// shim rotates by); a bad one is the client's error.
pub fn settle(
    body: &mut libswarm::ContainerCreateBody,
    defaults: &HashMap<String, String>,
) -> libswarm::Result<()> {
    let host = body.host_config.get_or_insert_with(Default::default);
    let config = merge_and_verify(host.log_config.take(), defaults)
        .map_err(|e| libswarm::Error::bad_request(e.to_string()))?;
    host.log_config = Some(config);
    Ok(())
}

/// `path.k`: the k-th rotated file (1 the newest).
pub fn rotated(path: &Path, k: u32) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

/// The log's files that exist, oldest first: `path.N` … `path.1`, `path`.
/// Found by listing the directory, so the name a rotation is moving (a
/// gap in the numbers for an instant) leaves no file out: the order of
/// the contents stays the order of the numbers.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", base.to_string_lossy());
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name();
            let k: u32 = name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((k, e.path()))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// The shim's json-file writer: whole lines, rotated by [`Rotation`].
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    len: u64,
    rotation: Rotation,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl RotatingLog {
    /// Opens (appends to) the live file at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<RotatingLog> {
        let file = open_append(path)?;
        let len = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            len,
            rotation,
        })
    }

    /// The live file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Nothing in the live file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes one line (with its newline), rotating first when it would
    /// take a non-empty file past `max-size`.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(max) = self.rotation.max_size {
            if self.len > 0 && self.len + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(line)?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// `path` → `path.1` → … → `path.(max-file - 1)`, the oldest dropped;
    /// with `max-file=1` the file is emptied instead.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.max_file;
        if keep <= 1 {
            self.file.set_len(0)?;
            self.len = 0;
            return Ok(());
        }
        ignore_missing(std::fs::remove_file(rotated(&self.path, keep - 1)))?;
        for k in (1..keep - 1).rev() {
            ignore_missing(std::fs::rename(
                rotated(&self.path, k),
                rotated(&self.path, k + 1),
            ))?;
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.len = 0;
        tracing::debug!(path = %self.path.display(), "rotated the container log");
        Ok(())
    }
}

fn ignore_missing(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// One file of a log, open (a rotation cannot move it from under a read).
pub struct LogFile {
    /// The open file.
    pub file: File,
    /// Its inode: how a follower finds it again after rotations.
    pub ino: u64,
}

/// The inode now at `path`, if any.
pub fn ino_at(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Opens the log's files, oldest first; opened again when a rotation
/// moved them meanwhile (each name is checked to still be its file).
pub fn open_set(path: &Path) -> std::io::Result<Vec<LogFile>> {
    let mut last = Vec::new();
    for _ in 0..8 {
        let names = files(path);
        let mut set = Vec::with_capacity(names.len());
        let mut moved = false;
        for n in &names {
            match File::open(n) {
                Ok(file) => {
                    let ino = file.metadata()?.ino();
                    set.push(LogFile { file, ino });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    moved = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let stable = !moved
            && names
                .iter()
                .zip(&set)
                .all(|(n, f)| ino_at(n) == Some(f.ino));
        if stable {
            return Ok(set);
        }
        last = set;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sizes_parse_like_docker_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("10k"), Ok(10 * 1024));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("2 KiB"), Ok(2048));
        for bad in ["", "abc", "10x", "-1", "m", ".5k", "1e9"] {
            assert_eq!(
                parse_size(bad),
                Err(format!("invalid size: '{bad}'")),
                "{bad}"
            );
        }
    }

    #[test]
    fn options_are_checked_with_errors_naming_them() {
        let r = Rotation::from_opts(&opts(&[("max-size", "1k"), ("max-file", "3")])).unwrap();
        assert_eq!(
            r,
            Rotation {
                max_size: Some(1024),
                max_file: 3
            }
        );
        let e = Rotation::from_opts(&opts(&[("max-size", "ten")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid log opt 'max-size' for json-file log driver: invalid size: 'ten'"
        );
        let e = Rotation::from_opts(&opts(&[("max-size", "0")])).unwrap_err();
        assert!(e.to_string().contains("max-size must be a positive number"));
        let e = Rotation::from_opts(&opts(&[("max-file", "0")])).unwrap_err();
        assert!(e.to_string().contains("max-file cannot be less than 1"));
        let e = Rotation::from_opts(&opts(&[("max-file", "x")])).unwrap_err();
        assert!(e.to_string().contains("'max-file'"));
        let e = Rotation::from_opts(&opts(&[("max-sise", "1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown log opt 'max-sise' for json-file log driver"
        );
    }

    #[test]
    fn configs_merge_daemon_defaults_and_check_the_driver() {
        let defaults = daemon_opts(&["max-size=10m".into(), "max-file=2".into()]).unwrap();
        let c = merge_and_verify(None, &defaults).unwrap();
        assert_eq!(c.typ.as_deref(), Some("json-file"));
        assert_eq!(Rotation::of(Some(&c)).max_size, Some(10 << 20));
        let mine = HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(opts(&[("max-size", "1k")])),
        };
        let c = merge_and_verify(Some(mine), &defaults).unwrap();
        assert_eq!(
            Rotation::of(Some(&c)),
            Rotation {
                max_size: Some(1024),
                max_file: 2
            }
        );
        let other = |t: &str| HostConfigLogConfig {
            typ: Some(t.into()),
            config: None,
        };
        assert_eq!(
            merge_and_verify(Some(other("nope")), &defaults)
                .unwrap_err()
                .to_string(),
            "logger: no log driver named 'nope' is registered"
        );
        assert!(matches!(
            merge_and_verify(Some(other("syslog")), &defaults),
            Err(LogConfigError::Unsupported(_))
        ));
        assert!(daemon_opts(&["max-size".into()]).is_err());
        assert!(daemon_opts(&["max-size=huge".into()]).is_err());
    }

    #[test]
    fn the_writer_rotates_keeping_max_file_files_of_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let rot = Rotation {
            max_size: Some(100),
            max_file: 3,
        };
        let mut log = RotatingLog::open(&path, rot).unwrap();
        for i in 0..100 {
            log.write_line(format!("line {i:04}\n").as_bytes()).unwrap();
        }
        let names = files(&path);
        assert_eq!(names.len(), 3);
        assert!(!rotated(&path, 3).exists());
        let mut all = String::new();
        for n in &names {
            let s = std::fs::read_to_string(n).unwrap();
            assert!(s.len() <= 100, "{} is {} bytes", n.display(), s.len());
            all.push_str(&s);
        }
        // The newest lines, in order, without a gap.
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.last(), Some(&"line 0099"));
        let first: usize = lines[0][5..].parse().unwrap();
        let want: Vec<String> = (first..100).map(|i| format!("line {i:04}")).collect();
        assert_eq!(lines, want);
        let set = open_set(&path).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set[2].ino, ino_at(&path).unwrap());

        // max-file=1 empties the one file instead.
        let one = dir.path().join("one.log");
        let mut log = RotatingLog::open(
            &one,
            Rotation {
                max_size: Some(20),
                max_file: 1,
            },
        )
        .unwrap();
        for i in 0..10 {
            log.write_line(format!("line {i:04}\n").as_bytes()).unwrap();
        }
        assert_eq!(files(&one), vec![one.clone()]);

        // A rotation caught between two renames: .1 is missing for an
        // instant; the others are still in order.
        let gap = dir.path().join("gap.log");
        for name in [
            "gap.log",
            "gap.log.2",
            "gap.log.3",
            "gap.log.10",
            "gap.log.x",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<String> = files(&gap)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["gap.log.10", "gap.log.3", "gap.log.2", "gap.log"]);
        assert_eq!(
            std::fs::read_to_string(&one).unwrap(),
            "line 0008\nline 0009\n"
        );
    }
}
