//! Root tests of `berth-runtime` pause/state/delete of a paused container,
//! and `exec` into a running one.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libcontainer::fixtures::BusyboxBundle;

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

/// A bundle and state root; force-deletes its container on drop.
struct Env {
    dir: tempfile::TempDir,
    id: String,
}

impl Env {
    /// A created-and-started container running `args`.
    fn started(id: &str, args: &[&str]) -> Self {
        Self::started_with(id, args, |_| {})
    }
    /// Like `started`, with the spec changed by `edit`.
    fn started_with(
        id: &str,
        args: &[&str],
        edit: impl FnOnce(&mut oci_spec::runtime::Spec),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundle = BusyboxBundle::new(dir.path().join("bundle"))
            .args(args.iter().copied())
            .write()
            .unwrap();
        let mut spec = bundle.load_spec().unwrap();
        edit(&mut spec);
        bundle.write_spec(&spec).unwrap();
        let env = Self {
            dir,
            id: format!("{id}-{}", std::process::id()),
        };
        let bundle = env.dir.path().join("bundle");
        let ok = env
            .cmd(&["create", "--bundle", bundle.to_str().unwrap(), &env.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "create failed");
        env.ok(&["start", &env.id]);
        env
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root()).args(args);
        c
    }
    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", &self.id])).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.out(&["delete", "--force", &self.id]);
    }
}

#[test]
fn paused_shows_in_state_and_force_delete_is_quick() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started("pause", &["sleep", "100"]);
    let id = env.id.clone();
    assert_eq!(env.state()["status"], "running");
    env.ok(&["pause", &id]);
    assert_eq!(env.state()["status"], "paused");
    env.ok(&["resume", &id]);
    assert_eq!(env.state()["status"], "running");
    env.ok(&["pause", &id]);
    let o = env.out(&["delete", &id]);
    assert!(!o.status.success(), "a paused container needs --force");
    let pid = env.state()["pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let freezer = cgroup
        .lines()
        .find_map(|l| l.split_once(":freezer:").map(|(_, p)| p.to_string()))
        .map(|p| PathBuf::from(format!("/sys/fs/cgroup/freezer{p}")));
    let t = Instant::now();
    env.ok(&["delete", "--force", &id]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert!(!env.root().join(&id).exists());
    if let Some(f) = freezer {
        assert!(!f.exists(), "cgroup {f:?} left behind");
    }
    // Dead: gone, or a zombie waiting for its reaper (not us).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, r)| &r[..1]);
    assert!(matches!(state, None | Some("Z") | Some("X")), "{stat}");
}

#[test]
fn exec_joins_the_namespaces_and_passes_the_status() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started("exec", &["sleep", "100"]);
    let id = env.id.clone();
    // uts namespace: the container's hostname, not ours.
    assert_eq!(env.ok(&["exec", &id, "hostname"]), "berth\n");
    // pid namespace: pid 1 is the container's sleep, and we are in it.
    let ps = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/1/cmdline; echo; echo $$",
    ]);
    let mut lines = ps.lines();
    assert_eq!(lines.next(), Some("sleep\x00100\x00"));
    let own: i32 = lines.next().unwrap().parse().unwrap();
    assert!(
        own > 1 && own < 100,
        "exec'd pid {own} is not a container pid"
    );
    // mount namespace and root: the container's rootfs.
    assert!(env.ok(&["exec", &id, "ls", "/"]).contains("bin"));
    // Exit status and death by signal pass through.
    let o = env.out(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = env.out(&["exec", &id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    // Flags: env, cwd, user.
    let o = env.ok(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u) $(id -g)",
    ]);
    assert_eq!(o, "bar /tmp 1000 1000\n");
    // The same cgroups as the init.
    // The same cgroups as the init (seen through its cgroup namespace).
    let cg = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/1/cgroup; echo; cat /proc/self/cgroup",
    ]);
    let (init_cg, exec_cg) = cg.split_once("\n\n").unwrap();
    assert_eq!(init_cg.trim(), exec_cg.trim());
    // A missing command is a clear error.
    let o = env.out(&["exec", &id, "/no/such/thing"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/thing"));
}

#[test]
fn exec_with_a_process_json_and_detach() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started("execp", &["sleep", "100"]);
    let id = env.id.clone();
    let pj = env.dir.path().join("process.json");
    std::fs::write(
        &pj,
        r#"{"args":["sh","-c","echo $X; grep NoNewPrivs /proc/self/status"],"env":["PATH=/bin","X=from-json"],"cwd":"/","user":{"uid":0,"gid":0},"noNewPrivileges":true}"#,
    )
    .unwrap();
    let o = env.ok(&["exec", "--process", pj.to_str().unwrap(), &id]);
    assert!(o.starts_with("from-json\nNoNewPrivs:\t1"), "{o}");
    let pidf = env.dir.path().join("exec.pid");
    // The detached process keeps its stdio: do not wait for EOF on a pipe.
    let ok = env
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            pidf.to_str().unwrap(),
            &id,
            "sleep",
            "50",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let pid: i32 = std::fs::read_to_string(&pidf).unwrap().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let ps = env.ok(&["ps", &id]);
    assert!(ps.contains(&pid.to_string()), "{ps}");
}

#[test]
fn exec_into_a_stopped_or_paused_container_is_a_clear_error() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started("execs", &["sleep", "100"]);
    let id = env.id.clone();
    env.ok(&["pause", &id]);
    let o = env.out(&["exec", &id, "true"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("paused"));
    env.ok(&["resume", &id]);
    env.ok(&["kill", &id, "KILL"]);
    let t = Instant::now();
    while env.state()["status"] != "stopped" && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = env.out(&["exec", &id, "true"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stopped") && err.contains("cannot exec"),
        "{err}"
    );
}

/// Receive one fd and its name from a console socket (runc's recvtty).
fn recv_console(listener: &std::os::unix::net::UnixListener) -> (std::fs::File, String) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (conn, _) = listener.accept().unwrap();
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    // SAFETY: the fd just received is ours.
    let file = unsafe { std::fs::File::from_raw_fd(fd.expect("no fd received")) };
    (file, String::from_utf8_lossy(&name[..n]).into_owned())
}

#[test]
fn console_socket_receives_the_terminal_master() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = BusyboxBundle::new(dir.path().join("bundle"))
        .args([
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo tty-ok; stty size; tty; ls -l /proc/self/fd/0; \
             stat -c 'console %t:%T' /dev/console; stat -L -c 'stdin %t:%T' /proc/self/fd/0; \
             echo hello-console; sleep 100",
        ])
        .write()
        .unwrap();
    let mut spec = bundle.load_spec().unwrap();
    let mut p = spec.process().clone().unwrap();
    p.set_terminal(Some(true));
    p.set_console_size(Some(
        oci_spec::runtime::BoxBuilder::default()
            .height(33u64)
            .width(101u64)
            .build()
            .unwrap(),
    ));
    spec.set_process(Some(p));
    bundle.write_spec(&spec).unwrap();
    let sock = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let env = Env {
        id: format!("tty-{}", std::process::id()),
        dir,
    };
    let id = env.id.clone();
    // Without a console socket (and no terminal on stdin): a clear error.
    let o = env.out(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("process.terminal"));
    assert!(!env.root().join(&id).exists());
    let receiver = std::thread::spawn(move || recv_console(&listener));
    env.ok(&[
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let (mut master, name) = receiver.join().unwrap();
    // The container's own devpts (newinstance): its first pty, and not
    // a pty of the host's devpts.
    assert_eq!(name, "/dev/pts/0");
    assert_ne!(
        dev_of(&master),
        std::fs::metadata("/dev/pts/ptmx").unwrap().dev(),
        "the pty must not come from the host's devpts"
    );
    env.ok(&["start", &id]);
    let mut seen = String::new();
    let t = Instant::now();
    while !seen.contains("hello-console") && t.elapsed() < Duration::from_secs(5) {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut master, &mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains("tty-ok\r\n33 101\r\n/dev/pts/0\r\n"),
        "{seen:?}"
    );
    assert!(
        seen.contains("/proc/self/fd/0 -> /dev/pts/0\r\n"),
        "{seen:?}"
    );
    // /dev/console is a bind of the slave (devpts major 136, 0x88).
    assert!(
        seen.contains("console 88:0\r\nstdin 88:0\r\nhello-console"),
        "{seen:?}"
    );
}

/// The device of the filesystem `f` lives on.
fn dev_of(f: &std::fs::File) -> u64 {
    f.metadata().unwrap().dev()
}

#[test]
fn exec_tty_sends_the_master_and_applies_the_container_capabilities() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started("exect", &["sleep", "100"]);
    let id = env.id.clone();
    // The container's bounding set, not ours (the fixture drops some caps).
    let init_pid = env.state()["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{init_pid}/status")).unwrap();
    let bnd = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("CapBnd:"))
            .map(str::to_string)
    };
    let exec_status = env.ok(&["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(bnd(&exec_status), bnd(&status));
    // --tty --detach without a console socket: nobody would get the pty.
    let o = env.out(&["exec", "--tty", "--detach", &id, "true"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("console-socket"));
    let sock = env.dir.path().join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || recv_console(&listener));
    let o = env.out(&[
        "exec",
        "--tty",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "test -t 0 && echo exec-tty-ok; tty; ls -l /proc/self/fd/1; exit 3",
    ]);
    let (mut master, name) = receiver.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The exec's pty is one of the container's devpts too.
    assert_eq!(name, "/dev/pts/0");
    assert_ne!(
        dev_of(&master),
        std::fs::metadata("/dev/pts/ptmx").unwrap().dev()
    );
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains("exec-tty-ok\r\n/dev/pts/0\r\n")
            && seen.contains("/proc/self/fd/1 -> /dev/pts/0\r\n"),
        "{seen:?}"
    );
    // process.json's consoleSize applies to an exec's terminal.
    let pj = env.dir.path().join("tty-process.json");
    std::fs::write(
        &pj,
        r#"{"terminal": true, "consoleSize": {"height": 7, "width": 9},
            "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["stty", "size"]}"#,
    )
    .unwrap();
    let sock = env.dir.path().join("exec-console-2.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || recv_console(&listener));
    let o = env.out(&[
        "exec",
        "--process",
        pj.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mut master, _) = receiver.join().unwrap();
    let n = std::io::Read::read(&mut master, &mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "7 9\r\n");
}

#[test]
fn exec_joins_a_user_namespace_and_gets_the_seccomp_filter() {
    if !root_or_skip() {
        return;
    }
    let env = Env::started_with("execu", &["sleep", "100"], |s| {
        let l = s.linux_mut().as_mut().unwrap();
        let mut ns = l.namespaces().clone().unwrap_or_default();
        ns.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(oci_spec::runtime::LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        l.set_namespaces(Some(ns));
        let m = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(0u32)
            .size(65536u32)
            .build()
            .unwrap();
        l.set_uid_mappings(Some(vec![m]));
        l.set_gid_mappings(Some(vec![m]));
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": libc::EROFS}]}))
        .unwrap();
        l.set_seccomp(Some(seccomp));
    });
    let id = env.id.clone();
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/uid_map; mkdir /tmp/made; echo rc=$?",
    ]);
    let map: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "0", "65536"], "{out}");
    assert!(
        out.contains("rc=1"),
        "mkdir is denied by the container's filter: {out}"
    );
}

/// An unprivileged uid for this test: no passwd entry is needed, so
/// nothing on the host has to be created or removed.
fn rootless_uid() -> u32 {
    40_000 + std::process::id() % 10_000
}

#[test]
fn rootless_run_maps_the_callers_id_to_root() {
    if !root_or_skip() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let uid = rootless_uid();
    let dir = tempfile::tempdir().unwrap();
    let bundle = BusyboxBundle::new(dir.path().join("bundle"))
        .args(["sh", "-c", "id -u; cat /proc/self/uid_map"])
        .write()
        .unwrap();
    let mut spec = bundle.load_spec().unwrap();
    let l = spec.linux_mut().as_mut().unwrap();
    let mut ns = l.namespaces().clone().unwrap_or_default();
    ns.push(
        oci_spec::runtime::LinuxNamespaceBuilder::default()
            .typ(oci_spec::runtime::LinuxNamespaceType::User)
            .build()
            .unwrap(),
    );
    l.set_namespaces(Some(ns));
    let m = oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(uid)
        .size(1u32)
        .build()
        .unwrap();
    l.set_uid_mappings(Some(vec![m]));
    l.set_gid_mappings(Some(vec![m]));
    l.set_resources(None);
    // Like runc's rootless spec: no cgroup mount, no unmapped gid options.
    let mounts = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ().as_deref() != Some("cgroup"))
        .map(|mut m| {
            let opts = m.options().clone().map(|o| {
                o.into_iter()
                    .filter(|o| !o.starts_with("gid="))
                    .collect::<Vec<_>>()
            });
            m.set_options(opts);
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
    bundle.write_spec(&spec).unwrap();
    // The unprivileged user must reach the bundle and own the state root.
    for d in [dir.path(), bundle.path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let root = dir.path().join("state");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(uid), Some(uid)).unwrap();
    let o = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            BIN,
            "--root",
            root.to_str().unwrap(),
            "run",
            "--bundle",
            bundle.path().to_str().unwrap(),
            "rootless",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"]);
    assert!(err.contains("cgroups are skipped"), "says which: {err}");
    assert!(!root.join("rootless").exists());
}
