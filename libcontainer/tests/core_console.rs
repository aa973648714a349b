//! Root tests of `process.terminal` through the library: the init opens a
//! pty of the container's own devpts after pivot_root, and its master
//! arrives on the console socket.

mod core_common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use core_common::{assert_no_children, assert_no_mounts_under, root_or_skip, Env};
use libcontainer::cgroups::{CgroupExtension, CgroupManager, DeleteOptions};
use libcontainer::console::Console;
use libcontainer::Container;
use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};

/// One console-socket message: the name and the fd, if any (None at EOF).
fn recv_master(sock: &UnixStream) -> Option<(std::fs::File, String)> {
    use std::os::fd::AsFd;
    let got = libcontainer::console::recv_master(sock.as_fd()).unwrap()?;
    Some((got.master.into(), got.slave_name))
}

/// Everything until the slave side is gone (EIO).
fn read_all(master: &mut std::fs::File) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

#[test]
fn the_pty_is_the_containers_own_and_the_user_owns_it() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec("true", |s| {
        s.root_mut().as_mut().unwrap().set_readonly(Some(true));
        let p = s.process_mut().as_mut().unwrap();
        let mut user = p.user().clone();
        user.set_uid(1000);
        user.set_gid(1000);
        p.set_user(user);
        p.set_terminal(Some(true));
    });
    env.edit_spec(|s| {
        s.process_mut().as_mut().unwrap().set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            "tty; stat -L -c 'owner %u:%g' /proc/self/fd/0; stty size; \
             stat -c 'console %t:%T' /dev/console; ls -l /proc/self/fd/2; exit 5"
                .into(),
        ]));
    });
    let (ours, theirs) = UnixStream::pair().unwrap();
    let console = Console::from_stream(theirs).size(12, 34);
    let mut c = env.builder("tty").console(console).create().unwrap();
    let (mut master, name) = recv_master(&ours).expect("the master");
    assert_eq!(name, "/dev/pts/0", "the first pty of a new devpts");
    c.start().unwrap();
    let seen = read_all(&mut master);
    assert_eq!(c.wait().unwrap(), 5, "{seen:?}");
    assert!(
        seen.starts_with("/dev/pts/0\r\nowner 1000:1000\r\n12 34\r\nconsole 88:0\r\n"),
        "tty, the slave's owner, the size, /dev/console (devpts major 136): {seen:?}"
    );
    assert!(
        seen.ends_with("/proc/self/fd/2 -> /dev/pts/0\r\n"),
        "{seen:?}"
    );
    c.delete(false).unwrap();
}

#[test]
fn a_terminal_without_devpts_fails_create_and_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let cgroup = format!("/berth-contest-{}", std::process::id());
    let env = Env::with_spec("true", |s| {
        s.process_mut().as_mut().unwrap().set_terminal(Some(true));
        s.mounts_mut()
            .as_mut()
            .unwrap()
            .retain(|m| m.typ().as_deref() != Some("devpts"));
        s.linux_mut()
            .as_mut()
            .unwrap()
            .set_cgroups_path(Some(PathBuf::from(&cgroup)));
    });
    let cgroup_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path().join(cgroup.trim_start_matches('/')))
            .filter(|d| d.exists())
            .collect()
    };
    let (ours, theirs) = UnixStream::pair().unwrap();
    let err = env
        .builder("nopts")
        .create_extension(Box::new(CgroupExtension::default()))
        .console(Console::from_stream(theirs))
        .create()
        .unwrap_err()
        .to_string();
    let left = cgroup_dirs();
    if let Ok(c) = Container::load(&env.root, "nopts") {
        if let Ok(Some(m)) = CgroupManager::from_container(&c) {
            let _ = m.delete(DeleteOptions { kill: true });
        }
    }
    for d in &left {
        let _ = std::fs::remove_dir(d);
    }
    assert!(
        err.contains("process.terminal: open /dev/ptmx") && err.contains("devpts"),
        "{err}"
    );
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    assert!(!env.state_dir("nopts").exists());
    assert_no_children();
    assert_no_mounts_under(env.dir.path());
    // Every copy of the socket's far end is closed: the caller sees EOF
    // instead of waiting for a master forever.
    assert!(recv_master(&ours).is_none());
}

#[test]
fn a_user_namespace_container_gets_its_own_pty_too() {
    if !root_or_skip() {
        return;
    }
    let env = Env::with_spec("true", |s| {
        s.process_mut().as_mut().unwrap().set_terminal(Some(true));
        let l = s.linux_mut().as_mut().unwrap();
        let mut ns = l.namespaces().clone().unwrap_or_default();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        l.set_namespaces(Some(ns));
        let m = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(0u32)
            .size(65536u32)
            .build()
            .unwrap();
        l.set_uid_mappings(Some(vec![m]));
        l.set_gid_mappings(Some(vec![m]));
    });
    env.edit_spec(|s| {
        s.process_mut().as_mut().unwrap().set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            "tty; stat -c 'console %t:%T' /dev/console; cat /proc/self/uid_map".into(),
        ]));
    });
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut c = env
        .builder("usertty")
        .console(Console::from_stream(theirs))
        .create()
        .unwrap();
    let (mut master, name) = recv_master(&ours).expect("the master");
    assert_eq!(name, "/dev/pts/0");
    c.start().unwrap();
    let seen = read_all(&mut master);
    assert_eq!(c.wait().unwrap(), 0, "{seen:?}");
    assert!(
        seen.starts_with("/dev/pts/0\r\nconsole 88:0\r\n") && seen.contains("65536"),
        "{seen:?}"
    );
    c.delete(false).unwrap();
}
