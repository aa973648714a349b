//! An in-memory reference backend, for tests and examples.
//!
//! `FakeBackend` is a real little state machine, not a stub: containers move
//! through created → running → exited (→ removed), run a tiny built-in
//! program model (see [`program`](self) docs: `echo`, `sleep`, `exit N`,
//! `cat`, `sh -c …`), keep their output as logs, honour signals, stop
//! timeouts, auto-remove, attach with stdin, exec, and emit Docker events.
//! Images (a preloaded `busybox:latest`, plus `load` and `import`), networks
//! (`bridge`, `host`, `none` and user networks with fake IPAM) and volumes
//! are bookkeeping only. Nothing touches the host.
//!
//! It is the leaf of every adapter test, and the reference for what the
//! [`suite`](crate::suite) expects of a backend.
//!
//! ```
//! use libswarm::{Backend, fake::FakeBackend, ContainerCreateBody, WaitCondition};
//! use libswarm::models::ContainerConfig;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = FakeBackend::new();
//! let body = ContainerCreateBody {
//!     config: ContainerConfig {
//!         image: Some("busybox".into()),
//!         cmd: Some(vec!["sh".into(), "-c".into(), "exit 3".into()]),
//!         ..Default::default()
//!     },
//!     ..Default::default()
//! };
//! let id = engine.container_create(Some("demo"), body).await.unwrap().id;
//! let wait = engine.container_wait(&id, WaitCondition::NextExit).await.unwrap();
//! engine.container_start(&id).await.unwrap();
//! assert_eq!(wait.exited().await.unwrap().status_code, 3);
//! # });
//! ```

mod images;
mod program;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};

use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    ContainerWaitResponse, EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse,
    ImageDeleteResponseItem, ImageInspect, ImageSummary, Network, NetworkCreateRequest,
    NetworkCreateResponse, SystemInfo, SystemVersion, Volume, VolumeCreateOptions,
    VolumeListResponse,
};
use crate::types::{
    AttachOptions, AttachSession, BoxStream, ByteStream, ContainerCreateBody, ContainerListOptions,
    ContainerRemoveOptions, ContainerStats, EventsOptions, ExecStartOptions, ImageImportOptions,
    ImageListOptions, ImageRemoveOptions, LogsOptions, NetworkListOptions, OutputChunk, StreamKind,
    VolumeListOptions, WaitCondition, WaitHandle,
};
use crate::util::{now_nanos, parse_signal, random_id, valid_name};
use crate::{Backend, Error, Result};

use images::{normalize_reference, FakeImage};
use state::{Container, Exec, Lifecycle, Live, LogEntry, State};

/// Events kept for replay (`since`).
const EVENT_HISTORY: usize = 10_000;

/// The in-memory reference backend. Cheap to clone (shared state).
#[derive(Clone)]
pub struct FakeBackend {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<EventMessage>,
    name: String,
}

/// The version report of berth's own adapters (API 1.44, minimum 1.24).
pub(crate) fn version_info() -> SystemVersion {
    state::version()
}

/// Reads a whole tarball stream into memory (bounded).
pub(crate) async fn collect_tarball(stream: ByteStream) -> Result<Vec<u8>> {
    images::collect(stream).await
}

impl Default for FakeBackend {
    fn default() -> Self {
        FakeBackend::new()
    }
}

impl FakeBackend {
    /// A fresh engine named `fake` with `busybox:latest` preloaded.
    pub fn new() -> FakeBackend {
        FakeBackend::named("fake")
    }

    /// A fresh engine reporting `name` in `info` (handy for cluster nodes).
    pub fn named(name: &str) -> FakeBackend {
        let (events, _) = broadcast::channel(1024);
        FakeBackend {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new()),
                events,
                name: name.to_string(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(
        &self,
        state: &mut State,
        typ: &str,
        action: &str,
        id: &str,
        attrs: Vec<(&str, String)>,
    ) {
        let event = state::event(typ, action, id, attrs);
        state.events.push_back(event.clone());
        if state.events.len() > EVENT_HISTORY {
            state.events.pop_front();
        }
        let _ = self.events.send(event);
    }
}

fn container_attrs(c: &Container) -> Vec<(&'static str, String)> {
    let mut attrs = vec![("name", c.name.clone()), ("image", c.image_ref.clone())];
    if let Some(labels) = &c.body.config.labels {
        for (k, v) in labels {
            // Leak-free: labels are few; keys are copied into owned strings below.
            attrs.push(("label", format!("{k}={v}")));
        }
    }
    attrs
}

/// Appends process output to the container's logs and live stream.
fn output_sink(
    shared: Arc<Shared>,
    id: String,
    tty: bool,
) -> Box<dyn FnMut(StreamKind, Bytes) + Send> {
    Box::new(move |stream, data| {
        let stream = if tty { StreamKind::Stdout } else { stream };
        let mut st = shared.lock();
        if let Some(c) = st.containers.get_mut(&id) {
            c.push_log(LogEntry {
                stream,
                data: data.clone(),
                time: now_nanos(),
            });
            let _ = c.live.send(Live::Chunk(OutputChunk { stream, data }));
        }
    })
}

fn live_stream(
    rx: broadcast::Receiver<Live>,
    stdout: bool,
    stderr: bool,
) -> BoxStream<Result<OutputChunk>> {
    futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(Live::Chunk(c)) => {
                    let wanted = match c.stream {
                        StreamKind::Stderr => stderr,
                        _ => stdout,
                    };
                    if wanted {
                        return Some((Ok(c), rx));
                    }
                }
                Ok(Live::Exit) | Err(broadcast::error::RecvError::Closed) => return None,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
            }
        }
    })
    .boxed()
}

impl FakeBackend {
    fn finish(shared: &Arc<Shared>, id: &str, generation: u64, code: i64) {
        let mut st = shared.lock();
        let Some(c) = st.containers.get_mut(id) else {
            return;
        };
        if c.generation != generation {
            return;
        }
        c.status = state::Status::Exited;
        c.exit_code = code;
        c.finished = now_nanos();
        c.pid = 0;
        c.signals = None;
        for s in c.exec_signals.drain(..) {
            let _ = s.send(9);
        }
        c.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.exit_code = code;
        });
        let _ = c.live.send(Live::Exit);
        let auto_remove = c.auto_remove();
        let mut attrs = container_attrs(c);
        attrs.push(("exitCode", code.to_string()));
        shared.emit(&mut st, "container", "die", id, attrs);
        if auto_remove {
            Self::remove_locked(shared, &mut st, id);
        }
    }

    fn remove_locked(shared: &Arc<Shared>, st: &mut State, id: &str) {
        let Some(c) = st.containers.remove(id) else {
            return;
        };
        st.names.remove(&c.name);
        for net_id in c.networks.keys() {
            if let Some(n) = st.networks.get_mut(net_id) {
                n.containers.remove(id);
            }
        }
        for exec in &c.exec_ids {
            st.execs.remove(exec);
        }
        c.lifecycle.send_modify(|l| l.removed = true);
        let attrs = container_attrs(&c);
        shared.emit(st, "container", "destroy", id, attrs);
    }

    async fn wait_for_exit(
        mut rx: watch::Receiver<Lifecycle>,
        after: u64,
        limit: Duration,
    ) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                if rx.borrow_and_update().exits > after || rx.borrow().removed {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn version(&self) -> Result<SystemVersion> {
        Ok(state::version())
    }

    async fn info(&self) -> Result<SystemInfo> {
        let st = self.lock();
        Ok(st.info(&self.shared.name))
    }

    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>> {
        let (rx, replay) = {
            let st = self.lock();
            let rx = self.shared.events.subscribe();
            let since = options.since.map(|s| s * 1_000_000_000);
            let replay: Vec<EventMessage> = match since {
                Some(since) => st
                    .events
                    .iter()
                    .filter(|e| e.time_nano.unwrap_or(0) >= since)
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (rx, replay)
        };
        let until = options.until.map(|u| u * 1_000_000_000);
        let filters = Arc::new(options.filters);
        let f2 = filters.clone();
        let replay = futures::stream::iter(replay)
            .filter(move |e| {
                let ok = crate::event_matches(&f2, e)
                    && until.is_none_or(|u| e.time_nano.unwrap_or(0) <= u);
                async move { ok }
            })
            .map(Ok);
        let past = until.is_some_and(|u| u <= now_nanos());
        if past {
            return Ok(replay.boxed());
        }
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |e| {
            let ok = crate::event_matches(&filters, e);
            async move { ok }
        })
        .map(Ok);
        let live: BoxStream<Result<EventMessage>> = match until {
            Some(u) => {
                let left = Duration::from_nanos(u.saturating_sub(now_nanos()).max(0) as u64);
                live.take_until(tokio::time::sleep(left)).boxed()
            }
            None => live.boxed(),
        };
        Ok(replay.chain(live).boxed())
    }

    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let mut st = self.lock();
        let id = random_id();
        let name = match name.map(|n| n.trim_start_matches('/')) {
            Some(n) if !n.is_empty() => {
                if !valid_name(n) {
                    return Err(Error::bad_request(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if let Some(other) = st.names.get(n) {
                    return Err(Error::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n.to_string()
            }
            _ => format!("fake_{}", st.next_seq() + 1),
        };
        let image_ref = body
            .config
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Error::bad_request("config.Image: no image given"))?;
        let image = st
            .find_image(&image_ref)
            .ok_or_else(|| Error::not_found(format!("No such image: {image_ref}")))?
            .clone();
        let c = st.new_container(id.clone(), name, image_ref, &image, body)?;
        let attrs = container_attrs(&c);
        st.insert_container(c);
        self.shared.emit(&mut st, "container", "create", &id, attrs);
        Ok(ContainerCreateResponse {
            id,
            warnings: Vec::new(),
        })
    }

    async fn container_start(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        let id = st.resolve_container(id)?;
        let shared = self.shared.clone();
        let c = st.container_mut(&id)?;
        if c.status == state::Status::Running {
            return Err(Error::not_modified(format!(
                "container {id} already started"
            )));
        }
        let Some(program) = c.args.first().cloned() else {
            return Err(Error::bad_request("no command specified"));
        };
        if !program::is_known(&program) {
            c.exit_code = 127;
            c.error = format!("exec: \"{program}\": executable file not found in $PATH");
            c.status = state::Status::Exited;
            return Err(Error::bad_request(format!(
                "failed to create task for container: exec: \"{program}\": executable file not found in $PATH (the fake backend models only echo, sleep, exit, true, false, cat, env, top and sh)"
            )));
        }
        c.generation += 1;
        let generation = c.generation;
        c.status = state::Status::Running;
        c.started = now_nanos();
        c.exit_code = 0;
        c.error.clear();
        c.pid = 1000 + generation as i64;
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        c.signals = Some(sig_tx);
        let stdin = if c.open_stdin() {
            match c.stdin_rx.take() {
                Some(rx) => Some(rx),
                None => {
                    let (tx, rx) = mpsc::channel(64);
                    c.stdin_tx = Some(tx);
                    Some(rx)
                }
            }
        } else {
            None
        };
        let io = program::ProcessIo::new(
            output_sink(shared.clone(), id.clone(), c.tty()),
            stdin,
            sig_rx,
            c.env.clone(),
        );
        let args = c.args.clone();
        let attrs = container_attrs(c);
        self.shared.emit(&mut st, "container", "start", &id, attrs);
        drop(st);
        let task_id = id.clone();
        tokio::spawn(async move {
            let mut io = io;
            let code = program::run(&args, &mut io).await;
            FakeBackend::finish(&shared, &task_id, generation, code);
            drop(io);
        });
        Ok(())
    }

    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let (id, signals, rx, exits, stop_signal) = {
            let mut st = self.lock();
            let id = st.resolve_container(id)?;
            let c = st.container_mut(&id)?;
            if c.status != state::Status::Running {
                return Err(Error::not_modified(format!(
                    "container {id} is not running"
                )));
            }
            let stop_signal = c
                .body
                .config
                .stop_signal
                .as_deref()
                .and_then(parse_signal)
                .unwrap_or(15);
            let rx = c.lifecycle.subscribe();
            let exits = rx.borrow().exits;
            (id, c.signals.clone(), rx, exits, stop_signal)
        };
        let Some(signals) = signals else {
            return Ok(());
        };
        let _ = signals.send(stop_signal);
        let grace = Duration::from_secs(timeout.unwrap_or(10).max(0) as u64);
        if !Self::wait_for_exit(rx.clone(), exits, grace).await {
            let _ = signals.send(9);
            Self::wait_for_exit(rx, exits, Duration::from_secs(10)).await;
        }
        let mut st = self.lock();
        let attrs = st
            .containers
            .get(&id)
            .map(container_attrs)
            .unwrap_or_default();
        self.shared.emit(&mut st, "container", "stop", &id, attrs);
        Ok(())
    }

    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let mut st = self.lock();
        let id = st.resolve_container(id)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            None => 9,
            Some(s) => {
                parse_signal(s).ok_or_else(|| Error::bad_request(format!("invalid signal: {s}")))?
            }
        };
        let c = st.container_mut(&id)?;
        if c.status != state::Status::Running {
            return Err(Error::conflict(format!("Container {id} is not running")));
        }
        if let Some(s) = &c.signals {
            let _ = s.send(sig);
        }
        let mut attrs = container_attrs(c);
        attrs.push(("signal", sig.to_string()));
        self.shared.emit(&mut st, "container", "kill", &id, attrs);
        Ok(())
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let st = self.lock();
        let id = st.resolve_container(id)?;
        let c = st.container(&id)?;
        let mut rx = c.lifecycle.subscribe();
        let now = *rx.borrow_and_update();
        if condition == WaitCondition::NotRunning && c.status != state::Status::Running {
            return Ok(WaitHandle::ready(ContainerWaitResponse {
                status_code: c.exit_code,
                error: None,
            }));
        }
        Ok(WaitHandle::new(async move {
            loop {
                let l = *rx.borrow_and_update();
                let done = match condition {
                    WaitCondition::Removed => l.removed,
                    _ => l.exits > now.exits || l.removed,
                };
                if done {
                    return Ok(ContainerWaitResponse {
                        status_code: l.exit_code,
                        error: None,
                    });
                }
                if rx.changed().await.is_err() {
                    let l = *rx.borrow();
                    return Ok(ContainerWaitResponse {
                        status_code: l.exit_code,
                        error: None,
                    });
                }
            }
        }))
    }

    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()> {
        let (id, kill) = {
            let st = self.lock();
            let id = st.resolve_container(id)?;
            let c = st.container(&id)?;
            if c.status == state::Status::Running {
                if !options.force {
                    return Err(Error::conflict(format!(
                        "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                        c.name
                    )));
                }
                let rx = c.lifecycle.subscribe();
                let exits = rx.borrow().exits;
                (id, Some((c.signals.clone(), rx, exits)))
            } else {
                (id, None)
            }
        };
        if let Some((signals, rx, exits)) = kill {
            if let Some(s) = signals {
                let _ = s.send(9);
            }
            Self::wait_for_exit(rx, exits, Duration::from_secs(10)).await;
        }
        let mut st = self.lock();
        if !st.containers.contains_key(&id) {
            // Auto-removed as it died.
            return Ok(());
        }
        Self::remove_locked(&self.shared, &mut st, &id);
        Ok(())
    }

    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let st = self.lock();
        Ok(st.list_containers(&options))
    }

    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        let st = self.lock();
        let id = st.resolve_container(id)?;
        Ok(st.inspect_container(&id))
    }

    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>> {
        let st = self.lock();
        let id = st.resolve_container(id)?;
        let c = st.container(&id)?;
        let (out, err) = (options.stdout, options.stderr);
        let mut past: Vec<&LogEntry> = c
            .logs
            .iter()
            .filter(|l| match l.stream {
                StreamKind::Stderr => err,
                _ => out,
            })
            .filter(|l| options.since.is_none_or(|s| l.time >= s * 1_000_000_000))
            .filter(|l| options.until.is_none_or(|u| l.time <= u * 1_000_000_000))
            .collect();
        if let Some(tail) = options.tail {
            let skip = past.len().saturating_sub(tail);
            past.drain(..skip);
        }
        let timestamps = options.timestamps;
        let past: Vec<Result<OutputChunk>> =
            past.into_iter().map(|l| Ok(l.chunk(timestamps))).collect();
        let past = futures::stream::iter(past);
        if options.follow && c.status == state::Status::Running {
            let live = live_stream(c.live.subscribe(), out, err).map(move |r| {
                r.map(|chunk| {
                    if timestamps {
                        LogEntry {
                            stream: chunk.stream,
                            data: chunk.data,
                            time: now_nanos(),
                        }
                        .chunk(true)
                    } else {
                        chunk
                    }
                })
            });
            Ok(past.chain(live).boxed())
        } else {
            Ok(past.boxed())
        }
    }

    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession> {
        let mut st = self.lock();
        let id = st.resolve_container(id)?;
        let c = st.container_mut(&id)?;
        let tty = c.tty();
        let rx = c.live.subscribe();
        let replay: Vec<Result<OutputChunk>> = if options.logs {
            c.logs
                .iter()
                .filter(|l| match l.stream {
                    StreamKind::Stderr => options.stderr,
                    _ => options.stdout,
                })
                .map(|l| Ok(l.chunk(false)))
                .collect()
        } else {
            Vec::new()
        };
        let alive = matches!(c.status, state::Status::Running | state::Status::Created);
        let stdin = if options.stdin && c.open_stdin() {
            if c.stdin_once() {
                c.stdin_tx.take()
            } else {
                c.stdin_tx.clone()
            }
        } else {
            None
        };
        let replay = futures::stream::iter(replay);
        let output = if options.stream && alive {
            replay
                .chain(live_stream(rx, options.stdout, options.stderr))
                .boxed()
        } else {
            replay.boxed()
        };
        let attrs = container_attrs(c);
        self.shared.emit(&mut st, "container", "attach", &id, attrs);
        Ok(AttachSession { stdin, output, tty })
    }

    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>> {
        let id = self.lock().resolve_container(id)?;
        let first = self.lock().stats(&id)?;
        if !stream {
            return Ok(futures::stream::once(async move { Ok(first) }).boxed());
        }
        let me = self.clone();
        let rest = futures::stream::unfold((me, id), |(me, id)| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = me.lock().stats(&id).ok()?;
            Some((Ok(s), (me, id)))
        });
        Ok(futures::stream::once(async move { Ok(first) })
            .chain(rest)
            .boxed())
    }

    async fn container_top(
        &self,
        id: &str,
        _ps_args: Option<&str>,
    ) -> Result<ContainerTopResponse> {
        let st = self.lock();
        let id = st.resolve_container(id)?;
        st.top(&id)
    }

    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String> {
        let mut st = self.lock();
        let cid = st.resolve_container(container)?;
        let c = st.container_mut(&cid)?;
        if c.status != state::Status::Running {
            return Err(Error::conflict(format!("container {cid} is not running")));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::bad_request("exec config: Cmd is empty"));
        }
        let exec_id = random_id();
        c.exec_ids.push(exec_id.clone());
        let env = c.env.clone();
        st.execs.insert(
            exec_id.clone(),
            Exec {
                id: exec_id.clone(),
                container_id: cid,
                config,
                env,
                running: false,
                started: false,
                exit_code: None,
                pid: 0,
            },
        );
        Ok(exec_id)
    }

    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession> {
        let mut st = self.lock();
        let pid = 2000 + st.next_seq() as i64;
        let exec = st
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?;
        if exec.started {
            return Err(Error::conflict(format!(
                "Error: Exec command {exec_id} has already run"
            )));
        }
        exec.started = true;
        exec.running = true;
        let tty = options.tty || exec.config.tty.unwrap_or(false);
        let args = exec.config.cmd.clone().unwrap_or_default();
        let mut env = exec.env.clone();
        env.extend(exec.config.env.clone().unwrap_or_default());
        let want_stdin = exec.config.attach_stdin.unwrap_or(false) && !options.detach;
        let want_out = exec.config.attach_stdout.unwrap_or(false) && !options.detach;
        let want_err = exec.config.attach_stderr.unwrap_or(false) && !options.detach;
        let cid = exec.container_id.clone();
        exec.pid = pid;
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let c = st.container_mut(&cid)?;
        if c.status != state::Status::Running {
            return Err(Error::conflict(format!("container {cid} is not running")));
        }
        c.exec_signals.push(sig_tx);
        let (stdin_tx, stdin_rx) = if want_stdin {
            let (tx, rx) = mpsc::channel(64);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (out_tx, out_rx) = mpsc::unbounded_channel::<OutputChunk>();
        let sink: Box<dyn FnMut(StreamKind, Bytes) + Send> = Box::new(move |stream, data| {
            let stream = if tty { StreamKind::Stdout } else { stream };
            let wanted = match stream {
                StreamKind::Stderr => want_err,
                _ => want_out,
            };
            if wanted {
                let _ = out_tx.send(OutputChunk { stream, data });
            }
        });
        let mut attrs = container_attrs(c);
        attrs.push(("execID", exec_id.to_string()));
        self.shared.emit(
            &mut st,
            "container",
            &format!("exec_start: {}", args.join(" ")),
            &cid,
            attrs,
        );
        drop(st);
        let shared = self.shared.clone();
        let exec_id_owned = exec_id.to_string();
        tokio::spawn(async move {
            let mut io = program::ProcessIo::new(sink, stdin_rx, sig_rx, env);
            let code = program::run(&args, &mut io).await;
            {
                let mut st = shared.lock();
                if let Some(e) = st.execs.get_mut(&exec_id_owned) {
                    e.running = false;
                    e.exit_code = Some(code);
                }
                let attrs = vec![
                    ("execID", exec_id_owned.clone()),
                    ("exitCode", code.to_string()),
                ];
                shared.emit(&mut st, "container", "exec_die", &cid, attrs);
            }
            // Dropping the sink ends the output stream, after the exit code is set.
            drop(io);
        });
        let output = tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx)
            .map(Ok)
            .boxed();
        Ok(AttachSession {
            stdin: stdin_tx,
            output,
            tty,
        })
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        let st = self.lock();
        let e = st
            .execs
            .get(exec_id)
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?;
        Ok(e.inspect())
    }

    async fn image_list(&self, options: ImageListOptions) -> Result<Vec<ImageSummary>> {
        let st = self.lock();
        Ok(st.list_images(&options))
    }

    async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let st = self.lock();
        let image = st
            .find_image(name)
            .ok_or_else(|| Error::not_found(format!("No such image: {name}")))?;
        Ok(state::inspect_image(image))
    }

    async fn image_pull(&self, reference: &str) -> Result<()> {
        let st = self.lock();
        match st.find_image(reference) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!(
                "pull access denied for {reference}: the fake backend has no registry (use load or import)"
            ))),
        }
    }

    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>> {
        let data = images::collect(tarball).await?;
        let loaded = images::parse_saved(&data, now_nanos())?;
        let mut st = self.lock();
        let mut refs = Vec::new();
        for image in loaded {
            if image.repo_tags.is_empty() {
                refs.push(image.id.clone());
            } else {
                refs.extend(image.repo_tags.iter().cloned());
            }
            let id = image.id.clone();
            st.add_image(image);
            self.shared.emit(&mut st, "image", "load", &id, vec![]);
        }
        Ok(refs)
    }

    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String> {
        let data = images::collect(tarball).await?;
        let size = images::check_rootfs(&data)?;
        let mut config = crate::models::ContainerConfig::default();
        images::apply_changes(&mut config, &options.changes)?;
        let mut seed = data.clone();
        seed.extend_from_slice(
            serde_json::to_string(&config)
                .map_err(|e| Error::internal(e.to_string()))?
                .as_bytes(),
        );
        let id = images::digest(&seed);
        let repo_tags = match &options.repo {
            Some(repo) if !repo.is_empty() => {
                let reference = match &options.tag {
                    Some(tag) if !tag.is_empty() => format!("{repo}:{tag}"),
                    _ => repo.clone(),
                };
                vec![normalize_reference(&reference)]
            }
            _ => Vec::new(),
        };
        let mut st = self.lock();
        st.add_image(FakeImage {
            id: id.clone(),
            repo_tags,
            created_nanos: now_nanos(),
            config,
            size,
            comment: options.message.unwrap_or_default(),
        });
        self.shared.emit(&mut st, "image", "import", &id, vec![]);
        Ok(id)
    }

    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let mut st = self.lock();
        let (items, deleted) = st.remove_image(name, options.force)?;
        for item in &items {
            if let Some(t) = &item.untagged {
                self.shared.emit(&mut st, "image", "untag", t, vec![]);
            }
        }
        if let Some(id) = deleted {
            self.shared.emit(&mut st, "image", "delete", &id, vec![]);
        }
        Ok(items)
    }

    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let mut st = self.lock();
        let (id, name) = st.create_network(request)?;
        self.shared
            .emit(&mut st, "network", "create", &id, vec![("name", name)]);
        Ok(NetworkCreateResponse {
            id: Some(id),
            warning: Some(String::new()),
        })
    }

    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>> {
        let st = self.lock();
        Ok(st.list_networks(&options))
    }

    async fn network_inspect(&self, id: &str) -> Result<Network> {
        let st = self.lock();
        let id = st.resolve_network(id)?;
        Ok(st.inspect_network(&id))
    }

    async fn network_remove(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        let (id, name) = st.remove_network(id)?;
        self.shared
            .emit(&mut st, "network", "destroy", &id, vec![("name", name)]);
        Ok(())
    }

    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        let mut st = self.lock();
        let net = st.resolve_network(network)?;
        let cid = st.resolve_container(container)?;
        st.connect(&net, &cid, endpoint.unwrap_or_default())?;
        let name = st
            .networks
            .get(&net)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        self.shared.emit(
            &mut st,
            "network",
            "connect",
            &net,
            vec![("container", cid), ("name", name)],
        );
        Ok(())
    }

    async fn network_disconnect(&self, network: &str, container: &str, _force: bool) -> Result<()> {
        let mut st = self.lock();
        let net = st.resolve_network(network)?;
        let cid = st.resolve_container(container)?;
        st.disconnect(&net, &cid)?;
        let name = st
            .networks
            .get(&net)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        self.shared.emit(
            &mut st,
            "network",
            "disconnect",
            &net,
            vec![("container", cid), ("name", name)],
        );
        Ok(())
    }

    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume> {
        let mut st = self.lock();
        let (volume, created) = st.create_volume(options)?;
        if created {
            self.shared.emit(
                &mut st,
                "volume",
                "create",
                &volume.name,
                vec![("driver", volume.driver.clone())],
            );
        }
        Ok(volume)
    }

    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse> {
        let st = self.lock();
        Ok(VolumeListResponse {
            volumes: Some(st.list_volumes(&options)),
            warnings: Some(Vec::new()),
        })
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        let st = self.lock();
        st.volumes
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))
    }

    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let mut st = self.lock();
        st.remove_volume(name, force)?;
        self.shared.emit(&mut st, "volume", "destroy", name, vec![]);
        Ok(())
    }
}
