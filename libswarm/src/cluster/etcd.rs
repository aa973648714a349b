//! An etcd-backed [`NodeStore`], for managers that outgrow one process.
//!
//! Talks to etcd's v3 API through its JSON gateway (`/v3/kv/*`, on by
//! default since etcd 3.4) over the same hyper client as `dockerclient`,
//! rather than through the gRPC `etcd-client` crate: that crate compiles
//! the etcd protobufs at build time and so needs `protoc` on every machine
//! that builds the workspace. Node records live under
//! `PREFIX/nodes/NAME` (JSON) and heartbeats under `PREFIX/heartbeats/NAME`
//! (UNIX milliseconds), so a heartbeat is one small write.
//!
//! ```no_run
//! use std::sync::Arc;
//! use libswarm::cluster::{etcd::EtcdStore, Cluster};
//!
//! # async fn demo() -> libswarm::Result<()> {
//! let store = EtcdStore::new("tcp://127.0.0.1:2379", "/berth")?;
//! let cluster = Cluster::builder().store(Arc::new(store)).build().await?;
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hyper::{Method, Request};
use serde::Deserialize;

use super::store::{NodeRecord, NodeStore};
use crate::dockerclient::transport::{full_body, Transport};
use crate::dockerserver::ListenAddr;
use crate::{Error, Result};

/// Node state in etcd.
pub struct EtcdStore {
    transport: Transport,
    prefix: String,
}

#[derive(Deserialize)]
struct Kv {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<Kv>,
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdStore {
    /// A store on the etcd client URL `endpoint` (`tcp://host:port` or
    /// `http://host:port`), keeping its keys under `prefix`.
    pub fn new(endpoint: &str, prefix: &str) -> Result<EtcdStore> {
        let addr = ListenAddr::parse(endpoint)
            .map_err(|e| Error::bad_request(format!("etcd endpoint: {e}")))?;
        let prefix = prefix.trim_end_matches('/').to_string();
        if prefix.is_empty() || !prefix.starts_with('/') {
            return Err(Error::bad_request(format!(
                "etcd prefix {prefix:?}: want an absolute key prefix such as /berth"
            )));
        }
        Ok(EtcdStore {
            transport: Transport::new(addr),
            prefix,
        })
    }

    fn node_key(&self, name: &str) -> String {
        format!("{}/nodes/{name}", self.prefix)
    }

    fn heartbeat_key(&self, name: &str) -> String {
        format!("{}/heartbeats/{name}", self.prefix)
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Result<Bytes> {
        let body = serde_json::to_vec(&body).map_err(|e| Error::internal(e.to_string()))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("Host", "etcd")
            .header("Content-Type", "application/json")
            .body(full_body(body))
            .map_err(|e| Error::internal(format!("etcd request: {e}")))?;
        let (resp, sender) = self.transport.send(req, true).await?;
        let status = resp.status();
        let bytes = self.transport.bytes(resp, sender).await?;
        if !status.is_success() {
            return Err(Error::unavailable(format!(
                "etcd {path}: {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        Ok(bytes)
    }

    async fn put_raw(&self, key: &str, value: &[u8]) -> Result<()> {
        self.post(
            "/v3/kv/put",
            serde_json::json!({ "key": B64.encode(key), "value": B64.encode(value) }),
        )
        .await
        .map(|_| ())
    }

    async fn range(&self, key: &str, whole_prefix: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let mut req = serde_json::json!({ "key": B64.encode(key) });
        if whole_prefix {
            req["range_end"] = B64.encode(prefix_end(key.as_bytes())).into();
        }
        let bytes = self.post("/v3/kv/range", req).await?;
        let r: RangeResponse = serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("etcd range reply: {e}")))?;
        r.kvs
            .into_iter()
            .map(|kv| {
                let k = B64
                    .decode(kv.key)
                    .map_err(|e| Error::internal(format!("etcd key: {e}")))?;
                let v = B64
                    .decode(kv.value)
                    .map_err(|e| Error::internal(format!("etcd value: {e}")))?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v))
            })
            .collect()
    }
}

#[async_trait]
impl NodeStore for EtcdStore {
    async fn put(&self, node: NodeRecord) -> Result<()> {
        let json = serde_json::to_vec(&NodeRecord {
            last_heartbeat_ms: 0,
            ..node.clone()
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        self.put_raw(&self.node_key(&node.name), &json).await?;
        if node.last_heartbeat_ms > 0 {
            self.heartbeat(&node.name, node.last_heartbeat_ms).await?;
        }
        Ok(())
    }

    async fn heartbeat(&self, name: &str, at_ms: i64) -> Result<()> {
        if self.range(&self.node_key(name), false).await?.is_empty() {
            return Err(Error::not_found(format!("node {name} is not registered")));
        }
        self.put_raw(&self.heartbeat_key(name), at_ms.to_string().as_bytes())
            .await
    }

    async fn list(&self) -> Result<Vec<NodeRecord>> {
        let nodes_prefix = format!("{}/nodes/", self.prefix);
        let beats_prefix = format!("{}/heartbeats/", self.prefix);
        let beats: std::collections::HashMap<String, i64> = self
            .range(&beats_prefix, true)
            .await?
            .into_iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(&beats_prefix)?.to_string();
                let ms = String::from_utf8_lossy(&v).parse().ok()?;
                Some((name, ms))
            })
            .collect();
        let mut out = Vec::new();
        for (_, v) in self.range(&nodes_prefix, true).await? {
            let mut r: NodeRecord = serde_json::from_slice(&v)
                .map_err(|e| Error::internal(format!("etcd node record: {e}")))?;
            r.last_heartbeat_ms = beats.get(&r.name).copied().unwrap_or(0);
            out.push(r);
        }
        Ok(out)
    }

    async fn remove(&self, name: &str) -> Result<()> {
        for key in [self.node_key(name), self.heartbeat_key(name)] {
            self.post(
                "/v3/kv/deleterange",
                serde_json::json!({ "key": B64.encode(key) }),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_and_bad_arguments() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert!(EtcdStore::new("ftp://x", "/p").is_err());
        assert!(EtcdStore::new("tcp://127.0.0.1:2379", "rel").is_err());
    }
}
