//! Operations: the management actions behind both HTTP adapters, the JSON API ([`crate::api`])
//! and the browser UI ([`crate::web`]). Each takes the [`Caller`] and typed input, checks the
//! caller's rights, and reads or writes the store; it returns typed values that the adapters
//! render. Neither adapter checks a permission or writes the store itself.
//!
//! Stance: every rule (who may do what, the last owner and last vault admin that stay, values
//! that are never echoed) lives here once, so a page and an API route cannot disagree. Database
//! work runs on blocking threads through [`AppState::db`]; password hashing never holds the
//! database lock. Error messages never carry a secret.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod agents;
pub mod caller;
pub mod credentials;
pub mod email;
mod error;
pub mod invites;
pub mod members;
pub mod proposals;
pub mod services;
pub mod suffix;
pub mod vault_settings;
pub mod vaults;

use std::sync::Arc;

use crate::crypto::Key;
use crate::proxy::Proxy;
use crate::store::{self, Store};
pub use caller::{Caller, Principal};
pub use error::OpError;

/// Settings the management surfaces need from the server's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Externally reachable base URL, used in links.
    pub base_url: String,
    /// The MITM proxy port when the proxy is listening.
    pub mitm_port: Option<u16>,
    /// The same proxy's TLS port, when that listener runs.
    pub proxy_tls_port: Option<u16>,
    /// The MITM root CA, when the proxy runs.
    pub ca_pem: Option<String>,
    /// The environment's request-log retention (owners layer a setting under it).
    pub retention: crate::broker::RetentionEnv,
    /// Google sign-in, when configured.
    pub google: Option<GoogleConfig>,
}

/// Google sign-in (OpenID Connect) settings from `AGENT_VAULT_OAUTH_GOOGLE_*`.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub client_id: String,
    pub client_secret: crate::crypto::SecretString,
    /// The issuer whose discovery document is read (`https://accounts.google.com`).
    pub issuer: String,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub dek: Arc<Key>,
    pub config: Arc<ApiConfig>,
    /// The data path, for the explicit `/proxy/…` endpoint and cache invalidation.
    pub proxy: Arc<Proxy>,
    /// Email delivery (disabled without `AGENT_VAULT_SMTP_HOST`).
    pub mailer: crate::mail::Mailer,
}

impl AppState {
    /// Runs database work on a blocking thread.
    pub async fn db<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Store, &Key) -> store::Result<R> + Send + 'static,
    ) -> Result<R, OpError> {
        let (store, dek) = (self.store.clone(), self.dek.clone());
        tokio::task::spawn_blocking(move || work(&store, &dek))
            .await
            .map_err(|_| OpError::internal("database task failed"))?
            .map_err(OpError::from)
    }
}

impl AppState {
    /// A write on a vault by `caller`, who must still hold `needed` there when it runs:
    /// rights are checked when a request arrives and again here, inside the write, so a
    /// request in flight when its sender is lowered or removed cannot land after that change
    /// (a demoted admin's service edit sending a credential to a host of their choosing).
    pub async fn vault_write<R: Send + 'static>(
        &self,
        caller: &Caller,
        vault_id: &str,
        needed: store::VaultRole,
        work: impl FnOnce(&store::Connection, &Key) -> store::Result<R> + Send + 'static,
    ) -> Result<R, OpError> {
        let (caller, vault_id) = (caller.clone(), vault_id.to_owned());
        self.db(move |store, dek| {
            store.write(|tx| {
                if let Err(refused) = caller.still_holds(tx, &vault_id, needed)? {
                    return Ok(Err(refused));
                }
                work(tx, dek).map(Ok)
            })
        })
        .await?
    }
}

/// Seconds since the epoch as RFC 3339 (UTC), the timestamp format of every response.
pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
