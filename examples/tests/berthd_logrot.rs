//! json-file log rotation through the real docker CLI: `--log-opt
//! max-size/max-file` keep at most max-file files of at most max-size (+
//! one line), `docker logs` (and `--tail`) read the newest lines in order
//! across the rotated files, `-f` follows across rotations, `docker
//! inspect` shows the LogConfig, berthd's `--log-opt` are defaults a
//! container's own options override, and bad drivers and options get
//! Docker's errors naming them.
//!
//! Each test starts its own berthd through the shared harness, whose guard
//! removes the daemon, containers, mounts and state, also on failure.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The longest json-file line these tests write, with room to spare.
const LINE: u64 = 200;

fn log_files(log: &Path) -> Vec<(String, u64)> {
    let dir = log.parent().unwrap();
    let base = log.file_name().unwrap().to_str().unwrap();
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_str()?.to_string();
            name.starts_with(base)
                .then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    out.sort();
    out
}

fn numbered(out: &str, prefix: &str) -> Vec<u32> {
    out.lines()
        .map(|l| {
            l.strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect()
}

#[test]
fn rotation_keeps_max_file_files_and_logs_reads_them_in_order() {
    let Some(d) = start() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    assert_eq!(d.ok(&["wait", "rot"]).trim(), "0");
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", "rot"]);
    let files = log_files(Path::new(log.trim()));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["container.log", "container.log.1", "container.log.2"],
        "max-file=3 keeps three files"
    );
    for (name, len) in &files {
        assert!(*len <= 4096 + LINE, "{name} is {len} bytes");
    }
    // The newest lines, in order, ending with the last.
    let all = numbered(&d.ok(&["logs", "rot"]), "line-");
    assert_eq!(all.last(), Some(&2999));
    let first = all[0];
    assert!(first > 0, "the oldest files were dropped");
    assert_eq!(all, (first..3000).collect::<Vec<_>>());
    // --tail counts back across the files (about 50 lines a file).
    let tail = numbered(&d.ok(&["logs", "--tail", "120", "rot"]), "line-");
    assert_eq!(tail, (2880..3000).collect::<Vec<_>>());
    let config = d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "rot"]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["Type"], "json-file");
    assert_eq!(config["Config"]["max-size"], "4k");
    assert_eq!(config["Config"]["max-file"], "3");
    d.ok(&["rm", "rot"]);
}

#[test]
fn bad_log_drivers_and_options_get_dockers_errors() {
    let Some(d) = start() else { return };
    let cases: &[(&[&str], &str)] = &[
        (
            &["--log-driver", "nope"],
            "logger: no log driver named 'nope' is registered",
        ),
        (&["--log-opt", "max-size=big"], "invalid size: 'big'"),
        (&["--log-opt", "max-size=0"], "max-size must be a positive"),
        (
            &["--log-opt", "max-file=0"],
            "max-file cannot be less than 1",
        ),
        (
            &["--log-opt", "max-sise=1m"],
            "unknown log opt 'max-sise' for json-file log driver",
        ),
    ];
    for (opts, want) in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "true"]);
        let out = d.docker(&args);
        assert_ne!(out.code, 0, "docker {args:?} succeeded");
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    assert_eq!(containers_left(&d), 0, "a refused create left a container");
}

#[test]
fn logs_follow_keeps_following_across_rotations() {
    let Some(d) = start() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "fol",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=4",
        "busybox",
        "sh",
        "-c",
        // Waits for the follower, then writes ~25 rotations' worth, paced.
        "sleep 1; i=0; while [ $i -lt 600 ]; do echo f-$i; i=$((i+1)); \
         [ $((i % 20)) = 0 ] && sleep 0.05; done",
    ]);
    let mut follower = Command::new(DOCKER)
        .args(["logs", "-f", "fol"])
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", d.dir.path().join("config"))
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while follower.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = follower.kill();
            let _ = follower.wait();
            panic!("docker logs -f did not end with the container");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    follower
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(numbered(&out, "f-"), (0..600).collect::<Vec<_>>());
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", "fol"]);
    let files = log_files(Path::new(log.trim()));
    assert_eq!(files.len(), 4, "{files:?}");
    d.ok(&["rm", "-f", "fol"]);
}

#[test]
fn daemon_log_opts_are_defaults_a_container_can_override() {
    let Some(mut d) = start() else { return };
    d.stop(nix::sys::signal::Signal::SIGTERM);
    let err = d
        .launch(&["--log-opt", "max-size=lots"])
        .expect_err("berthd took a bad --log-opt");
    assert!(
        err.contains("--log-opt") && err.contains("max-size"),
        "{err}"
    );
    if let Err(e) = d.launch(&["--log-opt", "max-size=1k", "--log-opt", "max-file=2"]) {
        panic!("berthd: {e}");
    }
    let config = |name: &str| -> serde_json::Value {
        let out = d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", name]);
        serde_json::from_str(&out).unwrap()
    };
    let script = "i=0; while [ $i -lt 200 ]; do echo d-$i; i=$((i+1)); done";
    d.ok(&["run", "--name", "dflt", "busybox", "sh", "-c", script]);
    let c = config("dflt");
    assert_eq!(c["Type"], "json-file");
    assert_eq!(c["Config"]["max-size"], "1k");
    assert_eq!(c["Config"]["max-file"], "2");
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", "dflt"]);
    let files = log_files(Path::new(log.trim()));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().all(|(_, len)| *len <= 1024 + LINE),
        "{files:?}"
    );
    let tail = numbered(&d.ok(&["logs", "--tail", "3", "dflt"]), "d-");
    assert_eq!(tail, [197, 198, 199]);
    // The container's own option wins; the daemon's fills the rest.
    d.ok(&[
        "run",
        "--name",
        "own",
        "--log-opt",
        "max-file=5",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let c = config("own");
    assert_eq!(c["Config"]["max-file"], "5");
    assert_eq!(c["Config"]["max-size"], "1k");
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", "own"]);
    assert_eq!(log_files(Path::new(log.trim())).len(), 5);
    d.ok(&["rm", "dflt", "own"]);
}
