//! The data path's one error type. It knows whose fault a failure is — the agent's request
//! (4xx), the upstream (502/504) or ours (500) — and renders as JSON with a stable `error`
//! code and the `X-Agent-Vault-Proxy-Error` header, so an agent can tell a broker refusal
//! from an upstream answer. Messages never contain credential values.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

/// Marks a response as produced by the broker, not by an upstream.
pub const BROKER_ERROR_HEADER: &str = "x-agent-vault-proxy-error";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Agent,
    Upstream,
    Internal,
}

#[derive(Debug, Clone)]
pub struct BrokerError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fault: Fault,
    /// Extra guidance in the body (e.g. how to request a service).
    pub hint: Option<Value>,
}

impl BrokerError {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        fault: Fault,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fault,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: Value) -> Self {
        self.hint = Some(hint);
        self
    }

    /// 407: no usable proxy credentials.
    pub fn auth_required(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "proxy_auth_required",
            message,
            Fault::Agent,
        )
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message, Fault::Agent)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message, Fault::Agent)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "vault_not_found",
            message,
            Fault::Agent,
        )
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            message,
            Fault::Agent,
        )
    }
    /// 502: a credential the service needs is not in the vault (a configuration problem).
    pub fn credential(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, message, Fault::Internal)
    }
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            message,
            Fault::Upstream,
        )
    }
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            message,
            Fault::Upstream,
        )
    }
    /// 503: a resource ceiling is reached right now; the agent may retry in a moment.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            message,
            Fault::Internal,
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message,
            Fault::Internal,
        )
    }

    pub fn body_json(&self) -> Value {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(hint) = &self.hint {
            body["hint"] = hint.clone();
        }
        body
    }

    /// The HTTP response an agent receives.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body_json().to_string())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(BROKER_ERROR_HEADER, HeaderValue::from_static("true"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            headers.insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"agent-vault\""),
            );
        }
        response
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_json_and_marked() {
        let response = BrokerError::auth_required("no token").to_response();
        assert_eq!(response.status(), 407);
        assert_eq!(response.headers()[BROKER_ERROR_HEADER], "true");
        assert!(response.headers().contains_key(header::PROXY_AUTHENTICATE));
        let denied = BrokerError::forbidden("forbidden", "no").with_hint(json!({"x": 1}));
        assert_eq!(denied.body_json()["hint"]["x"], 1);
        assert_eq!(denied.fault, Fault::Agent);
    }
}
