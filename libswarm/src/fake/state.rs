//! The fake backend's data: containers, execs, images, networks, volumes,
//! events, and the Docker-shaped views of them.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, watch};

use super::images::{normalize_reference, FakeImage};
use crate::models::{
    ContainerConfig, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    ContainerTopResponse, EndpointSettings, EventActor, EventMessage, EventMessageScopeEnum,
    EventMessageTypeEnum, ExecConfig, ExecInspectResponse, ImageDeleteResponseItem, ImageInspect,
    ImageInspectRootFs, ImageSummary, Ipam, IpamConfig, MountPoint, Network, NetworkContainer,
    NetworkCreateRequest, NetworkSettings, Port, PortTypeEnum, ProcessConfig, SystemInfo,
    SystemVersion, SystemVersionComponents, SystemVersionPlatform, Volume, VolumeCreateOptions,
    VolumeScopeEnum,
};
use crate::types::{
    filter_matches, labels_match, ContainerCreateBody, ContainerListOptions, ContainerStats,
    CpuStats, CpuUsage, ImageListOptions, MemoryStats, NetworkListOptions, OutputChunk, PidsStats,
    StreamKind, VolumeListOptions,
};
use crate::util::{now_nanos, random_id, rfc3339, short_id, ZERO_TIME};
use crate::{Error, Result};

/// Log entries kept per container.
const LOG_LIMIT: usize = 10_000;

use crate::{API_VERSION, MIN_API_VERSION};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    fn as_enum(self) -> ContainerStateStatusEnum {
        match self {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Running => ContainerStateStatusEnum::RUNNING,
            Status::Exited => ContainerStateStatusEnum::EXITED,
        }
    }
}

/// What waits watch: how many runs have ended, the last exit code, removal.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Lifecycle {
    pub(crate) exits: u64,
    pub(crate) exit_code: i64,
    pub(crate) removed: bool,
}

/// Live output, ended by `Exit` when the run ends.
#[derive(Debug, Clone)]
pub(crate) enum Live {
    Chunk(OutputChunk),
    Exit,
}

#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub(crate) stream: StreamKind,
    pub(crate) data: Bytes,
    pub(crate) time: i64,
}

impl LogEntry {
    pub(crate) fn chunk(&self, timestamps: bool) -> OutputChunk {
        let data = if timestamps {
            let mut v = rfc3339(self.time).into_bytes();
            v.push(b' ');
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

pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) seq: u64,
    pub(crate) created: i64,
    pub(crate) body: ContainerCreateBody,
    pub(crate) image_ref: String,
    pub(crate) image_id: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) status: Status,
    pub(crate) exit_code: i64,
    pub(crate) error: String,
    pub(crate) started: i64,
    pub(crate) finished: i64,
    pub(crate) pid: i64,
    pub(crate) generation: u64,
    pub(crate) logs: VecDeque<LogEntry>,
    pub(crate) live: broadcast::Sender<Live>,
    pub(crate) stdin_tx: Option<mpsc::Sender<Bytes>>,
    pub(crate) stdin_rx: Option<mpsc::Receiver<Bytes>>,
    pub(crate) signals: Option<mpsc::UnboundedSender<i32>>,
    pub(crate) exec_signals: Vec<mpsc::UnboundedSender<i32>>,
    pub(crate) lifecycle: watch::Sender<Lifecycle>,
    /// network id → endpoint.
    pub(crate) networks: BTreeMap<String, EndpointSettings>,
    pub(crate) exec_ids: Vec<String>,
    pub(crate) volumes: Vec<String>,
}

impl Container {
    pub(crate) fn tty(&self) -> bool {
        self.body.config.tty.unwrap_or(false)
    }
    pub(crate) fn open_stdin(&self) -> bool {
        self.body.config.open_stdin.unwrap_or(false)
    }
    pub(crate) fn stdin_once(&self) -> bool {
        self.body.config.stdin_once.unwrap_or(false)
    }
    pub(crate) fn auto_remove(&self) -> bool {
        self.body
            .host_config
            .as_ref()
            .and_then(|h| h.auto_remove)
            .unwrap_or(false)
    }
    pub(crate) fn push_log(&mut self, entry: LogEntry) {
        self.logs.push_back(entry);
        if self.logs.len() > LOG_LIMIT {
            self.logs.pop_front();
        }
    }
    fn network_mode(&self) -> String {
        self.body
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .filter(|m| !m.is_empty() && m != "default")
            .unwrap_or_else(|| "bridge".to_string())
    }
}

pub(crate) struct Exec {
    pub(crate) id: String,
    pub(crate) container_id: String,
    pub(crate) config: ExecConfig,
    pub(crate) env: Vec<String>,
    pub(crate) running: bool,
    pub(crate) started: bool,
    pub(crate) exit_code: Option<i64>,
    pub(crate) pid: i64,
}

impl Exec {
    pub(crate) fn inspect(&self) -> ExecInspectResponse {
        let cmd = self.config.cmd.clone().unwrap_or_default();
        ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(String::new()),
            id: Some(self.id.clone()),
            running: Some(self.running),
            exit_code: self.exit_code,
            process_config: Some(ProcessConfig {
                privileged: Some(false),
                user: Some(String::new()),
                tty: Some(self.config.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(self.config.attach_stdin.unwrap_or(false)),
            open_stderr: Some(self.config.attach_stderr.unwrap_or(false)),
            open_stdout: Some(self.config.attach_stdout.unwrap_or(false)),
            container_id: Some(self.container_id.clone()),
            pid: Some(self.pid),
        }
    }
}

pub(crate) struct FakeNetwork {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) driver: String,
    pub(crate) created: i64,
    pub(crate) internal: bool,
    pub(crate) attachable: bool,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) options: HashMap<String, String>,
    pub(crate) subnet: Option<(u8, u8)>,
    pub(crate) next_host: u32,
    pub(crate) predefined: bool,
    pub(crate) containers: BTreeMap<String, NetworkContainer>,
}

pub(crate) struct State {
    pub(crate) containers: HashMap<String, Container>,
    pub(crate) names: HashMap<String, String>,
    pub(crate) images: Vec<FakeImage>,
    pub(crate) networks: BTreeMap<String, FakeNetwork>,
    pub(crate) volumes: BTreeMap<String, Volume>,
    pub(crate) execs: HashMap<String, Exec>,
    pub(crate) events: VecDeque<EventMessage>,
    seq: u64,
    next_subnet: u8,
}

fn busybox() -> FakeImage {
    let config = ContainerConfig {
        cmd: Some(vec!["sh".into()]),
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        ..Default::default()
    };
    FakeImage {
        id: super::images::digest(b"berth fake busybox"),
        repo_tags: vec!["busybox:latest".into()],
        created_nanos: 1_700_000_000_000_000_000,
        config,
        size: 4_261_550,
        comment: String::new(),
    }
}

impl State {
    pub(crate) fn new() -> State {
        let mut st = State {
            containers: HashMap::new(),
            names: HashMap::new(),
            images: vec![busybox()],
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            execs: HashMap::new(),
            events: VecDeque::new(),
            seq: 0,
            next_subnet: 18,
        };
        for (name, driver, subnet) in [
            ("bridge", "bridge", Some((17, 0))),
            ("host", "host", None),
            ("none", "null", None),
        ] {
            let id = random_id();
            st.networks.insert(
                id.clone(),
                FakeNetwork {
                    id,
                    name: name.into(),
                    driver: driver.into(),
                    created: now_nanos(),
                    internal: false,
                    attachable: false,
                    labels: HashMap::new(),
                    options: HashMap::new(),
                    subnet,
                    next_host: 2,
                    predefined: true,
                    containers: BTreeMap::new(),
                },
            );
        }
        st
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    // ---- containers ----

    pub(crate) fn resolve_container(&self, key: &str) -> Result<String> {
        let key = key.trim_start_matches('/');
        if self.containers.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(id) = self.names.get(key) {
            return Ok(id.clone());
        }
        if !key.is_empty() {
            let mut hits = self.containers.keys().filter(|id| id.starts_with(key));
            if let Some(first) = hits.next() {
                if hits.next().is_some() {
                    return Err(Error::bad_request(format!(
                        "multiple IDs found with provided prefix: {key}"
                    )));
                }
                return Ok(first.clone());
            }
        }
        Err(Error::not_found(format!("No such container: {key}")))
    }

    pub(crate) fn container(&self, id: &str) -> Result<&Container> {
        self.containers
            .get(id)
            .ok_or_else(|| Error::not_found(format!("No such container: {id}")))
    }

    pub(crate) fn container_mut(&mut self, id: &str) -> Result<&mut Container> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("No such container: {id}")))
    }

    pub(crate) fn new_container(
        &mut self,
        id: String,
        name: String,
        image_ref: String,
        image: &FakeImage,
        mut body: ContainerCreateBody,
    ) -> Result<Container> {
        let seq = self.next_seq();
        // Image defaults under the request, like the daemon merges them.
        let entrypoint = body
            .config
            .entrypoint
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| image.config.entrypoint.clone())
            .unwrap_or_default();
        let cmd = match &body.config.cmd {
            Some(c) if !c.is_empty() => c.clone(),
            _ if body
                .config
                .entrypoint
                .as_ref()
                .is_some_and(|e| !e.is_empty()) =>
            {
                Vec::new()
            }
            _ => image.config.cmd.clone().unwrap_or_default(),
        };
        let mut args = entrypoint;
        args.extend(cmd.iter().cloned());
        if args.is_empty() {
            return Err(Error::bad_request("no command specified"));
        }
        let mut env = image.config.env.clone().unwrap_or_default();
        env.extend(body.config.env.clone().unwrap_or_default());
        env.push(format!("HOSTNAME={}", short_id(&id)));
        body.config.cmd = Some(cmd);
        if body.config.hostname.as_deref().unwrap_or("").is_empty() {
            body.config.hostname = Some(short_id(&id).to_string());
        }
        let (tx, rx) = if body.config.open_stdin.unwrap_or(false) {
            let (tx, rx) = mpsc::channel(64);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (live, _) = broadcast::channel(1024);
        let (lifecycle, _) = watch::channel(Lifecycle::default());
        let mut c = Container {
            id: id.clone(),
            name,
            seq,
            created: now_nanos(),
            image_ref,
            image_id: image.id.clone(),
            args,
            env,
            status: Status::Created,
            exit_code: 0,
            error: String::new(),
            started: 0,
            finished: 0,
            pid: 0,
            generation: 0,
            logs: VecDeque::new(),
            live,
            stdin_tx: tx,
            stdin_rx: rx,
            signals: None,
            exec_signals: Vec::new(),
            lifecycle,
            networks: BTreeMap::new(),
            exec_ids: Vec::new(),
            volumes: Vec::new(),
            body,
        };
        // Named volumes in binds and mounts are created on demand.
        let mut volume_names = Vec::new();
        if let Some(hc) = &c.body.host_config {
            for bind in hc.binds.iter().flatten() {
                if let Some((src, _)) = bind.split_once(':') {
                    if !src.starts_with('/') {
                        volume_names.push(src.to_string());
                    }
                }
            }
            for m in hc.mounts.iter().flatten() {
                if m.typ == Some(crate::models::MountTypeEnum::VOLUME) {
                    if let Some(src) = &m.source {
                        volume_names.push(src.clone());
                    }
                }
            }
        }
        for v in &volume_names {
            self.create_volume(VolumeCreateOptions {
                name: Some(v.clone()),
                ..Default::default()
            })?;
        }
        c.volumes = volume_names;
        // Networks: the network mode, then any extra endpoints.
        let mode = c.network_mode();
        let mut wanted: Vec<(String, EndpointSettings)> = Vec::new();
        if !mode.starts_with("container:") {
            let endpoints = c
                .body
                .networking_config
                .as_ref()
                .and_then(|n| n.endpoints_config.clone())
                .unwrap_or_default();
            // "default" is the CLI's name for the network mode's network.
            let mode_ep = endpoints
                .get(&mode)
                .or_else(|| endpoints.get("default"))
                .cloned()
                .unwrap_or_default();
            wanted.push((mode.clone(), mode_ep));
            for (net, ep) in endpoints {
                if net != mode && net != "default" {
                    wanted.push((net, ep));
                }
            }
        }
        let mut resolved = Vec::new();
        for (net, ep) in wanted {
            let net_id = self
                .resolve_network(&net)
                .map_err(|_| Error::not_found(format!("network {net} not found")))?;
            resolved.push((net_id, ep));
        }
        for (net_id, ep) in resolved {
            let ep = self.attach_endpoint(&net_id, &c.id, &c.name, ep);
            c.networks.insert(net_id, ep);
        }
        Ok(c)
    }

    pub(crate) fn insert_container(&mut self, c: Container) {
        self.names.insert(c.name.clone(), c.id.clone());
        self.containers.insert(c.id.clone(), c);
    }

    fn status_text(c: &Container) -> String {
        let ago = |t: i64| human_duration(now_nanos().saturating_sub(t));
        match c.status {
            Status::Created => "Created".into(),
            Status::Running => format!("Up {}", ago(c.started)),
            Status::Exited if c.started == 0 => "Created".into(),
            Status::Exited => format!("Exited ({}) {} ago", c.exit_code, ago(c.finished)),
        }
    }

    fn ports(c: &Container) -> Vec<Port> {
        let mut ports = Vec::new();
        let bindings = c
            .body
            .host_config
            .as_ref()
            .and_then(|h| h.port_bindings.as_ref());
        for (spec, binds) in bindings.into_iter().flatten() {
            let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
            let Ok(private_port) = port.parse::<u16>() else {
                continue;
            };
            let typ = if proto == "udp" {
                PortTypeEnum::UDP
            } else {
                PortTypeEnum::TCP
            };
            for b in binds.iter().flatten() {
                ports.push(Port {
                    ip: Some(
                        b.host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                    ),
                    private_port,
                    public_port: b.host_port.as_deref().and_then(|p| p.parse().ok()),
                    typ: Some(typ),
                });
            }
        }
        ports
    }

    fn endpoints_by_name(&self, c: &Container) -> HashMap<String, EndpointSettings> {
        c.networks
            .iter()
            .filter_map(|(id, ep)| self.networks.get(id).map(|n| (n.name.clone(), ep.clone())))
            .collect()
    }

    pub(crate) fn list_containers(&self, o: &ContainerListOptions) -> Vec<ContainerSummary> {
        let mut list: Vec<&Container> = self
            .containers
            .values()
            .filter(|c| {
                o.all
                    || c.status == Status::Running
                    || !o.filters.is_empty() && o.filters.contains_key("status")
            })
            .filter(|c| filter_matches(&o.filters, "id", |w| c.id.starts_with(w)))
            .filter(|c| {
                filter_matches(&o.filters, "name", |w| {
                    c.name.contains(w.trim_start_matches('/'))
                })
            })
            .filter(|c| filter_matches(&o.filters, "status", |w| c.status.as_enum().as_ref() == w))
            .filter(|c| {
                filter_matches(&o.filters, "ancestor", |w| {
                    normalize_reference(w) == normalize_reference(&c.image_ref)
                        || c.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(w.trim_start_matches("sha256:"))
                })
            })
            .filter(|c| labels_match(&o.filters, c.body.config.labels.as_ref()))
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.seq));
        if let Some(limit) = o.limit.filter(|l| *l > 0) {
            list.truncate(limit);
        }
        list.into_iter()
            .map(|c| ContainerSummary {
                id: Some(c.id.clone()),
                names: Some(vec![format!("/{}", c.name)]),
                image: Some(c.image_ref.clone()),
                image_id: Some(c.image_id.clone()),
                command: Some(c.args.join(" ")),
                created: Some(c.created / 1_000_000_000),
                ports: Some(if c.status == Status::Running {
                    Self::ports(c)
                } else {
                    Vec::new()
                }),
                size_rw: None,
                size_root_fs: None,
                labels: Some(c.body.config.labels.clone().unwrap_or_default()),
                state: Some(c.status.as_enum().as_ref().to_string()),
                status: Some(Self::status_text(c)),
                host_config: Some(ContainerSummaryHostConfig {
                    network_mode: Some(c.network_mode()),
                }),
                network_settings: Some(ContainerSummaryNetworkSettings {
                    networks: Some(self.endpoints_by_name(c)),
                }),
                mounts: Some(Vec::new()),
            })
            .collect()
    }

    pub(crate) fn inspect_container(&self, id: &str) -> ContainerInspectResponse {
        let Some(c) = self.containers.get(id) else {
            return ContainerInspectResponse::default();
        };
        let time = |t: i64| {
            if t == 0 {
                ZERO_TIME.to_string()
            } else {
                rfc3339(t)
            }
        };
        let mut config = c.body.config.clone();
        config.env = Some(c.env.clone());
        let mut host_config = c.body.host_config.clone().unwrap_or_default();
        host_config.network_mode = Some(c.network_mode());
        let mounts: Vec<MountPoint> = c
            .volumes
            .iter()
            .filter_map(|v| self.volumes.get(v))
            .map(|v| MountPoint {
                typ: Some(crate::models::MountPointTypeEnum::VOLUME),
                name: Some(v.name.clone()),
                source: Some(v.mountpoint.clone()),
                driver: Some(v.driver.clone()),
                rw: Some(true),
                ..Default::default()
            })
            .collect();
        let networks = self.endpoints_by_name(c);
        let primary = networks.get(&c.network_mode());
        ContainerInspectResponse {
            id: Some(c.id.clone()),
            created: Some(rfc3339(c.created)),
            path: c.args.first().cloned(),
            args: Some(c.args.iter().skip(1).cloned().collect()),
            state: Some(ContainerState {
                status: Some(c.status.as_enum()),
                running: Some(c.status == Status::Running),
                paused: Some(false),
                restarting: Some(false),
                oom_killed: Some(false),
                dead: Some(false),
                pid: Some(c.pid),
                exit_code: Some(c.exit_code),
                error: Some(c.error.clone()),
                started_at: Some(time(c.started)),
                finished_at: Some(time(c.finished)),
                health: None,
            }),
            image: Some(c.image_id.clone()),
            name: Some(format!("/{}", c.name)),
            restart_count: Some(0),
            driver: Some("fake".into()),
            platform: Some("linux".into()),
            exec_ids: if c.exec_ids.is_empty() {
                None
            } else {
                Some(c.exec_ids.clone())
            },
            host_config: Some(host_config),
            mounts: Some(mounts),
            config: Some(config),
            network_settings: Some(NetworkSettings {
                ip_address: primary.and_then(|e| e.ip_address.clone()),
                gateway: primary.and_then(|e| e.gateway.clone()),
                ip_prefix_len: primary.and_then(|e| e.ip_prefix_len),
                networks: Some(networks),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn stats(&self, id: &str) -> Result<ContainerStats> {
        let c = self.container(id)?;
        let running = c.status == Status::Running;
        let cpu = if running {
            (now_nanos() - c.started).max(0) as u64 / 100
        } else {
            0
        };
        Ok(ContainerStats {
            id: c.id.clone(),
            name: format!("/{}", c.name),
            read: rfc3339(now_nanos()),
            cpu_stats: CpuStats {
                cpu_usage: CpuUsage { total_usage: cpu },
                system_cpu_usage: now_nanos() as u64,
                online_cpus: 1,
            },
            precpu_stats: CpuStats::default(),
            memory_stats: MemoryStats {
                usage: if running { 1 << 20 } else { 0 },
                limit: c
                    .body
                    .host_config
                    .as_ref()
                    .and_then(|h| h.memory)
                    .filter(|m| *m > 0)
                    .unwrap_or(1 << 30) as u64,
            },
            pids_stats: PidsStats {
                current: if running {
                    1 + c.exec_signals.len() as u64
                } else {
                    0
                },
            },
            ..Default::default()
        })
    }

    pub(crate) fn top(&self, id: &str) -> Result<ContainerTopResponse> {
        let c = self.container(id)?;
        if c.status != Status::Running {
            return Err(Error::conflict(format!("container {id} is not running")));
        }
        let mut processes = vec![vec![
            c.pid.to_string(),
            "root".into(),
            "00:00:00".into(),
            c.args.join(" "),
        ]];
        for e in c.exec_ids.iter().filter_map(|e| self.execs.get(e)) {
            if e.running {
                processes.push(vec![
                    e.pid.to_string(),
                    "root".into(),
                    "00:00:00".into(),
                    e.config.cmd.clone().unwrap_or_default().join(" "),
                ]);
            }
        }
        Ok(ContainerTopResponse {
            titles: Some(vec![
                "PID".into(),
                "USER".into(),
                "TIME".into(),
                "CMD".into(),
            ]),
            processes: Some(processes),
        })
    }

    pub(crate) fn info(&self, name: &str) -> SystemInfo {
        let running = self
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
            .count() as i64;
        let total = self.containers.len() as i64;
        SystemInfo {
            id: Some(format!("berth-{name}")),
            containers: Some(total),
            containers_running: Some(running),
            containers_paused: Some(0),
            containers_stopped: Some(total - running),
            images: Some(self.images.len() as i64),
            driver: Some("fake".into()),
            docker_root_dir: Some("/var/lib/berth-fake".into()),
            logging_driver: Some("memory".into()),
            kernel_version: Some(std::env::consts::OS.into()),
            operating_system: Some("berth fake backend".into()),
            os_type: Some("linux".into()),
            architecture: Some(std::env::consts::ARCH.into()),
            ncpu: Some(
                std::thread::available_parallelism()
                    .map(|n| n.get() as i64)
                    .unwrap_or(1),
            ),
            mem_total: Some(1 << 30),
            name: Some(name.into()),
            server_version: Some(env!("CARGO_PKG_VERSION").into()),
            system_time: Some(rfc3339(now_nanos())),
            labels: Some(Vec::new()),
            warnings: Some(Vec::new()),
            ..Default::default()
        }
    }

    // ---- images ----

    pub(crate) fn find_image(&self, reference: &str) -> Option<&FakeImage> {
        let norm = normalize_reference(reference);
        if let Some(i) = self.images.iter().find(|i| i.repo_tags.contains(&norm)) {
            return Some(i);
        }
        let hex = reference.trim_start_matches("sha256:");
        if hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut hits = self
                .images
                .iter()
                .filter(|i| i.id.trim_start_matches("sha256:").starts_with(hex));
            let first = hits.next()?;
            return hits.next().is_none().then_some(first);
        }
        None
    }

    pub(crate) fn add_image(&mut self, image: FakeImage) {
        // Tags move to the newest image that claims them.
        for other in &mut self.images {
            other.repo_tags.retain(|t| !image.repo_tags.contains(t));
        }
        if let Some(existing) = self.images.iter_mut().find(|i| i.id == image.id) {
            existing.repo_tags.extend(image.repo_tags);
        } else {
            self.images.push(image);
        }
    }

    pub(crate) fn list_images(&self, o: &ImageListOptions) -> Vec<ImageSummary> {
        self.images
            .iter()
            .filter(|i| {
                filter_matches(&o.filters, "reference", |w| {
                    let w = normalize_reference(w);
                    i.repo_tags.iter().any(|t| glob_eq(&w, t))
                })
            })
            .filter(|i| {
                filter_matches(&o.filters, "dangling", |w| {
                    (w == "true") == i.repo_tags.is_empty()
                })
            })
            .filter(|i| labels_match(&o.filters, i.config.labels.as_ref()))
            .map(|i| ImageSummary {
                id: i.id.clone(),
                parent_id: String::new(),
                repo_tags: i.repo_tags.clone(),
                repo_digests: Vec::new(),
                created: i.created_nanos / 1_000_000_000,
                size: i.size,
                shared_size: -1,
                virtual_size: Some(i.size),
                labels: i.config.labels.clone().unwrap_or_default(),
                containers: self
                    .containers
                    .values()
                    .filter(|c| c.image_id == i.id)
                    .count() as i64,
            })
            .collect()
    }

    pub(crate) fn remove_image(
        &mut self,
        name: &str,
        force: bool,
    ) -> Result<(Vec<ImageDeleteResponseItem>, Option<String>)> {
        let image = self
            .find_image(name)
            .ok_or_else(|| Error::not_found(format!("No such image: {name}")))?
            .clone();
        let norm = normalize_reference(name);
        let by_tag = image.repo_tags.contains(&norm);
        let mut items = Vec::new();
        if by_tag && image.repo_tags.len() > 1 && !force {
            if let Some(i) = self.images.iter_mut().find(|i| i.id == image.id) {
                i.repo_tags.retain(|t| *t != norm);
            }
            items.push(ImageDeleteResponseItem {
                untagged: Some(norm),
                deleted: None,
            });
            return Ok((items, None));
        }
        if let Some(c) = self.containers.values().find(|c| c.image_id == image.id) {
            if !force {
                return Err(Error::conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    short_id(&c.id),
                    short_id(&image.id)
                )));
            }
        }
        for t in &image.repo_tags {
            items.push(ImageDeleteResponseItem {
                untagged: Some(t.clone()),
                deleted: None,
            });
        }
        items.push(ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(image.id.clone()),
        });
        self.images.retain(|i| i.id != image.id);
        Ok((items, Some(image.id)))
    }

    // ---- networks ----

    pub(crate) fn resolve_network(&self, key: &str) -> Result<String> {
        if self.networks.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(n) = self.networks.values().find(|n| n.name == key) {
            return Ok(n.id.clone());
        }
        if !key.is_empty() {
            let mut hits = self.networks.keys().filter(|id| id.starts_with(key));
            if let Some(first) = hits.next() {
                if hits.next().is_none() {
                    return Ok(first.clone());
                }
                return Err(Error::bad_request(format!(
                    "network {key} is ambiguous ({} matches found based on ID prefix)",
                    2 + hits.count()
                )));
            }
        }
        Err(Error::not_found(format!("network {key} not found")))
    }

    pub(crate) fn create_network(&mut self, r: NetworkCreateRequest) -> Result<(String, String)> {
        if r.name.is_empty() {
            return Err(Error::bad_request("network name: must not be empty"));
        }
        if self.networks.values().any(|n| n.name == r.name) {
            return Err(Error::conflict(format!(
                "network with name {} already exists",
                r.name
            )));
        }
        let driver = r
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "bridge".into());
        if !matches!(driver.as_str(), "bridge" | "macvlan" | "ipvlan" | "overlay") {
            return Err(Error::not_found(format!("plugin \"{driver}\" not found")));
        }
        if self.next_subnet == 255 {
            return Err(Error::unavailable("fake IPAM: address pools exhausted"));
        }
        let subnet = (self.next_subnet, 0);
        self.next_subnet += 1;
        let id = random_id();
        self.networks.insert(
            id.clone(),
            FakeNetwork {
                id: id.clone(),
                name: r.name.clone(),
                driver,
                created: now_nanos(),
                internal: r.internal.unwrap_or(false),
                attachable: r.attachable.unwrap_or(false),
                labels: r.labels.unwrap_or_default(),
                options: r.options.unwrap_or_default(),
                subnet: Some(subnet),
                next_host: 2,
                predefined: false,
                containers: BTreeMap::new(),
            },
        );
        Ok((id, r.name))
    }

    pub(crate) fn inspect_network(&self, id: &str) -> Network {
        let Some(n) = self.networks.get(id) else {
            return Network::default();
        };
        let ipam_config = n.subnet.map(|(a, b)| IpamConfig {
            subnet: Some(format!("172.{a}.{b}.0/16")),
            gateway: Some(format!("172.{a}.{b}.1")),
            ..Default::default()
        });
        Network {
            name: Some(n.name.clone()),
            id: Some(n.id.clone()),
            created: Some(rfc3339(n.created)),
            scope: Some("local".into()),
            driver: Some(n.driver.clone()),
            enable_ipv6: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(ipam_config.into_iter().collect()),
                options: None,
            }),
            internal: Some(n.internal),
            attachable: Some(n.attachable),
            ingress: Some(false),
            containers: Some(n.containers.clone().into_iter().collect()),
            options: Some(n.options.clone()),
            labels: Some(n.labels.clone()),
        }
    }

    pub(crate) fn list_networks(&self, o: &NetworkListOptions) -> Vec<Network> {
        self.networks
            .values()
            .filter(|n| filter_matches(&o.filters, "name", |w| n.name.contains(w)))
            .filter(|n| filter_matches(&o.filters, "id", |w| n.id.starts_with(w)))
            .filter(|n| filter_matches(&o.filters, "driver", |w| n.driver == w))
            .filter(|n| labels_match(&o.filters, Some(&n.labels)))
            .map(|n| self.inspect_network(&n.id))
            .collect()
    }

    pub(crate) fn remove_network(&mut self, key: &str) -> Result<(String, String)> {
        let id = self.resolve_network(key)?;
        let Some(n) = self.networks.get(&id) else {
            return Err(Error::not_found(format!("network {key} not found")));
        };
        if n.predefined {
            return Err(Error::bad_request(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !n.containers.is_empty() {
            return Err(Error::conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        let name = n.name.clone();
        self.networks.remove(&id);
        Ok((id, name))
    }

    fn attach_endpoint(
        &mut self,
        net_id: &str,
        cid: &str,
        cname: &str,
        mut ep: EndpointSettings,
    ) -> EndpointSettings {
        let Some(n) = self.networks.get_mut(net_id) else {
            return ep;
        };
        ep.network_id = Some(n.id.clone());
        ep.endpoint_id = Some(random_id());
        if let Some((a, b)) = n.subnet {
            let host = n.next_host;
            n.next_host += 1;
            let ip = format!("172.{a}.{}.{}", b as u32 + host / 256, host % 256);
            ep.ip_address = Some(ip);
            ep.ip_prefix_len = Some(16);
            ep.gateway = Some(format!("172.{a}.{b}.1"));
            ep.mac_address = Some(format!(
                "02:42:ac:{a:02x}:{:02x}:{:02x}",
                host / 256,
                host % 256
            ));
        }
        n.containers.insert(
            cid.to_string(),
            NetworkContainer {
                name: Some(cname.to_string()),
                endpoint_id: ep.endpoint_id.clone(),
                mac_address: ep.mac_address.clone(),
                ipv4_address: ep.ip_address.as_ref().map(|ip| format!("{ip}/16")),
                ipv6_address: Some(String::new()),
            },
        );
        ep
    }

    pub(crate) fn connect(&mut self, net_id: &str, cid: &str, ep: EndpointSettings) -> Result<()> {
        let (name, already) = {
            let c = self.container(cid)?;
            (c.name.clone(), c.networks.contains_key(net_id))
        };
        if already {
            return Err(Error::conflict(format!(
                "endpoint with name {name} already exists in network {net_id}"
            )));
        }
        let ep = self.attach_endpoint(net_id, cid, &name, ep);
        self.container_mut(cid)?
            .networks
            .insert(net_id.to_string(), ep);
        Ok(())
    }

    pub(crate) fn disconnect(&mut self, net_id: &str, cid: &str) -> Result<()> {
        let c = self.container_mut(cid)?;
        if c.networks.remove(net_id).is_none() {
            return Err(Error::conflict(format!(
                "container {cid} is not connected to network {net_id}"
            )));
        }
        if let Some(n) = self.networks.get_mut(net_id) {
            n.containers.remove(cid);
        }
        Ok(())
    }

    // ---- volumes ----

    pub(crate) fn create_volume(&mut self, o: VolumeCreateOptions) -> Result<(Volume, bool)> {
        let name = o
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(random_id);
        if name.len() < 2 || !crate::util::valid_name(&name) {
            return Err(Error::bad_request(format!(
                "volume name {name:?} includes invalid characters, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if let Some(v) = self.volumes.get(&name) {
            return Ok((v.clone(), false));
        }
        let driver = o
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "local".into());
        if driver != "local" {
            return Err(Error::not_found(format!("plugin \"{driver}\" not found")));
        }
        let v = Volume {
            name: name.clone(),
            driver,
            mountpoint: format!("/var/lib/berth-fake/volumes/{name}/_data"),
            created_at: Some(rfc3339(now_nanos())),
            status: None,
            labels: o.labels.unwrap_or_default(),
            scope: Some(VolumeScopeEnum::LOCAL),
            cluster_volume: None,
            options: o.driver_opts.unwrap_or_default(),
            usage_data: None,
        };
        self.volumes.insert(name, v.clone());
        Ok((v, true))
    }

    fn volume_users(&self, name: &str) -> Vec<&str> {
        self.containers
            .values()
            .filter(|c| c.volumes.iter().any(|v| v == name))
            .map(|c| c.id.as_str())
            .collect()
    }

    pub(crate) fn list_volumes(&self, o: &VolumeListOptions) -> Vec<Volume> {
        self.volumes
            .values()
            .filter(|v| filter_matches(&o.filters, "name", |w| v.name.contains(w)))
            .filter(|v| filter_matches(&o.filters, "driver", |w| v.driver == w))
            .filter(|v| {
                filter_matches(&o.filters, "dangling", |w| {
                    (w == "true" || w == "1") == self.volume_users(&v.name).is_empty()
                })
            })
            .filter(|v| labels_match(&o.filters, Some(&v.labels)))
            .cloned()
            .collect()
    }

    pub(crate) fn remove_volume(&mut self, name: &str, force: bool) -> Result<()> {
        if !self.volumes.contains_key(name) {
            return Err(Error::not_found(format!("get {name}: no such volume")));
        }
        let users = self.volume_users(name);
        if !users.is_empty() && !force {
            return Err(Error::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.volumes.remove(name);
        Ok(())
    }
}

fn glob_eq(pattern: &str, value: &str) -> bool {
    match globset::Glob::new(pattern) {
        Ok(g) => g.compile_matcher().is_match(value),
        Err(_) => pattern == value,
    }
}

/// "3 seconds", "About a minute", "2 hours" — close enough to Docker's wording.
pub(crate) fn human_duration(nanos: i64) -> String {
    let s = nanos / 1_000_000_000;
    match s {
        ..=0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        _ => format!("{} hours", s / 3600),
    }
}

pub(crate) fn version() -> SystemVersion {
    let version = env!("CARGO_PKG_VERSION").to_string();
    SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "berth".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: version.clone(),
            details: None,
        }]),
        version: Some(version),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some("berth".into()),
        go_version: Some("none (Rust)".into()),
        os: Some("linux".into()),
        arch: Some(go_arch().into()),
        kernel_version: Some(String::new()),
        experimental: Some(false),
        build_time: Some(String::new()),
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(crate) fn inspect_image(i: &FakeImage) -> ImageInspect {
    ImageInspect {
        id: Some(i.id.clone()),
        repo_tags: Some(i.repo_tags.clone()),
        repo_digests: Some(Vec::new()),
        parent: Some(String::new()),
        comment: Some(i.comment.clone()),
        created: Some(rfc3339(i.created_nanos)),
        docker_version: Some(String::new()),
        author: Some(String::new()),
        config: Some(i.config.clone()),
        architecture: Some(go_arch().into()),
        os: Some("linux".into()),
        size: Some(i.size),
        virtual_size: Some(i.size),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".into(),
            layers: Some(Vec::new()),
        }),
        ..Default::default()
    }
}

pub(crate) fn event(typ: &str, action: &str, id: &str, attrs: Vec<(&str, String)>) -> EventMessage {
    let now = now_nanos();
    let typ = match typ {
        "container" => EventMessageTypeEnum::CONTAINER,
        "image" => EventMessageTypeEnum::IMAGE,
        "network" => EventMessageTypeEnum::NETWORK,
        "volume" => EventMessageTypeEnum::VOLUME,
        _ => EventMessageTypeEnum::DAEMON,
    };
    let mut attributes = HashMap::new();
    for (k, v) in attrs {
        if k == "label" {
            if let Some((lk, lv)) = v.split_once('=') {
                attributes.insert(lk.to_string(), lv.to_string());
            }
        } else {
            attributes.insert(k.to_string(), v);
        }
    }
    EventMessage {
        typ: Some(typ),
        action: Some(action.to_string()),
        actor: Some(EventActor {
            id: Some(id.to_string()),
            attributes: Some(attributes),
        }),
        scope: Some(EventMessageScopeEnum::LOCAL),
        time: Some(now / 1_000_000_000),
        time_nano: Some(now),
    }
}
