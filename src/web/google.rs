//! "Sign in with Google": OpenID Connect's authorization-code flow with PKCE, state and nonce,
//! through the `openidconnect` crate. The issuer is discovered from
//! `AGENT_VAULT_OAUTH_GOOGLE_ISSUER` (default `https://accounts.google.com`), so tests and
//! Google-compatible providers can stand in; the redirect URI is
//! `<AGENT_VAULT_ADDR>/auth/google/callback`.
//!
//! Stance: the state, nonce and PKCE verifier travel in one cookie sealed with AES-256-GCM
//! under a key derived from the DEK (`HttpOnly`, `SameSite=Lax` so it comes back on the
//! provider's redirect, ten minutes), so a callback is accepted only in the browser that
//! started the flow, once. The ID token is verified — signature against the provider's keys,
//! issuer, audience, expiry, nonce — and its email must be verified by the provider. The
//! account is then found or created under `auth register`'s rules
//! ([`crate::ops::accounts::sign_in_verified_email`]). No code, token or secret is logged or
//! put in a URL of ours; the HTTP client follows no redirects (SSRF).

use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::layout::page;
use super::session::{Web, cookie, safe_next};
use crate::crypto::{Key, open, seal};
use crate::ops::accounts;
use crate::ops::{AppState, GoogleConfig};
use crate::store::now;

/// The environment variables that configure Google sign-in.
pub const CLIENT_ID_ENV: &str = "AGENT_VAULT_OAUTH_GOOGLE_CLIENT_ID";
pub const CLIENT_SECRET_ENV: &str = "AGENT_VAULT_OAUTH_GOOGLE_CLIENT_SECRET";
pub const ISSUER_ENV: &str = "AGENT_VAULT_OAUTH_GOOGLE_ISSUER";
pub const DEFAULT_ISSUER: &str = "https://accounts.google.com";
/// The path the provider sends the browser back to.
pub const CALLBACK_PATH: &str = "/auth/google/callback";

const FLOW_COOKIE: &str = "av_oidc";
const FLOW_TTL: i64 = 10 * 60;
const FLOW_AAD: &[u8] = b"agent-vault web oidc flow v1";

/// Reads the Google sign-in settings: both the client id and secret, or neither. The issuer
/// must be `https://`, or `http://` on a loopback address (a local test provider).
pub fn config_from_env(
    client_id: Option<String>,
    client_secret: Option<String>,
    issuer: Option<String>,
) -> Result<Option<GoogleConfig>, String> {
    let present = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (id, secret) = match (present(client_id), present(client_secret)) {
        (None, None) => return Ok(None),
        (Some(id), Some(secret)) => (id, secret),
        (Some(_), None) => {
            return Err(format!(
                "{CLIENT_ID_ENV} is set but {CLIENT_SECRET_ENV} is not; set both (from the Google Cloud console's OAuth client) or neither"
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "{CLIENT_SECRET_ENV} is set but {CLIENT_ID_ENV} is not; set both or neither"
            ));
        }
    };
    let issuer = present(issuer).unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
    let issuer = issuer.trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&issuer)
        .map_err(|e| format!("{ISSUER_ENV} \"{issuer}\" is not a URL ({e})"))?;
    let loopback = match parsed.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "{ISSUER_ENV} must be an https:// URL (http:// only on a loopback address, for testing); got \"{issuer}\""
            ));
        }
    }
    Ok(Some(GoogleConfig {
        client_id: id,
        client_secret: secret.as_str().into(),
        issuer,
    }))
}

/// Whether Google sign-in is configured.
pub fn enabled(state: &AppState) -> bool {
    state.config.google.is_some()
}

/// What the flow cookie carries between the start and the callback.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    expires_at: i64,
    next: String,
}

fn flow_key(dek: &Key) -> Key {
    let mut hash = Sha256::new();
    hash.update(b"agent-vault web oidc cookie key\n");
    hash.update(dek.as_bytes());
    Key::from_bytes(hash.finalize().into())
}

fn seal_flow(dek: &Key, flow: &Flow) -> Option<String> {
    let plain = serde_json::to_vec(flow).ok()?;
    let sealed = seal(&flow_key(dek), FLOW_AAD, &plain).ok()?;
    Some(URL_SAFE_NO_PAD.encode(sealed))
}

fn open_flow(dek: &Key, value: &str) -> Option<Flow> {
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = open(&flow_key(dek), FLOW_AAD, &sealed).ok()?;
    serde_json::from_slice(&plain).ok()
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // Following redirects would let a provider document point us anywhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

async fn discover(
    config: &GoogleConfig,
    http: &reqwest::Client,
) -> Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(config.issuer.clone())
        .map_err(|e| format!("the issuer URL is not valid: {e}"))?;
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| {
            format!(
                "cannot read the provider's discovery document at {}: {e}",
                config.issuer
            )
        })
}

fn problem(web: Web, status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.notice.error role="alert" { (message) }
        p { a href="/login" { "Back to sign-in" } }
    };
    let markup = page(&web, "Google sign-in", body);
    web.render(status, markup)
}

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `GET /auth/google`: sends the browser to the provider.
pub async fn start(mut web: Web, Query(query): Query<StartQuery>) -> Response {
    let Some(config) = web.state.config.google.clone() else {
        return problem(
            web,
            StatusCode::NOT_FOUND,
            "Google sign-in is not configured on this server.",
        );
    };
    let http = match http_client() {
        Ok(http) => http,
        Err(e) => return problem(web, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let metadata = match discover(&config, &http).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("Google sign-in: {e}");
            return problem(
                web,
                StatusCode::BAD_GATEWAY,
                "The sign-in provider cannot be reached; try again later.",
            );
        }
    };
    let redirect = match RedirectUrl::new(format!("{}{CALLBACK_PATH}", web.state.config.base_url)) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                web,
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("AGENT_VAULT_ADDR does not make a valid redirect URI: {e}"),
            );
        }
    };
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.expose().to_owned())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let flow = Flow {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        expires_at: now() + FLOW_TTL,
        next: safe_next(query.next.as_deref()),
    };
    let Some(sealed) = seal_flow(&web.state.dek, &flow) else {
        return problem(
            web,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in could not start.",
        );
    };
    web.set_temporary_cookie(FLOW_COOKIE, &sealed, FLOW_TTL);
    web.redirect(url.as_str())
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /auth/google/callback`: checks the state, exchanges the code, verifies the ID token,
/// and signs the verified email in.
pub async fn callback(
    mut web: Web,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let flow = cookie(&headers, FLOW_COOKIE).and_then(|v| open_flow(&web.state.dek, &v));
    // The flow is single-use whatever happens next.
    web.set_temporary_cookie(FLOW_COOKIE, "", 0);
    let Some(config) = web.state.config.google.clone() else {
        return problem(
            web,
            StatusCode::NOT_FOUND,
            "Google sign-in is not configured on this server.",
        );
    };
    if let Some(error) = &query.error {
        let error: String = error
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(64)
            .collect();
        return problem(
            web,
            StatusCode::UNAUTHORIZED,
            &format!("The provider did not sign you in ({error})."),
        );
    }
    let (Some(flow), Some(code), Some(state)) = (flow, query.code, query.state) else {
        return problem(
            web,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or it expired. Start again.",
        );
    };
    let state_matches: bool = flow.state.as_bytes().ct_eq(state.as_bytes()).into();
    if !state_matches || flow.expires_at < now() {
        return problem(
            web,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or it expired. Start again.",
        );
    }
    let email = match verified_email(&web, &config, code, &flow).await {
        Ok(email) => email,
        Err(e) => {
            tracing::warn!("Google sign-in refused: {e}");
            return problem(
                web,
                StatusCode::UNAUTHORIZED,
                &format!("Sign-in failed: {e}."),
            );
        }
    };
    let state = web.state.clone();
    match accounts::sign_in_verified_email(&state, &email).await {
        Ok(login) => {
            web.sign_in(login.token.expose());
            web.notice(format!("Signed in as {}.", login.email));
            web.redirect(&flow.next)
        }
        Err(e) => problem(web, e.status, &super::auth::capitalized(&e.message)),
    }
}

/// Exchanges the code and returns the email the provider verified. Error texts name what
/// failed, never a token or code.
async fn verified_email(
    web: &Web,
    config: &GoogleConfig,
    code: String,
    flow: &Flow,
) -> Result<String, String> {
    let http = http_client()?;
    let metadata = discover(config, &http).await?;
    let redirect = RedirectUrl::new(format!("{}{CALLBACK_PATH}", web.state.config.base_url))
        .map_err(|e| format!("invalid redirect URI: {e}"))?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.expose().to_owned())),
    )
    .set_redirect_uri(redirect);
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| format!("the provider has no token endpoint ({e})"))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| format!("the code exchange failed ({})", describe_token_error(&e)))?;
    let id_token = response
        .id_token()
        .ok_or("the provider returned no ID token")?;
    let verifier = client.id_token_verifier().set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ]);
    let claims = id_token
        .claims(&verifier, &Nonce::new(flow.nonce.clone()))
        .map_err(|e| format!("the ID token is not valid ({e})"))?;
    let email = claims
        .email()
        .ok_or("the provider did not share an email address")?;
    if claims.email_verified() != Some(true) {
        return Err("the provider has not verified this email address".into());
    }
    Ok(email.as_str().to_owned())
}

/// The kind of a token-endpoint failure, without the response body (it could echo the code).
fn describe_token_error<E: std::error::Error>(
    error: &openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match error {
        openidconnect::RequestTokenError::ServerResponse(r) => {
            format!("provider said {}", r.error())
        }
        openidconnect::RequestTokenError::Request(_) => "the request failed".into(),
        openidconnect::RequestTokenError::Parse(_, _) => "unreadable answer".into(),
        openidconnect::RequestTokenError::Other(_) => "unexpected answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        id: Option<&str>,
        secret: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Option<GoogleConfig>, String> {
        config_from_env(
            id.map(Into::into),
            secret.map(Into::into),
            issuer.map(Into::into),
        )
    }

    #[test]
    fn google_settings_need_both_halves_and_a_safe_issuer() {
        assert!(cfg(None, None, None).unwrap().is_none());
        let google = cfg(Some("id"), Some("secret"), None).unwrap().unwrap();
        assert_eq!(google.issuer, DEFAULT_ISSUER);
        assert!(
            cfg(Some("id"), None, None)
                .unwrap_err()
                .contains(CLIENT_SECRET_ENV)
        );
        assert!(
            cfg(None, Some("SENTINEL"), None)
                .unwrap_err()
                .contains(CLIENT_ID_ENV)
        );
        assert!(
            !cfg(None, Some("SENTINEL"), None)
                .unwrap_err()
                .contains("SENTINEL")
        );
        assert!(cfg(Some("i"), Some("s"), Some("http://127.0.0.1:9/")).is_ok());
        assert!(cfg(Some("i"), Some("s"), Some("http://localhost:9")).is_ok());
        assert!(cfg(Some("i"), Some("s"), Some("http://accounts.example.com")).is_err());
        assert!(cfg(Some("i"), Some("s"), Some("not a url")).is_err());
    }

    #[test]
    fn the_flow_cookie_is_sealed_and_bound_to_the_key() {
        let dek = Key::generate();
        let flow = Flow {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "SENTINEL-verifier".into(),
            expires_at: 5,
            next: "/vaults".into(),
        };
        let sealed = seal_flow(&dek, &flow).unwrap();
        assert!(!sealed.contains("SENTINEL"));
        assert_eq!(
            open_flow(&dek, &sealed).unwrap().verifier,
            "SENTINEL-verifier"
        );
        assert!(open_flow(&Key::generate(), &sealed).is_none());
        assert!(open_flow(&dek, &sealed[1..]).is_none());
    }
}
