//! What the agent's container may see of the host: the working directory at `/workspace`
//! and the user's `--mount src:dst[:ro]` — after resolving symlinks — but never
//! `~/.agent-vault` (the encrypted store and the CA key), anything containing it, anything
//! inside it, nor a Docker socket (which would hand the agent the host). Container paths the
//! sandbox relies on are reserved.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MountError(pub String);

/// Container paths a user mount may not be, contain, or lie inside.
const RESERVED: [&str; 14] = [
    "/",
    "/bin",
    "/dev",
    "/etc",
    "/home/claude/.claude",
    "/lib",
    "/lib64",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/workspace",
];

/// Host paths no mount may expose, canonicalised.
pub struct Forbidden {
    agent_vault_dir: PathBuf,
    sockets: Vec<PathBuf>,
}

impl Forbidden {
    /// `agent_vault_dir` is `~/.agent-vault`; Docker sockets are found at the usual places
    /// and at `DOCKER_HOST` when it names a Unix socket.
    pub fn new(agent_vault_dir: &Path) -> Self {
        let mut candidates = vec![
            PathBuf::from("/var/run/docker.sock"),
            PathBuf::from("/run/docker.sock"),
        ];
        if let Some(path) = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        {
            candidates.push(path);
        }
        let sockets = candidates
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        Self {
            agent_vault_dir: canonical_or_self(agent_vault_dir),
            sockets,
        }
    }

    /// Resolves `path` and refuses it if it exposes a forbidden place. Returns the resolved path.
    pub fn check(&self, path: &Path, what: &str) -> Result<PathBuf, MountError> {
        let resolved = path
            .canonicalize()
            .map_err(|e| MountError(format!("{what} {}: {e}", path.display())))?;
        let dir = &self.agent_vault_dir;
        if resolved.starts_with(dir) || dir.starts_with(&resolved) {
            return Err(MountError(format!(
                "{what} {} would expose {} (the encrypted store and the CA key); mount something else",
                path.display(),
                dir.display()
            )));
        }
        for socket in &self.sockets {
            if socket.starts_with(&resolved) {
                return Err(MountError(format!(
                    "{what} {} would expose the Docker socket {}, which controls the host; mount something else",
                    path.display(),
                    socket.display()
                )));
            }
        }
        if is_docker_socket(&resolved) {
            return Err(MountError(format!(
                "{what} {} is a Docker socket; it cannot be mounted",
                path.display()
            )));
        }
        Ok(resolved)
    }
}

fn canonical_or_self(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

fn is_docker_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    path.file_name().is_some_and(|n| n == "docker.sock")
        && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// A validated bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

impl Mount {
    /// The Docker `Binds` form.
    pub fn bind(&self) -> String {
        let mode = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", self.source.display(), self.target)
    }
}

/// The reserved path `target` is, lies inside, or contains. Everything lies inside `/`, so
/// `/` conflicts only with itself.
fn reserved_conflict(target: &Path) -> Option<&'static str> {
    RESERVED.iter().copied().find(|reserved| {
        let reserved = Path::new(reserved);
        if reserved == Path::new("/") {
            return target == reserved;
        }
        target.starts_with(reserved) || reserved.starts_with(target)
    })
}

/// `/a//b/./c` → `/a/b/c`; refuses relative paths and `..`.
fn normalize_target(target: &str) -> Result<String, MountError> {
    let path = Path::new(target);
    if !path.is_absolute() {
        return Err(MountError(format!(
            "mount target \"{target}\" must be an absolute path"
        )));
    }
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(MountError(format!(
                    "mount target \"{target}\" may not contain \"..\""
                )));
            }
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Parses and checks `--mount src:dst[:ro|rw]`.
pub fn parse(spec: &str, forbidden: &Forbidden) -> Result<Mount, MountError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [source, target] => (*source, *target, false),
        [source, target, "ro"] => (*source, *target, true),
        [source, target, "rw"] => (*source, *target, false),
        _ => {
            return Err(MountError(format!(
                "\"{spec}\" is not a mount; write SOURCE:TARGET or SOURCE:TARGET:ro (absolute paths, no colons in them)"
            )));
        }
    };
    if !Path::new(source).is_absolute() {
        return Err(MountError(format!(
            "mount source \"{source}\" must be an absolute path"
        )));
    }
    let target = normalize_target(target)?;
    let reserved = reserved_conflict(Path::new(&target));
    if let Some(reserved) = reserved {
        return Err(MountError(format!(
            "mount target {target} is reserved by the sandbox (it is, contains or lies inside {reserved}); choose another, e.g. /mnt/data"
        )));
    }
    let source = forbidden.check(Path::new(source), "mount source")?;
    Ok(Mount {
        source,
        target,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _dir: tempfile::TempDir,
        home: PathBuf,
        forbidden: Forbidden,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(home.join(".agent-vault/ca")).unwrap();
        std::fs::create_dir_all(home.join("project/data")).unwrap();
        let forbidden = Forbidden::new(&home.join(".agent-vault"));
        Setup {
            _dir: dir,
            home,
            forbidden,
        }
    }

    #[test]
    fn the_store_is_never_exposed() {
        let s = setup();
        std::os::unix::fs::symlink(s.home.join(".agent-vault"), s.home.join("innocent")).unwrap();
        for source in [
            s.home.join(".agent-vault"),
            s.home.join(".agent-vault/ca"),
            s.home.clone(),
            s.home.join("innocent"),
            PathBuf::from("/"),
        ] {
            let spec = format!("{}:/mnt/x", source.display());
            let err = parse(&spec, &s.forbidden).unwrap_err();
            assert!(
                err.0.contains(".agent-vault") || err.0.contains("Docker"),
                "{spec}: {err}"
            );
        }
    }

    #[test]
    fn good_mounts_resolve_and_keep_their_mode() {
        let s = setup();
        let spec = format!("{}:/mnt//data/./:ro", s.home.join("project/data").display());
        let mount = parse(&spec, &s.forbidden).unwrap();
        assert_eq!(mount.target, "/mnt/data");
        assert!(mount.read_only);
        assert_eq!(
            mount.bind(),
            format!("{}:/mnt/data:ro", s.home.join("project/data").display())
        );
        let rw = parse(
            &format!("{}:/data", s.home.join("project").display()),
            &s.forbidden,
        )
        .unwrap();
        assert!(!rw.read_only);
    }

    #[test]
    fn reserved_targets_and_bad_specs_are_refused() {
        let s = setup();
        let src = s.home.join("project").display().to_string();
        for target in [
            "/",
            "/etc",
            "/etc/passwd",
            "/usr/local/bin",
            "/home",
            "/home/claude",
            "/home/claude/.claude/x",
            "/workspace",
            "/workspace/sub",
            "/bin",
            "/proc/x",
        ] {
            let err = parse(&format!("{src}:{target}"), &s.forbidden).unwrap_err();
            assert!(err.0.contains("reserved"), "{target}: {err}");
        }
        for spec in [
            "only",
            "a:b:c:d",
            "relative:/mnt",
            &format!("{src}:relative"),
            &format!("{src}:/mnt/../etc"),
            &format!("{src}:/mnt:xx"),
        ] {
            assert!(parse(spec, &s.forbidden).is_err(), "{spec}");
        }
        assert!(
            parse(
                &format!("{}:/mnt", s.home.join("missing").display()),
                &s.forbidden
            )
            .is_err()
        );
    }
}
