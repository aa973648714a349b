//! Small rtnetlink helpers shared by the drivers.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::AddressHeaderFlags;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::error::{Error, Result};

/// The errno of a netlink error answer, if that is what `e` is.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The index of link `name`, or `None` if there is no such link.
pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(format!("get link {name}"), e)),
    }
}

/// The index of link `name`, which must exist.
pub async fn require_link(h: &Handle, name: &str) -> Result<u32> {
    link_index(h, name).await?.ok_or_else(|| Error::NotFound {
        kind: "interface",
        name: name.to_string(),
    })
}

/// Add `addr` to link `index`; IPv6 addresses skip duplicate address
/// detection so that they are usable at once.
pub async fn add_address(h: &Handle, index: u32, addr: IpNet) -> Result<()> {
    let mut req = h.address().add(index, addr.addr(), addr.prefix_len());
    if addr.addr().is_ipv6() {
        req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(format!("add address {addr}"), e)),
    }
}

/// Delete `addr` from link `index` (absent is fine).
pub async fn del_address(h: &Handle, index: u32, addr: IpNet) -> Result<()> {
    let msg = match addr.addr() {
        IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(a, addr.prefix_len())
            .build(),
        IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(a, addr.prefix_len())
            .build(),
    };
    match h.address().del(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if matches!(errno(&e), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) => Ok(()),
        Err(e) => Err(Error::netlink(format!("delete address {addr}"), e)),
    }
}

/// Add a default route via `gw` (an existing default route is kept: the
/// first network joined provides it, as in Docker).
pub async fn add_default_route(h: &Handle, gw: IpAddr, oif: Option<u32>) -> Result<()> {
    let mut msg = match gw {
        IpAddr::V4(g) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(g)
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .gateway(g)
            .build(),
    };
    if let Some(i) = oif {
        msg.attributes
            .push(netlink_packet_route::route::RouteAttribute::Oif(i));
    }
    match h.route().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(format!("add default route via {gw}"), e)),
    }
}

/// Bring link `index` up.
pub async fn link_up(h: &Handle, index: u32) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("set link {index} up"), e))
}

/// Delete link `name` (absent is fine).
pub async fn del_link_by_name(h: &Handle, name: &str) -> Result<()> {
    let msg = LinkUnspec::new_with_name(name).build();
    match h.link().del_with_message(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(Error::netlink(format!("delete link {name}"), e)),
    }
}

/// Bring link `index` up, add `addrs` and default routes via `gateways`
/// and settle its carrier state (see [`sync_link`]),
/// pipelined: the requests go out back to back on one socket and the
/// kernel handles them in order, so this costs about one round trip.
pub async fn configure(h: &Handle, index: u32, addrs: &[IpNet], gateways: &[IpAddr]) -> Result<()> {
    let mut steps: Vec<futures::future::BoxFuture<'_, Result<()>>> =
        vec![Box::pin(link_up(h, index))];
    for a in addrs {
        steps.push(Box::pin(add_address(h, index, *a)));
    }
    for gw in gateways {
        steps.push(Box::pin(add_default_route(h, *gw, Some(index))));
    }
    steps.push(Box::pin(sync_link(h, index)));
    futures::future::try_join_all(steps).await.map(|_| ())
}

/// Ask for one link by index. Besides reading it, a non-dump RTM_GETLINK
/// makes the kernel process the link's pending carrier change at once
/// (`linkwatch_sync_dev`) instead of on a workqueue later: without it the
/// first packets after a join can be dropped by a still inactive qdisc or
/// a bridge port that is not forwarding yet.
pub async fn sync_link(h: &Handle, index: u32) -> Result<()> {
    let mut links = h.link().get().match_index(index).execute();
    links
        .try_next()
        .await
        .map(|_| ())
        .map_err(|e| Error::netlink(format!("get link {index}"), e))
}
