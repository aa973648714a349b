//! A cache of compiled programs, so repeated starts with the same profile
//! skip libseccomp (a three-architecture Docker profile takes milliseconds
//! to compile; reading its BPF back takes microseconds).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::compile::{from_bytes, uses_notify};
use super::{SeccompError, SeccompProgram};

impl SeccompProgram {
    /// [`SeccompProgram::compile`] with a cache in `dir`, keyed by a SHA-256
    /// of the profile, the libseccomp version and the architecture. Put `dir`
    /// under the runtime's root directory (e.g. `/run/berth/seccomp`): a
    /// cached file is trusted only when it is owned by us and not writable by
    /// group or others. Cache trouble is logged and never fails a compile.
    ///
    /// ```
    /// use libcontainer::seccomp::SeccompProgram;
    /// let spec = serde_json::from_str(r#"{"defaultAction": "SCMP_ACT_ALLOW",
    ///     "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}"#)?;
    /// let dir = tempfile::tempdir()?;
    /// let first = SeccompProgram::compile_cached(&spec, dir.path())?;  // compiles, stores
    /// let second = SeccompProgram::compile_cached(&spec, dir.path())?; // reads the BPF back
    /// assert_eq!(first.instructions(), second.instructions());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compile_cached(spec: &LinuxSeccomp, dir: &Path) -> Result<Self, SeccompError> {
        let Some(key) = cache_key(spec) else {
            return Self::compile(spec);
        };
        let path = dir.join(format!("{key}.bpf"));
        match read_trusted(&path) {
            Ok(Some(bytes)) => match from_bytes(&bytes) {
                Ok(filter) if !filter.is_empty() => {
                    return Self::assemble(spec, filter, uses_notify(spec));
                }
                _ => {
                    tracing::warn!(path = %path.display(), "corrupt seccomp cache entry, recompiling")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::debug!(path = %path.display(), "seccomp cache: {e}"),
        }
        let program = Self::compile(spec)?;
        if let Err(e) = store(dir, &key, program.filter()) {
            tracing::debug!(dir = %dir.display(), "seccomp cache not written: {e}");
        }
        Ok(program)
    }
}

fn cache_key(spec: &LinuxSeccomp) -> Option<String> {
    let json = serde_json::to_vec(spec).ok()?;
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"berth-seccomp-cache-v1\0");
    h.update(version.as_bytes());
    h.update(format!("\0{:?}\0", libseccomp::ScmpArch::native()).as_bytes());
    h.update(&json);
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The file's bytes if it exists and only we can have written it.
fn read_trusted(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: geteuid has no failure modes.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other("untrusted entry ignored"));
    }
    std::fs::read(path).map(Some)
}

fn store(dir: &Path, key: &str, filter: &[libc::sock_filter]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut bytes = Vec::with_capacity(filter.len() * 8);
    for i in filter {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.push(i.jt);
        bytes.push(i.jf);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes))
        .and_then(|()| std::fs::rename(&tmp, dir.join(format!("{key}.bpf"))));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hit_gives_the_same_program_and_listener() {
        let s = spec(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let a = SeccompProgram::compile_cached(&s, &cache).unwrap();
        let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let b = SeccompProgram::compile_cached(&s, &cache).unwrap();
        assert_eq!(a.instructions(), b.instructions());
        assert_eq!(a.flags(), b.flags());
        assert_eq!(a.listener(), b.listener());
        let same = a
            .filter()
            .iter()
            .zip(b.filter())
            .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k));
        assert!(same);
    }

    #[test]
    fn different_profiles_get_different_keys() {
        let a = spec(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
        let b = spec(r#"{"defaultAction": "SCMP_ACT_LOG"}"#);
        assert_ne!(cache_key(&a), cache_key(&b));
        assert_eq!(cache_key(&a), cache_key(&a.clone()));
    }

    #[test]
    fn corrupt_or_untrusted_entries_are_recompiled() {
        let s = spec(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let good = SeccompProgram::compile(&s).unwrap().instructions();
        let path = dir.path().join(format!("{}.bpf", cache_key(&s).unwrap()));
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        assert_eq!(
            SeccompProgram::compile_cached(&s, dir.path())
                .unwrap()
                .instructions(),
            good
        );
        // A world-writable entry is not trusted, whatever it holds.
        std::fs::write(&path, [0u8; 8]).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        assert_eq!(
            SeccompProgram::compile_cached(&s, dir.path())
                .unwrap()
                .instructions(),
            good
        );
    }
}
