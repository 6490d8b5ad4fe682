//! A minimal CIDR block (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) for the allowlist.
//!
//! Host bits are cleared on construction, so `10.1.2.3/16` means `10.1.0.0/16`. A block only
//! ever contains addresses of its own family: relating IPv4 to IPv6 embeddings is the policy's
//! job, not this type's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("not an IP address")]
    Address,
    #[error("prefix length must be a number from 0 to {max}")]
    Prefix { max: u8 },
}

/// An address block: every address whose first `prefix` bits equal those of `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A block of `prefix` leading bits; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::Prefix { max });
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        Ok(Self { addr, prefix })
    }

    /// A block holding exactly one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for `0.0.0.0/0` and `::/0`: the block holds its whole address family.
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return s.parse().map(Self::host).map_err(|_| CidrError::Address);
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Address)?;
        let max = max_prefix(addr);
        // `u8::from_str` accepts a leading `+`; a prefix is plain digits only.
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::Prefix { max });
        }
        let prefix = prefix.parse().map_err(|_| CidrError::Prefix { max })?;
        Self::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The network mask for `prefix` leading bits; `checked_shl` covers the /0 case, where a
/// plain shift by the full width would overflow.
pub(super) fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

pub(super) fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        assert_eq!(cidr("10.0.0.1").prefix(), 32);
        assert_eq!(cidr("::1").prefix(), 128);
        assert!(cidr("10.0.0.1").contains(ip("10.0.0.1")));
        assert!(!cidr("10.0.0.1").contains(ip("10.0.0.2")));
    }

    #[test]
    fn host_bits_are_cleared() {
        let c = cidr("10.1.2.3/16");
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert!(c.contains(ip("10.1.255.255")));
        assert!(!c.contains(ip("10.2.0.0")));
        assert_eq!(cidr("2001:db8:1:2::5/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn boundaries() {
        let c = cidr("172.16.0.0/12");
        assert!(c.contains(ip("172.16.0.0")));
        assert!(c.contains(ip("172.31.255.255")));
        assert!(!c.contains(ip("172.32.0.0")));
        assert!(!c.contains(ip("172.15.255.255")));
        let c = cidr("fe80::/10");
        assert!(c.contains(ip("febf::1")));
        assert!(!c.contains(ip("fec0::1")));
    }

    #[test]
    fn zero_prefix_holds_one_family() {
        assert!(cidr("0.0.0.0/0").is_everything());
        assert!(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::/0").contains(ip("ffff::1")));
        assert!(!cidr("::/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn families_never_mix() {
        assert!(!cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0",
            "example.com",
            "10.0.0.0/ 8",
            "[::1]",
            "10.0.0.0/0008",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix { max: 32 })
        );
    }
}
