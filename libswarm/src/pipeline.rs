//! Builds adapter chains from strings, as libswarm's `swarmd` did:
//!
//! ```text
//! swarmd 'dockerserver unix:///run/berth.sock' 'debug' 'cluster n1@fake n2:zone=eu@unix:///run/n2.sock'
//! ```
//!
//! Each argument is one stage; the last must be a leaf. Stages:
//!
//! | stage | kind | what |
//! |---|---|---|
//! | `dockerserver ADDR` | front | serves the rest as the Docker API on `unix:///…` or `tcp://…` |
//! | `debug` | wrapper | logs every call |
//! | `fake [NAME]` | leaf | the in-memory reference engine |
//! | `dockerclient ADDR` | leaf | a Docker API endpoint |
//! | `cluster [--strategy S] [--heartbeat-ms N] [--down-after-ms N] NODE…` | leaf | one backend over nodes |
//!
//! A cluster `NODE` is `NAME[:k=v,k=v]@TARGET`, TARGET being `fake`, a
//! Docker API address, or `remote+ADDR` for a [`remote`](crate::remote)
//! node. `remote ADDR` (leaf) and `remoteserver ADDR` (front) speak libchan.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let p = libswarm::pipeline::build(&["debug", "cluster a@fake b:zone=eu@fake"]).await.unwrap();
//! assert!(p.backend().ping().await.is_ok());
//! # });
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Cluster, NodeRecord, Strategy};
use crate::debug::DebugBackend;
use crate::dockerclient::DockerClient;
use crate::dockerserver::{self, ListenAddr, ServerHandle};
use crate::fake::FakeBackend;
use crate::remote;
use crate::Backend;

/// A malformed or failing pipeline, naming the stage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No stages.
    #[error("empty pipeline: give at least a leaf stage such as `fake`")]
    Empty,
    /// The stage's words do not parse.
    #[error("stage {stage:?}: {reason}")]
    Invalid {
        /// The stage text.
        stage: String,
        /// What is wrong.
        reason: String,
    },
    /// Starting the stage failed.
    #[error("stage {stage:?}: {source}")]
    Start {
        /// The stage text.
        stage: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a running pipeline holds: the backend at its head, and the servers
/// of its front stages.
pub struct Pipeline {
    backend: Arc<dyn Backend>,
    servers: Vec<ServerHandle>,
    remote_servers: Vec<remote::RemoteServer>,
}

impl Pipeline {
    /// The backend the first stage sees.
    pub fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// Addresses the front stages listen on.
    pub fn listening(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| s.addr().to_string())
            .chain(self.remote_servers.iter().map(|s| s.addr().to_string()))
            .collect()
    }

    /// Stops every server.
    pub async fn shutdown(self) {
        for s in self.servers {
            s.shutdown().await;
        }
        for s in self.remote_servers {
            s.shutdown().await;
        }
    }
}

fn invalid(stage: &str, reason: impl Into<String>) -> PipelineError {
    PipelineError::Invalid {
        stage: stage.to_string(),
        reason: reason.into(),
    }
}

fn start_err(stage: &str, e: impl std::error::Error + Send + Sync + 'static) -> PipelineError {
    PipelineError::Start {
        stage: stage.to_string(),
        source: Box::new(e),
    }
}

fn addr(stage: &str, words: &[&str]) -> Result<ListenAddr, PipelineError> {
    match words {
        [a] => ListenAddr::parse(a).map_err(|e| invalid(stage, e.to_string())),
        _ => Err(invalid(
            stage,
            "want exactly one address (unix:///path or tcp://host:port)",
        )),
    }
}

/// Builds and starts a pipeline from its stages (first = outermost).
pub async fn build<S: AsRef<str>>(stages: &[S]) -> Result<Pipeline, PipelineError> {
    if stages.is_empty() {
        return Err(PipelineError::Empty);
    }
    let mut backend: Option<Arc<dyn Backend>> = None;
    let mut servers = Vec::new();
    let mut remote_servers = Vec::new();
    for stage in stages.iter().rev() {
        let stage = stage.as_ref().trim();
        let words: Vec<&str> = stage.split_whitespace().collect();
        let Some((&kind, args)) = words.split_first() else {
            return Err(invalid(stage, "empty stage"));
        };
        let inner = backend.clone();
        let need_inner = || {
            inner
                .clone()
                .ok_or_else(|| invalid(stage, format!("`{kind}` needs a stage after it (end the pipeline with a leaf such as `fake`)")))
        };
        let is_leaf = matches!(kind, "fake" | "dockerclient" | "cluster" | "remote");
        if is_leaf && backend.is_some() {
            return Err(invalid(
                stage,
                format!("`{kind}` is a leaf: it must be the last stage"),
            ));
        }
        backend = Some(match kind {
            "fake" => match args {
                [] => Arc::new(FakeBackend::new()),
                [name] => Arc::new(FakeBackend::named(name)),
                _ => return Err(invalid(stage, "want `fake` or `fake NAME`")),
            },
            "dockerclient" => {
                let a = addr(stage, args)?;
                Arc::new(DockerClient::connect(a).await.map_err(|e| start_err(stage, e))?)
            }
            "remote" => {
                let a = addr(stage, args)?;
                Arc::new(remote::RemoteClient::connect(&a).await.map_err(|e| start_err(stage, e))?)
            }
            "cluster" => Arc::new(cluster(stage, args).await?),
            "debug" => {
                if !args.is_empty() {
                    return Err(invalid(stage, "`debug` takes no arguments"));
                }
                Arc::new(DebugBackend::new(need_inner()?))
            }
            "dockerserver" => {
                let a = addr(stage, args)?;
                let inner = need_inner()?;
                let server = dockerserver::serve(inner.clone(), &a)
                    .await
                    .map_err(|e| start_err(stage, e))?;
                servers.push(server);
                inner
            }
            "remoteserver" => {
                let a = addr(stage, args)?;
                let inner = need_inner()?;
                let server = remote::serve(inner.clone(), &a)
                    .await
                    .map_err(|e| start_err(stage, e))?;
                remote_servers.push(server);
                inner
            }
            other => {
                return Err(invalid(
                    stage,
                    format!("unknown stage {other:?} (want dockerserver, remoteserver, debug, cluster, dockerclient, remote or fake)"),
                ))
            }
        });
    }
    let backend = backend.ok_or(PipelineError::Empty)?;
    Ok(Pipeline {
        backend,
        servers,
        remote_servers,
    })
}

async fn cluster(stage: &str, args: &[&str]) -> Result<Cluster, PipelineError> {
    let mut builder = Cluster::builder();
    let mut it = args.iter();
    let mut nodes = 0;
    while let Some(&arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .copied()
                .ok_or_else(|| invalid(stage, format!("{flag} needs a value")))
        };
        match arg {
            "--strategy" => {
                let s = value(arg)?;
                let strategy = Strategy::parse(s).ok_or_else(|| {
                    invalid(
                        stage,
                        format!("--strategy {s:?}: want spread, binpack, random or random:SEED"),
                    )
                })?;
                builder = builder.strategy(strategy);
            }
            "--heartbeat-ms" | "--down-after-ms" => {
                let v = value(arg)?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| invalid(stage, format!("{arg} {v:?}: want milliseconds")))?;
                builder = if arg == "--heartbeat-ms" {
                    builder.heartbeat(Duration::from_millis(ms))
                } else {
                    builder.down_after(Duration::from_millis(ms))
                };
            }
            node => {
                let (record, target) = parse_node(stage, node)?;
                let backend: Arc<dyn Backend> = if target == "fake" {
                    Arc::new(FakeBackend::named(&record.name))
                } else if let Some(r) = target.strip_prefix("remote+") {
                    let a = ListenAddr::parse(r).map_err(|e| invalid(stage, e.to_string()))?;
                    Arc::new(
                        remote::RemoteClient::connect(&a)
                            .await
                            .map_err(|e| start_err(stage, e))?,
                    )
                } else {
                    let a = ListenAddr::parse(target).map_err(|e| invalid(stage, e.to_string()))?;
                    Arc::new(DockerClient::new(a))
                };
                builder = builder.node(record, backend);
                nodes += 1;
            }
        }
    }
    if nodes == 0 {
        return Err(invalid(
            stage,
            "a cluster needs at least one node (NAME@fake, NAME@unix:///…)",
        ));
    }
    builder.build().await.map_err(|e| start_err(stage, e))
}

/// `NAME[:k=v,k=v]@TARGET`.
fn parse_node<'a>(stage: &str, spec: &'a str) -> Result<(NodeRecord, &'a str), PipelineError> {
    let (head, target) = spec
        .split_once('@')
        .ok_or_else(|| invalid(stage, format!("node {spec:?}: want NAME[:k=v,...]@TARGET")))?;
    let (name, labels) = match head.split_once(':') {
        Some((n, l)) => (n, l),
        None => (head, ""),
    };
    if name.is_empty() || target.is_empty() {
        return Err(invalid(
            stage,
            format!("node {spec:?}: empty name or target"),
        ));
    }
    let mut map = HashMap::new();
    for kv in labels.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            invalid(
                stage,
                format!("node {spec:?}: label {kv:?} wants key=value"),
            )
        })?;
        map.insert(k.to_string(), v.to_string());
    }
    Ok((
        NodeRecord {
            name: name.to_string(),
            addr: target.to_string(),
            labels: map,
            ..Default::default()
        },
        target,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_build_and_errors_name_the_stage() {
        let p = build(&["debug", "fake"]).await.unwrap();
        assert!(p.backend().ping().await.is_ok());
        assert!(matches!(
            build::<&str>(&[]).await,
            Err(PipelineError::Empty)
        ));
        let e = build(&["debug"]).await.err().unwrap().to_string();
        assert!(e.contains("\"debug\"") && e.contains("leaf"), "{e}");
        let e = build(&["fake", "fake"]).await.err().unwrap().to_string();
        assert!(e.contains("leaf"), "{e}");
        let e = build(&["teleport"]).await.err().unwrap().to_string();
        assert!(e.contains("teleport"), "{e}");
        let e = build(&["cluster --strategy sideways a@fake"])
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("sideways"), "{e}");
        let e = build(&["cluster a:zone@fake"])
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("zone"), "{e}");
        let e = build(&["dockerserver ftp://x", "fake"])
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ftp://x"), "{e}");
    }

    #[tokio::test]
    async fn a_served_pipeline_answers_on_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = format!("unix://{}/p.sock", dir.path().display());
        let p = build(&[
            format!("dockerserver {sock}"),
            "debug".to_string(),
            "cluster --strategy binpack a:zone=eu@fake b@fake".to_string(),
        ])
        .await
        .unwrap();
        assert_eq!(p.listening(), vec![sock.clone()]);
        let client = DockerClient::connect(ListenAddr::parse(&sock).unwrap())
            .await
            .unwrap();
        let info = client.info().await.unwrap();
        assert_eq!(info.name.as_deref(), Some("berth-cluster"));
        p.shutdown().await;
    }
}
