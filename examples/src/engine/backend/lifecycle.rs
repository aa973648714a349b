//! Container runs through the shims: starting a shim and following it over
//! libchan, exits, restart policies, and attaching again to the shims that
//! kept running while berthd was down.
//!
//! The daemon, not the shim, applies restart policies: it knows whether
//! the user stopped the container, the restart count and the networks to
//! join again, and a shim stays one process per run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use libswarm::util::now_nanos;
use libswarm::{Backend, ContainerRemoveOptions, Error, Result, StreamKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{io_err, LocalBackend};
use crate::engine::boot;
use crate::engine::monitor::{self, Exit, Monitored, Request};
use crate::engine::record::{split_lines_at, Live, Status, Stored};
use crate::engine::shim::{monitor_socket, ready_socket, ShimArgs, SHIM_ARG};

/// Docker's checks of `HostConfig.RestartPolicy` at create.
pub(super) fn check_restart_policy(body: &libswarm::ContainerCreateBody) -> Result<()> {
    use libswarm::models::RestartPolicyNameEnum as P;
    let Some(h) = body.host_config.as_ref() else {
        return Ok(());
    };
    let Some(p) = h.restart_policy.as_ref() else {
        return Ok(());
    };
    let name = p.name.unwrap_or(P::EMPTY);
    let max = p.maximum_retry_count.unwrap_or(0);
    if name != P::NO && name != P::EMPTY && h.auto_remove.unwrap_or(false) {
        return Err(Error::bad_request(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    if max < 0 {
        return Err(Error::bad_request(
            "invalid restart policy: maximum retry count cannot be negative",
        ));
    }
    if max > 0 && name != P::ON_FAILURE {
        return Err(Error::bad_request(format!(
            "invalid restart policy: maximum retry count can only be used with 'on-failure' (RestartPolicy {name})"
        )));
    }
    Ok(())
}

impl LocalBackend {
    /// Starts a created or exited container (also a restart by policy).
    pub(super) async fn run_container(&self, id: &str) -> Result<()> {
        let dir = {
            let mut map = self.lock();
            let r = map
                .get_mut(id)
                .ok_or_else(|| Error::not_found(format!("No such container: {id}")))?;
            if matches!(r.status, Status::Running | Status::Starting) {
                return Err(Error::not_modified("container already started"));
            }
            r.status = Status::Starting;
            r.restarting = false;
            r.dir.clone()
        };
        let started = match self.inner.network.get() {
            Some(n) => match n.unpark(id).await {
                Ok(()) => self.spawn_shim(id, &dir).await,
                Err(e) => Err(e),
            },
            None => self.spawn_shim(id, &dir).await,
        };
        if let Err(e) = &started {
            let auto_remove = match self.lock().get_mut(id) {
                Some(r) => {
                    if r.status == Status::Starting {
                        r.status = Status::Created;
                    }
                    r.error = e.message.clone();
                    r.exit_code = 127;
                    // Attached clients (docker run) must not hang.
                    let _ = r.live.send(Live::End);
                    r.save();
                    r.auto_remove()
                }
                None => false,
            };
            if auto_remove {
                let _ = self
                    .container_remove(id, ContainerRemoveOptions::default())
                    .await;
            }
        }
        started
    }

    async fn spawn_shim(&self, id: &str, dir: &Path) -> Result<()> {
        let cfg = &self.inner.config;
        let ready = ready_socket(&cfg.state_dir, id);
        let socket = monitor_socket(&cfg.state_dir, id);
        let _ = std::fs::remove_file(&ready);
        let _ = std::fs::remove_file(monitor::exit_file(dir));
        let listener =
            tokio::net::UnixListener::bind(&ready).map_err(io_err("binding the ready socket"))?;
        let (stdin_rx, tty, console_size) = match self.lock().get_mut(id) {
            Some(r) => (r.stdin_rx.take(), r.tty(), r.console_size()),
            None => (None, false, None),
        };
        let args = ShimArgs {
            state_root: cfg.state_dir.clone(),
            id: id.to_string(),
            bundle: dir.to_path_buf(),
            ready: ready.clone(),
            socket: socket.clone(),
            stdin: stdin_rx.is_some(),
            tty,
            console_size,
        };
        // The shim's stdio is not berthd's: it must outlive berthd.
        let mut child = tokio::process::Command::new(&cfg.shim_program)
            .arg(SHIM_ARG)
            .args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("starting the container shim"))?;
        let report = tokio::select! {
            conn = listener.accept() => {
                let mut line = String::new();
                if let Ok((mut s, _)) = conn {
                    let _ = s.read_to_string(&mut line).await;
                }
                line
            }
            _ = child.wait() => String::new(),
        };
        drop(listener);
        let _ = std::fs::remove_file(&ready);
        let report = report.trim();
        let Some(pid) = report.strip_prefix("ok ") else {
            let _ = child.kill().await;
            let msg = report.strip_prefix("err ").unwrap_or("the shim exited");
            return Err(Error::bad_request(format!(
                "failed to create task for container: OCI runtime create failed: {msg}"
            )));
        };
        let pid = pid.parse::<i64>().unwrap_or(0);
        // Reap the shim whenever it ends (while berthd runs).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        // A short run may be over (and its shim gone) before we connect:
        // its exit.json and log tell all then.
        let monitored = monitor::connect(&socket).await;
        if let Some(r) = self.lock().get_mut(id) {
            // Set before start returns: `docker run -t` resizes right after.
            r.monitor = monitored.as_ref().ok().map(|m| m.requests.clone());
            r.status = Status::Running;
            r.exit_code = 0;
            r.pid = pid;
            r.started = now_nanos();
            r.error.clear();
            r.save();
        }
        self.container_event(id, "start", &[]);
        self.inner.volumes.publish_mounts(id, "mount");
        match monitored {
            Ok(m) => self.follow(id.to_string(), m, stdin_rx),
            Err(e) => {
                tracing::debug!(%id, error = %e, "the run ended before berthd attached");
                let (this, id) = (self.clone(), id.to_string());
                tokio::spawn(async move {
                    let exit = this.lost_shim(&id).await;
                    this.on_exit(&id, exit).await;
                });
            }
        }
        Ok(())
    }

    /// Takes the shim's output into the record until the run ends, then
    /// handles the exit.
    fn follow(
        &self,
        id: String,
        m: Monitored,
        stdin_rx: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let Monitored {
                offset,
                mut output,
                mut exit,
                requests,
                conn,
            } = m;
            if let Some(r) = this.lock().get_mut(&id) {
                r.catch_up_log(offset);
                r.monitor = Some(requests.clone());
            }
            if let Some(mut rx) = stdin_rx {
                let (mut local, remote) = libchan::pipe();
                if requests.send(Request::Stdin { data: remote }).await.is_ok() {
                    // Closing the attach's sender closes the container's stdin.
                    tokio::spawn(async move {
                        while let Some(data) = rx.recv().await {
                            if local.write_all(&data).await.is_err() {
                                break;
                            }
                        }
                        let _ = local.shutdown().await;
                    });
                }
            }
            while let Ok(Some(c)) = output.recv().await {
                let stream = if c.stderr {
                    StreamKind::Stderr
                } else {
                    StreamKind::Stdout
                };
                let lines = split_lines_at(stream, &c.data, c.time);
                if let Some(r) = this.lock().get_mut(&id) {
                    r.push_output(lines, c.end);
                }
            }
            let ended = exit.recv().await.ok().flatten();
            drop((requests, conn));
            let ended = match ended {
                Some(e) => e,
                None => this.lost_shim(&id).await,
            };
            this.on_exit(&id, ended).await;
        });
    }

    /// The shim went away without telling the exit: take it from exit.json,
    /// or (the shim was killed) kill what is left of the container.
    async fn lost_shim(&self, id: &str) -> Exit {
        let Some(dir) = self.lock().get(id).map(|r| r.dir.clone()) else {
            return Exit {
                code: 255,
                finished: now_nanos(),
            };
        };
        for _ in 0..20 {
            if let Some(e) = monitor::read_exit(&dir) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(%id, "the container's monitor died; killing the container");
        let _ = std::fs::remove_file(monitor_socket(&self.inner.config.state_dir, id));
        if let Ok(c) = libcontainer::Container::load(&self.inner.config.state_dir, id) {
            let _ = tokio::task::spawn_blocking(move || c.delete(true)).await;
        }
        if let Some(r) = self.lock().get_mut(id) {
            r.error = "the container's monitor process died".into();
        }
        Exit {
            code: 255,
            finished: now_nanos(),
        }
    }

    /// A run ended: record it, then remove (`--rm`) or restart by policy.
    async fn on_exit(&self, id: &str, exit: Exit) {
        if let Some(n) = self.inner.network.get() {
            n.park(id).await;
        }
        let (auto_remove, delay) = {
            let mut map = self.lock();
            let Some(r) = map.get_mut(id) else { return };
            r.monitor = None;
            if let Ok(m) = std::fs::metadata(monitor::log_file(&r.dir)) {
                r.catch_up_log(m.len());
            }
            r.status = Status::Exited;
            r.exit_code = exit.code;
            r.pid = 0;
            r.finished = exit.finished;
            let delay = r.plan_restart(exit.code, exit.finished);
            r.restarting = delay.is_some();
            // On disk before anyone waiting learns of the exit.
            r.save();
            let _ = r.live.send(Live::End);
            r.life.send_modify(|l| {
                l.exits += 1;
                l.exit_code = exit.code;
            });
            (r.auto_remove(), delay)
        };
        self.container_event(id, "die", &[("exitCode", &exit.code.to_string())]);
        self.inner.volumes.publish_mounts(id, "unmount");
        if auto_remove {
            let opts = ContainerRemoveOptions {
                force: true,
                volumes: true,
            };
            if let Err(e) = self.container_remove(id, opts).await {
                tracing::warn!(%id, error = %e, "auto-removing container");
            }
        } else if let Some(delay) = delay {
            self.restart_after(id.to_string(), delay);
        }
    }

    fn restart_after(&self, id: String, delay: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let go = match this.lock().get_mut(&id) {
                Some(r) if r.restarting && r.status == Status::Exited => {
                    r.restart_count += 1;
                    true
                }
                _ => false,
            };
            if go {
                if let Err(e) = Box::pin(this.run_container(&id)).await {
                    tracing::warn!(%id, error = %e.message, "restarting container");
                }
            }
        });
    }

    /// Resizes the pty of a running `-t` container (through its shim).
    pub(super) async fn resize_tty(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let monitor = match self.lock().get(id) {
            Some(r) if r.status == Status::Running => r.monitor.clone(),
            Some(_) => {
                return Err(Error::conflict(format!("Container {id} is not running")));
            }
            None => return Err(Error::not_found(format!("No such container: {id}"))),
        };
        if let Some(m) = monitor {
            m.send(Request::Resize { height, width })
                .await
                .map_err(|e| Error::internal(format!("resizing the tty: {e}")))?;
        }
        Ok(())
    }

    /// Marks a container stopped by the user (no restart policy applies,
    /// a pending restart is cancelled).
    pub(super) fn mark_stopped(&self, id: &str) {
        if let Some(r) = self.lock().get_mut(id) {
            r.manually_stopped = true;
            r.restarting = false;
            r.save();
        }
    }

    /// Loads the containers of an earlier berthd from disk: attaches again
    /// to the shims still running, takes the exits of those that ended
    /// meanwhile, and starts the ones whose restart policy says so.
    pub async fn restore(&self) {
        let root = self.inner.config.root.join("containers");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        let mut to_start = Vec::new();
        let mut rebooted = Vec::new();
        for dir in entries.filter_map(|e| Some(e.ok()?.path())) {
            let stored = match Stored::load(&dir) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping a container directory");
                    continue;
                }
            };
            let id = stored.id.clone();
            let socket = monitor_socket(&self.inner.config.state_dir, &id);
            // A shim's socket without "running" on record: berthd died
            // between starting the shim and saving; attach all the same.
            let was_running = stored.running || socket.exists();
            let mut rec = stored.clone().into_record(dir.clone());
            // `docker logs` reads the file up to here; live output follows.
            rec.log_bytes = crate::engine::logs::complete_len(&monitor::log_file(&dir));
            self.ensure_rootfs(&rec).await;
            if stored.running && boot::rebooted_since(&stored.boot_id) {
                // A run the reboot ended: nothing of it to attach to.
                for e in boot::clean_stale_run(&self.inner.config.state_dir, &id) {
                    tracing::warn!(%id, error = %e, "cleaning up a run ended by a reboot");
                }
                let exit = monitor::read_exit(&dir).unwrap_or(Exit {
                    code: 255,
                    finished: now_nanos(),
                });
                rec.status = Status::Running;
                self.lock().insert(id.clone(), rec);
                rebooted.push((id, exit));
                continue;
            }
            if !was_running {
                if let Ok(m) = std::fs::metadata(monitor::log_file(&dir)) {
                    rec.catch_up_log(m.len());
                }
                if rec.status == Status::Exited && rec.starts_with_daemon() {
                    to_start.push(id.clone());
                }
                self.lock().insert(id, rec);
                continue;
            }
            rec.status = Status::Running;
            rec.pid = match stored.pid {
                0 => libcontainer::Container::load(&self.inner.config.state_dir, &id)
                    .map(|c| i64::from(c.pid()))
                    .unwrap_or(0),
                pid => pid,
            };
            self.lock().insert(id.clone(), rec);
            match monitor::connect(&socket).await {
                Ok(m) => {
                    tracing::info!(%id, "attached to the running container again");
                    // `-i`: the next attach gets the stdin (the shim kept it).
                    let stdin_rx = match self.lock().get_mut(&id) {
                        Some(r) if r.body.config.open_stdin.unwrap_or(false) => {
                            let (tx, rx) = tokio::sync::mpsc::channel(64);
                            r.stdin_tx = Some(tx);
                            Some(rx)
                        }
                        _ => None,
                    };
                    self.follow(id, m, stdin_rx);
                }
                Err(e) => {
                    tracing::info!(%id, error = %e, "the container ended while berthd was down");
                    let exit = self.lost_shim(&id).await;
                    self.on_exit(&id, exit).await;
                }
            }
        }
        // Recorded as any exit; the policy starts them with the daemon, as
        // dockerd, without counting a restart.
        for (id, exit) in rebooted {
            tracing::info!(%id, "the container was running when the host rebooted");
            let start = match self.lock().get_mut(&id) {
                Some(r) => {
                    let start = r.restart_delay(exit.code).is_some();
                    r.no_restart = true;
                    start
                }
                None => false,
            };
            self.on_exit(&id, exit).await;
            if let Some(r) = self.lock().get_mut(&id) {
                r.no_restart = false;
                if start {
                    to_start.push(id);
                }
            }
        }
        for id in to_start {
            if let Err(e) = self.run_container(&id).await {
                tracing::warn!(%id, error = %e.message, "starting container with the daemon");
            }
        }
    }

    /// Mounts a container's rootfs again when a reboot unmounted it.
    async fn ensure_rootfs(&self, rec: &crate::engine::record::Record) {
        let fs_dir = rec.dir.join("fs");
        if !fs_dir.exists() || boot::is_mount_point(&fs_dir.join("merged")) {
            return;
        }
        let (image_id, image_ref) = (rec.image_id.clone(), rec.image_ref.clone());
        let mounted = self
            .inner
            .images
            .run_blocking(move |s| {
                let lowers = s
                    .layer_dirs(&image_id)
                    .or_else(|_| s.layer_dirs(&image_ref))?;
                Ok(boot::ensure_rootfs(&lowers, &fs_dir))
            })
            .await;
        match mounted {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(id = %rec.id, error = %e, "mounting the rootfs again"),
            Err(e) => tracing::warn!(id = %rec.id, error = %e, "the image of the rootfs"),
        }
    }

    /// At berthd's exit: by default the containers keep running under
    /// their shims (berthd attaches again when it starts); with `stop`,
    /// each running container is stopped as `docker stop` would (without
    /// counting as stopped by the user, so restart policies still apply
    /// at the next start).
    pub async fn shutdown(&self, stop: bool) {
        if !stop {
            return;
        }
        let ids: Vec<(String, i64)> = self
            .lock()
            .values()
            .filter(|r| r.status == Status::Running)
            .map(|r| {
                let t = r.body.config.stop_timeout.unwrap_or(10);
                (r.id.clone(), t)
            })
            .collect();
        let stops = ids.into_iter().map(|(id, secs)| async move {
            if let Some(r) = self.lock().get_mut(&id) {
                r.restarting = false;
                r.no_restart = true;
            }
            let _ = self.signal(&id, libc::SIGTERM);
            let secs = Duration::from_secs(secs.max(0) as u64);
            if !self.wait_exit(&id, Some(secs)).await {
                let _ = self.signal(&id, libc::SIGKILL);
                self.wait_exit(&id, Some(Duration::from_secs(5))).await;
            }
        });
        futures::future::join_all(stops).await;
    }
}
