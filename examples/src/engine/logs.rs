//! `docker logs` read from the container's json-file log on disk (the
//! shim writes it), streamed in bounded blocks: berthd never holds a whole
//! log in memory, whatever its size. `--tail N` seeks back from the end
//! block by block instead of reading the file from its start.
//!
//! A rotated log ([`super::logrot`]) is read as one: `container.log.N` …
//! `.1`, then `container.log`, each opened before the read so a rotation
//! cannot move lines from under it; `-f` follows its file by inode into
//! the next one when the shim rotates.
//!
//! Docker's json-file driver is the model: `--tail` counts the file's
//! lines (of both streams), then `--since`/`--until` select by time (the
//! first line after `--until` ends the read), then the stream selection
//! applies.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use libswarm::{BoxStream, LogsOptions, OutputChunk, StreamKind};
use tokio::sync::broadcast::error::RecvError;

use super::logrot::{self, LogFile};
use super::record::{parse_line, Live, LogLine};

/// How far back `tail_start` reads at a time.
const BLOCK: u64 = 64 * 1024;
/// Consecutive lines of one stream are sent as one chunk up to this size.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the file reader and the client.
const IN_FLIGHT: usize = 16;

/// Errors reading a container log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be read.
    #[error("reading the container log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Which entries `docker logs` (or an attach with `logs`) wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after this time (UNIX nanoseconds).
    pub since: Option<i64>,
    /// Stop at the first entry after this time (UNIX nanoseconds).
    pub until: Option<i64>,
    /// Prefix entries with their RFC 3339 time.
    pub timestamps: bool,
}

impl Selection {
    /// The selection of `docker logs` options (times in seconds).
    pub fn of(o: &LogsOptions) -> Selection {
        Selection {
            stdout: o.stdout,
            stderr: o.stderr,
            since: o.since.map(|s| s.saturating_mul(1_000_000_000)),
            until: o.until.map(|u| u.saturating_mul(1_000_000_000)),
            timestamps: o.timestamps,
        }
    }

    /// Every entry of the chosen streams, without timestamps.
    pub fn streams(stdout: bool, stderr: bool) -> Selection {
        Selection {
            stdout,
            stderr,
            since: None,
            until: None,
            timestamps: false,
        }
    }

    /// Is an entry of `stream` wanted?
    pub fn wants(&self, stream: StreamKind) -> bool {
        match stream {
            StreamKind::Stderr => self.stderr,
            _ => self.stdout,
        }
    }

    /// Is `time` before `--since` (skip it)?
    pub fn too_early(&self, time: i64) -> bool {
        self.since.is_some_and(|s| time < s)
    }

    /// Is `time` after `--until` (stop there)?
    pub fn too_late(&self, time: i64) -> bool {
        self.until.is_some_and(|u| time > u)
    }
}

/// The offset where the last `n` lines of the first `end` bytes begin,
/// reading back from `end` in blocks (the log's end is a line end: the
/// shim writes whole lines).
pub fn tail_start<R: Read + Seek>(r: &mut R, end: u64, n: usize) -> std::io::Result<u64> {
    Ok(tail_lines(r, end, n)?.0)
}

/// Where the last `n` lines of the first `end` bytes begin, and how many
/// lines that is (fewer than `n` when the file has fewer: then 0).
fn tail_lines<R: Read + Seek>(r: &mut R, end: u64, n: usize) -> std::io::Result<(u64, usize)> {
    if n == 0 {
        return Ok((end, 0));
    }
    let mut buf = vec![0u8; BLOCK as usize];
    let mut pos = end;
    // The newline ending the last line does not start a line.
    let mut newlines = 0usize;
    let mut skip_last = true;
    while pos > 0 {
        let len = BLOCK.min(pos);
        pos -= len;
        r.seek(SeekFrom::Start(pos))?;
        let block = &mut buf[..len as usize];
        r.read_exact(block)?;
        for (i, b) in block.iter().enumerate().rev() {
            if *b != b'\n' {
                skip_last = false;
                continue;
            }
            if std::mem::take(&mut skip_last) {
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok((pos + i as u64 + 1, n));
            }
        }
    }
    // Every newline but the last starts a line, and so does the start.
    Ok((0, if end == 0 { 0 } else { newlines + 1 }))
}

/// The length of the complete lines of the log (a line being written is
/// left out); 0 when there is no log.
pub fn complete_len(path: &Path) -> u64 {
    File::open(path).map(|f| complete_len_of(&f)).unwrap_or(0)
}

/// [`complete_len`] of an open file.
fn complete_len_of(f: &File) -> u64 {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 || last_byte(f, len) == Some(b'\n') {
        return len;
    }
    // The start of the last, partial line is the end of the complete ones.
    tail_start(&mut &*f, len, 1).unwrap_or(0)
}

fn last_byte(mut f: &File, len: u64) -> Option<u8> {
    let mut b = [0u8];
    f.seek(SeekFrom::Start(len.checked_sub(1)?)).ok()?;
    f.read_exact(&mut b).ok()?;
    Some(b[0])
}

/// The entries in `[start, end)` of a log, in order; a last line without
/// its newline and lines that do not parse are skipped.
pub struct Entries {
    reader: BufReader<std::io::Take<File>>,
    line: Vec<u8>,
}

impl Entries {
    /// Opens `path` at `start`.
    pub fn open(path: &Path, start: u64, end: u64) -> std::io::Result<Entries> {
        Entries::of_file(&File::open(path)?, start, end)
    }

    /// Reads an open file at `start`.
    pub fn of_file(file: &File, start: u64, end: u64) -> std::io::Result<Entries> {
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(start))?;
        Ok(Entries {
            reader: BufReader::with_capacity(BLOCK as usize, f.take(end.saturating_sub(start))),
            line: Vec::new(),
        })
    }
}

impl Iterator for Entries {
    type Item = std::io::Result<LogLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.reader.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(_) if self.line.last() != Some(&b'\n') => return None,
                Ok(_) => {
                    if let Some(l) = parse_line(&self.line) {
                        return Some(Ok(l));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// What to read of a log (its rotated files and the live one).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// Read the live file up to here (the rotated ones whole); `None`:
    /// the complete lines it has when read.
    pub end: Option<u64>,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Which entries.
    pub selection: Selection,
}

/// Streams the selected entries of the log at `path`, read in blocks on a
/// blocking thread: at most a few chunks are in memory, and a client that
/// goes away stops the read.
pub fn stream(path: PathBuf, span: Span) -> BoxStream<libswarm::Result<OutputChunk>> {
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let sent = Snapshot::take(&path, span.tail, span.end)
            .and_then(|snap| snap.send(span.selection, &tx));
        if let Err(source) = sent {
            report(path, source, &tx);
        }
    });
    stream_of(rx)
}

/// The log's files, open, oldest first, with where the read of each ends
/// and where the read starts (file, offset).
struct Snapshot {
    set: Vec<LogFile>,
    ends: Vec<u64>,
    from: (usize, u64),
}

impl Snapshot {
    /// Opens the files; the live one is read to `end` (default: its
    /// complete lines), the rotated ones whole; `tail` counts lines back
    /// across them all.
    fn take(path: &Path, tail: Option<usize>, end: Option<u64>) -> std::io::Result<Snapshot> {
        let set = logrot::open_set(path)?;
        let last = set.len().checked_sub(1);
        let mut ends = Vec::with_capacity(set.len());
        for (i, f) in set.iter().enumerate() {
            ends.push(match (Some(i) == last, end) {
                (true, Some(e)) => e,
                (true, None) => complete_len_of(&f.file),
                (false, _) => f.file.metadata()?.len(),
            });
        }
        let mut from = (0, 0);
        if let (Some(mut n), Some(last)) = (tail, last) {
            from = (last, ends[last]);
            for i in (0..=last).rev() {
                let (start, found) = tail_lines(&mut &set[i].file, ends[i], n)?;
                from = (i, start);
                if found >= n {
                    break;
                }
                n -= found;
            }
        }
        Ok(Snapshot { set, ends, from })
    }

    /// Sends the selected entries from `from` to the ends.
    fn send(&self, sel: Selection, tx: &ChunkTx) -> std::io::Result<Flow> {
        let (first, offset) = self.from;
        for i in first..self.set.len() {
            let start = if i == first { offset } else { 0 };
            if let Flow::Done = send_range(&self.set[i].file, start, self.ends[i], sel, tx)? {
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::More)
    }

    /// The live file, read up to its end: where a follower goes on.
    fn into_cursor(mut self) -> Option<Cursor> {
        let pos = self.ends.pop()?;
        let file = self.set.pop()?;
        Some(Cursor { file, pos })
    }
}

/// Where a follower is: a file (by inode, found again after rotations)
/// and the offset read so far.
struct Cursor {
    file: LogFile,
    pos: u64,
}

impl Cursor {
    /// Sends what was logged since the last read: the rest of this file,
    /// and when the shim rotated it away, the newer files in turn (a file
    /// dropped meanwhile is skipped: the follower was too slow for
    /// `max-file`, as with Docker).
    fn advance(&mut self, path: &Path, sel: Selection, tx: &ChunkTx) -> std::io::Result<Flow> {
        loop {
            let live = logrot::ino_at(path) == Some(self.file.ino);
            // A rotated file is complete: the shim rotates between lines.
            let end = if live {
                complete_len_of(&self.file.file)
            } else {
                self.file.file.metadata()?.len()
            };
            if end < self.pos {
                // Emptied in place (`max-file=1`).
                self.pos = 0;
            }
            if let Flow::Done = send_range(&self.file.file, self.pos, end, sel, tx)? {
                return Ok(Flow::Done);
            }
            self.pos = end;
            if live {
                return Ok(Flow::More);
            }
            let mut set = logrot::open_set(path)?;
            let next = match set.iter().position(|f| f.ino == self.file.ino) {
                Some(i) => i + 1,
                None => 0,
            };
            if next >= set.len() {
                // Mid-rotation: the next wake-up reads on.
                return Ok(Flow::More);
            }
            self.file = set.swap_remove(next);
            self.pos = 0;
        }
    }
}

/// `docker logs -f`: the selected entries the log has, then each entry as
/// the shim logs it, until the run ends (`live` says `End`) or an entry is
/// after `--until`. New entries are read from the file too, so a follower
/// misses nothing however fast the container writes; `live` (subscribed
/// before the log's end was taken) only wakes the reader.
pub fn follow(
    path: PathBuf,
    tail: Option<usize>,
    sel: Selection,
    mut live: tokio::sync::broadcast::Receiver<Live>,
) -> BoxStream<libswarm::Result<OutputChunk>> {
    use tokio::sync::broadcast::error::TryRecvError;
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    tokio::spawn(async move {
        let mut cursor: Option<Cursor> = None;
        // Only the first read takes the tail (a log that is not there yet
        // is read whole once it is).
        let mut tail = tail;
        let mut ended = false;
        loop {
            let (p, tx2) = (path.clone(), tx.clone());
            let mut at = cursor.take();
            let read = tokio::task::spawn_blocking(move || {
                let flow = match at.as_mut() {
                    Some(c) => c.advance(&p, sel, &tx2)?,
                    None => {
                        let snap = Snapshot::take(&p, tail, None)?;
                        let flow = snap.send(sel, &tx2)?;
                        at = snap.into_cursor();
                        flow
                    }
                };
                Ok::<_, std::io::Error>((at, flow))
            })
            .await;
            tail = None;
            match read {
                Ok(Ok((at, Flow::More))) => cursor = at,
                Ok(Ok((_, Flow::Done))) | Err(_) => return,
                Ok(Err(source)) => return report(path, source, &tx),
            }
            if ended {
                return;
            }
            tokio::select! {
                woke = live.recv() => ended = matches!(woke, Ok(Live::End) | Err(RecvError::Closed)),
                () = tx.closed() => return,
            }
            // One read for everything queued meanwhile.
            loop {
                match live.try_recv() {
                    Ok(Live::End) | Err(TryRecvError::Closed) => ended = true,
                    Ok(Live::Chunk(_)) | Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty) => {}
                }
                break;
            }
        }
    });
    stream_of(rx)
}

/// Live output from `rx` until the run ends (attach); a listener that
/// lags behind the bounded buffer skips what it missed.
pub fn live(
    rx: tokio::sync::broadcast::Receiver<Live>,
    sel: Selection,
) -> BoxStream<libswarm::Result<OutputChunk>> {
    futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(Live::Chunk(l)) if sel.too_early(l.time) || !sel.wants(l.stream) => continue,
                Ok(Live::Chunk(l)) => return Some((Ok(l.chunk(sel.timestamps)), rx)),
                Ok(Live::End) | Err(RecvError::Closed) => return None,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "a live log listener fell behind");
                    continue;
                }
            }
        }
    })
    .boxed()
}

fn stream_of<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> BoxStream<T> {
    futures::stream::unfold(rx, |mut rx| async move { Some((rx.recv().await?, rx)) }).boxed()
}

type ChunkTx = tokio::sync::mpsc::Sender<libswarm::Result<OutputChunk>>;

fn report(path: PathBuf, source: std::io::Error, tx: &ChunkTx) {
    let e = LogError::Io { path, source };
    tracing::warn!(error = %e, "docker logs");
    let _ = tx.try_send(Err(libswarm::Error::internal(e.to_string())));
}

/// Whether a read may go on.
enum Flow {
    /// The next entries are wanted.
    More,
    /// An entry after `--until`, or the client went away.
    Done,
}

/// Sends the selected entries of `[start, end)` of a file.
fn send_range(
    file: &File,
    start: u64,
    end: u64,
    sel: Selection,
    tx: &ChunkTx,
) -> std::io::Result<Flow> {
    if start >= end {
        return Ok(Flow::More);
    }
    let entries = Entries::of_file(file, start, end)?;
    let mut batch = Batch::default();
    let mut flow = Flow::More;
    for entry in entries {
        let l = entry?;
        if sel.too_late(l.time) {
            flow = Flow::Done;
            break;
        }
        if sel.too_early(l.time) || !sel.wants(l.stream) {
            continue;
        }
        if let Some(full) = batch.add(&l, sel.timestamps) {
            if tx.blocking_send(Ok(full)).is_err() {
                return Ok(Flow::Done);
            }
        }
    }
    if let Some(last) = batch.take() {
        if tx.blocking_send(Ok(last)).is_err() {
            return Ok(Flow::Done);
        }
    }
    Ok(flow)
}

/// Consecutive lines of one stream, joined (fewer, larger frames).
#[derive(Default)]
struct Batch {
    stream: Option<StreamKind>,
    data: BytesMut,
}

impl Batch {
    /// Adds a line; returns the previous batch when it is full or of the
    /// other stream.
    fn add(&mut self, l: &LogLine, timestamps: bool) -> Option<OutputChunk> {
        let flush = self.stream.is_some_and(|s| s != l.stream) || self.data.len() >= CHUNK;
        let out = if flush { self.take() } else { None };
        self.stream = Some(l.stream);
        self.data.extend_from_slice(&l.chunk(timestamps).data);
        out
    }

    fn take(&mut self) -> Option<OutputChunk> {
        let stream = self.stream.take()?;
        let data: Bytes = std::mem::take(&mut self.data).freeze();
        Some(OutputChunk { stream, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::{json_line, split_lines_at};
    use std::io::Write;

    fn write_log(lines: &[(StreamKind, &str, i64)]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for (stream, text, time) in lines {
            for l in split_lines_at(*stream, text.as_bytes(), *time) {
                writeln!(f, "{}", json_line(&l)).unwrap();
            }
        }
        f.flush().unwrap();
        f
    }

    fn read_all(path: &Path, end: u64, tail: Option<usize>, sel: Selection) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let read = Span {
            end: Some(end),
            tail,
            selection: sel,
        };
        rt.block_on(async {
            let mut s = stream(path.to_path_buf(), read);
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                out.extend_from_slice(&c.unwrap().data);
            }
            out
        })
    }

    #[test]
    fn tail_start_counts_lines_back_across_blocks() {
        let mut data = Vec::new();
        for i in 0..50_000 {
            data.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let len = data.len() as u64;
        let mut c = std::io::Cursor::new(&data);
        let at = tail_start(&mut c, len, 3).unwrap() as usize;
        assert_eq!(&data[at..], b"line 49997\nline 49998\nline 49999\n");
        assert_eq!(tail_start(&mut c, len, 0).unwrap(), len);
        assert_eq!(tail_start(&mut c, len, 1_000_000).unwrap(), 0);
        let at = tail_start(&mut c, len, 20_000).unwrap() as usize;
        assert!(data[at..].starts_with(b"line 30000\n"));
        assert_eq!(tail_start(&mut c, 0, 5).unwrap(), 0);
    }

    #[test]
    fn reads_select_by_tail_time_and_stream_like_json_file() {
        let s = 1_000_000_000;
        let f = write_log(&[
            (StreamKind::Stdout, "a\n", 10 * s),
            (StreamKind::Stderr, "b\n", 11 * s),
            (StreamKind::Stdout, "c\nd\n", 12 * s),
            (StreamKind::Stdout, "e\n", 13 * s),
        ]);
        let end = complete_len(f.path());
        let all = Selection::streams(true, true);
        assert_eq!(read_all(f.path(), end, None, all), b"a\nb\nc\nd\ne\n");
        assert_eq!(read_all(f.path(), end, Some(2), all), b"d\ne\n");
        // Tail counts both streams' lines before the stream selection.
        let err = Selection::streams(false, true);
        assert_eq!(read_all(f.path(), end, Some(4), err), b"b\n");
        assert_eq!(read_all(f.path(), end, Some(3), err), b"");
        let window = Selection {
            since: Some(11 * s),
            until: Some(12 * s),
            ..all
        };
        assert_eq!(read_all(f.path(), end, None, window), b"b\nc\nd\n");
        let ts = Selection {
            timestamps: true,
            ..all
        };
        let out = String::from_utf8(read_all(f.path(), end, Some(1), ts)).unwrap();
        assert_eq!(out, "1970-01-01T00:00:13.000000000Z e\n");
        // Only the part before `end` is read.
        let first = tail_start(&mut File::open(f.path()).unwrap(), end, 4).unwrap();
        assert_eq!(read_all(f.path(), first, None, all), b"a\n");
    }

    #[test]
    fn follow_reads_every_entry_from_the_file_even_when_wakeups_lag() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let f = write_log(&[(StreamKind::Stdout, "old\n", 1)]);
        let path = f.path().to_path_buf();
        let out = rt.block_on(async move {
            // A tiny wake-up buffer: the follower lags behind it.
            let (live, rx) = tokio::sync::broadcast::channel(4);
            let mut s = follow(path.clone(), Some(1), Selection::streams(true, true), rx);
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(&first.data[..], b"old\n");
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            for i in 0..2000 {
                let l = &split_lines_at(StreamKind::Stderr, format!("{i}\n").as_bytes(), 2)[0];
                writeln!(log, "{}", json_line(l)).unwrap();
                let _ = live.send(Live::Chunk(l.clone()));
            }
            let _ = live.send(Live::End);
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                let c = c.unwrap();
                assert_eq!(c.stream, StreamKind::Stderr);
                out.extend_from_slice(&c.data);
            }
            out
        });
        let want: String = (0..2000).map(|i| format!("{i}\n")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    /// A log rotated by the shim's writer: `n` stdout lines `r-0` … into
    /// files of at most `max_size` bytes, `max_file` kept.
    fn write_rotated(path: &Path, n: usize, max_size: u64, max_file: u32) {
        let rot = logrot::Rotation {
            max_size: Some(max_size),
            max_file,
        };
        let mut log = logrot::RotatingLog::open(path, rot).unwrap();
        for i in 0..n {
            let l = &split_lines_at(StreamKind::Stdout, format!("r-{i}\n").as_bytes(), 1)[0];
            log.write_line(format!("{}\n", json_line(l)).as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn rotated_files_read_in_order_and_tail_counts_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        write_rotated(&path, 100, 300, 4);
        assert_eq!(logrot::files(&path).len(), 4);
        let all = Selection::streams(true, true);
        let text = |out: Vec<u8>| String::from_utf8(out).unwrap();
        let whole = text(read_all(&path, complete_len(&path), None, all));
        let first: usize = whole.lines().next().unwrap()[2..].parse().unwrap();
        let want: String = (first..100).map(|i| format!("r-{i}\n")).collect();
        assert_eq!(whole, want);
        // More lines than the live file has: the tail reaches back.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tail = |n: usize| {
            let span = Span {
                end: None,
                tail: Some(n),
                selection: all,
            };
            rt.block_on(async {
                let mut s = stream(path.clone(), span);
                let mut out = Vec::new();
                while let Some(c) = s.next().await {
                    out.extend_from_slice(&c.unwrap().data);
                }
                String::from_utf8(out).unwrap()
            })
        };
        let want: String = (90..100).map(|i| format!("r-{i}\n")).collect();
        assert_eq!(tail(10), want);
        assert_eq!(tail(100_000), whole);
        assert_eq!(tail(0), "");
    }

    #[test]
    fn follow_goes_on_into_the_next_file_after_rotations() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        write_rotated(&path, 1, 300, 10);
        let out = rt.block_on(async {
            let (live, rx) = tokio::sync::broadcast::channel(4);
            let mut s = follow(path.clone(), Some(1), Selection::streams(true, true), rx);
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(&first.data[..], b"r-0\n");
            // Many rotations between two wake-ups, fewer than max-file.
            let rot = logrot::Rotation {
                max_size: Some(300),
                max_file: 10,
            };
            let mut log = logrot::RotatingLog::open(&path, rot).unwrap();
            for i in 1..30 {
                let l = &split_lines_at(StreamKind::Stdout, format!("r-{i}\n").as_bytes(), 1)[0];
                log.write_line(format!("{}\n", json_line(l)).as_bytes())
                    .unwrap();
            }
            assert!(logrot::files(&path).len() > 3, "it rotated");
            let _ = live.send(Live::End);
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                out.extend_from_slice(&c.unwrap().data);
            }
            String::from_utf8(out).unwrap()
        });
        let want: String = (1..30).map(|i| format!("r-{i}\n")).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn a_partial_last_line_and_a_missing_log_read_as_nothing() {
        let f = write_log(&[(StreamKind::Stdout, "a\n", 1)]);
        let whole = complete_len(f.path());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(f.path())
            .unwrap();
        file.write_all(br#"{"log":"half"#).unwrap();
        assert_eq!(complete_len(f.path()), whole);
        let len = file.metadata().unwrap().len();
        let all = Selection::streams(true, true);
        assert_eq!(read_all(f.path(), len, None, all), b"a\n");
        let missing = Path::new("/nonexistent/container.log");
        assert_eq!(complete_len(missing), 0);
        assert_eq!(read_all(missing, 10, Some(3), all), b"");
    }
}
