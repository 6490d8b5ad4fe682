//! Proposals: an agent asks for services and credential keys in a vault
//! (`POST /v1/proposals`); someone with the member role or above reviews it
//! (`…/proposals/{n}/approve`, `…/reject`), supplying the credential values.
//!
//! Stance: filing needs only the proxy role, since that is what agents run with. Reviewing
//! needs member or above through a login or an agent token — never a vault-scoped token — and
//! never by the proposer itself, so no principal can grant itself a service or a credential
//! alone. Credential values come only from the approver and are never echoed back.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use rusqlite::Connection;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::access::{VaultAccess, vault_access};
use super::auth::{Caller, Principal};
use super::{ApiError, ApiJson, AppState, rfc3339};
use crate::crypto::SecretString;
use crate::services::{self, Service, validate_credential_key};
use crate::store::proposals::{
    self, NewProposal, Proposal, ProposalStatus, Proposer, Refused, RequestedCredential,
};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{self, VaultRole, agents, credentials, users};

const MAX_MESSAGE: usize = 2000;
const MAX_USER_MESSAGE: usize = 5000;
const MAX_DESCRIPTION: usize = 500;
/// Services, and requested credentials, one proposal may hold.
const MAX_ITEMS: usize = 20;
/// Largest credential value accepted (as for `POST …/credentials`).
const MAX_VALUE_LEN: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    vault: Option<String>,
    #[serde(default)]
    services: Vec<Value>,
    #[serde(default)]
    credentials: Vec<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    user_message: Option<String>,
}

/// Reads each service, naming its position on error (as `POST …/services` does).
fn parse_services(raw: Vec<Value>) -> Result<Vec<Service>, ApiError> {
    if raw.len() > MAX_ITEMS {
        return Err(ApiError::invalid(format!(
            "a proposal holds at most {MAX_ITEMS} services; split it"
        )));
    }
    let services = raw
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            serde_json::from_value::<Service>(value)
                .map_err(|e| ApiError::invalid(format!("services[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    services::validate(&services).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(services)
}

/// Reads `{key, description?}` entries (a bare `"KEY"` string is accepted too). Messages
/// never quote what was sent except through [`validate_credential_key`], which withholds
/// anything that looks like a credential value.
fn parse_credentials(raw: Vec<Value>) -> Result<Vec<RequestedCredential>, ApiError> {
    if raw.len() > MAX_ITEMS {
        return Err(ApiError::invalid(format!(
            "a proposal requests at most {MAX_ITEMS} credentials; split it"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let at = format!("credentials[{i}]");
        let shape = || {
            ApiError::invalid(format!(
                "{at}: expected {{\"key\": \"API_KEY\", \"description\": \"what it is\"}}"
            ))
        };
        let (key, description) = match value {
            Value::String(key) => (key, None),
            Value::Object(mut fields) => {
                if fields.contains_key("value") {
                    return Err(ApiError::invalid(format!(
                        "{at}: a proposal cannot carry credential values; request the key and the approver supplies the value"
                    )));
                }
                let key = match fields.remove("key") {
                    Some(Value::String(key)) => key,
                    _ => return Err(shape()),
                };
                let description = match fields.remove("description") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(d)) => Some(d),
                    Some(_) => return Err(shape()),
                };
                if let Some(field) = fields.keys().next() {
                    return Err(ApiError::invalid(format!(
                        "{at}: unknown field `{field}`; use key and description"
                    )));
                }
                (key, description)
            }
            _ => return Err(shape()),
        };
        validate_credential_key(&key).map_err(|e| ApiError::invalid(format!("{at}.key: {e}")))?;
        if let Some(d) = &description
            && (d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control))
        {
            return Err(ApiError::invalid(format!(
                "{at}.description: use one line of at most {MAX_DESCRIPTION} characters"
            )));
        }
        if !seen.insert(key.clone()) {
            return Err(ApiError::invalid(format!(
                "{at}: {key} is requested twice; list each key once"
            )));
        }
        out.push(RequestedCredential {
            key,
            description: description.filter(|d| !d.trim().is_empty()),
        });
    }
    Ok(out)
}

/// An optional free-text field: at most `max` characters, no control characters except
/// line breaks and tabs (they could rewrite a reviewer's terminal); blank counts as absent.
fn text_field(value: Option<String>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.chars().count() > max => Err(ApiError::invalid(format!(
            "{field} is longer than {max} characters; shorten it"
        ))),
        Some(text)
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            Err(ApiError::invalid(format!(
                "{field} contains control characters; send plain text (line breaks are fine)"
            )))
        }
        Some(text) if text.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// The vault a proposal is filed in: a scoped token's own vault, else the body's `vault` or
/// the `X-Vault` header. Any role on it is enough.
async fn filing_vault(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    asked: Option<String>,
) -> Result<VaultAccess, ApiError> {
    let name = match &caller.principal {
        Principal::Scoped { vault_id, .. } => {
            let id = vault_id.clone();
            let own = state
                .db(move |s, _| s.read(|c| vaults::by_id(c, &id)))
                .await?
                .ok_or_else(|| ApiError::unauthorized("the token's vault no longer exists"))?;
            if let Some(asked) = asked
                && asked != own.name
            {
                return Err(ApiError::forbidden(format!(
                    "this token belongs to vault \"{}\"; it cannot file a proposal in vault \"{asked}\"",
                    own.name
                )));
            }
            own.name
        }
        Principal::User(_) | Principal::Agent(_) => {
            let header = headers
                .get("x-vault")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match (asked, header) {
                (Some(body), Some(header)) if body != header => {
                    return Err(ApiError::invalid(format!(
                        "the body names vault \"{body}\" but X-Vault names \"{header}\"; send one"
                    )));
                }
                (Some(name), _) | (None, Some(name)) => name,
                (None, None) => {
                    return Err(ApiError::invalid(
                        "name the vault: send {\"vault\": \"<name>\", …} or an X-Vault header",
                    ));
                }
            }
        }
    };
    let access = vault_access(state, caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    Ok(access)
}

/// Credential keys the services use that are neither requested nor set in the vault.
fn unresolved_keys(
    services: &[Service],
    requested: &[RequestedCredential],
    existing: &[String],
) -> Vec<String> {
    let used: BTreeSet<&str> = services.iter().flat_map(Service::credential_keys).collect();
    used.into_iter()
        .filter(|k| !requested.iter().any(|r| r.key == *k) && !existing.iter().any(|e| e == k))
        .map(str::to_owned)
        .collect()
}

/// `POST /v1/proposals`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let services = parse_services(body.services)?;
    let credentials = parse_credentials(body.credentials)?;
    if services.is_empty() && credentials.is_empty() {
        return Err(ApiError::invalid(
            "a proposal needs at least one service or credential: send {\"services\": [...]} and/or {\"credentials\": [{\"key\": \"API_KEY\"}]}",
        ));
    }
    let message = text_field(body.message, "message", MAX_MESSAGE)?;
    let user_message = text_field(body.user_message, "user_message", MAX_USER_MESSAGE)?;
    let access = filing_vault(&state, &caller, &headers, body.vault).await?;

    let vault_id = access.vault.id.clone();
    let principal = caller.principal.clone();
    let session = caller.session.clone();
    let created = state
        .db(move |store, _| {
            store.write(|tx| {
                let existing = credentials::keys(tx, &vault_id)?;
                let unresolved = unresolved_keys(&services, &credentials, &existing);
                if !unresolved.is_empty() {
                    return Ok(Err(ApiError::invalid(format!(
                        "the proposed services use {} but the proposal does not request {} and the vault does not hold {}; add {} to \"credentials\"",
                        unresolved.join(", "),
                        if unresolved.len() == 1 { "it" } else { "them" },
                        if unresolved.len() == 1 { "it" } else { "them" },
                        unresolved
                            .iter()
                            .map(|k| format!("{{\"key\": \"{k}\"}}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ))));
                }
                let mut merged = store::services::list(tx, &vault_id)?;
                for service in &services {
                    match merged.iter_mut().find(|s| s.matcher() == service.matcher()) {
                        Some(current) => *current = service.clone(),
                        None => merged.push(service.clone()),
                    }
                }
                if let Err(e) = services::validate(&merged) {
                    return Ok(Err(ApiError::invalid(format!(
                        "together with the vault's current services: {e}"
                    ))));
                }
                if proposals::pending_count(tx, &vault_id)? >= proposals::MAX_PENDING {
                    return Ok(Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_pending",
                        format!(
                            "this vault already has {} pending proposals; wait until some are approved or rejected (`agent-vault vault proposal list --status pending`)",
                            proposals::MAX_PENDING
                        ),
                    )));
                }
                let proposer = match &principal {
                    Principal::User(user) => Proposer::User(user.id.clone()),
                    Principal::Agent(agent) => Proposer::Agent(agent.id.clone()),
                    Principal::Scoped { .. } => Proposer::Scoped {
                        public_id: session.public_id.clone(),
                        minted_by: proposals::scoped_minter(tx, &session.token_hash)?,
                    },
                };
                let new = NewProposal {
                    services,
                    credentials,
                    message,
                    user_message,
                    proposer,
                };
                proposals::create(tx, &vault_id, &new).map(Ok)
            })
        })
        .await??;
    let (proposal, token) = created;
    let vault = &access.vault.name;
    let approval_url = format!(
        "{}/approve/{}/{}?token={}",
        state.config.base_url,
        vault,
        proposal.number,
        token.raw.expose()
    );
    super::email::notify_proposal(
        &state,
        access.vault.clone(),
        proposal.clone(),
        approval_url.clone(),
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "number": proposal.number,
            "status": proposal.status,
            "vault": vault,
            "approval_url": approval_url,
        })),
    ))
}

/// `{type, name}` of a user or agent; `name` is null when the account is gone.
fn actor_json(conn: &Connection, kind: ActorType, id: &str) -> store::Result<Value> {
    let name = match kind {
        ActorType::User => users::by_id(conn, id)?.map(|u| u.email),
        ActorType::Agent => agents::by_id(conn, id)?.map(|a| a.name),
    };
    Ok(json!({ "type": kind.as_str(), "name": name }))
}

/// The JSON form of a proposal (list items and `GET …/proposals/{n}` alike).
fn detail(
    conn: &Connection,
    vault: &str,
    p: &Proposal,
    existing: &[String],
) -> store::Result<Value> {
    let created_by = match &p.proposer {
        Proposer::User(id) => actor_json(conn, ActorType::User, id)?,
        Proposer::Agent(id) => actor_json(conn, ActorType::Agent, id)?,
        Proposer::Scoped { minted_by, .. } => {
            let mut by = json!({ "type": "scoped", "name": null });
            if let Some((kind, id)) = minted_by {
                by["minted_by"] = actor_json(conn, *kind, id)?;
            }
            by
        }
    };
    let reviewed_by = match &p.reviewed_by {
        Some((kind, id)) => actor_json(conn, *kind, id)?,
        None => Value::Null,
    };
    let credentials: Vec<Value> = p
        .credentials
        .iter()
        .map(|c| {
            json!({
                "key": c.key,
                "description": c.description,
                "exists": existing.contains(&c.key),
            })
        })
        .collect();
    Ok(json!({
        "number": p.number,
        "status": p.status,
        "vault": vault,
        "services": p.services,
        "credentials": credentials,
        "message": p.message,
        "user_message": p.user_message,
        "created_by": created_by,
        "created_at": rfc3339(p.created_at),
        "reviewed_by": reviewed_by,
        "reviewed_at": p.reviewed_at.map(rfc3339),
        "review_note": p.review_note,
    }))
}

/// A proposal number from the URL, with an error that says what a number looks like.
pub(super) fn parse_number(text: &str) -> Result<i64, ApiError> {
    text.trim_start_matches('#')
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "\"{text}\" is not a proposal number; use the number from `agent-vault vault proposal list`, e.g. 3"
            ))
        })
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /v1/vaults/{v}/proposals[?status=]`: any role; the proxy role sees pending ones only.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    let mut status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(s.parse::<ProposalStatus>().map_err(ApiError::invalid)?),
    };
    if access.role == Some(VaultRole::Proxy) {
        status = Some(ProposalStatus::Pending);
    }
    let (vault_id, vault) = (access.vault.id.clone(), access.vault.name.clone());
    let items = state
        .db(move |store, _| {
            store.read(|conn| {
                let existing = credentials::keys(conn, &vault_id)?;
                proposals::list(conn, &vault_id, status)?
                    .iter()
                    .map(|p| detail(conn, &vault, p, &existing))
                    .collect::<store::Result<Vec<_>>>()
            })
        })
        .await?;
    Ok(axum::Json(
        json!({ "vault": access.vault.name, "proposals": items }),
    ))
}

/// `GET /v1/vaults/{v}/proposals/{n}`: any role, so an agent can poll for the outcome.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let number = parse_number(&number)?;
    let access = vault_access(&state, &caller, &name).await?;
    access.require(VaultRole::Proxy)?;
    let (vault_id, vault) = (access.vault.id.clone(), access.vault.name.clone());
    let found = state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(p) = proposals::get(conn, &vault_id, number)? else {
                    return Ok(None);
                };
                let existing = credentials::keys(conn, &vault_id)?;
                detail(conn, &vault, &p, &existing).map(Some)
            })
        })
        .await?;
    found
        .map(axum::Json)
        .ok_or_else(|| not_found(&name, number))
}

fn not_found(vault: &str, number: i64) -> ApiError {
    ApiError::not_found(format!(
        "vault \"{vault}\" has no proposal #{number}; see `agent-vault vault proposal list --vault {vault}`"
    ))
}

/// The caller as a reviewer: a user or agent with the member role or above on the vault.
fn reviewer(caller: &Caller, access: &VaultAccess) -> Result<(ActorType, String), ApiError> {
    let Some((kind, id)) = caller.actor() else {
        return Err(ApiError::forbidden(
            "a vault-scoped token cannot approve or reject proposals; review them with a login (`agent-vault vault proposal approve <n>`) or on the approval page",
        ));
    };
    access.require(VaultRole::Member)?;
    Ok((kind, id.to_owned()))
}

/// What a reviewer decided.
pub(super) enum Decision {
    Approve(BTreeMap<String, SecretString>),
    Reject(Option<String>),
}

/// Checks approval values: well-formed keys, non-empty, bounded. Never quotes a value.
fn check_values(values: &BTreeMap<String, SecretString>) -> Result<(), ApiError> {
    for (key, value) in values {
        validate_credential_key(key).map_err(ApiError::invalid)?;
        if value.is_empty() {
            return Err(ApiError::invalid(format!(
                "the value of {key} is empty; give a value, or leave {key} out to keep the vault's current one"
            )));
        }
        if value.expose().len() > MAX_VALUE_LEN {
            return Err(ApiError::invalid(format!(
                "the value of {key} is larger than 64 KiB"
            )));
        }
    }
    Ok(())
}

/// What a decision did: the services and credential keys an approval applied.
pub(super) struct Decided {
    pub status: ProposalStatus,
    pub services: Vec<String>,
    pub credentials: Vec<String>,
}

/// Applies a reviewer's decision in one write transaction (shared by the API and the
/// approval page). The reviewer's role on the vault is checked by the caller.
pub(super) async fn decide(
    state: &AppState,
    vault: &Vault,
    number: i64,
    reviewer: (ActorType, String),
    may_change_services: bool,
    decision: Decision,
) -> Result<Decided, ApiError> {
    let reason = match &decision {
        Decision::Approve(values) => {
            check_values(values)?;
            None
        }
        Decision::Reject(reason) => text_field(reason.clone(), "the reason", MAX_MESSAGE)?,
    };
    let (vault_id, name) = (vault.id.clone(), vault.name.clone());
    let outcome = state
        .db(move |store, dek| {
            store.write(|tx| {
                let Some(proposal) = proposals::get(tx, &vault_id, number)? else {
                    return Ok(Err(not_found(&name, number)));
                };
                let (kind, id) = (reviewer.0, reviewer.1.as_str());
                if proposal.filed_by(kind, id) {
                    return Ok(Err(ApiError::forbidden(format!(
                        "you filed proposal #{number} yourself; another member of vault \"{name}\" must review it"
                    ))));
                }
                // Approving applies the services, so it needs the right to change them:
                // otherwise a member could add services by approving a proposal.
                if matches!(decision, Decision::Approve(_))
                    && !proposal.services.is_empty()
                    && !may_change_services
                {
                    return Ok(Err(ApiError::forbidden(format!(
                        "proposal #{number} adds or changes services, which needs the admin role on vault \"{name}\"; ask a vault admin to approve it (members may approve proposals that only request credentials)"
                    ))));
                }
                Ok(match &decision {
                    Decision::Approve(values) => {
                        proposals::approve(tx, dek, &vault_id, number, (kind, id), values)?.map(
                            |applied| Decided {
                                status: ProposalStatus::Approved,
                                services: applied.services,
                                credentials: applied.credentials,
                            },
                        )
                    }
                    Decision::Reject(_) => {
                        proposals::reject(tx, &vault_id, number, (kind, id), reason.as_deref())?
                            .map(|()| Decided {
                                status: ProposalStatus::Rejected,
                                services: Vec::new(),
                                credentials: Vec::new(),
                            })
                    }
                }
                .map_err(|refused| refusal(refused, &name, number)))
            })
        })
        .await??;
    Ok(outcome)
}

fn refusal(refused: Refused, vault: &str, number: i64) -> ApiError {
    match refused {
        Refused::NotFound => not_found(vault, number),
        Refused::NotPending(status) => {
            ApiError::conflict(format!("proposal #{number} is already {status}"))
        }
        Refused::MissingValues(keys) => ApiError::invalid(format!(
            "proposal #{number} needs a value for {}: pass {} (`agent-vault vault proposal approve {number} KEY=VALUE`, or {{\"credentials\": {{\"KEY\": \"value\"}}}})",
            keys.join(", "),
            keys.iter()
                .map(|k| format!("{k}=…"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        Refused::UnexpectedValues(keys) => ApiError::invalid(format!(
            "proposal #{number} does not ask for {}; leave {} out (set other credentials with `agent-vault vault credential set`)",
            keys.join(", "),
            if keys.len() == 1 { "it" } else { "them" }
        )),
        Refused::ServicesConflict(message) => ApiError::conflict(format!(
            "the services of vault \"{vault}\" changed since proposal #{number} was filed: {message}; reject it and file a new proposal"
        )),
    }
}

/// A JSON body that may be left out entirely (read as `{}`).
async fn optional_body<T: DeserializeOwned + Default>(bytes: Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let request = axum::extract::Request::new(axum::body::Body::from(bytes));
    ApiJson::<T>::from_request(request, &())
        .await
        .map(|ApiJson(body)| body)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    credentials: BTreeMap<String, SecretString>,
}

/// `POST /v1/vaults/{v}/proposals/{n}/approve`: member+, not the proposer.
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let number = parse_number(&number)?;
    let access = vault_access(&state, &caller, &name).await?;
    let reviewer = reviewer(&caller, &access)?;
    let values = optional_body::<ApproveBody>(body).await?.credentials;
    let decided = decide(
        &state,
        &access.vault,
        number,
        reviewer,
        access.require(VaultRole::Admin).is_ok(),
        Decision::Approve(values),
    )
    .await?;
    Ok(axum::Json(json!({
        "number": number,
        "status": decided.status,
        "vault": access.vault.name,
        "services": decided.services,
        "credentials": decided.credentials,
    })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/vaults/{v}/proposals/{n}/reject`: member+, not the proposer.
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let number = parse_number(&number)?;
    let access = vault_access(&state, &caller, &name).await?;
    let reviewer = reviewer(&caller, &access)?;
    let reason = optional_body::<RejectBody>(body).await?.reason;
    let decided = decide(
        &state,
        &access.vault,
        number,
        reviewer,
        access.require(VaultRole::Admin).is_ok(),
        Decision::Reject(reason),
    )
    .await?;
    Ok(axum::Json(json!({
        "number": number,
        "status": decided.status,
        "vault": access.vault.name,
    })))
}

/// Keys a proposal needs (requested or used by its services) and whether each is set.
pub(super) fn needed_keys(
    p: &Proposal,
    existing: &[String],
) -> Vec<(String, Option<String>, bool)> {
    p.required_keys()
        .into_iter()
        .map(|key| {
            let description = p
                .credentials
                .iter()
                .find(|c| c.key == key)
                .and_then(|c| c.description.clone());
            let exists = existing.contains(&key);
            (key, description, exists)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_credentials_are_keys_never_values() {
        let parsed = parse_credentials(vec![
            json!("API_KEY"),
            json!({ "key": "OTHER_KEY", "description": "the other one" }),
            json!({ "key": "BLANK_KEY", "description": "  " }),
        ])
        .unwrap();
        assert_eq!(parsed[0].key, "API_KEY");
        assert_eq!(parsed[1].description.as_deref(), Some("the other one"));
        assert_eq!(parsed[2].description, None);

        for (raw, needle) in [
            (
                json!({ "key": "API_KEY", "value": "SENTINEL-1" }),
                "cannot carry",
            ),
            (
                json!("sk-live-SENTINEL0123456789"),
                "looks like a credential value",
            ),
            (
                json!({ "key": "API_KEY", "secret": "SENTINEL-2" }),
                "unknown field `secret`",
            ),
            (json!(["SENTINEL-3"]), "expected {"),
            (
                json!({ "key": "API_KEY", "description": "a\u{1b}[2Jb" }),
                "one line",
            ),
        ] {
            let err = parse_credentials(vec![raw]).unwrap_err();
            assert!(err.message.contains(needle), "{needle}: {}", err.message);
            assert!(!err.message.contains("SENTINEL"), "{}", err.message);
        }
        let twice = parse_credentials(vec![json!("API_KEY"), json!("API_KEY")]).unwrap_err();
        assert!(twice.message.contains("twice"), "{}", twice.message);
    }

    #[test]
    fn messages_are_bounded_plain_text() {
        assert_eq!(text_field(Some("  ".into()), "message", 10).unwrap(), None);
        assert!(text_field(Some("line\nline\ttab".into()), "message", 100).is_ok());
        assert!(text_field(Some("x".repeat(11)), "message", 10).is_err());
        assert!(text_field(Some("bell\u{7}".into()), "message", 100).is_err());
    }

    #[test]
    fn proposal_numbers_are_positive_integers() {
        assert_eq!(parse_number("3").unwrap(), 3);
        assert_eq!(parse_number("#3").unwrap(), 3);
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_number(bad).is_err(), "{bad}");
        }
    }
}
