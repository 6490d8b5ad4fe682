//! `owner email test` and the email lines of `owner config get`: the server's SMTP status
//! (`GET /v1/admin/email`) and its synchronous test email (`POST /v1/admin/email/test`).

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::json;

use super::{Client, output};

#[derive(Deserialize)]
struct EmailTestReply {
    to: String,
    smtp_response: String,
}

#[derive(Deserialize)]
struct EmailStatus {
    enabled: bool,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    from: String,
    #[serde(default)]
    tls_mode: String,
    #[serde(default)]
    implicit_tls: bool,
    #[serde(default)]
    tls_skip_verify: bool,
    #[serde(default)]
    sent: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    pending: u64,
    #[serde(default)]
    last_sent_at: Option<String>,
    #[serde(default)]
    last_error: Option<EmailError>,
}

#[derive(Deserialize)]
struct EmailError {
    at: String,
    kind: String,
    recipient: String,
    message: String,
}

/// The email lines of `owner config get`.
pub async fn print_status(client: &Client) -> anyhow::Result<()> {
    let email: EmailStatus = client.get("/v1/admin/email").await?;
    if !email.enabled {
        println!(
            "email:                 off (set AGENT_VAULT_SMTP_HOST and AGENT_VAULT_SMTP_FROM on the server)"
        );
        return Ok(());
    }
    let tls = match (email.implicit_tls, email.tls_mode.as_str()) {
        (true, _) => "implicit TLS",
        (false, "required") => "STARTTLS required",
        (false, "none") => "no TLS",
        (false, _) => "STARTTLS when offered",
    };
    let verify = if email.tls_skip_verify {
        ", certificate NOT verified"
    } else {
        ""
    };
    println!(
        "email:                 {}:{} ({tls}{verify}), from {}",
        email.host, email.port, email.from
    );
    let last = match &email.last_sent_at {
        Some(at) => format!("; last sent {at}"),
        None => String::new(),
    };
    println!(
        "email_delivery:        {} sent, {} failed, {} pending{last}",
        email.sent, email.failed, email.pending
    );
    if let Some(error) = &email.last_error {
        println!(
            "email_last_error:      {} ({} to {}): {}",
            error.at, error.kind, error.recipient, error.message
        );
    }
    Ok(())
}

/// `owner email test [--to ADDR]`: fails (non-zero) with the SMTP server's answer.
pub async fn test(client: &Client, to: Option<String>) -> anyhow::Result<()> {
    let sent: EmailTestReply = client
        .post("/v1/admin/email/test", &json!({ "to": to }))
        .await
        .context("the test email was not sent")?;
    output::success(format!("Test email sent to {}.", sent.to));
    println!("  SMTP server answered: {}", sent.smtp_response);
    Ok(())
}
