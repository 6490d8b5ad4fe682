//! HTTP/1.1 to HTTPS upstreams, pooled by vault and origin: the route of HTTP/1.1 agents'
//! requests to hosts that agree to HTTP/1.1 (see [`super::http1_hosts`]), the data path's
//! busiest. A connection is checked out for one request and goes back to the pool once its
//! response body has been read to the end and its request body written to the end (as the
//! upload's [`Progress`] tells); each connection is driven by a task of its own.
//!
//! Written here rather than taken from hyper-util's pool, which per request hashed its key
//! with SipHash twice, formatted the `Host` header and spawned a task to watch for the
//! connection's return (each seen in profiles of the broker under load).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tower_service::Service;

use super::deadline::Progress;
use super::upstream::{BoxError, H1Connector, IDLE_TIMEOUT, MAX_IDLE_PER_ORIGIN, ProxyBody};
use crate::target::Target;

type Sender = SendRequest<ProxyBody>;

#[derive(Clone)]
pub struct Http1Pool(Arc<Inner>);

struct Inner {
    /// Offers only `http/1.1` in ALPN.
    connector: H1Connector,
    idle: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    /// Idle connections by vault, then `host:port`, the most recently used last. Vaults never
    /// share a connection: whatever one's traffic left in it (an upstream that answered
    /// twice, say) must not become another vault's response.
    by_vault: HashMap<Arc<str>, ByOrigin, foldhash::fast::RandomState>,
    /// When every origin's expired connections were last dropped.
    swept: Option<Instant>,
}

type ByOrigin = HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>;

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Http1Pool {
    pub fn new(connector: H1Connector) -> Self {
        Self(Arc::new(Inner {
            connector,
            idle: Mutex::new(Pool::default()),
        }))
    }

    /// Sends `request` (its URI absolute, for `target`) over a pooled or new connection. A
    /// pooled connection the upstream closed before the request was written is replaced by a
    /// new one, once. `uploading` watches the request's body (`None` for one already whole):
    /// an upstream may answer before it has read it all (an early 401 or 413 to an upload),
    /// and until the body has been written to the end the connection is the agent's; given
    /// to another request, it would hold that one for as long as the agent liked.
    pub async fn send(
        &self,
        vault_id: &Arc<str>,
        target: &Target,
        mut request: Request<ProxyBody>,
        uploading: Option<Progress>,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let host = target
            .host_header()
            .ok_or("the target is not a valid Host header")?;
        request.headers_mut().insert(header::HOST, host.clone());
        let origin_form = request.uri().path_and_query().cloned();
        *request.uri_mut() = origin_form.map_or_else(|| Uri::from_static("/"), Uri::from);

        let (mut sender, reused) = match self.checkout(vault_id, target.host_port()).await {
            Some(sender) => (sender, true),
            // Boxed: a handshake's future is large and rare; the request's is moved often.
            None => (Box::pin(self.connect(target)).await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut failed) => match failed.take_message() {
                Some(request) if reused => {
                    sender = Box::pin(self.connect(target)).await?;
                    sender.send_request(request).await?
                }
                _ => return Err(failed.into_error().into()),
            },
        };
        let origin = target.host_port_shared();
        let back = Back {
            pool: self.0.clone(),
            vault: vault_id.clone(),
            origin,
            sender,
            uploading,
        };
        Ok(response.map(|body| Returning::new(body, back).boxed_unsync()))
    }

    /// The most recently used idle connection of the vault to `origin` that is still open.
    async fn checkout(&self, vault_id: &str, origin: &str) -> Option<Sender> {
        loop {
            let idle = {
                let mut pool = self.0.idle.lock().unwrap_or_else(|e| e.into_inner());
                pool.by_vault.get_mut(vault_id)?.get_mut(origin)?.pop()?
            };
            let mut sender = idle.sender;
            if idle.since.elapsed() < IDLE_TIMEOUT && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self, target: &Target) -> Result<Sender, BoxError> {
        let uri = Uri::builder()
            .scheme(target.scheme().as_str())
            .authority(target.authority())
            .path_and_query("/")
            .build()?;
        let mut connector = self.0.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
        let io = connector.call(uri).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream HTTP/1.1 connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

impl Inner {
    fn put_back(&self, vault: Arc<str>, origin: Arc<str>, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let expired = |c: &Idle| now.duration_since(c.since) >= IDLE_TIMEOUT;
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Once per idle timeout, origins and vaults no longer used are forgotten with their
        // connections.
        if pool
            .swept
            .is_none_or(|at| now.duration_since(at) >= IDLE_TIMEOUT)
        {
            pool.swept = Some(now);
            pool.by_vault.retain(|_, by_origin| {
                by_origin.retain(|_, idle| {
                    idle.retain(|c| !expired(c));
                    !idle.is_empty()
                });
                !by_origin.is_empty()
            });
        }
        let idle = pool
            .by_vault
            .entry(vault)
            .or_default()
            .entry(origin)
            .or_default();
        // The least recently used come first: only a prefix can have expired.
        let stale = idle.iter().take_while(|c| expired(c)).count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle { sender, since: now });
        }
    }
}

/// Where a connection goes back to, and whether its request body has been written.
struct Back {
    pool: Arc<Inner>,
    vault: Arc<str>,
    origin: Arc<str>,
    sender: Sender,
    /// The request body's watch; `None` for a request sent whole.
    uploading: Option<Progress>,
}

/// A response body that returns its connection to the pool once read to the end, if the
/// request's body was written to the end by then; otherwise, or dropped before its end, the
/// connection closes when the exchange is over.
struct Returning {
    body: Incoming,
    back: Option<Back>,
}

impl Returning {
    fn new(body: Incoming, back: Back) -> Self {
        let mut returning = Self {
            body,
            back: Some(back),
        };
        if returning.body.is_end_stream() {
            returning.give_back();
        }
        returning
    }

    fn give_back(&mut self) {
        let Some(back) = self.back.take() else { return };
        let written = back.uploading.as_ref().is_none_or(Progress::ended);
        if written {
            back.pool.put_back(back.vault, back.origin, back.sender);
        }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Ok(_)) if self.body.is_end_stream() => self.give_back(),
            None => self.give_back(),
            Some(Err(_)) => self.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
