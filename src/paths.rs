//! The on-disk layout under `~/.agent-vault/`: database, pid file, CLI login, logs, CA.
//!
//! Everything here is private to the user: the directory is 0700 and every file we write is
//! 0600, written to a temporary file and renamed so a crash never leaves half a file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file that binds a directory (and those below it) to a vault (`vault init`).
pub const PROJECT_FILE: &str = "agent-vault.json";

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error(
        "HOME is not set; set it to your home directory (agent-vault keeps its data in $HOME/.agent-vault)"
    )]
    HomeUnset,
    #[error(
        "home directory {0} does not exist; set HOME to an existing directory (agent-vault keeps its data in $HOME/.agent-vault)"
    )]
    HomeMissing(PathBuf),
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
}

/// Where agent-vault keeps its state: `$HOME/.agent-vault`.
#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Resolves `$HOME/.agent-vault` without creating anything.
    pub fn from_env() -> Result<Self, PathsError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(PathsError::HomeUnset)?;
        let home = PathBuf::from(home);
        if !home.is_dir() {
            return Err(PathsError::HomeMissing(home));
        }
        Ok(Self::at(home.join(".agent-vault")))
    }

    /// A layout rooted at an explicit directory (tests).
    pub fn at(root: PathBuf) -> Self {
        Self { root }
    }

    /// Creates the directory (0700) if needed and tightens its mode if it is looser.
    pub fn ensure_root(&self) -> Result<&Path, PathsError> {
        let create = |source| PathsError::Create {
            path: self.root.clone(),
            source,
        };
        if !self.root.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(create)?;
        }
        let mode = fs::metadata(&self.root)
            .map_err(create)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(create)?;
        }
        Ok(&self.root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("agent-vault.db")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("agent-vault.pid")
    }
    pub fn session_file(&self) -> PathBuf {
        self.root.join("session.json")
    }
    pub fn context_file(&self) -> PathBuf {
        self.root.join("context")
    }
    pub fn server_log(&self) -> PathBuf {
        self.root.join("server.log")
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }
    pub fn mitm_ca(&self) -> PathBuf {
        self.root.join("mitm-ca.pem")
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically (temporary file + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates (or opens for append) a 0600 file, e.g. the detached server's log.
pub fn open_private_append(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_created_private_and_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join(".agent-vault"));
        paths.ensure_root().unwrap();
        let mode = fs::metadata(paths.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::set_permissions(paths.root(), fs::Permissions::from_mode(0o755)).unwrap();
        paths.ensure_root().unwrap();
        let mode = fs::metadata(paths.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn private_files_are_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("session.json");
        write_private(&file, b"one").unwrap();
        write_private(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
