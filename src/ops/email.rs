//! What the server sends by email, for both adapters: verification codes, invite links,
//! proposal notices to vault admins (all queued, never awaited), and the owner's view of
//! email: the delivery status and a synchronous test message.
//!
//! Stance: a request never waits for or fails because of email. A verification code's
//! delivery is recorded on its row, so the owner is shown the code only when it did not reach
//! the inbox. The status shows the SMTP settings without the password.

use axum::http::StatusCode;

use super::accounts::validate_email;
use super::admin::require_owner;
use super::caller::{Caller, Principal};
use super::{AppState, OpError};
use crate::mail::{self, MailError, Outcome, message};
use crate::store::proposals::Proposal;
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::verifications::{self, CODE_TTL, Delivery, NewCode};
use crate::store::{VaultRole, users};

/// How a new verification code starts out: queued for email when email is on.
pub fn initial_delivery(state: &AppState) -> Delivery {
    if state.mailer.is_enabled() {
        Delivery::Queued
    } else {
        Delivery::None
    }
}

/// Queues a fresh verification code for `to` and records on its row whether it arrived.
pub fn send_verification_code(state: &AppState, to: &str, code: NewCode) {
    if !state.mailer.is_enabled() {
        return;
    }
    let store = state.store.clone();
    let id = code.id;
    let report: mail::Report = Box::new(move |outcome| {
        let delivery = match outcome {
            Outcome::Sent => Delivery::Sent,
            Outcome::Failed => Delivery::Failed,
        };
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.write(|tx| verifications::set_delivery(tx, id, delivery)) {
                tracing::error!(error = %e, "cannot record a verification email's delivery");
            }
        });
    });
    match message::verification_code(to, &code.code, &state.config.base_url, CODE_TTL / 3600) {
        Ok(email) => {
            state.mailer.send_later(email, Some(report));
        }
        Err(e) => {
            tracing::warn!("verification code not emailed: {e}");
            report(Outcome::Failed);
        }
    }
}

/// Queues an invite's link for the invitee. `true` when it is on its way.
pub fn send_invite(state: &AppState, to: &str, invite: &message::Invite<'_>) -> bool {
    if !state.mailer.is_enabled() {
        return false;
    }
    match message::invite(to, invite) {
        Ok(email) => state.mailer.send_later(email, None),
        Err(e) => {
            tracing::warn!("invite not emailed: {e}");
            false
        }
    }
}

/// Tells each admin of the vault about a new proposal (except whoever filed it), in the
/// background. With no admin to tell, the instance owners are told instead.
pub fn notify_proposal(state: &AppState, vault: Vault, proposal: Proposal, approval_url: String) {
    if !state.mailer.is_enabled() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let vault_id = vault.id.clone();
        let filed = proposal.clone();
        let found = state
            .db(move |store, _| {
                store.read(|conn| {
                    let mut admins = Vec::new();
                    for (email, role) in vaults::user_members(conn, &vault_id)? {
                        if role != VaultRole::Admin {
                            continue;
                        }
                        if let Some(user) = users::by_email(conn, &email)? {
                            admins.push(user);
                        }
                    }
                    if admins.is_empty() {
                        admins = users::list(conn)?
                            .into_iter()
                            .filter(|u| u.role == crate::store::InstanceRole::Owner)
                            .collect();
                    }
                    let admins = admins
                        .into_iter()
                        .filter(|u| u.active && !filed.filed_by(ActorType::User, &u.id))
                        .map(|u| u.email)
                        .collect::<Vec<_>>();
                    Ok((admins, super::proposals::filed_by_text(conn, &filed)?))
                })
            })
            .await;
        let (recipients, proposer) = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("proposal notice not sent: {}", e.message);
                return;
            }
        };
        let notice = message::ProposalNotice {
            vault: &vault.name,
            number: proposal.number,
            proposer: &proposer,
            approval_url: &approval_url,
            message: proposal.message.as_deref(),
            user_message: proposal.user_message.as_deref(),
            services: proposal.services.iter().map(|s| s.matcher()).collect(),
            credentials: proposal.credentials.iter().map(|c| c.key.clone()).collect(),
            base_url: &state.config.base_url,
        };
        for to in recipients {
            match message::proposal_notice(&to, &notice) {
                Ok(email) => {
                    state.mailer.send_later(email, None);
                }
                Err(e) => tracing::warn!("proposal notice not sent: {e}"),
            }
        }
    });
}

/// The SMTP settings in use and how delivery goes, or `None` when email is off (owners).
pub fn status(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<(mail::SmtpConfig, mail::Status)>, OpError> {
    require_owner(caller)?;
    Ok(match (state.mailer.config(), state.mailer.status()) {
        (Some(config), Some(status)) => Some((config.clone(), status)),
        _ => None,
    })
}

/// Sends a test email now (owners) to `to`, or to the caller's own address; returns the
/// recipient and the SMTP server's answer. 502 with the exact answer or connection error
/// when it fails.
pub async fn test(
    state: &AppState,
    caller: &Caller,
    to: Option<String>,
) -> Result<(String, String), OpError> {
    require_owner(caller)?;
    let sender = match &caller.principal {
        Principal::User(user) => user.email.clone(),
        Principal::Agent(agent) => format!("agent \"{}\"", agent.name),
        Principal::Scoped { .. } => String::new(),
    };
    let to = match (to.map(|t| t.trim().to_owned()), &caller.principal) {
        (Some(to), _) if !to.is_empty() => to,
        (_, Principal::User(user)) => user.email.clone(),
        _ => {
            return Err(OpError::invalid(
                "an agent has no email address of its own; give the recipient with {\"to\": \"you@example.com\"}",
            ));
        }
    };
    validate_email(&to).map_err(OpError::invalid)?;
    if !state.mailer.is_enabled() {
        return Err(mail_error(MailError::Disabled));
    }
    let email = message::test(&to, &sender, &state.config.base_url).map_err(mail_error)?;
    let reply = state.mailer.send_now(email).await.map_err(mail_error)?;
    Ok((to, reply))
}

fn mail_error(err: MailError) -> OpError {
    match err {
        MailError::Disabled => OpError::new(
            StatusCode::BAD_REQUEST,
            "email_not_configured",
            err.to_string(),
        ),
        MailError::BadAddress { .. } => OpError::invalid(err.to_string()),
        MailError::Send(_) | MailError::Tls(_) | MailError::Build(_) => {
            OpError::new(StatusCode::BAD_GATEWAY, "smtp_failed", err.to_string())
        }
    }
}
