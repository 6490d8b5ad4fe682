//! `agent-vault owner …`: owner-only administration.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use super::account::{VaultGrant, grants_line};
use super::client::segment;
use super::user::print_users;
use super::{Context, Refusal, output, prompt};
use crate::paths::Paths;
use crate::server::pidfile;

#[derive(Subcommand)]
pub enum OwnerCommand {
    /// Instance users
    #[command(subcommand)]
    User(OwnerUserCommand),
    /// All vaults of the instance
    #[command(subcommand)]
    Vault(OwnerVaultCommand),
    /// Instance settings
    #[command(subcommand)]
    Config(OwnerConfigCommand),
    /// Email delivery
    #[command(subcommand)]
    Email(OwnerEmailCommand),
    /// Permanently delete all data and reset the instance to a fresh state. Requires a running
    /// server for role verification. Auto-stops the server before wiping data. Owner only
    Reset {
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum OwnerUserCommand {
    /// List all users on the instance. Owner only
    List,
    /// View user info and vault memberships (and, for a pending account whose code did not go
    /// out by email, its verification code). Without an email, shows your own info
    Info {
        /// The user's email
        email: Option<String>,
    },
    /// Remove a user from the instance. Owner only
    Remove {
        /// The user's email
        email: String,
    },
    /// Change a user's instance-level role. The last owner cannot be demoted. Owner only
    SetRole(SetRoleArgs),
}

#[derive(Args)]
pub struct SetRoleArgs {
    /// The user's email
    email: String,
    /// Instance role: owner or member (required)
    #[arg(long, required = true)]
    role: String,
}

#[derive(Subcommand)]
pub enum OwnerVaultCommand {
    /// List all vaults on the instance. Owner only
    List,
    /// Join a vault as admin. Useful for recovering orphaned vaults. Owner only
    Join {
        /// Vault name
        name: String,
    },
    /// Delete a vault. Owner only
    Delete {
        /// Vault name
        name: String,
    },
}

#[derive(Subcommand)]
pub enum OwnerConfigCommand {
    /// Show current instance settings including invite_only and allowed_email_domains
    Get,
    /// Update instance settings
    Set {
        /// Enable or disable invite-only registration (true or false)
        #[arg(long, value_name = "BOOL")]
        invite_only: Option<bool>,
        /// Comma-separated list of allowed email domains (empty to clear)
        #[arg(long, value_name = "DOMAINS")]
        allowed_domains: Option<String>,
        /// Keep request-log rows at most this many hours (0: no age limit). The
        /// AGENT_VAULT_LOGS_* environment variables take precedence
        #[arg(long, value_name = "HOURS")]
        logs_max_age_hours: Option<u64>,
        /// Keep at most this many request-log rows per vault (0: no cap)
        #[arg(long, value_name = "ROWS")]
        logs_max_rows_per_vault: Option<u64>,
        /// Rate-limit profile: default, strict, loose or off. AGENT_VAULT_RATELIMIT_PROFILE
        /// on the server takes precedence
        #[arg(long, value_name = "PROFILE")]
        rate_limit_profile: Option<String>,
        /// Override one rate-limit knob, TIER.KNOB=VALUE (repeatable): TIER is auth, proxy,
        /// authed or global; KNOB is rate, burst, window, max or concurrency; VALUE `default`
        /// removes the override. Example: --rate-limit auth.max=20 --rate-limit proxy.rate=50.
        /// AGENT_VAULT_RATELIMIT_<TIER>_<KNOB> on the server takes precedence
        #[arg(long = "rate-limit", value_name = "TIER.KNOB=VALUE")]
        rate_limit: Vec<String>,
        /// Remove every rate-limit override and the stored profile (back to the server's
        /// environment and the default profile)
        #[arg(long)]
        rate_limit_reset: bool,
    },
}

#[derive(Subcommand)]
pub enum OwnerEmailCommand {
    /// Send a test email to verify SMTP configuration. Owner only
    Test {
        /// Recipient email address (default: your own)
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Deserialize)]
struct UserInfo {
    email: String,
    role: String,
    status: String,
    vaults: Vec<VaultGrant>,
    created_at: String,
    verification_code: Option<String>,
    verification_code_expires_at: Option<String>,
    #[serde(default)]
    verification_code_email: Option<String>,
}

#[derive(Deserialize)]
struct Settings {
    invite_only: bool,
    allowed_email_domains: Vec<String>,
    logs_retention: LogsRetention,
    #[serde(default)]
    rate_limit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LogsRetention {
    max_age_hours: i64,
    max_rows_per_vault: i64,
    source: RetentionSources,
    locked: bool,
}

#[derive(Deserialize)]
struct RetentionSources {
    max_age_hours: String,
    max_rows_per_vault: String,
}

fn print_settings(settings: &Settings) {
    println!("invite_only:           {}", settings.invite_only);
    let domains = if settings.allowed_email_domains.is_empty() {
        "(any)".to_owned()
    } else {
        settings.allowed_email_domains.join(", ")
    };
    println!("allowed_email_domains: {domains}");
    let logs = &settings.logs_retention;
    let limit = |value: i64, unit: &str, source: &str| match value {
        0 => format!("no limit ({source})"),
        v => format!("{v} {unit} ({source})"),
    };
    println!(
        "logs_max_age:          {}",
        limit(logs.max_age_hours, "hours", &logs.source.max_age_hours)
    );
    println!(
        "logs_max_rows:         {}",
        limit(
            logs.max_rows_per_vault,
            "per vault",
            &logs.source.max_rows_per_vault
        )
    );
    if logs.locked {
        println!("                       (pinned by AGENT_VAULT_LOGS_RETENTION_LOCK)");
    }
    if let Some(limits) = &settings.rate_limit {
        print_rate_limits(limits);
    }
}

/// The rate limits in force: one line per tier, each knob with where it came from.
fn print_rate_limits(limits: &serde_json::Value) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut profile = format!(
        "{} ({})",
        text(&limits["profile"]),
        text(&limits["profile_source"])
    );
    if limits["locked"] == true {
        profile.push_str(", pinned by AGENT_VAULT_RATELIMIT_LOCK");
    }
    println!("rate_limit_profile:    {profile}");
    for tier in ["AUTH", "PROXY", "AUTHED", "GLOBAL"] {
        let block = &limits["tiers"][tier];
        let line = match block.as_object() {
            Some(map) if block["off"] != true => map
                .iter()
                .filter(|(k, _)| k.as_str() != "source")
                .map(|(k, v)| format!("{k}={} ({})", text(v), text(&block["source"][k])))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "off".to_owned(),
        };
        println!("  {tier:<7}              {line}");
    }
}

/// Applies `--rate-limit-*` flags to the stored override.
fn edit_rate_limit(
    mut stored: crate::limits::StoredRateLimit,
    profile: Option<String>,
    knobs: &[String],
    reset: bool,
) -> anyhow::Result<crate::limits::StoredRateLimit> {
    use crate::limits::config::{KnobOverride, Profile, Tier};
    if reset {
        stored = Default::default();
    }
    if let Some(profile) = profile {
        stored.profile = Some(Profile::parse(&profile).with_context(|| {
            format!("--rate-limit-profile {profile}: use default, strict, loose or off")
        })?);
    }
    for knob in knobs {
        let bad = || {
            anyhow::anyhow!(
                "--rate-limit {knob}: write TIER.KNOB=VALUE, for example auth.max=20 or proxy.rate=50"
            )
        };
        let (name, value) = knob.split_once('=').ok_or_else(bad)?;
        let (tier, field) = name.trim().split_once('.').ok_or_else(bad)?;
        let tier: Tier =
            serde_json::from_value(json!(tier.trim().to_ascii_uppercase())).map_err(|_| {
                anyhow::anyhow!("--rate-limit {knob}: the tier is auth, proxy, authed or global")
            })?;
        let value = value.trim();
        let entry: &mut KnobOverride = stored.overrides.entry(tier).or_default();
        let clear = value.eq_ignore_ascii_case("default");
        let number = |what: &str| -> anyhow::Result<u32> {
            value
                .parse()
                .with_context(|| format!("--rate-limit {knob}: {what} is a whole number"))
        };
        match field.trim().to_ascii_lowercase().as_str() {
            "rate" if clear => entry.rate = None,
            "rate" => {
                entry.rate = Some(value.parse().with_context(|| {
                    format!("--rate-limit {knob}: rate is requests per second, such as 20 or 0.5")
                })?)
            }
            "burst" if clear => entry.burst = None,
            "burst" => entry.burst = Some(number("burst")?),
            "max" if clear => entry.max = None,
            "max" => entry.max = Some(number("max")?),
            "concurrency" if clear => entry.concurrency = None,
            "concurrency" => entry.concurrency = Some(number("concurrency")?),
            "window" if clear => entry.window = None,
            "window" => entry.window = Some(value.to_owned()),
            _ => bail!("--rate-limit {knob}: the knob is rate, burst, window, max or concurrency"),
        }
    }
    Ok(stored.merged(&Default::default()))
}

#[derive(Deserialize)]
struct OwnerVault {
    name: String,
    is_default: bool,
    user_members: usize,
    created_at: String,
}

#[derive(Deserialize)]
struct OwnerVaults {
    vaults: Vec<OwnerVault>,
}

pub async fn run(command: OwnerCommand, context: &Context) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    match command {
        OwnerCommand::User(OwnerUserCommand::Info { email }) => {
            let who = email.as_deref().unwrap_or("me");
            let info: UserInfo = client
                .get(&format!("/v1/admin/users/{}", segment(who)))
                .await?;
            println!("Email:    {}", info.email);
            println!("Role:     {}", info.role);
            println!("Status:   {}", info.status);
            println!("Vaults:   {}", grants_line(&info.vaults));
            println!("Created:  {}", info.created_at);
            if let Some(code) = info.verification_code {
                let expires = info.verification_code_expires_at.unwrap_or_default();
                println!("Verification code: {code} (expires {expires})");
                if info.verification_code_email.as_deref() == Some("failed") {
                    println!("  Emailing it failed (see `agent-vault owner config get`).");
                }
                println!(
                    "  Give it to {} to run `agent-vault auth verify --email {}`.",
                    info.email, info.email
                );
            }
        }
        OwnerCommand::User(OwnerUserCommand::List) => {
            print_users(&client.get("/v1/admin/users").await?)
        }
        OwnerCommand::User(OwnerUserCommand::Remove { email }) => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/admin/users/{}", segment(&email)))
                .await?;
            output::success(format!("Removed user {email}."));
        }
        OwnerCommand::User(OwnerUserCommand::SetRole(args)) => {
            let _: serde_json::Value = client
                .post(
                    &format!("/v1/admin/users/{}/role", segment(&args.email)),
                    &json!({ "role": args.role }),
                )
                .await?;
            output::success(format!("{} is now {}.", args.email, args.role));
        }
        OwnerCommand::Vault(OwnerVaultCommand::List) => {
            let list: OwnerVaults = client.get("/v1/admin/vaults").await?;
            let rows: Vec<Vec<String>> = list
                .vaults
                .iter()
                .map(|v| {
                    let name = if v.is_default {
                        format!("{} (default)", v.name)
                    } else {
                        v.name.clone()
                    };
                    vec![name, v.user_members.to_string(), v.created_at.clone()]
                })
                .collect();
            output::table(&["NAME", "MEMBERS", "CREATED"], &rows);
        }
        OwnerCommand::Vault(OwnerVaultCommand::Join { name }) => {
            let _: serde_json::Value = client
                .post(&format!("/v1/vaults/{}/join", segment(&name)), &json!({}))
                .await?;
            output::success(format!("Joined vault \"{name}\" as admin."));
        }
        OwnerCommand::Vault(OwnerVaultCommand::Delete { name }) => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/admin/vaults/{}", segment(&name)))
                .await?;
            output::success(format!("Deleted vault \"{name}\"."));
        }
        OwnerCommand::Config(OwnerConfigCommand::Get) => {
            print_settings(&client.get("/v1/admin/settings").await?);
            super::email::print_status(&client).await?;
        }
        OwnerCommand::Config(OwnerConfigCommand::Set {
            invite_only,
            allowed_domains,
            logs_max_age_hours,
            logs_max_rows_per_vault,
            rate_limit_profile,
            rate_limit,
            rate_limit_reset,
        }) => {
            let rate_limit_change =
                rate_limit_profile.is_some() || !rate_limit.is_empty() || rate_limit_reset;
            if invite_only.is_none()
                && allowed_domains.is_none()
                && logs_max_age_hours.is_none()
                && logs_max_rows_per_vault.is_none()
                && !rate_limit_change
            {
                bail!(
                    "nothing to change; pass --invite-only true|false, --allowed-domains a.com,b.org, --logs-max-age-hours N, --logs-max-rows-per-vault N, --rate-limit-profile P and/or --rate-limit TIER.KNOB=VALUE"
                );
            }
            let mut body = json!({});
            if rate_limit_change {
                // The server stores the override whole: read it, edit it, send it back.
                let current: serde_json::Value = client.get("/v1/admin/settings").await?;
                let stored: crate::limits::StoredRateLimit =
                    serde_json::from_value(current["rate_limit"]["override"].clone())
                        .unwrap_or_default();
                let edited =
                    edit_rate_limit(stored, rate_limit_profile, &rate_limit, rate_limit_reset)?;
                body["rate_limit"] = json!(edited);
            }
            if let Some(flag) = invite_only {
                body["invite_only"] = json!(flag);
            }
            if let Some(domains) = allowed_domains {
                let list: Vec<&str> = domains
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .collect();
                body["allowed_email_domains"] = json!(list);
            }
            if logs_max_age_hours.is_some() || logs_max_rows_per_vault.is_some() {
                let mut logs = json!({});
                if let Some(hours) = logs_max_age_hours {
                    logs["max_age_hours"] = json!(hours);
                }
                if let Some(rows) = logs_max_rows_per_vault {
                    logs["max_rows_per_vault"] = json!(rows);
                }
                body["logs_retention"] = logs;
            }
            let settings: Settings = client
                .send(reqwest::Method::PUT, "/v1/admin/settings", Some(&body))
                .await?;
            output::success("Settings updated.");
            print_settings(&settings);
        }
        OwnerCommand::Reset { yes } => reset(context, &client, yes).await?,
        OwnerCommand::Email(OwnerEmailCommand::Test { to }) => {
            super::email::test(&client, to).await?
        }
    }
    Ok(())
}

/// `owner reset`: checks that the logged-in owner's server is the one whose data lives in
/// this `~/.agent-vault`, stops it, and wipes the directory.
async fn reset(context: &Context, client: &super::Client, yes: bool) -> anyhow::Result<()> {
    let me: serde_json::Value = client.get("/v1/auth/me").await?;
    if me["is_owner"] != true {
        return Err(Refusal {
            status: reqwest::StatusCode::FORBIDDEN,
            code: "forbidden".into(),
            message: "only an instance owner can reset the instance".into(),
        }
        .into());
    }
    let paths = context.paths()?;
    if let crate::store::Location::Postgres(url) =
        crate::store::Location::from_env(paths.database())?
    {
        bail!(
            "this instance keeps its data in PostgreSQL ({}); `owner reset` deletes only a local SQLite instance. To start over, stop every server and drop that database (dropdb)",
            crate::store::pg::redacted(&url)
        );
    }
    let status: serde_json::Value = client.get("/v1/status").await?;
    let local = local_instance_id(&paths)?;
    if status["instance_id"].as_str() != Some(local.as_str()) {
        bail!(
            "the server at {} does not keep its data in {}; run `owner reset` on the machine (and as the user) that runs it",
            client.base(),
            paths.root().display()
        );
    }
    if !yes {
        if !prompt::stdin_is_tty() {
            bail!("resetting needs confirmation; pass --yes");
        }
        output::warn(
            "this permanently deletes every user, vault, credential and setting of this instance",
        );
        if prompt::line("Type \"reset\" to confirm: ")? != "reset" {
            bail!("aborted: nothing was deleted");
        }
    }
    if pidfile::running_server(&paths).is_some() {
        let pid = pidfile::stop(&paths)?;
        println!("Stopped the server (PID {pid}).");
    }
    std::fs::remove_dir_all(paths.root())
        .with_context(|| format!("cannot remove {}", paths.root().display()))?;
    output::success("Instance reset. Start a fresh one with `agent-vault server`.");
    Ok(())
}

fn local_instance_id(paths: &Paths) -> anyhow::Result<String> {
    let location = crate::store::Location::from_env(paths.database())?;
    if !location.exists() {
        bail!("there is no agent-vault data in {}", paths.root().display());
    }
    let store = crate::store::Store::open_at(&location)?;
    Ok(store.read(crate::store::settings::instance_id)?)
}
