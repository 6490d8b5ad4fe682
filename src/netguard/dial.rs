//! Checked resolution and dialing: resolve once, check every answer, connect to the checked
//! address itself.
//!
//! Stance: a name is refused as a whole if any of its addresses is blocked, since an
//! attacker's DNS server can mix public and private answers; and the socket is opened to the
//! exact address that was checked, never to the name, so a second lookup cannot rebind it.
//! Errors name the host and a range category, never the internal addresses behind a name.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::policy::{Blocked, NetworkPolicy};
use crate::target::Host;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("invalid upstream host {0:?}")]
    InvalidHost(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot resolve {host}: timed out after {after:?}")]
    ResolveTimedOut { host: String, after: Duration },
    #[error("cannot resolve {host}: no addresses")]
    NoAddresses { host: String },
    #[error("cannot connect to {host}: {blocked}")]
    Blocked { host: String, blocked: Blocked },
    #[error("cannot connect to {host}:{port}: connection refused")]
    Refused { host: String, port: u16 },
    #[error("cannot connect to {host}:{port}: timed out after {after:?}")]
    TimedOut {
        host: String,
        port: u16,
        after: Duration,
    },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
}

impl GuardError {
    /// True when the policy refused the host (the proxy answers 403), false when the network
    /// failed (502).
    pub fn is_policy(&self) -> bool {
        matches!(self, Self::Blocked { .. })
    }
}

/// Resolves `host` and checks every address against `policy`. IP literals (IPv6 with or
/// without brackets) are checked without a lookup.
pub async fn resolve_checked(
    policy: &NetworkPolicy,
    host: &Host,
    port: u16,
) -> Result<Vec<SocketAddr>, GuardError> {
    resolve(policy, host, port).await
}

/// Connects to the first reachable checked address of `host`, trying them in resolver order.
/// `timeout` bounds the lookup and each connection attempt separately.
pub async fn connect(
    policy: &NetworkPolicy,
    host: &Host,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), GuardError> {
    let addrs = tokio::time::timeout(timeout, resolve(policy, host, port))
        .await
        .map_err(|_| GuardError::ResolveTimedOut {
            host: host.to_string(),
            after: timeout,
        })??;
    connect_first(policy, host, port, addrs, timeout).await
}

/// The first of `addrs` that accepts a connection within `timeout`, or why the last failed;
/// a connection that turns out to reach this machine is refused (see
/// [`NetworkPolicy::check_connected`]).
async fn connect_first(
    policy: &NetworkPolicy,
    host: &Host,
    port: u16,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), GuardError> {
    // Only reported if there were no addresses, which `resolve` already rules out.
    let mut last = GuardError::NoAddresses {
        host: host.to_string(),
    };
    for addr in addrs {
        let name = host.to_string();
        last = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let local = stream.local_addr().map_err(|source| GuardError::Connect {
                    host: name.clone(),
                    port,
                    source,
                })?;
                policy
                    .check_connected(local.ip(), addr.ip())
                    .map_err(|blocked| GuardError::Blocked {
                        host: name.clone(),
                        blocked,
                    })?;
                return Ok((stream, addr));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                GuardError::Refused { host: name, port }
            }
            Ok(Err(source)) => GuardError::Connect {
                host: name,
                port,
                source,
            },
            Err(_) => GuardError::TimedOut {
                host: name,
                port,
                after: timeout,
            },
        };
    }
    Err(last)
}

async fn resolve(
    policy: &NetworkPolicy,
    host: &Host,
    port: u16,
) -> Result<Vec<SocketAddr>, GuardError> {
    let addrs = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|source| GuardError::Resolve {
                host: name.clone(),
                source,
            })?
            .collect(),
    };
    check_all(policy, &host.to_string(), addrs)
}

/// Refuses the whole answer if any address is blocked; drops duplicates, keeping order.
fn check_all(
    policy: &NetworkPolicy,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, GuardError> {
    if addrs.is_empty() {
        return Err(GuardError::NoAddresses {
            host: host.to_string(),
        });
    }
    let mut checked: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for addr in addrs {
        policy
            .check(addr.ip())
            .map_err(|blocked| GuardError::Blocked {
                host: host.to_string(),
                blocked,
            })?;
        if !checked.contains(&addr) {
            checked.push(addr);
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netguard::Category;

    fn host(raw: &str) -> Host {
        Host::parse(raw).unwrap()
    }

    fn allowing_loopback() -> NetworkPolicy {
        NetworkPolicy::new(false, vec!["127.0.0.0/8".parse().unwrap()])
    }

    fn category(err: &GuardError) -> Option<Category> {
        match err {
            GuardError::Blocked { blocked, .. } => Some(blocked.category()),
            _ => None,
        }
    }

    #[test]
    fn one_blocked_answer_refuses_the_name() {
        let mixed = vec![
            "8.8.8.8:443".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
        ];
        let err = check_all(&NetworkPolicy::default(), "evil.example", mixed).unwrap_err();
        assert!(err.is_policy());
        assert_eq!(category(&err), Some(Category::Private));
        assert_eq!(
            err.to_string(),
            "cannot connect to evil.example: blocked by network policy (private (RFC 1918))"
        );
    }

    #[test]
    fn empty_answer_is_an_error() {
        let err = check_all(&NetworkPolicy::default(), "void.example", Vec::new()).unwrap_err();
        assert!(matches!(err, GuardError::NoAddresses { .. }));
        assert!(!err.is_policy());
    }

    #[test]
    fn duplicates_are_dropped_in_order() {
        let a: SocketAddr = "8.8.8.8:53".parse().unwrap();
        let b: SocketAddr = "[2001:4860:4860::8888]:53".parse().unwrap();
        let checked = check_all(&NetworkPolicy::default(), "dns.google", vec![b, a, b]).unwrap();
        assert_eq!(checked, vec![b, a]);
    }

    #[tokio::test]
    async fn localhost_needs_the_private_switch() {
        let err = resolve_checked(&NetworkPolicy::default(), &host("localhost"), 80)
            .await
            .unwrap_err();
        assert_eq!(category(&err), Some(Category::Loopback));
        let addrs = resolve_checked(
            &NetworkPolicy::new(true, Vec::new()),
            &host("localhost"),
            80,
        )
        .await
        .unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    }

    #[tokio::test]
    async fn literals_need_no_lookup() {
        let addrs = resolve_checked(&allowing_loopback(), &host("127.0.0.1"), 8080)
            .await
            .unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
        let err = resolve_checked(&allowing_loopback(), &host("[::1]"), 8080)
            .await
            .unwrap_err();
        assert_eq!(category(&err), Some(Category::Loopback));
        assert_eq!(
            err.to_string(),
            "cannot connect to [::1]: blocked by network policy (loopback)"
        );
        let addrs = resolve_checked(&NetworkPolicy::new(true, Vec::new()), &host("[::1]"), 8080)
            .await
            .unwrap();
        assert_eq!(addrs, vec!["[::1]:8080".parse().unwrap()]);
        let err = resolve_checked(
            &NetworkPolicy::new(true, Vec::new()),
            &host("169.254.169.254"),
            80,
        )
        .await
        .unwrap_err();
        assert_eq!(category(&err), Some(Category::CloudMetadata));
    }

    #[tokio::test]
    async fn connects_to_the_checked_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let timeout = Duration::from_secs(5);

        let (stream, addr) = connect(
            &allowing_loopback(),
            &host("127.0.0.1"),
            target.port(),
            timeout,
        )
        .await
        .unwrap();
        assert_eq!(addr, target);
        assert_eq!(stream.peer_addr().unwrap(), target);

        let err = connect(
            &NetworkPolicy::default(),
            &host("127.0.0.1"),
            target.port(),
            timeout,
        )
        .await
        .unwrap_err();
        assert!(err.is_policy(), "{err}");
    }

    #[tokio::test]
    async fn refused_is_not_a_policy_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = connect(
            &allowing_loopback(),
            &host("127.0.0.1"),
            port,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(!err.is_policy());
        assert!(matches!(err, GuardError::Refused { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("cannot connect to 127.0.0.1:{port}: connection refused")
        );
    }

    #[tokio::test]
    async fn a_refused_address_falls_through_to_the_next() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            gone.local_addr().unwrap()
        };
        let timeout = Duration::from_secs(5);
        let name = host("api.example.com");
        for addrs in [vec![closed, open], vec![open, closed]] {
            let (_, reached) = connect_first(&allowing_loopback(), &name, 443, addrs, timeout)
                .await
                .unwrap();
            assert_eq!(reached, open);
        }
        let err = connect_first(&allowing_loopback(), &name, 443, vec![closed], timeout)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot connect to api.example.com:443: connection refused"
        );
    }

    /// A connection whose source and destination are one address reached this machine. With
    /// a real socket on loopback (the only address of its own a test can count on; the
    /// range check alone would refuse it before, so this calls the connect step directly).
    #[tokio::test]
    async fn a_connection_to_this_machine_is_refused_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let here: SocketAddr = ([127, 0, 0, 1], port).into();
        let timeout = Duration::from_secs(5);
        let name = host("looks-public.example");
        let err = connect_first(&NetworkPolicy::default(), &name, 443, vec![here], timeout)
            .await
            .unwrap_err();
        assert_eq!(category(&err), Some(Category::ThisMachine), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot connect to looks-public.example: blocked by network policy (this machine's own address)"
        );
        for allowed in [allowing_loopback(), NetworkPolicy::new(true, vec![])] {
            connect_first(&allowed, &name, 443, vec![here], timeout)
                .await
                .unwrap();
        }
    }
}
