//! Root tests of the lifecycle through the library API: the state machine,
//! exit statuses, kill and delete rules.

mod core_common;

use core_common::{assert_no_children, root_or_skip, Env};
use libcontainer::{Container, ContainerError, Status};

#[test]
fn create_start_wait_delete_walks_the_states() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("echo out; echo err >&2; exit 7");
    let mut c = env.create("life").unwrap();
    assert_eq!(c.status(), Status::Created);
    assert!(c.pid() > 0);
    assert_eq!(env.log(), "", "nothing runs before start");
    let mut again = Container::load(&env.root, "life").unwrap();
    assert_eq!(
        again.state().status,
        Status::Created,
        "a second handle sees the same state"
    );
    assert!(matches!(again.start(), Ok(())));
    assert!(
        matches!(c.start(), Err(ContainerError::WrongStatus { .. })),
        "no second start"
    );
    assert_eq!(c.wait().unwrap(), 7);
    assert_eq!(c.status(), Status::Stopped);
    assert!(matches!(
        c.kill(libc::SIGTERM),
        Err(ContainerError::WrongStatus {
            status: Status::Stopped,
            ..
        })
    ));
    c.delete(false).unwrap();
    assert!(!env.state_dir("life").exists());
    assert_eq!(env.log(), "out\nerr\n");
    assert!(matches!(
        Container::load(&env.root, "life"),
        Err(ContainerError::State(_))
    ));
}

#[test]
fn death_by_signal_is_128_plus_signo() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("exec sleep 100");
    let mut c = env.create("sig").unwrap();
    c.start().unwrap();
    assert_eq!(c.status(), Status::Running);
    c.kill(libc::SIGKILL).unwrap();
    assert_eq!(c.wait().unwrap(), 128 + libc::SIGKILL);
    c.delete(false).unwrap();
}

#[test]
fn delete_running_needs_force_and_created_is_deleted_plainly() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("exec sleep 100");
    let mut c = env.create("run1").unwrap();
    c.start().unwrap();
    let loaded = Container::load(&env.root, "run1").unwrap();
    let err = loaded.delete(false).unwrap_err();
    assert!(err.to_string().contains("running"), "{err}");
    assert!(env.state_dir("run1").exists());
    c.delete(true).unwrap();
    assert!(!env.state_dir("run1").exists());

    let c = env.create("created1").unwrap();
    let pid = c.pid();
    c.delete(false).unwrap();
    assert!(!env.state_dir("created1").exists());
    // SAFETY: probing a pid with signal 0.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "init is gone");
    assert_no_children();
}

#[test]
fn duplicate_id_is_refused_and_leaves_the_first() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("true");
    let c = env.create("dup").unwrap();
    let err = env.create("dup").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(env.state_dir("dup").exists());
    c.delete(false).unwrap();
}

#[test]
fn pid_file_and_state_json() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("true");
    let pid_file = env.dir.path().join("pid");
    let mut c = env.builder("pidf").pid_file(&pid_file).create().unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        c.pid().to_string()
    );
    let s = c.state();
    assert_eq!(s.id, "pidf");
    assert_eq!(s.bundle, env.bundle.path().canonicalize().unwrap());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["status"], "created");
    assert!(json["created"].as_str().unwrap().ends_with('Z'));
    c.delete(false).unwrap();
}
