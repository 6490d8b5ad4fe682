//! Proposals: a request, usually from an agent, for new services and credential keys in a
//! vault, waiting for someone with rights on the vault to approve or reject it.
//!
//! Numbers are per vault (`#1`, `#2`, …) and assigned inside the write transaction. The
//! services are stored as JSON [`Service`]s and the requested credentials as
//! `{key, description}` — never a value: values come from the approver at approval time.
//! Only the SHA-256 of the approval-page token is kept.
//!
//! Security stance: [`approve`] applies the services, the credential values (sealed under the
//! DEK) and the status change in the caller's one write transaction, only while the proposal
//! is still pending, and checks everything before it writes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use super::db::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::vaults::ActorType;
use super::{Result, StoreError, credentials, now};
use crate::crypto::{Key, NewToken, SecretString, TokenKind, hash_token, mint_token};
use crate::services::{self, Service};

/// Pending proposals a vault may hold at once: a runaway agent cannot flood its reviewers.
pub const MAX_PENDING: i64 = 20;
/// How long the browser approval link works after the proposal is filed. The CLI and the API
/// can review a proposal for as long as it is pending.
pub const APPROVAL_LINK_TTL: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalStatus {
    Pending,
    Approved,
    Rejected,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

impl fmt::Display for ProposalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProposalStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(Self::Pending),
            "approved" => Ok(Self::Approved),
            "rejected" => Ok(Self::Rejected),
            other => Err(format!(
                "unknown proposal status \"{other}\" (expected pending, approved or rejected)"
            )),
        }
    }
}

/// A credential key the proposal asks the approver to supply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedCredential {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Who filed a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposer {
    User(String),
    Agent(String),
    /// A vault-scoped token, named by its session's public id, with who minted the token
    /// (when known).
    Scoped {
        public_id: String,
        minted_by: Option<(ActorType, String)>,
    },
}

#[derive(Debug, Clone)]
pub struct Proposal {
    pub vault_id: String,
    pub number: i64,
    pub status: ProposalStatus,
    pub services: Vec<Service>,
    pub credentials: Vec<RequestedCredential>,
    pub message: Option<String>,
    pub user_message: Option<String>,
    pub proposer: Proposer,
    approval_token_hash: Option<String>,
    pub review_note: Option<String>,
    pub reviewed_by: Option<(ActorType, String)>,
    pub created_at: i64,
    pub reviewed_at: Option<i64>,
}

impl Proposal {
    /// Whether `actor` filed this proposal itself: as that user or agent, or — for an agent —
    /// through a vault-scoped token the agent minted. A person who minted the token their
    /// agent filed with is the intended reviewer, so that does not count as their own.
    pub fn filed_by(&self, actor: ActorType, id: &str) -> bool {
        match (&self.proposer, actor) {
            (Proposer::User(user), ActorType::User) => user == id,
            (Proposer::Agent(agent), ActorType::Agent) => agent == id,
            (
                Proposer::Scoped {
                    minted_by: Some((ActorType::Agent, agent)),
                    ..
                },
                ActorType::Agent,
            ) => agent == id,
            _ => false,
        }
    }

    /// Whether `token` is this proposal's approval-page token and the link has not expired.
    pub fn link_accepts(&self, token: &str, now: i64) -> bool {
        let Some(stored) = &self.approval_token_hash else {
            return false;
        };
        let matches: bool = hash_token(token).as_bytes().ct_eq(stored.as_bytes()).into();
        matches && now < self.created_at + APPROVAL_LINK_TTL
    }

    /// Every credential key approval must leave set: the requested ones and those the
    /// proposed services use.
    pub fn required_keys(&self) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = self.credentials.iter().map(|c| c.key.clone()).collect();
        for service in &self.services {
            keys.extend(service.credential_keys().into_iter().map(str::to_owned));
        }
        keys
    }
}

/// What [`create`] stores.
#[derive(Debug, Clone)]
pub struct NewProposal {
    pub services: Vec<Service>,
    pub credentials: Vec<RequestedCredential>,
    pub message: Option<String>,
    pub user_message: Option<String>,
    pub proposer: Proposer,
}

/// Why an approval or rejection did not happen. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    NotPending(ProposalStatus),
    /// Keys that need a value: neither given nor already set in the vault.
    MissingValues(Vec<String>),
    /// Values given for keys the proposal neither requests nor uses.
    UnexpectedValues(Vec<String>),
    /// The proposed services no longer fit the vault's current ones.
    ServicesConflict(String),
}

/// What an approval applied: service matchers and the credential keys given values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub services: Vec<String>,
    pub credentials: Vec<String>,
}

const COLUMNS: &str = "vault_id, number, status, services, credentials, message, user_message,
    created_by_type, created_by_id, minted_by_type, minted_by_id, approval_token_hash,
    review_note, reviewed_by, created_at, reviewed_at";

fn corrupt(what: &str) -> super::db::Error {
    super::db::Error::invalid(0, format!("stored proposal {what} is invalid"))
}

fn actor_type(text: &str) -> Option<ActorType> {
    match text {
        "user" => Some(ActorType::User),
        "agent" => Some(ActorType::Agent),
        _ => None,
    }
}

/// `user:<id>` / `agent:<id>`, the form of the `reviewed_by` column.
fn encode_actor(actor: ActorType, id: &str) -> String {
    format!("{}:{id}", actor.as_str())
}

fn decode_actor(text: &str) -> Option<(ActorType, String)> {
    let (kind, id) = text.split_once(':')?;
    Some((actor_type(kind)?, id.to_owned()))
}

fn from_row(r: &Row<'_>) -> super::db::Result<Proposal> {
    let status = r
        .get::<_, String>(2)?
        .parse()
        .map_err(|_| corrupt("status"))?;
    let services =
        serde_json::from_str(&r.get::<_, String>(3)?).map_err(|_| corrupt("services"))?;
    let credentials =
        serde_json::from_str(&r.get::<_, String>(4)?).map_err(|_| corrupt("credentials"))?;
    let created_by_type: String = r.get(7)?;
    let created_by_id: Option<String> = r.get(8)?;
    let minted_by = match (
        r.get::<_, Option<String>>(9)?,
        r.get::<_, Option<String>>(10)?,
    ) {
        (Some(kind), Some(id)) => actor_type(&kind).map(|k| (k, id)),
        _ => None,
    };
    let id = created_by_id.unwrap_or_default();
    let proposer = match created_by_type.as_str() {
        "user" => Proposer::User(id),
        "agent" => Proposer::Agent(id),
        "scoped" => Proposer::Scoped {
            public_id: id,
            minted_by,
        },
        _ => return Err(corrupt("creator")),
    };
    Ok(Proposal {
        vault_id: r.get(0)?,
        number: r.get(1)?,
        status,
        services,
        credentials,
        message: r.get(5)?,
        user_message: r.get(6)?,
        proposer,
        approval_token_hash: r.get(11)?,
        review_note: r.get(12)?,
        reviewed_by: r
            .get::<_, Option<String>>(13)?
            .as_deref()
            .and_then(decode_actor),
        created_at: r.get(14)?,
        reviewed_at: r.get(15)?,
    })
}

fn to_json(value: &impl Serialize, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what} encoding: {e}")))
}

/// Files a pending proposal under the vault's next number; returns it and the raw approval
/// token (shown once, in the approval link). Run it inside [`super::Store::write`] so the
/// number cannot be taken twice.
pub fn create(
    conn: &Connection,
    vault_id: &str,
    new: &NewProposal,
) -> Result<(Proposal, NewToken)> {
    let number: i64 = conn.query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM proposals WHERE vault_id = ?1",
        [vault_id],
        |r| r.get(0),
    )?;
    let token = mint_token(TokenKind::Approval);
    let (creator_type, creator_id, minted_by) = match &new.proposer {
        Proposer::User(id) => ("user", id, None),
        Proposer::Agent(id) => ("agent", id, None),
        Proposer::Scoped {
            public_id,
            minted_by,
        } => ("scoped", public_id, minted_by.as_ref()),
    };
    conn.execute(
        "INSERT INTO proposals (vault_id, number, status, services, credentials, message,
             user_message, created_by_type, created_by_id, minted_by_type, minted_by_id,
             approval_token_hash, created_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            vault_id,
            number,
            to_json(&new.services, "services")?,
            to_json(&new.credentials, "credentials")?,
            new.message,
            new.user_message,
            creator_type,
            creator_id,
            minted_by.map(|(kind, _)| kind.as_str()),
            minted_by.map(|(_, id)| id.as_str()),
            token.hash,
            now(),
        ],
    )?;
    let proposal = get(conn, vault_id, number)?.ok_or(super::db::Error::QueryReturnedNoRows)?;
    Ok((proposal, token))
}

pub fn pending_count(conn: &Connection, vault_id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM proposals WHERE vault_id = ?1 AND status = 'pending'",
        [vault_id],
        |r| r.get(0),
    )?)
}

pub fn get(conn: &Connection, vault_id: &str, number: i64) -> Result<Option<Proposal>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM proposals WHERE vault_id = ?1 AND number = ?2"),
            params![vault_id, number],
            from_row,
        )
        .optional()?)
}

/// The vault's proposals, oldest first, optionally only those with `status`.
pub fn list(
    conn: &Connection,
    vault_id: &str,
    status: Option<ProposalStatus>,
) -> Result<Vec<Proposal>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM proposals WHERE vault_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
         ORDER BY number"
    ))?;
    let proposals = stmt
        .query_map(
            params![vault_id, status.map(ProposalStatus::as_str)],
            from_row,
        )?
        .collect::<super::db::Result<_>>()?;
    Ok(proposals)
}

/// Who minted a vault-scoped session, from its token hash (to record with a proposal).
pub fn scoped_minter(conn: &Connection, token_hash: &str) -> Result<Option<(ActorType, String)>> {
    let row: Option<(Option<String>, Option<String>)> = conn
        .query_row(
            "SELECT created_by_type, created_by_id FROM sessions WHERE token_hash = ?1",
            [token_hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((Some(kind), Some(id))) => actor_type(&kind).map(|k| (k, id)),
        _ => None,
    })
}

/// Moves a pending proposal to `status`; false if it was no longer pending.
fn finish(
    conn: &Connection,
    vault_id: &str,
    number: i64,
    status: ProposalStatus,
    reviewer: (ActorType, &str),
    note: Option<&str>,
) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE proposals SET status = ?3, reviewed_by = ?4, review_note = ?5, reviewed_at = ?6
         WHERE vault_id = ?1 AND number = ?2 AND status = 'pending'",
        params![
            vault_id,
            number,
            status.as_str(),
            encode_actor(reviewer.0, reviewer.1),
            note,
            now()
        ],
    )? > 0)
}

/// The proposal, if it exists and is pending.
fn pending(conn: &Connection, vault_id: &str, number: i64) -> Result<Result<Proposal, Refused>> {
    Ok(match get(conn, vault_id, number)? {
        None => Err(Refused::NotFound),
        Some(p) if p.status != ProposalStatus::Pending => Err(Refused::NotPending(p.status)),
        Some(p) => Ok(p),
    })
}

/// Approves a pending proposal and applies it: its services are upserted into the vault
/// (merged by host, port and path), `values` are stored, and the status becomes approved.
///
/// Every key the proposal requests or its services use must end up set: given a non-empty
/// value in `values`, or already in the vault (where it is kept unless a value is given). Everything
/// is checked before anything is written; run it inside [`super::Store::write`] so the
/// writes commit together.
pub fn approve(
    conn: &Connection,
    dek: &Key,
    vault_id: &str,
    number: i64,
    reviewer: (ActorType, &str),
    values: &BTreeMap<String, SecretString>,
) -> Result<Result<Applied, Refused>> {
    let proposal = match pending(conn, vault_id, number)? {
        Ok(p) => p,
        Err(refused) => return Ok(Err(refused)),
    };
    let required = proposal.required_keys();
    let unexpected: Vec<String> = values
        .keys()
        .filter(|k| !required.contains(*k))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        return Ok(Err(Refused::UnexpectedValues(unexpected)));
    }
    let existing: BTreeSet<String> = credentials::keys(conn, vault_id)?.into_iter().collect();
    let missing: Vec<String> = required
        .iter()
        .filter(|k| match values.get(*k) {
            Some(value) => value.is_empty(),
            None => !existing.contains(*k),
        })
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(Err(Refused::MissingValues(missing)));
    }
    let mut merged = super::services::list(conn, vault_id)?;
    for service in &proposal.services {
        match merged.iter_mut().find(|s| s.matcher() == service.matcher()) {
            Some(current) => *current = service.clone(),
            None => merged.push(service.clone()),
        }
    }
    if let Err(e) = services::validate(&merged) {
        return Ok(Err(Refused::ServicesConflict(e.to_string())));
    }

    super::services::upsert(conn, vault_id, &proposal.services)?;
    for (key, value) in values {
        credentials::upsert(conn, dek, vault_id, key, value)?;
    }
    if !finish(
        conn,
        vault_id,
        number,
        ProposalStatus::Approved,
        reviewer,
        None,
    )? {
        // Unreachable inside a write transaction; failing rolls the writes above back.
        return Err(StoreError::Corrupt(format!(
            "proposal #{number} changed while it was being approved"
        )));
    }
    Ok(Ok(Applied {
        services: proposal.services.iter().map(Service::matcher).collect(),
        credentials: values.keys().cloned().collect(),
    }))
}

/// Rejects a pending proposal, keeping `note` (the reason) for the proposer to read.
pub fn reject(
    conn: &Connection,
    vault_id: &str,
    number: i64,
    reviewer: (ActorType, &str),
    note: Option<&str>,
) -> Result<Result<(), Refused>> {
    if let Err(refused) = pending(conn, vault_id, number)? {
        return Ok(Err(refused));
    }
    finish(
        conn,
        vault_id,
        number,
        ProposalStatus::Rejected,
        reviewer,
        note,
    )?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, vaults};

    fn service(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    fn stripe() -> NewProposal {
        NewProposal {
            services: vec![service(serde_json::json!({
                "host": "api.stripe.com",
                "auth": { "type": "bearer", "token": "STRIPE_KEY" }
            }))],
            credentials: vec![RequestedCredential {
                key: "STRIPE_KEY".into(),
                description: Some("Stripe secret key".into()),
            }],
            message: Some("need Stripe".into()),
            user_message: None,
            proposer: Proposer::Agent("agent-1".into()),
        }
    }

    fn setup(store: Store) -> (Store, Key, String) {
        let vault = store
            .read(|c| vaults::by_name(c, "default"))
            .unwrap()
            .unwrap();
        (store, Key::generate(), vault.id)
    }

    const REVIEWER: (ActorType, &str) = (ActorType::User, "user-1");

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
            .collect()
    }

    crate::on_both_backends!(numbers_count_per_vault);
    fn numbers_count_per_vault(store: Store) {
        let (store, _, default) = setup(store);
        let other = store.write(|tx| vaults::insert(tx, "other")).unwrap().id;
        let numbers: Vec<i64> = [&default, &default, &other, &default]
            .iter()
            .map(|vault| {
                store
                    .write(|tx| create(tx, vault, &stripe()))
                    .unwrap()
                    .0
                    .number
            })
            .collect();
        assert_eq!(numbers, [1, 2, 1, 3]);
        assert_eq!(store.read(|c| pending_count(c, &default)).unwrap(), 3);
        let listed = store.read(|c| list(c, &other, None)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].credentials, stripe().credentials);
        assert_eq!(listed[0].proposer, Proposer::Agent("agent-1".into()));
    }

    crate::on_both_backends!(approval_applies_everything_once);
    fn approval_applies_everything_once(store: Store) {
        let (store, dek, vault) = setup(store);
        let (_, token) = store.write(|tx| create(tx, &vault, &stripe())).unwrap();
        let proposal = store.read(|c| get(c, &vault, 1)).unwrap().unwrap();
        assert!(proposal.link_accepts(token.raw.expose(), now()));
        assert!(!proposal.link_accepts("av_appr_wrong", now()));
        assert!(!proposal.link_accepts(token.raw.expose(), now() + APPROVAL_LINK_TTL));

        let applied = store
            .write(|tx| {
                approve(
                    tx,
                    &dek,
                    &vault,
                    1,
                    REVIEWER,
                    &values(&[("STRIPE_KEY", "sk-1")]),
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(applied.services, ["api.stripe.com"]);
        assert_eq!(applied.credentials, ["STRIPE_KEY"]);
        let (services, value, proposal) = store
            .read(|c| {
                Ok((
                    crate::store::services::list(c, &vault)?,
                    credentials::get(c, &dek, &vault, "STRIPE_KEY")?,
                    get(c, &vault, 1)?,
                ))
            })
            .unwrap();
        assert_eq!(services.len(), 1);
        assert_eq!(value.unwrap().expose(), "sk-1");
        let proposal = proposal.unwrap();
        assert_eq!(proposal.status, ProposalStatus::Approved);
        assert_eq!(
            proposal.reviewed_by,
            Some((ActorType::User, "user-1".into()))
        );
        assert!(proposal.reviewed_at.is_some());

        let again = store
            .write(|tx| {
                approve(
                    tx,
                    &dek,
                    &vault,
                    1,
                    REVIEWER,
                    &values(&[("STRIPE_KEY", "sk-2")]),
                )
            })
            .unwrap();
        assert_eq!(again, Err(Refused::NotPending(ProposalStatus::Approved)));
        let rejected = store
            .write(|tx| reject(tx, &vault, 1, REVIEWER, None))
            .unwrap();
        assert_eq!(rejected, Err(Refused::NotPending(ProposalStatus::Approved)));
        let value = store
            .read(|c| credentials::get(c, &dek, &vault, "STRIPE_KEY"))
            .unwrap()
            .unwrap();
        assert_eq!(value.expose(), "sk-1", "a second approval changes nothing");
        let missing = store
            .write(|tx| approve(tx, &dek, &vault, 9, REVIEWER, &values(&[])))
            .unwrap();
        assert_eq!(missing, Err(Refused::NotFound));
    }

    crate::on_both_backends!(existing_credentials_are_kept_unless_given);
    fn existing_credentials_are_kept_unless_given(store: Store) {
        let (store, dek, vault) = setup(store);
        store
            .write(|tx| {
                credentials::upsert(tx, &dek, &vault, "STRIPE_KEY", &"old".into())?;
                create(tx, &vault, &stripe())
            })
            .unwrap();
        let applied = store
            .write(|tx| approve(tx, &dek, &vault, 1, REVIEWER, &values(&[])))
            .unwrap()
            .unwrap();
        assert!(applied.credentials.is_empty());
        let value = store
            .read(|c| credentials::get(c, &dek, &vault, "STRIPE_KEY"))
            .unwrap()
            .unwrap();
        assert_eq!(value.expose(), "old");
    }

    fn untouched(store: &Store, vault: &str) {
        let (services, keys, proposal) = store
            .read(|c| {
                Ok((
                    crate::store::services::list(c, vault)?,
                    credentials::keys(c, vault)?,
                    get(c, vault, 1)?.unwrap(),
                ))
            })
            .unwrap();
        assert!(
            services.iter().all(|s| s.host != "api.stripe.com"),
            "{services:?}"
        );
        assert!(keys.is_empty(), "{keys:?}");
        assert_eq!(proposal.status, ProposalStatus::Pending);
        assert!(proposal.reviewed_by.is_none());
    }

    crate::on_both_backends!(failed_approvals_change_nothing);
    fn failed_approvals_change_nothing(store: Store) {
        let (store, dek, vault) = setup(store);
        store.write(|tx| create(tx, &vault, &stripe())).unwrap();

        let refused = store
            .write(|tx| {
                approve(
                    tx,
                    &dek,
                    &vault,
                    1,
                    REVIEWER,
                    &values(&[("STRIPE_KEY", "")]),
                )
            })
            .unwrap();
        assert_eq!(
            refused,
            Err(Refused::MissingValues(vec!["STRIPE_KEY".into()]))
        );
        untouched(&store, &vault);

        let refused = store
            .write(|tx| {
                approve(
                    tx,
                    &dek,
                    &vault,
                    1,
                    REVIEWER,
                    &values(&[("STRIPE_KEY", "v"), ("OTHER_KEY", "v")]),
                )
            })
            .unwrap();
        assert_eq!(
            refused,
            Err(Refused::UnexpectedValues(vec!["OTHER_KEY".into()]))
        );
        untouched(&store, &vault);

        // The whole transaction rolls back when anything after the approval fails.
        let failed = store.write(|tx| {
            approve(
                tx,
                &dek,
                &vault,
                1,
                REVIEWER,
                &values(&[("STRIPE_KEY", "v")]),
            )?
            .map_err(|r| StoreError::Corrupt(format!("{r:?}")))?;
            Err::<(), _>(StoreError::Corrupt("later step failed".into()))
        });
        assert!(failed.is_err());
        untouched(&store, &vault);
    }

    crate::on_both_backends!(services_that_no_longer_fit_refuse_approval);
    fn services_that_no_longer_fit_refuse_approval(store: Store) {
        let (store, dek, vault) = setup(store);
        // `/` covers every path, like no path: the proposal's service would claim the same
        // host, port and path as this one under another matcher.
        let current = service(serde_json::json!({
            "host": "api.stripe.com", "path": "/",
            "auth": { "type": "passthrough" }
        }));
        store
            .write(|tx| {
                create(tx, &vault, &stripe())?;
                crate::store::services::upsert(tx, &vault, &[current])
            })
            .unwrap();
        let refused = store
            .write(|tx| {
                approve(
                    tx,
                    &dek,
                    &vault,
                    1,
                    REVIEWER,
                    &values(&[("STRIPE_KEY", "v")]),
                )
            })
            .unwrap();
        assert!(
            matches!(&refused, Err(Refused::ServicesConflict(m)) if m.contains("same host")),
            "{refused:?}"
        );
        let (services, keys, status) = store
            .read(|c| {
                Ok((
                    crate::store::services::list(c, &vault)?,
                    credentials::keys(c, &vault)?,
                    get(c, &vault, 1)?.unwrap().status,
                ))
            })
            .unwrap();
        assert_eq!(services.len(), 1);
        assert!(keys.is_empty());
        assert_eq!(status, ProposalStatus::Pending);
    }

    crate::on_both_backends!(rejection_keeps_the_reason);
    fn rejection_keeps_the_reason(store: Store) {
        let (store, _, vault) = setup(store);
        store.write(|tx| create(tx, &vault, &stripe())).unwrap();
        store
            .write(|tx| reject(tx, &vault, 1, (ActorType::Agent, "a-2"), Some("not now")))
            .unwrap()
            .unwrap();
        let p = store.read(|c| get(c, &vault, 1)).unwrap().unwrap();
        assert_eq!(p.status, ProposalStatus::Rejected);
        assert_eq!(p.review_note.as_deref(), Some("not now"));
        assert_eq!(p.reviewed_by, Some((ActorType::Agent, "a-2".into())));
        assert_eq!(store.read(|c| pending_count(c, &vault)).unwrap(), 0);
    }

    crate::on_both_backends!(own_proposals_are_recognised);
    fn own_proposals_are_recognised(store: Store) {
        let (store, _, vault) = setup(store);
        let mut new = stripe();
        let proposers = [
            Proposer::User("u".into()),
            Proposer::Agent("a".into()),
            Proposer::Scoped {
                public_id: "p".into(),
                minted_by: Some((ActorType::Agent, "a".into())),
            },
            Proposer::Scoped {
                public_id: "p".into(),
                minted_by: Some((ActorType::User, "u".into())),
            },
        ];
        for proposer in proposers {
            new.proposer = proposer;
            store.write(|tx| create(tx, &vault, &new)).unwrap();
        }
        let all = store.read(|c| list(c, &vault, None)).unwrap();
        let own = |actor, id| -> Vec<i64> {
            all.iter()
                .filter(|p| p.filed_by(actor, id))
                .map(|p| p.number)
                .collect()
        };
        assert_eq!(own(ActorType::User, "u"), [1]);
        assert_eq!(own(ActorType::Agent, "a"), [2, 3]);
        assert_eq!(own(ActorType::User, "other"), Vec::<i64>::new());
        assert_eq!(all[3].proposer, {
            Proposer::Scoped {
                public_id: "p".into(),
                minted_by: Some((ActorType::User, "u".into())),
            }
        });
    }
}
