//! The deny policy for upstream addresses, and its configuration from the environment.
//!
//! Stance: cloud metadata endpoints are refused unconditionally. Every other special-purpose
//! range is refused unless the operator opts in, either wholesale
//! (`AGENT_VAULT_ALLOW_PRIVATE_RANGES`) or per block (`AGENT_VAULT_NETWORK_ALLOWLIST`).
//! Misconfiguration never widens access: a bad value is ignored with a warning.

use std::env::VarError;
use std::net::IpAddr;

use super::cidr::Cidr;
use super::ranges::{self, Category};

pub const ALLOW_PRIVATE_ENV: &str = "AGENT_VAULT_ALLOW_PRIVATE_RANGES";
pub const ALLOWLIST_ENV: &str = "AGENT_VAULT_NETWORK_ALLOWLIST";

/// A refused address. Its message names the range only, so an agent probing the network
/// learns nothing about which addresses a name resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("blocked by network policy ({category})")]
pub struct Blocked {
    category: Category,
}

impl Blocked {
    pub fn category(&self) -> Category {
        self.category
    }
}

/// Which upstream addresses the broker may dial. The default refuses every special range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    allow_private: bool,
    allowlist: Vec<Cidr>,
}

impl NetworkPolicy {
    pub fn new(allow_private: bool, allowlist: Vec<Cidr>) -> Self {
        Self {
            allow_private,
            allowlist,
        }
    }

    /// Reads the policy from the process environment; the strings are warnings to log.
    pub fn from_env() -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let allow_private = env_value(ALLOW_PRIVATE_ENV, &mut warnings);
        let allowlist = env_value(ALLOWLIST_ENV, &mut warnings);
        let (policy, more) = Self::from_values(&allow_private, &allowlist);
        warnings.extend(more);
        (policy, warnings)
    }

    /// Builds the policy from the two variables' values (empty when unset).
    pub fn from_values(allow_private: &str, allowlist: &str) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let allow_private = parse_flag(allow_private, &mut warnings);
        let allowlist = parse_allowlist(allowlist, &mut warnings);
        (Self::new(allow_private, allowlist), warnings)
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    pub fn allowlist(&self) -> &[Cidr] {
        &self.allowlist
    }

    /// Whether the broker may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        // Metadata first: neither the allowlist nor the private-range switch reaches it.
        if ranges::is_metadata(ip) {
            return Err(Blocked {
                category: Category::CloudMetadata,
            });
        }
        let Some(category) = ranges::classify(ip) else {
            return Ok(());
        };
        if self.is_allowlisted(ip) {
            return Ok(());
        }
        // Teredo is a tunnel to an arbitrary client, not a private range: only an explicit
        // allowlist entry opens it.
        if self.allow_private && category != Category::Teredo {
            return Ok(());
        }
        Err(Blocked { category })
    }

    /// Whether a connection made from `local` to `peer` may be used. The broker's own machine
    /// is reached on any address it holds, public ones included (a public IP on a server's
    /// interface, a bridge Docker made in a public range), and its services listening on all
    /// addresses would answer there: the kernel picks that same address as the source of a
    /// connection to one of its own, which is how such a connection shows.
    pub fn check_connected(&self, local: IpAddr, peer: IpAddr) -> Result<(), Blocked> {
        let this_machine = local.to_canonical() == peer.to_canonical();
        if !this_machine || self.allow_private || self.is_allowlisted(peer) {
            return Ok(());
        }
        Err(Blocked {
            category: Category::ThisMachine,
        })
    }

    /// An entry matches the address as given or the IPv4 address it carries, so allowing
    /// `10.1.0.0/16` also allows `::ffff:10.1.2.3` and `64:ff9b::a01:203`.
    fn is_allowlisted(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V4(_) => None,
            IpAddr::V6(v6) => ranges::embedded_v4(v6).map(IpAddr::V4),
        };
        self.allowlist
            .iter()
            .any(|cidr| cidr.contains(ip) || embedded.is_some_and(|v4| cidr.contains(v4)))
    }
}

fn env_value(name: &str, warnings: &mut Vec<String>) -> String {
    match std::env::var(name) {
        Ok(value) => value,
        Err(VarError::NotPresent) => String::new(),
        Err(VarError::NotUnicode(_)) => {
            warnings.push(format!("{name} is not valid UTF-8; ignoring it"));
            String::new()
        }
    }
}

fn parse_flag(value: &str, warnings: &mut Vec<String>) -> bool {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => true,
        "" | "false" | "0" | "no" | "off" => false,
        _ => {
            warnings.push(format!(
                "{ALLOW_PRIVATE_ENV}={value:?} is not true or false; private ranges stay blocked"
            ));
            false
        }
    }
}

fn parse_allowlist(value: &str, warnings: &mut Vec<String>) -> Vec<Cidr> {
    let mut allowlist = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.parse::<Cidr>() {
            Ok(cidr) => {
                if cidr.is_everything() {
                    warnings.push(format!(
                        "{ALLOWLIST_ENV} entry {cidr} allows every address of its family except \
                         cloud metadata endpoints"
                    ));
                }
                allowlist.push(cidr);
            }
            Err(e) => warnings.push(format!(
                "{ALLOWLIST_ENV}: skipping invalid entry {entry:?} ({e})"
            )),
        }
    }
    allowlist
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `None` is allowed; `Some(category)` is blocked with that category.
    type Verdict = Option<Category>;
    const OK: Verdict = None;
    const METADATA: Verdict = Some(Category::CloudMetadata);
    const LOOPBACK: Verdict = Some(Category::Loopback);
    const UNSPECIFIED: Verdict = Some(Category::Unspecified);
    const PRIVATE: Verdict = Some(Category::Private);
    const LINK_LOCAL: Verdict = Some(Category::LinkLocal);
    const CGNAT: Verdict = Some(Category::SharedAddressSpace);
    const ULA: Verdict = Some(Category::UniqueLocal);
    const MULTICAST: Verdict = Some(Category::Multicast);
    const BROADCAST: Verdict = Some(Category::Broadcast);
    const BENCHMARKING: Verdict = Some(Category::Benchmarking);
    const DOCUMENTATION: Verdict = Some(Category::Documentation);
    const PROTOCOL: Verdict = Some(Category::ProtocolAssignments);
    const RESERVED: Verdict = Some(Category::Reserved);
    const SITE_LOCAL: Verdict = Some(Category::SiteLocal);
    const TEREDO: Verdict = Some(Category::Teredo);

    /// Address, then the verdict under the default policy, under `allow_private`, and under
    /// an allowlist of 127.0.0.0/8 and 10.1.0.0/16.
    const TABLE: &[(&str, Verdict, Verdict, Verdict)] = &[
        ("8.8.8.8", OK, OK, OK),
        ("1.1.1.1", OK, OK, OK),
        ("127.0.0.1", LOOPBACK, OK, OK),
        ("10.1.2.3", PRIVATE, OK, OK),
        ("10.2.0.1", PRIVATE, OK, PRIVATE),
        ("172.16.0.1", PRIVATE, OK, PRIVATE),
        ("172.32.0.1", OK, OK, OK),
        ("192.168.1.1", PRIVATE, OK, PRIVATE),
        ("169.254.169.254", METADATA, METADATA, METADATA),
        ("169.254.170.2", METADATA, METADATA, METADATA),
        ("100.100.100.200", METADATA, METADATA, METADATA),
        ("169.254.1.1", LINK_LOCAL, OK, LINK_LOCAL),
        ("100.64.0.1", CGNAT, OK, CGNAT),
        ("100.128.0.1", OK, OK, OK),
        ("0.0.0.0", UNSPECIFIED, OK, UNSPECIFIED),
        ("0.1.2.3", UNSPECIFIED, OK, UNSPECIFIED),
        ("::", UNSPECIFIED, OK, UNSPECIFIED),
        ("::1", LOOPBACK, OK, LOOPBACK),
        ("fe80::1", LINK_LOCAL, OK, LINK_LOCAL),
        ("fc00::1", ULA, OK, ULA),
        ("fd12::1", ULA, OK, ULA),
        ("2606:4700::1111", OK, OK, OK),
        ("::ffff:127.0.0.1", LOOPBACK, OK, OK),
        ("::ffff:8.8.8.8", OK, OK, OK),
        ("::ffff:10.1.2.3", PRIVATE, OK, OK),
        ("::127.0.0.1", LOOPBACK, OK, OK),
        ("64:ff9b::a00:1", PRIVATE, OK, PRIVATE),
        ("64:ff9b::808:808", OK, OK, OK),
        ("2002:0a00:0001::", PRIVATE, OK, PRIVATE),
        ("2002:0808:0808::", OK, OK, OK),
        ("fd00:ec2::254", METADATA, METADATA, METADATA),
        ("::ffff:169.254.169.254", METADATA, METADATA, METADATA),
        ("64:ff9b::a9fe:a9fe", METADATA, METADATA, METADATA),
        ("2002:a9fe:a9fe::1", METADATA, METADATA, METADATA),
        ("192.0.0.192", METADATA, METADATA, METADATA),
        ("192.0.0.8", PROTOCOL, OK, PROTOCOL),
        ("224.0.0.1", MULTICAST, OK, MULTICAST),
        ("ff02::1", MULTICAST, OK, MULTICAST),
        ("255.255.255.255", BROADCAST, OK, BROADCAST),
        ("240.0.0.1", RESERVED, OK, RESERVED),
        ("198.18.0.1", BENCHMARKING, OK, BENCHMARKING),
        ("203.0.113.7", DOCUMENTATION, OK, DOCUMENTATION),
        ("2001:db8::1", DOCUMENTATION, OK, DOCUMENTATION),
        ("fec0::1", SITE_LOCAL, OK, SITE_LOCAL),
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            TEREDO,
            TEREDO,
            TEREDO,
        ),
    ];

    fn verdict(policy: &NetworkPolicy, ip: &str) -> Verdict {
        let ip: IpAddr = ip.parse().unwrap();
        policy.check(ip).err().map(|b| b.category())
    }

    #[test]
    fn address_table() {
        let default = NetworkPolicy::default();
        let private = NetworkPolicy::new(true, Vec::new());
        let listed = NetworkPolicy::new(
            false,
            vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
        );
        for &(ip, by_default, with_private, with_allowlist) in TABLE {
            assert_eq!(
                verdict(&default, ip),
                by_default,
                "{ip} under the default policy"
            );
            assert_eq!(
                verdict(&private, ip),
                with_private,
                "{ip} with allow_private"
            );
            assert_eq!(
                verdict(&listed, ip),
                with_allowlist,
                "{ip} with the allowlist"
            );
        }
    }

    #[test]
    fn metadata_survives_an_allow_everything_allowlist() {
        let (policy, _) = NetworkPolicy::from_values("true", "0.0.0.0/0, ::/0, 169.254.169.254");
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "192.0.0.192",
        ] {
            assert_eq!(verdict(&policy, ip), METADATA, "{ip}");
        }
        assert_eq!(verdict(&policy, "10.0.0.1"), OK);
    }

    #[test]
    fn teredo_opens_only_by_allowlist() {
        let (policy, warnings) = NetworkPolicy::from_values("", "2001::/32");
        assert!(warnings.is_empty());
        assert_eq!(verdict(&policy, "2001:0:4136:e378:8000:63bf:3fff:fdd2"), OK);
    }

    #[test]
    fn message_names_only_the_category() {
        let err = NetworkPolicy::default()
            .check("10.9.8.7".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "blocked by network policy (private (RFC 1918))"
        );
    }

    #[test]
    fn flag_values() {
        for yes in ["true", "TRUE", "1", "yes", "On", " on "] {
            let (policy, warnings) = NetworkPolicy::from_values(yes, "");
            assert!(policy.allow_private(), "{yes:?}");
            assert!(warnings.is_empty(), "{yes:?}");
        }
        for no in ["", "false", "False", "0", "no", "OFF"] {
            let (policy, warnings) = NetworkPolicy::from_values(no, "");
            assert!(!policy.allow_private(), "{no:?}");
            assert!(warnings.is_empty(), "{no:?}");
        }
        let (policy, warnings) = NetworkPolicy::from_values("maybe", "");
        assert!(!policy.allow_private());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains(ALLOW_PRIVATE_ENV) && warnings[0].contains("\"maybe\""));
    }

    #[test]
    fn allowlist_values() {
        let (policy, warnings) =
            NetworkPolicy::from_values("", " 10.0.0.0/8 ,192.168.1.5,, fd00::/8 , ::1 ,");
        assert!(warnings.is_empty(), "{warnings:?}");
        let shown: Vec<String> = policy.allowlist().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.0/8", "192.168.1.5/32", "fd00::/8", "::1/128"]
        );
    }

    #[test]
    fn allowlist_skips_bad_entries_with_a_warning() {
        let (policy, warnings) =
            NetworkPolicy::from_values("", "10.0.0.0/8, intranet.local, 10.0.0.0/40, 1.2.3.4");
        assert_eq!(policy.allowlist().len(), 2);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("\"intranet.local\""));
        assert!(warnings[1].contains("\"10.0.0.0/40\""));
    }

    #[test]
    fn allow_everything_entries_warn() {
        let (policy, warnings) = NetworkPolicy::from_values("", "0.0.0.0/0,::/0");
        assert_eq!(policy.allowlist().len(), 2);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("0.0.0.0/0") && warnings[0].contains("metadata"));
        assert!(warnings[1].contains("::/0"));
    }

    #[test]
    fn a_connection_to_an_address_of_this_machine_is_refused() {
        let public: IpAddr = "11.77.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:11.77.0.1".parse().unwrap();
        let elsewhere: IpAddr = "11.77.0.2".parse().unwrap();
        let policy = NetworkPolicy::default();
        let refused = Err(Blocked {
            category: Category::ThisMachine,
        });
        assert_eq!(policy.check_connected(public, public), refused);
        assert_eq!(policy.check_connected(mapped, public), refused);
        assert_eq!(policy.check_connected(elsewhere, public), Ok(()));
        let allowlisted = NetworkPolicy::new(false, vec!["11.77.0.0/24".parse().unwrap()]);
        assert_eq!(allowlisted.check_connected(public, public), Ok(()));
        assert_eq!(
            NetworkPolicy::new(true, vec![]).check_connected(public, public),
            Ok(())
        );
    }
}
