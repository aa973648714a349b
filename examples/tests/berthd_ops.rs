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

    // Without names: every running container.
    let all = d.ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"]);
    assert_eq!(all.trim(), "st 3", "{all}");

    // Streaming: a sample a second until the client goes.
    let mut live = std::process::Command::new(DOCKER)
        .args(["stats", "--format", "{{.Name}} {{.PIDs}}", "st"])
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", d.dir.path().join("config"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = live.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut samples = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while samples < 2 && std::time::Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            if l.contains("st 3") {
                samples += 1;
            }
        }
    }
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(samples, 2, "two streamed samples");

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

#[test]
fn mount_flag_binds_volumes_and_tmpfs_with_docker_errors() {
    let Some(d) = start() else { return };
    let host_dir = d.dir.path().join("hostdir");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from host\n").unwrap();
    let bind = format!("type=bind,src={},dst=/b,readonly", host_dir.display());
    let out = d.ok(&[
        "run", "--rm", "--mount", &bind, "--mount", "type=volume,src=mv,dst=/data",
        "--mount", "type=tmpfs,dst=/t,tmpfs-size=1048576,tmpfs-mode=1770", "busybox", "sh",
        "-c",
        "cat /b/f; touch /b/g 2>/dev/null || echo ro; echo v > /data/v; grep ' /t ' /proc/mounts; stat -c %a /t",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from host", "{out}");
    assert_eq!(lines[1], "ro", "{out}");
    assert!(
        lines[2].starts_with("tmpfs /t tmpfs") && lines[2].contains("size=1024k"),
        "{out}"
    );
    assert_eq!(lines[3], "1770", "{out}");
    // The named volume was made on first use and kept.
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "source=mv,target=/data",
        "busybox",
        "cat",
        "/data/v",
    ]);
    assert_eq!(out, "v\n");
    // Anonymous volume through --mount (no source), shown in inspect.
    let id = d.ok(&[
        "create",
        "--mount",
        "type=volume,dst=/anon",
        "busybox",
        "true",
    ]);
    let out = d.ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Type}} {{.Destination}} {{.Driver}}{{end}}",
        id.trim(),
    ]);
    assert_eq!(out.trim(), "volume /anon local");
    d.ok(&["rm", "-v", id.trim()]);

    let err = |args: &[&str]| {
        let out = d.docker(args);
        assert_ne!(out.code, 0, "{args:?} worked");
        out.stderr
    };
    let e = err(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,src=/nonexistent-berth,dst=/x",
        "busybox",
        "true",
    ]);
    assert!(
        e.contains("bind source path does not exist: /nonexistent-berth"),
        "{e}"
    );
    let e = err(&[
        "run",
        "--rm",
        "-v",
        "a1:/d",
        "--mount",
        "src=a2,dst=/d",
        "busybox",
        "true",
    ]);
    assert!(e.contains("Duplicate mount point: /d"), "{e}");
    let e = err(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,src=x,dst=/t",
        "busybox",
        "true",
    ]);
    assert!(e.contains("invalid mount config for type \"tmpfs\""), "{e}");
    // Nothing left by the refused runs: no containers, no a1 volume.
    assert_eq!(containers_left(&d), 0);
    let vols = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.trim(), "mv", "{vols}");
}

#[test]
fn volume_prune_removes_unused_anonymous_then_all() {
    let Some(d) = start() else { return };
    d.ok(&["volume", "create", "keep"]);
    d.ok(&["volume", "create", "--label", "tier=cold", "cold"]);
    // An anonymous volume left behind by `rm` without -v.
    let id = d.ok(&["create", "-v", "/anon", "busybox", "true"]);
    d.ok(&["rm", id.trim()]);
    // In use: a container holds it.
    d.ok(&[
        "create", "--name", "holder", "-v", "busy:/b", "-v", "/anon2", "busybox", "true",
    ]);
    let names = || {
        let mut v: Vec<String> = d
            .ok(&["volume", "ls", "-q"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names().len(), 5);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.contains("Deleted Volumes:"), "{out}");
    let left = names();
    assert_eq!(
        left.len(),
        4,
        "only the unused anonymous volume goes: {left:?}"
    );
    assert!(left.contains(&"keep".into()) && left.contains(&"busy".into()));
    let out = d.ok(&[
        "volume",
        "prune",
        "-a",
        "-f",
        "--filter",
        "label!=tier=cold",
    ]);
    assert!(out.contains("keep"), "{out}");
    let left = names();
    assert!(
        left.contains(&"cold".into()) && !left.contains(&"keep".into()),
        "{left:?}"
    );
    d.ok(&["volume", "prune", "-a", "-f"]);
    let left = names();
    assert_eq!(left.len(), 2, "the holder's volumes stay: {left:?}");
    d.ok(&["rm", "-v", "holder"]);
    d.ok(&["volume", "prune", "-a", "-f"]);
    assert!(names().is_empty());
    let out = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &(unix_now() + 1).to_string(),
        "--filter",
        "event=prune",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().all(|l| l == "volume prune"), "{out}");
    let out = d.docker(&["volume", "prune", "-f", "--filter", "until=1h"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("invalid filter 'until'"),
        "{}",
        out.stderr
    );
}

/// A berth-volume-plugin process serving a plugin socket, killed on drop.
struct PluginProcess(std::process::Child);

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(child: &mut std::process::Child, what: &str) {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{what} said {line:?}");
}

#[test]
fn volume_plugins_serve_as_drivers() {
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new(DOCKER).is_file() {
        eprintln!("SKIP: needs root and the docker CLI");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("berthd-plug")
        .tempdir()
        .unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let name = format!("berthtest{}", std::process::id());
    let mut plugin = std::process::Command::new(env!("CARGO_BIN_EXE_berth-volume-plugin"))
        .arg("--name")
        .arg(&name)
        .arg("--root")
        .arg(dir.path().join("plugin-root"))
        .arg("--socket")
        .arg(plugins.join(format!("{name}.sock")))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&mut plugin, "berth-volume-plugin");
    let _plugin = PluginProcess(plugin);
    let sock = dir.path().join("s.sock");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--host")
        .arg(format!("unix://{}", sock.display()))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .args(["--network-host-netns", "none"])
        .arg("--volume-plugin-dir")
        .arg(&plugins)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&mut child, "berthd");
    let d = Daemon {
        host: format!("unix://{}", sock.display()),
        dir,
        child: Some(child),
    };
    let archive = d.dir.path().join("busybox.tar");
    examples::images::write_busybox_image_archive(std::fs::File::create(&archive).unwrap())
        .unwrap();
    d.ok(&["load", "-i", archive.to_str().unwrap()]);

    assert_eq!(d.ok(&["volume", "create", "-d", &name, "pv"]).trim(), "pv");
    let out = d.ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(out.trim(), format!("pv {name}"));
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "pv:/data",
        "busybox",
        "sh",
        "-c",
        "echo plug > /data/f",
    ]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "pv:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "plug\n"
    );
    // The data lives where the plugin keeps its volumes.
    let mp = d.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "pv"]);
    assert!(
        mp.trim()
            .starts_with(d.dir.path().join("plugin-root").to_str().unwrap()),
        "{mp}"
    );
    // --volume-driver: volumes a container creates use the plugin.
    d.ok(&[
        "run",
        "--rm",
        "--volume-driver",
        &name,
        "-v",
        "auto:/d",
        "busybox",
        "touch",
        "/d/x",
    ]);
    let out = d.ok(&["volume", "inspect", "--format", "{{.Driver}}", "auto"]);
    assert_eq!(out.trim(), name);
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("src=viamount,dst=/m,volume-driver={name}"),
        "busybox",
        "true",
    ]);
    assert_eq!(out, "");
    let out = d.ok(&["volume", "inspect", "--format", "{{.Driver}}", "viamount"]);
    assert_eq!(out.trim(), name);
    let out = d.docker(&["volume", "create", "-d", "nosuchplugin", "xx"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("nosuchplugin"), "{}", out.stderr);
    d.ok(&["volume", "rm", "pv", "auto", "viamount"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn volumes_held_by_containers_survive_a_berthd_restart() {
    let Some(mut d) = start() else { return };
    d.ok(&[
        "create", "--name", "vh", "-v", "rv:/data", "-v", "/anon", "busybox", "true",
    ]);
    let mounts = |d: &Daemon| {
        let out = d.ok(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Destination}}:{{.Driver}} {{end}}",
            "vh",
        ]);
        let mut m: Vec<String> = out.split_whitespace().map(String::from).collect();
        m.sort();
        m
    };
    assert_eq!(mounts(&d), ["/anon:local", "/data:local"]);
    // berthd killed outright, then started again on the same root.
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--host")
        .arg(&d.host)
        .arg("--root")
        .arg(d.root())
        .arg("--exec-root")
        .arg(d.dir.path().join("run"))
        .args(["--network-host-netns", "none"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&mut child, "berthd");
    d.child = Some(child);
    assert_eq!(mounts(&d), ["/anon:local", "/data:local"]);
    let out = d.docker(&["volume", "rm", "rv"]);
    assert_ne!(out.code, 0, "removed a volume in use");
    assert!(out.stderr.contains("volume is in use"), "{}", out.stderr);
    // rm -v releases both and removes the anonymous one.
    d.ok(&["rm", "-v", "vh"]);
    d.ok(&["volume", "rm", "rv"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
    assert!(std::fs::read_dir(d.root().join("volume-holders"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn stats_count_network_traffic_of_the_container_namespace() {
    let Some(d) = common::netns::start_net() else {
        return;
    };
    d.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "ping -c 3 -i 0.2 172.17.0.1 >/dev/null; sleep 100",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let out = d.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "talker"]);
    // Three pings each way and ARP: neither side is zero.
    let (rx, tx) = out.trim().split_once(" / ").unwrap();
    assert!(rx != "0B" && tx != "0B", "{out}");
    let out = d.ok(&["stats", "--no-stream", "--format", "{{.BlockIO}}", "talker"]);
    assert!(out.contains(" / "), "{out}");
    d.ok(&["rm", "-f", "talker"]);
}
