//! The data-path listeners: the forward proxy on `--mitm-port` (CONNECT tunnels terminated
//! with a leaf from our CA, and absolute-form `http://` requests) and the explicit
//! `/proxy/{host}/{path}` endpoint on the API port. Both authenticate with the broker and
//! then run the same [`forward`] pipeline; nothing about injection is written twice.
//!
//! Stance: never panic on network input; every refusal is a JSON broker error; routing is
//! fixed by the CONNECT target or URL authority, and the token is re-checked (through the
//! broker's cache) on every request inside a tunnel, so a revoked token stops working on
//! connections that are already open.

mod deadline;
pub mod explicit;
mod forward;
mod http1_hosts;
mod http1_pool;
pub mod listener;
mod scrubbed;
pub mod unread_body;
pub mod upstream;
mod websocket;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use unread_body::Watched;

pub use forward::{Ingress, error_response, forward};
pub use http1_hosts::Http1Hosts;
pub use http1_pool::Http1Pool;
pub use upstream::{ProxyBody, Timeouts};

use listener::Ended;

use crate::broker::{Broker, BrokerError, ProxyCredentials, proxy_auth};
use crate::ca::CertificateAuthority;
use crate::limits::Limits;
use crate::limits::http::{Audience, too_many_requests};
use crate::target::{Scheme, Target};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the data path needs, shared by every connection.
pub struct Proxy {
    pub broker: Arc<Broker>,
    /// Pools offering HTTP/2 and HTTP/1.1, one per vault (see [`upstream::VaultClients`]).
    pub upstream: upstream::VaultClients,
    /// Offers only HTTP/1.1: HTTP/1.1 agents' requests to hosts that agree to it.
    pub http1_pool: Http1Pool,
    pub http1_hosts: Http1Hosts,
    /// HTTP/1.1 only, not pooled: WebSocket upgrades.
    pub upgrade_client: upstream::UpstreamClient,
    pub timeouts: Timeouts,
    /// Present when the MITM listener runs.
    pub ca: Option<Arc<CertificateAuthority>>,
    /// PROXY per principal and vault, GLOBAL in flight, AUTH on failed proxy sign-ins.
    pub limits: Arc<Limits>,
    /// Memory for bodies buffered by substitutions, shared by every request.
    pub body_budget: crate::ceilings::body_budget::BodyBudget,
    /// Header-read and tunnel-idle timeouts, the shutdown grace.
    pub conn: listener::ConnSettings,
    /// The live connections (tunnels included), told to finish on shutdown.
    pub drain: listener::Drain,
}

/// Accepts forward-proxy connections until shutdown begins (see [`listener`]).
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    let drain = proxy.drain.clone();
    listener::accept_loop(
        listener,
        drain,
        "MITM proxy",
        move |stream, peer, admitted| {
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let _admitted = admitted;
                serve_outer(proxy, stream, peer.ip()).await;
            });
        },
    )
    .await;
}

/// The same proxy behind TLS (`--proxy-tls-port`), so a client across a network sends its
/// `Proxy-Authorization` encrypted. The certificate is a leaf of the MITM CA (which clients
/// fetch anyway) for the name the client asks for, or for the address it connected to.
pub async fn serve_tls(listener: TcpListener, proxy: Arc<Proxy>, ca: Arc<CertificateAuthority>) {
    let drain = proxy.drain.clone();
    // The names clients dial this port by: a handful (see `LeafResolver::for_proxy_port`).
    let leaves = Arc::new(crate::ca::LeafCache::new(16));
    listener::accept_loop(
        listener,
        drain,
        "MITM proxy over TLS",
        move |stream, peer, admitted| {
            let _ = stream.set_nodelay(true);
            let (proxy, ca, leaves) = (proxy.clone(), ca.clone(), leaves.clone());
            tokio::spawn(async move {
                let _admitted = admitted;
                let Ok(local) = stream.local_addr() else {
                    return;
                };
                let local = local.ip().to_string();
                let resolver = crate::ca::LeafResolver::for_proxy_port(ca, leaves, &local);
                let mut config = crate::ca::server_config(resolver);
                // The proxy protocol itself is HTTP/1.1 (CONNECT and absolute-form requests).
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => serve_outer(proxy, tls, peer.ip()).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake on the proxy's TLS port failed: {e}")
                    }
                    Err(_) => {}
                }
            });
        },
    )
    .await;
}

/// Serves one client connection of the proxy port: CONNECT and absolute-form requests.
async fn serve_outer<IO>(proxy: Arc<Proxy>, io: IO, peer: std::net::IpAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let proxy = proxy.clone();
        service_fn(move |request| {
            let proxy = proxy.clone();
            let (request, read) = unread_body::watch(request);
            async move {
                let mut response = outer(proxy.clone(), peer, request).await;
                read.close_if_unread(&mut response);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.conn.header_read)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        _ = conn.as_mut() => Ended::Done,
        ended = listener::stop_or_idle(&proxy.drain, None) => ended,
    };
    if ended == Ended::Stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

fn refuse(err: BrokerError) -> Response<ProxyBody> {
    error_response(&err)
}

/// A `429` from the limits, in the proxy's form.
pub(crate) fn refuse_limited(refusal: &crate::limits::Refusal) -> Response<ProxyBody> {
    too_many_requests(refusal, Audience::Proxy).map(|body| {
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync()
    })
}

/// Authenticates a client of the proxy; an address past its AUTH budget of failures is
/// refused before any lookup.
pub(crate) async fn authenticate(
    proxy: &Proxy,
    peer: Option<std::net::IpAddr>,
    credentials: &ProxyCredentials,
) -> Result<Arc<crate::broker::Scope>, Response<ProxyBody>> {
    if let Some(peer) = peer
        && let Err(refusal) = proxy.limits.proxy_auth_gate(peer)
    {
        return Err(refuse_limited(&refusal));
    }
    proxy
        .broker
        .authenticate(credentials)
        .await
        .map_err(|err| auth_failed(proxy, peer, err, true))
}

/// A failed proxy sign-in: presented credentials that fail are charged to the address (AUTH
/// tier). Missing ones are not: clients that wait for a 407 challenge send none at first.
pub(crate) fn auth_failed(
    proxy: &Proxy,
    peer: Option<std::net::IpAddr>,
    err: BrokerError,
    presented: bool,
) -> Response<ProxyBody> {
    // The agent sees this as a bare `CONNECT` failure; the operator should see why. (The
    // message names vaults and the fix, never the token.)
    if presented {
        tracing::debug!(
            ?peer,
            code = err.code,
            "proxy sign-in refused: {}",
            err.message
        );
    }
    if let Some(peer) = peer {
        if let Err(refusal) = proxy.limits.proxy_auth_gate(peer) {
            return refuse_limited(&refusal);
        }
        if presented && err.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            proxy.limits.proxy_auth_failed(peer);
        }
    }
    refuse(err)
}

fn presented<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .contains_key(http::header::PROXY_AUTHORIZATION)
}

/// A request on the proxy port itself: CONNECT or an absolute-form `http://` URL.
async fn outer(
    proxy: Arc<Proxy>,
    peer: std::net::IpAddr,
    request: Request<Watched<Incoming>>,
) -> Response<ProxyBody> {
    if request.method() == Method::CONNECT {
        return connect(proxy, peer, request).await;
    }
    let uri = request.uri();
    let authority = uri.authority().filter(|_| uri.scheme_str() == Some("http"));
    let Some(authority) = authority else {
        let hint = if uri.scheme_str() == Some("https") {
            "send https:// requests through a CONNECT tunnel (set HTTPS_PROXY)"
        } else {
            "this is a forward proxy: send absolute http:// URLs, or CONNECT for https"
        };
        return refuse(BrokerError::bad_request("not_a_proxy_request", hint));
    };
    let target = match Target::from_authority(Scheme::Http, authority.as_str()) {
        Ok(target) => target,
        Err(e) => return refuse(BrokerError::bad_request("invalid_host", e.to_string())),
    };
    let credentials = match proxy_auth::from_proxy_headers(request.headers()) {
        Ok(credentials) => credentials,
        Err(err) => return auth_failed(&proxy, Some(peer), err, presented(&request)),
    };
    match authenticate(&proxy, Some(peer), &credentials).await {
        Ok(scope) => forward(&proxy, &scope, &target, Ingress::Mitm, request).await,
        Err(response) => response,
    }
}

/// `CONNECT host:port`: authenticate, answer 200, then terminate TLS inside the tunnel.
async fn connect(
    proxy: Arc<Proxy>,
    peer: std::net::IpAddr,
    request: Request<Watched<Incoming>>,
) -> Response<ProxyBody> {
    let Some(ca) = proxy.ca.clone() else {
        return refuse(BrokerError::internal("the MITM proxy has no CA"));
    };
    let authority = request.uri().authority().map(|a| a.as_str()).unwrap_or("");
    let target = match Target::connect(authority) {
        Ok(target) => target,
        Err(e) => {
            return refuse(BrokerError::bad_request(
                "invalid_request",
                format!("CONNECT needs a host:port target: {e}"),
            ));
        }
    };
    let credentials = match proxy_auth::from_proxy_headers(request.headers()) {
        Ok(credentials) => credentials,
        Err(err) => return auth_failed(&proxy, Some(peer), err, presented(&request)),
    };
    if let Err(response) = authenticate(&proxy, Some(peer), &credentials).await {
        return response;
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => tunnel(proxy, ca, target, credentials, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!("CONNECT upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response
}

/// The first byte of a TLS handshake record; anything else in a tunnel is plain HTTP.
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves the tunnel: TLS terminated with a leaf for the target, then HTTP/1.1 or HTTP/2 by
/// ALPN; or, when the client speaks plain HTTP inside the tunnel (a `ws://` client through a
/// proxy does), HTTP to an `http://` target on the same port.
async fn tunnel(
    proxy: Arc<Proxy>,
    ca: Arc<CertificateAuthority>,
    target: Target,
    credentials: ProxyCredentials,
    mut io: TokioIo<hyper::upgrade::Upgraded>,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, io.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    let io = Prefixed::new(first[0], io);
    let credentials = Arc::new(credentials);
    if first[0] != TLS_HANDSHAKE {
        let target = Arc::new(Target::new(
            Scheme::Http,
            target.host().clone(),
            target.port(),
        ));
        serve_tunnel(proxy, target, credentials, io).await;
        return;
    }
    let config =
        crate::ca::server_config(crate::ca::LeafResolver::for_target(ca, target.bare_host()));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(host = %target.host_port(), "TLS handshake with the agent failed: {e}");
            return;
        }
        Err(_) => return,
    };
    serve_tunnel(proxy, Arc::new(target), credentials, tls).await;
}

async fn serve_tunnel<IO>(
    proxy: Arc<Proxy>,
    target: Arc<Target>,
    credentials: Arc<ProxyCredentials>,
    io: IO,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = listener::Activity::default();
    let service = {
        let (proxy, activity) = (proxy.clone(), activity.clone());
        service_fn(move |mut request: Request<Incoming>| {
            let (proxy, target, credentials) = (proxy.clone(), target.clone(), credentials.clone());
            let in_flight_here = activity.begin();
            if request.method() == Method::CONNECT {
                // An HTTP/2 WebSocket (RFC 8441) outlives its response: its relay keeps this.
                request.extensions_mut().insert(in_flight_here.clone());
            }
            let (request, read) = unread_body::watch(request);
            async move {
                // Re-checked per request (a cache hit when warm), so revocation reaches open
                // tunnels.
                let mut response = match proxy.broker.authenticate(&credentials).await {
                    Ok(scope) => forward(&proxy, &scope, &target, Ingress::Mitm, request).await,
                    Err(err) => refuse(err),
                };
                read.close_if_unread(&mut response);
                // In flight until the body is done: a long stream is not an idle tunnel.
                Ok::<_, Infallible>(response.map(|body| {
                    body.map_frame(move |frame| {
                        let _held = &in_flight_here;
                        frame
                    })
                    .boxed_unsync()
                }))
            }
        })
    };
    // Idleness is watched by the activity (requests in flight), not by a header-read timer
    // that would also cut a silent keep-alive between requests.
    let _live = proxy.drain.track();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // HTTP/2 agents may open WebSockets with an extended CONNECT (RFC 8441).
    builder.http2().enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = Some((&activity, proxy.conn.tunnel_idle));
    let ended = tokio::select! {
        _ = conn.as_mut() => Ended::Done,
        ended = listener::stop_or_idle(&proxy.drain, idle) => ended,
    };
    if ended == Ended::Stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// A stream with one byte already read from it, given back first.
struct Prefixed<T> {
    first: Option<u8>,
    inner: T,
}

impl<T> Prefixed<T> {
    fn new(first: u8, inner: T) -> Self {
        Self {
            first: Some(first),
            inner,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(byte) = self.first {
            // An empty buffer asks for nothing; putting the byte in it would panic.
            if buf.remaining() > 0 {
                buf.put_slice(&[byte]);
                self.first = None;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_prefix_waits_for_a_buffer_with_room() {
        let mut prefixed = super::Prefixed::new(b'G', &b"ET /"[..]);
        let mut none = [0u8; 0];
        assert_eq!(prefixed.read(&mut none).await.unwrap(), 0);
        let mut all = Vec::new();
        prefixed.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET /");
    }
}
