//! Shared helpers of the core root tests: a busybox bundle in a temp dir,
//! a private state root, and guards that delete containers even when a
//! test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use libcontainer::fixtures::{default_spec, Bundle, BusyboxBundle};
use libcontainer::{Container, ContainerBuilder, CreateError};
use oci_spec::runtime::{MountBuilder, Spec};

/// True when running as root; otherwise prints why the test is skipped.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: needs root");
    } else if libcontainer::fixtures::static_busybox().is_err() {
        eprintln!("skipped: no static busybox (apt-get install busybox-static)");
        return false;
    }
    root
}

/// A bundle plus a private state root; deletes every container it made.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub bundle: Bundle,
    pub out: PathBuf,
    pub root: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Env {
    /// A bundle whose process runs `script` with /bin/sh; its stdout and
    /// stderr go to `/out/log`, a bind mount of [`Env::out`].
    pub fn new(script: &str) -> Self {
        Self::with_spec(script, |_| {})
    }

    /// Like [`Env::new`], with a change to the default spec.
    pub fn with_spec(script: &str, edit: impl FnOnce(&mut Spec)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out dir");
        let mut spec = default_spec();
        let m = MountBuilder::default()
            .destination("/out")
            .source(out.to_str().expect("utf8"))
            .options(vec!["rbind".to_string()])
            .build()
            .expect("mount");
        spec.mounts_mut().get_or_insert_with(Vec::new).push(m);
        edit(&mut spec);
        let bundle = BusyboxBundle::new(dir.path().join("bundle"))
            .spec(spec)
            .args(["/bin/sh", "-c", &format!("exec >/out/log 2>&1; {script}")])
            .write()
            .expect("bundle");
        let root = dir.path().join("state");
        Self {
            dir,
            bundle,
            out,
            root,
            ids: Default::default(),
        }
    }

    /// Change config.json after the fact.
    pub fn edit_spec(&self, edit: impl FnOnce(&mut Spec)) {
        let mut spec = self.bundle.load_spec().expect("spec");
        edit(&mut spec);
        self.bundle.write_spec(&spec).expect("write spec");
    }

    /// A builder for container `id` (remembered for cleanup).
    pub fn builder(&self, id: &str) -> ContainerBuilder {
        self.ids.borrow_mut().push(id.to_string());
        ContainerBuilder::new(id, self.bundle.path()).root(&self.root)
    }

    /// Create container `id`.
    pub fn create(&self, id: &str) -> Result<Container, CreateError> {
        self.builder(id).create()
    }

    /// Create, start, wait, delete; the exit code and /out/log.
    pub fn run(&self, id: &str) -> (i32, String) {
        let mut c = self
            .create(id)
            .unwrap_or_else(|e| panic!("create {id}: {e}"));
        c.start().expect("start");
        let code = c.wait().expect("wait");
        c.delete(false).expect("delete");
        (code, self.log())
    }

    /// What the container wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.out.join("log")).unwrap_or_default()
    }

    /// The state directory of `id`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The rootfs path.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.rootfs()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            if let Ok(c) = Container::load(&self.root, id) {
                let _ = c.delete(true);
            }
        }
    }
}

/// No mount of ours is visible on the host.
pub fn assert_no_mounts_under(path: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let p = path.to_string_lossy();
    assert!(
        !info.contains(p.as_ref()),
        "a mount under {p} leaked: {info}"
    );
}

/// This process has no children left (a failed create reaped its init).
pub fn assert_no_children() {
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).unwrap_or("");
        assert_ne!(
            ppid,
            me,
            "child process {:?} left behind: {stat}",
            e.file_name()
        );
    }
}

/// The namespace inode link of this process.
pub fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .expect("ns link")
        .to_string_lossy()
        .into_owned()
}
