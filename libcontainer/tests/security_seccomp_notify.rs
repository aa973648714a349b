//! SCMP_ACT_NOTIFY end to end: the child loads the filter and passes the
//! notify fd to the parent, the parent sends it with the container state to
//! a listener socket run by the test (the seccomp agent), and the agent
//! answers the child's syscalls: first with an error, then "continue".

mod security_common;

use std::ffi::CString;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

use libcontainer::capabilities::set_no_new_privileges;
use libcontainer::seccomp::{notify, SeccompProgram};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::WaitStatus;
use security_common::{errno, profile, spawn};
use serde_json::json;

/// What the agent saw: the JSON message and the syscalls it answered.
struct AgentReport {
    message: serde_json::Value,
    fds_received: usize,
    syscalls: Vec<(String, u32)>,
}

fn agent(listener: UnixListener) -> AgentReport {
    let (conn, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let len = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: SCM_RIGHTS gave us these fds.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let message: serde_json::Value = serde_json::from_slice(&buf[..len]).expect("JSON message");
    let notify_fd = fds.first().expect("an fd");
    let mut syscalls = Vec::new();
    for round in 0..2 {
        let mut pfd = [PollFd::new(notify_fd.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut pfd, PollTimeout::from(10_000u16)).expect("poll");
        assert_eq!(ready, 1, "no notification within 10 s");
        let req = ScmpNotifReq::receive(notify_fd.as_raw_fd()).expect("receive");
        let name = req.data.syscall.get_name().unwrap_or_default();
        syscalls.push((name, req.pid));
        let resp = if round == 0 {
            ScmpNotifResp::new_error(req.id, -libc::EBADFD, ScmpNotifRespFlags::empty())
        } else {
            ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::CONTINUE)
        };
        resp.respond(notify_fd.as_raw_fd()).expect("respond");
    }
    AgentReport {
        message,
        fds_received: fds.len(),
        syscalls,
    }
}

#[test]
fn notify_fd_and_metadata_reach_the_listener_which_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let program = SeccompProgram::compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "berth-test-metadata",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    let denied = dir.path().join("denied");
    let allowed = dir.path().join("allowed");
    let denied_c = CString::new(denied.as_os_str().as_encoded_bytes()).unwrap();
    let allowed_c = CString::new(allowed.as_os_str().as_encoded_bytes()).unwrap();
    let (parent_sock, child_sock) = UnixStream::pair().unwrap();

    let child = spawn(|| {
        if set_no_new_privileges().is_err() {
            return 90;
        }
        let Ok(Some(fd)) = program.load() else {
            return 91;
        };
        if notify::send_fd(child_sock.as_fd(), &fd).is_err() {
            return 92;
        }
        drop(fd);
        // SAFETY: mkdir with valid NUL-terminated paths.
        unsafe {
            if libc::mkdir(denied_c.as_ptr(), 0o755) != -1 || errno() != libc::EBADFD {
                return 93;
            }
            if libc::mkdir(allowed_c.as_ptr(), 0o755) != 0 {
                return 94;
            }
        }
        0
    });
    drop(child_sock);
    let pid = child.0.as_raw();

    let agent_thread = std::thread::spawn(move || agent(listener));
    let fd = notify::recv_fd(parent_sock.as_fd()).expect("notify fd from the child");
    let mut state = oci_spec::runtime::State::default();
    state.set_id("notify-test".into());
    state.set_pid(Some(pid));
    state.set_bundle(dir.path().to_path_buf());
    notify::send_to_listener(program.listener().unwrap(), pid, &state, &fd).unwrap();
    drop(fd);

    let report = agent_thread.join().expect("agent");
    let status = child.wait();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "child: {status:?}"
    );
    assert!(!denied.exists());
    assert!(allowed.is_dir());

    let m = &report.message;
    assert_eq!(report.fds_received, 1);
    assert_eq!(m["fds"], json!(["seccompFd"]));
    assert_eq!(m["pid"], pid);
    assert_eq!(m["metadata"], "berth-test-metadata");
    assert_eq!(m["state"]["id"], "notify-test");
    assert_eq!(m["state"]["pid"], pid);
    assert!(m["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(report.syscalls.len(), 2);
    for (name, req_pid) in &report.syscalls {
        assert!(name == "mkdir" || name == "mkdirat", "{name}");
        assert_eq!(*req_pid as i32, pid);
    }
}

#[test]
fn recv_fd_reports_a_closed_peer() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let err = notify::recv_fd(a.as_fd()).unwrap_err();
    assert!(err.to_string().contains("no fd in the message"), "{err}");
}

#[test]
fn send_to_listener_without_an_agent_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let listener = libcontainer::seccomp::SeccompListener {
        path: dir.path().join("nobody.sock"),
        metadata: None,
    };
    let (a, _b) = UnixStream::pair().unwrap();
    let state = oci_spec::runtime::State::default();
    let err = notify::send_to_listener(&listener, 1, &state, &a).unwrap_err();
    assert!(err.to_string().contains("nobody.sock"), "{err}");
}
