//! Root tests of `docker exec -t` against berthd: the process gets a pty of
//! the container's own devpts (`tty` prints /dev/pts/N), and `-it` under a
//! client terminal (script(1)) echoes input, resizes and passes the exit
//! code. Driven through the real docker CLI.

mod common;
mod terminal;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{containers_left, DOCKER};
use terminal::{pid_of, resize_terminal_of, Script, SCRIPT};

#[test]
fn exec_t_gets_a_pty_of_the_containers_devpts() {
    let Some(d) = common::start() else { return };
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    // The pty is the container's (its devpts holds it), stdin and stdout
    // are it, and it is the controlling terminal (/dev/tty opens).
    let out = d.ok(&[
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; ls -1 /dev/pts; test -t 0 && test -t 1 && echo both-tty; : < /dev/tty && echo ctty; echo $TERM",
    ]);
    assert_eq!(
        out,
        "/dev/pts/0\r\n0\r\nptmx\r\nboth-tty\r\nctty\r\nxterm\r\n"
    );
    // The exit code passes through; a bad command is a clear error.
    let out = d.docker(&["exec", "-t", "box", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    let out = d.docker(&["exec", "-t", "box", "/no/such"]);
    assert_ne!(out.code, 0);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("/no/such"),
        "{} {}",
        out.stdout,
        out.stderr
    );
    // Without -t the process has no terminal.
    let out = d.docker(&["exec", "box", "tty"]);
    assert_eq!(out.stdout, "not a tty\n");
    let execs = d.ok(&["inspect", "-f", "{{.ExecIDs}}", "box"]);
    assert!(execs.contains('['), "{execs}");
    d.ok(&["rm", "-f", "box"]);
    assert_eq!(containers_left(&d), 0);
}

#[test]
fn exec_it_under_a_terminal_echoes_resizes_and_exits() {
    let Some(d) = common::start() else { return };
    if !Path::new(SCRIPT).is_file() {
        eprintln!("SKIP: no {SCRIPT} for a client terminal");
        return;
    }
    d.ok(&["run", "-d", "--name", "itbox", "busybox", "sleep", "1000"]);
    let marker = format!("exec-it-{}", std::process::id());
    let cmd = format!(
        "stty rows 20 cols 70; {DOCKER} exec -it -e M={marker} itbox sh -c \
         'tty; stty size; read x; echo got $x; \
          while read y; do s=$(stty size); echo size $s; [ \"$s\" = \"33 101\" ] && exit 5; done'; \
         echo rc=$?"
    );
    let config = d.dir.path().join("config");
    let env = [
        ("DOCKER_HOST", d.host.as_ref()),
        ("DOCKER_CONFIG", config.as_os_str()),
        ("DOCKER_CLI_HINTS", "false".as_ref()),
    ];
    let mut t = Script::spawn(&cmd, &env);
    // The client's size is the pty's from the start (consoleSize).
    t.wait_for("/dev/pts/0\r\n20 70\r\n");
    t.type_in("hello\n");
    t.wait_for("got hello\r\n");
    // Echoed once, by the container's pty (the client's terminal is raw).
    assert_eq!(t.text().matches("hello").count(), 2, "{:?}", t.text());
    // A window change of the client's terminal reaches the exec's pty (the
    // CLI's resize request is asynchronous: ask until it shows).
    let pid = pid_of(DOCKER, &format!("M={marker}")).expect("docker exec is running");
    resize_terminal_of(pid, 33, 101);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.text().contains("size 33 101\r\n") {
        assert!(Instant::now() < deadline, "no resize in {:?}", t.text());
        t.type_in("\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    t.wait_for("rc=5");
    assert!(t.finish().success());
    d.ok(&["rm", "-f", "itbox"]);
    assert_eq!(containers_left(&d), 0);
}
