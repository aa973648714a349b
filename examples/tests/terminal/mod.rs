//! A client terminal for pty tests: script(1) runs a command with a
//! terminal of its own, its output is collected as it comes, and the
//! terminal can be typed into and resized as a window would be. Shared by
//! runtime_tty.rs (berth-runtime) and berthd_exec_tty.rs (docker exec).

// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SCRIPT: &str = "/usr/bin/script";

/// script(1) running `cmd` with a terminal; killed on drop.
pub struct Script {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Script {
    /// Runs `cmd` under script(1) with `envs` added to its environment.
    pub fn spawn(cmd: &str, envs: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut child = Command::new(SCRIPT)
            .args(["-qefc", cmd, "/dev/null"])
            .envs(envs.iter().copied())
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

    /// Everything the terminal showed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits (up to 20 s) until the terminal shows `needle`.
    pub fn wait_for(&self, needle: &str) {
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

    /// Types `s` into the terminal.
    pub fn type_in(&mut self, s: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (up to 20 s) for script(1) to exit.
    pub fn finish(&mut self) -> std::process::ExitStatus {
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

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the process running `program` whose arguments include
/// `marker`.
pub fn pid_of(program: &str, marker: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.first()? == &program.as_bytes() && args.contains(&marker.as_bytes())).then_some(pid)
    })
}

/// Resizes the terminal `pid` has on stdin, as a terminal window would.
pub fn resize_terminal_of(pid: i32, rows: u16, cols: u16) {
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
