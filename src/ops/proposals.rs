//! Proposals: an agent asks for services and credential keys in a vault; someone with the
//! member role or above reviews it, supplying the credential values.
//!
//! Stance: filing needs only the proxy role, since that is what agents run with. Reviewing
//! needs member or above through a login or an agent token — never a vault-scoped token — and
//! never by the proposer itself, so no principal can grant itself a service or a credential
//! alone. Approving a proposal that changes services needs the admin role, as changing them
//! directly does. Credential values come only from the approver and are never echoed back.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Connection;
use axum::http::StatusCode;
use serde_json::Value;

use super::access::{VaultAccess, vault_access};
use super::caller::{Caller, Principal};
use super::{AppState, OpError};
use crate::crypto::{NewToken, SecretString};
use crate::services::{self, Service, validate_credential_key};
use crate::store::proposals::{
    self, NewProposal, Proposal, ProposalStatus, Proposer, Refused, RequestedCredential,
};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{self, VaultRole, agents, credentials, now, users};

const MAX_MESSAGE: usize = 2000;
const MAX_USER_MESSAGE: usize = 5000;
const MAX_DESCRIPTION: usize = 500;
/// Services, and requested credentials, one proposal may hold.
const MAX_ITEMS: usize = 20;
/// Largest credential value accepted (as for credentials set directly).
const MAX_VALUE_LEN: usize = super::credentials::MAX_VALUE_LEN;

/// Reads each service as `POST …/services` does, after the proposal's own bound.
fn parse_services(raw: Vec<Value>) -> Result<Vec<Service>, OpError> {
    if raw.len() > MAX_ITEMS {
        return Err(OpError::invalid(format!(
            "a proposal holds at most {MAX_ITEMS} services; split it"
        )));
    }
    super::services::parse_services(raw)
}

/// Reads `{key, description?}` entries (a bare `"KEY"` string is accepted too). Messages
/// never quote what was sent except through [`validate_credential_key`], which withholds
/// anything that looks like a credential value.
fn parse_credentials(raw: Vec<Value>) -> Result<Vec<RequestedCredential>, OpError> {
    if raw.len() > MAX_ITEMS {
        return Err(OpError::invalid(format!(
            "a proposal requests at most {MAX_ITEMS} credentials; split it"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let at = format!("credentials[{i}]");
        let shape = || {
            OpError::invalid(format!(
                "{at}: expected {{\"key\": \"API_KEY\", \"description\": \"what it is\"}}"
            ))
        };
        let (key, description) = match value {
            Value::String(key) => (key, None),
            Value::Object(mut fields) => {
                if fields.contains_key("value") {
                    return Err(OpError::invalid(format!(
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
                    return Err(OpError::invalid(format!(
                        "{at}: unknown field `{field}`; use key and description"
                    )));
                }
                (key, description)
            }
            _ => return Err(shape()),
        };
        validate_credential_key(&key).map_err(|e| OpError::invalid(format!("{at}.key: {e}")))?;
        if let Some(d) = &description
            && (d.chars().count() > MAX_DESCRIPTION || crate::text::misleads_display(d, false))
        {
            return Err(OpError::invalid(format!(
                "{at}.description: use one line of plain text (no control or text-direction characters) of at most {MAX_DESCRIPTION} characters"
            )));
        }
        if !seen.insert(key.clone()) {
            return Err(OpError::invalid(format!(
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
fn text_field(value: Option<String>, field: &str, max: usize) -> Result<Option<String>, OpError> {
    match value {
        Some(text) if text.chars().count() > max => Err(OpError::invalid(format!(
            "{field} is longer than {max} characters; shorten it"
        ))),
        Some(text) if crate::text::misleads_display(&text.replace("\r\n", "\n"), true) => {
            Err(OpError::invalid(format!(
                "{field} contains control characters or text-direction controls (such as U+202E, which reorders what a reviewer sees); send plain text (line breaks are fine)"
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
    header: Option<String>,
    asked: Option<String>,
) -> Result<VaultAccess, OpError> {
    let name = match &caller.principal {
        Principal::Scoped { vault_id, .. } => {
            let id = vault_id.clone();
            let own = state
                .db(move |s, _| s.read(|c| vaults::by_id(c, &id)))
                .await?
                .ok_or_else(|| OpError::unauthorized("the token's vault no longer exists"))?;
            if let Some(asked) = asked
                && asked != own.name
            {
                return Err(OpError::forbidden(format!(
                    "this token belongs to vault \"{}\"; it cannot file a proposal in vault \"{asked}\"",
                    own.name
                )));
            }
            own.name
        }
        Principal::User(_) | Principal::Agent(_) => match (asked, header) {
            (Some(body), Some(header)) if body != header => {
                return Err(OpError::invalid(format!(
                    "the body names vault \"{body}\" but X-Vault names \"{header}\"; send one"
                )));
            }
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => {
                return Err(OpError::invalid(
                    "name the vault: send {\"vault\": \"<name>\", …} or an X-Vault header",
                ));
            }
        },
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

/// What an agent files.
pub struct NewRequest {
    /// The vault named in the body (the `X-Vault` header is the other way).
    pub vault: Option<String>,
    pub x_vault: Option<String>,
    pub services: Vec<Value>,
    pub credentials: Vec<Value>,
    pub message: Option<String>,
    pub user_message: Option<String>,
}

/// A proposal just filed, with its approval-page token (shown once, in the link).
pub struct Filed {
    pub proposal: Proposal,
    pub token: NewToken,
    pub vault: String,
}

impl Filed {
    /// The browser link a reviewer opens.
    pub fn approval_url(&self, base_url: &str) -> String {
        format!(
            "{base_url}/approve/{}/{}?token={}",
            self.vault,
            self.proposal.number,
            self.token.raw.expose()
        )
    }
}

/// Files a proposal (any role on the vault).
pub async fn create(state: &AppState, caller: &Caller, body: NewRequest) -> Result<Filed, OpError> {
    let services = parse_services(body.services)?;
    let credentials = parse_credentials(body.credentials)?;
    if services.is_empty() && credentials.is_empty() {
        return Err(OpError::invalid(
            "a proposal needs at least one service or credential: send {\"services\": [...]} and/or {\"credentials\": [{\"key\": \"API_KEY\"}]}",
        ));
    }
    let message = text_field(body.message, "message", MAX_MESSAGE)?;
    let user_message = text_field(body.user_message, "user_message", MAX_USER_MESSAGE)?;
    let access = filing_vault(state, caller, body.x_vault, body.vault).await?;

    let vault_id = access.vault.id.clone();
    let principal = caller.principal.clone();
    let session = caller.session.clone();
    let created = state
        .db(move |store, _| {
            store.write(|tx| {
                let existing = credentials::keys(tx, &vault_id)?;
                let unresolved = unresolved_keys(&services, &credentials, &existing);
                if !unresolved.is_empty() {
                    return Ok(Err(OpError::invalid(format!(
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
                    return Ok(Err(OpError::invalid(format!(
                        "together with the vault's current services: {e}"
                    ))));
                }
                if proposals::pending_count(tx, &vault_id)? >= proposals::MAX_PENDING {
                    return Ok(Err(OpError::new(
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
    let filed = Filed {
        proposal,
        token,
        vault: access.vault.name.clone(),
    };
    super::email::notify_proposal(
        state,
        access.vault,
        filed.proposal.clone(),
        filed.approval_url(&state.config.base_url),
    );
    Ok(filed)
}

/// A user or agent named in a proposal: its kind and email or name (`None` once removed).
pub struct ActorName {
    pub kind: ActorType,
    pub name: Option<String>,
}

fn actor_name(conn: &Connection, kind: ActorType, id: &str) -> store::Result<ActorName> {
    let name = match kind {
        ActorType::User => users::by_id(conn, id)?.map(|u| u.email),
        ActorType::Agent => agents::by_id(conn, id)?.map(|a| a.name),
    };
    Ok(ActorName { kind, name })
}

/// Who filed a proposal.
pub enum FiledBy {
    Actor(ActorName),
    /// A vault-scoped token, with who minted it when known.
    Scoped(Option<ActorName>),
}

/// A proposal with the names and facts a reviewer sees.
pub struct ProposalView {
    pub vault: String,
    pub proposal: Proposal,
    pub filed_by: FiledBy,
    pub reviewed_by: Option<ActorName>,
    /// Credential keys the vault already holds.
    pub existing: Vec<String>,
    /// The vault's current services that approving would replace (same host, port and path).
    pub replaced: Vec<Service>,
}

impl ProposalView {
    /// Who filed it, in words.
    pub fn filed_by_text(&self) -> String {
        fn named(actor: &ActorName) -> String {
            match (actor.kind, &actor.name) {
                (ActorType::User, Some(email)) => email.clone(),
                (ActorType::User, None) => "a removed user".to_owned(),
                (ActorType::Agent, Some(name)) => format!("agent \"{name}\""),
                (ActorType::Agent, None) => "a removed agent".to_owned(),
            }
        }
        match &self.filed_by {
            FiledBy::Actor(actor) => named(actor),
            FiledBy::Scoped(Some(minter)) => {
                format!("an agent using a vault token of {}", named(minter))
            }
            FiledBy::Scoped(None) => "an agent using a vault token".to_owned(),
        }
    }

    /// Keys the proposal needs (requested or used by its services): (key, description,
    /// already set in the vault).
    pub fn needed_keys(&self) -> Vec<(String, Option<String>, bool)> {
        needed_keys(&self.proposal, &self.existing)
    }
}

/// Who filed a proposal, in words (for notices).
pub fn filed_by_text(conn: &Connection, proposal: &Proposal) -> store::Result<String> {
    Ok(view(conn, "", proposal.clone(), &Current::default())?.filed_by_text())
}

/// What a vault holds now, beside which a proposal is shown.
#[derive(Default)]
struct Current {
    keys: Vec<String>,
    services: Vec<Service>,
}

fn current(conn: &Connection, vault_id: &str) -> store::Result<Current> {
    Ok(Current {
        keys: credentials::keys(conn, vault_id)?,
        services: store::services::list(conn, vault_id)?,
    })
}

fn view(
    conn: &Connection,
    vault: &str,
    proposal: Proposal,
    current: &Current,
) -> store::Result<ProposalView> {
    let filed_by = match &proposal.proposer {
        Proposer::User(id) => FiledBy::Actor(actor_name(conn, ActorType::User, id)?),
        Proposer::Agent(id) => FiledBy::Actor(actor_name(conn, ActorType::Agent, id)?),
        Proposer::Scoped { minted_by, .. } => FiledBy::Scoped(match minted_by {
            Some((kind, id)) => Some(actor_name(conn, *kind, id)?),
            None => None,
        }),
    };
    let reviewed_by = match &proposal.reviewed_by {
        Some((kind, id)) => Some(actor_name(conn, *kind, id)?),
        None => None,
    };
    let replaced = current
        .services
        .iter()
        .filter(|s| proposal.services.iter().any(|p| p.matcher() == s.matcher()))
        .cloned()
        .collect();
    Ok(ProposalView {
        vault: vault.to_owned(),
        proposal,
        filed_by,
        reviewed_by,
        existing: current.keys.clone(),
        replaced,
    })
}

/// Reads a status filter (`all` or empty for every status).
pub fn parse_status(text: Option<&str>) -> Result<Option<ProposalStatus>, OpError> {
    match text {
        None | Some("") | Some("all") => Ok(None),
        Some(s) => s
            .parse::<ProposalStatus>()
            .map(Some)
            .map_err(OpError::invalid),
    }
}

/// The proposals of a vault (any role; the proxy role sees pending ones only).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    status: Option<&str>,
) -> Result<(VaultAccess, Vec<ProposalView>), OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Proxy)?;
    let status = parse_status(status)?;
    let status = if access.role == Some(VaultRole::Proxy) {
        Some(ProposalStatus::Pending)
    } else {
        status
    };
    let (vault_id, name) = (access.vault.id.clone(), access.vault.name.clone());
    let items = state
        .db(move |store, _| {
            store.read(|conn| {
                let current = current(conn, &vault_id)?;
                proposals::list(conn, &vault_id, status)?
                    .into_iter()
                    .map(|p| view(conn, &name, p, &current))
                    .collect::<store::Result<Vec<_>>>()
            })
        })
        .await?;
    Ok((access, items))
}

/// One proposal (any role, so an agent can poll for the outcome).
pub async fn get(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    number: i64,
) -> Result<ProposalView, OpError> {
    let access = vault_access(state, caller, vault).await?;
    access.require(VaultRole::Proxy)?;
    let (vault_id, name) = (access.vault.id.clone(), access.vault.name.clone());
    let found = state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(p) = proposals::get(conn, &vault_id, number)? else {
                    return Ok(None);
                };
                view(conn, &name, p, &current(conn, &vault_id)?).map(Some)
            })
        })
        .await?;
    found.ok_or_else(|| not_found(vault, number))
}

/// A proposal reached through its approval link, if the link's token is right and
/// unexpired. The link lets its holder see the proposal, nothing more.
pub async fn by_link(
    state: &AppState,
    vault: &str,
    number: i64,
    token: &str,
) -> Result<Option<(Vault, ProposalView)>, OpError> {
    let (vault, token) = (vault.to_owned(), token.to_owned());
    state
        .db(move |store, _| {
            store.read(|conn| {
                let Some(vault) = vaults::by_name(conn, &vault)? else {
                    return Ok(None);
                };
                let Some(proposal) = proposals::get(conn, &vault.id, number)? else {
                    return Ok(None);
                };
                if !proposal.link_accepts(&token, now()) {
                    return Ok(None);
                }
                let view = view(conn, &vault.name, proposal, &current(conn, &vault.id)?)?;
                Ok(Some((vault, view)))
            })
        })
        .await
}

/// A proposal number from the URL, with an error that says what a number looks like.
pub fn parse_number(text: &str) -> Result<i64, OpError> {
    text.trim_start_matches('#')
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            OpError::invalid(format!(
                "\"{text}\" is not a proposal number; use the number from `agent-vault vault proposal list`, e.g. 3"
            ))
        })
}

fn not_found(vault: &str, number: i64) -> OpError {
    OpError::not_found(format!(
        "vault \"{vault}\" has no proposal #{number}; see `agent-vault vault proposal list --vault {vault}`"
    ))
}

/// The caller as a reviewer: a user or agent with the member role or above on the vault.
fn reviewer(caller: &Caller, access: &VaultAccess) -> Result<(ActorType, String), OpError> {
    let Some((kind, id)) = caller.actor() else {
        return Err(OpError::forbidden(
            "a vault-scoped token cannot approve or reject proposals; review them with a login (`agent-vault vault proposal approve <n>`) or on the approval page",
        ));
    };
    access.require(VaultRole::Member)?;
    Ok((kind, id.to_owned()))
}

/// What a reviewer decided.
pub enum Decision {
    Approve(BTreeMap<String, SecretString>),
    Reject(Option<String>),
}

/// Checks approval values: well-formed keys, non-empty, bounded. Never quotes a value.
fn check_values(values: &BTreeMap<String, SecretString>) -> Result<(), OpError> {
    for (key, value) in values {
        validate_credential_key(key).map_err(OpError::invalid)?;
        if value.is_empty() {
            return Err(OpError::invalid(format!(
                "the value of {key} is empty; give a value, or leave {key} out to keep the vault's current one"
            )));
        }
        if value.expose().len() > MAX_VALUE_LEN {
            return Err(OpError::invalid(format!(
                "the value of {key} is larger than 64 KiB"
            )));
        }
    }
    Ok(())
}

/// What a decision did: the services and credential keys an approval applied.
pub struct Decided {
    pub status: ProposalStatus,
    pub services: Vec<String>,
    pub credentials: Vec<String>,
}

/// Applies a reviewer's decision in one write transaction (shared by the API and the
/// approval page). The reviewer's role on the vault is checked by the caller.
async fn decide(
    state: &AppState,
    vault: &Vault,
    number: i64,
    reviewer: (ActorType, String),
    may_change_services: bool,
    decision: Decision,
) -> Result<Decided, OpError> {
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
                    return Ok(Err(OpError::forbidden(format!(
                        "you filed proposal #{number} yourself; another member of vault \"{name}\" must review it"
                    ))));
                }
                // The reviewer's role again, inside the write: a review in flight when its
                // sender is removed or lowered must not land after that change.
                let held = vaults::role_of(tx, &vault_id, kind, id)?;
                if held < Some(VaultRole::Member) {
                    return Ok(Err(OpError::forbidden(format!(
                        "you no longer hold a role on vault \"{name}\" that reviews proposals"
                    ))));
                }
                // Approving applies the services, so it needs the right to change them:
                // otherwise a member could add services by approving a proposal.
                if matches!(decision, Decision::Approve(_))
                    && !proposal.services.is_empty()
                    && !(may_change_services && held >= Some(VaultRole::Admin))
                {
                    return Ok(Err(OpError::forbidden(format!(
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

fn refusal(refused: Refused, vault: &str, number: i64) -> OpError {
    match refused {
        Refused::NotFound => not_found(vault, number),
        Refused::NotPending(status) => {
            OpError::conflict(format!("proposal #{number} is already {status}"))
        }
        Refused::MissingValues(keys) => OpError::invalid(format!(
            "proposal #{number} needs a value for {}: pass {} (`agent-vault vault proposal approve {number} KEY=VALUE`, or {{\"credentials\": {{\"KEY\": \"value\"}}}})",
            keys.join(", "),
            keys.iter()
                .map(|k| format!("{k}=…"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        Refused::UnexpectedValues(keys) => OpError::invalid(format!(
            "proposal #{number} does not ask for {}; leave {} out (set other credentials with `agent-vault vault credential set`)",
            keys.join(", "),
            if keys.len() == 1 { "it" } else { "them" }
        )),
        Refused::ServicesConflict(message) => OpError::conflict(format!(
            "the services of vault \"{vault}\" changed since proposal #{number} was filed: {message}; reject it and file a new proposal"
        )),
    }
}

/// Checks that the caller may review proposals of the vault at all (before reading what
/// they decided).
pub async fn check_reviewer(state: &AppState, caller: &Caller, vault: &str) -> Result<(), OpError> {
    let access = vault_access(state, caller, vault).await?;
    reviewer(caller, &access).map(drop)
}

/// Approves or rejects a proposal as the caller: member or above on the vault, not its
/// proposer; approving one that changes services needs admin.
pub async fn review(
    state: &AppState,
    caller: &Caller,
    vault: &str,
    number: i64,
    decision: Decision,
) -> Result<(Vault, Decided), OpError> {
    let access = vault_access(state, caller, vault).await?;
    let reviewer = reviewer(caller, &access)?;
    let may_change_services = access.require(VaultRole::Admin).is_ok();
    let decided = decide(
        state,
        &access.vault,
        number,
        reviewer,
        may_change_services,
        decision,
    )
    .await?;
    Ok((access.vault, decided))
}

/// Keys a proposal needs (requested or used by its services) and whether each is set.
fn needed_keys(p: &Proposal, existing: &[String]) -> Vec<(String, Option<String>, bool)> {
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
    use serde_json::json;

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
