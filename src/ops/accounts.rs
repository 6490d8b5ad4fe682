//! Accounts: registration (the first account becomes the owner), verification, password
//! login, the caller's own account (password change, deletion), and sign-in by a verified
//! email from an identity provider.
//!
//! Stance: registration and login never reveal which addresses have accounts (the same answer
//! for all, a wasted hash for unknown emails); passwords are hashed on blocking threads and
//! never returned; a password change ends every session of the user.

use axum::http::StatusCode;
use subtle::ConstantTimeEq;

use super::caller::Caller;
use super::{AppState, OpError};
use crate::ceilings::guesses::GuessBudget;
use crate::ceilings::hashing::HashSlots;
use crate::ceilings::{ECHO_CHARS, excerpt};
use crate::crypto::{
    KdfParams, SecretString, hash_password, verify_password, waste_password_check,
};
use crate::store::sessions;
use crate::store::users::{self, User};
use crate::store::vaults::{self, ActorType, Vault};
use crate::store::{DEFAULT_VAULT, InstanceRole, StoreError, VaultRole, settings, verifications};

pub const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 1024;
/// RFC 5321's limit on a forward path.
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks an email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn validate_email(email: &str) -> Result<(), String> {
    let email = email.trim();
    if email.is_empty() {
        return Err("email is empty; pass an address such as --email you@example.com".into());
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(format!(
            "the email address is {} bytes long; an address has at most {MAX_EMAIL_LEN}",
            email.len()
        ));
    }
    // No display-name or quoted forms (`Name <a@b.c>`, `"a b"@c.d`): they would make a second
    // account for one mailbox. A domain is dot-separated labels of letters, digits and `-`.
    let domain_is_a_host = |domain: &str| {
        domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
    };
    let valid = !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty()
                && !local.contains(['<', '>', '(', ')', '[', ']', '\\', ',', ';', ':', '"'])
                && domain_is_a_host(domain));
    if !valid {
        return Err(format!(
            "\"{}\" is not a valid email address",
            excerpt(email, ECHO_CHARS)
        ));
    }
    // An address is how people recognise each other in member lists and reviews: one that
    // prints like another's (`alice\u{200B}@x.com`, a Cyrillic `а`) would stand in for it.
    if crate::text::is_spoofable_address(email) {
        return Err("the email address holds characters that could make it print like another address (an invisible character, a lookalike form such as a mathematical or Cyrillic letter, or letters of scripts that look alike mixed together); type it plainly in one script (a domain can be written in its xn-- form)".into());
    }
    Ok(())
}

/// Checks a new password's length (the only rule: long passphrases beat composition rules).
pub fn validate_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        Err(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        ))
    } else if password.len() > MAX_PASSWORD_LEN {
        Err(format!("password must be at most {MAX_PASSWORD_LEN} bytes"))
    } else {
        Ok(())
    }
}

/// Hashes on a blocking thread in one of the process's hashing slots: Argon2id takes a
/// noticeable fraction of a second and 64 MiB. A burst beyond the slots is a `429`.
pub async fn hash_password_async(password: SecretString) -> Result<String, OpError> {
    HashSlots::process()
        .run(move || hash_password(password.expose(), KdfParams::for_new_secrets()))
        .await?
        .map_err(|_| OpError::internal("password hashing failed"))
}

/// Whether `password` matches any of `hashes`; with none, spends the same time and says no.
/// Runs in a hashing slot like [`hash_password_async`]; a burst beyond them is a `429`.
pub async fn verify_password_async(
    password: SecretString,
    hashes: Vec<String>,
) -> Result<bool, OpError> {
    verify_password_as(false, password, hashes).await
}

/// [`verify_password_async`]; `known`: a sign-in from an address where the account signed
/// in before, checked in the hashing lane kept for those.
async fn verify_password_as(
    known: bool,
    password: SecretString,
    hashes: Vec<String>,
) -> Result<bool, OpError> {
    Ok(HashSlots::process()
        .run_as(known, move || {
            if hashes.is_empty() {
                waste_password_check(password.expose());
                return false;
            }
            hashes.iter().any(|h| verify_password(password.expose(), h))
        })
        .await?)
}

/// Where a new login session is used: the CLI keeps its login for long, a browser's cookie
/// lives a working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionUse {
    Cli,
    Browser,
}

/// A fresh login: the raw token (shown once) and its expiry.
pub struct NewLogin {
    pub email: String,
    pub token: SecretString,
    pub expires_at: Option<i64>,
}

fn new_login(
    conn: &crate::store::Connection,
    user: &User,
    used_by: SessionUse,
) -> crate::store::Result<NewLogin> {
    let (token, session) = match used_by {
        SessionUse::Cli => sessions::create_for_user(conn, &user.id)?,
        SessionUse::Browser => sessions::create_browser_session(conn, &user.id)?,
    };
    Ok(NewLogin {
        email: user.email.clone(),
        token: token.raw,
        expires_at: session.expires_at,
    })
}

/// What a registration did.
pub enum Registered {
    /// The first account: the instance owner, logged in.
    Owner(NewLogin),
    /// Any later one: a code was created if the address may register (the same answer either
    /// way, so registration never reveals who exists). It goes out by email when email is on.
    Pending { email: String },
}

/// Checks instance settings that restrict self-registration (the first account is exempt).
fn registration_allowed(conn: &crate::store::Connection, email: &str) -> Result<(), OpError> {
    if settings::invite_only(conn)? {
        return Err(OpError::forbidden(
            "this instance is invite-only; ask an existing user for an invite",
        ));
    }
    let domains = settings::allowed_domains(conn)?;
    let domain = email.rsplit('@').next().unwrap_or_default();
    if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
        return Err(OpError::forbidden(format!(
            "sign-ups are restricted to addresses at {}; ask the owner to add your domain",
            domains.join(", ")
        )));
    }
    Ok(())
}

/// Makes `user` the first account's owner rights: admin of the default vault.
fn make_first_owner(conn: &crate::store::Connection, user: &User) -> crate::store::Result<()> {
    let default = vaults::by_name(conn, DEFAULT_VAULT)?
        .ok_or_else(|| StoreError::Corrupt("the default vault is missing".into()))?;
    vaults::grant(
        conn,
        &default.id,
        ActorType::User,
        &user.id,
        VaultRole::Admin,
    )
}

/// Who may sign up by themselves: (invite-only, allowed email domains). Public, as the
/// sign-up form needs it.
pub async fn signup_policy(state: &AppState) -> Result<(bool, Vec<String>), OpError> {
    state
        .db(|store, _| {
            store.read(|conn| {
                Ok((
                    settings::invite_only(conn)?,
                    settings::allowed_domains(conn)?,
                ))
            })
        })
        .await
}

/// Whether the instance has any account yet.
pub async fn initialized(state: &AppState) -> Result<bool, OpError> {
    Ok(state.db(|s, _| s.read(users::count)).await? > 0)
}

/// `auth register` and the first-run page: the first account becomes the owner; later ones
/// get a verification code bound to the password they chose.
pub async fn register(
    state: &AppState,
    email: &str,
    password: SecretString,
    used_by: SessionUse,
) -> Result<Registered, OpError> {
    let email = users::normalize_email(email);
    validate_email(&email).map_err(OpError::invalid)?;
    validate_password(password.expose()).map_err(OpError::invalid)?;
    let hash = hash_password_async(password).await?;
    let delivery = super::email::initial_delivery(state);
    let lookup = email.clone();
    let outcome = state
        .db(move |store, dek| {
            store.write(|tx| {
                if users::count(tx)? == 0 {
                    let user = users::insert(tx, &lookup, InstanceRole::Owner, true, Some(&hash))?;
                    make_first_owner(tx, &user)?;
                    return Ok(Ok((Some(new_login(tx, &user, used_by)?), None)));
                }
                if let Err(refused) = registration_allowed(tx, &lookup) {
                    return Ok(Err(refused));
                }
                let user = match users::by_email(tx, &lookup)? {
                    Some(user) if user.active => return Ok(Ok((None, None))),
                    Some(user) => user,
                    None => users::insert(tx, &lookup, InstanceRole::Member, false, None)?,
                };
                let code =
                    if verifications::pending(tx, &user.id)?.len() < verifications::MAX_PENDING {
                        Some(verifications::create(tx, dek, &user.id, &hash, delivery)?)
                    } else {
                        None
                    };
                Ok(Ok((None, code)))
            })
        })
        .await??;
    Ok(match outcome {
        (Some(login), _) => Registered::Owner(login),
        (None, code) => {
            if let Some(code) = code {
                super::email::send_verification_code(state, &email, code);
            }
            Registered::Pending { email }
        }
    })
}

/// `auth verify`: the code proves the address, and activates its account with the password
/// given *here*. Every code of an address went to that address, so whoever holds one owns it;
/// a password stored at registration could be anyone's (a stranger who registered the address
/// first, or last, would otherwise own the account its owner verified).
pub async fn verify(
    state: &AppState,
    email: &str,
    code: &SecretString,
    password: SecretString,
    used_by: SessionUse,
) -> Result<NewLogin, OpError> {
    let email = users::normalize_email(email);
    validate_email(&email).map_err(OpError::invalid)?;
    validate_password(password.expose()).map_err(OpError::invalid)?;
    // Guesses are counted per address across registrations, whether or not it has an account.
    let guesses = GuessBudget::process();
    if let Err(spent) = guesses.spend(&email) {
        return Err(OpError::too_many(
            format!(
                "too many wrong codes for this address; try again in {} minutes (a new registration does not reset this)",
                spent.retry_after_secs.div_ceil(60)
            ),
            spent.retry_after_secs,
        ));
    }
    let code = code.expose().trim().to_owned();
    let address = email.clone();
    let hash = match hash_password_async(password).await {
        Ok(hash) => hash,
        Err(busy) => {
            guesses.refund(&address);
            return Err(busy);
        }
    };
    let verified = state
        .db(move |store, dek| {
            store.write(|tx| {
                let Some(user) = users::by_email(tx, &email)? else {
                    return Ok(None);
                };
                if user.active {
                    return Ok(None);
                }
                for pending in verifications::pending(tx, &user.id)? {
                    let expected = pending.code(dek)?;
                    if bool::from(expected.expose().as_bytes().ct_eq(code.as_bytes())) {
                        verifications::consume(tx, &user.id, pending.id)?;
                        users::activate(tx, &user.id, &hash)?;
                        return Ok(Some(new_login(tx, &user, used_by)?));
                    }
                }
                verifications::record_failure(tx, &user.id)?;
                Ok(None)
            })
        })
        .await
        .inspect_err(|_| guesses.refund(&address))?;
    if verified.is_some() {
        guesses.refund(&address);
    }
    verified.ok_or_else(|| {
        OpError::invalid(
            "invalid or expired verification code (a code allows 5 attempts); register again to get a new one",
        )
    })
}

/// A password login. Unknown emails cost the same time as known ones.
/// Addresses and accounts that signed in with a password in this process (the newest 4,096,
/// as keyed hashes): their next sign-in has a hashing lane of its own, which a flood of wrong
/// passwords from other addresses cannot fill (see `ceilings::hashing`). Being in it takes a
/// password that worked from that address, so it says nothing about other accounts.
struct KnownSignIns {
    seed: foldhash::quality::RandomState,
    seen: std::sync::Mutex<lru::LruCache<u64, ()>>,
}

impl KnownSignIns {
    fn process() -> &'static Self {
        static KNOWN: std::sync::OnceLock<KnownSignIns> = std::sync::OnceLock::new();
        KNOWN.get_or_init(|| KnownSignIns {
            seed: Default::default(),
            seen: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(4096).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        })
    }

    fn key(&self, from: std::net::IpAddr, email: &str) -> u64 {
        use std::hash::BuildHasher;
        self.seed
            .hash_one((crate::limits::http::address_key(from), email))
    }

    fn contains(&self, from: Option<std::net::IpAddr>, email: &str) -> bool {
        let Some(from) = from else { return false };
        let key = self.key(from, email);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.contains(&key)
    }

    fn remember(&self, from: Option<std::net::IpAddr>, email: &str) {
        let Some(from) = from else { return };
        let key = self.key(from, email);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.put(key, ());
    }
}

/// Signs in with a password; `from`, the client's address, when known.
pub async fn login(
    state: &AppState,
    email: &str,
    password: SecretString,
    used_by: SessionUse,
    from: Option<std::net::IpAddr>,
) -> Result<NewLogin, OpError> {
    let email = users::normalize_email(email);
    if email.len() > MAX_EMAIL_LEN {
        // No account can have this address: refuse before spending a hash on it.
        return Err(OpError::unauthorized("invalid email or password"));
    }
    let known = KnownSignIns::process().contains(from, &email);
    let lookup_email = email.clone();
    let (count, user, pending_hashes) = state
        .db(move |store, _| {
            store.read(|conn| {
                let user = users::by_email(conn, &lookup_email)?;
                let pending = match &user {
                    Some(u) if !u.active => verifications::pending(conn, &u.id)?
                        .into_iter()
                        .map(|v| v.password_hash)
                        .collect(),
                    _ => Vec::new(),
                };
                Ok((users::count(conn)?, user, pending))
            })
        })
        .await?;
    if count == 0 {
        return Err(OpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_initialized",
            "this server has no account yet; create the owner with `agent-vault auth register`",
        ));
    }
    let invalid = || OpError::unauthorized("invalid email or password");
    let Some(user) = user else {
        verify_password_as(known, password, Vec::new()).await?;
        return Err(invalid());
    };
    if !user.active {
        if verify_password_as(known, password, pending_hashes).await? {
            return Err(OpError::new(
                StatusCode::FORBIDDEN,
                "account_not_verified",
                format!(
                    "this account is not verified yet; {} and run `agent-vault auth verify --email {email}`",
                    if state.mailer.is_enabled() {
                        "find the 6-digit code in your inbox (or ask the instance owner if it did not arrive)"
                    } else {
                        "get the 6-digit code from the instance owner"
                    }
                ),
            ));
        }
        return Err(invalid());
    }
    let hashes = user.password_hash.clone().into_iter().collect();
    if !verify_password_as(known, password, hashes).await? {
        return Err(invalid());
    }
    KnownSignIns::process().remember(from, &email);
    state
        .db(move |store, _| store.write(|tx| new_login(tx, &user, used_by)))
        .await
}

/// Ends the caller's own session.
pub async fn logout(state: &AppState, caller: &Caller) -> Result<(), OpError> {
    let hash = caller.session.token_hash.clone();
    state
        .db(move |store, _| store.write(|tx| sessions::delete(tx, &hash)))
        .await?;
    Ok(())
}

/// Ends a session by its raw token, whoever it belongs to (a browser logging out).
pub async fn end_session(state: &AppState, token: &str) -> Result<(), OpError> {
    let hash = crate::crypto::hash_token(token);
    state
        .db(move |store, _| store.write(|tx| sessions::delete(tx, &hash)))
        .await?;
    Ok(())
}

/// The caller's account and vault grants.
pub async fn me(
    state: &AppState,
    caller: &Caller,
) -> Result<(User, Vec<(Vault, VaultRole)>), OpError> {
    let user = caller.user()?.clone();
    let user_id = user.id.clone();
    let grants = state
        .db(move |store, _| store.read(|c| vaults::grants_of(c, ActorType::User, &user_id)))
        .await?;
    Ok((user, grants))
}

/// Changes the caller's password: ends every session of the user and issues a new one.
pub async fn change_password(
    state: &AppState,
    caller: &Caller,
    current: SecretString,
    new: SecretString,
    used_by: SessionUse,
) -> Result<NewLogin, OpError> {
    let user = caller.user()?.clone();
    validate_password(new.expose()).map_err(OpError::invalid)?;
    let hashes = user.password_hash.clone().into_iter().collect();
    if !verify_password_async(current, hashes).await? {
        return Err(OpError::unauthorized("the current password is incorrect"));
    }
    let hash = hash_password_async(new).await?;
    state
        .db(move |store, _| {
            store.write(|tx| {
                users::set_password(tx, &user.id, &hash)?;
                sessions::delete_all_for_user(tx, &user.id)?;
                new_login(tx, &user, used_by)
            })
        })
        .await
}

/// Deletes the caller's account; owners must hand over ownership first.
pub async fn delete_account(state: &AppState, caller: &Caller) -> Result<String, OpError> {
    let user = caller.user()?.clone();
    if user.role == InstanceRole::Owner {
        return Err(OpError::conflict(
            "owners cannot delete their own account; make another user owner first (`agent-vault owner user set-role <email> --role owner`), then have them demote you",
        ));
    }
    let (id, email) = (user.id.clone(), user.email.clone());
    let shown = email.clone();
    state
        .db(move |store, _| {
            store.write(|tx| {
                let member = (ActorType::User, id.as_str(), shown.as_str());
                if let Err(refused) = super::members::keeps_every_vault_administered(tx, member)? {
                    return Ok(Err(refused));
                }
                if let Err(refused) = super::members::release_agents_of_deleted(tx, &id, &shown)? {
                    return Ok(Err(refused));
                }
                sessions::delete_all_for_user(tx, &id)?;
                users::delete(tx, &id)?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(email)
}

/// Signs in a person whose address an identity provider verified (Google sign-in), under the
/// rules of `auth register`: the first account becomes the owner; later accounts respect
/// invite-only and the allowed domains but need no code. A pending, never verified account of
/// that address is taken over *without* the password its registration chose, since whoever
/// chose it may not own the address.
pub async fn sign_in_verified_email(state: &AppState, email: &str) -> Result<NewLogin, OpError> {
    let email = users::normalize_email(email);
    validate_email(&email).map_err(OpError::invalid)?;
    state
        .db(move |store, _| {
            store.write(|tx| {
                if users::count(tx)? == 0 {
                    let user = users::insert(tx, &email, InstanceRole::Owner, true, None)?;
                    make_first_owner(tx, &user)?;
                    return Ok(Ok(new_login(tx, &user, SessionUse::Browser)?));
                }
                let user = match users::by_email(tx, &email)? {
                    Some(user) if user.active && !users::email_proven(tx, &user.id)? => {
                        // Made through an invite link: whoever held it chose the password.
                        // The address's owner, proven now, takes the account over alone.
                        users::activate_without_password(tx, &user.id)?;
                        sessions::delete_all_for_user(tx, &user.id)?;
                        users::set_email_proven(tx, &user.id, true)?;
                        user
                    }
                    Some(user) if user.active => user,
                    existing => {
                        if let Err(refused) = registration_allowed(tx, &email) {
                            return Ok(Err(refused));
                        }
                        match existing {
                            Some(pending) => {
                                verifications::void_all(tx, &pending.id)?;
                                users::activate_without_password(tx, &pending.id)?;
                                pending
                            }
                            None => users::insert(tx, &email, InstanceRole::Member, true, None)?,
                        }
                    }
                };
                Ok(Ok(new_login(tx, &user, SessionUse::Browser)?))
            })
        })
        .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        for ok in [
            "a@b.co",
            "first.last+tag@example.com",
            "o'brien@mail-1.example.org",
            "josé@bücher.example",
        ] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "   ",
            "no-at",
            "@x.com",
            "a@b",
            "a@.com",
            "a b@c.com",
            "a@b@c.com",
            "a@b.com.",
            "<a@x.io>",
            "Name <a@x.io>",
            "\"a\"@x.io",
            "a@x_y.io",
            "a@x..io",
            "a@[10.0.0.1]",
            "a(comment)@x.io",
            "ann@-x.com",
            "ann@x-.com",
            "alice\u{200B}@x.com",
            "alice@x.com\u{202E}",
            "\u{0430}lice@x.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_rules() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"x".repeat(2000)).is_err());
    }
}
