//! Volumes and exec in berthd, driven by the real docker CLI.
//!
//! The harness (tests/common) is berthd_cli.rs's: berthd on a socket in a temp dir with a
//! temp `--root` and `--exec-root`, busybox loaded with `docker load`,
//! everything removed by a Drop guard, also when a test fails. Skips with a
//! printed reason when not root or when there is no docker CLI.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_sleeper(d: &Daemon, name: &str) {
    d.ok(&["run", "-d", "--name", name, "busybox", "sleep", "60"]);
}

#[test]
fn exec_runs_in_the_container_with_exit_code_and_options() {
    let Some(d) = start() else { return };
    run_sleeper(&d, "ex");
    assert_eq!(d.ok(&["exec", "ex", "echo", "hi"]), "hi\n");
    let out = d.docker(&["exec", "ex", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stderr, "oops\n");
    // Same pid namespace as the container: sleep is pid 1.
    assert_eq!(d.ok(&["exec", "ex", "cat", "/proc/1/comm"]), "sleep\n");
    let out = d.ok(&[
        "exec",
        "-u",
        "1000:50",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        "ex",
        "sh",
        "-c",
        "echo $(id -u):$(id -g) $PWD $X",
    ]);
    assert_eq!(out, "1000:50 /tmp y\n");
    let out = d.docker_with_stdin(&["exec", "-i", "ex", "cat"], Some(b"piped\n"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "piped\n");
    // -t: a pty (output raw, \r\n line ends), TERM set.
    let out = d.ok(&[
        "exec",
        "-t",
        "ex",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo tty $TERM",
    ]);
    assert_eq!(out, "tty xterm\r\n");
    if Path::new("/usr/bin/script").is_file() {
        // -it under a pty on the client side too (script(1) gives one).
        let cmd = format!("{DOCKER} exec -it ex sh -c 'read x; echo got $x'");
        let mut child = Command::new("/usr/bin/script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("DOCKER_HOST", &d.host)
            .env("DOCKER_CONFIG", d.dir.path().join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            stdin.write_all(b"hello\n").unwrap();
            std::thread::sleep(Duration::from_millis(500));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("got hello"), "{text:?} {:?}", out.stderr);
        // The client's terminal size reaches the exec's pty.
        let cmd = format!("stty rows 33 cols 101; {DOCKER} exec -it ex stty size");
        let out = Command::new("/usr/bin/script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("DOCKER_HOST", &d.host)
            .env("DOCKER_CONFIG", d.dir.path().join("config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("33 101"), "{text:?}");
    }
    let out = d.docker(&["exec", "ex", "/no/such"]);
    assert_ne!(out.code, 0);
    d.ok(&["rm", "-f", "ex"]);
    let out = d.docker(&["exec", "ex", "true"]);
    assert!(out.stderr.contains("No such container"), "{}", out.stderr);
    assert_eq!(containers_left(&d), 0);
}

fn volumes_left(d: &Daemon) -> Vec<String> {
    d.ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn named_volume_is_shared_and_volume_commands_work() {
    let Some(d) = start() else { return };
    // Created on first use, written by one container, read by another.
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(volumes_left(&d), vec!["data".to_string()]);
    let out = d.ok(&["run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"]);
    assert_eq!(out, "kept\n");
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/d:ro",
        "busybox",
        "touch",
        "/d/x",
    ]);
    assert_ne!(out.code, 0, "a read-only volume took a write");

    d.ok(&["volume", "create", "--label", "k=v", "other"]);
    let ls = d.ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(
        ls.contains("data local") && ls.contains("other local"),
        "{ls}"
    );
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "label=k=v"]),
        "other\n"
    );
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    let mp = mp.trim();
    assert!(mp.starts_with(d.root().to_str().unwrap()), "{mp}");
    assert_eq!(
        std::fs::read_to_string(Path::new(mp).join("f")).unwrap(),
        "kept\n"
    );

    // In use while a container (even a stopped one) holds it.
    d.ok(&[
        "create", "--name", "holder", "-v", "other:/o", "busybox", "true",
    ]);
    let mounts = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
        "holder",
    ]);
    assert_eq!(mounts.trim(), "volume other /o true");
    let out = d.docker(&["volume", "rm", "other"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("volume is in use"), "{}", out.stderr);
    d.ok(&["rm", "holder"]);
    d.ok(&["volume", "rm", "other", "data"]);
    assert!(volumes_left(&d).is_empty());
    let out = d.docker(&["volume", "inspect", "data"]);
    assert!(out.stderr.contains("no such volume"), "{}", out.stderr);
}

#[test]
fn bind_mounts_and_anonymous_volumes() {
    let Some(d) = start() else { return };
    let host = d.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let bind = format!("{}:/h", host.display());
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /h/in; echo back > /h/out",
    ]);
    assert_eq!(out, "from host\n");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "back\n");
    let ro = format!("{bind}:ro");
    let out = d.docker(&["run", "--rm", "-v", &ro, "busybox", "touch", "/h/x"]);
    assert_ne!(out.code, 0);
    assert!(!host.join("x").exists());

    // A single file binds as a file.
    let file = format!("{}:/etc/bound:ro", host.join("in").display());
    assert_eq!(
        d.ok(&["run", "--rm", "-v", &file, "busybox", "cat", "/etc/bound"]),
        "from host\n"
    );

    // An anonymous volume lives with its container; rm -v removes it.
    d.ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo a > /scratch/f",
    ]);
    assert_eq!(volumes_left(&d).len(), 1);
    d.ok(&["rm", "-v", "anon"]);
    assert!(volumes_left(&d).is_empty());
    // With --rm too.
    d.ok(&["run", "--rm", "-v", "/scratch", "busybox", "true"]);
    assert!(volumes_left(&d).is_empty());
    assert_eq!(containers_left(&d), 0);
}

#[test]
fn bad_mounts_get_docker_errors_and_leave_nothing() {
    let Some(d) = start() else { return };
    let out = d.docker(&["run", "--rm", "-v", "rel/path:/data", "busybox", "true"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("includes invalid characters for a local volume name"),
        "{}",
        out.stderr
    );
    // The first mount succeeds, the second fails (its source cannot be
    // made under a file): the first volume is unmounted and removed.
    let out = d.docker(&[
        "create",
        "-v",
        "first:/a",
        "-v",
        "/etc/passwd/sub:/b",
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("error while creating mount source path '/etc/passwd/sub'"),
        "{}",
        out.stderr
    );
    let out = d.docker(&[
        "create",
        "-v",
        "first:/a",
        "-v",
        "x:/b:bogus",
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("invalid"), "{}", out.stderr);
    assert!(volumes_left(&d).is_empty(), "{:?}", volumes_left(&d));
    assert_eq!(containers_left(&d), 0);
    let out = d.docker(&["volume", "rm", "nope"]);
    assert!(out.stderr.contains("no such volume"), "{}", out.stderr);
}
