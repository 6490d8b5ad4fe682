//! `install.sh` as a user runs it: from a release archive served by a local HTTP server the
//! test runs (checked against its `.sha256`), the refusals, the from-source decision, and no
//! request beyond the archive and its checksum (no beacon).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{Run, run_command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");

/// A local HTTP server over `dir` whose log records every request.
struct Files {
    child: std::process::Child,
    port: u16,
}

impl Files {
    fn serve(dir: &Path) -> Self {
        let port = crate::harness::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// The request lines it served.
    fn requests(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let output = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect()
    }
}

fn install(envs: &[(&str, &str)], args: &[&str], script: &str) -> Run {
    // By path: given a PATH in `envs`, Command would look for the shell there.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(script)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .envs(envs.iter().copied());
    run_command(cmd, "")
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn install_sh_from_a_checked_archive_and_nothing_else() {
    let site = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    std::fs::copy(crate::harness::BIN, staging.path().join("agent-vault")).unwrap();
    let archive = site.path().join("agent-vault-test-linux.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(staging.path())
        .arg("agent-vault")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        site.path().join("agent-vault-test-linux.tar.gz.sha256"),
        format!("{}  agent-vault-test-linux.tar.gz\n", sha256(&archive)),
    )
    .unwrap();
    // Any bytes do: the checksum beside them never matches.
    std::fs::write(site.path().join("tampered.tar.gz"), b"not the release").unwrap();
    std::fs::write(
        site.path().join("tampered.tar.gz.sha256"),
        format!("{}  x\n", "0".repeat(64)),
    )
    .unwrap();
    let files = Files::serve(site.path());
    let url = format!(
        "http://127.0.0.1:{}/agent-vault-test-linux.tar.gz",
        files.port
    );
    let bin = tempfile::tempdir().unwrap();
    let dir = bin.path().join("bin").display().to_string();

    let run = install(
        &[
            ("AGENT_VAULT_ARCHIVE_URL", &url),
            ("AGENT_VAULT_INSTALL_DIR", &dir),
            ("AGENT_VAULT_NO_TELEMETRY", "1"),
        ],
        &[],
        SCRIPT,
    );
    assert!(run.status.success(), "{run}");
    assert!(run.stderr.contains("sends no telemetry"), "{run}");
    assert!(run.stdout.starts_with("agent-vault "), "{run}");
    let installed = Command::new(bin.path().join("bin/agent-vault"))
        .arg("version")
        .output()
        .unwrap();
    assert!(installed.status.success());

    // A checksum that does not match installs nothing.
    let other = tempfile::tempdir().unwrap();
    let other_dir = other.path().join("bin").display().to_string();
    let tampered = format!("http://127.0.0.1:{}/tampered.tar.gz", files.port);
    let refused = install(
        &[
            ("AGENT_VAULT_ARCHIVE_URL", &tampered),
            ("AGENT_VAULT_INSTALL_DIR", &other_dir),
        ],
        &[],
        SCRIPT,
    );
    assert!(
        !refused.status.success() && refused.stderr.contains("checksum mismatch"),
        "{refused}"
    );
    assert!(!other.path().join("bin/agent-vault").exists());

    let requests = files.requests();
    assert_eq!(
        requests,
        vec![
            "GET /agent-vault-test-linux.tar.gz HTTP/1.1",
            "GET /agent-vault-test-linux.tar.gz.sha256 HTTP/1.1",
            "GET /tampered.tar.gz HTTP/1.1",
            "GET /tampered.tar.gz.sha256 HTTP/1.1",
        ],
        "requests beyond the archives and their checksums"
    );
}

#[test]
fn install_sh_builds_from_source_or_says_how() {
    let bin = tempfile::tempdir().unwrap();
    let dir = bin.path().display().to_string();
    // In a checkout without an archive: cargo builds this checkout.
    let plan = install(&[("AGENT_VAULT_INSTALL_DIR", &dir)], &["--dry-run"], SCRIPT);
    assert!(plan.status.success(), "{plan}");
    assert!(
        plan.stderr.contains("building from this checkout")
            && plan
                .stderr
                .contains("would run: cargo build --release --locked"),
        "{plan}"
    );
    // Outside one, with no source named: a clear way forward, nothing installed.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("install.sh");
    std::fs::copy(SCRIPT, &copy).unwrap();
    let lost = install(
        &[("AGENT_VAULT_INSTALL_DIR", &dir)],
        &[],
        &copy.display().to_string(),
    );
    assert!(
        !lost.status.success() && lost.stderr.contains("AGENT_VAULT_SOURCE"),
        "{lost}"
    );
    // With cargo but no C compiler or make: says what to install before any build starts.
    let tools = tempfile::tempdir().unwrap();
    for tool in ["uname", "tr", "id", "cargo"] {
        let real = which(tool);
        std::os::unix::fs::symlink(real, tools.path().join(tool)).unwrap();
    }
    let no_cc = install(
        &[
            ("PATH", &tools.path().display().to_string()),
            ("AGENT_VAULT_INSTALL_DIR", &dir),
        ],
        &[],
        SCRIPT,
    );
    assert!(
        !no_cc.status.success()
            && no_cc.stderr.contains("cc is missing")
            && no_cc.stderr.contains("apt-get install gcc make"),
        "{no_cc}"
    );
    let bad = install(&[], &["--frobnicate"], SCRIPT);
    assert_eq!(bad.status.code(), Some(2), "{bad}");
    assert!(std::fs::read_dir(bin.path()).unwrap().next().is_none());
}

/// Where `tool` is on this machine's PATH.
fn which(tool: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH"))
}
