//! `vault service`: list, set, add, enable, disable, remove, clear.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::Target;
use crate::cli::client::segment;
use crate::cli::{output, prompt};
use crate::crypto::SecretString;
use crate::services::{self, Service};

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Print the current vault services as YAML
    List,
    /// Set the vault services. Without -f, launches an interactive builder (requires a TTY).
    /// With -f, replaces the services from a YAML file
    Set {
        /// Path to a YAML services file
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Add or update a single service (upsert by host). Use -f to upsert services from a YAML
    /// file non-destructively (unlike set -f, which replaces all)
    Add(ServiceAddArgs),
    /// Enable a service so proxy traffic to the host resumes. Idempotent
    Enable {
        /// Service host
        host: String,
    },
    /// Disable a service while preserving its configuration; agents get 403 service_disabled.
    /// Idempotent
    Disable {
        /// Service host
        host: String,
    },
    /// Remove a specific service by host. Prompts for confirmation unless --yes is passed
    Remove {
        /// Service host
        host: String,
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
    /// Remove all vault services. Prompts for confirmation unless --yes is passed
    Clear {
        /// Skip confirmation prompt
        #[arg(long)]
        yes: bool,
    },
}

/// Flags describing one service (shared with `vault proposal create`).
#[derive(Args)]
pub struct ServiceFlags {
    /// Target service host (e.g. api.stripe.com)
    #[arg(long)]
    pub host: Option<String>,
    /// Service description
    #[arg(long)]
    pub description: Option<String>,
    /// Auth type: bearer, basic, api-key, custom, passthrough
    #[arg(long)]
    pub auth_type: Option<String>,
    /// Credential key for bearer auth
    #[arg(long)]
    pub token_key: Option<String>,
    /// Credential key for basic auth username
    #[arg(long)]
    pub username_key: Option<String>,
    /// Credential key for basic auth password
    #[arg(long)]
    pub password_key: Option<String>,
    /// Credential key for api-key auth
    #[arg(long)]
    pub api_key_key: Option<String>,
    /// Header name for api-key (default Authorization)
    #[arg(long)]
    pub api_key_header: Option<String>,
    /// Prefix for api-key value
    #[arg(long)]
    pub api_key_prefix: Option<String>,
}

#[derive(Args)]
pub struct ServiceAddArgs {
    /// Path to a YAML services file (upsert mode)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub service: ServiceFlags,
    /// Create the service in a disabled state (proxy traffic returns 403 until enabled)
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Deserialize)]
struct Listing {
    vault: String,
    services: Vec<Service>,
}

#[derive(Deserialize)]
struct WriteReply {
    services_count: usize,
    #[serde(default)]
    upserted: Vec<String>,
    #[serde(default)]
    missing_credentials: Vec<String>,
}

/// Reads a services YAML file (`-` is stdin); errors carry the line and column.
fn read_file(path: &Path) -> anyhow::Result<Vec<Service>> {
    let (text, shown) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read services from stdin")?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    services::parse_yaml(&text).map_err(|e| anyhow::anyhow!("{shown}: {e}"))
}

impl ServiceFlags {
    /// Builds one service from flags, with messages that name the missing flag.
    pub fn to_service(&self, enabled: bool) -> anyhow::Result<Service> {
        let host = self
            .host
            .as_deref()
            .context("--host is required (or describe services in a file with -f)")?;
        let kind = self.auth_type.as_deref().context(
            "--auth-type is required with --host (bearer, basic, api-key, custom or passthrough)",
        )?;
        let need = |value: &Option<String>, flag: &str| {
            value
                .clone()
                .with_context(|| format!("{flag} is required for {kind} auth"))
        };
        // Every credential flag belongs to one auth type; any other is refused, not dropped.
        let credential_flags = [
            ("--token-key", &self.token_key, "bearer"),
            ("--username-key", &self.username_key, "basic"),
            ("--password-key", &self.password_key, "basic"),
            ("--api-key-key", &self.api_key_key, "api-key"),
            ("--api-key-header", &self.api_key_header, "api-key"),
            ("--api-key-prefix", &self.api_key_prefix, "api-key"),
        ];
        let known = ["bearer", "basic", "api-key", "custom", "passthrough"];
        if known.contains(&kind)
            && let Some((flag, _, owner)) = credential_flags
                .iter()
                .find(|(_, value, owner)| value.is_some() && *owner != kind)
        {
            let why = match kind {
                "passthrough" => " (passthrough accepts no credential flags: nothing is injected)",
                _ => "",
            };
            bail!("{flag} does not apply to {kind} auth, only to {owner}{why}");
        }
        let auth = match kind {
            "bearer" => json!({ "type": "bearer", "token": need(&self.token_key, "--token-key")? }),
            "basic" => json!({
                "type": "basic",
                "username": need(&self.username_key, "--username-key")?,
                "password": need(&self.password_key, "--password-key")?,
            }),
            "api-key" => {
                let mut auth =
                    json!({ "type": "api-key", "key": need(&self.api_key_key, "--api-key-key")? });
                if let Some(header) = &self.api_key_header {
                    auth["header"] = json!(header);
                }
                if let Some(prefix) = &self.api_key_prefix {
                    auth["prefix"] = json!(prefix);
                }
                auth
            }
            "passthrough" => json!({ "type": "passthrough" }),
            "custom" => bail!(
                "custom auth needs header templates; describe the service in a YAML file and pass it with -f"
            ),
            other => bail!(
                "unknown auth type \"{other}\" (expected bearer, basic, api-key, custom or passthrough)"
            ),
        };
        let mut value = json!({ "host": host, "enabled": enabled, "auth": auth });
        if let Some(description) = &self.description {
            value["description"] = json!(description);
        }
        let service: Service = serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{e}"))?;
        services::validate(std::slice::from_ref(&service)).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(service)
    }
}

/// A wildcard right under a shared suffix sends the credential to hosts anyone can set up.
fn warn_shared_wildcards(written: &[Service]) {
    for service in written {
        if let Some(suffix) = services::wildcard_on_shared_suffix(&service.host) {
            output::warn(format!(
                "{} matches every host under {suffix}, including ones other people run: the credential goes to any of them. Name your own host (e.g. yours.{suffix})",
                service.host
            ));
        }
    }
}

fn warn_missing(reply: &WriteReply, vault: &str) {
    if !reply.missing_credentials.is_empty() {
        output::warn(format!(
            "vault \"{vault}\" has no value yet for {}; set it with `agent-vault vault credential set KEY=VALUE`",
            reply.missing_credentials.join(", ")
        ));
    }
}

/// Asks for confirmation on a terminal; without one, `--yes` is required.
fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !prompt::stdin_is_tty() {
        bail!("this needs confirmation; pass --yes");
    }
    let answer = prompt::line(&format!("{question} [y/N] "))?;
    if !matches!(answer.to_lowercase().as_str(), "y" | "yes") {
        bail!("aborted: nothing was changed");
    }
    Ok(())
}

pub async fn run(target: Target, command: ServiceCommand) -> anyhow::Result<()> {
    let Target { client, vault } = &target;
    let enabled = matches!(command, ServiceCommand::Enable { .. });
    match command {
        ServiceCommand::List => {
            let listing: Listing = client.get(&target.path("/services")).await?;
            print!("{}", services::to_yaml(&listing.vault, &listing.services)?);
        }
        ServiceCommand::Set { file } => {
            let (services, values) = match file {
                Some(path) => (read_file(&path)?, BTreeMap::new()),
                None if prompt::stdin_is_tty() => {
                    let services = build_interactively()?;
                    let values = ask_missing_credentials(&target, &services).await?;
                    (services, values)
                }
                None => bail!(
                    "no terminal for the interactive builder; pass a YAML file with -f FILE (or -f - for stdin)"
                ),
            };
            let reply: WriteReply = client
                .send(
                    Method::PUT,
                    &target.path("/services"),
                    Some(&json!({ "services": services })),
                )
                .await?;
            output::success(format!(
                "Services of vault \"{vault}\" replaced ({} in total).",
                reply.services_count
            ));
            warn_shared_wildcards(&services);
            if !values.is_empty() {
                let body = json!({
                    "credentials": values.iter().map(|(k, v)| (k.as_str(), v.expose())).collect::<BTreeMap<_, _>>()
                });
                let _: serde_json::Value = client.post(&target.path("/credentials"), &body).await?;
                for key in values.keys() {
                    output::success(format!("Set {key} in vault \"{vault}\"."));
                }
            }
            let reply = WriteReply {
                missing_credentials: reply
                    .missing_credentials
                    .into_iter()
                    .filter(|key| !values.contains_key(key))
                    .collect(),
                ..reply
            };
            warn_missing(&reply, vault);
        }
        ServiceCommand::Add(args) => {
            let services = match &args.file {
                Some(path) => {
                    if args.service.host.is_some() || args.service.auth_type.is_some() {
                        bail!("give either -f FILE or --host/--auth-type flags, not both");
                    }
                    read_file(path)?
                }
                None => vec![args.service.to_service(!args.disabled)?],
            };
            let reply: WriteReply = client
                .post(&target.path("/services"), &json!({ "services": services }))
                .await?;
            for matcher in &reply.upserted {
                output::success(format!("Service {matcher} saved in vault \"{vault}\"."));
            }
            let plural = if reply.services_count == 1 { "" } else { "s" };
            println!("{} service{plural} in total.", reply.services_count);
            warn_shared_wildcards(&services);
            warn_missing(&reply, vault);
        }
        ServiceCommand::Enable { host } | ServiceCommand::Disable { host } => {
            let _: serde_json::Value = client
                .send(
                    Method::PATCH,
                    &target.path(&format!("/services/{}", segment(&host))),
                    Some(&json!({ "enabled": enabled })),
                )
                .await?;
            let state = if enabled { "enabled" } else { "disabled" };
            output::success(format!("Service {host} {state} in vault \"{vault}\"."));
        }
        ServiceCommand::Remove { host, yes } => {
            confirm(
                &format!("Remove service {host} from vault \"{vault}\"?"),
                yes,
            )?;
            let reply: serde_json::Value = client
                .delete(&target.path(&format!("/services/{}", segment(&host))))
                .await?;
            output::success(format!(
                "Removed service {} from vault \"{vault}\" ({} left).",
                reply["removed"].as_str().unwrap_or(&host),
                reply["services_count"]
            ));
        }
        ServiceCommand::Clear { yes } => {
            confirm(&format!("Remove every service of vault \"{vault}\"?"), yes)?;
            let reply: serde_json::Value = client.delete(&target.path("/services")).await?;
            output::success(format!(
                "Removed {} services from vault \"{vault}\".",
                reply["removed_count"]
            ));
        }
    }
    Ok(())
}

/// For each credential key the services use that the vault does not hold yet, asks for its
/// value without echo (empty skips it).
async fn ask_missing_credentials(
    target: &Target,
    services: &[Service],
) -> anyhow::Result<BTreeMap<String, SecretString>> {
    #[derive(Deserialize)]
    struct Keys {
        keys: Vec<String>,
    }
    let held: Keys = target.client.get(&target.path("/credentials")).await?;
    let wanted: BTreeSet<String> = services
        .iter()
        .flat_map(Service::credential_keys)
        .filter(|key| !held.keys.iter().any(|k| k == key))
        .map(str::to_owned)
        .collect();
    let mut values = BTreeMap::new();
    if !wanted.is_empty() {
        eprintln!(
            "The vault holds no value yet for {}. Enter each (input hidden), or leave it empty to set it later.",
            wanted.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for key in wanted {
        let value = prompt::hidden(&format!("{key}: "))?;
        if !value.is_empty() {
            values.insert(key, value);
        }
    }
    Ok(values)
}

/// The terminal builder behind `service set` without `-f`: one service at a time.
fn build_interactively() -> anyhow::Result<Vec<Service>> {
    eprintln!(
        "Describe the vault's services; they replace the current ones. Empty host to finish."
    );
    let mut services = Vec::new();
    loop {
        let host = prompt::line("Host (e.g. api.stripe.com, *.example.com, empty to finish): ")?;
        if host.is_empty() {
            break;
        }
        let kind = prompt::line("Auth type (bearer, basic, api-key, passthrough): ")?;
        let mut flags = ServiceFlags {
            host: Some(host),
            description: None,
            auth_type: Some(kind.clone()),
            token_key: None,
            username_key: None,
            password_key: None,
            api_key_key: None,
            api_key_header: None,
            api_key_prefix: None,
        };
        let ask = |label: &str| -> anyhow::Result<Option<String>> {
            let answer = prompt::line(label)?;
            Ok((!answer.is_empty()).then_some(answer))
        };
        match kind.as_str() {
            "bearer" => {
                flags.token_key = ask("Credential key holding the token (e.g. STRIPE_KEY): ")?
            }
            "basic" => {
                flags.username_key = ask("Credential key holding the username: ")?;
                flags.password_key = ask("Credential key holding the password: ")?;
            }
            "api-key" => {
                flags.api_key_key = ask("Credential key holding the API key: ")?;
                flags.api_key_header = ask("Header name [Authorization]: ")?;
                flags.api_key_prefix = ask("Value prefix (empty for none): ")?;
            }
            _ => {}
        }
        match flags.to_service(true) {
            Ok(service) => services.push(service),
            Err(e) => output::warn(format!("{e:#}; this service was not added")),
        }
    }
    if services.is_empty() {
        bail!("no services given; nothing was changed");
    }
    print!("{}", services::to_yaml("(preview)", &services)?);
    let answer = prompt::line("Replace the vault's services with these? [y/N] ")?;
    if !matches!(answer.to_lowercase().as_str(), "y" | "yes") {
        bail!("aborted: nothing was changed");
    }
    Ok(services)
}
