//! Root tests of berth-runtime's terminal proxy: a foreground `run` or
//! `exec --tty` of a process.terminal process without `--console-socket`
//! receives the pty master itself, like runc. Under script(1) the caller
//! has a terminal (raw mode, restored after; SIGWINCH becomes the pty's
//! size); with pipes it proxies without raw mode.

mod terminal;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use libcontainer::fixtures::BusyboxBundle;
use terminal::{pid_of, resize_terminal_of, Script, SCRIPT};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    if libcontainer::fixtures::static_busybox().is_err() {
        eprintln!("skipped: no static busybox");
        return false;
    }
    true
}

/// A bundle of `args` with process.terminal, a state root, and an id;
/// force-deletes the container on drop.
struct Env {
    dir: tempfile::TempDir,
    id: String,
}

impl Env {
    fn new(name: &str, args: &[&str], terminal: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundle = BusyboxBundle::new(dir.path().join("bundle"))
            .args(args.iter().copied())
            .write()
            .unwrap();
        let mut spec = bundle.load_spec().unwrap();
        let mut p = spec.process().clone().unwrap();
        p.set_terminal(Some(terminal));
        spec.set_process(Some(p));
        bundle.write_spec(&spec).unwrap();
        Self {
            dir,
            id: format!("{name}-{}", std::process::id()),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root()).args(args);
        c
    }
    /// `berth-runtime ARGS` with `input` on a pipe as stdin.
    fn piped(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        wait_output(child, Duration::from_secs(30))
    }
    /// The shell words that run berth-runtime with this root.
    fn shell_cmd(&self, args: &str) -> String {
        format!("{BIN} --root {} {args}", self.root().display())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .output();
    }
}

/// The child's output, killing it after `limit`.
fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "timed out; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn run_under_a_terminal_proxies_raw_resizes_and_restores_the_terminal() {
    if !root_or_skip() || !Path::new(SCRIPT).exists() {
        eprintln!("skipped: needs root, busybox and script(1)");
        return;
    }
    let env = Env::new(
        "tty-run",
        &[
            "sh",
            "-c",
            "tty; stty size; read x; echo got $x; read y; stty size; exit 5",
        ],
        true,
    );
    let before = env.dir.path().join("stty-before");
    let after = env.dir.path().join("stty-after");
    let cmd = format!(
        "stty rows 20 cols 70; stty -g > {}; {}; echo rc=$?; stty -g > {}",
        before.display(),
        env.shell_cmd(&format!(
            "run --bundle {} {}",
            env.bundle().display(),
            env.id
        )),
        after.display()
    );
    let mut s = Script::spawn(&cmd, &[]);
    // The container's own devpts, at the caller's size.
    s.wait_for("/dev/pts/0\r\n20 70\r\n");
    // Typed input reaches the process and is echoed once, by its pty (the
    // caller's terminal is raw, so it does not echo too).
    s.type_in("hello\n");
    s.wait_for("got hello\r\n");
    assert_eq!(s.text().matches("hello").count(), 2, "{:?}", s.text());
    // A window change of the caller's terminal reaches the pty.
    let pid = pid_of(BIN, &env.id).expect("berth-runtime is running");
    resize_terminal_of(pid, 33, 101);
    std::thread::sleep(Duration::from_millis(300));
    s.type_in("\n");
    s.wait_for("33 101\r\n");
    s.wait_for("rc=5");
    let status = s.finish();
    assert!(status.success(), "script: {status:?}");
    let (before, after) = (
        std::fs::read_to_string(before).unwrap(),
        std::fs::read_to_string(after).unwrap(),
    );
    assert!(!before.is_empty());
    assert_eq!(before, after, "the caller's terminal settings came back");
    assert!(!env.root().join(&env.id).exists(), "run deleted it");
}

#[test]
fn run_and_exec_without_a_terminal_proxy_through_pipes() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(
        "tty-pipe",
        &[
            "sh",
            "-c",
            "tty; read x; echo got $x; cat; echo eof-seen; exit 4",
        ],
        true,
    );
    let bundle = env.bundle();
    let o = env.piped(
        &["run", "--bundle", bundle.to_str().unwrap(), &env.id],
        b"hi there\nmore\n",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out:?} {:?}", o.stderr);
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    // The pty echoes the input (when it arrives) and the process answers;
    // the end of our input is the pty's EOF, so the cat ends.
    assert!(out.contains("got hi there\r\n"), "{out:?}");
    assert!(out.contains("more\r\neof-seen\r\n"), "{out:?}");
    assert_eq!(out.matches("more").count(), 2, "echo and cat: {out:?}");

    // exec --tty into a running container (no terminal of its own).
    let env = Env::new("tty-exec", &["sleep", "100"], false);
    let bundle = env.bundle();
    // Its stdio is not ours to keep open.
    let ok = env
        .cmd(&[
            "run",
            "--detach",
            "--bundle",
            bundle.to_str().unwrap(),
            &env.id,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "run --detach");
    let o = env.piped(
        &[
            "exec",
            "--tty",
            &env.id,
            "sh",
            "-c",
            "test -t 0 && echo is-a-tty; tty; read x; echo got $x; exit 3",
        ],
        b"typed\n",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out:?} {:?}", o.stderr);
    // (The echo of our input may come anywhere before "got".)
    assert!(out.contains("is-a-tty\r\n"), "{out:?}");
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    assert!(out.contains("got typed\r\n"), "{out:?}");
}

#[test]
fn a_detached_terminal_without_a_console_socket_is_refused_like_runc() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("tty-detach", &["sleep", "100"], true);
    let bundle = env.bundle();
    for args in [
        vec![
            "run",
            "--detach",
            "--bundle",
            bundle.to_str().unwrap(),
            &env.id,
        ],
        vec!["create", "--bundle", bundle.to_str().unwrap(), &env.id],
    ] {
        let o = env.piped(&args, b"");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            err.contains("cannot allocate tty if runc will detach without setting console socket"),
            "{err}"
        );
        assert!(!env.root().join(&env.id).exists(), "{args:?} left state");
    }
}
