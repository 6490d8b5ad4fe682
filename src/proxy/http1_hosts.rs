//! Which upstreams agree to HTTP/1.1, so that an HTTP/1.1 agent is sent upstream over
//! HTTP/1.1 rather than bridged to HTTP/2. The broker's HTTP/2 client costs about 15% more
//! CPU per request than its HTTP/1.1 client, and keeping the agent's protocol is what a
//! transparent proxy should do where it can.
//!
//! A host is learned once per process by a probe: a TLS handshake offering only `http/1.1` in
//! ALPN, through the network guard like any upstream connection. Until the probe has answered,
//! and for hosts that refuse HTTP/1.1 or negotiate no protocol (an HTTP/2-only server may do
//! either), requests go through the pool that offers HTTP/2 as before, so no request is ever
//! sent in a protocol the upstream may not speak.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use hyper_rustls::MaybeHttpsStream;

use super::upstream::H1Connector;
use crate::target::Target;

/// Hosts remembered; the least recently used is forgotten (and probed again if it returns).
const REMEMBERED: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Probing,
    Http1,
    /// Refused HTTP/1.1, negotiated nothing, or speaks plain HTTP: use the pool.
    Other,
}

pub struct Http1Hosts {
    connector: H1Connector,
    known: Arc<Mutex<lru::LruCache<Arc<str>, Verdict>>>,
}

impl Http1Hosts {
    pub fn new(connector: H1Connector) -> Self {
        let capacity = NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Self {
            connector,
            known: Arc::new(Mutex::new(lru::LruCache::new(capacity))),
        }
    }

    /// Whether `target` is known to agree to HTTP/1.1; the first time it is asked about, a
    /// probe starts in the background and the answer is no.
    pub fn agrees(&self, target: &Target) -> bool {
        let key = target.host_port_shared();
        {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(verdict) = known.get(&key) {
                return *verdict == Verdict::Http1;
            }
            known.put(key.clone(), Verdict::Probing);
        }
        let (mut connector, known) = (self.connector.clone(), self.known.clone());
        let uri = target.uri("/");
        tokio::spawn(async move {
            let verdict = match uri {
                Ok(uri) => probe(&mut connector, uri).await,
                Err(_) => Some(Verdict::Other),
            };
            let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
            match verdict {
                Some(verdict) => {
                    known.put(key, verdict);
                }
                // Unreachable for now: asked again on a later request.
                None => {
                    known.pop(&key);
                }
            }
        });
        false
    }
}

/// `None` when the upstream could not be reached at all (a network error, not an answer).
async fn probe(connector: &mut H1Connector, uri: http::Uri) -> Option<Verdict> {
    use tower_service::Service;
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .ok()?;
    match connector.call(uri).await {
        Ok(MaybeHttpsStream::Https(tls))
            if tls.inner().get_ref().1.alpn_protocol() == Some(b"http/1.1") =>
        {
            Some(Verdict::Http1)
        }
        Ok(_) => Some(Verdict::Other),
        Err(e) if tls_refused(&*e) => Some(Verdict::Other),
        Err(_) => None,
    }
}

/// A TLS-level refusal (the upstream answered, with an alert or a protocol we did not offer).
fn tls_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(e) = current {
        if super::forward::rustls_error(e).is_some() {
            return true;
        }
        current = e.source();
    }
    false
}
