//! `/{proxy}/{host}/{path…}` on the API port: the same pipeline for clients that cannot use
//! a proxy (`vault run --no-mitm`). `Authorization: Bearer <token>` and `X-Vault` select the
//! scope; both are removed before the request goes upstream, always over HTTPS.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::{Ingress, Proxy, error_response, forward};
use crate::broker::{BrokerError, proxy_auth};
use crate::target::{Scheme, Target};

/// `host[:port]` from the first path segment; always HTTPS.
fn target(authority: &str) -> Result<Target, BrokerError> {
    Target::from_authority(Scheme::Https, authority).map_err(|e| {
        BrokerError::bad_request(
            "invalid_request",
            format!("{e}: use /proxy/<host>[:<port>]/<path>, for example /proxy/api.stripe.com/v1/charges"),
        )
    })
}

/// Handles one request whose raw path starts with `/proxy/` (kept raw: percent-encoding in
/// the upstream path must survive).
pub async fn handle(proxy: Arc<Proxy>, mut request: Request) -> Response {
    let raw = request
        .uri()
        .path()
        .strip_prefix("/proxy/")
        .unwrap_or_default()
        .to_owned();
    let (authority, path) = raw.split_once('/').unwrap_or((raw.as_str(), ""));
    let peer = crate::limits::http::peer_of(&request);
    let result = async {
        let target = target(authority).map_err(|e| error_response(&e))?;
        let credentials = proxy_auth::from_api_headers(request.headers()).map_err(|e| {
            let presented = request.headers().contains_key(http::header::AUTHORIZATION);
            super::auth_failed(&proxy, peer, e, presented)
        })?;
        let scope = super::authenticate(&proxy, peer, &credentials).await?;
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        *request.uri_mut() = format!("/{path}{query}").parse().map_err(|_| {
            error_response(&BrokerError::bad_request(
                "invalid_request",
                "the request path is not a valid URI",
            ))
        })?;
        Ok((target, scope))
    }
    .await;
    let response = match result {
        Ok((target, scope)) => forward(&proxy, &scope, &target, Ingress::Explicit, request).await,
        Err(response) => response,
    };
    response.map(Body::new).into_response()
}
