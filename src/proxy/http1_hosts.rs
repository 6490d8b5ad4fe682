//! Which upstreams agree to HTTP/1.1, so that an HTTP/1.1 agent is sent upstream over
//! HTTP/1.1 rather than bridged to HTTP/2. The broker's HTTP/2 client costs about 15% more
//! CPU per request than its HTTP/1.1 client, and keeping the agent's protocol is what a
//! transparent proxy should do where it can.
//!
//! A host is learned once per process, after it has answered a request through the pool (so
//! hosts the network guard refuses, or that cannot be reached, are never probed): one TLS
//! handshake offering only `http/1.1` in ALPN, through the guard like any upstream
//! connection. Until then, and for hosts that refuse HTTP/1.1 or negotiate no protocol (an
//! HTTP/2-only server may do either), requests go through the pool that offers HTTP/2 as
//! before, so no request is ever sent in a protocol the upstream may not speak.

use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};

use hyper_rustls::MaybeHttpsStream;

use super::upstream::H1Connector;
use crate::target::Target;

/// Hosts remembered; the least recently learned is forgotten (and probed again if it returns).
const REMEMBERED: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Not asked yet: [`Http1Hosts::learn`] once it has answered.
    Unknown,
    Probing,
    Http1,
    /// Refused HTTP/1.1, negotiated nothing, or the probe failed: use the pool.
    Other,
}

pub struct Http1Hosts {
    connector: H1Connector,
    /// Read on every HTTP/1.1 agent's request, so shared for reading (a look-up does not
    /// refresh recency).
    known: Arc<RwLock<lru::LruCache<Arc<str>, Verdict, foldhash::fast::RandomState>>>,
}

impl Http1Hosts {
    pub fn new(connector: H1Connector) -> Self {
        let capacity = NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Self {
            connector,
            known: Arc::new(RwLock::new(lru::LruCache::with_hasher(
                capacity,
                Default::default(),
            ))),
        }
    }

    /// What is known of `target`; only [`Verdict::Http1`] sends an HTTP/1.1 agent's request
    /// over HTTP/1.1.
    pub fn verdict(&self, target: &Target) -> Verdict {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known
            .peek(target.host_port())
            .copied()
            .unwrap_or(Verdict::Unknown)
    }

    /// Probes `target` in the background, unless another request already started to.
    pub fn learn(&self, target: &Target) {
        let key = target.host_port_shared();
        {
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            if known.contains(&key) {
                return;
            }
            known.put(key.clone(), Verdict::Probing);
        }
        let (mut connector, known) = (self.connector.clone(), self.known.clone());
        let uri = target.uri("/");
        tokio::spawn(async move {
            let verdict = match uri {
                Ok(uri) => probe(&mut connector, uri).await,
                Err(_) => Verdict::Other,
            };
            known
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .put(key, verdict);
        });
    }
}

async fn probe(connector: &mut H1Connector, uri: http::Uri) -> Verdict {
    use tower_service::Service;
    if std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .is_err()
    {
        return Verdict::Other;
    }
    match connector.call(uri).await {
        Ok(MaybeHttpsStream::Https(tls))
            if tls.inner().get_ref().1.alpn_protocol() == Some(b"http/1.1") =>
        {
            Verdict::Http1
        }
        _ => Verdict::Other,
    }
}
