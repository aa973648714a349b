//! Request options and stream types shared by every backend.
//!
//! Response bodies are the Docker Engine API models from `bollard-stubs`
//! (re-exported as [`crate::models`]); this module adds what those models
//! do not cover: the options of each call, the create body, byte streams,
//! attach sessions and the two-phase wait handle.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::models::{ContainerConfig, ContainerWaitResponse, HostConfig, NetworkingConfig};
use crate::Result;

/// A boxed, `Send`, `'static` stream.
pub type BoxStream<T> = futures::stream::BoxStream<'static, T>;

/// A stream of raw bytes (image tarballs, for example).
pub type ByteStream = BoxStream<Result<Bytes>>;

/// Docker API list filters: `{"label": ["a=b"], "status": ["running"]}`.
pub type Filters = HashMap<String, Vec<String>>;

/// The body of `POST /containers/create`: the container config with the
/// host and networking config beside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerCreateBody {
    /// Image, command, environment, labels …
    #[serde(flatten)]
    pub config: ContainerConfig,
    /// Resources, port bindings, auto-remove …
    #[serde(rename = "HostConfig", skip_serializing_if = "Option::is_none")]
    pub host_config: Option<HostConfig>,
    /// Networks to join at creation.
    #[serde(rename = "NetworkingConfig", skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<NetworkingConfig>,
}

/// Options of `container_list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Return at most this many, newest first.
    pub limit: Option<usize>,
    /// `id`, `name`, `label`, `status`, `ancestor` filters.
    pub filters: Filters,
}

/// Options of `container_remove`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRemoveOptions {
    /// Kill a running container first.
    pub force: bool,
    /// Remove anonymous volumes too.
    pub volumes: bool,
}

/// What `container_wait` waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitCondition {
    /// Return at once if the container is not running, else when it exits.
    #[default]
    NotRunning,
    /// The next exit, even if the container has not started yet.
    NextExit,
    /// The container has been removed.
    Removed,
}

impl WaitCondition {
    /// Parses the Docker API spelling (`not-running`, `next-exit`, `removed`).
    pub fn parse(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(crate::Error::bad_request(format!(
                "invalid condition: {other:?} (want not-running, next-exit or removed)"
            ))),
        }
    }
    /// The Docker API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitCondition::NotRunning => "not-running",
            WaitCondition::NextExit => "next-exit",
            WaitCondition::Removed => "removed",
        }
    }
}

/// The second phase of a wait: returned once the wait is registered, it
/// resolves when the condition is met.
///
/// Registration first matters: `docker run` registers its wait, then starts
/// the container; a wait registered after the start could miss a fast exit.
pub struct WaitHandle {
    exited: BoxFuture<'static, Result<ContainerWaitResponse>>,
}

impl WaitHandle {
    /// Wraps the future that resolves on exit.
    pub fn new(
        exited: impl std::future::Future<Output = Result<ContainerWaitResponse>> + Send + 'static,
    ) -> WaitHandle {
        WaitHandle {
            exited: Box::pin(exited),
        }
    }
    /// A handle that is already resolved.
    pub fn ready(response: ContainerWaitResponse) -> WaitHandle {
        WaitHandle::new(async move { Ok(response) })
    }
    /// Waits for the condition; returns the exit status.
    pub async fn exited(self) -> Result<ContainerWaitResponse> {
        self.exited.await
    }
}

impl fmt::Debug for WaitHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaitHandle")
    }
}

/// Options of `container_logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsOptions {
    /// Keep the stream open and send new output as it comes.
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only lines after this UNIX time (seconds).
    pub since: Option<i64>,
    /// Only lines before this UNIX time (seconds).
    pub until: Option<i64>,
    /// Prefix every line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
}

/// Options of `container_attach`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachOptions {
    /// Forward stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
    /// Replay the logs so far before live output.
    pub logs: bool,
    /// Stream live output.
    pub stream: bool,
}

/// Which standard stream a chunk of output belongs to (the numbering is the
/// one of the Docker multiplexed stream header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamKind {
    /// Standard input (echoed by some TTY setups).
    Stdin = 0,
    /// Standard output (also all output of a TTY).
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
}

/// A piece of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Which stream it came from.
    pub stream: StreamKind,
    /// The bytes.
    pub data: Bytes,
}

impl OutputChunk {
    /// A stdout chunk.
    pub fn stdout(data: impl Into<Bytes>) -> OutputChunk {
        OutputChunk {
            stream: StreamKind::Stdout,
            data: data.into(),
        }
    }
    /// A stderr chunk.
    pub fn stderr(data: impl Into<Bytes>) -> OutputChunk {
        OutputChunk {
            stream: StreamKind::Stderr,
            data: data.into(),
        }
    }
}

/// A live attach or exec session.
///
/// Dropping `stdin` closes the process's standard input (a half-close); the
/// output stream keeps going until the process ends.
pub struct AttachSession {
    /// Where to write the process's stdin, if it was requested.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// The process's output, in order.
    pub output: BoxStream<Result<OutputChunk>>,
    /// Whether the process has a TTY (raw output, no stream multiplexing).
    pub tty: bool,
}

impl fmt::Debug for AttachSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachSession")
            .field("stdin", &self.stdin.is_some())
            .field("tty", &self.tty)
            .finish()
    }
}

/// Options of `exec_start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStartOptions {
    /// Start and return at once, with no output.
    pub detach: bool,
    /// Allocate a TTY.
    pub tty: bool,
}

/// Options of `image_list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageListOptions {
    /// Include intermediate images.
    pub all: bool,
    /// `reference`, `label`, `dangling` filters.
    pub filters: Filters,
}

/// Options of `image_import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageImportOptions {
    /// Repository to tag the new image with.
    pub repo: Option<String>,
    /// Tag (with `repo`).
    pub tag: Option<String>,
    /// Dockerfile instructions to apply (`CMD ["sh"]`, `ENV A=b` …).
    pub changes: Vec<String>,
    /// Commit message.
    pub message: Option<String>,
}

/// One line of an image pull's progress, as Docker's JSON messages
/// (`{"status": "Pull complete", "id": "a1b2c3d4e5f6", "progressDetail": {}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullMessage {
    /// What happened: `Pulling from library/busybox`, `Pull complete`,
    /// `Digest: sha256:…`, `Status: Downloaded newer image for …`.
    pub status: String,
    /// What it is about: the tag being pulled, or a short layer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Bytes so far of a layer (an empty object on a layer's lines).
    #[serde(
        default,
        rename = "progressDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<ProgressDetail>,
}

impl PullMessage {
    /// A line with only a status.
    pub fn status(status: impl Into<String>) -> Self {
        PullMessage {
            status: status.into(),
            ..PullMessage::default()
        }
    }
}

/// Byte counts of a layer being pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Credentials for a registry: the body of `POST /auth` (`docker login`)
/// and the JSON in a pull's `X-Registry-Auth` header.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    /// The user name.
    #[serde(default)]
    pub username: String,
    /// The password (or a token used as one).
    #[serde(default)]
    pub password: String,
    /// The registry (`host[:port]`, possibly as a URL).
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
}

impl std::fmt::Debug for RegistryAuth {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

/// Options of `image_remove`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRemoveOptions {
    /// Remove even if containers use it.
    pub force: bool,
    /// Keep untagged parents.
    pub noprune: bool,
}

/// Options of `events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsOptions {
    /// Replay events since this UNIX time (seconds).
    pub since: Option<i64>,
    /// Stop at this UNIX time (seconds).
    pub until: Option<i64>,
    /// `type`, `event`, `container`, `image`, `label` filters.
    pub filters: Filters,
}

/// One sample of container resource usage (the subset of Docker's stats
/// JSON that every backend can fill).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Container id.
    pub id: String,
    /// Container name, with the leading slash.
    pub name: String,
    /// When the sample was taken (RFC 3339).
    pub read: String,
    /// CPU usage.
    pub cpu_stats: CpuStats,
    /// The previous CPU sample (for rate computation).
    pub precpu_stats: CpuStats,
    /// Memory usage.
    pub memory_stats: MemoryStats,
    /// Number of processes.
    pub pids_stats: PidsStats,
    /// Block I/O (empty when the backend does not know it).
    #[serde(default)]
    pub blkio_stats: BlkioStats,
    /// Counters per network interface of the container's own network
    /// namespace (absent with the host's network, as Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<HashMap<String, NetworkStats>>,
}

/// Block I/O part of [`ContainerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes read and written, by device (`op` `read`/`write`, as cgroup v2
    /// names them; v1 says `Read`/`Write`).
    #[serde(default)]
    pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
}

/// One block-I/O counter of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioStatEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// `read`, `write` …
    pub op: String,
    /// The counter.
    pub value: u64,
}

/// Counters of one network interface (Docker's `networks` entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// CPU part of [`ContainerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Cumulative CPU usage.
    pub cpu_usage: CpuUsage,
    /// Host CPU time (nanoseconds).
    #[serde(default)]
    pub system_cpu_usage: u64,
    /// Number of online CPUs.
    #[serde(default)]
    pub online_cpus: u32,
}

/// Cumulative CPU time of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Nanoseconds of CPU time.
    pub total_usage: u64,
}

/// Memory part of [`ContainerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Bytes in use.
    #[serde(default)]
    pub usage: u64,
    /// Limit in bytes.
    #[serde(default)]
    pub limit: u64,
}

/// Process count part of [`ContainerStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes in the container.
    #[serde(default)]
    pub current: u64,
}

/// Options of `network_list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkListOptions {
    /// `name`, `id`, `driver`, `label` filters.
    pub filters: Filters,
}

/// Options of `volume_list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeListOptions {
    /// `name`, `driver`, `label`, `dangling` filters.
    pub filters: Filters,
}

/// Does `value` pass every value given for `key` in `filters`? (Absent key:
/// yes.) A helper for backends that filter lists.
pub fn filter_matches(filters: &Filters, key: &str, pred: impl Fn(&str) -> bool) -> bool {
    match filters.get(key) {
        None => true,
        Some(wanted) if wanted.is_empty() => true,
        Some(wanted) => wanted.iter().any(|w| pred(w)),
    }
}

/// Does a label map satisfy `label` filters (`key` or `key=value`), all of them?
pub fn labels_match(filters: &Filters, labels: Option<&HashMap<String, String>>) -> bool {
    let Some(wanted) = filters.get("label") else {
        return true;
    };
    wanted.iter().all(|w| {
        let (k, v) = match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w.as_str(), None),
        };
        match labels.and_then(|l| l.get(k)) {
            None => false,
            Some(have) => v.is_none_or(|v| v == have),
        }
    })
}

/// Do the Docker event filters (`type`, `event`, `container`, `image`,
/// `network`, `volume`, `label`) accept `e`? `event` also matches the
/// action's first word (`exec_start` matches `exec_start: sh`), and
/// `container`/`network` an id prefix or a name. For backends that
/// publish events.
pub fn event_matches(f: &Filters, e: &crate::models::EventMessage) -> bool {
    let typ = e.typ.map(|t| t.as_ref().to_string()).unwrap_or_default();
    let action = e.action.as_deref().unwrap_or("");
    let id = e.actor.as_ref().and_then(|a| a.id.as_deref()).unwrap_or("");
    let empty = HashMap::new();
    let attrs = e
        .actor
        .as_ref()
        .and_then(|a| a.attributes.as_ref())
        .unwrap_or(&empty);
    let name = attrs.get("name").map(String::as_str).unwrap_or("");
    let is = |t: &str| typ == t;
    filter_matches(f, "type", |w| w == typ)
        && filter_matches(f, "event", |w| {
            action == w || action.split(':').next() == Some(w)
        })
        && filter_matches(f, "container", |w| {
            is("container") && (id.starts_with(w) || name == w)
        })
        && filter_matches(f, "image", |w| {
            attrs.get("image").is_some_and(|i| i == w)
                || (is("image") && (id.contains(w) || name == w || without_tag(name) == w))
        })
        && filter_matches(f, "network", |w| {
            is("network") && (id.starts_with(w) || name == w)
        })
        && filter_matches(f, "volume", |w| is("volume") && id == w)
        && labels_match(f, Some(attrs))
}

/// `repo` of `repo:tag` (an image event's `name`, as Docker's image filter
/// matches it); a registry port is not a tag.
fn without_tag(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_events_match_their_name_with_or_without_the_tag() {
        let e = crate::models::EventMessage {
            typ: Some(crate::models::EventMessageTypeEnum::IMAGE),
            action: Some("untag".into()),
            actor: Some(crate::models::EventActor {
                id: Some("sha256:abc".into()),
                attributes: Some(HashMap::from([("name".into(), "mybox:v1".into())])),
            }),
            ..Default::default()
        };
        let f = |v: &str| {
            let mut f = Filters::new();
            f.insert("image".into(), vec![v.into()]);
            f
        };
        assert!(event_matches(&f("mybox:v1"), &e));
        assert!(event_matches(&f("mybox"), &e));
        assert!(event_matches(&f("sha256:abc"), &e));
        assert!(!event_matches(&f("other"), &e));
        assert_eq!(without_tag("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(without_tag("localhost:5000/app:v2"), "localhost:5000/app");
    }

    #[test]
    fn create_body_flattens_config_beside_host_config() {
        let json = r#"{"Image":"busybox","Cmd":["echo","hi"],"HostConfig":{"AutoRemove":true}}"#;
        let body: ContainerCreateBody = serde_json::from_str(json).unwrap();
        assert_eq!(body.config.image.as_deref(), Some("busybox"));
        assert_eq!(body.host_config.unwrap().auto_remove, Some(true));
        let back = serde_json::to_value(ContainerCreateBody {
            config: ContainerConfig {
                image: Some("x".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        assert_eq!(back, serde_json::json!({"Image": "x"}));
    }

    #[test]
    fn wait_conditions_parse_and_reject_junk() {
        assert_eq!(WaitCondition::parse("").unwrap(), WaitCondition::NotRunning);
        assert_eq!(
            WaitCondition::parse("removed").unwrap(),
            WaitCondition::Removed
        );
        let err = WaitCondition::parse("soon").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::BadRequest);
        assert!(err.message.contains("soon"));
    }

    #[test]
    fn label_filters_need_every_label() {
        let labels: HashMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let mut f = Filters::new();
        assert!(labels_match(&f, None));
        f.insert("label".into(), vec!["a".into()]);
        assert!(labels_match(&f, Some(&labels)));
        f.insert("label".into(), vec!["a=1".into(), "b".into()]);
        assert!(!labels_match(&f, Some(&labels)));
        f.insert("label".into(), vec!["a=2".into()]);
        assert!(!labels_match(&f, Some(&labels)));
    }
}
