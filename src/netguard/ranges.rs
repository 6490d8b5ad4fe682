//! Address classification: which special-purpose range an address sits in, which IPv4
//! address an IPv6 address carries, and which addresses are cloud metadata endpoints.
//!
//! Stance: anything not plainly public is classified. IPv6 outside global unicast
//! (`2000::/3`) is reserved unless a narrower category applies, so a range nobody listed is
//! refused rather than reached.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why an address is refused. Shown to agents, so it names a range, never an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    CloudMetadata,
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    UniqueLocal,
    SiteLocal,
    ProtocolAssignments,
    Documentation,
    Benchmarking,
    Multicast,
    Broadcast,
    Reserved,
    Teredo,
    Nat64LocalUse,
    /// An address of the machine the broker runs on, whatever its range.
    ThisMachine,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudMetadata => "cloud metadata",
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private (RFC 1918)",
            Self::LinkLocal => "link-local",
            Self::SharedAddressSpace => "shared address space (CGNAT)",
            Self::UniqueLocal => "unique local (IPv6)",
            Self::SiteLocal => "site-local (IPv6)",
            Self::ProtocolAssignments => "IETF protocol assignments",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::Teredo => "Teredo tunnel",
            Self::Nat64LocalUse => "local-use NAT64",
            Self::ThisMachine => "this machine's own address",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Instance metadata services hand out cloud credentials to whoever asks from the host.
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, DigitalOcean, …
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task credentials
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer: public-looking, host-local in Azure
];

const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), // AWS (Nitro)
    Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),  // GCP (IPv6-only instances)
];

/// First match wins, so the broadcast host precedes the reserved 240/4 block.
const V4_RANGES: [(Ipv4Addr, u8, Category); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8, Category::Unspecified),
    (Ipv4Addr::new(127, 0, 0, 0), 8, Category::Loopback),
    (Ipv4Addr::new(10, 0, 0, 0), 8, Category::Private),
    (Ipv4Addr::new(172, 16, 0, 0), 12, Category::Private),
    (Ipv4Addr::new(192, 168, 0, 0), 16, Category::Private),
    (Ipv4Addr::new(169, 254, 0, 0), 16, Category::LinkLocal),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        Category::SharedAddressSpace,
    ),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        Category::ProtocolAssignments,
    ),
    (Ipv4Addr::new(192, 0, 2, 0), 24, Category::Documentation),
    (Ipv4Addr::new(198, 51, 100, 0), 24, Category::Documentation),
    (Ipv4Addr::new(203, 0, 113, 0), 24, Category::Documentation),
    (Ipv4Addr::new(198, 18, 0, 0), 15, Category::Benchmarking),
    (Ipv4Addr::new(224, 0, 0, 0), 4, Category::Multicast),
    (Ipv4Addr::new(255, 255, 255, 255), 32, Category::Broadcast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, Category::Reserved),
];

/// Only for IPv6 addresses that carry no IPv4 address (see [`embedded_v4`]).
const V6_RANGES: [(Ipv6Addr, u8, Category); 11] = [
    (Ipv6Addr::UNSPECIFIED, 128, Category::Unspecified),
    (Ipv6Addr::LOCALHOST, 128, Category::Loopback),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        Category::Teredo,
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        Category::Nat64LocalUse,
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        Category::Documentation,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        Category::Documentation,
    ),
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        Category::Benchmarking,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        Category::LinkLocal,
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        Category::SiteLocal,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        Category::UniqueLocal,
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        Category::Multicast,
    ),
];

const GLOBAL_UNICAST: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// The range `ip` belongs to, or `None` for an ordinary public address. An IPv6 address that
/// carries an IPv4 address is judged as that IPv4 address: that is where packets end up.
pub(super) fn classify(ip: IpAddr) -> Option<Category> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Category> {
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, category)| *category)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Category> {
    let listed = V6_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, category)| *category);
    match listed {
        Some(category) => Some(category),
        None if !in_v6(ip, GLOBAL_UNICAST.0, GLOBAL_UNICAST.1) => Some(Category::Reserved),
        None => None,
    }
}

/// The IPv4 address an IPv6 address deterministically leads to, if any.
pub(super) fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let last32 = || Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // IPv4-mapped ::ffff:a.b.c.d: dual-stack sockets send these as plain IPv4.
    if in_v6(ip, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) {
        return Some(last32());
    }
    // IPv4-compatible ::a.b.c.d (deprecated). `::` and `::1` are IPv6's own unspecified and
    // loopback addresses, not embeddings.
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96)
        && ip != Ipv6Addr::UNSPECIFIED
        && ip != Ipv6Addr::LOCALHOST
    {
        return Some(last32());
    }
    // NAT64 well-known prefix 64:ff9b::/96: the translator forwards to the last 32 bits.
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return Some(last32());
    }
    // 6to4 2002:AABB:CCDD::/48: the relay tunnels to AA.BB.CC.DD (bits 16..48).
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// True when `ip` is, or may lead to, a cloud metadata endpoint. Over-inclusive on purpose:
/// a false match only refuses an odd tunnel address, a miss leaks cloud credentials.
pub(super) fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => METADATA_V4.contains(&v4),
        IpAddr::V6(v6) => {
            METADATA_V6.contains(&v6)
                || embedded_v4(v6).is_some_and(|v4| METADATA_V4.contains(&v4))
                || possible_v4(v6).iter().any(|v4| METADATA_V4.contains(v4))
        }
    }
}

/// IPv4 addresses an IPv6 address might lead to without a single defined mapping.
fn possible_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let o = ip.octets();
    let v4 = |a: usize, b: usize, c: usize, d: usize| Ipv4Addr::new(o[a], o[b], o[c], o[d]);
    // Teredo 2001::/32 carries the server at bits 32..64 and the client, inverted, in the
    // last 32 bits.
    if in_v6(ip, Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32) {
        let client = Ipv4Addr::from(!u32::from(v4(12, 13, 14, 15)));
        return vec![v4(4, 5, 6, 7), client];
    }
    // Local-use NAT64 64:ff9b:1::/48: the operator picks the prefix length (/48 to /96), and
    // RFC 6052 places the IPv4 address differently for each, skipping octet 8.
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) {
        return vec![
            v4(6, 7, 9, 10),
            v4(7, 9, 10, 11),
            v4(9, 10, 11, 12),
            v4(12, 13, 14, 15),
        ];
    }
    Vec::new()
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    Ipv4Net::new(net, prefix).is_ok_and(|net| net.contains(&ip))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    Ipv6Net::new(net, prefix).is_ok_and(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn embeddings_extract_the_right_bits() {
        let ten = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(embedded_v4(v6("::ffff:10.0.0.1")), ten);
        assert_eq!(embedded_v4(v6("::10.0.0.1")), ten);
        assert_eq!(embedded_v4(v6("64:ff9b::a00:1")), ten);
        assert_eq!(embedded_v4(v6("2002:a00:1:1234::5")), ten);
        assert_eq!(embedded_v4(v6("::")), None);
        assert_eq!(embedded_v4(v6("::1")), None);
        assert_eq!(embedded_v4(v6("2606:4700::1111")), None);
        // Only the /96 of the NAT64 well-known prefix has a defined position.
        assert_eq!(embedded_v4(v6("64:ff9b:0:0:1::a00:1")), None);
    }

    #[test]
    fn teredo_and_local_nat64_reach_metadata() {
        // Client 169.254.169.254 inverted is 5601:5601.
        assert!(is_metadata(IpAddr::V6(v6(
            "2001:0:4136:e378:8000:63bf:5601:5601"
        ))));
        // Server field 169.254.169.254.
        assert!(is_metadata(IpAddr::V6(v6("2001:0:a9fe:a9fe::1"))));
        assert!(!is_metadata(IpAddr::V6(v6(
            "2001:0:4136:e378:8000:63bf:3fff:fdd2"
        ))));
        // Local-use NAT64 with a /96 and with a /64 (octet 8 skipped).
        assert!(is_metadata(IpAddr::V6(v6("64:ff9b:1::a9fe:a9fe"))));
        assert!(is_metadata(IpAddr::V6(v6("64:ff9b:1:0:a9:fea9:fe00:0"))));
    }

    #[test]
    fn unlisted_ipv6_outside_global_unicast_is_reserved() {
        assert_eq!(classify(IpAddr::V6(v6("100::1"))), Some(Category::Reserved));
        assert_eq!(
            classify(IpAddr::V6(v6("::ffff:0:808:808"))),
            Some(Category::Reserved)
        );
        assert_eq!(
            classify(IpAddr::V6(v6("64:ff9b:1::808:808"))),
            Some(Category::Nat64LocalUse)
        );
        assert_eq!(classify(IpAddr::V6(v6("2001:4860::8888"))), None);
    }
}
