//! Who is calling: the `Authorization: Bearer` token resolved to a session and its principal.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::crypto::hash_token;
use crate::store::agents::{self, Agent};
use crate::store::sessions::{self, Session, SessionKind};
use crate::store::users::{self, User};
use crate::store::vaults::ActorType;
use crate::store::{InstanceRole, VaultRole, now};

/// The authenticated principal behind a request.
#[derive(Debug, Clone)]
pub enum Principal {
    User(User),
    Agent(Agent),
    /// A vault-scoped token: it carries its vault and role and acts for nobody else.
    Scoped {
        vault_id: String,
        role: VaultRole,
    },
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub session: Session,
    pub principal: Principal,
}

impl Caller {
    /// The calling user, or 403 for agent and scoped tokens.
    pub fn user(&self) -> Result<&User, ApiError> {
        match &self.principal {
            Principal::User(user) => Ok(user),
            _ => Err(ApiError::forbidden(
                "this action needs a user login; log in with `agent-vault auth login`",
            )),
        }
    }

    /// Instance owners: users, and agents given the owner role.
    pub fn is_owner(&self) -> bool {
        match &self.principal {
            Principal::User(u) => u.role == InstanceRole::Owner,
            Principal::Agent(a) => a.role == InstanceRole::Owner,
            Principal::Scoped { .. } => false,
        }
    }

    /// The caller as a grant holder: (actor type, id), or `None` for a scoped token.
    pub fn actor(&self) -> Option<(ActorType, &str)> {
        match &self.principal {
            Principal::User(u) => Some((ActorType::User, &u.id)),
            Principal::Agent(a) => Some((ActorType::Agent, &a.id)),
            Principal::Scoped { .. } => None,
        }
    }
}

/// The raw bearer token of a request, if any.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "missing `Authorization: Bearer <token>`; log in with `agent-vault auth login`",
            )
        })?;
        let hash = hash_token(token);
        let caller = state
            .db(move |store, _| {
                store.read(|conn| {
                    let Some(session) = sessions::by_token_hash(conn, &hash)? else {
                        return Ok(None);
                    };
                    let now = now();
                    if session.is_expired(now) {
                        return Ok(None);
                    }
                    let principal = match session.kind {
                        SessionKind::User => {
                            let user_id = session.user_id.as_deref().unwrap_or_default();
                            match users::by_id(conn, user_id)? {
                                Some(user) if user.active => Principal::User(user),
                                _ => return Ok(None),
                            }
                        }
                        SessionKind::Agent => {
                            let agent_id = session.agent_id.as_deref().unwrap_or_default();
                            match agents::by_id(conn, agent_id)? {
                                Some(agent) => Principal::Agent(agent),
                                None => return Ok(None),
                            }
                        }
                        SessionKind::Scoped => match (&session.vault_id, session.vault_role) {
                            (Some(vault_id), Some(role)) => Principal::Scoped {
                                vault_id: vault_id.clone(),
                                role,
                            },
                            _ => return Ok(None),
                        },
                    };
                    sessions::touch(conn, &session, now)?;
                    Ok(Some(Caller { session, principal }))
                })
            })
            .await?;
        caller.ok_or_else(|| {
            ApiError::unauthorized(
                "the session is invalid or has expired; log in again with `agent-vault auth login`",
            )
        })
    }
}
