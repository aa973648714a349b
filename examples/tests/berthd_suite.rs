//! Issue 7 in one place: libswarm's shared behaviour suite against berthd
//! (through libswarm's Docker API client, so the whole stack runs:
//! client → dockerserver → LocalBackend → libcontainer, libnetwork,
//! libvolume), the acceptance list through the real docker CLI, and bad
//! requests that must give Docker's messages and leave nothing behind.
//!
//! berthd runs with networking in a fake host namespace (tests/common/
//! netns.rs): the real host's network is never touched. Skips with a
//! printed reason when not root or when there is no docker CLI.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::netns::{start_net, NetDaemon, HOST_IP};
use common::DOCKER;
use libswarm::dockerclient::DockerClient;
use libswarm::dockerserver::ListenAddr;
use libswarm::suite::{self, Part};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libswarm_suite_passes_against_berthd() {
    let Some(d) = tokio::task::spawn_blocking(start_net).await.unwrap() else {
        return;
    };
    let sock = d.dir.path().join("s.sock");
    let client = DockerClient::connect(ListenAddr::Unix(sock)).await.unwrap();
    let results = suite::run_each(Arc::new(client), &Part::ALL).await;
    let mut failed = Vec::new();
    for (part, result) in &results {
        match result {
            Ok(()) => eprintln!("suite {part:?}: ok"),
            Err(e) => failed.push(format!("{part:?}: {e}")),
        }
    }
    // Every part, none skipped.
    assert_eq!(results.len(), Part::ALL.len());
    assert!(failed.is_empty(), "suite failures: {failed:#?}");
    // The suite removes what it made.
    let left = d.ok(&["ps", "-aq"]);
    assert!(left.is_empty(), "containers left: {left}");
    let t = d.traces();
    assert!(t.containers.is_empty() && t.sandboxes.is_empty(), "{t:?}");
    tokio::task::spawn_blocking(move || drop(d)).await.unwrap();
}

const HTTPD: &str =
    "mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p 80 -h /www";

/// The acceptance list, each item once, against one berthd (the
/// daemon-restart item is berthd_restart's).
#[test]
fn acceptance_list() {
    let Some(d) = start_net() else { return };
    // `docker run --rm busybox echo hi` prints hi.
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    // `docker run -d -p 8080:80 busybox httpd -f -p 80` serves a file at
    // 127.0.0.1:8080 from the (fake) host.
    d.ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80",
    ]);
    d.ok(&["exec", "web", "sh", "-c", "echo served > /index.html"]);
    assert_eq!(
        d.fetch(&d.fake_host, "http://127.0.0.1:8080/index.html"),
        "served\n"
    );
    assert_eq!(
        d.fetch(&d.outside, &format!("http://{HOST_IP}:8080/index.html")),
        "served\n"
    );
    // Two containers on a user network reach each other by name.
    d.ok(&["network", "create", "accept"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "accept",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let fetch = "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://srv/ && exit 0; sleep 0.3; done; exit 1";
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "accept",
            "busybox",
            "sh",
            "-c",
            fetch
        ]),
        "hello-berth\n"
    );
    // A named volume written by one container is read by another.
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "shared:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    // `docker exec -it` under a pty (script(1) gives the client one).
    if Path::new("/usr/bin/script").is_file() {
        let cmd = format!("{DOCKER} exec -it web sh -c 'test -t 0 && test -t 1 && echo in-pty'");
        let out = Command::new("/usr/bin/script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("DOCKER_HOST", &d.host)
            .env("DOCKER_CONFIG", d.dir.path().join("config"))
            .env("DOCKER_CLI_HINTS", "false")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("in-pty"), "{text}");
    } else {
        eprintln!("SKIP (exec -it part): no /usr/bin/script for a client pty");
    }
    // logs, stop, kill, inspect exit codes.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "exiter",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; exit 3",
    ]);
    assert_eq!(d.ok(&["wait", "exiter"]).trim(), "3");
    let logs = d.docker(&["logs", "exiter"]);
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("one\n", "two\n")
    );
    let state = |n: &str| d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n]);
    assert_eq!(state("exiter").trim(), "exited 3");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "termed",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    d.ok(&["stop", "-t", "5", "termed"]);
    assert_eq!(state("termed").trim(), "exited 7");
    d.ok(&["run", "-d", "--name", "killed", "busybox", "sleep", "60"]);
    d.ok(&["kill", "killed"]);
    assert_eq!(d.ok(&["wait", "killed"]).trim(), "137");
    assert_eq!(state("killed").trim(), "exited 137");
    d.ok(&["rm", "-f", "web", "srv", "exiter", "termed", "killed"]);
    d.ok(&["network", "rm", "accept"]);
    d.ok(&["volume", "rm", "shared"]);
    let t = d.traces();
    assert!(t.containers.is_empty() && t.sandboxes.is_empty(), "{t:?}");
}

/// berthd with `--network-host-netns none` refuses what needs networking
/// instead of ignoring it.
#[test]
fn without_networking_published_ports_are_refused() {
    let Some(d) = common::start() else { return };
    for publish in [&["-p", "8080:80"][..], &["-P", "--expose", "80"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(publish);
        args.extend(["busybox", "true"]);
        let out = d.docker(&args);
        assert_ne!(out.code, 0, "docker {args:?} published without networking");
        assert!(
            out.stderr.contains("publishing ports needs networking"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
    assert_eq!(common::containers_left(&d), 0);
}

/// Runs a failing command and checks that it left no trace.
fn fails_cleanly(d: &NetDaemon, args: &[&str], want: &str) {
    let before = d.traces();
    d.fails(args, want);
    let after = d.traces();
    assert_eq!(before, after, "docker {args:?} left something behind");
}

#[test]
fn bad_requests_give_docker_errors_and_leave_nothing() {
    let Some(d) = start_net() else { return };
    d.ok(&[
        "run", "-d", "--name", "holder", "-p", "8080:80", "busybox", "sleep", "60",
    ]);
    // A taken host port.
    fails_cleanly(
        &d,
        &["run", "-d", "-p", "8080:80", "busybox", "true"],
        "Bind for 0.0.0.0:8080 failed: port is already allocated",
    );
    // A taken static address fails in libnetwork's join, after the
    // sandbox was made: it goes again.
    d.ok(&["network", "create", "--subnet", "10.66.0.0/24", "sub"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pinned",
        "--network",
        "sub",
        "--ip",
        "10.66.0.9",
        "busybox",
        "sleep",
        "60",
    ]);
    fails_cleanly(
        &d,
        &[
            "run",
            "-d",
            "--network",
            "sub",
            "--ip",
            "10.66.0.9",
            "busybox",
            "true",
        ],
        "Address already in use",
    );
    fails_cleanly(
        &d,
        &[
            "run",
            "-d",
            "--network",
            "sub",
            "--ip",
            "10.67.0.9",
            "busybox",
            "true",
        ],
        "no configured subnet or ip-range contain the IP address 10.67.0.9",
    );
    fails_cleanly(
        &d,
        &["network", "connect", "--ip", "10.66.0.9", "sub", "holder"],
        "Address already in use",
    );
    fails_cleanly(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "container:nosuch",
            "busybox",
            "true",
        ],
        "No such container: nosuch",
    );
    fails_cleanly(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "container:pinned",
            "-p",
            "80",
            "busybox",
            "true",
        ],
        "conflicting options: port publishing and the container type network mode",
    );
    d.ok(&["rm", "-f", "pinned"]);
    d.ok(&["network", "rm", "sub"]);
    // A taken name.
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "holder"]);
    fails_cleanly(
        &d,
        &["run", "-d", "--name", "holder", "busybox", "true"],
        &format!(
            "Conflict. The container name \"/holder\" is already in use by container \"{}\"",
            id.trim()
        ),
    );
    // An unknown network.
    fails_cleanly(
        &d,
        &["run", "--rm", "--network", "nonet", "busybox", "true"],
        "network nonet not found",
    );
    // An unknown image: the CLI tries a pull (from Docker Hub, which is not
    // reachable here), and it fails.
    let err = d.fails(&["run", "--rm", "nosuch", "true"], "Unable to find image");
    assert!(err.contains("nosuch"), "{err}");
    fails_cleanly(
        &d,
        &["create", "--pull", "never", "nosuch"],
        "No such image: nosuch",
    );
    fails_cleanly(&d, &["rmi", "nosuch"], "No such image: nosuch");
    // A bad mount: the runtime fails at start; docker run --rm removes
    // the container, and with it its cgroup, rootfs and sandbox.
    fails_cleanly(
        &d,
        &["run", "--rm", "-v", "/etc/hostname:/bin", "busybox", "true"],
        "Not a directory",
    );
    // The same without --rm: the container stays (Created, as Docker's);
    // its cgroups are gone, and rm takes everything else.
    let before = d.traces();
    let id = d.ok(&["create", "-v", "/etc/hostname:/bin", "busybox", "true"]);
    let id = id.trim();
    d.fails(&["start", id], "Not a directory");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", id]).trim(),
        "created"
    );
    for ctl in ["pids", "memory", "cpu"] {
        let cg = format!("/sys/fs/cgroup/{ctl}/berth/{id}");
        assert!(!Path::new(&cg).exists(), "{cg} left after a failed start");
    }
    d.ok(&["rm", id]);
    assert_eq!(before, d.traces(), "a failed start left something behind");
    d.ok(&["rm", "-f", "holder"]);
}
