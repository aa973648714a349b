//! Ethernet (MAC) addresses of endpoint interfaces.
//!
//! The interface is created with its address already set, in the same
//! netlink request that creates it inside the sandbox (as netavark does),
//! so the container never sees another address, not even briefly. When
//! none is asked for, one is picked at random here (locally administered,
//! unicast: what the kernel would pick), so the endpoint knows it without
//! asking the kernel afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A 48-bit MAC address. Stored as six bytes (also in the persisted
/// endpoint records); shown as `02:42:ac:11:00:02`.
///
/// ```
/// use libnetwork::MacAddress;
/// let mac: MacAddress = "02:42:AC:11:00:99".parse().unwrap();
/// assert_eq!(mac.to_string(), "02:42:ac:11:00:99");
/// assert!("02:42:zz:11:00:99".parse::<MacAddress>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The six bytes.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// A group (multicast or broadcast) address: never an interface's.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// All zeros: no address at all.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }

    /// A random locally administered unicast address.
    pub fn random() -> Result<MacAddress> {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b)
            .map_err(|e| Error::io("random MAC address", std::io::Error::other(e.to_string())))?;
        b[0] = (b[0] & 0xfe) | 0x02;
        Ok(MacAddress(b))
    }

    /// Check that an interface can have this address; `field` names the
    /// setting in the error.
    pub fn validate(self, field: &str) -> Result<()> {
        if self.is_multicast() {
            return Err(Error::invalid(
                field,
                format!("{self} is a multicast address, not an interface's"),
            ));
        }
        if self.is_zero() {
            return Err(Error::invalid(field, "00:00:00:00:00:00 is no address"));
        }
        Ok(())
    }
}

impl From<[u8; 6]> for MacAddress {
    fn from(b: [u8; 6]) -> Self {
        MacAddress(b)
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddress {
    type Err = Error;

    /// The 48-bit forms Go's `net.ParseMAC` (and so Docker) accepts:
    /// `02:42:ac:11:00:02`, `02-42-ac-11-00-02` and `0242.ac11.0002`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("mac", format!("{s:?} is not a MAC address"));
        let hex: String = if s.len() == 14 && s.as_bytes()[4] == b'.' && s.as_bytes()[9] == b'.' {
            s.split('.').collect()
        } else if s.len() == 17 {
            let sep = s.as_bytes()[2];
            if sep != b':' && sep != b'-' {
                return Err(bad());
            }
            let groups: Vec<&str> = s.split(sep as char).collect();
            if groups.len() != 6 || groups.iter().any(|g| g.len() != 2) {
                return Err(bad());
            }
            groups.concat()
        } else {
            return Err(bad());
        };
        if hex.len() != 12 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut b = [0u8; 6];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(MacAddress(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms_and_rejects_the_rest() {
        let want = MacAddress([0x02, 0x42, 0xac, 0x11, 0x00, 0x99]);
        for s in ["02:42:ac:11:00:99", "02-42-AC-11-00-99", "0242.ac11.0099"] {
            assert_eq!(s.parse::<MacAddress>().unwrap(), want, "{s}");
        }
        for s in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:9",
            "02:42:ac:11:00:999",
            "02:42-ac:11:00:99",
            "02:42:ac:11:00:zz",
            "0242.ac11.00zz",
            "+2:42:ac:11:00:99",
            "02:42:ac:11:00:99:00:00",
        ] {
            let e = s.parse::<MacAddress>().unwrap_err().to_string();
            assert!(e.contains(&format!("{s:?}")), "{s}: {e}");
        }
    }

    #[test]
    fn validation_and_random_addresses() {
        let multicast: MacAddress = "01:00:5e:00:00:01".parse().unwrap();
        let e = multicast.validate("endpoint.mac").unwrap_err().to_string();
        assert!(e.contains("endpoint.mac") && e.contains("multicast"), "{e}");
        assert!(MacAddress([0; 6]).validate("m").is_err());
        for _ in 0..32 {
            let r = MacAddress::random().unwrap();
            assert!(r.validate("m").is_ok(), "{r}");
            assert_eq!(r.0[0] & 0x02, 0x02, "locally administered: {r}");
        }
        assert_ne!(MacAddress::random().unwrap(), MacAddress::random().unwrap());
    }

    #[test]
    fn persisted_as_six_bytes() {
        let m = MacAddress([2, 0x42, 0xac, 0x11, 0, 2]);
        assert_eq!(serde_json::to_string(&m).unwrap(), "[2,66,172,17,0,2]");
        let back: MacAddress = serde_json::from_str("[2,66,172,17,0,2]").unwrap();
        assert_eq!(back, m);
    }
}
