//! Root tests of `docker exec -t` against berthd: the process gets a pty of
//! the container's own devpts (`tty` prints /dev/pts/N), and `-it` under a
//! client terminal (script(1)) echoes input, resizes and passes the exit
//! code. Driven through the real docker CLI.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{containers_left, Daemon, DOCKER};

const SCRIPT: &str = "/usr/bin/script";

/// The docker CLI under script(1), so it has a terminal; output collected
/// as it comes; killed on drop.
struct Terminal {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn spawn(d: &Daemon, cmd: &str) -> Self {
        let mut child = Command::new(SCRIPT)
            .args(["-qefc", cmd, "/dev/null"])
            .env("DOCKER_HOST", &d.host)
            .env("DOCKER_CONFIG", d.dir.path().join("config"))
            .env("DOCKER_CLI_HINTS", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, out }
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn type_in(&mut self, s: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    fn finish(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "script: {:?}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the docker CLI whose arguments include `marker`.
fn docker_pid(marker: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.first()? == &DOCKER.as_bytes() && args.iter().any(|a| a == &marker.as_bytes()))
            .then_some(pid)
    })
}

/// Resize the terminal `pid` has on stdin, as a terminal window would.
fn resize_terminal_of(pid: i32, rows: u16, cols: u16) {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/fd/0"))
        .unwrap();
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize; the kernel signals SIGWINCH.
    assert_eq!(
        unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0
    );
}

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
    let mut t = Terminal::spawn(&d, &cmd);
    // The client's size is the pty's from the start (consoleSize).
    t.wait_for("/dev/pts/0\r\n20 70\r\n");
    t.type_in("hello\n");
    t.wait_for("got hello\r\n");
    // Echoed once, by the container's pty (the client's terminal is raw).
    assert_eq!(t.text().matches("hello").count(), 2, "{:?}", t.text());
    // A window change of the client's terminal reaches the exec's pty (the
    // CLI's resize request is asynchronous: ask until it shows).
    let pid = docker_pid(&format!("M={marker}")).expect("docker exec is running");
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
