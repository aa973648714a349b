//! IP address management: the [`Ipam`] trait and the default local
//! allocator with Docker's default pools.
//!
//! Allocations are not written to disk by the allocator: the controller
//! persists networks (pools, gateways, auxiliary addresses) and endpoints
//! (their addresses) and replays them as explicit requests on restart, so
//! any [`Ipam`], remote ones included, comes back without double allocation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A request for an address pool (one subnet of one network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRequest {
    /// The subnet wanted; `None` picks one from the default pools.
    pub subnet: Option<IpNet>,
    /// Allocate dynamic addresses only from this sub-range of `subnet`.
    pub range: Option<IpNet>,
    /// Ask for an IPv6 pool (only used when `subnet` is `None`).
    pub v6: bool,
}

/// A pool handed out by an [`Ipam`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Opaque id used in later requests.
    pub id: String,
    /// The subnet.
    pub subnet: IpNet,
    /// The dynamic range, if narrower than the subnet.
    pub range: Option<IpNet>,
}

/// An IP address manager. Implement it to plug in another allocator; the
/// remote plugin client implements it over Docker's `IpamDriver.*` API.
#[async_trait]
pub trait Ipam: Send + Sync {
    /// The driver's name, as used in network configuration.
    fn name(&self) -> &str;
    /// Whether the allocator keeps its own state across our restarts
    /// (plugins do); if not, the controller replays its allocations.
    fn keeps_state(&self) -> bool {
        false
    }
    /// Reserve a pool.
    async fn request_pool(&self, req: &PoolRequest) -> Result<Pool>;
    /// Give a pool back; its addresses are forgotten.
    async fn release_pool(&self, pool_id: &str) -> Result<()>;
    /// Reserve an address: `preferred` exactly, or the next free one.
    async fn request_address(&self, pool_id: &str, preferred: Option<IpAddr>) -> Result<IpAddr>;
    /// Give an address back.
    async fn release_address(&self, pool_id: &str, addr: IpAddr) -> Result<()>;
}

/// Docker's default local IPv4 pools: 172.17-31.0.0/16 and
/// 192.168.0.0/16 split into /20s.
pub fn default_v4_pools() -> Vec<IpNet> {
    let mut pools: Vec<IpNet> = (17..=31)
        .map(|b| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap_or_default()))
        .collect();
    pools.extend((0..16).map(|i| {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).unwrap_or_default())
    }));
    pools
}

/// A unique local /48 (fdXX:XXXX:XXXX::/48) with a random global id.
pub fn random_ula48() -> Ipv6Net {
    let mut id = [0u8; 5];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut id))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0) as u64;
        id.copy_from_slice(&t.to_be_bytes()[3..8]);
    }
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..6].copy_from_slice(&id);
    Ipv6Net::new(Ipv6Addr::from(b), 48).unwrap_or_default()
}

/// Host addresses in a subnet, as offsets from the network address: IPv4
/// leaves out the network and broadcast addresses (except /31 and /32),
/// IPv6 leaves out the subnet-router anycast address (offset 0).
fn host_span(net: &IpNet) -> (u128, u128) {
    let bits = match net {
        IpNet::V4(_) => 32 - u32::from(net.prefix_len()),
        IpNet::V6(_) => 128 - u32::from(net.prefix_len()),
    };
    let size: u128 = if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    };
    match net {
        IpNet::V4(_) if bits <= 1 => (0, size - 1),
        IpNet::V4(_) => (1, size - 2),
        IpNet::V6(_) if bits == 0 => (0, 0),
        IpNet::V6(_) => (1, size - 1),
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

#[derive(Debug)]
struct PoolState {
    subnet: IpNet,
    range: Option<IpNet>,
    taken: BTreeSet<u128>,
    cursor: u128,
}

impl PoolState {
    fn offset_of(&self, addr: IpAddr) -> Option<u128> {
        if !self.subnet.contains(&addr) {
            return None;
        }
        Some(to_u128(addr) - to_u128(self.subnet.network()))
    }

    fn allocate(&mut self, preferred: Option<IpAddr>) -> Result<IpAddr> {
        let v6 = matches!(self.subnet, IpNet::V6(_));
        let (lo, hi) = host_span(&self.subnet);
        if let Some(addr) = preferred {
            let off = self.offset_of(addr).ok_or_else(|| {
                Error::invalid(
                    "address",
                    format!("{addr} is not in subnet {}", self.subnet),
                )
            })?;
            if off < lo || off > hi {
                return Err(Error::invalid(
                    "address",
                    format!(
                        "{addr} is the network or broadcast address of {}",
                        self.subnet
                    ),
                ));
            }
            if !self.taken.insert(off) {
                return Err(Error::InUse(format!("address {addr} is already allocated")));
            }
            return Ok(addr);
        }
        // The dynamic range, as offsets into the subnet.
        let (rlo, rhi) = match &self.range {
            Some(r) => {
                let base = to_u128(self.subnet.network());
                let start = to_u128(r.network()) - base;
                let (a, b) = host_span(r);
                ((start + a).max(lo), (start + b).min(hi))
            }
            None => (lo, hi),
        };
        if rlo > rhi {
            return Err(Error::Exhausted(format!(
                "no address left in {}",
                self.subnet
            )));
        }
        let span = rhi - rlo + 1;
        let taken_in_range = self.taken.range(rlo..=rhi).count() as u128;
        if taken_in_range >= span {
            return Err(Error::Exhausted(format!(
                "all {span} addresses of {} are allocated",
                self.range.unwrap_or(self.subnet)
            )));
        }
        // Round-robin from the cursor, as Docker does, so a released
        // address is not handed out again at once.
        let mut cand = self.cursor.clamp(rlo, rhi);
        loop {
            if !self.taken.contains(&cand) {
                self.taken.insert(cand);
                self.cursor = if cand == rhi { rlo } else { cand + 1 };
                let base = to_u128(self.subnet.network());
                return Ok(from_u128(v6, base + cand));
            }
            cand = if cand == rhi { rlo } else { cand + 1 };
        }
    }
}

/// The default allocator: Docker's local pools, user subnets and ranges.
#[derive(Debug)]
pub struct LocalIpam {
    v4_defaults: Vec<IpNet>,
    v6_parent: Ipv6Net,
    pools: Mutex<BTreeMap<String, PoolState>>,
}

impl Default for LocalIpam {
    fn default() -> Self {
        Self::new(default_v4_pools(), random_ula48())
    }
}

impl LocalIpam {
    /// An allocator over the given default IPv4 pools and IPv6 parent
    /// prefix (carved into /64s).
    pub fn new(v4_defaults: Vec<IpNet>, v6_parent: Ipv6Net) -> Self {
        LocalIpam {
            v4_defaults,
            v6_parent,
            pools: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PoolState>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn overlap(pools: &BTreeMap<String, PoolState>, net: &IpNet) -> Option<(IpNet, String)> {
        pools.iter().find_map(|(id, p)| {
            (p.subnet.contains(&net.network()) || net.contains(&p.subnet.network()))
                .then(|| (p.subnet, id.clone()))
        })
    }

    fn pick_default(&self, pools: &BTreeMap<String, PoolState>, v6: bool) -> Result<IpNet> {
        if v6 {
            let mut subnets = self
                .v6_parent
                .subnets(64)
                .map_err(|_| Error::invalid("ipam.v6_parent", "prefix longer than /64"))?;
            return subnets
                .find(|s| Self::overlap(pools, &IpNet::V6(*s)).is_none())
                .map(IpNet::V6)
                .ok_or_else(|| Error::Exhausted(format!("no /64 left in {}", self.v6_parent)));
        }
        self.v4_defaults
            .iter()
            .find(|s| Self::overlap(pools, s).is_none())
            .copied()
            .ok_or_else(|| Error::Exhausted("all default IPv4 address pools are in use".into()))
    }
}

#[async_trait]
impl Ipam for LocalIpam {
    fn name(&self) -> &str {
        "default"
    }

    async fn request_pool(&self, req: &PoolRequest) -> Result<Pool> {
        let mut pools = self.lock();
        let subnet = match req.subnet {
            Some(s) => {
                if s.trunc() != s {
                    return Err(Error::invalid(
                        "ipam.subnet",
                        format!("{s} has host bits set (did you mean {}?)", s.trunc()),
                    ));
                }
                if let Some((existing, id)) = Self::overlap(&pools, &s) {
                    return Err(Error::Overlap {
                        requested: s,
                        existing,
                        network: id,
                    });
                }
                s
            }
            None => self.pick_default(&pools, req.v6)?,
        };
        if let Some(r) = req.range {
            if r.trunc() != r
                || !subnet.contains(&r.network())
                || r.prefix_len() < subnet.prefix_len()
            {
                return Err(Error::invalid(
                    "ipam.ip_range",
                    format!("{r} is not a sub-range of {subnet}"),
                ));
            }
        }
        let id = subnet.to_string();
        pools.insert(
            id.clone(),
            PoolState {
                subnet,
                range: req.range,
                taken: BTreeSet::new(),
                cursor: 0,
            },
        );
        Ok(Pool {
            id,
            subnet,
            range: req.range,
        })
    }

    async fn release_pool(&self, pool_id: &str) -> Result<()> {
        self.lock()
            .remove(pool_id)
            .map(|_| ())
            .ok_or_else(|| Error::NotFound {
                kind: "pool",
                name: pool_id.to_string(),
            })
    }

    async fn request_address(&self, pool_id: &str, preferred: Option<IpAddr>) -> Result<IpAddr> {
        let mut pools = self.lock();
        let pool = pools.get_mut(pool_id).ok_or_else(|| Error::NotFound {
            kind: "pool",
            name: pool_id.to_string(),
        })?;
        pool.allocate(preferred)
    }

    async fn release_address(&self, pool_id: &str, addr: IpAddr) -> Result<()> {
        let mut pools = self.lock();
        let pool = pools.get_mut(pool_id).ok_or_else(|| Error::NotFound {
            kind: "pool",
            name: pool_id.to_string(),
        })?;
        let off = pool
            .offset_of(addr)
            .ok_or_else(|| Error::invalid("address", format!("{addr} is not in pool {pool_id}")))?;
        pool.taken.remove(&off);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam() -> LocalIpam {
        LocalIpam::new(default_v4_pools(), "fd00:1:2::/48".parse().unwrap())
    }

    #[tokio::test]
    async fn default_pools_in_docker_order() {
        let ipam = ipam();
        let a = ipam.request_pool(&PoolRequest::default()).await.unwrap();
        let b = ipam.request_pool(&PoolRequest::default()).await.unwrap();
        assert_eq!(a.subnet.to_string(), "172.17.0.0/16");
        assert_eq!(b.subnet.to_string(), "172.18.0.0/16");
        for _ in 0..13 {
            ipam.request_pool(&PoolRequest::default()).await.unwrap();
        }
        let c = ipam.request_pool(&PoolRequest::default()).await.unwrap();
        assert_eq!(c.subnet.to_string(), "192.168.0.0/20");
        let d = ipam.request_pool(&PoolRequest::default()).await.unwrap();
        assert_eq!(d.subnet.to_string(), "192.168.16.0/20");
        let v6 = PoolRequest {
            v6: true,
            ..Default::default()
        };
        let e = ipam.request_pool(&v6).await.unwrap();
        let f = ipam.request_pool(&v6).await.unwrap();
        assert_eq!(e.subnet.to_string(), "fd00:1:2::/64");
        assert_eq!(f.subnet.to_string(), "fd00:1:2:1::/64");
    }

    #[tokio::test]
    async fn default_pools_skip_user_subnets_and_run_out() {
        let ipam = LocalIpam::new(
            vec![
                "10.1.0.0/24".parse().unwrap(),
                "10.2.0.0/24".parse().unwrap(),
            ],
            random_ula48(),
        );
        let user = PoolRequest {
            subnet: Some("10.1.0.0/16".parse().unwrap()),
            ..Default::default()
        };
        ipam.request_pool(&user).await.unwrap();
        let a = ipam.request_pool(&PoolRequest::default()).await.unwrap();
        assert_eq!(a.subnet.to_string(), "10.2.0.0/24");
        let err = ipam
            .request_pool(&PoolRequest::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Exhausted(_)), "{err}");
    }

    #[tokio::test]
    async fn overlapping_subnet_is_refused() {
        let ipam = ipam();
        let req = PoolRequest {
            subnet: Some("10.9.0.0/16".parse().unwrap()),
            ..Default::default()
        };
        ipam.request_pool(&req).await.unwrap();
        let inner = PoolRequest {
            subnet: Some("10.9.3.0/24".parse().unwrap()),
            ..Default::default()
        };
        let err = ipam.request_pool(&inner).await.unwrap_err();
        assert!(err.to_string().contains("overlaps 10.9.0.0/16"), "{err}");
        let bad = PoolRequest {
            subnet: Some("10.8.0.1/16".parse().unwrap()),
            ..Default::default()
        };
        assert!(ipam
            .request_pool(&bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("host bits"));
    }

    #[tokio::test]
    async fn addresses_skip_reserved_and_exhaust() {
        let ipam = ipam();
        let p = ipam
            .request_pool(&PoolRequest {
                subnet: Some("10.0.0.0/30".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        let a = ipam.request_address(&p.id, None).await.unwrap();
        let b = ipam.request_address(&p.id, None).await.unwrap();
        assert_eq!(
            (a.to_string().as_str(), b.to_string().as_str()),
            ("10.0.0.1", "10.0.0.2")
        );
        let err = ipam.request_address(&p.id, None).await.unwrap_err();
        assert!(matches!(err, Error::Exhausted(_)), "{err}");
        ipam.release_address(&p.id, a).await.unwrap();
        assert_eq!(ipam.request_address(&p.id, None).await.unwrap(), a);
        let err = ipam
            .request_address(&p.id, Some("10.0.0.3".parse().unwrap()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("broadcast"), "{err}");
    }

    #[tokio::test]
    async fn static_and_range_allocation() {
        let ipam = ipam();
        let req = PoolRequest {
            subnet: Some("10.5.0.0/16".parse().unwrap()),
            range: Some("10.5.7.0/24".parse().unwrap()),
            v6: false,
        };
        let p = ipam.request_pool(&req).await.unwrap();
        let gw = ipam
            .request_address(&p.id, Some("10.5.0.1".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(gw.to_string(), "10.5.0.1");
        let dynamic = ipam.request_address(&p.id, None).await.unwrap();
        assert_eq!(dynamic.to_string(), "10.5.7.1");
        let err = ipam.request_address(&p.id, Some(gw)).await.unwrap_err();
        assert!(err.to_string().contains("already allocated"), "{err}");
        let bad = PoolRequest {
            subnet: Some("10.6.0.0/16".parse().unwrap()),
            range: Some("10.7.0.0/24".parse().unwrap()),
            v6: false,
        };
        assert!(ipam
            .request_pool(&bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("ipam.ip_range"));
    }

    #[tokio::test]
    async fn round_robin_does_not_reuse_at_once() {
        let ipam = ipam();
        let p = ipam
            .request_pool(&PoolRequest {
                subnet: Some("fd00:9::/64".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        let a = ipam.request_address(&p.id, None).await.unwrap();
        ipam.release_address(&p.id, a).await.unwrap();
        let b = ipam.request_address(&p.id, None).await.unwrap();
        assert_eq!(a.to_string(), "fd00:9::1");
        assert_eq!(b.to_string(), "fd00:9::2");
    }
}
