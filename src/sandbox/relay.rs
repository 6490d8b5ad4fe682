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

use std::net::IpAddr;

use ipnet::IpNet;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Relay {
    pub api_port: u16,
    pub proxy_port: u16,
    pub canary_port: u16,
    tasks: Vec<JoinHandle<()>>,
}

async fn forward_loop(listener: TcpListener, allowed: IpNet, target: (String, u16)) {
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else {
            // Out of descriptors or similar: wait instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        if !allowed.contains(&peer.ip()) {
            continue;
        }
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect((target.0.as_str(), target.1)).await {
                let _ = outbound.set_nodelay(true);
                let _ = inbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

async fn canary_loop(listener: TcpListener) {
    // Accepting proves reachability; the connection is dropped at once.
    while let Ok((stream, _)) = listener.accept().await {
        drop(stream);
    }
}

impl Relay {
    /// Listens on `gateway` (ephemeral ports) and forwards connections from `allowed` (the
    /// run's subnet) to the broker at `broker_host`.
    pub async fn start(
        gateway: IpAddr,
        allowed: IpNet,
        broker_host: &str,
        api_port: u16,
        proxy_port: u16,
    ) -> std::io::Result<Self> {
        let api = TcpListener::bind((gateway, 0)).await?;
        let proxy = TcpListener::bind((gateway, 0)).await?;
        let canary = TcpListener::bind((gateway, 0)).await?;
        let relay = Self {
            api_port: api.local_addr()?.port(),
            proxy_port: proxy.local_addr()?.port(),
            canary_port: canary.local_addr()?.port(),
            tasks: vec![
                tokio::spawn(forward_loop(
                    api,
                    allowed,
                    (broker_host.to_owned(), api_port),
                )),
                tokio::spawn(forward_loop(
                    proxy,
                    allowed,
                    (broker_host.to_owned(), proxy_port),
                )),
                tokio::spawn(canary_loop(canary)),
            ],
        };
        Ok(relay)
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

    #[tokio::test]
    async fn relays_bytes_to_the_broker() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = upstream.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let allowed = "127.0.0.0/30".parse().unwrap();
        let relay = Relay::start(
            "127.0.0.1".parse().unwrap(),
            allowed,
            "127.0.0.1",
            port,
            port,
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
        let allowed = "127.0.0.1/32".parse().unwrap();
        let relay = Relay::start("0.0.0.0".parse().unwrap(), allowed, "127.0.0.1", port, port)
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
}
