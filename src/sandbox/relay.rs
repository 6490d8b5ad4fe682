//! The relay: TCP listeners on the run network's gateway that forward to the broker's API
//! and proxy ports. The broker keeps listening on loopback only; a container reaches exactly
//! these two ports and nothing else of the host. A third listener, the canary, forwards
//! nowhere: the firewall's self-test must fail to reach it.
//!
//! Stance: the relay serves only its own run. Its address is the gateway of the run's
//! bridge, and a typical host lets every local bridge reach every host address, so any
//! container on the machine could otherwise use the relay as a way into the broker (its
//! login and API included). The relay therefore hangs up on any peer outside the run's own
//! subnet, whatever the host's firewall says; a peer cannot fake such an address, since the
//! replies of a TCP handshake go to the run's bridge.
//!
//! To a broker on loopback, each run's connections come from a loopback address of its own
//! (`127.x.y.z`, random, never `127.0.0.0/16`): the broker's per-address limits — the sign-in
//! budget, the proxy's penalty box — then charge an agent's failed attempts to its own run,
//! not to every other run and the owner's CLI on `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::hop::Hop;

pub struct Relay {
    pub api_port: u16,
    pub proxy_port: u16,
    pub canary_port: u16,
    tasks: Vec<JoinHandle<()>>,
}

/// Where a relay sends what it accepts.
#[derive(Clone)]
pub struct Target {
    /// Only peers in this network (the run's) are served.
    pub allowed: IpNet,
    /// The broker's API, inside TLS for an `https://` address.
    pub api: Hop,
    /// The broker's proxy: its plain port, or its TLS port (see [`super::hop`]).
    pub proxy: Hop,
}

/// The relay's three ports; 0 picks a free one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ports {
    pub api: u16,
    pub proxy: u16,
    pub canary: u16,
}

/// A loopback address for one run's connections, outside `127.0.0.0/16` (where the host's
/// own clients are).
pub(super) fn run_source() -> Ipv4Addr {
    let [a, b, c] = crate::crypto::random_bytes::<3>();
    Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254))
}

/// A connection to the broker, from `source` when the broker is on IPv4 loopback (any other
/// broker sees the host's own address, as before).
async fn connect(hop: &Hop, source: Ipv4Addr) -> std::io::Result<TcpStream> {
    let target = (hop.host.as_str(), hop.port);
    let loopback = tokio::net::lookup_host(target)
        .await?
        .find(|addr| matches!(addr, SocketAddr::V4(v4) if v4.ip().is_loopback()));
    let Some(addr) = loopback else {
        return TcpStream::connect(target).await;
    };
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// Relays each connection from a peer in `allowed` to `hop`; to a broker on loopback, from
/// `source` (see the module's notes).
pub(super) async fn forward_loop(
    listener: TcpListener,
    allowed: IpNet,
    hop: Hop,
    source: Ipv4Addr,
) {
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else {
            // Out of descriptors or similar: wait instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        if !allowed.contains(&peer.ip()) {
            continue;
        }
        let hop = hop.clone();
        tokio::spawn(async move {
            let outbound = match connect(&hop, source).await {
                Ok(outbound) => outbound,
                Err(e) => return hop.unreachable(&e),
            };
            let _ = outbound.set_nodelay(true);
            let _ = inbound.set_nodelay(true);
            if let Some(mut outbound) = hop.over(outbound).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Accepting proves reachability; the connection is dropped at once.
async fn accept_and_drop(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        drop(stream);
    }
}

impl Relay {
    /// Listens on `gateway` at `ports` and forwards to `target`; without a target it only
    /// accepts (what a firewall self-test needs when a slot is made ahead of its run).
    pub async fn start(
        gateway: IpAddr,
        ports: Ports,
        target: Option<Target>,
    ) -> std::io::Result<Self> {
        let api = TcpListener::bind((gateway, ports.api)).await?;
        let proxy = TcpListener::bind((gateway, ports.proxy)).await?;
        let canary = TcpListener::bind((gateway, ports.canary)).await?;
        let (api_port, proxy_port, canary_port) = (
            api.local_addr()?.port(),
            proxy.local_addr()?.port(),
            canary.local_addr()?.port(),
        );
        let mut tasks = vec![tokio::spawn(accept_and_drop(canary))];
        match target {
            Some(t) => {
                let source = run_source();
                tasks.push(tokio::spawn(forward_loop(api, t.allowed, t.api, source)));
                tasks.push(tokio::spawn(forward_loop(
                    proxy, t.allowed, t.proxy, source,
                )));
            }
            None => {
                tasks.push(tokio::spawn(accept_and_drop(api)));
                tasks.push(tokio::spawn(accept_and_drop(proxy)));
            }
        }
        Ok(Self {
            api_port,
            proxy_port,
            canary_port,
            tasks,
        })
    }

    pub fn ports(&self) -> Ports {
        Ports {
            api: self.api_port,
            proxy: self.proxy_port,
            canary: self.canary_port,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn target(allowed: &str, port: u16) -> Target {
        Target {
            allowed: allowed.parse().unwrap(),
            api: Hop::new("127.0.0.1", port, None),
            proxy: Hop::new("127.0.0.1", port, None),
        }
    }

    #[tokio::test]
    async fn relays_bytes_to_the_broker() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = upstream.local_addr().unwrap().port();
        let (peer_tx, peer_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, peer) = upstream.accept().await.unwrap();
            let _ = peer_tx.send(peer.ip());
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let gateway = "127.0.0.1".parse().unwrap();
        let relay = Relay::start(
            gateway,
            Ports::default(),
            Some(target("127.0.0.0/30", port)),
        )
        .await
        .unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", relay.api_port))
            .await
            .unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // The broker sees the run's own loopback address, not the host's 127.0.0.1.
        let IpAddr::V4(peer) = peer_rx.await.unwrap() else {
            panic!("an IPv4 peer");
        };
        assert!(peer.is_loopback() && peer.octets()[1] != 0, "{peer}");
        let mut canary = TcpStream::connect(("127.0.0.1", relay.canary_port))
            .await
            .unwrap();
        assert_eq!(
            canary.read(&mut buf).await.unwrap(),
            0,
            "the canary forwards nothing"
        );
    }

    #[tokio::test]
    async fn peers_outside_the_run_are_hung_up_on() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = upstream.local_addr().unwrap().port();
        let relay = Relay::start(
            "0.0.0.0".parse().unwrap(),
            Ports::default(),
            Some(target("127.0.0.1/32", port)),
        )
        .await
        .unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stranger = socket
            .connect(([127, 0, 0, 1], relay.api_port).into())
            .await
            .unwrap();
        let _ = stranger.write_all(b"GET /health HTTP/1.0\r\n\r\n").await;
        let mut buf = [0u8; 16];
        assert_eq!(stranger.read(&mut buf).await.unwrap_or(0), 0);
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(300), upstream.accept());
        assert!(accepted.await.is_err(), "the stranger reached the broker");
    }

    #[tokio::test]
    async fn a_stub_takes_its_ports_and_gives_them_back() {
        let gateway: IpAddr = "127.0.0.1".parse().unwrap();
        let stub = Relay::start(gateway, Ports::default(), None).await.unwrap();
        let ports = stub.ports();
        let mut probe = TcpStream::connect((gateway, ports.api)).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(probe.read(&mut buf).await.unwrap_or(0), 0);
        drop(stub);
        let mut real = None;
        for _ in 0..100 {
            // The aborted tasks drop their listeners on their next turn.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if let Ok(relay) = Relay::start(gateway, ports, Some(target("127.0.0.0/8", 1))).await {
                real = Some(relay);
                break;
            }
        }
        let real = real.expect("the stub's ports came back");
        assert_eq!(
            real.ports(),
            ports,
            "the same ports, for the run that takes the slot"
        );
    }
}
