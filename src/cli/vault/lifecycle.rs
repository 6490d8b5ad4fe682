//! `vault create | list | delete | rename | use | current | init`.

use anyhow::bail;
use serde::Deserialize;
use serde_json::json;

use super::context::{self, PROJECT_FILE, Source};
use crate::cli::client::segment;
use crate::cli::{Context, output, prompt};

#[derive(Deserialize)]
pub struct VaultRow {
    pub name: String,
    pub role: Option<String>,
    pub created_at: String,
}

#[derive(Deserialize)]
struct VaultList {
    vaults: Vec<VaultRow>,
}

pub async fn create(context: &Context, name: &str) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    let _: serde_json::Value = client.post("/v1/vaults", &json!({ "name": name })).await?;
    output::success(format!("Created vault \"{name}\"; you are its admin."));
    Ok(())
}

async fn fetch_vaults(context: &Context) -> anyhow::Result<Vec<VaultRow>> {
    let client = context.logged_in_client()?;
    Ok(client.get::<VaultList>("/v1/vaults").await?.vaults)
}

pub async fn list(context: &Context) -> anyhow::Result<()> {
    let vaults = fetch_vaults(context).await?;
    if vaults.is_empty() {
        println!("No vaults. Create one with `agent-vault vault create <name>`.");
        return Ok(());
    }
    let active = context::resolve(None, &context.paths()?)
        .map(|(name, _)| name)
        .ok();
    let rows: Vec<Vec<String>> = vaults
        .iter()
        .map(|v| {
            let marker = if active.as_deref() == Some(v.name.as_str()) {
                "*"
            } else {
                ""
            };
            vec![
                format!("{}{marker}", v.name),
                v.role.clone().unwrap_or_else(|| "(not a member)".into()),
                v.created_at.clone(),
            ]
        })
        .collect();
    output::table(&["NAME", "ROLE", "CREATED"], &rows);
    Ok(())
}

pub async fn delete(context: &Context, name: &str, yes: bool) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    if !yes {
        if !prompt::stdin_is_tty() {
            bail!("deleting a vault needs confirmation; pass --yes");
        }
        output::warn(format!(
            "this permanently deletes vault \"{name}\" with all its credentials, services and proposals"
        ));
        if prompt::line(&format!("Type \"{name}\" to confirm: "))? != name {
            bail!("aborted: the name did not match; nothing was deleted");
        }
    }
    let _: serde_json::Value = client
        .delete(&format!("/v1/vaults/{}", segment(name)))
        .await?;
    let paths = context.paths()?;
    if context::active_vault(&paths).as_deref() == Some(name) {
        context::set_active_vault(&paths, None)?;
    }
    output::success(format!("Deleted vault \"{name}\"."));
    Ok(())
}

pub async fn rename(context: &Context, old: &str, new: &str) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    let _: serde_json::Value = client
        .post(
            &format!("/v1/vaults/{}/rename", segment(old)),
            &json!({ "name": new }),
        )
        .await?;
    let paths = context.paths()?;
    if context::active_vault(&paths).as_deref() == Some(old) {
        context::set_active_vault(&paths, Some(new))?;
    }
    output::success(format!("Renamed vault \"{old}\" to \"{new}\"."));
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(Some((path, bound))) = context::find_project_file(&cwd)
        && bound == old
    {
        output::warn(format!(
            "{} still names \"{old}\"; update it with `agent-vault vault init --vault {new}`",
            path.display()
        ));
    }
    Ok(())
}

/// Checks with the server that the vault exists and the caller can see it.
async fn ensure_exists(context: &Context, name: &str) -> anyhow::Result<()> {
    let client = context.logged_in_client()?;
    let _: serde_json::Value = client.get(&format!("/v1/vaults/{}", segment(name))).await?;
    Ok(())
}

pub async fn use_vault(context: &Context, name: &str) -> anyhow::Result<()> {
    ensure_exists(context, name).await?;
    context::set_active_vault(&context.paths()?, Some(name))?;
    output::success(format!("Now using vault \"{name}\"."));
    let (effective, source) = context::resolve(None, &context.paths()?)?;
    if effective != name {
        output::warn(format!(
            "commands here still use \"{effective}\" ({source}), which takes precedence"
        ));
    }
    Ok(())
}

pub fn current(context: &Context, flag: Option<&str>) -> anyhow::Result<()> {
    let (name, source) = context::resolve(flag, &context.paths()?)?;
    println!("{name}");
    if prompt::stdin_is_tty() && source != Source::Flag {
        eprintln!("({source})");
    }
    Ok(())
}

pub async fn init(context: &Context, flag: Option<&str>) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let existing =
        context::find_project_file(&cwd)?.filter(|(path, _)| path.parent() == Some(cwd.as_path()));
    let name = match flag {
        Some(name) => {
            ensure_exists(context, name).await?;
            name.to_owned()
        }
        None => pick_vault(context).await?,
    };
    if let Some((_, bound)) = &existing {
        if *bound == name {
            println!("{PROJECT_FILE} already binds this directory to vault \"{name}\".");
            return Ok(());
        }
        if flag.is_none() {
            if !prompt::stdin_is_tty() {
                bail!(
                    "{PROJECT_FILE} binds this directory to \"{bound}\"; pass --vault {name} to replace it"
                );
            }
            let answer = prompt::line(&format!(
                "Replace the binding to \"{bound}\" with \"{name}\"? [y/N] "
            ))?;
            if !matches!(answer.to_lowercase().as_str(), "y" | "yes") {
                bail!("aborted: {PROJECT_FILE} was left unchanged");
            }
        }
    }
    let path = context::write_project_file(&cwd, &name)?;
    output::success(format!("Wrote {} (vault \"{name}\").", path.display()));
    println!("Commit it so everyone working here uses the same vault.");
    Ok(())
}

async fn pick_vault(context: &Context) -> anyhow::Result<String> {
    let vaults: Vec<VaultRow> = fetch_vaults(context)
        .await?
        .into_iter()
        .filter(|v| v.role.is_some())
        .collect();
    match vaults.as_slice() {
        [] => bail!(
            "you are not a member of any vault; create one with `agent-vault vault create <name>`"
        ),
        [only] => Ok(only.name.clone()),
        several if !prompt::stdin_is_tty() => bail!(
            "you belong to {} vaults ({}); choose one with --vault",
            several.len(),
            several
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        several => {
            for (i, v) in several.iter().enumerate() {
                eprintln!(
                    "  {}) {} ({})",
                    i + 1,
                    v.name,
                    v.role.as_deref().unwrap_or("-")
                );
            }
            let answer = prompt::line("Vault number: ")?;
            let index: usize = answer.parse().unwrap_or(0);
            several
                .get(index.wrapping_sub(1))
                .map(|v| v.name.clone())
                .ok_or_else(|| anyhow::anyhow!("\"{answer}\" is not one of the numbers shown"))
        }
    }
}
