//! [`Backend`] for [`Cluster`]: routing, broadcasting and merging.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{filter, Cluster, Inner, Placed, NODE_LABEL};
use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    EndpointSettings, EventMessage, ExecConfig, ExecInspectResponse, ImageDeleteResponseItem,
    ImageInspect, ImageSummary, Network, NetworkCreateRequest, NetworkCreateResponse, SystemInfo,
    SystemVersion, Volume, VolumeCreateOptions, VolumeListResponse,
};
use crate::types::{
    AttachOptions, AttachSession, BoxStream, ByteStream, ContainerCreateBody, ContainerListOptions,
    ContainerRemoveOptions, ContainerStats, EventsOptions, ExecStartOptions, ImageImportOptions,
    ImageListOptions, ImageRemoveOptions, LogsOptions, NetworkListOptions, OutputChunk,
    VolumeListOptions, WaitCondition, WaitHandle,
};
use crate::{Backend, Error, ErrorKind, Result};

/// Runs `f` on every healthy node concurrently.
async fn each<T, F, Fut>(inner: &Inner, f: F) -> Vec<(usize, Result<T>)>
where
    F: Fn(Arc<dyn Backend>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let nodes = inner.healthy_nodes();
    let futs = nodes.iter().map(|&i| f(inner.nodes[i].backend.clone()));
    nodes
        .iter()
        .copied()
        .zip(futures::future::join_all(futs).await)
        .collect()
}

/// One result from a broadcast: any success wins; otherwise the most
/// telling error (conflict over not-found).
fn combine<T>(results: Vec<(usize, Result<T>)>, what: &str) -> Result<Vec<T>> {
    let mut oks = Vec::new();
    let mut err: Option<Error> = None;
    for (_, r) in results {
        match r {
            Ok(v) => oks.push(v),
            Err(e) => {
                let replace = match &err {
                    None => true,
                    Some(old) => old.kind == ErrorKind::NotFound && e.kind != ErrorKind::NotFound,
                };
                if replace {
                    err = Some(e);
                }
            }
        }
    }
    if let Some(e) = err {
        if e.kind != ErrorKind::NotFound || oks.is_empty() {
            return Err(e);
        }
    }
    if oks.is_empty() {
        return Err(Error::unavailable(format!("{what}: no healthy node")));
    }
    Ok(oks)
}

fn host_ports(body: &ContainerCreateBody) -> Vec<u16> {
    body.host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|(_, binds)| binds.iter().flatten())
        .filter_map(|b| b.host_port.as_deref().and_then(|p| p.parse().ok()))
        .filter(|p| *p != 0)
        .collect()
}

impl Inner {
    fn label(&self, node: usize, labels: &mut Option<HashMap<String, String>>) {
        labels
            .get_or_insert_with(HashMap::new)
            .insert(NODE_LABEL.to_string(), self.nodes[node].name.clone());
    }

    /// Routes a container call; a NotFound from the node forgets the container.
    async fn on_container<T, F, Fut>(&self, key: &str, f: F) -> Result<T>
    where
        F: FnOnce(Arc<dyn Backend>, String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let (node, id) = self.locate(key).await?;
        let backend = self.backend(node)?.clone();
        let r = f(backend, id.clone()).await;
        if let Err(e) = &r {
            if e.kind == ErrorKind::NotFound && e.message.contains("container") {
                self.forget(&id);
            }
        }
        r
    }

    async fn exec_node(&self, exec_id: &str) -> Result<Arc<dyn Backend>> {
        let node = self
            .execs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(exec_id)
            .copied()
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {exec_id}")))?;
        Ok(self.backend(node)?.clone())
    }

    /// The name of a network given by id or name, as some node knows it.
    async fn network_name(&self, key: &str) -> Result<String> {
        for i in self.healthy_nodes() {
            if let Ok(n) = self.nodes[i].backend.network_inspect(key).await {
                return Ok(n.name.unwrap_or_else(|| key.to_string()));
            }
        }
        Err(Error::not_found(format!("network {key} not found")))
    }
}

#[async_trait]
impl Backend for Cluster {
    async fn ping(&self) -> Result<()> {
        if self.inner.healthy_nodes().is_empty() && !self.inner.nodes.is_empty() {
            return Err(Error::unavailable("every cluster node is down"));
        }
        Ok(())
    }

    async fn version(&self) -> Result<SystemVersion> {
        Ok(crate::fake::version_info())
    }

    async fn info(&self) -> Result<SystemInfo> {
        let infos = each(&self.inner, |b| async move { b.info().await }).await;
        let mut info = SystemInfo {
            id: Some("berth-cluster".into()),
            name: Some("berth-cluster".into()),
            driver: Some("cluster".into()),
            operating_system: Some("berth cluster".into()),
            os_type: Some("linux".into()),
            server_version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Default::default()
        };
        let (mut c, mut r, mut s, mut im, mut cpus, mut mem) = (0, 0, 0, 0, 0, 0);
        for (_, i) in infos.iter() {
            if let Ok(i) = i {
                c += i.containers.unwrap_or(0);
                r += i.containers_running.unwrap_or(0);
                s += i.containers_stopped.unwrap_or(0);
                im += i.images.unwrap_or(0);
                cpus += i.ncpu.unwrap_or(0);
                mem += i.mem_total.unwrap_or(0);
            }
        }
        info.containers = Some(c);
        info.containers_running = Some(r);
        info.containers_paused = Some(0);
        info.containers_stopped = Some(s);
        info.images = Some(im);
        info.ncpu = Some(cpus);
        info.mem_total = Some(mem);
        let sched = self.inner.sched();
        let mut status = vec![vec![
            "Nodes".to_string(),
            self.inner.nodes.len().to_string(),
        ]];
        for (i, n) in self.inner.nodes.iter().enumerate() {
            let health = if sched.is_healthy(i) {
                "Healthy"
            } else {
                "Down"
            };
            status.push(vec![
                format!(" {}", n.name),
                format!("{health}, {} containers", sched.containers_on(i)),
            ]);
        }
        info.driver_status = Some(status);
        Ok(info)
    }

    async fn events(&self, options: EventsOptions) -> Result<BoxStream<Result<EventMessage>>> {
        let streams = each(&self.inner, |b| {
            let o = options.clone();
            async move { b.events(o).await }
        })
        .await;
        let streams: Vec<_> = streams.into_iter().filter_map(|(_, s)| s.ok()).collect();
        if streams.is_empty() {
            return Err(Error::unavailable("events: no healthy node"));
        }
        Ok(futures::stream::select_all(streams).boxed())
    }

    async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let inner = &self.inner;
        if let Some(n) = name
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| !n.is_empty())
        {
            if let Some(other) = inner.placed().names.get(n) {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
        }
        let (constraints, affinities) = filter::expressions(&body.config)?;
        let mut tried = Vec::new();
        loop {
            let (node, spec) = {
                let mut sched = inner.sched();
                let mut spec = sched.compile_expressions(&constraints, &affinities)?;
                spec.ports = host_ports(&body);
                if let Some(h) = &body.host_config {
                    spec.nano_cpus = h.nano_cpus.unwrap_or(0).max(0);
                    spec.memory = h.memory.unwrap_or(0).max(0);
                }
                spec.image = filter::normalize_image(body.config.image.as_deref().unwrap_or(""));
                let node = sched
                    .place(&spec)
                    .map_err(|e| Error::unavailable(e.to_string()))?;
                sched.commit(node, &spec, &[]);
                (node, spec)
            };
            let result = inner.nodes[node]
                .backend
                .container_create(name, body.clone())
                .await;
            match result {
                Ok(created) => {
                    let cname = match name {
                        Some(n) if !n.is_empty() => n.trim_start_matches('/').to_string(),
                        _ => inner.nodes[node]
                            .backend
                            .container_inspect(&created.id)
                            .await
                            .ok()
                            .and_then(|c| c.name)
                            .map(|n| n.trim_start_matches('/').to_string())
                            .unwrap_or_else(|| created.id.clone()),
                    };
                    {
                        let mut sched = inner.sched();
                        // Names for affinities: release what commit counted, recommit named.
                        sched.release(node, &spec, &[]);
                        sched.commit(node, &spec, &[&created.id, &cname]);
                    }
                    let mut p = inner.placed_mut();
                    p.names.insert(cname.clone(), created.id.clone());
                    p.by_id.insert(
                        created.id.clone(),
                        Placed {
                            node,
                            name: cname,
                            spec,
                            summary: None,
                        },
                    );
                    return Ok(created);
                }
                Err(e) => {
                    inner.sched().release(node, &spec, &[]);
                    if e.kind == ErrorKind::Unavailable && !tried.contains(&node) {
                        // The node died under us: mark it down and try another.
                        tracing::warn!(node = %inner.nodes[node].name, error = %e, "create failed: node unavailable");
                        inner.sched().set_healthy(node, false);
                        tried.push(node);
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn container_start(&self, id: &str) -> Result<()> {
        self.inner
            .on_container(id, |b, id| async move { b.container_start(&id).await })
            .await
    }

    async fn container_stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        self.inner
            .on_container(
                id,
                |b, id| async move { b.container_stop(&id, timeout).await },
            )
            .await
    }

    async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let signal = signal.map(String::from);
        self.inner
            .on_container(id, |b, id| async move {
                b.container_kill(&id, signal.as_deref()).await
            })
            .await
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let (node, cid) = self.inner.locate(id).await?;
        let handle = self
            .inner
            .backend(node)?
            .container_wait(&cid, condition)
            .await?;
        if condition != WaitCondition::Removed {
            return Ok(handle);
        }
        // Removed: forget the placement once the node reports it gone.
        let inner = self.inner.clone();
        Ok(WaitHandle::new(async move {
            let r = handle.exited().await;
            if r.is_ok() {
                inner.forget(&cid);
            }
            r
        }))
    }

    async fn container_remove(&self, id: &str, options: ContainerRemoveOptions) -> Result<()> {
        let (node, cid) = self.inner.locate(id).await?;
        let r = self
            .inner
            .backend(node)?
            .container_remove(&cid, options)
            .await;
        match &r {
            Ok(()) => self.inner.forget(&cid),
            Err(e) if e.kind == ErrorKind::NotFound => self.inner.forget(&cid),
            Err(_) => {}
        }
        r
    }

    async fn container_list(&self, options: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let inner = &self.inner;
        let per_node = each(inner, |b| {
            let o = ContainerListOptions {
                limit: None,
                ..options.clone()
            };
            async move { b.container_list(o).await }
        })
        .await;
        let mut out = Vec::new();
        let mut answered = vec![false; inner.nodes.len()];
        for (node, r) in per_node {
            let Ok(list) = r else {
                continue;
            };
            answered[node] = true;
            let mut p = inner.placed_mut();
            for mut c in list {
                inner.label(node, &mut c.labels);
                if let Some(pl) = c.id.as_ref().and_then(|id| p.by_id.get_mut(id)) {
                    pl.summary = Some(c.clone());
                }
                out.push(c);
            }
        }
        // Containers of nodes that did not answer: reported as down.
        {
            let p = inner.placed();
            for (id, pl) in p.by_id.iter().filter(|(_, pl)| !answered[pl.node]) {
                let mut c = pl.summary.clone().unwrap_or_else(|| ContainerSummary {
                    id: Some(id.clone()),
                    names: Some(vec![format!("/{}", pl.name)]),
                    ..Default::default()
                });
                let was_running = c.state.as_deref() == Some("running");
                if !options.all && !was_running && pl.summary.is_some() {
                    continue;
                }
                c.state = Some("unknown".into());
                c.status = Some(format!(
                    "Down (node {} unreachable)",
                    inner.nodes[pl.node].name
                ));
                inner.label(pl.node, &mut c.labels);
                out.push(c);
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or(0)));
        if let Some(l) = options.limit.filter(|l| *l > 0) {
            out.truncate(l);
        }
        Ok(out)
    }

    async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        let (node, cid) = self.inner.locate(id).await?;
        let backend = self.inner.backend(node)?.clone();
        let mut c = match backend.container_inspect(&cid).await {
            Ok(c) => c,
            Err(e) => {
                if e.kind == ErrorKind::NotFound {
                    self.inner.forget(&cid);
                }
                return Err(e);
            }
        };
        if let Some(config) = c.config.as_mut() {
            self.inner.label(node, &mut config.labels);
        }
        Ok(c)
    }

    async fn container_logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<BoxStream<Result<OutputChunk>>> {
        self.inner
            .on_container(
                id,
                |b, id| async move { b.container_logs(&id, options).await },
            )
            .await
    }

    async fn container_attach(&self, id: &str, options: AttachOptions) -> Result<AttachSession> {
        self.inner
            .on_container(
                id,
                |b, id| async move { b.container_attach(&id, options).await },
            )
            .await
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.inner
            .on_container(id, |b, id| async move {
                b.container_resize(&id, height, width).await
            })
            .await
    }

    async fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> Result<BoxStream<Result<ContainerStats>>> {
        self.inner
            .on_container(
                id,
                |b, id| async move { b.container_stats(&id, stream).await },
            )
            .await
    }

    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        let ps = ps_args.map(String::from);
        self.inner
            .on_container(id, |b, id| async move {
                b.container_top(&id, ps.as_deref()).await
            })
            .await
    }

    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<String> {
        let (node, cid) = self.inner.locate(container).await?;
        let exec_id = self.inner.backend(node)?.exec_create(&cid, config).await?;
        self.inner
            .execs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(exec_id.clone(), node);
        Ok(exec_id)
    }

    async fn exec_start(&self, exec_id: &str, options: ExecStartOptions) -> Result<AttachSession> {
        self.inner
            .exec_node(exec_id)
            .await?
            .exec_start(exec_id, options)
            .await
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        self.inner
            .exec_node(exec_id)
            .await?
            .exec_inspect(exec_id)
            .await
    }

    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.inner
            .exec_node(exec_id)
            .await?
            .exec_resize(exec_id, height, width)
            .await
    }

    async fn image_list(&self, options: ImageListOptions) -> Result<Vec<ImageSummary>> {
        let lists = each(&self.inner, |b| {
            let o = options.clone();
            async move { b.image_list(o).await }
        })
        .await;
        let mut by_id: BTreeMap<String, ImageSummary> = BTreeMap::new();
        for list in combine(lists, "image list")? {
            for img in list {
                by_id
                    .entry(img.id.clone())
                    .and_modify(|e| e.containers += img.containers)
                    .or_insert(img);
            }
        }
        Ok(by_id.into_values().collect())
    }

    async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let r = each(&self.inner, |b| async move { b.image_inspect(name).await }).await;
        Ok(combine(r, "image inspect")?.remove(0))
    }

    async fn image_pull(&self, reference: &str) -> Result<()> {
        let r = each(
            &self.inner,
            |b| async move { b.image_pull(reference).await },
        )
        .await;
        combine(r, "image pull").map(|_| ())
    }

    async fn image_load(&self, tarball: ByteStream) -> Result<Vec<String>> {
        let data = Bytes::from(crate::fake::collect_tarball(tarball).await?);
        let r = each(&self.inner, |b| {
            let d = data.clone();
            async move {
                b.image_load(futures::stream::once(async move { Ok(d) }).boxed())
                    .await
            }
        })
        .await;
        Ok(combine(r, "image load")?.remove(0))
    }

    async fn image_import(
        &self,
        tarball: ByteStream,
        options: ImageImportOptions,
    ) -> Result<String> {
        let data = Bytes::from(crate::fake::collect_tarball(tarball).await?);
        let r = each(&self.inner, |b| {
            let d = data.clone();
            let o = options.clone();
            async move {
                b.image_import(futures::stream::once(async move { Ok(d) }).boxed(), o)
                    .await
            }
        })
        .await;
        Ok(combine(r, "image import")?.remove(0))
    }

    async fn image_remove(
        &self,
        name: &str,
        options: ImageRemoveOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let r = each(&self.inner, |b| async move {
            b.image_remove(name, options).await
        })
        .await;
        let mut items: Vec<ImageDeleteResponseItem> = Vec::new();
        for list in combine(r, "image remove")? {
            for item in list {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
        }
        Ok(items)
    }

    async fn network_create(&self, request: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let r = each(&self.inner, |b| {
            let req = request.clone();
            async move { b.network_create(req).await }
        })
        .await;
        Ok(combine(r, "network create")?.remove(0))
    }

    async fn network_list(&self, options: NetworkListOptions) -> Result<Vec<Network>> {
        let r = each(&self.inner, |b| {
            let o = options.clone();
            async move { b.network_list(o).await }
        })
        .await;
        let mut by_name: BTreeMap<String, Network> = BTreeMap::new();
        for list in combine(r, "network list")? {
            for n in list {
                let key = n.name.clone().unwrap_or_default();
                match by_name.get_mut(&key) {
                    Some(existing) => merge_network(existing, n),
                    None => {
                        by_name.insert(key, n);
                    }
                }
            }
        }
        Ok(by_name.into_values().collect())
    }

    async fn network_inspect(&self, id: &str) -> Result<Network> {
        let r = each(&self.inner, |b| async move { b.network_inspect(id).await }).await;
        let mut all = combine(r, "network inspect")?.into_iter();
        let mut first = all
            .next()
            .ok_or_else(|| Error::not_found(format!("network {id} not found")))?;
        for n in all {
            merge_network(&mut first, n);
        }
        Ok(first)
    }

    async fn network_remove(&self, id: &str) -> Result<()> {
        let name = self.inner.network_name(id).await?;
        let name = name.as_str();
        let r = each(&self.inner, |b| async move { b.network_remove(name).await }).await;
        combine(r, "network remove").map(|_| ())
    }

    async fn network_connect(
        &self,
        network: &str,
        container: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        let name = self.inner.network_name(network).await?;
        self.inner
            .on_container(container, |b, id| async move {
                b.network_connect(&name, &id, endpoint).await
            })
            .await
    }

    async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let name = self.inner.network_name(network).await?;
        self.inner
            .on_container(container, |b, id| async move {
                b.network_disconnect(&name, &id, force).await
            })
            .await
    }

    async fn volume_create(&self, options: VolumeCreateOptions) -> Result<Volume> {
        let r = each(&self.inner, |b| {
            let o = options.clone();
            async move { b.volume_create(o).await }
        })
        .await;
        Ok(combine(r, "volume create")?.remove(0))
    }

    async fn volume_list(&self, options: VolumeListOptions) -> Result<VolumeListResponse> {
        let r = each(&self.inner, |b| {
            let o = options.clone();
            async move { b.volume_list(o).await }
        })
        .await;
        let mut by_name: BTreeMap<String, Volume> = BTreeMap::new();
        for list in combine(r, "volume list")? {
            for v in list.volumes.unwrap_or_default() {
                by_name.entry(v.name.clone()).or_insert(v);
            }
        }
        Ok(VolumeListResponse {
            volumes: Some(by_name.into_values().collect()),
            warnings: Some(Vec::new()),
        })
    }

    async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        let r = each(&self.inner, |b| async move { b.volume_inspect(name).await }).await;
        Ok(combine(r, "volume inspect")?.remove(0))
    }

    async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let r = each(&self.inner, |b| async move {
            b.volume_remove(name, force).await
        })
        .await;
        combine(r, "volume remove").map(|_| ())
    }
}

fn merge_network(into: &mut Network, other: Network) {
    if let Some(more) = other.containers {
        into.containers
            .get_or_insert_with(HashMap::new)
            .extend(more);
    }
}
