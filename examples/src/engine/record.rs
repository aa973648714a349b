//! One container as the daemon keeps it: config, status, and the
//! channels that attach, logs -f and wait listen on; and its persistent
//! part (`record.json` in the container directory), which berthd reloads
//! when it starts again.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use libswarm::models::{ContainerStateStatusEnum, ContainerWaitResponse};
use libswarm::util::rfc3339;
use libswarm::{ContainerCreateBody, OutputChunk, StreamKind};
use serde::{Deserialize, Serialize};
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

#[derive(Serialize, Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    time: String,
}

/// The json-file log line of an entry (Docker's `json-file` format).
pub fn json_line(l: &LogLine) -> String {
    let stream = match l.stream {
        StreamKind::Stderr => "stderr",
        _ => "stdout",
    };
    let line = JsonLine {
        log: String::from_utf8_lossy(&l.data),
        stream: stream.into(),
        time: rfc3339(l.time),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Parses one json-file log line (as the shim wrote it); `None` when it
/// is not one.
pub fn parse_line(line: &[u8]) -> Option<LogLine> {
    let j: JsonLine = serde_json::from_slice(line).ok()?;
    Some(LogLine {
        stream: if j.stream == "stderr" {
            StreamKind::Stderr
        } else {
            StreamKind::Stdout
        },
        time: rfc3339_nanos(&j.time)?,
        data: Bytes::from(j.log.into_owned()),
    })
}

/// UNIX nanoseconds of an RFC 3339 UTC time with optional fraction.
pub fn rfc3339_nanos(t: &str) -> Option<i64> {
    let secs = super::backend::unix_seconds(t)?;
    let frac = match t.get(19..)?.strip_prefix('.') {
        Some(rest) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let padded = format!("{digits:0<9}");
            padded.get(..9)?.parse::<i64>().ok()?
        }
        None => 0,
    };
    Some(secs * 1_000_000_000 + frac)
}

/// Splits a read made at `time` into lines (keeping the newlines), as
/// json-file does.
pub fn split_lines_at(stream: StreamKind, data: &[u8], time: i64) -> Vec<LogLine> {
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
    /// How much of the log file live listeners have had: `docker logs`
    /// reads the file up to here, then follows `live`.
    pub log_bytes: u64,
    /// Restarts by the restart policy so far.
    pub restart_count: u64,
    /// Stopped by `docker stop`/`kill`: no restart policy applies.
    pub manually_stopped: bool,
    /// Waiting out the restart delay.
    pub restarting: bool,
    /// berthd is stopping it at its exit: no restart now.
    pub no_restart: bool,
    /// Restarts since the container last ran for 10 s (the delay doubles
    /// with each).
    pub backoff: u32,
    /// Requests to the shim of the current run (resize).
    pub monitor: Option<libchan::Sender<super::monitor::Request>>,
    /// Live output.
    pub live: broadcast::Sender<Live>,
    /// The stdin writer an attach takes (`-i`; one attach, as StdinOnce).
    pub stdin_tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    /// The stdin reader the next start forwards into the container.
    pub stdin_rx: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    /// Exit and removal notifications.
    pub life: watch::Sender<Lifecycle>,
}

/// The persistent part of a [`Record`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The image as asked for.
    pub image_ref: String,
    /// The image id.
    pub image_id: String,
    /// The create request.
    pub body: ContainerCreateBody,
    /// Process arguments.
    pub args: Vec<String>,
    /// A shim was running it when this was written.
    pub running: bool,
    /// Ever started.
    pub started_once: bool,
    /// The shim's container pid.
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// Why the last start failed.
    pub error: String,
    /// Created (UNIX nanoseconds).
    pub created: i64,
    /// Last started.
    pub started: i64,
    /// Last finished.
    pub finished: i64,
    /// Restarts so far.
    pub restart_count: u64,
    /// Stopped by the user.
    pub manually_stopped: bool,
    /// The boot this was written in (a "running" record of another boot
    /// describes a run the reboot ended; empty in older records).
    #[serde(default)]
    pub boot_id: String,
}

/// The record file of a container directory.
pub fn record_file(dir: &Path) -> PathBuf {
    dir.join("record.json")
}

impl Stored {
    /// Reads `record.json` from a container directory.
    pub fn load(dir: &Path) -> std::io::Result<Stored> {
        let data = std::fs::read(record_file(dir))?;
        serde_json::from_slice(&data).map_err(std::io::Error::other)
    }

    /// The in-memory record (created or exited; the caller attaches a
    /// running one to its shim).
    pub fn into_record(self, dir: PathBuf) -> Record {
        let status = if self.started_once {
            Status::Exited
        } else {
            Status::Created
        };
        Record {
            id: self.id,
            name: self.name,
            image_ref: self.image_ref,
            image_id: self.image_id,
            body: self.body,
            args: self.args,
            dir,
            status,
            pid: 0,
            exit_code: self.exit_code,
            error: self.error,
            created: self.created,
            started: self.started,
            finished: self.finished,
            log_bytes: 0,
            restart_count: self.restart_count,
            manually_stopped: self.manually_stopped,
            restarting: false,
            no_restart: false,
            backoff: 0,
            monitor: None,
            live: broadcast::channel(1024).0,
            stdin_tx: None,
            stdin_rx: None,
            life: watch::channel(Lifecycle {
                exit_code: self.exit_code,
                ..Lifecycle::default()
            })
            .0,
        }
    }
}

impl Record {
    /// Sends output the shim logged up to `end` bytes of the log file to
    /// live listeners (the file has it: nothing is kept here).
    pub fn push_output(&mut self, lines: Vec<LogLine>, end: u64) {
        for l in lines {
            let _ = self.live.send(Live::Chunk(l));
        }
        // Chunks come in log order; a rotation starts the live file at 0.
        self.log_bytes = end;
    }

    /// Sends the log file from `log_bytes` up to `end` (output the shim
    /// logged while nobody listened) to live listeners, if there are any.
    pub fn catch_up_log(&mut self, end: u64) {
        if end <= self.log_bytes {
            return;
        }
        // Attached clients wait for this output too (a short run can end
        // before berthd subscribes to the shim).
        if self.live.receiver_count() > 0 {
            let path = super::monitor::log_file(&self.dir);
            match super::logs::Entries::open(&path, self.log_bytes, end) {
                Ok(entries) => {
                    for l in entries.map_while(|e| e.ok()) {
                        let _ = self.live.send(Live::Chunk(l));
                    }
                }
                Err(e) => tracing::warn!(id = %self.id, error = %e, "reading the container log"),
            }
        }
        self.log_bytes = end;
    }

    /// The persistent part.
    pub fn stored(&self) -> Stored {
        Stored {
            id: self.id.clone(),
            name: self.name.clone(),
            image_ref: self.image_ref.clone(),
            image_id: self.image_id.clone(),
            body: self.body.clone(),
            args: self.args.clone(),
            running: matches!(self.status, Status::Running),
            started_once: self.started != 0 || self.status == Status::Exited,
            pid: self.pid,
            exit_code: self.exit_code,
            error: self.error.clone(),
            created: self.created,
            started: self.started,
            finished: self.finished,
            restart_count: self.restart_count,
            manually_stopped: self.manually_stopped,
            boot_id: super::boot::current().to_string(),
        }
    }

    /// Writes `record.json` (a temp file renamed over it).
    pub fn save(&self) {
        let dir = &self.dir;
        let tmp = dir.join(".record.json.tmp");
        let written = serde_json::to_vec(&self.stored())
            .map_err(std::io::Error::other)
            .and_then(|j| std::fs::write(&tmp, j))
            .and_then(|()| std::fs::rename(&tmp, record_file(dir)));
        if let Err(e) = written {
            tracing::warn!(id = %self.id, error = %e, "saving the container record");
        }
    }

    /// Plans the restart after a run that ended at `finished` with `code`:
    /// the delay, or `None`. Docker's backoff: 100 ms doubling per restart,
    /// at most a minute, back to 100 ms once a run lasted 10 s.
    pub fn plan_restart(&mut self, code: i64, finished: i64) -> Option<std::time::Duration> {
        if finished - self.started >= 10_000_000_000 {
            self.backoff = 0;
        }
        let delay = self.restart_delay(code);
        if delay.is_some() {
            self.backoff = self.backoff.saturating_add(1);
        }
        delay
    }

    /// The restart policy's delay before the next restart after an exit
    /// with `code`, or `None` when it does not restart.
    pub fn restart_delay(&self, code: i64) -> Option<std::time::Duration> {
        use libswarm::models::RestartPolicyNameEnum as P;
        if self.manually_stopped || self.no_restart || self.auto_remove() {
            return None;
        }
        let policy = self.body.host_config.as_ref()?.restart_policy.as_ref()?;
        let again = match policy.name? {
            P::ALWAYS | P::UNLESS_STOPPED => true,
            P::ON_FAILURE => {
                let max = policy.maximum_retry_count.unwrap_or(0);
                code != 0 && (max <= 0 || self.restart_count < max as u64)
            }
            P::NO | P::EMPTY => false,
        };
        let ms = 100u64.saturating_mul(1 << self.backoff.min(10)).min(60_000);
        again.then(|| std::time::Duration::from_millis(ms))
    }

    /// Does the container start again when berthd starts? (`always`, and
    /// `unless-stopped` when not stopped by the user.)
    pub fn starts_with_daemon(&self) -> bool {
        use libswarm::models::RestartPolicyNameEnum as P;
        let name = (self.body.host_config.as_ref())
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| p.name);
        match name {
            Some(P::ALWAYS) => true,
            Some(P::UNLESS_STOPPED) => !self.manually_stopped,
            _ => false,
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

    /// The Docker state: `restarting` while a restart policy's delay runs.
    pub fn state(&self) -> ContainerStateStatusEnum {
        if self.restarting && self.status == Status::Exited {
            ContainerStateStatusEnum::RESTARTING
        } else {
            self.status.as_enum()
        }
    }

    /// Runs on a pty (`-t`).
    pub fn tty(&self) -> bool {
        self.body.config.tty.unwrap_or(false)
    }

    /// The pty's first size (rows, columns): `HostConfig.ConsoleSize`.
    pub fn console_size(&self) -> Option<(u16, u16)> {
        let size = self.body.host_config.as_ref()?.console_size.as_ref()?;
        match size.as_slice() {
            [h, w] if *h > 0 && *w > 0 => Some(((*h).try_into().ok()?, (*w).try_into().ok()?)),
            _ => None,
        }
    }

    /// `docker ps` status text.
    pub fn status_text(&self) -> String {
        match self.status {
            Status::Created => "Created".into(),
            Status::Starting | Status::Running => "Up".into(),
            Status::Exited if self.restarting => format!("Restarting ({})", self.exit_code),
            Status::Exited => format!("Exited ({})", self.exit_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libswarm::util::now_nanos;

    #[test]
    fn lines_split_and_render_as_json_file() {
        let lines = split_lines_at(StreamKind::Stdout, b"a\nb\nc", now_nanos());
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

    #[test]
    fn log_file_lines_parse_back() {
        let lines = split_lines_at(StreamKind::Stderr, b"x\ny\n", 1_795_351_017_123_456_789);
        let file: String = lines.iter().map(|l| json_line(l) + "\n").collect();
        let back: Vec<LogLine> = format!("{file}garbage\n")
            .lines()
            .filter_map(|l| parse_line(l.as_bytes()))
            .collect();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].stream, StreamKind::Stderr);
        assert_eq!(&back[1].data[..], b"y\n");
        assert_eq!(back[0].time, 1_795_351_017_123_456_789);
        assert_eq!(rfc3339_nanos("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(rfc3339_nanos("1970-01-01T00:00:02Z"), Some(2_000_000_000));
        assert_eq!(rfc3339_nanos("nope"), None);
    }

    fn record_with(policy: &str, max: i64) -> Record {
        let body = ContainerCreateBody {
            host_config: Some(
                serde_json::from_value(serde_json::json!({
                    "RestartPolicy": {"Name": policy, "MaximumRetryCount": max}
                }))
                .unwrap(),
            ),
            ..Default::default()
        };
        Stored {
            id: "x".into(),
            name: "x".into(),
            image_ref: String::new(),
            image_id: String::new(),
            body,
            args: Vec::new(),
            running: false,
            started_once: true,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            created: 0,
            started: 0,
            finished: 0,
            restart_count: 0,
            manually_stopped: false,
            boot_id: String::new(),
        }
        .into_record("/nonexistent".into())
    }

    #[test]
    fn restart_policies_decide_like_docker() {
        let mut r = record_with("on-failure", 2);
        assert!(r.restart_delay(0).is_none());
        assert!(r.restart_delay(1).is_some());
        r.restart_count = 2;
        assert!(r.restart_delay(1).is_none(), "on-failure:2 stops after two");
        let mut a = record_with("always", 0);
        assert_eq!(
            a.restart_delay(0),
            Some(std::time::Duration::from_millis(100))
        );
        a.restart_count = 3;
        a.backoff = 3;
        assert_eq!(
            a.restart_delay(0),
            Some(std::time::Duration::from_millis(800))
        );
        // A run of 10 s or more resets the delay; short runs double it.
        let mut b = record_with("always", 0);
        b.started = 1_000_000_000;
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis());
        assert_eq!(ms(b.plan_restart(0, 2_000_000_000)), Some(100));
        assert_eq!(ms(b.plan_restart(0, 2_000_000_000)), Some(200));
        assert_eq!(ms(b.plan_restart(0, 2_000_000_000)), Some(400));
        assert_eq!(ms(b.plan_restart(0, 11_000_000_000)), Some(100));
        a.status = Status::Exited;
        a.restarting = true;
        assert_eq!(a.state(), ContainerStateStatusEnum::RESTARTING);
        a.restarting = false;
        assert_eq!(a.state(), ContainerStateStatusEnum::EXITED);
        a.manually_stopped = true;
        assert!(a.restart_delay(0).is_none());
        assert!(a.starts_with_daemon(), "always comes back with the daemon");
        let mut u = record_with("unless-stopped", 0);
        assert!(u.starts_with_daemon());
        u.manually_stopped = true;
        assert!(!u.starts_with_daemon());
        assert!(record_with("no", 0).restart_delay(1).is_none());
        let stored = a.stored();
        assert_eq!(stored.restart_count, 3);
        assert!(stored.manually_stopped);
    }
}
