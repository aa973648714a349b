//! The embedded resolver: Docker's 127.0.0.11 model.
//!
//! Each sandbox gets a UDP and a TCP listener on 127.0.0.11:53 inside its
//! namespace. Names and aliases of the endpoints on the sandbox's networks
//! are answered from memory (A, AAAA, PTR); everything else is forwarded to
//! the host's upstream servers from sockets opened in the host namespace,
//! so loopback upstreams such as 127.0.0.53 work.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::netns::{NetNs, NsWorker};

/// The resolver's address inside every sandbox.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const TTL: u32 = 600;

#[derive(Debug, Clone)]
struct Entry {
    names: Vec<String>,
    addrs: Vec<IpAddr>,
}

/// Names of the endpoints, per network. Shared by every resolver.
#[derive(Debug, Default)]
pub struct DnsTable {
    // network id -> endpoint id -> entry
    nets: RwLock<BTreeMap<String, BTreeMap<String, Entry>>>,
}

impl DnsTable {
    /// Publish an endpoint's names on a network.
    pub fn register(&self, network: &str, endpoint: &str, names: Vec<String>, addrs: Vec<IpAddr>) {
        let names = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        self.nets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(network.to_string())
            .or_default()
            .insert(endpoint.to_string(), Entry { names, addrs });
    }

    /// Withdraw an endpoint's names.
    pub fn unregister(&self, network: &str, endpoint: &str) {
        let mut nets = self.nets.write().unwrap_or_else(|p| p.into_inner());
        if let Some(eps) = nets.get_mut(network) {
            eps.remove(endpoint);
        }
    }

    fn lookup(&self, networks: &BTreeSet<String>, name: &str) -> Option<Vec<IpAddr>> {
        let nets = self.nets.read().unwrap_or_else(|p| p.into_inner());
        let mut found: Option<Vec<IpAddr>> = None;
        for net in networks {
            for e in nets.get(net).into_iter().flat_map(|m| m.values()) {
                if e.names.iter().any(|n| n == name) {
                    found.get_or_insert_with(Vec::new).extend(&e.addrs);
                }
            }
        }
        found
    }

    fn reverse(&self, networks: &BTreeSet<String>, addr: IpAddr) -> Option<String> {
        let nets = self.nets.read().unwrap_or_else(|p| p.into_inner());
        networks
            .iter()
            .flat_map(|n| nets.get(n).into_iter().flat_map(|m| m.values()))
            .find(|e| e.addrs.contains(&addr))
            .and_then(|e| e.names.first().cloned())
    }
}

/// One sandbox's resolver. Dropping it stops the listeners.
#[derive(Debug)]
pub struct Resolver {
    networks: Arc<RwLock<BTreeSet<String>>>,
    links: Arc<RwLock<BTreeMap<String, String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Shared {
    table: Arc<DnsTable>,
    networks: Arc<RwLock<BTreeSet<String>>>,
    // alias -> endpoint name, for this sandbox only
    links: Arc<RwLock<BTreeMap<String, String>>>,
    upstreams: Vec<SocketAddr>,
    host: NsWorker,
}

impl Resolver {
    /// Start listening on 127.0.0.11:53 in `sandbox` (its loopback must be
    /// up). Forwarded queries leave from `host`'s namespace.
    pub fn start(
        sandbox: &NetNs,
        table: Arc<DnsTable>,
        upstreams: Vec<SocketAddr>,
        host: NsWorker,
    ) -> Result<Self> {
        let addr = SocketAddr::from((RESOLVER_ADDR, 53));
        let (udp, tcp) = sandbox
            .run(|| {
                let udp = std::net::UdpSocket::bind(addr)?;
                udp.set_nonblocking(true)?;
                let tcp = std::net::TcpListener::bind(addr)?;
                tcp.set_nonblocking(true)?;
                Ok::<_, std::io::Error>((udp, tcp))
            })?
            .map_err(|e| {
                Error::io(
                    format!("bind resolver on {addr} in {}", sandbox.path().display()),
                    e,
                )
            })?;
        let udp = tokio::net::UdpSocket::from_std(udp)
            .map_err(|e| Error::io("register resolver socket", e))?;
        let tcp = tokio::net::TcpListener::from_std(tcp)
            .map_err(|e| Error::io("register resolver socket", e))?;
        let networks = Arc::new(RwLock::new(BTreeSet::new()));
        let links = Arc::new(RwLock::new(BTreeMap::new()));
        let shared = Arc::new(Shared {
            table,
            networks: networks.clone(),
            links: links.clone(),
            upstreams,
            host,
        });
        let udp = Arc::new(udp);
        let s = shared.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                let query = buf[..n].to_vec();
                let (s, udp) = (s.clone(), udp.clone());
                tokio::spawn(async move {
                    if let Some(reply) = s.answer(&query, false).await {
                        let _ = udp.send_to(&reply, peer).await;
                    }
                });
            }
        });
        let s = shared;
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = tcp.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if conn.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if conn.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        let Some(reply) = s.answer(&q, true).await else {
                            return;
                        };
                        let Ok(rlen) = u16::try_from(reply.len()) else {
                            return;
                        };
                        if conn.write_all(&rlen.to_be_bytes()).await.is_err()
                            || conn.write_all(&reply).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Resolver {
            networks,
            links,
            tasks: vec![udp_task, tcp_task],
        })
    }

    /// Answer each alias (this sandbox only) with the addresses of the
    /// endpoint it names, looked up at query time.
    pub fn set_links(&self, links: &BTreeMap<String, String>) {
        *self.links.write().unwrap_or_else(|p| p.into_inner()) = links
            .iter()
            .map(|(a, t)| (a.to_ascii_lowercase(), t.to_ascii_lowercase()))
            .collect();
    }

    /// Answer names of `network` from now on.
    pub fn add_network(&self, network: &str) {
        self.networks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(network.to_string());
    }

    /// Stop answering names of `network`.
    pub fn remove_network(&self, network: &str) {
        self.networks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(network);
    }
}

fn normalize(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.trim_end_matches('.').to_string()
}

impl Shared {
    async fn answer(&self, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        let q = msg.queries.first()?.clone();
        let name = normalize(q.name());
        let networks = self
            .networks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut reply = Message::response(msg.metadata.id, msg.metadata.op_code);
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.recursion_desired = msg.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.add_query(q.clone());
        match q.query_type() {
            RecordType::A | RecordType::AAAA => {
                let target = (self.links.read().unwrap_or_else(|p| p.into_inner()))
                    .get(&name)
                    .cloned();
                let name = target.unwrap_or(name);
                if let Some(addrs) = self.table.lookup(&networks, &name) {
                    for a in addrs {
                        let rdata = match (a, q.query_type()) {
                            (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                            _ => continue,
                        };
                        reply.add_answer(Record::from_rdata(q.name().clone(), TTL, rdata));
                    }
                    return reply.to_vec().ok();
                }
            }
            RecordType::PTR => {
                if let Ok(net) = q.name().parse_arpa_name() {
                    if let Some(host) = self.table.reverse(&networks, net.addr()) {
                        if let Ok(target) = Name::from_ascii(format!("{host}.")) {
                            reply.add_answer(Record::from_rdata(
                                q.name().clone(),
                                TTL,
                                RData::PTR(PTR(target)),
                            ));
                            return reply.to_vec().ok();
                        }
                    }
                }
            }
            _ => {}
        }
        match self.forward(query, tcp).await {
            Some(r) => Some(r),
            None => {
                reply.metadata.response_code = ResponseCode::ServFail;
                reply.to_vec().ok()
            }
        }
    }

    async fn forward(&self, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        for up in &self.upstreams {
            let up = *up;
            let res = if tcp {
                self.forward_tcp(up, query).await
            } else {
                self.forward_udp(up, query).await
            };
            match res {
                Ok(r) => return Some(r),
                Err(e) => tracing::debug!(upstream = %up, error = %e, "upstream failed"),
            }
        }
        None
    }

    async fn forward_udp(&self, up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().unwrap_or(up)
        } else {
            "[::]:0".parse().unwrap_or(up)
        };
        let sock = self
            .host
            .run(move || {
                let s = std::net::UdpSocket::bind(bind)?;
                s.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(s)
            })
            .await
            .map_err(std::io::Error::other)??;
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        sock.connect(up).await?;
        sock.send(query).await?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out")
            })??;
        buf.truncate(n);
        Ok(buf)
    }

    async fn forward_tcp(&self, up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
        let conn = self
            .host
            .run(move || {
                let s = std::net::TcpStream::connect_timeout(&up, Duration::from_secs(3))?;
                s.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(s)
            })
            .await
            .map_err(std::io::Error::other)??;
        let mut conn = tokio::net::TcpStream::from_std(conn)?;
        let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
        conn.write_all(&len.to_be_bytes()).await?;
        conn.write_all(query).await?;
        let mut l = [0u8; 2];
        conn.read_exact(&mut l).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(l))];
        conn.read_exact(&mut buf).await?;
        Ok(buf)
    }
}

/// The nameservers of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("nameserver"))
                .then(|| it.next())
                .flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The resolv.conf written for a sandbox that uses the embedded resolver.
pub fn sandbox_resolv_conf(search: &[String]) -> String {
    let mut s = format!("nameserver {RESOLVER_ADDR}\n");
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    s.push_str("options ndots:0\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_scopes_names_to_networks() {
        let t = DnsTable::default();
        t.register(
            "n1",
            "e1",
            vec!["Web".into(), "www".into()],
            vec!["10.0.0.2".parse().unwrap()],
        );
        t.register(
            "n2",
            "e2",
            vec!["db".into()],
            vec!["10.1.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        );
        let only_n1: BTreeSet<String> = ["n1".to_string()].into();
        assert_eq!(
            t.lookup(&only_n1, "web").unwrap(),
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        assert!(
            t.lookup(&only_n1, "db").is_none(),
            "names of other networks are not visible"
        );
        assert_eq!(
            t.reverse(&only_n1, "10.0.0.2".parse().unwrap()).as_deref(),
            Some("web")
        );
        t.unregister("n1", "e1");
        assert!(t.lookup(&only_n1, "www").is_none());
    }

    #[test]
    fn resolv_conf_round_trip() {
        let ups = parse_resolv_conf("# x\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\n");
        assert_eq!(
            ups,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            sandbox_resolv_conf(&[]),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
    }
}
