//! A local OpenID Connect provider standing in for Google: its own P-256 key (made with
//! `ring` at start), a discovery document, a key set, a sign-in page where the test types the
//! address (and whether it is verified), and a token endpoint that checks the client
//! secret, the redirect URI and the PKCE verifier before it signs an ID token (ES256) with
//! the nonce it was given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "test-client.apps.example";
pub const CLIENT_SECRET: &str = "test-client-secret-SENTINEL";

/// An authorization the test approved, waiting for its code to be exchanged.
struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: String,
    challenge: String,
    email: String,
    verified: bool,
}

struct Shared {
    issuer: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    grants: Mutex<HashMap<String, Grant>>,
    /// Token requests seen (and whether they were accepted), for the test to check.
    exchanges: Mutex<Vec<bool>>,
}

pub struct Provider {
    pub issuer: String,
    shared: Arc<Shared>,
    _thread: std::thread::JoinHandle<()>,
}

impl Provider {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            key,
            rng,
            grants: Mutex::new(HashMap::new()),
            exchanges: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(sign_in_page).post(approve))
            .route("/token", post(token))
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    axum::serve(listener, app).await.unwrap();
                });
        });
        Self {
            issuer,
            shared,
            _thread: thread,
        }
    }

    /// How many code exchanges were accepted and refused.
    pub fn exchanges(&self) -> (usize, usize) {
        let seen = self.shared.exchanges.lock().unwrap();
        let ok = seen.iter().filter(|ok| **ok).count();
        (ok, seen.len() - ok)
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let issuer = &s.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    // An uncompressed P-256 point: 0x04, then x and y (32 bytes each).
    let point = s.key.public_key().as_ref();
    Json(json!({ "keys": [{
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
        "kid": "test-key",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    nonce: String,
    code_challenge: String,
    code_challenge_method: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The provider's own sign-in page (Google's account chooser, in miniature).
async fn sign_in_page(Query(q): Query<AuthorizeQuery>) -> Response {
    if q.response_type != "code"
        || q.code_challenge_method != "S256"
        || !q.scope.split(' ').any(|s| s == "openid")
    {
        return (
            StatusCode::BAD_REQUEST,
            "expected a code flow with S256 PKCE and openid",
        )
            .into_response();
    }
    let hidden: String = [
        ("client_id", &q.client_id),
        ("redirect_uri", &q.redirect_uri),
        ("state", &q.state),
        ("nonce", &q.nonce),
        ("code_challenge", &q.code_challenge),
    ]
    .iter()
    .map(|(n, v)| {
        format!(
            "<input type=\"hidden\" name=\"{n}\" value=\"{}\">",
            escape(v)
        )
    })
    .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><title>Test provider</title></head><body>\
         <h1>Test provider: sign in</h1><form method=\"post\" action=\"/authorize\">{hidden}\
         <label>Email <input id=\"provider-email\" name=\"email\" type=\"email\"></label>\
         <label><input id=\"provider-verified\" name=\"verified\" type=\"checkbox\" checked> verified</label>\
         <button id=\"provider-continue\" type=\"submit\">Continue</button></form></body></html>"
    ))
    .into_response()
}

#[derive(Deserialize)]
struct Approval {
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    code_challenge: String,
    email: String,
    #[serde(default)]
    verified: Option<String>,
}

async fn approve(State(s): State<Arc<Shared>>, Form(a): Form<Approval>) -> Response {
    let code = hex::encode(ring::rand::generate::<[u8; 16]>(&s.rng).unwrap().expose());
    let target = format!(
        "{}?code={code}&state={}",
        a.redirect_uri,
        serde_urlencoded::to_string([("", &a.state)])
            .unwrap()
            .trim_start_matches('=')
    );
    s.grants.lock().unwrap().insert(
        code,
        Grant {
            client_id: a.client_id,
            redirect_uri: a.redirect_uri,
            nonce: a.nonce,
            challenge: a.code_challenge,
            email: a.email,
            verified: a.verified.is_some(),
        },
    );
    Redirect::to(&target).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
}

fn refuse(s: &Shared, why: &str) -> Response {
    s.exchanges.lock().unwrap().push(false);
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_grant", "error_description": why })),
    )
        .into_response()
}

/// Client credentials from HTTP Basic (URL-encoded halves) or the form.
fn client_of(headers: &HeaderMap, form: &TokenRequest) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |v: &str| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={v}"))
                .ok()
                .and_then(|mut p| p.pop())
                .map(|(_, v)| v)
        };
        return Some((unescape(id)?, unescape(secret)?));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(t): Form<TokenRequest>,
) -> Response {
    if t.grant_type != "authorization_code" {
        return refuse(&s, "grant_type");
    }
    let Some(grant) = s.grants.lock().unwrap().remove(&t.code) else {
        return refuse(&s, "unknown or used code");
    };
    match client_of(&headers, &t) {
        Some((id, secret))
            if id == CLIENT_ID && secret == CLIENT_SECRET && id == grant.client_id => {}
        _ => return refuse(&s, "client authentication"),
    }
    if t.redirect_uri != grant.redirect_uri {
        return refuse(&s, "redirect_uri differs");
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(t.code_verifier.as_bytes())) != grant.challenge {
        return refuse(&s, "PKCE verifier does not match");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({ "alg": "ES256", "kid": "test-key", "typ": "JWT" });
    let claims = json!({
        "iss": s.issuer,
        "sub": format!("sub-{}", hex::encode(Sha256::digest(grant.email.as_bytes()))),
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 600,
        "nonce": grant.nonce,
        "email": grant.email,
        "email_verified": grant.verified,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = s.key.sign(&s.rng, signing_input.as_bytes()).unwrap();
    let id_token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    s.exchanges.lock().unwrap().push(true);
    Json(json!({
        "access_token": "provider-access-token",
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": id_token,
    }))
    .into_response()
}
