//! The one pipeline both ingresses share: plan with the broker, rewrite the request, send it
//! upstream, stream the answer back, and record what happened.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};

use super::Proxy;
use super::deadline;
use super::http1_hosts::Verdict;
use super::scrubbed::{Inflate, ScrubbedBody};
use super::upstream::{BoxError, ProxyBody};
use super::websocket;
use crate::broker::scrub::{self, BodyScrub, Scrubber};
use crate::broker::{BrokerError, Scope, plan, rewrite};
use crate::ceilings::body_budget::{BodyBudget, Refused, Reservation};
use crate::limits::http::HoldBody;
use crate::limits::{Admitted, Refusal};
use crate::services::Surface;
use crate::store::now;
use crate::store::request_log::Record;
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    Mitm,
    Explicit,
}

impl Ingress {
    fn as_str(self) -> &'static str {
        match self {
            Self::Mitm => "mitm",
            Self::Explicit => "explicit",
        }
    }
}

/// The method for the request log, without an allocation for the standard ones.
fn method_name(method: &Method) -> Cow<'static, str> {
    let standard = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
    ];
    match standard.into_iter().find(|(m, _)| m == method) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(method.as_str().to_owned()),
    }
}

pub fn error_response(err: &BrokerError) -> Response<ProxyBody> {
    err.to_response()
        .map(|body| body.map_err(|e| -> BoxError { match e {} }).boxed_unsync())
}

/// Why an upstream's TLS failed, in words that carry nothing from its certificate.
fn tls_reason(err: &rustls::Error) -> &'static str {
    use rustls::CertificateError as Cert;
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "its certificate is not valid for this name"
            }
            Cert::UnknownIssuer => {
                "its certificate is not signed by a trusted root (add the CA with SSL_CERT_FILE on the server)"
            }
            Cert::Expired | Cert::ExpiredContext { .. } => "its certificate has expired",
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "its certificate is not valid yet"
            }
            Cert::Revoked => "its certificate is revoked",
            _ => "its certificate was refused",
        },
        rustls::Error::NoCertificatesPresented => "it presented no certificate",
        rustls::Error::AlertReceived(_) => "it refused the handshake",
        _ => "the handshake failed",
    }
}

/// Reads a whole request body for a substitution, reserving it from the process-wide
/// [`BodyBudget`] as it arrives.
async fn buffer_body<B>(
    budget: &BodyBudget,
    person: Arc<str>,
    body: B,
) -> Result<(Vec<u8>, Reservation), BrokerError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut reservation = budget.reservation_for(person);
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| agent_body_error(&AgentBodyError(e.into())))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        budget
            .reserve(&mut reservation, bytes.len() + data.len())
            .map_err(|refused| {
                body_refusal(refused, |mib| {
                    format!("the request body is over {mib} MiB; body substitution needs it whole in memory")
                })
            })?;
        bytes.extend_from_slice(&data);
    }
    Ok((bytes, reservation))
}

/// The agent's answer when the body budget refuses a body; `too_large` says it for a limit
/// in MiB.
fn body_refusal(refused: Refused, too_large: impl FnOnce(usize) -> String) -> BrokerError {
    match refused {
        Refused::TooLarge { limit } => BrokerError::too_large(too_large(limit / (1024 * 1024))),
        Refused::Busy => BrokerError::busy(
            "the server is holding as many request bodies for substitution as it may; retry shortly",
        ),
    }
}

/// Sends `request` (already authenticated as `scope`) to `target`.
pub async fn forward<B>(
    proxy: &Proxy,
    scope: &Scope,
    target: &Target,
    ingress: Ingress,
    request: Request<B>,
) -> Response<ProxyBody>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let mut record = Record {
        vault_id: scope.vault_id.clone(),
        actor_type: Some(scope.actor_type),
        actor_id: scope.actor_id.clone(),
        ingress: ingress.as_str(),
        method: method_name(&method),
        host: target.host_port_shared(),
        path,
        service: None,
        credential_keys: Arc::from([]),
        status: 0,
        duration_ms: 0,
        error_code: None,
        created_at: now(),
    };
    // PROXY: charged per principal and vault; the slots in flight are held by the body.
    let response = match admit(proxy, scope, ingress).await {
        Err(refusal) => {
            record.error_code = Some(refusal.code());
            super::refuse_limited(&refusal)
        }
        Ok(admitted) => {
            // Boxed: the pipeline's future is large, and the layers above move theirs
            // several times per request (memcpy showed in profiles; one allocation is less).
            let result = Box::pin(send(proxy, scope, target, ingress, request, &mut record)).await;
            let response = match result {
                Ok(response) => response,
                Err(err) => {
                    record.error_code = Some(err.code);
                    error_response(&err)
                }
            };
            if admitted.slots.is_empty() {
                response
            } else {
                response.map(|body| HoldBody::new(body, admitted.slots).boxed_unsync())
            }
        }
    };
    record.status = response.status().as_u16();
    record.duration_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        ingress = record.ingress,
        method = %method,
        host = %record.host,
        path = %record.path,
        service = record.service.as_deref().unwrap_or("-"),
        credential_keys = ?record.credential_keys,
        status = record.status,
        duration_ms = record.duration_ms,
        error = record.error_code.unwrap_or(""),
        "proxied request"
    );
    proxy.broker.audit.record(record);
    response
}

/// The request's slots: its token's and its person's, then, on the proxy port, one among all
/// requests in flight there. That one comes last, so that requests waiting for their own
/// token's or person's slot hold none of everyone else's: they could fill the ceiling.
async fn admit(proxy: &Proxy, scope: &Scope, ingress: Ingress) -> Result<Admitted, Refusal> {
    let mut admitted = proxy
        .limits
        .proxy(&scope.limit_key, &scope.share_key)
        .await?;
    // On the API port, the API's own ceilings have admitted the request already.
    if ingress == Ingress::Mitm
        && let Some(slot) = proxy.limits.global_proxy().await?
    {
        admitted.slots.push(slot);
    }
    Ok(admitted)
}

async fn send<B>(
    proxy: &Proxy,
    scope: &Scope,
    target: &Target,
    ingress: Ingress,
    request: Request<B>,
    record: &mut Record,
) -> Result<Response<ProxyBody>, BrokerError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let snapshot = proxy.broker.snapshot(&scope.vault_id).await?;
    let (mut parts, body) = request.into_parts();
    let (matched, plan) = plan(
        &snapshot,
        target.bare_host(),
        target.port(),
        parts.uri.path(),
        target.is_https(),
    );
    if let Some(matched) = matched {
        record.service = Some(matched.service.clone());
        record.credential_keys = matched.credential_keys.clone();
    }
    let plan = plan?;

    parts.uri = {
        // Borrows the old URI (no copy when nothing is replaced) until the new one is made.
        let rewritten = rewrite::rewrite_path_and_query(
            parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            &plan.substitutions,
        )?;
        target.uri(&rewritten).map_err(|_| {
            BrokerError::bad_request("invalid_request", "the request path is not a valid URI")
        })?
    };
    // The agent's protocol is kept where the upstream agrees to it (see `http1_hosts`).
    let http1_agent = parts.version < http::Version::HTTP_2;
    parts.version = http::Version::HTTP_11;

    let websocket = websocket::Opening::of(&parts);
    rewrite::strip_request_headers(&mut parts.headers);
    if matches!(ingress, Ingress::Explicit) {
        // On the API port, Authorization carried the broker token, not an upstream credential.
        parts.headers.remove(header::AUTHORIZATION);
    }
    // The upstream client derives `Host` (HTTP/1.1) or `:authority` (HTTP/2) from the URI;
    // a `Host` header on an HTTP/2 request would be a second, conflicting authority.
    parts.headers.remove(header::HOST);
    rewrite::apply_headers(&mut parts.headers, &plan)?;
    if plan.scrubber.is_some() {
        // A compressed body cannot be scanned for the credential, and a range could cut it
        // into pieces the scan cannot recognise: a scrubbed response comes whole.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        parts.headers.remove(header::RANGE);
        parts.headers.remove(header::IF_RANGE);
    }
    let head_only = parts.method == Method::HEAD;
    if let Some(opening) = websocket {
        // Boxed, like the other rare paths: the pipeline's future is as large as its largest
        // state, and it is moved per request.
        return Box::pin(upgrade(proxy, target, opening, parts, body, &plan)).await;
    }

    let substitute_body =
        plan.wants(Surface::Body) && !parts.headers.contains_key(header::CONTENT_ENCODING);
    let body: ProxyBody = if substitute_body {
        let (bytes, mut reservation) =
            buffer_body(&proxy.body_budget, scope.share_key.clone(), body).await?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        // The rewritten body counts against the budget too, before it is made: credential
        // values are longer than their placeholders.
        let replaced = rewrite::rewrite_body(&bytes, content_type, &plan.substitutions, |len| {
            proxy.body_budget.reserve(&mut reservation, len)
        })
        .map_err(|refused| {
            body_refusal(refused, |mib| {
                format!("the request body would be over {mib} MiB with its credentials substituted")
            })
        })?;
        drop(bytes);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(replaced.len()));
        Full::new(Bytes::from(replaced))
            .map_err(|e| -> BoxError { match e {} })
            // The closure owns the reservation: it returns to the budget when the body is
            // dropped, that is once it has been sent or the request failed.
            .map_frame(move |frame| {
                let _held = &reservation;
                frame
            })
            .boxed_unsync()
    } else {
        body.map_err(|e| -> BoxError { Box::new(AgentBodyError(e.into())) })
            .boxed_unsync()
    };
    if parts.method == Method::CONNECT {
        return Err(BrokerError::bad_request(
            "invalid_request",
            "CONNECT inside a tunnel is not supported (HTTP/2 extended CONNECT only with :protocol websocket)",
        ));
    }

    let http1 = if http1_agent && target.is_https() {
        proxy.http1_hosts.verdict(target)
    } else {
        Verdict::Other
    };
    let (body, uploading) = deadline::watch(body);
    let request = Request::from_parts(parts, body);
    let sent = std::pin::pin!(async {
        if http1 == Verdict::Http1 {
            proxy
                .http1_pool
                .send(&scope.vault_id, target, request, uploading.clone())
                .await
        } else {
            let response = proxy.upstream.of(&scope.vault_id).request(request).await?;
            Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
        }
    });
    let limit = proxy.timeouts.response;
    let upstream = deadline::within(limit, target, "answer", uploading.as_ref(), sent)
        .await?
        .map_err(|e: BoxError| upstream_error(target.host_port(), &*e, &plan))?;
    if http1 == Verdict::Unknown {
        proxy.http1_hosts.learn(target);
    }
    let (mut parts, body) = upstream.into_parts();
    rewrite::strip_response_headers(&mut parts.headers, &plan);
    let Some(scrubber) = plan.scrubber.clone() else {
        return Ok(Response::from_parts(parts, body));
    };
    scrub_head(&mut parts, &scrubber);
    Ok(scrub_body(parts, body, scrubber, head_only).await)
}

/// The head of a response with the service's credential values replaced: the headers, and
/// no reason phrase of the upstream's own (hyper would repeat an HTTP/1 one verbatim, and it
/// may carry anything; the agent gets the standard one).
fn scrub_head(parts: &mut http::response::Parts, scrubber: &Scrubber) {
    scrubber.scrub_headers(&mut parts.headers);
    parts.extensions.remove::<hyper::ext::ReasonPhrase>();
}

/// The body with the service's credential values replaced as it streams: the marker in a
/// text body, a filler of the value's own length in a binary one. A body compressed although
/// the broker asked for none is decoded (gzip, deflate) and goes out decoded; one in another
/// coding is refused, as it cannot be scanned.
async fn scrub_body(
    mut parts: http::response::Parts,
    mut body: ProxyBody,
    scrubber: Arc<Scrubber>,
    head_only: bool,
) -> Response<ProxyBody> {
    // Codings listed on separate lines are a chain like `gzip, br`: one value stands for it.
    let mut codings = parts.headers.get_all(header::CONTENT_ENCODING).iter();
    let encoding = match (codings.next(), codings.next()) {
        (None, _) => None,
        (Some(one), None) if one.as_bytes().eq_ignore_ascii_case(b"identity") => None,
        (Some(one), None) => Some(one.clone()),
        (Some(_), Some(_)) => Some(HeaderValue::from_static("several codings")),
    };
    let inflate = encoding
        .as_ref()
        .and_then(|encoding| Inflate::for_encoding(encoding.as_bytes()));
    if inflate.is_some() {
        // Decoded, it is another representation: no length or encoding of the compressed
        // one, and its validator only weak. A HEAD or a 304 says the same as the GET would.
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        if let Some(etag) = parts.headers.get(header::ETAG)
            && !etag.as_bytes().starts_with(b"W/")
            && let Ok(weak) = HeaderValue::from_bytes(&[b"W/", etag.as_bytes()].concat())
        {
            parts.headers.insert(header::ETAG, weak);
        }
    }
    let bodiless = head_only
        || parts.status.is_informational()
        || parts.status == http::StatusCode::NO_CONTENT
        || parts.status == http::StatusCode::NOT_MODIFIED;
    if bodiless {
        // Whatever the upstream sent after such a head goes no further: HTTP/2 carries DATA
        // after a 204 or 304 that has no Content-Length, and it would reach the agent unscanned.
        return Response::from_parts(parts, empty_body());
    }
    let text = scrub::is_text(parts.headers.get(header::CONTENT_TYPE));
    if let Some(encoding) = encoding {
        let Some(inflate) = inflate else {
            let coding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
            return error_response(&BrokerError::upstream(format!(
                "the upstream compressed its response ({coding:.40}) although the broker asked for none; the broker cannot read that coding to remove credentials from it, so it does not pass it on (a service whose responses may go unscanned can set scrub_responses: false)"
            )));
        };
        let scan = if text {
            BodyScrub::new(scrubber)
        } else {
            BodyScrub::same_length(scrubber)
        };
        let body = ScrubbedBody::inflating(body, inflate, scan);
        return Response::from_parts(parts, body.boxed_unsync());
    }
    if !text {
        // Binary: the same scan, with replacements of the value's own length, so the body
        // keeps its Content-Length and a binary format its framing.
        let body = ScrubbedBody::new(None, body, BodyScrub::same_length(scrubber));
        return Response::from_parts(parts, body.boxed_unsync());
    }
    let mut first = None;
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        // A body of known length usually arrives whole with its first read: then it is
        // scrubbed at once and keeps an exact length, which spares the agent (and the broker)
        // chunked re-framing. Only that first read is awaited; a longer body streams.
        first = body.frame().await;
        let whole = match &first {
            None => Some(Bytes::new()),
            Some(Ok(frame)) if hyper::body::Body::is_end_stream(&body) => frame.data_ref().cloned(),
            _ => None,
        };
        if let Some(data) = whole {
            // Unchanged, the body keeps the upstream's Content-Length (hyper checked it).
            let clean = match scrubber.replace(&data) {
                Some(replaced) => {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(replaced.len()));
                    Bytes::from(replaced)
                }
                None => data,
            };
            let body = Full::new(clean).map_err(|e| -> BoxError { match e {} });
            return Response::from_parts(parts, body.boxed_unsync());
        }
    }
    // A replacement changes the length; the body is re-framed (chunked or HTTP/2 frames).
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        ScrubbedBody::new(first, body, BodyScrub::new(scrubber)).boxed_unsync(),
    )
}

/// A WebSocket upgrade: sent on an HTTP/1.1 connection of its own; on 101 both sides are
/// upgraded and a task relays frames until either side closes. An HTTP/2 agent's extended
/// CONNECT goes upstream as that same upgrade and is answered 200.
async fn upgrade<B>(
    proxy: &Proxy,
    target: &Target,
    opening: websocket::Opening,
    mut parts: http::request::Parts,
    body: B,
    plan: &crate::broker::Plan,
) -> Result<Response<ProxyBody>, BrokerError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let client_side = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| {
            BrokerError::bad_request(
                "invalid_request",
                "this connection cannot switch protocols (WebSockets need HTTP/1.1 to the broker)",
            )
        })?;
    let substitutions: Vec<_> = plan
        .substitutions
        .iter()
        .filter(|s| s.surfaces.contains(&Surface::Ws))
        .cloned()
        .collect();
    let to_upstream = (!substitutions.is_empty())
        .then(|| websocket::Rewrite::Substitute(std::sync::Arc::new(substitutions)));
    let to_client = plan.scrubber.clone().map(websocket::Rewrite::Scrub);
    // An HTTP/2 WebSocket is a stream of a connection that lives on: its relay holds the
    // tunnel open as a request in flight would.
    let held = parts.extensions.remove::<super::listener::InFlight>();
    let key = (opening == websocket::Opening::ExtendedConnect)
        .then(|| websocket::connect_to_upgrade(&mut parts));
    websocket::restore_upgrade_headers(
        &mut parts.headers,
        to_upstream.is_some() || to_client.is_some(),
    );
    let request = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
    let sent = std::pin::pin!(proxy.upgrade_client.request(request));
    let what = "answer the WebSocket upgrade";
    let mut response = deadline::within(proxy.timeouts.response, target, what, None, sent)
        .await?
        .map_err(|e| upstream_error(target.host_port(), &e, plan))?;
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if let Some(key) = key.as_deref().filter(|_| switching)
        && !websocket::accepts(response.headers(), key)
    {
        return Err(BrokerError::upstream(format!(
            "{} answered the WebSocket upgrade without the Sec-WebSocket-Accept value RFC 6455 requires",
            target.host_port()
        )));
    }
    let upstream_side = switching.then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    rewrite::strip_response_headers(&mut parts.headers, plan);
    if let Some(scrubber) = &plan.scrubber {
        scrub_head(&mut parts, scrubber);
    }
    let Some(upstream_side) = upstream_side else {
        // Refused (200, 401, …): an ordinary response, scrubbed like one.
        let body = body.map_err(Into::into).boxed_unsync();
        return Ok(match plan.scrubber.clone() {
            Some(scrubber) => scrub_body(parts, body, scrubber, false).await,
            None => Response::from_parts(parts, body),
        });
    };
    if key.is_some() {
        // RFC 8441: the CONNECT succeeds with 200; the accept value was for the broker.
        parts.status = http::StatusCode::OK;
        parts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
    } else {
        websocket::restore_upgrade_headers(&mut parts.headers, false);
    }
    let host = target.host_port().to_owned();
    tokio::spawn(async move {
        let _held = held;
        match tokio::try_join!(client_side, upstream_side) {
            Ok((client, upstream)) => {
                websocket::relay(
                    hyper_util::rt::TokioIo::new(client),
                    hyper_util::rt::TokioIo::new(upstream),
                    to_upstream,
                    to_client,
                )
                .await
            }
            Err(e) => tracing::debug!(%host, "WebSocket upgrade did not complete: {e}"),
        }
    });
    Ok(Response::from_parts(parts, empty_body()))
}

fn empty_body() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|e| -> BoxError { match e {} })
        .boxed_unsync()
}

/// The agent's request body broke off or was malformed while it streamed upstream: the
/// agent's fault, which must not be reported as an unreachable upstream.
#[derive(Debug)]
struct AgentBodyError(BoxError);

impl std::fmt::Display for AgentBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body could not be read from the agent")
    }
}

impl std::error::Error for AgentBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

fn agent_body_error(err: &AgentBodyError) -> BrokerError {
    // hyper's reasons ("invalid chunk size", "connection reset") name no bytes of the body.
    BrokerError::bad_request(
        "invalid_request",
        format!(
            "{err}: {}; send a complete body, framed by Content-Length or valid chunked encoding",
            with_sources(&*err.0)
        ),
    )
}

/// Names why the upstream could not be reached, without echoing anything the agent sent.
fn upstream_error(
    host: &str,
    err: &(dyn std::error::Error + 'static),
    plan: &crate::broker::Plan,
) -> BrokerError {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<AgentBodyError>() {
            return agent_body_error(body);
        }
        if let Some(guard) = e.downcast_ref::<crate::netguard::GuardError>() {
            return if guard.is_policy() {
                // Which range the name resolved to stays in the server log: telling the agent
                // would map the internal network one name at a time.
                tracing::warn!(host, "network guard refused the upstream: {guard}");
                BrokerError::forbidden(
                    "blocked_destination",
                    format!(
                        "{host}: the network guard refuses this destination (a private, loopback, link-local or metadata address); the operator can open it with AGENT_VAULT_NETWORK_ALLOWLIST"
                    ),
                )
            } else {
                BrokerError::upstream(format!("cannot reach {host}: {guard}"))
            };
        }
        if let Some(tls) = crate::roots::rustls_error(e) {
            // The full error (with the names the certificate does carry) is for the operator.
            tracing::warn!(host, "TLS with the upstream failed: {tls}");
            return BrokerError::upstream(format!("TLS with {host} failed: {}", tls_reason(tls)));
        }
        source = e.source();
    }
    // The source chain carries the real reason ("Connection refused", a DNS failure...),
    // and can quote what the upstream sent (an HTTP/2 GOAWAY's debug data): scrubbed like a
    // response.
    let mut reason = with_sources(err);
    if let Some(clean) = plan
        .scrubber
        .as_ref()
        .and_then(|s| s.replace(reason.as_bytes()))
    {
        reason = String::from_utf8_lossy(&clean).into_owned();
    }
    BrokerError::upstream(format!("cannot reach {host}: {reason}"))
}

/// An error's text followed by its sources', each after a colon.
fn with_sources(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text = format!("{text}: {e}");
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_follows_a_head_that_has_no_body() {
        let scrubber = Arc::new(Scrubber::new(["sk-SECRET-123"], []).unwrap());
        for status in [http::StatusCode::NO_CONTENT, http::StatusCode::NOT_MODIFIED] {
            let (mut parts, ()) = Response::new(()).into_parts();
            parts.status = status;
            let body = Full::new(Bytes::from_static(b"echo: sk-SECRET-123"))
                .map_err(|e| -> BoxError { match e {} })
                .boxed_unsync();
            let response = scrub_body(parts, body, scrubber.clone(), false).await;
            let sent = response.into_body().collect().await.unwrap().to_bytes();
            assert!(sent.is_empty(), "{status}: {sent:?}");
        }
    }
}
