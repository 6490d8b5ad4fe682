//! A CIDR block (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) for the allowlist: an
//! `ipnet` block read with stricter syntax (a bare address is a single host; the prefix is
//! plain digits).
//!
//! Host bits are cleared on construction, so `10.1.2.3/16` means `10.1.0.0/16`. A block only
//! ever contains addresses of its own family: relating IPv4 to IPv6 embeddings is the policy's
//! job, not this type's.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("not an IP address")]
    Address,
    #[error("prefix length must be a number from 0 to {max}")]
    Prefix { max: u8 },
}

/// An address block: every address whose first `prefix` bits equal those of `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// A block of `prefix` leading bits; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        IpNet::new(addr, prefix)
            .map(|net| Self(net.trunc()))
            .map_err(|_| CidrError::Prefix {
                max: max_prefix(addr),
            })
    }

    /// A block holding exactly one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        Self(IpNet::from(addr))
    }

    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// True for `0.0.0.0/0` and `::/0`: the block holds its whole address family.
    pub fn is_everything(&self) -> bool {
        self.0.prefix_len() == 0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
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
        // Plain digits only: no sign, no padding beyond three digits.
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::Prefix { max });
        }
        let prefix = prefix.parse().map_err(|_| CidrError::Prefix { max })?;
        Self::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
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
