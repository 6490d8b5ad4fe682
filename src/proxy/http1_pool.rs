//! HTTP/1.1 to HTTPS upstreams, pooled by origin: the route of HTTP/1.1 agents' requests to
//! hosts that agree to HTTP/1.1 (see [`super::http1_hosts`]), the data path's busiest. A
//! connection is checked out for one request and goes back to the pool once its response
//! body has been read to the end; each connection is driven by a task of its own.
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
    /// Idle connections by `host:port`, the most recently used last.
    by_origin: HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>,
    /// When every origin's expired connections were last dropped.
    swept: Option<Instant>,
}

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
    /// new one, once.
    pub async fn send(
        &self,
        target: &Target,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let host = target
            .host_header()
            .ok_or("the target is not a valid Host header")?;
        request.headers_mut().insert(header::HOST, host.clone());
        let origin_form = request.uri().path_and_query().cloned();
        *request.uri_mut() = origin_form.map_or_else(|| Uri::from_static("/"), Uri::from);

        let (mut sender, reused) = match self.checkout(target.host_port()).await {
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
        Ok(
            response
                .map(|body| Returning::new(body, self.0.clone(), origin, sender).boxed_unsync()),
        )
    }

    /// The most recently used idle connection to `origin` that is still open.
    async fn checkout(&self, origin: &str) -> Option<Sender> {
        loop {
            let idle = {
                let mut pool = self.0.idle.lock().unwrap_or_else(|e| e.into_inner());
                pool.by_origin.get_mut(origin)?.pop()?
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
    fn put_back(&self, origin: Arc<str>, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let expired = |c: &Idle| now.duration_since(c.since) >= IDLE_TIMEOUT;
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Once per idle timeout, origins no longer used are forgotten with their connections.
        if pool
            .swept
            .is_none_or(|at| now.duration_since(at) >= IDLE_TIMEOUT)
        {
            pool.swept = Some(now);
            pool.by_origin.retain(|_, idle| {
                idle.retain(|c| !expired(c));
                !idle.is_empty()
            });
        }
        let idle = pool.by_origin.entry(origin).or_default();
        // The least recently used come first: only a prefix can have expired.
        let stale = idle.iter().take_while(|c| expired(c)).count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle { sender, since: now });
        }
    }
}

/// A response body that returns its connection to the pool once read to the end; dropped
/// before that, the connection closes with it.
struct Returning {
    body: Incoming,
    back: Option<(Arc<Inner>, Arc<str>, Sender)>,
}

impl Returning {
    fn new(body: Incoming, pool: Arc<Inner>, origin: Arc<str>, sender: Sender) -> Self {
        let mut returning = Self {
            body,
            back: Some((pool, origin, sender)),
        };
        if returning.body.is_end_stream() {
            returning.give_back();
        }
        returning
    }

    fn give_back(&mut self) {
        if let Some((pool, origin, sender)) = self.back.take() {
            pool.put_back(origin, sender);
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
