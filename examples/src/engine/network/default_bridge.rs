//! The default `bridge` network as dockerd's daemon flags shape it:
//! `--ipv6` with `--fixed-cidr-v6 SUBNET` gives its containers an IPv6
//! address from SUBNET too (published ports then answer on both
//! families; berthd's nftables backend covers what dockerd's
//! `--ip6tables` adds).

use std::net::Ipv6Addr;

/// A bad daemon flag, named as the user typed it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    /// `--fixed-cidr-v6` is not an IPv6 CIDR.
    #[error("--fixed-cidr-v6: {value:?} is not an IPv6 subnet (want ADDR/PREFIX, e.g. fd00:dead:beef::/64)")]
    NotIpv6Subnet {
        /// The value given.
        value: String,
    },
    /// `--ipv6` without a subnet (dockerd 27 refuses it the same way).
    #[error("--ipv6: IPv6 is enabled for the default bridge, but no subnet is configured. Specify an IPv6 subnet using --fixed-cidr-v6")]
    NoSubnet,
    /// `--fixed-cidr-v6` without `--ipv6` would silently do nothing.
    #[error("--fixed-cidr-v6 {value} needs --ipv6")]
    NotEnabled {
        /// The value given.
        value: String,
    },
}

/// How berthd makes the default `bridge` network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultBridge {
    /// The IPv6 subnet (`ADDR/PREFIX`, host bits cleared), when IPv6 is on.
    pub ipv6_subnet: Option<String>,
}

impl DefaultBridge {
    /// From `--ipv6` and `--fixed-cidr-v6`.
    ///
    /// ```
    /// use examples::engine::network::default_bridge::DefaultBridge;
    /// let b = DefaultBridge::from_flags(true, Some("fd00:dead:beef::1/64")).unwrap();
    /// assert_eq!(b.ipv6_subnet.as_deref(), Some("fd00:dead:beef::/64"));
    /// ```
    pub fn from_flags(ipv6: bool, fixed_cidr_v6: Option<&str>) -> Result<Self, FlagError> {
        match (ipv6, fixed_cidr_v6) {
            (false, None) => Ok(Self::default()),
            (false, Some(v)) => Err(FlagError::NotEnabled { value: v.into() }),
            (true, None) => Err(FlagError::NoSubnet),
            (true, Some(v)) => Ok(Self {
                ipv6_subnet: Some(parse_v6_subnet(v)?),
            }),
        }
    }
}

/// `ADDR/PREFIX` for an IPv6 ADDR and a PREFIX of at most 120 (room for
/// the gateway and containers), host bits cleared as Docker shows it.
fn parse_v6_subnet(v: &str) -> Result<String, FlagError> {
    let bad = || FlagError::NotIpv6Subnet { value: v.into() };
    let (addr, len) = v.split_once('/').ok_or_else(bad)?;
    let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if !(1..=120).contains(&len) {
        return Err(bad());
    }
    let mask = u128::MAX << (128 - len);
    let net = Ipv6Addr::from(u128::from(addr) & mask);
    Ok(format!("{net}/{len}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_the_subnet_or_an_error_naming_the_flag() {
        assert_eq!(
            DefaultBridge::from_flags(false, None).unwrap(),
            DefaultBridge::default()
        );
        let b = DefaultBridge::from_flags(true, Some("fd00:dead:beef::/64")).unwrap();
        assert_eq!(b.ipv6_subnet.as_deref(), Some("fd00:dead:beef::/64"));
        let b = DefaultBridge::from_flags(true, Some("fd00:1:2:3:4:5::9/80")).unwrap();
        assert_eq!(b.ipv6_subnet.as_deref(), Some("fd00:1:2:3:4::/80"));
        for bad in [
            "10.0.0.0/8",
            "fd00::",
            "fd00::/129",
            "fd00::/0",
            "fd00::/x",
            "zz::/64",
        ] {
            let e = DefaultBridge::from_flags(true, Some(bad)).unwrap_err();
            assert!(e.to_string().starts_with("--fixed-cidr-v6: "), "{bad}: {e}");
        }
        let e = DefaultBridge::from_flags(true, None).unwrap_err();
        assert!(e.to_string().starts_with("--ipv6: "), "{e}");
        let e = DefaultBridge::from_flags(false, Some("fd00::/64")).unwrap_err();
        assert_eq!(e.to_string(), "--fixed-cidr-v6 fd00::/64 needs --ipv6");
    }
}
