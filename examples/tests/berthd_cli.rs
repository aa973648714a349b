//! The real docker CLI against berthd.
//!
//! Each test starts berthd (the built binary) on a socket in a temp dir
//! with a temp `--root` and `--exec-root`, loads the busybox image with
//! `docker load`, drives the CLI, and removes everything after (the daemon,
//! its containers, overlay mounts, cgroups and state) through a Drop guard,
//! also when the test fails. Skips with a printed reason when not root or
//! when there is no docker CLI.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn run_rm_echo_hi_prints_hi_and_leaves_nothing() {
    let Some(d) = start() else { return };
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(d.ok(&["ps", "-a", "-q"]), "");
    assert_eq!(containers_left(&d), 0);
    assert!(d.ok(&["images"]).contains("busybox"));
}

#[test]
fn exit_codes_logs_stop_and_kill() {
    let Some(d) = start() else { return };
    let out = d.docker(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    let script = "echo a; echo b; echo c; trap 'exit 7' TERM; while true; do sleep 0.1; done";
    d.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["logs", "web"]).contains('c') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["logs", "--tail", "2", "web"]), "b\nc\n");
    assert!(d.ok(&["ps"]).contains("web"));
    d.ok(&["stop", "-t", "5", "web"]);
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "web",
    ]);
    assert_eq!(state.trim(), "exited 7");

    d.ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "100"]);
    d.ok(&["kill", "sleeper"]);
    let code = d.ok(&["wait", "sleeper"]);
    assert_eq!(code.trim(), "137");
    let ps = d.ok(&["ps", "-a"]);
    assert!(
        ps.contains("Exited (137)") && ps.contains("Exited (7)"),
        "{ps}"
    );
    d.ok(&["rm", "web", "sleeper"]);

    d.ok(&["run", "-d", "--name", "forced", "busybox", "sleep", "100"]);
    let busy = d.docker(&["rm", "forced"]);
    assert_ne!(busy.code, 0);
    assert!(
        busy.stderr.contains("container is running"),
        "{}",
        busy.stderr
    );
    d.ok(&["rm", "-f", "forced"]);
    let out = d.docker(&["ps", "-a", "-q"]);
    let left: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(left.len(), 1, "only the first run is left: {left:?}");
    d.ok(&["rm", left[0]]);
    assert_eq!(containers_left(&d), 0);
}

#[test]
fn create_options_reach_the_process() {
    let Some(d) = start() else { return };
    let out = d.ok(&[
        "run", "--rm", "-u", "1000:1000", "-w", "/etc", "-e", "X=y", "--hostname", "box",
        "--read-only", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/scratch",
        "busybox", "sh", "-c",
        "id -u; id -g; pwd; echo $X; hostname; touch /a 2>/dev/null || echo ro; touch /scratch/f && echo tmpfs; grep NoNewPrivs /proc/self/status",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "1000",
            "1000",
            "/etc",
            "y",
            "box",
            "ro",
            "tmpfs",
            "NoNewPrivs:\t1"
        ]
    );
}

#[test]
fn bad_requests_get_docker_errors_and_leave_nothing() {
    let Some(d) = start() else { return };
    let out = d.docker(&["run", "--rm", "nosuchimage", "true"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("nosuchimage"), "{}", out.stderr);
    d.ok(&["create", "--name", "taken", "busybox", "true"]);
    let out = d.docker(&["create", "--name", "taken", "busybox", "true"]);
    assert!(out.stderr.contains("is already in use"), "{}", out.stderr);
    let out = d.docker(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("/no/such/binary"), "{}", out.stderr);
    let out = d.docker(&["run", "--rm", "--cap-add", "FLY", "busybox", "true"]);
    assert!(out.stderr.contains("FLY"), "{}", out.stderr);
    d.ok(&["rm", "taken"]);
    assert_eq!(containers_left(&d), 0);
}

#[test]
fn logs_follow_streams_until_the_container_exits() {
    let Some(d) = start() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 0.5; echo two >&2; sleep 0.5; echo three",
    ]);
    let out = d.docker(&["logs", "-f", "talker"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "one\nthree\n");
    assert_eq!(out.stderr, "two\n");
    let out = d.docker(&["logs", "-t", "talker"]);
    assert!(
        out.stdout.lines().all(|l| l.contains("Z ")),
        "{}",
        out.stdout
    );
    assert_eq!(d.ok(&["wait", "talker"]).trim(), "0");
    d.ok(&["rm", "talker"]);
    assert_eq!(containers_left(&d), 0);
}

#[test]
fn resource_limits_land_in_the_container_cgroup() {
    let Some(d) = start() else { return };
    let id = d.ok(&[
        "run",
        "-d",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string());
    let memory = read(&format!(
        "/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"
    ));
    let pids = read(&format!("/sys/fs/cgroup/pids/berth/{id}/pids.max"));
    d.ok(&["rm", "-f", id]);
    assert_eq!(memory.unwrap(), (64 << 20).to_string());
    assert_eq!(pids.unwrap(), "20");
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists());
}

#[test]
fn run_i_forwards_stdin_until_eof() {
    let Some(d) = start() else { return };
    let out = d.docker_with_stdin(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"],
        Some(b"hello\nworld\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "hello\nworld\ndone\n");
}
