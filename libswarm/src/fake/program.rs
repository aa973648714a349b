//! The fake backend's tiny process model: a few shell built-ins, enough to
//! give containers real output, stdin, exit codes and signal behaviour.
//!
//! Programs: `echo [-n] …`, `sleep N|infinity`, `exit N`, `true`, `false`,
//! `cat` (stdin to stdout), `env`, `top` (sleeps), and `sh -c "a; b && c"`
//! running those; `sh` with no arguments reads commands from stdin. A word
//! `>&2` sends a command's output to stderr. Terminating signals end the
//! program with exit code 128 + signal.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::types::StreamKind;

/// Programs the model knows, checked before a start.
pub(crate) fn is_known(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    matches!(
        base,
        "echo" | "sleep" | "exit" | "true" | "false" | "cat" | "env" | "top" | "sh" | "bash"
    )
}

/// Where a running program reads and writes.
pub(crate) struct ProcessIo {
    pub(crate) out: Box<dyn FnMut(StreamKind, Bytes) + Send>,
    pub(crate) stdin: Option<mpsc::Receiver<Bytes>>,
    pub(crate) signals: mpsc::UnboundedReceiver<i32>,
    pub(crate) env: Vec<String>,
    pending: Vec<u8>,
}

impl ProcessIo {
    pub(crate) fn new(
        out: Box<dyn FnMut(StreamKind, Bytes) + Send>,
        stdin: Option<mpsc::Receiver<Bytes>>,
        signals: mpsc::UnboundedReceiver<i32>,
        env: Vec<String>,
    ) -> ProcessIo {
        ProcessIo {
            out,
            stdin,
            signals,
            env,
            pending: Vec::new(),
        }
    }
}

/// Why a program stopped early.
enum Stop {
    Exit(i64),
}

fn terminating(signal: i32) -> bool {
    // HUP INT QUIT ABRT KILL USR1 USR2 PIPE ALRM TERM end a default process.
    matches!(signal, 1 | 2 | 3 | 6 | 9 | 10 | 12 | 13 | 14 | 15)
}

/// Runs `args` to completion; returns the exit code.
pub(crate) async fn run(args: &[String], io: &mut ProcessIo) -> i64 {
    match run_command(args, io).await {
        Ok(code) => code,
        Err(Stop::Exit(code)) => code,
    }
}

async fn run_command(args: &[String], io: &mut ProcessIo) -> Result<i64, Stop> {
    let Some(first) = args.first() else {
        return Ok(0);
    };
    let base = first.rsplit('/').next().unwrap_or(first);
    let (words, to_stderr): (Vec<&String>, bool) = {
        let to_stderr = args.iter().any(|a| a == ">&2" || a == "1>&2");
        (
            args[1..]
                .iter()
                .filter(|a| *a != ">&2" && *a != "1>&2")
                .collect(),
            to_stderr,
        )
    };
    let stream = if to_stderr {
        StreamKind::Stderr
    } else {
        StreamKind::Stdout
    };
    match base {
        "echo" => {
            let (newline, words) = match words.first() {
                Some(w) if w.as_str() == "-n" => (false, &words[1..]),
                _ => (true, &words[..]),
            };
            let mut line = words
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if newline {
                line.push('\n');
            }
            (io.out)(stream, Bytes::from(line));
            Ok(0)
        }
        "true" => Ok(0),
        "false" => Ok(1),
        "exit" => {
            let code = words
                .first()
                .and_then(|w| w.parse::<i64>().ok())
                .unwrap_or(0);
            Err(Stop::Exit(code & 0xff))
        }
        "env" => {
            let mut text = io.env.join("\n");
            text.push('\n');
            (io.out)(stream, Bytes::from(text));
            Ok(0)
        }
        "sleep" | "top" => {
            let duration = match words.first().map(|w| w.as_str()) {
                None | Some("infinity") => None,
                Some(w) => match w.parse::<f64>() {
                    Ok(secs) if secs >= 0.0 && secs.is_finite() => {
                        Some(Duration::from_secs_f64(secs))
                    }
                    _ => {
                        (io.out)(
                            StreamKind::Stderr,
                            Bytes::from(format!("sleep: invalid number '{w}'\n")),
                        );
                        return Ok(1);
                    }
                },
            };
            sleep(duration, io).await
        }
        "cat" => cat(io, stream).await,
        "sh" | "bash" => match words.as_slice() {
            [flag, script, ..] if flag.as_str() == "-c" => run_script(script, io).await,
            [] => interactive(io).await,
            _ => {
                (io.out)(
                    StreamKind::Stderr,
                    Bytes::from("sh: only `sh -c SCRIPT` and `sh` are modelled\n"),
                );
                Ok(2)
            }
        },
        other => {
            (io.out)(
                StreamKind::Stderr,
                Bytes::from(format!("sh: {other}: not found\n")),
            );
            Ok(127)
        }
    }
}

async fn sleep(duration: Option<Duration>, io: &mut ProcessIo) -> Result<i64, Stop> {
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    loop {
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => return Ok(0),
            sig = io.signals.recv() => match sig {
                Some(s) if terminating(s) => return Err(Stop::Exit(128 + s as i64)),
                Some(_) => continue,
                None => return Err(Stop::Exit(137)),
            },
        }
    }
}

/// Next chunk of stdin, or None at EOF; a terminating signal stops the program.
async fn read_stdin(io: &mut ProcessIo) -> Result<Option<Bytes>, Stop> {
    loop {
        let Some(stdin) = io.stdin.as_mut() else {
            return Ok(None);
        };
        tokio::select! {
            chunk = stdin.recv() => return Ok(chunk),
            sig = io.signals.recv() => match sig {
                Some(s) if terminating(s) => return Err(Stop::Exit(128 + s as i64)),
                Some(_) => continue,
                None => return Err(Stop::Exit(137)),
            },
        }
    }
}

async fn cat(io: &mut ProcessIo, stream: StreamKind) -> Result<i64, Stop> {
    while let Some(chunk) = read_stdin(io).await? {
        (io.out)(stream, chunk);
    }
    Ok(0)
}

async fn interactive(io: &mut ProcessIo) -> Result<i64, Stop> {
    let mut last = 0;
    loop {
        if let Some(pos) = io.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = io.pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            if !line.is_empty() {
                last = Box::pin(run_script(&line, io)).await?;
            }
            continue;
        }
        match read_stdin(io).await? {
            Some(chunk) => io.pending.extend_from_slice(&chunk),
            None => {
                let rest = String::from_utf8_lossy(&std::mem::take(&mut io.pending))
                    .trim()
                    .to_string();
                if !rest.is_empty() {
                    last = Box::pin(run_script(&rest, io)).await?;
                }
                return Ok(last);
            }
        }
    }
}

/// Runs `a; b && c || d` (left to right, no precedence beyond that).
async fn run_script(script: &str, io: &mut ProcessIo) -> Result<i64, Stop> {
    let mut last = 0;
    for statement in script.split([';', '\n']) {
        let mut skip_next = false;
        let mut rest = statement;
        loop {
            let (piece, op, tail) = next_piece(rest);
            if !skip_next {
                let words = split_words(piece);
                if !words.is_empty() {
                    last = Box::pin(run_command(&words, io)).await?;
                }
            }
            match op {
                Some("&&") => skip_next = last != 0,
                Some("||") => skip_next = last == 0,
                _ => break,
            }
            rest = tail;
        }
    }
    Ok(last)
}

fn next_piece(s: &str) -> (&str, Option<&'static str>, &str) {
    let and = s.find("&&");
    let or = s.find("||");
    match (and, or) {
        (Some(a), Some(o)) if o < a => (&s[..o], Some("||"), &s[o + 2..]),
        (Some(a), _) => (&s[..a], Some("&&"), &s[a + 2..]),
        (None, Some(o)) => (&s[..o], Some("||"), &s[o + 2..]),
        (None, None) => (s, None, ""),
    }
}

/// Splits on whitespace, honouring single and double quotes.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Captured = Arc<Mutex<Vec<(StreamKind, String)>>>;

    fn make_io(
        stdin: Option<mpsc::Receiver<Bytes>>,
    ) -> (ProcessIo, Captured, mpsc::UnboundedSender<i32>) {
        let captured: Captured = Arc::default();
        let sink = captured.clone();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let io = ProcessIo::new(
            Box::new(move |k, b| {
                sink.lock()
                    .unwrap()
                    .push((k, String::from_utf8_lossy(&b).into_owned()))
            }),
            stdin,
            sig_rx,
            vec!["A=1".into()],
        );
        (io, captured, sig_tx)
    }

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn scripts_run_in_order_with_exit_codes_and_stderr() {
        let (mut io, out, _sig) = make_io(None);
        let code = run(
            &args(&[
                "sh",
                "-c",
                "echo 'hello world'; echo oops >&2; false && echo no || exit 3; echo never",
            ]),
            &mut io,
        )
        .await;
        assert_eq!(code, 3);
        let out = out.lock().unwrap().clone();
        assert_eq!(
            out,
            vec![
                (StreamKind::Stdout, "hello world\n".to_string()),
                (StreamKind::Stderr, "oops\n".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn cat_copies_stdin_until_eof_and_sh_reads_commands() {
        let (tx, rx) = mpsc::channel(4);
        let (mut io, out, _sig) = make_io(Some(rx));
        tx.send(Bytes::from("abc")).await.unwrap();
        drop(tx);
        assert_eq!(run(&args(&["cat"]), &mut io).await, 0);
        assert_eq!(out.lock().unwrap()[0].1, "abc");

        let (tx, rx) = mpsc::channel(4);
        let (mut io, out, _sig) = io_with(rx);
        tx.send(Bytes::from("echo one\nenv\nexit 4")).await.unwrap();
        drop(tx);
        assert_eq!(run(&args(&["sh"]), &mut io).await, 4);
        let text: String = out.lock().unwrap().iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(text, "one\nA=1\n");
    }

    fn io_with(rx: mpsc::Receiver<Bytes>) -> (ProcessIo, Captured, mpsc::UnboundedSender<i32>) {
        make_io(Some(rx))
    }

    #[tokio::test]
    async fn signals_end_sleep_with_128_plus_signal_but_winch_does_not() {
        let (mut io, _out, sig) = make_io(None);
        sig.send(28).unwrap();
        sig.send(15).unwrap();
        assert_eq!(run(&args(&["sleep", "infinity"]), &mut io).await, 143);
        let (mut io, _out, _sig) = make_io(None);
        assert_eq!(run(&args(&["sleep", "0.01"]), &mut io).await, 0);
        assert_eq!(run(&args(&["nope"]), &mut io).await, 127);
        assert!(is_known("/bin/sh"));
        assert!(!is_known("nginx"));
    }
}
