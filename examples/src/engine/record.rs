//! One container as the daemon keeps it: config, status, logs, and the
//! channels that attach, logs -f and wait listen on.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use libswarm::models::{ContainerStateStatusEnum, ContainerWaitResponse};
use libswarm::util::{now_nanos, rfc3339};
use libswarm::{ContainerCreateBody, OutputChunk, StreamKind};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// Run status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, never started.
    Created,
    /// The shim is starting it.
    Starting,
    /// Running.
    Running,
    /// Exited.
    Exited,
}

impl Status {
    /// The Docker API state.
    pub fn as_enum(self) -> ContainerStateStatusEnum {
        match self {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Starting | Status::Running => ContainerStateStatusEnum::RUNNING,
            Status::Exited => ContainerStateStatusEnum::EXITED,
        }
    }
}

/// What waits watch: how many runs have ended, the last exit code, removal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifecycle {
    /// Runs ended so far.
    pub exits: u64,
    /// The last exit code.
    pub exit_code: i64,
    /// The container is gone.
    pub removed: bool,
}

impl Lifecycle {
    /// The wait response.
    pub fn response(&self) -> ContainerWaitResponse {
        ContainerWaitResponse {
            status_code: self.exit_code,
            error: None,
        }
    }
}

/// Live output: a chunk, or the end of a run.
#[derive(Debug, Clone)]
pub enum Live {
    /// Output.
    Chunk(LogLine),
    /// The run ended (all output delivered).
    End,
}

/// One log entry (a line, or a partial line at a read boundary).
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Which stream.
    pub stream: StreamKind,
    /// When it was read (UNIX nanoseconds).
    pub time: i64,
    /// The bytes.
    pub data: Bytes,
}

impl LogLine {
    /// As an output chunk, with an RFC 3339 prefix if asked.
    pub fn chunk(&self, timestamps: bool) -> OutputChunk {
        let data = if timestamps {
            let mut v = format!("{} ", rfc3339(self.time)).into_bytes();
            v.extend_from_slice(&self.data);
            Bytes::from(v)
        } else {
            self.data.clone()
        };
        OutputChunk {
            stream: self.stream,
            data,
        }
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// The json-file log line of an entry (Docker's `json-file` format).
pub fn json_line(l: &LogLine) -> String {
    let stream = match l.stream {
        StreamKind::Stderr => "stderr",
        _ => "stdout",
    };
    let line = JsonLine {
        log: &String::from_utf8_lossy(&l.data),
        stream,
        time: rfc3339(l.time),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Splits a read into lines (keeping the newlines), as json-file does.
pub fn split_lines(stream: StreamKind, data: &[u8]) -> Vec<LogLine> {
    let time = now_nanos();
    data.split_inclusive(|b| *b == b'\n')
        .map(|part| LogLine {
            stream,
            time,
            data: Bytes::copy_from_slice(part),
        })
        .collect()
}

/// A container.
pub struct Record {
    /// Full id.
    pub id: String,
    /// Name without the slash.
    pub name: String,
    /// The image as asked for.
    pub image_ref: String,
    /// The image id.
    pub image_id: String,
    /// The create request.
    pub body: ContainerCreateBody,
    /// Process arguments.
    pub args: Vec<String>,
    /// The container directory (config.json, fs/, container.log).
    pub dir: PathBuf,
    /// Status.
    pub status: Status,
    /// Init pid while running.
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// Why the last start failed.
    pub error: String,
    /// Times (UNIX nanoseconds; 0 = never).
    pub created: i64,
    /// When it last started.
    pub started: i64,
    /// When it last stopped.
    pub finished: i64,
    /// Log so far.
    pub logs: Vec<LogLine>,
    /// The log file.
    pub log_file: Option<std::fs::File>,
    /// Live output.
    pub live: broadcast::Sender<Live>,
    /// The stdin writer an attach takes (`-i`; one attach, as StdinOnce).
    pub stdin_tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    /// The stdin reader the next start forwards into the container.
    pub stdin_rx: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    /// Exit and removal notifications.
    pub life: watch::Sender<Lifecycle>,
}

impl Record {
    /// Appends output: memory, log file and live listeners.
    pub fn push_output(&mut self, lines: Vec<LogLine>) {
        for l in lines {
            if let Some(f) = self.log_file.as_mut() {
                let _ = writeln!(f, "{}", json_line(&l));
            }
            let _ = self.live.send(Live::Chunk(l.clone()));
            self.logs.push(l);
        }
    }

    /// Does `--rm` apply?
    pub fn auto_remove(&self) -> bool {
        self.body
            .host_config
            .as_ref()
            .and_then(|h| h.auto_remove)
            .unwrap_or(false)
    }

    /// `docker ps` status text.
    pub fn status_text(&self) -> String {
        match self.status {
            Status::Created => "Created".into(),
            Status::Starting | Status::Running => "Up".into(),
            Status::Exited => format!("Exited ({})", self.exit_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_render_as_json_file() {
        let lines = split_lines(StreamKind::Stdout, b"a\nb\nc");
        assert_eq!(lines.len(), 3);
        assert_eq!(&lines[0].data[..], b"a\n");
        assert_eq!(&lines[2].data[..], b"c");
        let v: serde_json::Value = serde_json::from_str(&json_line(&lines[0])).unwrap();
        assert_eq!(v["log"], "a\n");
        assert_eq!(v["stream"], "stdout");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        let ts = lines[1].chunk(true);
        assert!(ts.data.ends_with(b"Z b\n"));
    }
}
