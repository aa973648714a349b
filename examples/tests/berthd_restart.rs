//! berthd restarts with the real docker CLI: containers keep running under
//! their shims while berthd is down (SIGKILL and SIGTERM), the next berthd
//! with the same `--root` attaches to them again, logs written meanwhile
//! and exit codes are kept, and restart policies apply.
//!
//! Each test starts berthd through the shared harness (temp socket, root
//! and exec root), kills and starts it again itself, and leaves nothing
//! behind: the harness's guard removes berthd, the containers, mounts and
//! state; [`Env`] then waits for the shims of this test's root to end (and
//! kills any that do not), also when a test fails.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The daemon plus a sweep for this test's shim processes.
struct Env {
    d: Option<Daemon>,
    root: String,
}

impl Env {
    fn start() -> Option<Env> {
        let d = start()?;
        let root = d.dir.path().display().to_string();
        Some(Env { d: Some(d), root })
    }

    fn d(&self) -> &Daemon {
        self.d.as_ref().expect("daemon")
    }

    /// Stops berthd with `sig` (the containers stay).
    fn stop_daemon(&mut self, sig: Signal) {
        self.d.as_mut().expect("daemon").stop(sig);
    }

    /// Starts berthd again on the same socket, root and exec root.
    fn start_daemon(&mut self, extra: &[&str]) {
        let d = self.d.as_mut().expect("daemon");
        if let Err(e) = d.launch(extra) {
            panic!("berthd did not start again: {e}");
        }
    }

    /// Pids of processes whose command line names this test's directory
    /// (berthd and the shims).
    fn ours(&self) -> Vec<i32> {
        pids_with_cmdline(&[&self.root])
    }

    /// Removes everything and checks that no shim outlived it.
    fn finish(mut self) {
        drop(self.d.take());
        let left = self.sweep();
        assert!(left.is_empty(), "shims left behind: {left:?}");
    }

    /// Waits for the shims to end after their containers went; kills
    /// stragglers. Returns the ones that had to be killed.
    fn sweep(&self) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ours().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = self.ours();
        for pid in &left {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        left
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.d.take().is_some() {
            self.sweep();
        }
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state(d: &Daemon, name: &str) -> String {
    d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}",
        name,
    ])
    .trim()
    .to_string()
}

fn pid_of(d: &Daemon, name: &str) -> i32 {
    d.ok(&["inspect", "-f", "{{.State.Pid}}", name])
        .trim()
        .parse()
        .unwrap()
}

fn ticks(d: &Daemon, name: &str) -> usize {
    d.ok(&["logs", name])
        .lines()
        .filter(|l| l.starts_with("tick"))
        .count()
}

const LOOP: &str =
    "trap 'exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";

#[test]
fn containers_keep_running_and_logging_while_berthd_is_down() {
    let Some(mut env) = Env::start() else { return };
    env.d()
        .ok(&["run", "-d", "--name", "loop", "busybox", "sh", "-c", LOOP]);
    eventually("output", 10, || ticks(env.d(), "loop") >= 2);
    let pid = pid_of(env.d(), "loop");

    for sig in [Signal::SIGKILL, Signal::SIGTERM] {
        env.stop_daemon(sig);
        // The container lives on and its shim keeps logging.
        let logged = |env: &Env| {
            std::fs::read_dir(env.d().root().join("containers"))
                .unwrap()
                .map(|e| {
                    std::fs::read_to_string(e.unwrap().path().join("container.log"))
                        .map(|s| s.lines().count())
                        .unwrap_or(0)
                })
                .sum::<usize>()
        };
        let n = logged(&env);
        eventually("logs while berthd is down", 10, || logged(&env) >= n + 3);
        assert!(alive(pid), "the container died with berthd ({sig})");

        env.start_daemon(&[]);
        let ps = env.d().ok(&["ps"]);
        assert!(ps.contains("loop") && ps.contains("Up"), "{ps}");
        assert_eq!(pid_of(env.d(), "loop"), pid);
        assert!(
            ticks(env.d(), "loop") >= n + 3,
            "docker logs has what was written while berthd was down ({sig})"
        );
        // Live output reaches berthd again.
        let now = ticks(env.d(), "loop");
        eventually("live logs after the restart", 10, || {
            ticks(env.d(), "loop") > now + 2
        });
    }

    env.d().ok(&["stop", "-t", "5", "loop"]);
    assert_eq!(state(env.d(), "loop"), "exited 7 0");
    assert!(!alive(pid));
    env.d().ok(&["rm", "loop"]);
    assert_eq!(containers_left(env.d()), 0);
    env.finish();
}

#[test]
fn an_exit_while_berthd_is_down_keeps_its_code_and_output() {
    let Some(mut env) = Env::start() else { return };
    env.d().ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo bye; echo oops >&2; exit 5",
    ]);
    let pid = pid_of(env.d(), "short");
    env.stop_daemon(Signal::SIGKILL);
    eventually("the container's exit", 15, || !alive(pid));
    env.start_daemon(&[]);
    assert_eq!(state(env.d(), "short"), "exited 5 0");
    let out = env.d().docker(&["logs", "short"]);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("bye\n", "oops\n")
    );
    let ps = env.d().ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (5)"), "{ps}");
    // It starts again like any exited container.
    env.d().ok(&["start", "short"]);
    assert_eq!(env.d().ok(&["wait", "short"]).trim(), "5");
    assert_eq!(env.d().ok(&["logs", "short"]), "bye\nbye\n");
    env.finish();
}

#[test]
fn restart_on_failure_2_restarts_exactly_twice() {
    let Some(env) = Env::start() else { return };
    let d = env.d();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    eventually("two restarts", 20, || state(d, "flaky") == "exited 3 2");
    // Give a third run every chance to (wrongly) happen.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(state(d, "flaky"), "exited 3 2");
    assert_eq!(d.ok(&["logs", "flaky"]), "run\nrun\nrun\n");

    // A zero exit is no failure: no restart.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    eventually("the exit", 10, || state(d, "fine") == "exited 0 0");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(d, "fine"), "exited 0 0");

    let bad = d.docker(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--rm",
        "busybox",
        "true",
    ]);
    assert_ne!(bad.code, 0);
    env.finish();
}

#[test]
fn restart_always_survives_berthd_restarts_and_docker_stop_prevents_it() {
    let Some(mut env) = Env::start() else { return };
    env.d().ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    let first = pid_of(env.d(), "always");
    // Killed while berthd is down: the next berthd restarts it.
    env.stop_daemon(Signal::SIGKILL);
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    eventually("the kill", 10, || !alive(first));
    env.start_daemon(&[]);
    eventually("the restart", 15, || {
        state(env.d(), "always") == "running 0 1"
    });
    let second = pid_of(env.d(), "always");
    assert_ne!(second, first);

    // docker stop: no restart while berthd runs...
    env.d().ok(&["stop", "-t", "1", "always"]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(state(env.d(), "always").starts_with("exited"));
    // ...but `always` comes back with the daemon (dockerd does the same),
    // here after a berthd that stopped its containers at exit.
    env.stop_daemon(Signal::SIGTERM);
    env.start_daemon(&["--stop-containers-on-exit"]);
    eventually("the start with berthd", 15, || {
        state(env.d(), "always").starts_with("running")
    });
    let third = pid_of(env.d(), "always");
    env.stop_daemon(Signal::SIGTERM);
    assert!(!alive(third), "--stop-containers-on-exit stopped it");
    env.start_daemon(&[]);
    eventually("the start with berthd", 15, || {
        state(env.d(), "always").starts_with("running")
    });
    env.d().ok(&["rm", "-f", "always"]);
    env.finish();
}

#[test]
fn run_t_gives_a_pty_that_survives_a_berthd_restart() {
    let Some(mut env) = Env::start() else { return };
    let out = env.d().docker(&[
        "run",
        "-t",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo on a tty; exit 3",
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    // A pty: one stream, with the terminal's CRLF.
    assert_eq!(out.stdout, "on a tty\r\n");
    // Of the container's own devpts: `tty` names it, stdin resolves there.
    let out = env.d().docker(&[
        "run",
        "-t",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "tty; ls -l /proc/self/fd/0",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("/dev/pts/0\r\n")
            && out.stdout.contains("/proc/self/fd/0 -> /dev/pts/0\r\n"),
        "{:?}",
        out.stdout
    );

    env.d().ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "term",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo to stderr >&2; sleep 1000",
    ]);
    eventually("the tty's output", 10, || {
        env.d().ok(&["logs", "term"]).contains("stderr")
    });
    env.stop_daemon(Signal::SIGKILL);
    env.start_daemon(&[]);
    assert_eq!(
        env.d()
            .ok(&["inspect", "-f", "{{.Config.Tty}} {{.State.Status}}", "term"]),
        "true running\n"
    );
    assert_eq!(env.d().ok(&["logs", "term"]), "hello\r\nto stderr\r\n");
    env.d().ok(&["rm", "-f", "term"]);

    // docker run -it under a terminal (script(1) gives the CLI one): the
    // size, stdin through the pty, and the exit code.
    if Path::new("/usr/bin/script").exists() {
        let d = env.d();
        let cmd = "stty rows 22 cols 77; docker run -it --rm busybox sh -c 'stty size; read x; echo got $x; exit 4'";
        let mut child = Command::new("/usr/bin/script")
            .args(["-qefc", cmd, "/dev/null"])
            .env("DOCKER_HOST", &d.host)
            .env("DOCKER_CONFIG", d.dir.path().join("config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env(
                "PATH",
                format!(
                    "/usr/local/bin:{}",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            std::thread::sleep(Duration::from_secs(2));
            let _ = stdin.write_all(b"hello\n");
            std::thread::sleep(Duration::from_secs(3));
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("docker run -it timed out");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let _ = feeder.join();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{stdout}");
        assert!(stdout.contains("22 77"), "{stdout}");
        assert!(stdout.contains("got hello"), "{stdout}");
    } else {
        eprintln!("no script(1): skipping the docker run -it part");
    }
    env.finish();
}

#[test]
fn stdin_and_a_dead_shim_after_a_berthd_restart() {
    let Some(mut env) = Env::start() else { return };
    let d = env.d();
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "reader",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo got $l; done; exit 9",
    ]);
    d.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]);
    let orphan = pid_of(d, "orphan");
    env.stop_daemon(Signal::SIGKILL);
    env.start_daemon(&[]);
    let d = env.d();
    // The shim kept the stdin for the next attach.
    let out = d.docker_with_stdin(&["attach", "reader"], Some(b"one\ntwo\n"));
    assert_eq!(out.stdout, "got one\ngot two\n", "{}", out.stderr);
    assert_eq!(d.ok(&["wait", "reader"]).trim(), "9");

    // A monitor killed under a running berthd: the container goes too,
    // with Docker's "unknown" exit code and an error in inspect.
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "orphan"]);
    let shim = env
        .ours()
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(id.trim()))
                .unwrap_or(false)
        })
        .expect("the orphan's shim");
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    eventually("the orphan's end", 15, || !alive(orphan));
    eventually("the exit in inspect", 10, || {
        state(env.d(), "orphan") == "exited 255 0"
    });
    let err = env.d().ok(&["inspect", "-f", "{{.State.Error}}", "orphan"]);
    assert!(err.contains("monitor"), "{err}");
    env.finish();
}
