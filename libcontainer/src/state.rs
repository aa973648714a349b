//! Container state on disk: `<root>/<id>/state.json`, plus the liveness
//! check that tells a dead (or reused) pid from our init.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

/// The state file name inside a container's directory.
pub const STATE_FILE: &str = "state.json";
/// The exec fifo: present while the container is `created`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Errors reading or writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container with this id.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container with this id exists already.
    #[error("container {0} already exists")]
    Exists(String),
    /// Bad id.
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-' and '.', not starting with '.'"
    )]
    BadId(String),
    /// A file operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// state.json is corrupt.
    #[error("{path:?}: {source}")]
    Json {
        /// The path.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// The OCI lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is running.
    Creating,
    /// Created, waiting for `start`.
    Created,
    /// The user process runs.
    Running,
    /// Running, with its cgroup frozen (`pause`).
    Paused,
    /// The process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The state document: the OCI fields plus runc's `rootfs`, `created`, `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciState {
    /// Runtime-spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Host pid of the init (0 once stopped is not reset, like runc).
    pub pid: i32,
    /// Status.
    pub status: Status,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner (empty for root, like runc).
    pub owner: String,
    /// Annotations from config.json.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What we keep in state.json: the OCI state and what later commands need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredState {
    /// The OCI state (status as last written).
    #[serde(flatten)]
    pub oci: OciState,
    /// Start time of the init (field 22 of /proc/PID/stat), to tell a reused pid.
    #[serde(rename = "berthStartTime")]
    pub start_time: u64,
    /// Hooks run by later commands.
    #[serde(rename = "berthHooks", default)]
    pub hooks: StoredHooks,
    /// Data other modules keep per container (e.g. the cgroup they made).
    #[serde(
        rename = "berthExtensions",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// Hooks that run after `create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredHooks {
    /// poststart, run by `start`.
    #[serde(default)]
    pub poststart: Vec<Hook>,
    /// poststop, run by `delete`.
    #[serde(default)]
    pub poststop: Vec<Hook>,
}

/// Check a container id (runc's rule).
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_string()))
    }
}

/// Create `<root>/<id>` (and root) with mode 0700; fails if it exists.
pub fn create_dir(root: &Path, id: &str) -> Result<PathBuf, StateError> {
    validate_id(id)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(|source| StateError::Io {
            op: "create",
            path: root.into(),
            source,
        })?;
    let dir = root.join(id);
    match take_spare(root, &dir) {
        Some(Ok(())) => return Ok(dir),
        Some(Err(e)) if e.raw_os_error() == Some(libc::EEXIST) => {
            return Err(StateError::Exists(id.into()))
        }
        _ => {}
    }
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(StateError::Exists(id.into()))
        }
        Err(source) => Err(StateError::Io {
            op: "create",
            path: dir,
            source,
        }),
    }
}

/// Emptied state directories kept under the root for the next `create`:
/// on a root that is not a tmpfs, `mkdir` gives a directory a disk block
/// and `rmdir` frees it, which is a synchronous discard (milliseconds) on a
/// disk mounted with `discard`. Not a valid id, so `list` skips it.
const SPARE_DIR: &str = ".spare";
/// At most this many are kept.
const SPARE_MAX: usize = 8;

/// renameat2(2) on two paths.
fn rename2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: two valid C string paths relative to the cwd.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Move a spare directory to `dir`: `None` when there is none to take,
/// an EEXIST error when `dir` exists.
fn take_spare(root: &Path, dir: &Path) -> Option<std::io::Result<()>> {
    for entry in fs::read_dir(root.join(SPARE_DIR)).ok()? {
        let Ok(entry) = entry else { continue };
        match rename2(&entry.path(), dir, libc::RENAME_NOREPLACE) {
            Ok(()) => return Some(Ok(())),
            // Another create took it first.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Remove a container's state directory: its content, then the directory
/// itself goes to the spare pool (or is removed when the pool is full).
pub fn remove_dir(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    if let Some(root) = dir.parent() {
        let spare = root.join(SPARE_DIR);
        let kept = fs::read_dir(&spare).map_or(0, Iterator::count);
        if kept < SPARE_MAX {
            if kept == 0 {
                let _ = fs::DirBuilder::new().mode(0o700).create(&spare);
            }
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let name = format!("{}-{nanos}", std::process::id());
            if rename2(dir, &spare.join(name), libc::RENAME_NOREPLACE).is_ok() {
                return Ok(());
            }
        }
    }
    fs::remove_dir(dir)
}

impl StoredState {
    /// Read `<dir>/state.json`.
    pub fn read(dir: &Path, id: &str) -> Result<Self, StateError> {
        let path = dir.join(STATE_FILE);
        let bytes = fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound(id.into())
            } else {
                StateError::Io {
                    op: "read",
                    path: path.clone(),
                    source,
                }
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Json { path, source })
    }

    /// Write `<dir>/state.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(".state.json.tmp");
        let io = |op, p: &Path| {
            let p = p.to_path_buf();
            move |source| StateError::Io {
                op,
                path: p,
                source,
            }
        };
        let bytes = serde_json::to_vec(self).map_err(|source| StateError::Json {
            path: path.clone(),
            source,
        })?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("write", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        drop(f);
        replace_file(&tmp, &path).map_err(io("rename", &path))
    }

    /// The status now: a dead or reused pid is `stopped`; a live init with
    /// an exec fifo is `created`.
    pub fn refresh(&mut self, dir: &Path) -> Status {
        let alive = self.oci.pid > 0 && process_start_time(self.oci.pid) == Some(self.start_time);
        self.oci.status = match (alive, self.oci.status) {
            (false, _) => Status::Stopped,
            (true, Status::Creating) => Status::Creating,
            (true, _) if dir.join(EXEC_FIFO).exists() => Status::Created,
            (true, _) => Status::Running,
        };
        self.oci.status
    }
}

/// Put `tmp` in the place of `path` atomically. An existing `path` is
/// exchanged with `tmp` (RENAME_EXCHANGE), then the old content unlinked:
/// a plain rename over an existing file makes ext4 allocate the new file's
/// blocks at once (auto_da_alloc), so removing the state directory a few
/// milliseconds later frees them, which is a synchronous discard on a disk
/// mounted with `discard`. Falls back to rename where exchange is missing.
fn replace_file(tmp: &Path, path: &Path) -> std::io::Result<()> {
    match rename2(tmp, path, libc::RENAME_EXCHANGE) {
        Ok(()) => fs::remove_file(tmp),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS)
            ) =>
        {
            fs::rename(tmp, path)
        }
        Err(e) => Err(e),
    }
}

/// Start time of a live (not zombie) process, from /proc/PID/stat.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // Field 22 overall; `rest` starts at field 3.
    fields.nth(18)?.parse().ok()
}

/// Now as RFC 3339 UTC with nanoseconds (like runc's `created`).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for ok in ["a", "web-1", "x_y.z"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", ".hidden"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn removed_state_dirs_are_reused() {
        let root = tempfile::tempdir().unwrap();
        let spare = |n| fs::read_dir(root.path().join(SPARE_DIR)).map_or(0, |d| d.count()) == n;
        let a = create_dir(root.path(), "a").unwrap();
        fs::write(a.join(STATE_FILE), "{}").unwrap();
        fs::create_dir(a.join("sub")).unwrap();
        remove_dir(&a).unwrap();
        assert!(!a.exists());
        assert!(spare(1));
        // The next create takes it, empty, with its mode.
        let b = create_dir(root.path(), "b").unwrap();
        assert!(spare(0));
        assert_eq!(fs::read_dir(&b).unwrap().count(), 0);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&b).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
        // An existing id is refused, and the spare stays.
        remove_dir(&create_dir(root.path(), "c").unwrap()).unwrap();
        assert!(matches!(
            create_dir(root.path(), "b"),
            Err(StateError::Exists(_))
        ));
        assert!(spare(1));
        // The pool is bounded: beyond it, directories are removed.
        for i in 0..SPARE_MAX + 2 {
            remove_dir(&create_dir(root.path(), &format!("x{i}")).unwrap()).unwrap();
            let d = create_dir(root.path(), &format!("y{i}")).unwrap();
            let e = create_dir(root.path(), &format!("z{i}")).unwrap();
            remove_dir(&d).unwrap();
            remove_dir(&e).unwrap();
        }
        assert!(fs::read_dir(root.path().join(SPARE_DIR)).unwrap().count() <= SPARE_MAX);
        let mut ids: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, [SPARE_DIR, "b"]);
    }

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn start_time_of_self_and_of_nothing() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert_eq!(process_start_time(i32::MAX), None);
    }

    #[test]
    fn state_round_trips_and_dead_pid_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let d = create_dir(dir.path(), "c1").unwrap();
        assert!(matches!(
            create_dir(dir.path(), "c1"),
            Err(StateError::Exists(_))
        ));
        let me = std::process::id() as i32;
        let s = StoredState {
            oci: OciState {
                oci_version: "1.2.0".into(),
                id: "c1".into(),
                pid: me,
                status: Status::Created,
                bundle: "/b".into(),
                rootfs: "/b/rootfs".into(),
                created: now_rfc3339(),
                owner: String::new(),
                annotations: BTreeMap::new(),
            },
            start_time: process_start_time(me).unwrap(),
            hooks: StoredHooks::default(),
            extensions: BTreeMap::new(),
        };
        s.write(&d).unwrap();
        let mut back = StoredState::read(&d, "c1").unwrap();
        assert_eq!(back.refresh(&d), Status::Running, "alive, no fifo");
        fs::write(d.join(EXEC_FIFO), "").unwrap();
        assert_eq!(back.refresh(&d), Status::Created);
        back.start_time += 1;
        assert_eq!(
            back.refresh(&d),
            Status::Stopped,
            "a reused pid is not our init"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(d.join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(json["status"], "created");
        assert_eq!(json["ociVersion"], "1.2.0");
        // A second write replaces the first (by exchange) and leaves no
        // temporary file behind.
        let mut s2 = s;
        s2.oci.status = Status::Stopped;
        s2.write(&d).unwrap();
        let again = StoredState::read(&d, "c1").unwrap();
        assert_eq!(again.oci.status, Status::Stopped);
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!names.iter().any(|n| n == ".state.json.tmp"), "{names:?}");
        assert!(matches!(
            StoredState::read(&dir.path().join("nope"), "nope"),
            Err(StateError::NotFound(_))
        ));
    }
}
