//! Claude Code in the sandbox, without a login and without a key in the container.
//!
//! When the vault has a service for `api.anthropic.com`, the container's key variable holds
//! a fixed, non-secret placeholder and the broker puts the vault's key on the wire instead.
//! What Claude Code needs to start straight into a session (as of its 2.x releases):
//! - a key in `ANTHROPIC_API_KEY` (or, for a subscription's long-lived token,
//!   `CLAUDE_CODE_OAUTH_TOKEN`): it then does not ask to log in;
//! - in its global config (`.claude.json`, which lives in `CLAUDE_CONFIG_DIR` when that is
//!   set) `hasCompletedOnboarding: true`, and — for an API key from the environment — the
//!   key's last 20 characters under `customApiKeyResponses.approved`, or it asks whether to
//!   use the "detected" key.
//!
//! `CLAUDE_CONFIG_DIR` points at the home volume, so its state (that file included) lives
//! with `--home-volume-shared`; the seed is written only where no config exists yet.
//! `DISABLE_AUTOUPDATER` stops it from trying to update an image that is rebuilt, not
//! patched.

use serde_json::{Value, json};

/// Sent by Claude Code in place of a key; the broker replaces it (it is not a secret).
pub const PLACEHOLDER: &str = "sk-ant-agent-vault-placeholder-the-broker-adds-the-key";
const ANTHROPIC_HOST: &str = "api.anthropic.com";

/// How the vault's service for `api.anthropic.com` authenticates, hence which variable
/// Claude Code must find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeAuth {
    /// An API key (`x-api-key`): `ANTHROPIC_API_KEY`.
    ApiKey,
    /// A bearer token (a subscription's `claude setup-token`): `CLAUDE_CODE_OAUTH_TOKEN`.
    OAuthToken,
}

impl ClaudeAuth {
    pub fn variable(self) -> &'static str {
        match self {
            Self::ApiKey => "ANTHROPIC_API_KEY",
            Self::OAuthToken => "CLAUDE_CODE_OAUTH_TOKEN",
        }
    }

    /// From the services of `GET /v1/discover`: the enabled service matching the host.
    /// A passthrough service holds no key, so it does not count.
    pub fn from_services(services: &[Value]) -> Option<Self> {
        services
            .iter()
            .filter(|s| s["enabled"].as_bool() != Some(false))
            .filter(|s| s["host"].as_str().is_some_and(covers_anthropic))
            .find_map(|s| match s["auth_type"].as_str()? {
                "passthrough" => None,
                "bearer" => Some(Self::OAuthToken),
                _ => Some(Self::ApiKey),
            })
    }
}

fn covers_anthropic(pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        Some(suffix) => suffix.starts_with('.') && ANTHROPIC_HOST.ends_with(suffix),
        None => pattern == ANTHROPIC_HOST,
    }
}

/// The container's variables for Claude Code; `config_dir` is its `CLAUDE_CONFIG_DIR`. The
/// `AGENT_VAULT_SEED*` pair is consumed (and removed) by the start gate.
pub fn environment(auth: Option<ClaudeAuth>, config_dir: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("CLAUDE_CONFIG_DIR".to_owned(), config_dir.to_owned()),
        ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
    ];
    if let Some(auth) = auth {
        env.push((auth.variable().to_owned(), PLACEHOLDER.to_owned()));
        env.push((
            "AGENT_VAULT_SEED_PATH".to_owned(),
            format!("{config_dir}/.claude.json"),
        ));
        env.push(("AGENT_VAULT_SEED".to_owned(), seed(auth).to_string()));
    }
    env
}

/// First-run state for a fresh config.
fn seed(auth: ClaudeAuth) -> Value {
    let mut config = json!({ "hasCompletedOnboarding": true });
    if auth == ClaudeAuth::ApiKey {
        let suffix = &PLACEHOLDER[PLACEHOLDER.len() - 20..];
        config["customApiKeyResponses"] = json!({ "approved": [suffix], "rejected": [] });
    }
    config
}

/// The line `vault run` prints about Claude Code.
pub fn notice(auth: Option<ClaudeAuth>, vault: &str) -> String {
    match auth {
        Some(auth) => format!(
            "agent-vault: Claude Code: vault \"{vault}\" has a service for {ANTHROPIC_HOST}, so {} in the container is a placeholder that the broker replaces with the vault's key",
            auth.variable()
        ),
        None => format!(
            "agent-vault: Claude Code: vault \"{vault}\" has no service for {ANTHROPIC_HOST}, so claude will ask you to log in inside the sandbox; to let the broker hold the key instead: agent-vault vault service add anthropic (docs/sandbox.md, \"Claude Code\")"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_decides_the_variable() {
        let service =
            |host: &str, auth: &str| json!({ "host": host, "auth_type": auth, "enabled": true });
        assert_eq!(
            ClaudeAuth::from_services(&[
                service("api.github.com", "bearer"),
                service("api.anthropic.com", "api-key")
            ]),
            Some(ClaudeAuth::ApiKey)
        );
        assert_eq!(
            ClaudeAuth::from_services(&[service("*.anthropic.com", "bearer")]),
            Some(ClaudeAuth::OAuthToken)
        );
        assert_eq!(
            ClaudeAuth::from_services(&[service("api.anthropic.com", "passthrough")]),
            None
        );
        assert_eq!(
            ClaudeAuth::from_services(&[service("*anthropic.com.evil", "api-key")]),
            None
        );
        let mut disabled = service("api.anthropic.com", "api-key");
        disabled["enabled"] = json!(false);
        assert_eq!(ClaudeAuth::from_services(&[disabled]), None);
    }

    #[test]
    fn the_seed_approves_exactly_the_placeholder() {
        let env = environment(Some(ClaudeAuth::ApiKey), "/home/claude/.claude");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("ANTHROPIC_API_KEY").as_deref(), Some(PLACEHOLDER));
        let seed: Value = serde_json::from_str(&get("AGENT_VAULT_SEED").unwrap()).unwrap();
        assert_eq!(seed["hasCompletedOnboarding"], true);
        let approved = seed["customApiKeyResponses"]["approved"][0]
            .as_str()
            .unwrap();
        assert!(approved.len() == 20 && PLACEHOLDER.ends_with(approved));
        let none = environment(None, "/c");
        assert!(
            none.iter()
                .all(|(k, _)| !k.starts_with("AGENT_VAULT_SEED") && k != "ANTHROPIC_API_KEY")
        );
    }
}
