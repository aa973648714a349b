//! Where node state lives: labels, resources, heartbeats. The embedded
//! [`MemoryStore`] is the default; an etcd-backed store serves clusters
//! whose managers outgrow one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// One node as the store records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Unique node name.
    pub name: String,
    /// Where the node is reached (informational: `unix:///…`, `tcp://…`).
    pub addr: String,
    /// Labels for constraints.
    pub labels: HashMap<String, String>,
    /// CPU capacity in nano-CPUs (0: unlimited).
    pub nano_cpus: i64,
    /// Memory capacity in bytes (0: unlimited).
    pub memory: i64,
    /// Last heartbeat, UNIX milliseconds (0: never).
    pub last_heartbeat_ms: i64,
}

/// Node state storage.
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// Adds or replaces a node record (keeps its last heartbeat if newer).
    async fn put(&self, node: NodeRecord) -> Result<()>;
    /// Records a heartbeat of `name` at `at_ms`.
    async fn heartbeat(&self, name: &str, at_ms: i64) -> Result<()>;
    /// All nodes, by name.
    async fn list(&self) -> Result<Vec<NodeRecord>>;
    /// Forgets a node.
    async fn remove(&self, name: &str) -> Result<()>;
}

/// The embedded store: a map in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    nodes: RwLock<BTreeMap<String, NodeRecord>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

#[async_trait]
impl NodeStore for MemoryStore {
    async fn put(&self, mut node: NodeRecord) -> Result<()> {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = nodes.get(&node.name) {
            node.last_heartbeat_ms = node.last_heartbeat_ms.max(old.last_heartbeat_ms);
        }
        nodes.insert(node.name.clone(), node);
        Ok(())
    }

    async fn heartbeat(&self, name: &str, at_ms: i64) -> Result<()> {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        match nodes.get_mut(name) {
            Some(n) => {
                n.last_heartbeat_ms = n.last_heartbeat_ms.max(at_ms);
                Ok(())
            }
            None => Err(crate::Error::not_found(format!(
                "node {name} is not registered"
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<NodeRecord>> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        Ok(nodes.values().cloned().collect())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        nodes.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_keeps_the_newest_heartbeat() {
        let s = MemoryStore::new();
        s.put(NodeRecord {
            name: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        s.heartbeat("a", 10).await.unwrap();
        s.heartbeat("a", 5).await.unwrap();
        s.put(NodeRecord {
            name: "a".into(),
            addr: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let l = s.list().await.unwrap();
        assert_eq!((l[0].last_heartbeat_ms, l[0].addr.as_str()), (10, "x"));
        assert_eq!(
            s.heartbeat("b", 1).await.unwrap_err().kind,
            crate::ErrorKind::NotFound
        );
        s.remove("a").await.unwrap();
        assert!(s.list().await.unwrap().is_empty());
    }
}
