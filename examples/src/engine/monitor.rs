//! The protocol between berthd and a container's shim, over libchan on the
//! shim's unix socket, and berthd's side of it.
//!
//! The shim owns the container's I/O: it writes the json-file log itself
//! and records the exit in `exit.json`, so neither is lost while berthd is
//! down. berthd connects (after starting the shim, or again after its own
//! restart) with one [`Request::Monitor`]: it learns how far the log file
//! reached at that moment, then gets every later chunk live and the exit
//! once all output is logged.

use std::path::{Path, PathBuf};

use libchan::{Builder, ByteStream, Connection, Receiver, Sender, Transport};
use serde::{Deserialize, Serialize};

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The socket did not accept a connection (the shim is gone).
    #[error("connecting to the container monitor at {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The libchan connection failed.
    #[error("talking to the container monitor: {0}")]
    Chan(#[from] libchan::Error),
    /// The shim closed the reply channel without answering.
    #[error("the container monitor hung up")]
    HungUp,
}

/// What berthd asks a shim.
#[derive(Serialize, Deserialize)]
pub enum Request {
    /// Follow the container: the reply is the log file's length when the
    /// subscription began (everything before it is in the file), then
    /// `output` gets every later chunk and ends when the container's
    /// output does; `exit` gets the exit after that.
    Monitor {
        /// The log length at subscription.
        offset: Sender<u64>,
        /// Live output.
        output: Sender<Chunk>,
        /// The exit.
        exit: Sender<Exit>,
    },
    /// Feed the container's stdin (`-i`); its end closes the stdin.
    Stdin {
        /// The bytes.
        data: ByteStream,
    },
    /// Resize the pty (`-t`).
    Resize {
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
}

/// A piece of output as the shim read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunk {
    /// From stderr (else stdout).
    pub stderr: bool,
    /// When it was read (UNIX nanoseconds).
    pub time: i64,
    /// The bytes.
    pub data: Vec<u8>,
    /// The live log file's length once this chunk was written to it (a
    /// rotation starts the live file again at 0).
    pub end: u64,
}

/// How a run ended, as the shim recorded it (also in `exit.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code (128 + signal when killed).
    pub code: i64,
    /// When (UNIX nanoseconds).
    pub finished: i64,
}

/// The shim's exit record in a container directory.
pub fn exit_file(dir: &Path) -> PathBuf {
    dir.join("exit.json")
}

/// The container's json-file log.
pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("container.log")
}

/// Reads what the shim recorded when the container exited.
pub fn read_exit(dir: &Path) -> Option<Exit> {
    let data = std::fs::read(exit_file(dir)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Writes the exit record atomically (a temp file renamed over it).
pub fn write_exit(dir: &Path, exit: Exit) -> std::io::Result<()> {
    let tmp = dir.join(".exit.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&exit).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, exit_file(dir))
}

/// A live subscription to a shim.
pub struct Monitored {
    /// The log file's length when it began.
    pub offset: u64,
    /// Live output; ends with the container's output.
    pub output: Receiver<Chunk>,
    /// The exit, after the output.
    pub exit: Receiver<Exit>,
    /// Further requests (stdin).
    pub requests: Sender<Request>,
    /// Keeps the connection up.
    pub conn: Connection,
}

/// Connects to the shim at `socket` and subscribes.
pub async fn connect(socket: &Path) -> Result<Monitored, MonitorError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| MonitorError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
    let (conn, requests, _events) =
        Builder::new().client::<Request, ()>(Transport::unix(stream))?;
    let (offset_tx, mut offset_rx) = libchan::channel(1);
    let (output_tx, output) = libchan::channel(256);
    let (exit_tx, exit) = libchan::channel(1);
    requests
        .send(Request::Monitor {
            offset: offset_tx,
            output: output_tx,
            exit: exit_tx,
        })
        .await?;
    let offset = offset_rx.recv().await?.ok_or(MonitorError::HungUp)?;
    Ok(Monitored {
        offset,
        output,
        exit,
        requests,
        conn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_exit(dir.path()), None);
        let e = Exit {
            code: 3,
            finished: 42,
        };
        write_exit(dir.path(), e).unwrap();
        assert_eq!(read_exit(dir.path()), Some(e));
        assert!(!dir.path().join(".exit.json.tmp").exists());
    }
}
