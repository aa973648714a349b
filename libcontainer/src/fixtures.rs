//! Test fixtures shared by tests, examples and benchmarks: a minimal rootfs
//! made from Debian's `busybox-static` and an OCI bundle around it.
//!
//! ```no_run
//! use libcontainer::fixtures::BusyboxBundle;
//! let dir = std::env::temp_dir().join("bundle-example");
//! let bundle = BusyboxBundle::new(&dir).args(["/bin/echo", "hi"]).write()?;
//! assert!(bundle.config_path().exists());
//! # Ok::<(), libcontainer::fixtures::FixtureError>(())
//! ```

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::Spec;

/// Where Debian's busybox packages install the binary.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Errors from building a fixture.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// No statically linked busybox was found on this machine.
    #[error("no statically linked busybox found (tried {0}); install Debian's busybox-static")]
    NoBusybox(String),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing or reading config.json failed.
    #[error("config.json at {path}: {source}")]
    Spec {
        /// The config.json path.
        path: PathBuf,
        /// The underlying error.
        source: oci_spec::OciSpecError,
    },
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> FixtureError + 'a {
    move |source| FixtureError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The path of a statically linked busybox, if this machine has one.
pub fn static_busybox() -> Result<PathBuf, FixtureError> {
    BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| is_static_elf(p).unwrap_or(false))
        .ok_or_else(|| FixtureError::NoBusybox(BUSYBOX_CANDIDATES.join(", ")))
}

/// True when `path` is a 64-bit ELF without a program interpreter (static).
fn is_static_elf(path: &Path) -> std::io::Result<bool> {
    const PT_INTERP: u32 = 3;
    let mut head = Vec::with_capacity(4096);
    fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 {
        return Ok(false);
    }
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap_or([0; 8]));
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38));
    for i in 0..phnum as usize {
        let off = phoff + i * phentsize;
        let Some(bytes) = head.get(off..off + 4) else {
            return Ok(false);
        };
        if u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Builds a rootfs holding busybox and its applets, and a config.json.
#[derive(Debug, Clone)]
pub struct BusyboxBundle {
    dir: PathBuf,
    args: Vec<String>,
    spec: Option<Spec>,
}

impl BusyboxBundle {
    /// A bundle to be written into `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            args: vec!["/bin/sh".into()],
            spec: None,
        }
    }

    /// The container's command line (default `/bin/sh`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Use this spec instead of [`default_spec`]; `root.path` and the
    /// process args are still set by the bundle.
    pub fn spec(mut self, spec: Spec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Write the rootfs and config.json.
    pub fn write(self) -> Result<Bundle, FixtureError> {
        let rootfs = self.dir.join("rootfs");
        write_rootfs(&rootfs)?;
        let mut spec = self.spec.unwrap_or_else(default_spec);
        if let Some(root) = spec.root_mut() {
            root.set_path(PathBuf::from("rootfs"));
        }
        if let Some(process) = spec.process_mut() {
            process.set_args(Some(self.args));
        }
        let bundle = Bundle { dir: self.dir };
        bundle.write_spec(&spec)?;
        Ok(bundle)
    }
}

/// The default spec of our fixtures: like `runc spec`, with hostname `berth`,
/// a writable root and no terminal.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".into()));
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(false));
    }
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(false));
        process.set_cwd(PathBuf::from("/"));
    }
    spec
}

/// A written bundle directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// The bundle directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The config.json path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Read config.json.
    pub fn load_spec(&self) -> Result<Spec, FixtureError> {
        let path = self.config_path();
        Spec::load(&path).map_err(|source| FixtureError::Spec { path, source })
    }

    /// Replace config.json.
    pub fn write_spec(&self, spec: &Spec) -> Result<(), FixtureError> {
        let path = self.config_path();
        spec.save(&path)
            .map_err(|source| FixtureError::Spec { path, source })
    }
}

/// Lay out a minimal rootfs at `rootfs`: busybox, its applets as symlinks,
/// the usual top-level directories, /etc/passwd and /etc/group.
pub fn write_rootfs(rootfs: &Path) -> Result<(), FixtureError> {
    let busybox = static_busybox()?;
    for dir in [
        "bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var", "usr", "home",
    ] {
        let p = rootfs.join(dir);
        fs::create_dir_all(&p).map_err(io_err("create", &p))?;
    }
    let tmp = rootfs.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).map_err(io_err("chmod", &tmp))?;
    let usr_bin = rootfs.join("usr/bin");
    if !usr_bin.exists() {
        symlink("../bin", &usr_bin).map_err(io_err("symlink", &usr_bin))?;
    }
    let sbin = rootfs.join("sbin");
    if !sbin.exists() {
        symlink("bin", &sbin).map_err(io_err("symlink", &sbin))?;
    }
    let target = rootfs.join("bin/busybox");
    if !target.exists() {
        // A hard link is free; across filesystems fall back to a copy.
        if fs::hard_link(&busybox, &target).is_err() {
            fs::copy(&busybox, &target).map_err(io_err("copy", &target))?;
        }
    }
    for applet in applets(&busybox)? {
        let link = rootfs.join("bin").join(&applet);
        if applet != "busybox" && fs::symlink_metadata(&link).is_err() {
            symlink("busybox", &link).map_err(io_err("symlink", &link))?;
        }
    }
    for (name, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
    ] {
        let p = rootfs.join(name);
        fs::write(&p, text).map_err(io_err("write", &p))?;
    }
    Ok(())
}

/// The applet names this busybox was built with.
fn applets(busybox: &Path) -> Result<Vec<String>, FixtureError> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(io_err("run --list of", busybox))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_bundle_with_busybox() {
        let Ok(_) = static_busybox() else {
            eprintln!("skipped: no static busybox on this machine");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let bundle = BusyboxBundle::new(dir.path())
            .args(["/bin/echo", "hello"])
            .write()
            .unwrap();
        let spec = bundle.load_spec().unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &vec!["/bin/echo".to_string(), "hello".to_string()]
        );
        assert!(bundle.rootfs().join("bin/busybox").exists());
        assert_eq!(
            fs::read_link(bundle.rootfs().join("bin/sh")).unwrap(),
            PathBuf::from("busybox")
        );
        let out = Command::new(bundle.rootfs().join("bin/echo"))
            .arg("ok")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"ok\n");
    }

    #[test]
    fn dynamic_binaries_are_not_static() {
        assert!(!is_static_elf(Path::new("/bin/ls")).unwrap());
        assert!(!is_static_elf(Path::new("/etc/hostname")).unwrap_or(false));
    }
}
