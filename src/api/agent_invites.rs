//! Agent invites as JSON: create, list, revoke, and the public details and redemption an
//! agent performs over plain HTTP. The rules are in [`crate::ops::invites`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::invites::VaultAssignment;
use super::{ApiError, ApiJson, ApiQuery, AppState, rfc3339};
use crate::ops::invites::{self, AgentInviteRequest, CreatedInvite};
use crate::store::invites::{Invite, InviteKind};

#[derive(Deserialize)]
pub struct InviteBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    vaults: Vec<VaultAssignment>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

/// The JSON of an agent invite.
fn describe(invite: &Invite) -> Value {
    json!({
        "agent_name": invite.subject,
        "role": invite.role,
        "rotation": invite.agent_id.is_some(),
        "status": invite.status_str(),
        "token_suffix": invite.token_suffix,
        "vaults": invite.vaults.iter().map(|(_, name, role)| json!({ "vault": name, "role": role })).collect::<Vec<_>>(),
        "created_at": rfc3339(invite.created_at),
        "expires_at": rfc3339(invite.expires_at),
    })
}

/// An invite just made: its JSON with the token and redeem URL, shown once.
pub(super) fn describe_created(created: &CreatedInvite, state: &AppState) -> Value {
    let mut body = describe(&created.invite);
    body["token"] = json!(created.token.raw.expose());
    body["redeem_url"] = json!(created.link(&state.config.base_url));
    body["address"] = json!(state.config.base_url);
    body
}

/// `POST /v1/agents/invites`.
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = AgentInviteRequest {
        name: body.name,
        role: body.role,
        vaults: body.vaults.into_iter().map(|a| (a.vault, a.role)).collect(),
        ttl_seconds: body.ttl_seconds,
    };
    let created = invites::invite_agent(&state, &caller, request).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(describe_created(&created, &state)),
    ))
}

#[derive(Deserialize)]
pub struct StatusQuery {
    status: Option<String>,
}

/// `GET /v1/agents/invites[?status=]`: owners see all, others the ones they created.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let rows = invites::list(&state, &caller, InviteKind::Agent, query.status.as_deref()).await?;
    let rows: Vec<Value> = rows.iter().map(|(i, _)| describe(i)).collect();
    Ok(axum::Json(json!({ "invites": rows })))
}

/// `DELETE /v1/agents/invites/{suffix}`.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(given): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let name = invites::revoke(&state, &caller, InviteKind::Agent, &given).await?;
    Ok(axum::Json(json!({ "revoked": true, "agent_name": name })))
}

/// `GET /v1/agent-invites/{token}` (public): what redeeming would give.
pub async fn details(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let invite = invites::agent_invite(&state, &token).await?;
    Ok(axum::Json(describe(&invite)))
}

/// `POST /v1/agent-invites/{token}/redeem` (public; the invite token is the credential):
/// the agent's token, once, with how to use it.
pub async fn redeem(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let redeemed = invites::redeem_agent_invite(&state, &token).await?;
    let vault_list: Vec<Value> = redeemed
        .grants
        .iter()
        .map(|(v, r)| json!({ "vault": v.name, "role": r }))
        .collect();
    let base = &state.config.base_url;
    let proxy = state.config.mitm_port.map(|port| {
        let host = crate::sandbox::env::url_host(base);
        let mut proxy = json!({
            "https_proxy": format!("http://<agent_token>:<vault>@{host}:{port}"),
            "ca_url": format!("{base}/v1/mitm/ca.pem"),
        });
        // The same proxy inside TLS, for clients that speak HTTPS proxies (token not in clear).
        if let Some(tls_port) = state.config.proxy_tls_port {
            proxy["https_proxy_tls"] =
                json!(format!("https://<agent_token>:<vault>@{host}:{tls_port}"));
        }
        proxy
    });
    Ok(axum::Json(json!({
        "agent_name": redeemed.agent.name,
        "agent_token": redeemed.token.raw.expose(),
        "role": redeemed.agent.role,
        "vaults": vault_list,
        "address": base,
        "proxy": proxy,
        "explicit_proxy": format!("{base}/proxy/<host>/<path> with Authorization: Bearer <agent_token> and X-Vault: <vault>"),
        "discover": format!("{base}/v1/discover?vault=<vault> with Authorization: Bearer <agent_token>"),
        "message": "Keep agent_token secret: it is shown only once. Send HTTPS through the proxy as shown, trusting the CA at ca_url.",
    })))
}
