//! The berthd test harness shared by berthd_cli.rs and berthd_vol.rs:
//! berthd (the built binary) on a socket in a temp dir with a temp `--root`
//! and `--exec-root`, busybox loaded with `docker load`, and a Drop guard
//! that removes the daemon, its containers, overlay mounts, cgroups and
//! state, also when a test fails.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub host: String,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn start() -> Option<Daemon> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: berthd tests need root (namespaces, overlayfs, cgroups)");
        return None;
    }
    if !Path::new(DOCKER).is_file() {
        eprintln!("SKIP: no docker CLI at {DOCKER}");
        return None;
    }
    let dir = tempfile::Builder::new().prefix("berthd").tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let host = format!("unix://{}", sock.display());
    let mut d = Daemon {
        dir,
        child: None,
        host,
    };
    if let Err(e) = d.launch(&[]) {
        panic!("berthd did not start: {e}");
    }
    let archive = d.dir.path().join("busybox.tar");
    examples::images::write_busybox_image_archive(std::fs::File::create(&archive).unwrap())
        .unwrap();
    let out = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.code, 0, "docker load: {}", out.stderr);
    Some(d)
}

impl Daemon {
    /// Starts berthd (the built binary) on this daemon's socket, root and
    /// exec root with `extra` flags, never on the real host's network
    /// (tests that need one use netns.rs). Returns the line it printed
    /// once listening, or what it said on stderr when it refused to start.
    pub fn launch(&mut self, extra: &[&str]) -> Result<String, String> {
        assert!(self.child.is_none(), "berthd runs already");
        let mut child = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--host")
            .arg(&self.host)
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .args(["--network-host-netns", "none"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        if !line.starts_with("listening on") {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            let _ = child.wait();
            return Err(format!("berthd said {line:?}, then {err:?}"));
        }
        // berthd logs to stderr: drain it so that it never blocks on a
        // full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        self.child = Some(child);
        Ok(line)
    }

    /// Stops berthd with `sig` and waits for it to exit (with SIGTERM or
    /// SIGKILL its containers stay, under their shims).
    pub fn stop(&mut self, sig: nix::sys::signal::Signal) {
        let mut child = self.child.take().expect("berthd runs");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "berthd did not exit on {sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Pids of processes (other than this test) whose command line contains
/// every one of `parts` (e.g. a test's root dir, and `"\0shim\0"`).
pub fn pids_with_cmdline(parts: &[&str]) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    parts.iter().all(|p| c.contains(p))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Runs the docker CLI against `host` with its config in `config`, feeding
/// `stdin` when given; killed (and the test failed) after 30 s.
pub fn run_docker(host: &str, config: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut child = Command::new(DOCKER)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(data).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker {args:?} timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whatever a berthd under `dir` left (it should leave nothing): its
/// containers with their cgroups and state (`dir/run`), then every mount
/// under `dir` (overlay rootfs, pinned sandbox namespaces), deepest first.
pub fn remove_leftovers(dir: &Path) {
    if let Ok(list) = libcontainer::Container::list(dir.join("run")) {
        for c in list {
            let _ = c.delete(true);
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = dir.display().to_string();
    for m in mounts.lines().rev() {
        if let Some(target) = m.split(' ').nth(4) {
            if target.starts_with(&root) {
                let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

impl Daemon {
    pub fn docker(&self, args: &[&str]) -> Out {
        self.docker_with_stdin(args, None)
    }

    pub fn docker_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        run_docker(&self.host, &self.dir.path().join("config"), args, stdin)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert_eq!(out.code, 0, "docker {args:?}: {}", out.stderr);
        out.stdout
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_leftovers(self.dir.path());
    }
}

pub fn containers_left(d: &Daemon) -> usize {
    std::fs::read_dir(d.root().join("containers"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// berthd with networking in a fake host namespace.
pub mod netns;
