//! The owner's view of email as JSON: the delivery status (`GET /v1/admin/email`) and the
//! synchronous test (`POST /v1/admin/email/test`). The rules are in [`crate::ops::email`].

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::mail::{SmtpConfig, Status};
use crate::ops::email;

/// `GET /v1/admin/email` (owner): the SMTP settings in use and how delivery goes.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(status_body(email::status(&state, &caller)?)))
}

fn status_body(found: Option<(SmtpConfig, Status)>) -> Value {
    let Some((config, status)) = found else {
        return json!({
            "enabled": false,
            "message": "email is off: set AGENT_VAULT_SMTP_HOST and AGENT_VAULT_SMTP_FROM on the server and restart it",
        });
    };
    let last_error = status.last_error.as_ref().map(|e| {
        json!({
            "at": rfc3339(e.at),
            "kind": e.kind.as_str(),
            "recipient": e.recipient,
            "message": e.message,
        })
    });
    json!({
        "enabled": true,
        "host": config.host,
        "port": config.port,
        "from": config.from.to_string(),
        "username": config.username,
        "tls_mode": config.tls_mode.as_str(),
        "implicit_tls": config.implicit_tls(),
        "tls_skip_verify": config.tls_skip_verify,
        "sent": status.sent,
        "failed": status.failed,
        "pending": status.pending,
        "last_sent_at": status.last_sent_at.map(rfc3339),
        "last_error": last_error,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    #[serde(default)]
    to: Option<String>,
}

/// `POST /v1/admin/email/test` (owner): sends a test email now and reports the SMTP server's
/// answer; 502 with the exact answer or connection error when it fails.
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (to, reply) = email::test(&state, &caller, body.to).await?;
    Ok(axum::Json(json!({
        "to": to,
        "message": "Test email sent",
        "smtp_response": reply,
    })))
}
