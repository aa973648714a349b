//! `cluster`: one [`Backend`] over many node backends.
//!
//! A container is placed on one node by the [`scheduler`] (strategy plus
//! filters: label constraints, soft constraints, container and image
//! affinities, host ports, resources, node health) and every later call on
//! it is routed there. Images, networks and volumes are created on every
//! healthy node and listed merged. Node state (labels, resources,
//! heartbeats) lives in a [`store::NodeStore`]; a monitor pings each node
//! every heartbeat interval, and a node that misses heartbeats for
//! `down_after` is marked down: it gets no placements, calls on its
//! containers answer `Unavailable`, and `container_list` reports them with
//! state `unknown`.
//!
//! ```
//! use std::sync::Arc;
//! use libswarm::cluster::{Cluster, NodeRecord, Strategy};
//! use libswarm::fake::FakeBackend;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let cluster = Cluster::builder()
//!     .strategy(Strategy::Spread)
//!     .node(NodeRecord { name: "a".into(), ..Default::default() }, Arc::new(FakeBackend::named("a")))
//!     .node(NodeRecord { name: "b".into(), ..Default::default() }, Arc::new(FakeBackend::named("b")))
//!     .build()
//!     .await
//!     .unwrap();
//! assert_eq!(cluster.node_names(), vec!["a", "b"]);
//! # });
//! ```

mod backend_impl;
pub mod etcd;
pub mod filter;
pub mod scheduler;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

pub use filter::{Affinity, AffinityTarget, Constraint};
pub use scheduler::{NodeSpec, PlacementSpec, Scheduler, Strategy};
pub use store::{MemoryStore, NodeRecord, NodeStore};

use crate::models::ContainerSummary;
use crate::util::now_nanos;
use crate::{Backend, Error, Result};

/// Label the cluster adds to listed and inspected containers: the node.
pub const NODE_LABEL: &str = "com.docker.swarm.node";

/// Builds a [`Cluster`].
pub struct ClusterBuilder {
    nodes: Vec<(NodeRecord, Arc<dyn Backend>)>,
    strategy: Strategy,
    store: Option<Arc<dyn NodeStore>>,
    heartbeat: Duration,
    down_after: Duration,
}

impl ClusterBuilder {
    /// Adds a node.
    pub fn node(mut self, record: NodeRecord, backend: Arc<dyn Backend>) -> Self {
        self.nodes.push((record, backend));
        self
    }
    /// Placement strategy (default spread).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
    /// Node state store (default: embedded [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn NodeStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// How often nodes are pinged (default 1 s; zero disables the monitor).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }
    /// How long without a heartbeat marks a node down (default 3 s).
    pub fn down_after(mut self, after: Duration) -> Self {
        self.down_after = after;
        self
    }

    /// Registers the nodes in the store and starts the health monitor.
    pub async fn build(self) -> Result<Cluster> {
        let mut seen = std::collections::HashSet::new();
        for (r, _) in &self.nodes {
            if r.name.is_empty() || !seen.insert(r.name.clone()) {
                return Err(Error::bad_request(format!(
                    "cluster node name {:?}: must be non-empty and unique",
                    r.name
                )));
            }
        }
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn NodeStore>);
        let now_ms = now_nanos() / 1_000_000;
        let mut specs = Vec::new();
        let mut nodes = Vec::new();
        for (mut record, backend) in self.nodes {
            record.last_heartbeat_ms = now_ms;
            specs.push(NodeSpec {
                name: record.name.clone(),
                labels: record.labels.clone(),
                nano_cpus: record.nano_cpus,
                memory: record.memory,
            });
            nodes.push(Node {
                name: record.name.clone(),
                backend,
            });
            store.put(record).await?;
        }
        let inner = Arc::new(Inner {
            nodes,
            sched: Mutex::new(Scheduler::new(self.strategy, specs)),
            placed: RwLock::new(Placements::default()),
            execs: RwLock::new(HashMap::new()),
            store,
            down_after_ms: self.down_after.as_millis() as i64,
        });
        if !self.heartbeat.is_zero() {
            // A ping may take up to half the down window before it counts as missed.
            let ping_timeout = self.heartbeat.max(self.down_after / 2);
            tokio::spawn(monitor(
                Arc::downgrade(&inner),
                self.heartbeat,
                ping_timeout,
            ));
        }
        Ok(Cluster { inner })
    }
}

/// One backend over many nodes. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Node {
    name: String,
    backend: Arc<dyn Backend>,
}

#[derive(Default)]
struct Placements {
    by_id: HashMap<String, Placed>,
    names: HashMap<String, String>,
}

struct Placed {
    node: usize,
    name: String,
    spec: PlacementSpec,
    summary: Option<ContainerSummary>,
}

struct Inner {
    nodes: Vec<Node>,
    sched: Mutex<Scheduler>,
    placed: RwLock<Placements>,
    execs: RwLock<HashMap<String, usize>>,
    store: Arc<dyn NodeStore>,
    down_after_ms: i64,
}

impl Cluster {
    /// A builder with spread, the embedded store, 1 s heartbeats, 3 s to down.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            nodes: Vec::new(),
            strategy: Strategy::Spread,
            store: None,
            heartbeat: Duration::from_secs(1),
            down_after: Duration::from_secs(3),
        }
    }

    /// Node names, in order.
    pub fn node_names(&self) -> Vec<String> {
        self.inner.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Is the named node healthy?
    pub fn node_healthy(&self, name: &str) -> Option<bool> {
        let i = self.inner.nodes.iter().position(|n| n.name == name)?;
        Some(self.inner.sched().is_healthy(i))
    }

    /// The node a container lives on (if the cluster placed or found it).
    pub fn node_of(&self, container: &str) -> Option<String> {
        let placed = self.inner.placed();
        let id = placed
            .names
            .get(container)
            .cloned()
            .unwrap_or_else(|| container.to_string());
        placed
            .by_id
            .get(&id)
            .map(|p| self.inner.nodes[p.node].name.clone())
    }

    /// Runs one round of health checks now (the monitor does this every
    /// heartbeat interval).
    pub async fn check_health(&self) {
        self.inner.check_health(Duration::from_secs(2)).await;
    }
}

impl Inner {
    fn sched(&self) -> MutexGuard<'_, Scheduler> {
        self.sched.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn placed(&self) -> std::sync::RwLockReadGuard<'_, Placements> {
        self.placed.read().unwrap_or_else(|p| p.into_inner())
    }

    fn placed_mut(&self) -> std::sync::RwLockWriteGuard<'_, Placements> {
        self.placed.write().unwrap_or_else(|p| p.into_inner())
    }

    fn healthy(&self, i: usize) -> bool {
        self.sched().is_healthy(i)
    }

    /// The backend of node `i`, or Unavailable if it is down.
    fn backend(&self, i: usize) -> Result<&Arc<dyn Backend>> {
        if !self.healthy(i) {
            return Err(Error::unavailable(format!(
                "node {} is down",
                self.nodes[i].name
            )));
        }
        Ok(&self.nodes[i].backend)
    }

    fn healthy_nodes(&self) -> Vec<usize> {
        let s = self.sched();
        (0..self.nodes.len()).filter(|&i| s.is_healthy(i)).collect()
    }

    /// Finds the node of a container by id, name or unique id prefix; asks
    /// the healthy nodes for containers the cluster did not place.
    async fn locate(&self, key: &str) -> Result<(usize, String)> {
        let key = key.trim_start_matches('/');
        {
            let p = self.placed();
            if let Some(pl) = p.by_id.get(key) {
                return Ok((pl.node, key.to_string()));
            }
            if let Some(id) = p.names.get(key) {
                if let Some(pl) = p.by_id.get(id) {
                    return Ok((pl.node, id.clone()));
                }
            }
            let mut hits = p.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let (Some((id, pl)), None) = (hits.next(), hits.next()) {
                if !key.is_empty() {
                    return Ok((pl.node, id.clone()));
                }
            }
        }
        for i in self.healthy_nodes() {
            if let Ok(c) = self.nodes[i].backend.container_inspect(key).await {
                let id = c.id.clone().unwrap_or_default();
                let name = c
                    .name
                    .clone()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                let mut p = self.placed_mut();
                p.names.insert(name.clone(), id.clone());
                p.by_id.insert(
                    id.clone(),
                    Placed {
                        node: i,
                        name,
                        spec: PlacementSpec::default(),
                        summary: None,
                    },
                );
                return Ok((i, id));
            }
        }
        Err(Error::not_found(format!("No such container: {key}")))
    }

    /// Forgets a container (removed, or gone from its node).
    fn forget(&self, id: &str) {
        let placed = self.placed_mut().by_id.remove(id);
        if let Some(p) = placed {
            self.placed_mut().names.remove(&p.name);
            self.sched().release(p.node, &p.spec, &[id, &p.name]);
        }
    }

    async fn check_health(&self, timeout: Duration) {
        let now_ms = now_nanos() / 1_000_000;
        let pings = self.nodes.iter().map(|n| {
            let b = n.backend.clone();
            async move { tokio::time::timeout(timeout, b.ping()).await }
        });
        let results = futures::future::join_all(pings).await;
        for (n, r) in self.nodes.iter().zip(results) {
            if matches!(r, Ok(Ok(()))) {
                if let Err(e) = self.store.heartbeat(&n.name, now_ms).await {
                    tracing::warn!(node = %n.name, error = %e, "recording heartbeat failed");
                }
            }
        }
        let records = match self.store.list().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading node store failed");
                return;
            }
        };
        let by_name: HashMap<&str, &NodeRecord> =
            records.iter().map(|r| (r.name.as_str(), r)).collect();
        let mut sched = self.sched();
        for (i, n) in self.nodes.iter().enumerate() {
            let alive = by_name
                .get(n.name.as_str())
                .is_some_and(|r| now_ms - r.last_heartbeat_ms <= self.down_after_ms);
            if alive != sched.is_healthy(i) {
                if alive {
                    tracing::info!(node = %n.name, "node is back");
                } else {
                    tracing::warn!(node = %n.name, "node missed its heartbeats: marked down");
                }
                sched.set_healthy(i, alive);
            }
        }
    }
}

async fn monitor(inner: Weak<Inner>, every: Duration, ping_timeout: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.check_health(ping_timeout).await;
    }
}
