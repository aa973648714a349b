//! Root tests of the security setup through the container lifecycle: a
//! busybox container created by `ContainerBuilder` with `ProcessSecurity`
//! gets its seccomp filter (with and without noNewPrivileges), its
//! capability sets (including ambient for a non-root user), the NOTIFY fd
//! reaches an agent during `create`, and an LSM label on a host without the
//! LSM fails `create` leaving nothing behind.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use libcontainer::fixtures::{default_spec, BusyboxBundle};
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::{Container, ContainerBuilder};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::{MountBuilder, Spec};
use serde_json::json;

mod security_common;
use security_common::spawn;

fn root_or_skip() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if libcontainer::fixtures::static_busybox().is_err() {
        eprintln!("skipped: no static busybox (apt-get install busybox-static)");
        return false;
    }
    true
}

/// A bundle running `script` (output to /out/log); deletes its container.
struct Env {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    root: PathBuf,
    spec: Spec,
    id: String,
}

impl Env {
    fn new(id: &str, script: &str, edit: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // Writable for every user and without CAP_DAC_OVERRIDE.
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let mut spec: Spec = default_spec();
        let m = MountBuilder::default()
            .destination("/out")
            .source(out.to_str().unwrap())
            .options(vec!["rbind".to_string()])
            .build()
            .unwrap();
        spec.mounts_mut().get_or_insert_with(Vec::new).push(m);
        // Merge the test's process/linux fields into the spec.
        let mut v = serde_json::to_value(&spec).unwrap();
        for (section, fields) in edit.as_object().unwrap() {
            for (k, val) in fields.as_object().unwrap() {
                v[section][k] = val.clone();
            }
        }
        let spec: Spec = serde_json::from_value(v).unwrap();
        let bundle = dir.path().join("bundle");
        BusyboxBundle::new(&bundle)
            .spec(spec.clone())
            .args(["/bin/sh", "-c", &format!("exec >/out/log 2>&1; {script}")])
            .write()
            .unwrap();
        let spec = Spec::load(bundle.join("config.json")).unwrap();
        let root = dir.path().join("state");
        Self {
            dir,
            bundle,
            root,
            spec,
            id: format!("{id}-{}", std::process::id()),
        }
    }

    fn security(&self) -> Result<ProcessSecurity, libcontainer::security::SecurityError> {
        ProcessSecurity::from_spec(
            &self.spec,
            &self.bundle,
            &LsmHost::detect(),
            Some(&self.root.join("seccomp")),
        )
    }

    fn create(&self) -> Container {
        let sec = self.security().expect("security plan");
        ContainerBuilder::new(&self.id, &self.bundle)
            .root(&self.root)
            .create_extension(sec.create_extension())
            .init_extension(sec.init_extension())
            .create()
            .expect("create")
    }

    /// Create, start, wait, delete: the exit code and the log.
    fn run(&self) -> (i32, String) {
        let mut c = self.create();
        c.start().expect("start");
        let code = c.wait().expect("wait");
        c.delete(false).expect("delete");
        let log = std::fs::read_to_string(self.dir.path().join("out/log")).unwrap_or_default();
        (code, log)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(c) = Container::load(&self.root, &self.id) {
            let _ = c.delete(true);
        }
    }
}

fn deny_mkdir() -> serde_json::Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EROFS}]})
}

const MKDIR_SCRIPT: &str = "mkdir /tmp/made; echo rc=$?; [ -d /tmp/made ] && exit 3; exit 0";

#[test]
fn seccomp_applies_with_no_new_privileges() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(
        "sec-nnp",
        MKDIR_SCRIPT,
        json!({"process": {"noNewPrivileges": true}, "linux": {"seccomp": deny_mkdir()}}),
    );
    let (code, log) = env.run();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("Read-only file system") && log.contains("rc=1"),
        "{log}"
    );
    // The compiled program was cached under the root for the next start.
    assert_eq!(
        std::fs::read_dir(env.root.join("seccomp")).unwrap().count(),
        1
    );
}

#[test]
fn seccomp_applies_without_no_new_privileges() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new(
        "sec-privs",
        MKDIR_SCRIPT,
        json!({"process": {"noNewPrivileges": false,
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                             "permitted": ["CAP_KILL"]}},
               "linux": {"seccomp": deny_mkdir()}}),
    );
    let (code, log) = env.run();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("rc=1"), "{log}");
}

#[test]
fn capability_sets_reach_the_process() {
    if !root_or_skip() {
        return;
    }
    let caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let env = Env::new(
        "sec-caps",
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; \
         touch /out/f; chown 1 /out/f; echo chown=$?",
        json!({"process": {"noNewPrivileges": true, "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [],
            "ambient": []}}}),
    );
    let (code, log) = env.run();
    assert_eq!(code, 0, "{log}");
    // CAP_KILL (5) and CAP_NET_BIND_SERVICE (10): 0x420.
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(
            log.contains(&format!("{set}:\t0000000000000420")),
            "{set}: {log}"
        );
    }
    assert!(log.contains("CapInh:\t0000000000000000"), "{log}");
    assert!(log.contains("chown=1"), "CAP_CHOWN was dropped: {log}");
}

#[test]
fn ambient_capability_for_a_non_root_user() {
    if !root_or_skip() {
        return;
    }
    let caps = ["CAP_CHOWN"];
    let env = Env::new(
        "sec-amb",
        "id -u; grep -E '^Cap(Eff|Amb)' /proc/self/status; \
         touch /out/g; chown 1 /out/g; echo chown=$?",
        json!({"process": {"user": {"uid": 65534, "gid": 65534}, "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps,
            "ambient": caps}}}),
    );
    let (code, log) = env.run();
    assert_eq!(code, 0, "{log}");
    assert!(log.starts_with("65534"), "{log}");
    assert!(log.contains("CapAmb:\t0000000000000001"), "{log}");
    assert!(log.contains("CapEff:\t0000000000000001"), "{log}");
    assert!(log.contains("chown=0"), "{log}");
}

#[test]
fn notify_fd_reaches_the_agent_during_create() {
    if !root_or_skip() {
        return;
    }
    let agent_dir = tempfile::tempdir().unwrap();
    let sock = agent_dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let env = Env::new(
        "sec-notify",
        "mkdir /tmp/a; echo a=$?; mkdir /tmp/b; echo b=$?",
        json!({"process": {"noNewPrivileges": true}, "linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock,
            "listenerMetadata": "agent-meta",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}}}),
    );
    // The agent is its own process, as real agents are: the init is cloned
    // from this (multi-threaded) test process.
    let report = agent_dir.path().join("message.json");
    let report_c = report.clone();
    let agent = spawn(move || {
        let run = || -> Result<(), Box<dyn std::error::Error>> {
            let (conn, _) = listener.accept()?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!([RawFd; 2]);
            let msg = recvmsg::<()>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )?;
            let len = msg.bytes;
            let mut fd = None;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(v) = c {
                    // SAFETY: SCM_RIGHTS gave us this fd.
                    fd = Some(unsafe { OwnedFd::from_raw_fd(v[0]) });
                }
            }
            std::fs::write(&report_c, &buf[..len])?;
            let fd = fd.ok_or("no notify fd")?;
            for round in 0..2 {
                let mut pfd = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                if nix::poll::poll(&mut pfd, 10_000u16)? != 1 {
                    return Err("no notification within 10 s".into());
                }
                let req = ScmpNotifReq::receive(fd.as_raw_fd())?;
                let resp = if round == 0 {
                    ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
                } else {
                    ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::CONTINUE)
                };
                resp.respond(fd.as_raw_fd())?;
            }
            Ok(())
        };
        match run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("agent: {e}");
                1
            }
        }
    });
    let mut c = env.create();
    let pid = c.pid();
    c.start().expect("start");
    let code = c.wait().expect("wait");
    c.delete(false).expect("delete");
    assert!(
        matches!(agent.wait(), nix::sys::wait::WaitStatus::Exited(_, 0)),
        "agent failed"
    );
    let message: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let log = std::fs::read_to_string(env.dir.path().join("out/log")).unwrap_or_default();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("a=1") && log.contains("b=0"), "{log}");
    assert!(log.contains("Invalid cross-device link"), "{log}");
    assert_eq!(message["fds"], json!(["seccompFd"]));
    assert_eq!(message["metadata"], "agent-meta");
    assert_eq!(message["pid"], pid);
    assert_eq!(message["state"]["id"], env.id.as_str());
    assert_eq!(message["state"]["status"], "creating");
    assert_eq!(message["state"]["pid"], pid);
    assert_eq!(message["state"]["bundle"], env.bundle.to_str().unwrap());
}

#[test]
fn lsm_label_on_a_host_without_it_fails_before_anything_is_made() {
    if !root_or_skip() {
        return;
    }
    let host = LsmHost::detect();
    if host.apparmor {
        eprintln!("skipped: this host has AppArmor");
        return;
    }
    let env = Env::new(
        "sec-aa",
        "true",
        json!({"process": {"apparmorProfile": "docker-default"}}),
    );
    let err = env.security().unwrap_err().to_string();
    assert_eq!(
        err,
        "process.apparmorProfile: AppArmor \"docker-default\" requested, \
         but AppArmor is not enabled on this host"
    );
    assert!(!env.root.join(&env.id).exists());
}
