//! What the agent's container may see of the host: the working directory at `/workspace`
//! and the user's `--mount src:dst[:ro]`, and proof that it sees exactly those.
//!
//! Stance: a source is opened once, and the *opened object* is judged — never a path that
//! could be swapped afterwards. Refused are `~/.agent-vault` (the encrypted store and the
//! CA key), anything containing it or inside it (also through another path to the same
//! directory), `$HOME` itself, `/tmp` and `/var/tmp` themselves, system directories,
//! everything under `/proc`, `/sys`, `/dev` and `/run` (runtime sockets, other containers'
//! namespaces), Docker's state, and Unix sockets (a socket is a line to a daemon outside
//! the broker). Docker resolves the path again when the container starts, so a directory
//! swapped for a symlink in between would be mounted instead: [`Source::identity`] is
//! compared with what the started container really has at each target (see [`verify`])
//! before its command may run.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::paths::PROJECT_FILE;

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

/// Host directories that may not be mounted themselves (their subdirectories may).
const SYSTEM_DIRS: [&str; 7] = ["/", "/etc", "/usr", "/var", "/boot", "/home", "/root"];

/// Shared temporary directories, which may not be mounted themselves: other programs keep
/// their sockets there (tmux, ssh-agent, X11), and a socket in a mount is reachable.
const SHARED_TEMP: [&str; 2] = ["/tmp", "/var/tmp"];

/// Host trees nothing may be mounted from: kernel interfaces, devices, runtime sockets and
/// container state.
const SYSTEM_TREES: [&str; 9] = [
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/boot",
];

/// The workspace's own git metadata, mounted read-only over the writable workspace unless the
/// user asks otherwise: git runs a repository's hooks and what its config names
/// (`core.fsmonitor`, `core.hooksPath`, filter drivers) on the host, the next time anyone uses
/// git there, so an agent that could write them would run code outside the sandbox. `.git` is
/// mounted whole — a directory, or the file of a worktree that names its git directory — since
/// a mount point cannot be renamed away (a read-only `hooks` alone could be, with its parent).
pub fn git_guard(
    workspace: &Source,
    target: &str,
    policy: &Policy,
) -> Result<Option<Mount>, MountError> {
    let git = workspace.real.join(".git");
    if std::fs::symlink_metadata(&git).is_err() {
        return Ok(None);
    }
    Ok(Some(Mount {
        source: policy.check(&git, "the repository's .git")?,
        target: format!("{target}/.git"),
        read_only: true,
    }))
}

/// The workspace's `agent-vault.json`, mounted read-only like `.git` (see [`git_guard`]): it
/// chooses the vault of every `agent-vault` command run there, the next sandbox's included,
/// so an agent that could rewrite it would pick which vault's credentials it gets next time.
pub fn project_file_guard(
    workspace: &Source,
    target: &str,
    policy: &Policy,
) -> Result<Option<Mount>, MountError> {
    let file = workspace.real.join(PROJECT_FILE);
    if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    Ok(Some(Mount {
        source: policy.check(&file, "the workspace's agent-vault.json")?,
        target: format!("{target}/{PROJECT_FILE}"),
        read_only: true,
    }))
}

/// What the agent left in the directories it could write that programs on the host act on.
#[derive(Debug, Default)]
pub struct Planted {
    /// Git directories (`.git`, or a bare repository) whose hooks or config may have been
    /// written.
    pub git_dirs: Vec<PathBuf>,
    /// `agent-vault.json` files: each chooses the vault for commands run below it.
    pub project_files: Vec<PathBuf>,
    /// Directories changed during the run that cannot be listed (the agent, running as the
    /// user, can take the read right away): what they hold is unknown.
    pub unreadable: Vec<PathBuf>,
    /// The walk stopped at its budget.
    pub partial: bool,
}

/// Git directories and `agent-vault.json` files under `roots` made or changed since `since`
/// (the agent's run), by their change time, which no program can set back: a directory git
/// would treat as a repository (a `.git`, or any directory laid out as a bare repository,
/// which git also uses) and whose hooks or config the agent could have written, and files that
/// would choose the vault of later commands. Stops after `budget` entries.
pub fn planted_since(roots: &[PathBuf], since: std::time::SystemTime, budget: usize) -> Planted {
    // File times come from the kernel's coarse clock, a tick behind the precise one.
    let since = (since - std::time::Duration::from_millis(100))
        .duration_since(std::time::UNIX_EPOCH)
        .map_or((0, 0), |d| {
            (d.as_secs() as i64, i64::from(d.subsec_nanos()))
        });
    let changed = |path: &Path| {
        std::fs::symlink_metadata(path).is_ok_and(|m| (m.ctime(), m.ctime_nsec()) >= since)
    };
    let git_touched = |git: &Path| {
        let hooks = std::fs::read_dir(git.join("hooks"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|hook| hook.path());
        changed(git)
            || ["config", "config.worktree", "hooks"]
                .iter()
                .map(|name| git.join(name))
                .chain(hooks)
                .any(|p| changed(&p))
    };
    let mut planted = Planted::default();
    let mut pending = roots.to_vec();
    let mut seen = 0usize;
    while let Some(dir) = pending.pop() {
        let is_root = roots.contains(&dir);
        if is_bare_repository(&dir) {
            if git_touched(&dir) {
                planted.git_dirs.push(dir.clone());
            }
            if !is_root {
                continue;
            }
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {
                if changed(&dir) {
                    planted.unreadable.push(dir);
                }
                continue;
            }
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > budget {
                planted.partial = true;
                return planted;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if entry.file_name() == ".git" {
                if git_touched(&path) {
                    planted.git_dirs.push(path);
                }
            } else if entry.file_name() == PROJECT_FILE {
                if changed(&path) {
                    planted.project_files.push(path);
                }
            } else if kind.is_dir() {
                pending.push(path);
            }
        }
    }
    planted.git_dirs.sort();
    planted.project_files.sort();
    planted.unreadable.sort();
    planted
}

/// Whether git would take `dir` for a repository of its own (as it checks: a `HEAD` file,
/// and `objects` and `refs` directories).
fn is_bare_repository(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

/// A file or directory's identity: the same pair means the same object, whatever its path.
pub type Identity = (u64, u64);

fn identity(meta: &std::fs::Metadata) -> Identity {
    (meta.dev(), meta.ino())
}

/// Opens `path` without reading it (`O_PATH`), following symlinks as the user asked.
fn open_path(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH)
        .open(path)
}

/// The path the kernel holds for an open file (the object, not the name given).
fn real_path(file: &File) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// The identities of a directory and of each directory above it, up to `/`.
fn lineage(dir: &File) -> std::io::Result<Vec<Identity>> {
    use std::os::fd::AsRawFd;
    let mut current = dir.try_clone()?;
    let mut seen = vec![identity(&current.metadata()?)];
    loop {
        let parent = open_path(Path::new(&format!(
            "/proc/self/fd/{}/..",
            current.as_raw_fd()
        )))?;
        let id = identity(&parent.metadata()?);
        if seen.last() == Some(&id) {
            return Ok(seen);
        }
        seen.push(id);
        current = parent;
    }
}

/// Host places no mount may expose.
pub struct Policy {
    store: PathBuf,
    /// The store and every directory above it.
    store_lineage: Vec<Identity>,
    home: Option<PathBuf>,
    sockets: Vec<PathBuf>,
}

impl Policy {
    /// `agent_vault_dir` is `~/.agent-vault`; runtime sockets are looked for at the usual
    /// places and at `DOCKER_HOST` when it names a Unix socket.
    pub fn new(agent_vault_dir: &Path) -> Self {
        let store = agent_vault_dir
            .canonicalize()
            .unwrap_or_else(|_| agent_vault_dir.to_owned());
        let store_lineage = open_path(&store)
            .and_then(|dir| lineage(&dir))
            .unwrap_or_default();
        let mut candidates = vec![
            PathBuf::from("/var/run/docker.sock"),
            PathBuf::from("/run/docker.sock"),
            PathBuf::from("/run/containerd/containerd.sock"),
            PathBuf::from("/run/podman/podman.sock"),
        ];
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
            let runtime = PathBuf::from(runtime);
            candidates.push(runtime.join("docker.sock"));
            candidates.push(runtime.join("podman/podman.sock"));
        }
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
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .and_then(|h| h.canonicalize().ok());
        Self {
            store,
            store_lineage,
            home,
            sockets,
        }
    }

    /// Opens `path` and refuses it if the opened object exposes a forbidden place. `what`
    /// names it in messages ("the working directory", "mount source").
    pub fn check(&self, path: &Path, what: &str) -> Result<Source, MountError> {
        let shown = path.display();
        let file = open_path(path).map_err(|e| MountError(format!("{what} {shown}: {e}")))?;
        let real = real_path(&file)
            .map_err(|e| MountError(format!("{what} {shown}: cannot resolve it: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| MountError(format!("{what} {shown}: {e}")))?;
        let refuse = |why: String| Err(MountError(format!("{what} {shown} {why}")));
        if meta.file_type().is_socket() {
            return refuse(
                "is a Unix socket: it would give the agent a line to a program on the host, outside the broker; mount something else".into(),
            );
        }
        let lineage = match meta.is_dir() {
            true => lineage(&file),
            false => open_path(real.parent().unwrap_or(Path::new("/"))).and_then(|p| lineage(&p)),
        }
        .map_err(|e| MountError(format!("{what} {shown}: {e}")))?;
        if SYSTEM_DIRS.iter().any(|dir| real == Path::new(dir))
            || SYSTEM_TREES.iter().any(|tree| real.starts_with(tree))
        {
            return refuse(format!(
                "is a system directory ({}) and cannot be mounted; mount a project directory instead",
                real.display()
            ));
        }
        if SHARED_TEMP.iter().any(|dir| real == Path::new(dir)) {
            return refuse(format!(
                "is the shared temporary directory ({}): other programs keep sockets there (tmux, ssh-agent, X11) that would give the agent a line to them; use a directory of its own, e.g. mktemp -d",
                real.display()
            ));
        }
        if self.home.as_deref() == Some(real.as_path()) {
            return refuse(format!(
                "is your home directory ({}): it holds your keys and logins; mount the project directory instead",
                real.display()
            ));
        }
        let own = identity(&meta);
        if real.starts_with(&self.store)
            || self.store.starts_with(&real)
            || self.store_lineage.contains(&own)
            || self
                .store_lineage
                .first()
                .is_some_and(|store| lineage.contains(store))
        {
            return refuse(format!(
                "would expose {} (the encrypted store and the CA key); mount something else",
                self.store.display()
            ));
        }
        if let Some(socket) = self.sockets.iter().find(|s| s.starts_with(&real)) {
            return refuse(format!(
                "would expose the container runtime's socket {}, which controls the host; mount something else",
                socket.display()
            ));
        }
        Ok(Source {
            through_symlink: lexically_normal(path) != real,
            real,
            identity: own,
            _held: file,
        })
    }
}

/// `path` made absolute with `.` and repeated separators removed (`..` kept, since only the
/// filesystem knows where it leads).
fn lexically_normal(path: &Path) -> PathBuf {
    let absolute = match path.is_absolute() {
        true => path.to_owned(),
        false => std::env::current_dir().unwrap_or_default().join(path),
    };
    absolute
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// An opened, checked host source. It stays open for the run, so its identity stays the
/// object that was judged.
#[derive(Debug)]
pub struct Source {
    /// The path the object had when checked; Docker is given this path.
    pub real: PathBuf,
    pub identity: Identity,
    /// The name given led through a symlink (or `..`) to `real`.
    pub through_symlink: bool,
    _held: File,
}

/// A validated bind mount.
#[derive(Debug)]
pub struct Mount {
    pub source: Source,
    pub target: String,
    pub read_only: bool,
}

impl Mount {
    /// The Docker `Binds` form.
    pub fn bind(&self) -> String {
        let mode = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", self.source.real.display(), self.target)
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
pub fn parse(spec: &str, policy: &Policy) -> Result<Mount, MountError> {
    // A line break would end up inside the container's path (and Docker's bind string).
    if spec.chars().any(char::is_control) {
        return Err(MountError(format!(
            "{spec:?} holds a control character (a line break?); give the paths as they are"
        )));
    }
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
    let source = policy.check(Path::new(source), "mount source")?;
    Ok(Mount {
        source,
        target,
        read_only,
    })
}

/// Checks that the started container (its first process is `pid`) has at each target the
/// very object that was judged. Run before its command may start; a mismatch means a path
/// was swapped between the check and Docker's own resolution.
pub fn verify(pid: u32, binds: &[(&str, &Source)]) -> Result<(), MountError> {
    for (target, source) in binds {
        let inside = format!("/proc/{pid}/root{target}");
        let found = std::fs::metadata(&inside).map(|m| identity(&m));
        match found {
            Ok(found) if found == source.identity => {}
            Ok(_) => {
                return Err(MountError(format!(
                    "{} changed between the sandbox's check and the container's start (a directory or symlink was swapped): the container got something else at {target}, so nothing was run",
                    source.real.display()
                )));
            }
            Err(e) => {
                return Err(MountError(format!(
                    "cannot verify what the container has at {target} ({inside}: {e}); the sandbox needs a local Docker engine to check its mounts, so nothing was run"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _dir: tempfile::TempDir,
        home: PathBuf,
        policy: Policy,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(home.join(".agent-vault/ca")).unwrap();
        std::fs::create_dir_all(home.join("project/data")).unwrap();
        let policy = Policy::new(&home.join(".agent-vault"));
        Setup {
            _dir: dir,
            home,
            policy,
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
            s.home.join("project/../.agent-vault/ca"),
        ] {
            let spec = format!("{}:/mnt/x", source.display());
            let err = parse(&spec, &s.policy).unwrap_err();
            assert!(err.0.contains(".agent-vault"), "{spec}: {err}");
        }
    }

    #[test]
    fn system_directories_and_sockets_are_refused() {
        let s = setup();
        std::os::unix::fs::symlink("/etc", s.home.join("project/etc-link")).unwrap();
        for source in [
            PathBuf::from("/"),
            PathBuf::from("/etc"),
            PathBuf::from("/usr"),
            PathBuf::from("/var"),
            PathBuf::from("/proc/self"),
            PathBuf::from("/proc/self/root"),
            PathBuf::from("/dev"),
            PathBuf::from("/sys/kernel"),
            PathBuf::from("/run"),
            s.home.join("project/etc-link"),
        ] {
            let spec = format!("{}:/mnt/x", source.display());
            let err = parse(&spec, &s.policy).expect_err(&spec);
            assert!(err.0.contains("system directory"), "{spec}: {err}");
        }
        let socket_path = s.home.join("project/agent.sock");
        let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
        let err = parse(&format!("{}:/mnt/x", socket_path.display()), &s.policy).unwrap_err();
        assert!(err.0.contains("Unix socket"), "{err}");
        for shared in ["/tmp", "/var/tmp", "/tmp/../tmp"] {
            let err = parse(&format!("{shared}:/mnt/x"), &s.policy).unwrap_err();
            assert!(err.0.contains("shared temporary directory"), "{err}");
        }
    }

    /// A directory the agent made unreadable (it runs as the user, who may then still `cd`
    /// into it) is named, since what it holds cannot be checked. Root reads any directory,
    /// so this can only be seen as another user (CI runs the suite as root: there the walk
    /// lists it, and the other assertions above cover what it finds inside).
    #[test]
    fn a_directory_made_unreadable_during_a_run_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let s = setup();
        let root = s.home.join("project");
        let began = std::time::SystemTime::now();
        let hidden = root.join("hidden");
        std::fs::create_dir_all(hidden.join("inner")).unwrap();
        std::fs::write(hidden.join("inner/agent-vault.json"), "{}").unwrap();
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o311)).unwrap();
        let planted = planted_since(std::slice::from_ref(&root), began, 1000);
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o755)).unwrap();
        match nix::unistd::geteuid().is_root() {
            true => assert_eq!(
                planted.project_files,
                [hidden.join("inner/agent-vault.json")]
            ),
            false => assert_eq!(planted.unreadable, [hidden]),
        }
    }

    #[test]
    fn git_metadata_and_project_files_written_during_a_run_are_found() {
        let s = setup();
        let root = s.home.join("project");
        let old_repo = root.join("data/old/.git");
        std::fs::create_dir_all(old_repo.join("hooks")).unwrap();
        std::fs::write(old_repo.join("hooks/pre-commit"), "true").unwrap();
        std::fs::write(root.join("data/old/agent-vault.json"), "{}").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let began = std::time::SystemTime::now();
        let roots = [root.clone()];
        let planted = planted_since(&roots, began, 1000);
        assert!(planted.git_dirs.is_empty(), "{planted:?}");
        assert!(
            planted.project_files.is_empty() && !planted.partial,
            "{planted:?}"
        );
        // A new repository, and a hook changed in place in an old one; a project file made
        // in a subdirectory, and one rewritten in place.
        std::fs::create_dir_all(root.join("data/new/.git")).unwrap();
        std::fs::write(old_repo.join("hooks/pre-commit"), "evil").unwrap();
        std::fs::write(root.join("data/new/agent-vault.json"), "{}").unwrap();
        std::fs::write(root.join("data/old/agent-vault.json"), "{}").unwrap();
        // A directory laid out as a bare repository, which git uses as one.
        let bare = root.join("vendor/bare");
        for dir in ["objects", "refs"] {
            std::fs::create_dir_all(bare.join(dir)).unwrap();
        }
        std::fs::write(bare.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let planted = planted_since(&roots, began, 1000);
        assert_eq!(
            planted.git_dirs,
            [root.join("data/new/.git"), old_repo, bare]
        );
        assert_eq!(
            planted.project_files,
            [
                root.join("data/new/agent-vault.json"),
                root.join("data/old/agent-vault.json")
            ]
        );
        assert!(
            planted_since(&roots, began, 2).partial,
            "the budget ends the walk"
        );
        assert!(planted.unreadable.is_empty(), "{planted:?}");
    }

    #[test]
    fn good_mounts_resolve_and_keep_their_mode() {
        let s = setup();
        let spec = format!("{}:/mnt//data/./:ro", s.home.join("project/data").display());
        let mount = parse(&spec, &s.policy).unwrap();
        assert_eq!(mount.target, "/mnt/data");
        assert!(mount.read_only);
        assert!(!mount.source.through_symlink);
        assert_eq!(
            mount.bind(),
            format!("{}:/mnt/data:ro", s.home.join("project/data").display())
        );
        std::os::unix::fs::symlink(s.home.join("project/data"), s.home.join("shortcut")).unwrap();
        let linked = parse(
            &format!("{}:/data", s.home.join("shortcut").display()),
            &s.policy,
        )
        .unwrap();
        assert!(linked.source.through_symlink && !linked.read_only);
        assert_eq!(linked.source.real, s.home.join("project/data"));
    }

    #[test]
    fn the_opened_object_is_what_counts() {
        let s = setup();
        let data = s.home.join("project/data");
        let mount = parse(&format!("{}:/data", data.display()), &s.policy).unwrap();
        // Swapped after the check: the held identity still names the checked directory.
        std::fs::rename(&data, s.home.join("project/moved")).unwrap();
        std::os::unix::fs::symlink(s.home.join(".agent-vault"), &data).unwrap();
        let store = std::fs::metadata(s.home.join(".agent-vault")).unwrap();
        assert_ne!(mount.source.identity, identity(&store));
        let moved = std::fs::metadata(s.home.join("project/moved")).unwrap();
        assert_eq!(mount.source.identity, identity(&moved));
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
            let err = parse(&format!("{src}:{target}"), &s.policy).unwrap_err();
            assert!(err.0.contains("reserved"), "{target}: {err}");
        }
        for spec in [
            "only",
            "a:b:c:d",
            "relative:/mnt",
            &format!("{src}:relative"),
            &format!("{src}:/mnt/../etc"),
            &format!("{src}:/mnt:xx"),
            &format!("{src}:/mnt\n"),
            &format!("{src}\t:/mnt"),
        ] {
            assert!(parse(spec, &s.policy).is_err(), "{spec}");
        }
        assert!(
            parse(
                &format!("{}:/mnt", s.home.join("missing").display()),
                &s.policy
            )
            .is_err()
        );
    }
}
