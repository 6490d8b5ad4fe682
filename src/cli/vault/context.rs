//! Which vault a command acts on: `--vault` > `AGENT_VAULT_VAULT` > the nearest
//! `agent-vault.json` (this directory or a parent) > the active vault (`vault use`) >
//! `default`. A vault that does not exist is an error from the server, never a silent
//! fallback to another vault.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::paths::{Paths, write_private};
use crate::store::DEFAULT_VAULT;

pub use crate::paths::PROJECT_FILE;
pub use crate::sandbox::env::VAULT_ENV;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    ProjectFile(PathBuf),
    Active,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("from --vault"),
            Self::Env => write!(f, "from {VAULT_ENV}"),
            Self::ProjectFile(path) => write!(f, "from {}", path.display()),
            Self::Active => f.write_str("the active vault, set with `agent-vault vault use`"),
            Self::Default => f.write_str("the default"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ProjectFile {
    vault: String,
}

/// The nearest `agent-vault.json` from `start` upwards, with the vault it names. A file owned
/// by another user (planted in a shared directory such as `/tmp`) or a symlink is passed
/// over, with a warning: it must not choose where your secrets go.
pub fn find_project_file(start: &Path) -> anyhow::Result<Option<(PathBuf, String)>> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::getuid().as_raw();
    for dir in start.ancestors() {
        let path = dir.join(PROJECT_FILE);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        // A link would pass the owner check with its target's owner: anyone who can write
        // the directory could point it at someone's file naming another vault.
        if meta.is_symlink() {
            crate::cli::output::warn(format!(
                "ignoring {}: it is a symlink; bind this directory with `agent-vault vault init`, or pass --vault",
                path.display()
            ));
            continue;
        }
        if meta.is_file() && meta.uid() != me {
            crate::cli::output::warn(format!(
                "ignoring {}: it belongs to another user; bind this directory with `agent-vault vault init`, or pass --vault",
                path.display()
            ));
            continue;
        }
        if meta.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: ProjectFile = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not valid: expected {{\"vault\": \"<name>\"}}",
                    path.display()
                )
            })?;
            return Ok(Some((path, file.vault)));
        }
    }
    Ok(None)
}

pub fn write_project_file(dir: &Path, vault: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(PROJECT_FILE);
    let text = serde_json::to_string_pretty(&ProjectFile {
        vault: vault.to_owned(),
    })? + "\n";
    // A symlink in its place (from a cloned repository, say) would send the write elsewhere.
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        anyhow::bail!(
            "{} is a symlink; remove it and run this again to write the file itself",
            path.display()
        );
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn active_vault(paths: &Paths) -> Option<String> {
    let name = std::fs::read_to_string(paths.context_file()).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

pub fn set_active_vault(paths: &Paths, name: Option<&str>) -> anyhow::Result<()> {
    match name {
        Some(name) => {
            paths.ensure_root()?;
            write_private(&paths.context_file(), name.as_bytes())
                .with_context(|| format!("cannot write {}", paths.context_file().display()))
        }
        None => match std::fs::remove_file(paths.context_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        },
    }
}

/// Resolves the vault in the documented order.
pub fn resolve(flag: Option<&str>, paths: &Paths) -> anyhow::Result<(String, Source)> {
    if let Some(name) = flag {
        return Ok((name.to_owned(), Source::Flag));
    }
    if let Some(name) = std::env::var(VAULT_ENV).ok().filter(|v| !v.is_empty()) {
        return Ok((name, Source::Env));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    if let Some((path, name)) = find_project_file(&cwd)? {
        return Ok((name, Source::ProjectFile(path)));
    }
    if let Some(name) = active_vault(paths) {
        return Ok((name, Source::Active));
    }
    Ok((DEFAULT_VAULT.to_owned(), Source::Default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_file_is_found_in_parents_and_must_be_valid() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert!(find_project_file(&nested).unwrap().is_none());
        write_project_file(dir.path(), "payments").unwrap();
        let (path, name) = find_project_file(&nested).unwrap().unwrap();
        assert_eq!(name, "payments");
        assert_eq!(path, dir.path().join(PROJECT_FILE));
        std::fs::write(dir.path().join("a").join(PROJECT_FILE), "{oops").unwrap();
        assert!(
            find_project_file(&nested).is_err(),
            "a broken file is an error, not skipped"
        );
    }

    #[test]
    fn another_users_project_file_is_passed_over() {
        if !nix::unistd::getuid().is_root() {
            return; // giving a file away needs root
        }
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a");
        std::fs::create_dir_all(&nested).unwrap();
        write_project_file(dir.path(), "mine").unwrap();
        let planted = write_project_file(&nested, "theirs").unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        let (path, name) = find_project_file(&nested).unwrap().unwrap();
        assert_eq!(
            (path, name.as_str()),
            (dir.path().join(PROJECT_FILE), "mine")
        );
    }
}
