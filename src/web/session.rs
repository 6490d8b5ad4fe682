//! The browser's side of a request: the session cookie, CSRF tokens, one-shot notices
//! ("flash"), and the per-request [`Web`] context pages are rendered with.
//!
//! Stance:
//! - The session cookie holds a user login token (`av_session`, `HttpOnly`, `SameSite=Lax`,
//!   `Secure` when the server's address is `https://`, a lifetime matching the server-side
//!   expiry). It is resolved by the same code as a bearer token, and only user logins are
//!   accepted from it. Logging out deletes the session on the server.
//! - Every state-changing request to the web UI carries a CSRF token in its form, checked by
//!   [`csrf_guard`] before any handler runs, so no form can be forgotten. Signed in, the token
//!   is derived from the session token (an attacker without the cookie cannot compute it);
//!   signed out, it is a random value also kept in an `HttpOnly`, `SameSite=Strict` cookie
//!   (double submit).
//! - Nothing secret goes into a URL or a notice cookie; every page is `Cache-Control:
//!   no-store`.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::Markup;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::random_bytes;
use crate::ops::{AppState, Caller, OpError, Principal};
use crate::store::sessions::BROWSER_SESSION_TTL;

pub const SESSION_COOKIE: &str = "av_session";
const CSRF_COOKIE: &str = "av_csrf";
const FLASH_COOKIE: &str = "av_flash";
/// The form field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrf";
/// Largest form body the web UI reads (credential values are at most 64 KiB).
const FORM_LIMIT: usize = 256 * 1024;

/// The value of cookie `name` in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool, same_site: &str) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The CSRF token bound to a session token.
fn derive_csrf(session_token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"agent-vault web csrf v1\n");
    hash.update(session_token.as_bytes());
    hex::encode(hash.finalize())
}

/// The CSRF token a request's forms must carry, if the browser has one yet.
fn expected_csrf(headers: &HeaderMap) -> Option<String> {
    match cookie(headers, SESSION_COOKIE) {
        Some(session) => Some(derive_csrf(&session)),
        None => cookie(headers, CSRF_COOKIE),
    }
}

fn tokens_match(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// `path` with each token in it (an invite link carries one) cut to its kind, for logs.
fn without_tokens(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            match segment
                .strip_prefix("av_")
                .and_then(|rest| rest.split_once('_'))
            {
                Some((kind, _)) => format!("av_{kind}_…"),
                None => segment.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Middleware on the web router: a request that may change state is refused unless its
/// form carries the right CSRF token.
pub async fn csrf_guard(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let refused = |why: &str| {
        let path = without_tokens(parts.uri.path());
        tracing::info!(%path, "web form refused: {why}");
        super::layout::error_page(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form has expired or did not come from this agent-vault page. Go back, reload the page and try again.",
        )
    };
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return super::layout::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            "The form could not be read (at most 256 KiB).",
        );
    };
    let given = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| {
            fields
                .into_iter()
                .find(|(name, _)| name == CSRF_FIELD)
                .map(|(_, value)| value)
        });
    match (expected_csrf(&parts.headers), given) {
        (Some(expected), Some(given)) if tokens_match(&expected, &given) => {}
        (None, _) => return refused("no CSRF cookie"),
        (_, None) => return refused("no CSRF field"),
        _ => return refused("CSRF token mismatch"),
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A one-shot notice shown on the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

impl Flash {
    fn encode(&self) -> String {
        let text: String = self.text.chars().take(600).collect();
        let kind = if self.error { "e" } else { "o" };
        serde_urlencoded::to_string([(kind, text)]).unwrap_or_default()
    }

    fn decode(value: &str) -> Option<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(value).ok()?;
        let (kind, text) = pairs.into_iter().next()?;
        Some(Self {
            error: kind == "e",
            text,
        })
    }
}

/// Everything a page handler needs about the browser: who is signed in, the CSRF token for
/// its forms, a notice to show, and the cookies to set on the answer.
pub struct Web {
    pub state: AppState,
    /// The signed-in user, from the session cookie.
    pub viewer: Option<Caller>,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// The path of this request (navigation highlights, `next` after login).
    pub path: String,
    /// The client's address, when known.
    pub peer: Option<std::net::IpAddr>,
    secure: bool,
    set_cookies: Vec<String>,
}

impl FromRequestParts<AppState> for Web {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let headers = &parts.headers;
        let secure = state.config.base_url.starts_with("https://");
        let mut set_cookies = Vec::new();
        let session = cookie(headers, SESSION_COOKIE);
        let viewer = match &session {
            Some(token) => match crate::ops::caller::resolve(state, token).await {
                Ok(Some(caller)) if matches!(caller.principal, Principal::User(_)) => {
                    // AUTHED: a signed-in page shares the user's budget with their API calls.
                    let key = caller.limit_key();
                    if let Err(refusal) = state.proxy.limits.authed(&key) {
                        return Err(crate::limits::http::too_many_requests(
                            &refusal,
                            crate::limits::http::Audience::Browser,
                        )
                        .map(axum::body::Body::from));
                    }
                    Some(caller)
                }
                Ok(_) => None,
                Err(e) => {
                    return Err(super::layout::error_page(
                        e.status,
                        "Something went wrong",
                        &e.message,
                    ));
                }
            },
            None => None,
        };
        let csrf = match expected_csrf(headers) {
            Some(token) => token,
            None => {
                let token = hex::encode(random_bytes::<32>());
                set_cookies.push(set_cookie(CSRF_COOKIE, &token, 86400, secure, "Strict"));
                token
            }
        };
        let flash = cookie(headers, FLASH_COOKIE).and_then(|v| Flash::decode(&v));
        if flash.is_some() {
            set_cookies.push(set_cookie(FLASH_COOKIE, "", 0, secure, "Lax"));
        }
        Ok(Self {
            state: state.clone(),
            viewer,
            csrf,
            flash,
            path: parts.uri.path().to_owned(),
            peer: crate::limits::http::client_ip(&parts.extensions),
            secure,
            set_cookies,
        })
    }
}

impl Web {
    /// The signed-in user, or a redirect to the login page that comes back here.
    pub fn signed_in(&self) -> Result<&Caller, Box<Response>> {
        self.viewer.as_ref().ok_or_else(|| {
            let next = serde_urlencoded::to_string([("next", &self.path)]).unwrap_or_default();
            Box::new(redirect(&format!("/login?{next}"), Vec::new()))
        })
    }

    /// Whether the viewer is an instance owner.
    pub fn is_owner(&self) -> bool {
        self.viewer.as_ref().is_some_and(Caller::is_owner)
    }

    /// The signed-in user's email, for the header.
    pub fn viewer_email(&self) -> Option<&str> {
        match &self.viewer.as_ref()?.principal {
            Principal::User(user) => Some(&user.email),
            _ => None,
        }
    }

    /// Starts a browser session: sets the cookie; forms rendered from now on carry the CSRF
    /// token bound to it.
    pub fn sign_in(&mut self, token: &str) {
        self.csrf = derive_csrf(token);
        self.set_cookies.push(set_cookie(
            SESSION_COOKIE,
            token,
            BROWSER_SESSION_TTL,
            self.secure,
            "Lax",
        ));
    }

    /// Ends the browser session's cookie (the caller deletes the session itself).
    pub fn sign_out(&mut self) {
        self.set_cookies
            .push(set_cookie(SESSION_COOKIE, "", 0, self.secure, "Lax"));
    }

    /// Sets a short-lived, `SameSite=Lax` cookie (the OpenID Connect state).
    pub fn set_temporary_cookie(&mut self, name: &str, value: &str, max_age: i64) {
        self.set_cookies
            .push(set_cookie(name, value, max_age, self.secure, "Lax"));
    }

    /// Leaves a notice for the next page.
    pub fn notice(&mut self, text: impl Into<String>) {
        self.set_flash(false, text.into());
    }

    pub fn error_notice(&mut self, text: impl Into<String>) {
        self.set_flash(true, text.into());
    }

    fn set_flash(&mut self, error: bool, text: String) {
        let value = Flash { error, text }.encode();
        self.set_cookies
            .push(set_cookie(FLASH_COOKIE, &value, 60, self.secure, "Lax"));
    }

    /// A rendered page with this request's cookies.
    pub fn render(self, status: StatusCode, markup: Markup) -> Response {
        with_cookies((status, markup).into_response(), self.set_cookies)
    }

    /// A redirect (303, so a form is never resubmitted) with this request's cookies.
    pub fn redirect(self, to: &str) -> Response {
        redirect(to, self.set_cookies)
    }

    /// After a form: back to `to` with a notice saying what happened.
    pub fn finish(mut self, to: &str, outcome: Result<String, OpError>) -> Response {
        match outcome {
            Ok(done) => self.notice(done),
            Err(e) => self.error_notice(super::auth::capitalized(&e.message)),
        }
        self.redirect(to)
    }
}

fn with_cookies(mut response: Response, cookies: Vec<String>) -> Response {
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

fn redirect(to: &str, cookies: Vec<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    with_cookies(response, cookies)
}

/// A local path to return to after signing in; anything else (another site, `//host`) is
/// replaced by the vault list.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/vaults".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_paths_keep_a_token_kind_only() {
        assert_eq!(
            without_tokens("/invite/av_uinv_SECRETPART/accept"),
            "/invite/av_uinv_…/accept"
        );
        assert_eq!(
            without_tokens("/vaults/av_team/edit"),
            "/vaults/av_team/edit"
        );
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; av_session=tok; b="));
        assert_eq!(cookie(&headers, "av_session").as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn csrf_follows_the_session_and_never_equals_it() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("av_csrf=anon"));
        assert_eq!(expected_csrf(&headers).as_deref(), Some("anon"));
        headers.insert(
            COOKIE,
            HeaderValue::from_static("av_csrf=anon; av_session=av_sess_x"),
        );
        let bound = expected_csrf(&headers).unwrap();
        assert_ne!(bound, "anon");
        assert!(!bound.contains("av_sess_x"));
        assert!(tokens_match(&bound, &derive_csrf("av_sess_x")));
        assert!(!tokens_match(&bound, &derive_csrf("av_sess_y")));
    }

    #[test]
    fn cookies_are_http_only_and_lax_or_strict() {
        let value = set_cookie(SESSION_COOKIE, "t", 60, true, "Lax");
        assert!(value.contains("HttpOnly") && value.contains("SameSite=Lax"));
        assert!(value.contains("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "t", 60, false, "Lax").contains("Secure"));
    }

    #[test]
    fn flash_round_trips_and_next_stays_local() {
        let flash = Flash {
            error: true,
            text: "vault \"a; b\" = gone".into(),
        };
        let back = Flash::decode(&flash.encode()).unwrap();
        assert!(back.error);
        assert_eq!(back.text, flash.text);
        assert!(!flash.encode().contains(';'));
        assert_eq!(safe_next(Some("/vaults/x/logs")), "/vaults/x/logs");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", ""] {
            assert_eq!(safe_next(Some(bad)), "/vaults", "{bad}");
        }
    }
}
