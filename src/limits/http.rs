//! HTTP for the limits: the `429` answer (JSON for the API and the proxy, a short page for the
//! browser), a body wrapper that holds concurrency slots until a response is finished, and
//! the gate in front of the API port (GLOBAL, then AUTH on the anonymous sign-in routes).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper::body::Frame;
use tokio::sync::OwnedSemaphorePermit;

use super::{Admitted, Limits, Refusal};

/// Marks a refusal as the broker's own on the proxy (the agent can tell it from an upstream
/// 429).
const BROKER_ERROR_HEADER: &str = crate::broker::BROKER_ERROR_HEADER;
const LIMIT_HEADER: &str = "x-ratelimit-limit";
const REMAINING_HEADER: &str = "x-ratelimit-remaining";

/// Where a refusal is shown, which decides its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Api,
    Proxy,
    Browser,
}

impl Audience {
    fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/") || path == "/health" {
            Audience::Api
        } else if path.starts_with("/proxy/") {
            Audience::Proxy
        } else {
            Audience::Browser
        }
    }
}

/// The `429`: `Retry-After`, `X-RateLimit-Limit`/`-Remaining`, and a body naming the tier.
pub fn too_many_requests(refusal: &Refusal, audience: Audience) -> http::Response<String> {
    crate::metrics::global().rate_limited(refusal.tier.as_str());
    let message = refusal.message();
    let (content_type, body) = match audience {
        Audience::Browser => (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html><meta charset=utf-8><title>Too many requests</title><h1>Too many requests</h1><p>{}</p>",
                // The message is ours (no user input), but keep the page inert anyway.
                message.replace('<', "&lt;")
            ),
        ),
        Audience::Api | Audience::Proxy => (
            "application/json",
            serde_json::json!({
                "error": "too_many_requests",
                "tier": refusal.tier,
                "message": message,
                "retry_after": refusal.retry_after_secs(),
            })
            .to_string(),
        ),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(refusal.retry_after_secs()),
    );
    headers.insert(LIMIT_HEADER, HeaderValue::from(refusal.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(0u32));
    if audience == Audience::Proxy {
        headers.insert(BROKER_ERROR_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// Reports what is left of a budget on an admitted request.
pub fn report(headers: &mut HeaderMap, admitted: &Admitted) {
    if admitted.limit > 0 {
        headers.insert(LIMIT_HEADER, HeaderValue::from(admitted.limit));
        headers.insert(REMAINING_HEADER, HeaderValue::from(admitted.remaining));
    }
}

/// A body that keeps concurrency slots until it is finished or dropped, so a streaming
/// response counts as in flight for as long as it streams.
pub struct HoldBody<B> {
    inner: B,
    _slots: Vec<OwnedSemaphorePermit>,
}

impl<B> HoldBody<B> {
    pub fn new(inner: B, slots: Vec<OwnedSemaphorePermit>) -> Self {
        Self {
            inner,
            _slots: slots,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for HoldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The budget key of a client address. An IPv6 client is keyed by its /64: one host usually
/// holds a whole /64, so per-address keys would give it 2^64 budgets.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The peer of a request on the API port (set by the listener); unknown peers share a key.
/// The client's address as a handler argument (`None` where the server was built without
/// connection info, as in tests of a router alone).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(&parts.extensions)))
    }
}

pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

pub fn peer_of(request: &Request) -> Option<IpAddr> {
    client_ip(request.extensions())
}

/// Which anonymous route this is, and what besides the address it is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthRoute {
    /// The account named by the `email` field of the body (JSON or form), when given.
    Account,
    /// The token in the path.
    PathToken,
    /// The `token` query parameter (GET) or form field (POST), and an `email` field if any.
    LinkToken,
    /// The address only.
    Address,
    /// A password check by a signed-in user: the session (bearer token or cookie) that asks,
    /// so a stolen session guesses its account's password no faster than a sign-in would.
    Session,
}

fn auth_route(method: &Method, path: &str) -> Option<(AuthRoute, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let post = method == Method::POST;
    let get = method == Method::GET || method == Method::HEAD;
    let route = match segments.as_slice() {
        ["v1", "auth", "register" | "login" | "verify"] if post => AuthRoute::Account,
        ["login" | "register" | "verify" | "setup"] if post => AuthRoute::Account,
        ["v1", "invites", token] | ["v1", "agent-invites", token] | ["invite", token]
            if get || post =>
        {
            return Some((AuthRoute::PathToken, Some((*token).to_owned())));
        }
        ["v1", "invites", token, "accept"] | ["v1", "agent-invites", token, "redeem"] if post => {
            return Some((AuthRoute::PathToken, Some((*token).to_owned())));
        }
        ["approve", _, _] if get || post => AuthRoute::LinkToken,
        ["v1", "auth", "change-password"] | ["account", "password"] if post => AuthRoute::Session,
        ["auth", "google", "callback"] if get => AuthRoute::Address,
        _ => return None,
    };
    Some((route, None))
}

/// Fields of a small body, JSON or a form, whatever its `Content-Type` says: the handlers
/// read a body by their own rules (the API as JSON under any type, a web form under any type
/// that starts like one), so trusting the header here would let a sign-in go uncharged to its
/// account.
fn body_fields(body: &[u8]) -> Vec<(String, String)> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect(),
        _ => serde_urlencoded::from_bytes(body).unwrap_or_default(),
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// Accounts and tokens are keyed by a hash: the table never holds a token, and a huge email
/// makes a key of fixed size. The same key whether or not the account exists.
fn account_key(email: &str) -> String {
    let normalized = crate::store::users::normalize_email(email);
    format!("acct:{}", &crate::crypto::hash_token(&normalized)[..32])
}

fn token_key(token: &str) -> String {
    format!("tok:{}", &crate::crypto::hash_token(token.trim())[..32])
}

/// Largest body read to find the account of a sign-in request (the API refuses bigger ones
/// anyway).
const AUTH_BODY_LIMIT: usize = 1024 * 1024;

/// The gate in front of every route of the API port: GLOBAL (rate and in flight; the
/// `/proxy/` data path counts in flight only), then AUTH on the anonymous routes.
pub async fn gate(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let audience = Audience::of_path(path);
    // `/proxy/…` is the data path: no rate here (its PROXY tier has one), but it counts
    // against its address's share like the rest, or one member's slow upstreams would hold
    // every slot of the port (a red team's did, from one address).
    let data_path = audience == Audience::Proxy;
    let address = peer_of(&request).map(address_key);
    let global = match limits.global_api(!data_path, address.as_deref()).await {
        Ok(admitted) => admitted,
        Err(refusal) => return too_many_requests(&refusal, audience).map(Body::from),
    };
    let request = if data_path {
        request
    } else {
        request.map(|body| {
            if hyper::body::Body::is_end_stream(&body) {
                body
            } else {
                Body::new(BodyDeadline::new(body, API_BODY_WAIT))
            }
        })
    };
    let path = request.uri().path();
    let (response, admitted) = match auth_route(request.method(), path) {
        None => (next.run(request).await, None),
        Some(route) => match charge_auth(&limits, route, request).await {
            Ok((request, admitted)) => (next.run(request).await, Some(admitted)),
            Err(response) => (*response, None),
        },
    };
    let mut response = response;
    if let Some(admitted) = &admitted {
        report(response.headers_mut(), admitted);
    }
    if global.slots.is_empty() {
        response
    } else {
        response.map(|body| Body::new(HoldBody::new(body, global.slots)))
    }
}

/// How long any other body on the API port (at most 1 MiB; `/proxy/…` aside) may take once
/// its headers are in: a red team held slots with bodies it never sent on every route the
/// sign-in deadline did not cover (invite acceptance, session renewal, web forms).
const API_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request body that fails once its deadline passes before it has ended: whatever reads it
/// then answers (413, "could not be read"), and its slots are free.
struct BodyDeadline {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl BodyDeadline {
    fn new(body: Body, wait: std::time::Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(wait)),
        }
    }
}

impl hyper::body::Body for BodyDeadline {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => Poll::Ready(Some(Err(
                axum::Error::new("the request body did not arrive in time"),
            ))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The API's own answer to an unreadable or oversized body, in its error shape.
fn too_large() -> Response {
    refused_body(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large or could not be read (limit 1 MiB)",
    )
}

/// How long a sign-in form's body may take once its headers are in. These bodies are a few
/// hundred bytes; until they arrive the request holds its slots, and a red team held every
/// slot of the API port with bodies it never sent.
const AUTH_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn too_slow() -> Response {
    let mut response = refused_body(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request body did not arrive within 10 s of its headers; send it whole",
    );
    // The rest of the body may still come; it is not read.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn refused_body(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": message });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Charges a sign-in route to its address and account or token; the body, if read, is put
/// back for the handler.
async fn charge_auth(
    limits: &Limits,
    (route, path_token): (AuthRoute, Option<String>),
    request: Request,
) -> Result<(Request, Admitted), Box<Response>> {
    let audience = Audience::of_path(request.uri().path());
    let address = peer_of(&request).map_or_else(|| "ip:unknown".to_owned(), address_key);
    let mut keys = vec![address];
    let request = match route {
        AuthRoute::Address => request,
        AuthRoute::PathToken => {
            if let Some(token) = path_token {
                keys.push(token_key(&token));
            }
            request
        }
        // The body is read (it is small) even where nothing in it is charged: a refusal sent
        // before the body was read closes the connection, and a client still sending it
        // would see a broken pipe instead of the 429.
        AuthRoute::Account | AuthRoute::LinkToken | AuthRoute::Session => {
            if route == AuthRoute::Session {
                use crate::web::session::{SESSION_COOKIE, cookie};
                let headers = request.headers();
                let session = crate::api::auth::bearer_token_of(headers)
                    .map(str::to_owned)
                    .or_else(|| cookie(headers, SESSION_COOKIE));
                if let Some(session) = session {
                    keys.push(token_key(&session));
                }
            }
            let query_token = request.uri().query().and_then(|q| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .ok()?
                    .into_iter()
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v)
            });
            // A body declared too big is left to the handler, which refuses it unread.
            let oversized = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .is_some_and(|n| n > AUTH_BODY_LIMIT);
            let (parts, body) = request.into_parts();
            if oversized || parts.method != Method::POST {
                let request = Request::from_parts(parts, body);
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                return match limits.auth(&keys) {
                    Ok(admitted) => Ok((request, admitted)),
                    Err(refusal) => Err(Box::new(
                        too_many_requests(&refusal, audience).map(Body::from),
                    )),
                };
            }
            let read = axum::body::to_bytes(body, AUTH_BODY_LIMIT);
            let bytes = match tokio::time::timeout(AUTH_BODY_WAIT, read).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(_)) => return Err(Box::new(too_large())),
                Err(_) => return Err(Box::new(too_slow())),
            };
            let fields = body_fields(&bytes);
            if route == AuthRoute::LinkToken
                && let Some(token) = query_token.as_deref().or(field(&fields, "token"))
            {
                keys.push(token_key(token));
            }
            // A password change is charged to its session, not to an address in its form.
            if route != AuthRoute::Session
                && let Some(email) = field(&fields, "email")
            {
                keys.push(account_key(email));
            }
            Request::from_parts(parts, Body::from(bytes))
        }
    };
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    match limits.auth(&keys) {
        Ok(admitted) => Ok((request, admitted)),
        Err(refusal) => Err(Box::new(
            too_many_requests(&refusal, audience).map(Body::from),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let post = Method::POST;
        assert_eq!(
            auth_route(&post, "/v1/auth/login").map(|r| r.0),
            Some(AuthRoute::Account)
        );
        assert_eq!(
            auth_route(&Method::GET, "/v1/invites/av_uinv_x"),
            Some((AuthRoute::PathToken, Some("av_uinv_x".into())))
        );
        assert_eq!(
            auth_route(&post, "/v1/agent-invites/t/redeem").map(|r| r.0),
            Some(AuthRoute::PathToken)
        );
        assert_eq!(
            auth_route(&Method::GET, "/approve/default/3").map(|r| r.0),
            Some(AuthRoute::LinkToken)
        );
        assert_eq!(
            auth_route(&post, "/v1/auth/change-password").map(|r| r.0),
            Some(AuthRoute::Session)
        );
        assert_eq!(
            auth_route(&post, "/account/password").map(|r| r.0),
            Some(AuthRoute::Session)
        );
        assert_eq!(auth_route(&Method::GET, "/login"), None);
        assert_eq!(auth_route(&post, "/v1/auth/logout"), None);
        assert_eq!(auth_route(&post, "/v1/vaults"), None);
    }

    #[test]
    fn sign_in_fields_are_found_whatever_the_declared_type() {
        let email = |body: &str| field(&body_fields(body.as_bytes()), "email").map(str::to_owned);
        let victim = Some("victim@example.com".to_owned());
        assert_eq!(
            email(r#"{"email":"victim@example.com","password":"x"}"#),
            victim
        );
        assert_eq!(email("email=victim%40example.com&password=x"), victim);
        assert_eq!(email("[1, 2]"), None);
    }

    #[test]
    fn keys_hide_tokens_and_fold_ipv6() {
        assert_eq!(address_key("10.1.2.3".parse().unwrap()), "ip:10.1.2.3");
        assert_eq!(
            address_key("::ffff:10.1.2.3".parse().unwrap()),
            "ip:10.1.2.3"
        );
        assert_eq!(
            address_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            address_key("2001:db8:1:2:ffff::1".parse().unwrap())
        );
        assert!(!token_key("av_uinv_secret").contains("secret"));
        assert_eq!(account_key(" A@Example.com"), account_key("a@example.com"));
        assert_eq!(
            account_key("rene\u{301}e@x.com"),
            account_key("ren\u{e9}e@x.com")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_fails_at_its_deadline() {
        let silent = Body::from_stream(futures_util::stream::pending::<
            Result<bytes::Bytes, std::io::Error>,
        >());
        let wait = std::time::Duration::from_secs(30);
        let started = tokio::time::Instant::now();
        let read = axum::body::to_bytes(Body::new(BodyDeadline::new(silent, wait)), 1024).await;
        assert!(read.is_err());
        assert_eq!(started.elapsed(), wait);
        let whole = Body::new(BodyDeadline::new(Body::from("{}"), wait));
        assert_eq!(axum::body::to_bytes(whole, 1024).await.unwrap(), "{}");
    }

    #[test]
    fn a_refusal_names_the_tier_and_when_to_return() {
        let refusal = Refusal {
            tier: super::super::Tier::Proxy,
            limit: 5,
            retry_after: std::time::Duration::from_millis(1200),
            concurrency: false,
            shared: false,
        };
        let response = too_many_requests(&refusal, Audience::Proxy);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(response.headers()[BROKER_ERROR_HEADER], "true");
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["error"], "too_many_requests");
        assert_eq!(body["tier"], "PROXY");
    }
}
