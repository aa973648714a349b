//! A behaviour suite any [`Backend`] can be run against.
//!
//! Every adapter stack in this crate runs it in its tests; an engine that
//! implements `Backend` can run it too. It needs the image `busybox` (with
//! `sh`, `echo`, `sleep`, `cat`) and creates, then removes, objects whose
//! names start with a per-run prefix, so it can share a backend with other
//! work.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! let engine = Arc::new(libswarm::fake::FakeBackend::new());
//! libswarm::suite::run(engine).await.expect("backend behaves");
//! # }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::models::{
    ContainerConfig, ExecConfig, HostConfig, NetworkCreateRequest, VolumeCreateOptions,
};
use crate::{
    AttachOptions, Backend, ContainerCreateBody, ContainerListOptions, ContainerRemoveOptions,
    ErrorKind, EventsOptions, ExecStartOptions, ImageListOptions, LogsOptions, NetworkListOptions,
    StreamKind, VolumeListOptions, WaitCondition,
};

/// A failed expectation: which check, and what was seen.
#[derive(Debug, thiserror::Error)]
#[error("behaviour suite: {check}: {detail}")]
pub struct SuiteFailure {
    /// The check that failed.
    pub check: &'static str,
    /// What happened instead.
    pub detail: String,
}

type Check<T = ()> = std::result::Result<T, SuiteFailure>;

macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(SuiteFailure { check: $check, detail: format!($($fmt)+) });
        }
    };
}

fn fail<E: std::fmt::Display>(check: &'static str) -> impl Fn(E) -> SuiteFailure {
    move |e| SuiteFailure {
        check,
        detail: e.to_string(),
    }
}

async fn within<T>(check: &'static str, fut: impl std::future::Future<Output = T>) -> Check<T> {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .map_err(|_| SuiteFailure {
            check,
            detail: "timed out after 20 s".into(),
        })
}

static RUNS: AtomicU32 = AtomicU32::new(0);

struct Ctx {
    b: Arc<dyn Backend>,
    prefix: String,
}

impl Ctx {
    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    async fn create(
        &self,
        check: &'static str,
        name: &str,
        body: ContainerCreateBody,
    ) -> Check<String> {
        let r = within(check, self.b.container_create(Some(&self.name(name)), body))
            .await?
            .map_err(fail(check))?;
        Ok(r.id)
    }

    async fn cleanup(&self, id: &str) {
        let _ = self
            .b
            .container_remove(
                id,
                ContainerRemoveOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await;
    }

    async fn output(
        &self,
        check: &'static str,
        id: &str,
        stdout: bool,
        stderr: bool,
    ) -> Check<String> {
        let logs = self
            .b
            .container_logs(
                id,
                LogsOptions {
                    stdout,
                    stderr,
                    ..Default::default()
                },
            )
            .await
            .map_err(fail(check))?;
        let chunks: Vec<_> = within(check, logs.collect()).await?;
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&c.map_err(fail(check))?.data);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// A create body running `cmd` in busybox.
pub fn busybox(cmd: &[&str]) -> ContainerCreateBody {
    ContainerCreateBody {
        config: ContainerConfig {
            image: Some("busybox".into()),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// One part of the suite, so an engine still growing can run what it
/// supports and see exactly which parts fail ([`run_each`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// ping, version, info.
    System,
    /// create, start, wait, logs, inspect and list of a short run.
    Lifecycle,
    /// Error kinds: missing container or image, duplicate name.
    Errors,
    /// start, stop, kill, restart and remove of a long run.
    LongRunning,
    /// top and stats of a running container.
    TopStats,
    /// attach with stdin (StdinOnce).
    AttachStdin,
    /// exec: output, exit code, errors.
    Exec,
    /// auto-remove and waiting for removal.
    AutoRemove,
    /// image list and inspect, missing images.
    Images,
    /// network create, connect, inspect, disconnect, remove.
    Networks,
    /// volume create, list, inspect, remove.
    Volumes,
    /// the event stream of a container.
    Events,
}

impl Part {
    /// Every part, in the order [`run`] runs them.
    pub const ALL: [Part; 12] = [
        Part::System,
        Part::Lifecycle,
        Part::Errors,
        Part::LongRunning,
        Part::TopStats,
        Part::AttachStdin,
        Part::Exec,
        Part::AutoRemove,
        Part::Images,
        Part::Networks,
        Part::Volumes,
        Part::Events,
    ];

    async fn run(self, ctx: &Ctx) -> Check {
        match self {
            Part::System => system(ctx).await,
            Part::Lifecycle => lifecycle(ctx).await,
            Part::Errors => errors(ctx).await,
            Part::LongRunning => long_running(ctx).await,
            Part::TopStats => top_stats(ctx).await,
            Part::AttachStdin => attach_stdin(ctx).await,
            Part::Exec => exec(ctx).await,
            Part::AutoRemove => auto_remove(ctx).await,
            Part::Images => images(ctx).await,
            Part::Networks => networks(ctx).await,
            Part::Volumes => volumes(ctx).await,
            Part::Events => events(ctx).await,
        }
    }
}

fn context(backend: Arc<dyn Backend>) -> Ctx {
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    Ctx {
        b: backend,
        prefix: format!("suite{}x{n}", std::process::id()),
    }
}

/// Runs every check against `backend`; the first failure is returned.
pub async fn run(backend: Arc<dyn Backend>) -> Result<(), SuiteFailure> {
    run_parts(backend, &Part::ALL).await
}

/// Runs the given parts in order; the first failure is returned.
pub async fn run_parts(backend: Arc<dyn Backend>, parts: &[Part]) -> Result<(), SuiteFailure> {
    let ctx = context(backend);
    for part in parts {
        part.run(&ctx).await?;
    }
    Ok(())
}

/// Runs the given parts in order, each whatever the others gave, and
/// returns every outcome.
///
/// ```no_run
/// # async fn demo() {
/// use std::sync::Arc;
/// use libswarm::suite::{run_each, Part};
/// let engine = Arc::new(libswarm::fake::FakeBackend::new());
/// for (part, outcome) in run_each(engine, &Part::ALL).await {
///     println!("{part:?}: {}", if outcome.is_ok() { "ok" } else { "failed" });
/// }
/// # }
/// ```
pub async fn run_each(
    backend: Arc<dyn Backend>,
    parts: &[Part],
) -> Vec<(Part, Result<(), SuiteFailure>)> {
    let ctx = context(backend);
    let mut out = Vec::new();
    for part in parts {
        out.push((*part, part.run(&ctx).await));
    }
    out
}

async fn system(ctx: &Ctx) -> Check {
    const C: &str = "system";
    ctx.b.ping().await.map_err(fail(C))?;
    let v = ctx.b.version().await.map_err(fail(C))?;
    ensure!(
        C,
        v.api_version.as_deref().is_some_and(|a| !a.is_empty()),
        "version has no ApiVersion: {v:?}"
    );
    let info = ctx.b.info().await.map_err(fail(C))?;
    ensure!(C, info.containers.is_some(), "info has no container count");
    Ok(())
}

async fn lifecycle(ctx: &Ctx) -> Check {
    const C: &str = "create/start/wait/logs";
    let id = ctx
        .create(
            C,
            "echo",
            busybox(&["sh", "-c", "echo hello; echo oops >&2; exit 3"]),
        )
        .await?;
    let result = async {
        let i = ctx.b.container_inspect(&id).await.map_err(fail(C))?;
        let status = i.state.and_then(|s| s.status).map(|s| s.to_string());
        ensure!(
            C,
            status.as_deref() == Some("created"),
            "new container state {status:?}"
        );
        let by_name = ctx
            .b
            .container_inspect(&ctx.name("echo"))
            .await
            .map_err(fail(C))?;
        ensure!(
            C,
            by_name.id.as_deref() == Some(id.as_str()),
            "inspect by name gave {:?}",
            by_name.id
        );
        let wait = ctx
            .b
            .container_wait(&id, WaitCondition::NextExit)
            .await
            .map_err(fail(C))?;
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let exit = within(C, wait.exited()).await?.map_err(fail(C))?;
        ensure!(
            C,
            exit.status_code == 3,
            "exit code {} (want 3)",
            exit.status_code
        );
        let out = ctx.output(C, &id, true, false).await?;
        ensure!(C, out == "hello\n", "stdout logs {out:?}");
        let err = ctx.output(C, &id, false, true).await?;
        ensure!(C, err == "oops\n", "stderr logs {err:?}");
        let i = ctx.b.container_inspect(&id).await.map_err(fail(C))?;
        let state = i.state.unwrap_or_default();
        ensure!(
            C,
            state.exit_code == Some(3) && state.running == Some(false),
            "after exit: {state:?}"
        );
        // Not running: the wait resolves at once.
        let again = ctx
            .b
            .container_wait(&id, WaitCondition::NotRunning)
            .await
            .map_err(fail(C))?;
        let code = within(C, again.exited())
            .await?
            .map_err(fail(C))?
            .status_code;
        ensure!(C, code == 3, "second wait gave {code}");
        let all = ctx
            .b
            .container_list(ContainerListOptions {
                all: true,
                ..Default::default()
            })
            .await
            .map_err(fail(C))?;
        ensure!(
            C,
            all.iter().any(|c| c.id.as_deref() == Some(id.as_str())),
            "list -a misses {id}"
        );
        let running = ctx
            .b
            .container_list(ContainerListOptions::default())
            .await
            .map_err(fail(C))?;
        ensure!(
            C,
            !running.iter().any(|c| c.id.as_deref() == Some(id.as_str())),
            "exited container listed as running"
        );
        Ok(())
    }
    .await;
    ctx.cleanup(&id).await;
    result
}

async fn errors(ctx: &Ctx) -> Check {
    const C: &str = "error kinds";
    let e = ctx.b.container_inspect(&ctx.name("missing")).await.err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "inspect missing: {e:?}"
    );
    let mut body = busybox(&["true"]);
    body.config.image = Some(format!("{}-no-such-image", ctx.prefix));
    let e = ctx.b.container_create(None, body).await.err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "create from missing image: {e:?}"
    );
    let id = ctx.create(C, "dup", busybox(&["true"])).await?;
    let e = ctx
        .b
        .container_create(Some(&ctx.name("dup")), busybox(&["true"]))
        .await
        .err();
    ctx.cleanup(&id).await;
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::Conflict),
        "duplicate name: {e:?}"
    );
    let e = ctx
        .b
        .container_remove(&ctx.name("missing"), ContainerRemoveOptions::default())
        .await
        .err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "remove missing: {e:?}"
    );
    Ok(())
}

async fn long_running(ctx: &Ctx) -> Check {
    const C: &str = "start/stop/kill/remove";
    let id = ctx
        .create(C, "sleeper", busybox(&["sleep", "1000"]))
        .await?;
    let result = async {
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let e = ctx.b.container_start(&id).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotModified),
            "second start: {e:?}"
        );
        let running = ctx
            .b
            .container_list(ContainerListOptions::default())
            .await
            .map_err(fail(C))?;
        ensure!(
            C,
            running.iter().any(|c| c.id.as_deref() == Some(id.as_str())),
            "running container not listed"
        );
        let e = ctx
            .b
            .container_remove(&id, ContainerRemoveOptions::default())
            .await
            .err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::Conflict),
            "remove running: {e:?}"
        );
        let wait = ctx
            .b
            .container_wait(&id, WaitCondition::NotRunning)
            .await
            .map_err(fail(C))?;
        within(C, ctx.b.container_stop(&id, Some(1)))
            .await?
            .map_err(fail(C))?;
        let code = within(C, wait.exited())
            .await?
            .map_err(fail(C))?
            .status_code;
        // SIGTERM (143), or SIGKILL (137) where PID 1 ignores SIGTERM.
        ensure!(C, code == 143 || code == 137, "stop gave exit code {code}");
        let e = ctx.b.container_stop(&id, Some(1)).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotModified),
            "stop stopped: {e:?}"
        );
        let e = ctx.b.container_kill(&id, None).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::Conflict),
            "kill stopped: {e:?}"
        );
        // Restart and kill.
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let wait = ctx
            .b
            .container_wait(&id, WaitCondition::NotRunning)
            .await
            .map_err(fail(C))?;
        ctx.b
            .container_kill(&id, Some("SIGKILL"))
            .await
            .map_err(fail(C))?;
        let code = within(C, wait.exited())
            .await?
            .map_err(fail(C))?
            .status_code;
        ensure!(C, code == 137, "kill gave exit code {code}");
        ctx.b
            .container_remove(&id, ContainerRemoveOptions::default())
            .await
            .map_err(fail(C))?;
        let e = ctx.b.container_inspect(&id).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
            "inspect removed: {e:?}"
        );
        Ok(())
    }
    .await;
    ctx.cleanup(&id).await;
    result
}

async fn top_stats(ctx: &Ctx) -> Check {
    const C: &str = "top/stats";
    let id = ctx.create(C, "top", busybox(&["sleep", "1000"])).await?;
    let result = async {
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let top = ctx.b.container_top(&id, None).await.map_err(fail(C))?;
        ensure!(
            C,
            top.processes.is_some_and(|p| !p.is_empty()),
            "top shows no process"
        );
        let stats = ctx.b.container_stats(&id, false).await.map_err(fail(C))?;
        let first = within(C, stats.into_future()).await?.0;
        ensure!(C, matches!(first, Some(Ok(_))), "stats gave {first:?}");
        Ok(())
    }
    .await;
    ctx.cleanup(&id).await;
    result
}

async fn attach_stdin(ctx: &Ctx) -> Check {
    const C: &str = "attach with stdin";
    let mut body = busybox(&["cat"]);
    body.config.open_stdin = Some(true);
    body.config.stdin_once = Some(true);
    body.config.attach_stdin = Some(true);
    body.config.attach_stdout = Some(true);
    let id = ctx.create(C, "cat", body).await?;
    let result = async {
        let session = ctx
            .b
            .container_attach(
                &id,
                AttachOptions {
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: false,
                },
            )
            .await
            .map_err(fail(C))?;
        let wait = ctx
            .b
            .container_wait(&id, WaitCondition::NextExit)
            .await
            .map_err(fail(C))?;
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let Some(stdin) = session.stdin else {
            return Err(SuiteFailure {
                check: C,
                detail: "no stdin in attach session".into(),
            });
        };
        stdin
            .send(Bytes::from_static(b"ping\n"))
            .await
            .map_err(fail(C))?;
        drop(stdin); // EOF: cat exits.
        let chunks: Vec<_> = within(C, session.output.collect()).await?;
        let mut out = Vec::new();
        for c in chunks {
            let c = c.map_err(fail(C))?;
            ensure!(
                C,
                c.stream == StreamKind::Stdout,
                "cat wrote to {:?}",
                c.stream
            );
            out.extend_from_slice(&c.data);
        }
        ensure!(
            C,
            out == b"ping\n",
            "attach output {:?}",
            String::from_utf8_lossy(&out)
        );
        let code = within(C, wait.exited())
            .await?
            .map_err(fail(C))?
            .status_code;
        ensure!(C, code == 0, "cat exit code {code}");
        Ok(())
    }
    .await;
    ctx.cleanup(&id).await;
    result
}

async fn exec(ctx: &Ctx) -> Check {
    const C: &str = "exec";
    let id = ctx.create(C, "exec", busybox(&["sleep", "1000"])).await?;
    let result = async {
        let e = ctx.b.exec_create(&id, exec_config(&["true"])).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::Conflict),
            "exec in stopped container: {e:?}"
        );
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let exec_id = ctx
            .b
            .exec_create(&id, exec_config(&["sh", "-c", "echo hi; exit 5"]))
            .await
            .map_err(fail(C))?;
        let session = ctx
            .b
            .exec_start(&exec_id, ExecStartOptions::default())
            .await
            .map_err(fail(C))?;
        let chunks: Vec<_> = within(C, session.output.collect()).await?;
        let out: Vec<u8> = chunks
            .into_iter()
            .filter_map(|c| c.ok())
            .flat_map(|c| c.data.to_vec())
            .collect();
        ensure!(
            C,
            out == b"hi\n",
            "exec output {:?}",
            String::from_utf8_lossy(&out)
        );
        let mut code = None;
        for _ in 0..100 {
            let i = ctx.b.exec_inspect(&exec_id).await.map_err(fail(C))?;
            if i.running == Some(false) && i.exit_code.is_some() {
                code = i.exit_code;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ensure!(C, code == Some(5), "exec exit code {code:?}");
        let e = ctx.b.exec_inspect("no-such-exec").await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
            "inspect missing exec: {e:?}"
        );
        Ok(())
    }
    .await;
    ctx.cleanup(&id).await;
    result
}

fn exec_config(cmd: &[&str]) -> ExecConfig {
    ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

async fn auto_remove(ctx: &Ctx) -> Check {
    const C: &str = "auto-remove and wait removed";
    let mut body = busybox(&["sh", "-c", "exit 7"]);
    body.host_config = Some(HostConfig {
        auto_remove: Some(true),
        ..Default::default()
    });
    let id = ctx.create(C, "rm", body).await?;
    let wait = ctx
        .b
        .container_wait(&id, WaitCondition::Removed)
        .await
        .map_err(fail(C))?;
    ctx.b.container_start(&id).await.map_err(fail(C))?;
    let code = within(C, wait.exited())
        .await?
        .map_err(fail(C))?
        .status_code;
    ensure!(C, code == 7, "removed wait gave {code}");
    let e = ctx.b.container_inspect(&id).await.err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "auto-removed container still there: {e:?}"
    );
    Ok(())
}

async fn images(ctx: &Ctx) -> Check {
    const C: &str = "images";
    let list = ctx
        .b
        .image_list(ImageListOptions::default())
        .await
        .map_err(fail(C))?;
    ensure!(
        C,
        list.iter()
            .any(|i| i.repo_tags.iter().any(|t| t.starts_with("busybox"))),
        "busybox not listed"
    );
    let i = ctx.b.image_inspect("busybox").await.map_err(fail(C))?;
    ensure!(C, i.id.is_some(), "image inspect has no id");
    let e = ctx
        .b
        .image_inspect(&format!("{}-nope", ctx.prefix))
        .await
        .err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "inspect missing image: {e:?}"
    );
    let e = ctx
        .b
        .image_remove(&format!("{}-nope", ctx.prefix), Default::default())
        .await
        .err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "remove missing image: {e:?}"
    );
    Ok(())
}

async fn networks(ctx: &Ctx) -> Check {
    const C: &str = "networks";
    let name = ctx.name("net");
    let req = NetworkCreateRequest {
        name: name.clone(),
        ..Default::default()
    };
    let net = ctx.b.network_create(req.clone()).await.map_err(fail(C))?;
    ensure!(
        C,
        net.id.as_deref().is_some_and(|i| !i.is_empty()),
        "network create gave no id"
    );
    let cid = ctx.create(C, "netc", busybox(&["sleep", "1000"])).await;
    let result = async {
        let cid = cid?;
        let e = ctx.b.network_create(req).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::Conflict),
            "duplicate network: {e:?}"
        );
        let list = ctx
            .b
            .network_list(NetworkListOptions::default())
            .await
            .map_err(fail(C))?;
        ensure!(
            C,
            list.iter()
                .any(|n| n.name.as_deref() == Some(name.as_str())),
            "network not listed"
        );
        ctx.b
            .network_connect(&name, &cid, None)
            .await
            .map_err(fail(C))?;
        let n = ctx.b.network_inspect(&name).await.map_err(fail(C))?;
        ensure!(
            C,
            n.containers.unwrap_or_default().contains_key(&cid),
            "connected container not in network"
        );
        let i = ctx.b.container_inspect(&cid).await.map_err(fail(C))?;
        let nets = i
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        ensure!(
            C,
            nets.contains_key(&name),
            "container does not show network: {:?}",
            nets.keys()
        );
        let e = ctx.b.network_remove(&name).await.err();
        ensure!(
            C,
            e.as_ref().map(|e| e.kind) == Some(ErrorKind::Conflict),
            "remove network in use: {e:?}"
        );
        ctx.b
            .network_disconnect(&name, &cid, false)
            .await
            .map_err(fail(C))?;
        ctx.cleanup(&cid).await;
        Ok(())
    }
    .await;
    let removed = ctx.b.network_remove(&name).await;
    result?;
    removed.map_err(fail(C))?;
    let e = ctx.b.network_inspect(&name).await.err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "inspect removed network: {e:?}"
    );
    Ok(())
}

async fn volumes(ctx: &Ctx) -> Check {
    const C: &str = "volumes";
    let name = ctx.name("vol");
    let v = ctx
        .b
        .volume_create(VolumeCreateOptions {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .map_err(fail(C))?;
    ensure!(C, v.name == name, "volume created as {:?}", v.name);
    let list = ctx
        .b
        .volume_list(VolumeListOptions::default())
        .await
        .map_err(fail(C))?;
    ensure!(
        C,
        list.volumes
            .unwrap_or_default()
            .iter()
            .any(|v| v.name == name),
        "volume not listed"
    );
    let i = ctx.b.volume_inspect(&name).await.map_err(fail(C))?;
    ensure!(C, i.driver == "local", "volume driver {:?}", i.driver);
    ctx.b.volume_remove(&name, false).await.map_err(fail(C))?;
    let e = ctx.b.volume_inspect(&name).await.err();
    ensure!(
        C,
        e.as_ref().map(|e| e.kind) == Some(ErrorKind::NotFound),
        "inspect removed volume: {e:?}"
    );
    Ok(())
}

async fn events(ctx: &Ctx) -> Check {
    const C: &str = "events";
    let name = ctx.name("ev");
    let mut filters = crate::Filters::new();
    filters.insert("container".into(), vec![name.clone()]);
    filters.insert("type".into(), vec!["container".into()]);
    let mut stream = ctx
        .b
        .events(EventsOptions {
            filters,
            ..Default::default()
        })
        .await
        .map_err(fail(C))?;
    let id = ctx.create(C, "ev", busybox(&["true"])).await?;
    let result = async {
        ctx.b.container_start(&id).await.map_err(fail(C))?;
        let mut seen = Vec::new();
        while !(seen.iter().any(|a| a == "create") && seen.iter().any(|a| a == "start")) {
            let next = within(C, stream.next()).await?;
            match next {
                Some(Ok(e)) => {
                    let actor = e.actor.and_then(|a| a.id).unwrap_or_default();
                    ensure!(C, actor == id, "event for another container {actor}");
                    seen.push(e.action.unwrap_or_default());
                }
                other => {
                    return Err(SuiteFailure {
                        check: C,
                        detail: format!("stream ended: {other:?}"),
                    })
                }
            }
        }
        Ok(())
    }
    .await;
    ctx.cleanup(&id).await;
    result
}
