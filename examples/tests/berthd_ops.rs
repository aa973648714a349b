//! berthd's `docker stats`, `top`, `events`, seccomp profiles, `--mount`,
//! `volume prune` and volume plugins, driven by the real docker CLI.
//!
//! The harness (tests/common) is berthd_cli.rs's: berthd on a socket in a
//! temp dir with a temp `--root` and `--exec-root`, busybox loaded with
//! `docker load`, everything removed by a Drop guard, also when a test
//! fails. Skips with a printed reason when not root or when there is no
//! docker CLI.

mod common;

use common::*;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn stats_and_top_show_the_container_processes() {
    let Some(d) = start() else { return };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & sleep 1001 & wait",
    ]);
    let out = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}",
        "st",
    ]);
    let f: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(f.len(), 4, "{out}");
    assert_eq!(f[0], "st");
    // sh and two sleeps, under the --memory limit.
    assert_eq!(f[2], "3", "{out}");
    assert!(f[1].ends_with("/ 64MiB"), "{out}");
    assert!(!f[1].starts_with("0B"), "{out}");
    assert!(f[3].ends_with('%'), "{out}");

    let out = d.ok(&["top", "st"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("PID") && lines[0].contains("CMD"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("sh -c sleep 1000 & sleep 1001 & wait")),
        "{out}"
    );
    assert!(
        out.contains("sleep 1000") && out.contains("sleep 1001"),
        "{out}"
    );
    // ps arguments pass through.
    let out = d.ok(&["top", "st", "-o", "pid,comm"]);
    assert!(out.lines().next().unwrap().contains("COMMAND"), "{out}");
    assert_eq!(out.matches("sleep").count(), 2, "{out}");

    d.ok(&["stop", "-t", "0", "st"]);
    let out = d.docker(&["top", "st"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("is not running"), "{}", out.stderr);
    // A stopped container has zero usage (as Docker).
    let out = d.ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "st"]);
    assert_eq!(out.trim(), "0");
    let out = d.docker(&["stats", "--no-stream", "nosuch"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("No such container"), "{}", out.stderr);
}

#[test]
fn events_report_lifecycles_with_filters_and_time_bounds() {
    let since = unix_now().to_string();
    let Some(d) = start() else { return };
    d.ok(&["volume", "create", "evvol"]);
    let out = d.docker(&[
        "run",
        "--name",
        "ev",
        "-v",
        "evvol:/data",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    d.ok(&["rm", "ev"]);
    d.ok(&["volume", "rm", "evvol"]);
    let until = (unix_now() + 1).to_string();
    let events = |filters: &[&str]| -> Vec<String> {
        let mut args =
                vec![
            "events", "--since", &since, "--until", &until, "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes \"exitCode\"}}",
        ];
        for f in filters {
            args.extend(["--filter", f]);
        }
        d.ok(&args).lines().map(|l| l.trim().to_string()).collect()
    };
    let all = events(&["container=ev"]);
    assert_eq!(
        all,
        [
            "container create ev",
            "container start ev",
            "container die ev 3",
            "container destroy ev"
        ],
        "{all:?}"
    );
    assert_eq!(events(&["event=die"]), ["container die ev 3"]);
    let vols = events(&["type=volume"]);
    let actions: Vec<&str> = vols.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        actions,
        ["create", "mount", "unmount", "destroy"],
        "{vols:?}"
    );
    let images = events(&["type=image"]);
    assert_eq!(images, ["image load busybox:latest"], "{images:?}");

    // Live: a streaming `docker events` sees a start as it happens.
    let mut live = std::process::Command::new(DOCKER)
        .args([
            "events",
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", d.dir.path().join("config"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.ok(&["run", "--rm", "--name", "live1", "busybox", "true"]);
    let out = live.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(10));
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(line.unwrap().trim(), "live1");
}

#[test]
fn seccomp_default_allowlist_custom_profiles_and_unconfined() {
    let Some(d) = start() else { return };
    let unshare = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "unshare", "-m", "true"]);
        d.docker(&args)
    };
    // As Docker: unshare needs CAP_SYS_ADMIN, and the default profile
    // allows it exactly when the container holds it.
    let denied = unshare(&[]);
    assert_ne!(denied.code, 0, "unshare allowed by default");
    assert!(
        denied.stderr.contains("Operation not permitted"),
        "{}",
        denied.stderr
    );
    let allowed = unshare(&["--cap-add", "SYS_ADMIN"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    // clone3 answers ENOSYS without CAP_SYS_ADMIN: threads and forks work.
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "sh", "-c", "(echo sub) | cat"]),
        "sub\n"
    );

    // A custom profile (the CLI sends the file's contents) blocking mkdir.
    let profile = d.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_ne!(out.code, 0, "mkdir allowed under the custom profile");
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    // The same profile leaves the rest alone; without it mkdir works.
    let out = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "echo ok",
    ]);
    assert_eq!(out, "ok\n");
    d.ok(&["run", "--rm", "busybox", "mkdir", "/x"]);
    // Unconfined: no filter (Seccomp: 0 in /proc/self/status).
    let out = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]);
    assert!(out.ends_with("0\n"), "{out}");
    let out = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]);
    assert!(out.ends_with("2\n"), "{out}");

    // A bad profile is refused with its error, and nothing is left.
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = d.docker(&["run", "--rm", "--security-opt", &opt, "busybox", "true"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("seccomp profile: syscalls[0] has no names"),
        "{}",
        out.stderr
    );
    assert_eq!(containers_left(&d), 0);
}
