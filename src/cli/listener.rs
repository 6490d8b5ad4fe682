//! Who listens on a loopback server address, before the CLI sends it a token or a password.
//!
//! Any local user can listen on a free loopback port: while your server is stopped, another
//! user's program on 127.0.0.1:14321 would receive your login token (and then the secrets you
//! set, and the CA your agents trust). So for a loopback address the listening socket's owner
//! is read from `/proc/net/tcp{,6}` and must be you or root (Docker's port publisher runs as
//! root); a server you mean to use under another account is named with
//! `AGENT_VAULT_SERVER_UID`. Other addresses are the network's business (use https).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Names the account a loopback server may run under besides yours and root.
pub const SERVER_UID_ENV: &str = "AGENT_VAULT_SERVER_UID";

/// `/proc/net/tcp` state of a listening socket.
const LISTEN: &str = "0A";

/// A listening socket: its address, port and owner.
#[derive(Debug, PartialEq, Eq)]
struct Listener {
    ip: IpAddr,
    port: u16,
    uid: u32,
}

/// Refuses a loopback `base` URL whose listener belongs to someone else.
pub fn check(base: &str) -> anyhow::Result<()> {
    let Ok(target) = crate::target::Target::from_url(base) else {
        return Ok(());
    };
    let wanted: Vec<IpAddr> = match target.host().ip() {
        Some(ip) if ip.is_loopback() => vec![ip],
        None if target.bare_host() == "localhost" => {
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
        }
        _ => return Ok(()),
    };
    let me = nix::unistd::getuid().as_raw();
    let allowed = std::env::var(SERVER_UID_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    let trusted = |uid: u32| uid == me || uid == 0 || Some(uid) == allowed;
    let stranger = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .flat_map(|table| table.lines().skip(1).filter_map(parse).collect::<Vec<_>>())
        .filter(|l| l.port == target.port() && wanted.iter().any(|ip| reaches(l.ip, *ip)))
        .find(|l| !trusted(l.uid));
    let Some(stranger) = stranger else {
        return Ok(());
    };
    let name = nix::unistd::User::from_uid(stranger.uid.into())
        .ok()
        .flatten()
        .map_or_else(
            || format!("uid {}", stranger.uid),
            |u| format!("{} (uid {})", u.name, stranger.uid),
        );
    anyhow::bail!(
        "{base} is served by another account, {name}, not yours: nothing was sent to it (it could be a program waiting for your token while your server is stopped). Start your own server, or if {name} runs the server you mean to use, set {SERVER_UID_ENV}={}",
        stranger.uid
    )
}

/// Whether a socket listening on `bound` takes connections to `ip` (its own address, or a
/// wildcard of either family, IPv6's accepting IPv4 too).
fn reaches(bound: IpAddr, ip: IpAddr) -> bool {
    bound == ip
        || bound.is_unspecified()
        || matches!(bound, IpAddr::V6(v6) if v6.to_ipv4_mapped().map(IpAddr::V4) == Some(ip))
}

/// One line of `/proc/net/tcp{,6}`, if it is a listening socket.
fn parse(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&LISTEN) {
        return None;
    }
    let (address, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let uid = fields.get(7)?.parse().ok()?;
    // The kernel prints each 32-bit word of the address as it lies in memory, in host order.
    let words: Vec<[u8; 4]> = (0..address.len() / 8)
        .map(|i| {
            let word = u32::from_str_radix(address.get(i * 8..i * 8 + 8)?, 16).ok()?;
            Some(word.to_ne_bytes())
        })
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [a] => IpAddr::V4(Ipv4Addr::from(*a)),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (chunk, word) in bytes.chunks_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(word);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Listener { ip, port, uid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_read_from_proc_lines() {
        let v4 = "   0: 0100007F:3841 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 654 1";
        let v6 = "   1: 00000000000000000000000001000000:3841 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 655 1";
        let open = "   2: 0100007F:9658 0100007F:87C7 06 00000000:00000000 03:000009DB 00000000     0        0 0 3";
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse(v4),
                Some(Listener {
                    ip: Ipv4Addr::LOCALHOST.into(),
                    port: 14401,
                    uid: 1000
                })
            );
            assert_eq!(
                parse(v6),
                Some(Listener {
                    ip: Ipv6Addr::LOCALHOST.into(),
                    port: 14401,
                    uid: 1001
                })
            );
        }
        assert_eq!(parse(open), None, "not listening");
    }

    #[test]
    fn wildcards_take_loopback_connections() {
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        assert!(reaches(Ipv4Addr::UNSPECIFIED.into(), lo));
        assert!(reaches(Ipv6Addr::UNSPECIFIED.into(), lo));
        assert!(reaches(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), lo));
        assert!(!reaches(Ipv4Addr::new(127, 0, 0, 2).into(), lo));
        assert!(!reaches(Ipv6Addr::LOCALHOST.into(), lo));
    }

    #[test]
    fn a_server_of_ones_own_passes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        check(&format!("http://127.0.0.1:{port}")).unwrap();
        check("https://vault.example.com").unwrap();
    }
}
