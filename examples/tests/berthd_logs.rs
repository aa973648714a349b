//! `docker logs` read from the json-file log on disk, through the real
//! docker CLI: a log of tens of MB leaves berthd's memory (VmHWM) well
//! below the log's size, `--tail` reads back from the end, `--since`,
//! `--until`, `-t` and `-f` select like Docker's json-file driver, stdout
//! and stderr stay apart, logs outlive the run and a berthd restart, and
//! `run`/`attach` still stream live output. Also the exec and image tag
//! events.
//!
//! Each test starts its own berthd through the shared harness, whose guard
//! removes the daemon, containers, mounts and state, also on failure.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A status field of berthd's process in kB (`VmRSS`, `VmHWM`).
fn memory_kb(d: &Daemon, field: &str) -> u64 {
    status_kb(d.child.as_ref().expect("berthd runs").id(), field)
}

/// The pid of the `berthd shim` process of container `id`.
fn shim_pid(id: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args.get(1) == Some(&&b"shim"[..]) && args.contains(&id.as_bytes());
        ours.then_some(pid)
    })
}

/// A status field of a process in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn log_path(d: &Daemon, name: &str) -> String {
    d.ok(&["inspect", "-f", "{{.LogPath}}", name])
        .trim()
        .to_string()
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops berthd with SIGTERM (its containers have exited) and starts it
/// again on the same socket, root and exec root.
fn restart_daemon(d: &mut Daemon) {
    d.stop(nix::sys::signal::Signal::SIGTERM);
    if let Err(e) = d.launch(&[]) {
        panic!("berthd did not start again: {e}");
    }
}

#[test]
fn a_large_log_stays_on_disk_and_tail_reads_from_the_end() {
    let Some(mut d) = start() else { return };
    const LINES: u32 = 600_000;
    let rss_before = memory_kb(&d, "VmRSS");
    // The shim stays up after the output, for its memory to be read.
    let script = format!("seq 1 {LINES}; exec sleep 60");
    let id = d.ok(&["run", "-d", "--name", "big", "busybox", "sh", "-c", &script]);
    eventually("the whole output logged", || {
        d.ok(&["logs", "--tail", "1", "big"]) == format!("{LINES}\n")
    });
    // Its peak less its mapped binary (a debug build's is ~20 MB).
    let shim_hwm =
        shim_pid(id.trim()).map(|pid| status_kb(pid, "VmHWM") - status_kb(pid, "RssFile"));
    d.ok(&["kill", "big"]);
    assert_eq!(d.ok(&["wait", "big"]).trim(), "137");
    let size_kb = std::fs::metadata(log_path(&d, "big")).unwrap().len() / 1024;
    assert!(size_kb > 20 * 1024, "the log is only {size_kb} kB");
    // The shim wrote every line itself and queues at most a few chunks.
    let shim_hwm = shim_hwm.expect("the container's shim process");
    assert!(shim_hwm < size_kb / 4, "the shim's peak: {shim_hwm} kB");

    let t = Instant::now();
    let out = d.ok(&["logs", "--tail", "3", "big"]);
    let tail_took = t.elapsed();
    assert_eq!(out, format!("{}\n{}\n{LINES}\n", LINES - 2, LINES - 1));
    assert!(
        tail_took < Duration::from_secs(3),
        "--tail 3 took {tail_took:?}"
    );

    // The whole log, read as the CLI writes it (run_docker would fill
    // the pipe).
    let mut all = Command::new(DOCKER)
        .args(["logs", "big"])
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", d.dir.path().join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut count, mut first, mut last) = (0u32, String::new(), String::new());
    for line in BufReader::new(all.stdout.take().unwrap()).lines() {
        last = line.unwrap();
        if count == 0 {
            first = last.clone();
        }
        count += 1;
    }
    assert!(all.wait().unwrap().success());
    assert_eq!((count, first.as_str()), (LINES, "1"));
    assert_eq!(last, LINES.to_string());

    // Writing the log, then reading all of it back, grew berthd's peak far
    // less than the log's size (it kept the whole log before).
    let hwm = memory_kb(&d, "VmHWM");
    let rss = memory_kb(&d, "VmRSS");
    eprintln!(
        "log {size_kb} kB; berthd VmRSS {rss_before} kB before, {rss} kB after, VmHWM {hwm} kB; shim VmHWM-RssFile {shim_hwm} kB; --tail 3 took {tail_took:?}"
    );
    assert!(
        hwm.saturating_sub(rss_before) < size_kb / 4,
        "berthd's peak grew by {} kB for a {size_kb} kB log",
        hwm - rss_before
    );

    // After a restart, berthd reads the same file.
    restart_daemon(&mut d);
    let out = d.ok(&["logs", "--tail", "2", "big"]);
    assert_eq!(out, format!("{}\n{LINES}\n", LINES - 1));
    d.ok(&["rm", "big"]);
}

#[test]
fn logs_follow_misses_nothing_of_a_fast_writer() {
    let Some(d) = start() else { return };
    const LINES: u32 = 100_000;
    let script = format!("sleep 0.5; seq 1 {LINES}");
    d.ok(&[
        "run", "-d", "--name", "fast", "busybox", "sh", "-c", &script,
    ]);
    let mut follow = Command::new(DOCKER)
        .args(["logs", "-f", "fast"])
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", d.dir.path().join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut next = 1u32;
    for line in BufReader::new(follow.stdout.take().unwrap()).lines() {
        assert_eq!(line.unwrap(), next.to_string(), "lines in order, none lost");
        next += 1;
    }
    assert!(follow.wait().unwrap().success());
    assert_eq!(next - 1, LINES);
    d.ok(&["rm", "fast"]);
}

#[test]
fn logs_select_streams_times_and_follow_like_json_file() {
    let Some(d) = start() else { return };
    // Apart in time: stdout and stderr are separate pipes, read apart.
    let script = "echo early; sleep 0.3; echo oops >&2; sleep 2.2; echo late";
    d.ok(&[
        "run", "-d", "--name", "timed", "busybox", "sh", "-c", script,
    ]);
    eventually("the first lines", || {
        d.docker(&["logs", "timed"]).stderr.contains("oops")
    });
    // -f --tail 1 of a running container: the last line, then live ones
    // until the container exits.
    let out = d.docker(&["logs", "-f", "--tail", "1", "timed"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("late\n", "oops\n")
    );

    // stdout and stderr stay apart; -t prefixes each line.
    let out = d.docker(&["logs", "timed"]);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("early\nlate\n", "oops\n")
    );
    let stamped = d.ok(&["logs", "-t", "timed"]);
    let stamps: Vec<(&str, &str)> = stamped
        .lines()
        .map(|l| l.split_once(' ').expect("a timestamp"))
        .collect();
    assert_eq!(stamps.len(), 2);
    assert_eq!(stamps[1].1, "late");
    let secs = |t: &str| {
        let out = Command::new("date")
            .args(["-u", "-d", t, "+%s"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let (early, late) = (secs(stamps[0].0), secs(stamps[1].0));
    assert!(late > early, "{stamped}");

    let since = d.docker(&["logs", "--since", &late.to_string(), "timed"]);
    assert_eq!(
        (since.stdout.as_str(), since.stderr.as_str()),
        ("late\n", "")
    );
    let until = d.docker(&["logs", "--until", &(early + 2).to_string(), "timed"]);
    assert_eq!(
        (until.stdout.as_str(), until.stderr.as_str()),
        ("early\n", "oops\n")
    );
    // --tail counts both streams' lines, as json-file does.
    let tail = d.docker(&["logs", "--tail", "2", "timed"]);
    assert_eq!(
        (tail.stdout.as_str(), tail.stderr.as_str()),
        ("late\n", "oops\n")
    );
    assert_eq!(d.ok(&["logs", "--tail", "0", "timed"]), "");
    assert_eq!(
        d.ok(&["logs", "--since", "2099-01-01T00:00:00Z", "timed"]),
        ""
    );

    // Never started: no log file yet, and nothing to show.
    d.ok(&["create", "--name", "fresh", "busybox", "true"]);
    assert_eq!(d.ok(&["logs", "--tail", "5", "fresh"]), "");
    d.ok(&["rm", "fresh"]);

    let missing = d.docker(&["logs", "nope"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing
            .stderr
            .contains("Error response from daemon: No such container: nope"),
        "{}",
        missing.stderr
    );
    d.ok(&["rm", "timed"]);
}

#[test]
fn run_and_attach_still_stream_live_output() {
    let Some(d) = start() else { return };
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 0.3; echo b >&2",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("a\n", "b\n"));

    // attach gets the output written after it attached, live.
    // Ticks until /go exists: the first tick read through the attach
    // shows it is live.
    let script =
        "while [ ! -e /go ]; do echo tick; sleep 0.1; done; echo attached; sleep 0.3; echo bye";
    d.ok(&[
        "run", "-d", "--name", "later", "busybox", "sh", "-c", script,
    ]);
    let mut attach = Command::new(DOCKER)
        .args(["attach", "later"])
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", d.dir.path().join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(attach.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "tick");
    d.ok(&["exec", "later", "touch", "/go"]);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).filter(|l| l != "tick").collect();
    assert_eq!(rest, ["attached", "bye"]);
    assert!(attach.wait().unwrap().success());
    let logged = d.ok(&["logs", "later"]);
    assert!(logged.ends_with("tick\nattached\nbye\n"), "{logged}");
    d.ok(&["rm", "later"]);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `docker events` from `since` to a second past now, filtered, one
/// formatted line per event.
fn events(d: &Daemon, since: u64, filters: &[&str], format: &str) -> Vec<String> {
    let (since, until) = (since.to_string(), (unix_now() + 1).to_string());
    let mut args = vec!["events", "--since", &since, "--until", &until];
    for f in filters {
        args.extend(["--filter", f]);
    }
    args.extend(["--format", format]);
    d.ok(&args).lines().map(String::from).collect()
}

#[test]
fn exec_and_image_tag_events_carry_dockers_attributes() {
    let Some(d) = start() else { return };
    let since = unix_now();
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "30"]);
    let out = d.docker(&["exec", "box", "sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let execs = events(
        &d,
        since,
        &["type=container", "container=box"],
        "{{.Action}}|{{.Actor.Attributes.execID}}|{{.Actor.Attributes.exitCode}}|{{.Actor.Attributes.name}}",
    );
    let execs: Vec<Vec<&str>> = execs
        .iter()
        .filter(|l| l.starts_with("exec_"))
        .map(|l| l.split('|').collect())
        .collect();
    let actions: Vec<&str> = execs.iter().map(|e| e[0]).collect();
    assert_eq!(
        actions,
        [
            "exec_create: sh -c exit 3",
            "exec_start: sh -c exit 3",
            "exec_die"
        ]
    );
    let exec_id = execs[0][1];
    assert_eq!(exec_id.len(), 64, "{execs:?}");
    assert!(
        execs.iter().all(|e| e[1] == exec_id && e[3] == "box"),
        "{execs:?}"
    );
    assert_eq!(execs[2][2], "3", "exec_die carries the exit code");
    let only_die = events(
        &d,
        since,
        &["event=exec_die"],
        "{{.Actor.Attributes.execID}}",
    );
    assert_eq!(only_die, [exec_id]);
    d.ok(&["rm", "-f", "box"]);

    let image_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let image_id = image_id.trim();
    d.ok(&["tag", "busybox", "mybox:v1"]);
    d.ok(&["tag", "busybox", "mybox"]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Id}}", "mybox:v1"])
            .trim(),
        image_id
    );
    let out = d.ok(&["rmi", "mybox:v1"]);
    assert!(out.contains("Untagged: mybox:v1"), "{out}");
    let missing = d.docker(&["tag", "nope", "other"]);
    assert!(
        missing
            .stderr
            .contains("Error response from daemon: No such image: nope"),
        "{}",
        missing.stderr
    );
    let images = events(
        &d,
        since,
        &["type=image", "event=tag", "event=untag"],
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    );
    assert_eq!(
        images,
        [
            format!("tag {image_id} mybox:v1"),
            format!("tag {image_id} mybox:latest"),
            format!("untag {image_id} mybox:v1"),
        ]
    );
    let untags = events(&d, since, &["image=mybox:v1", "event=untag"], "{{.Action}}");
    assert_eq!(untags, ["untag"]);

    // libswarm's Docker API client tags through the same endpoint.
    let sock = d.dir.path().join("s.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use libswarm::Backend;
        let client = libswarm::dockerclient::DockerClient::connect(
            libswarm::dockerserver::ListenAddr::Unix(sock),
        )
        .await
        .unwrap();
        client
            .image_tag("busybox", "viaclient", Some("1"))
            .await
            .unwrap();
        let e = client.image_tag("nope", "x", None).await.unwrap_err();
        assert_eq!(e.message, "No such image: nope");
    });
    let tagged = d.ok(&["image", "inspect", "-f", "{{.Id}}", "viaclient:1"]);
    assert_eq!(tagged.trim(), image_id);
}
