//! The sandbox images, built through the Docker API from an in-memory tar of the files
//! embedded in the binary (`images/`, `firewall/`), tagged by a hash of their content and
//! build arguments, and reused while that hash is unchanged.
//!
//! No registry may be reachable: `AGENT_VAULT_SANDBOX_BASE_IMAGE` names the base image to build
//! on (default `debian:bookworm-slim`), which may be any local Debian-like image.

use std::collections::BTreeMap;
use std::io::Write;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::SandboxError;
use super::docker::failed;

pub const BASE_IMAGE_ENV: &str = "AGENT_VAULT_SANDBOX_BASE_IMAGE";
pub const CLAUDE_CODE_VERSION_ENV: &str = "AGENT_VAULT_CLAUDE_CODE_VERSION";
const DEFAULT_BASE: &str = "debian:bookworm-slim";

pub struct ImageSpec {
    repo: &'static str,
    /// (name in the build context, content, mode)
    files: &'static [(&'static str, &'static [u8], u32)],
    /// The build arguments the Dockerfile reads (others would only change the tag).
    args: &'static [&'static str],
}

pub const AGENT: ImageSpec = ImageSpec {
    repo: "agent-vault/agent",
    files: &[(
        "Dockerfile",
        include_bytes!("../../images/agent/Dockerfile"),
        0o644,
    )],
    args: &["BASE_IMAGE", "CLAUDE_CODE_VERSION"],
};

pub const FIREWALL: ImageSpec = ImageSpec {
    repo: "agent-vault/firewall",
    files: &[
        (
            "Dockerfile",
            include_bytes!("../../images/firewall/Dockerfile"),
            0o644,
        ),
        ("rules.sh", include_bytes!("../../firewall/rules.sh"), 0o755),
    ],
    args: &["BASE_IMAGE"],
};

/// Build arguments from the environment.
pub fn build_args() -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    let base = std::env::var(BASE_IMAGE_ENV).ok().filter(|v| !v.is_empty());
    args.insert(
        "BASE_IMAGE".into(),
        base.unwrap_or_else(|| DEFAULT_BASE.into()),
    );
    let claude = std::env::var(CLAUDE_CODE_VERSION_ENV)
        .ok()
        .filter(|v| !v.is_empty());
    args.insert(
        "CLAUDE_CODE_VERSION".into(),
        claude.unwrap_or_else(|| "latest".into()),
    );
    args
}

impl ImageSpec {
    fn relevant<'a>(&self, args: &'a BTreeMap<String, String>) -> BTreeMap<&'a str, &'a str> {
        args.iter()
            .filter(|(k, _)| self.args.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// `repo:<12 hex>` over the files and the build arguments it reads.
    pub fn tag(&self, args: &BTreeMap<String, String>) -> String {
        let mut hash = Sha256::new();
        for (name, content, mode) in self.files {
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(mode.to_le_bytes());
            hash.update(content);
            hash.update([0]);
        }
        for (key, value) in self.relevant(args) {
            hash.update(format!("{key}={value}\0").as_bytes());
        }
        format!("{}:{}", self.repo, &hex::encode(hash.finalize())[..12])
    }

    /// The build context: a tar of the embedded files with fixed metadata.
    pub fn context(&self) -> Result<Vec<u8>, SandboxError> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content, mode) in self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *content)
                .map_err(|e| {
                    SandboxError::Image(format!("cannot assemble the build context: {e}"))
                })?;
        }
        builder
            .into_inner()
            .map_err(|e| SandboxError::Image(format!("cannot assemble the build context: {e}")))
    }
}

/// Returns the tag of `spec`, building it first if the engine does not have it.
pub async fn ensure(
    docker: &Docker,
    spec: &ImageSpec,
    args: &BTreeMap<String, String>,
) -> Result<String, SandboxError> {
    let tag = spec.tag(args);
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let base = args.get("BASE_IMAGE").cloned().unwrap_or_default();
    eprintln!("agent-vault: building {tag} (once; base image {base})");
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .buildargs(
            &spec
                .relevant(args)
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build();
    let context = bytes::Bytes::from(spec.context()?);
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context)));
    let mut stderr = std::io::stderr();
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| build_error(&tag, &base, &e.to_string(), &log))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(build_error(&tag, &base, &detail, &log));
        }
        if let Some(line) = info.stream {
            log.push_str(&line);
            for part in line.lines().filter(|l| !l.trim().is_empty()) {
                let _ = writeln!(stderr, "  │ {part}");
            }
        }
    }
    docker
        .inspect_image(&tag)
        .await
        .map_err(failed(format!("inspect the image {tag} just built")))?;
    eprintln!("agent-vault: built {tag}");
    Ok(tag)
}

/// The entrypoint of a user-chosen image (the start gate runs it with the agent's command).
pub async fn entrypoint(docker: &Docker, image: &str) -> Result<Vec<String>, SandboxError> {
    let inspected = docker.inspect_image(image).await.map_err(|e| {
        SandboxError::Image(format!(
            "the image {image} is not available to the Docker engine ({}); build or load it first (no registry is contacted)",
            match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                other => other.to_string(),
            }
        ))
    })?;
    Ok(inspected
        .config
        .and_then(|config| config.entrypoint)
        .unwrap_or_default())
}

fn build_error(tag: &str, base: &str, message: &str, log: &str) -> SandboxError {
    let missing_base = [
        "pull access denied",
        "manifest unknown",
        "dial tcp",
        "no such host",
        "failed to resolve",
    ]
    .iter()
    .any(|needle| message.contains(needle));
    let hint = if missing_base {
        format!(
            "\nThe base image {base} is not available locally and no registry answered. Build or import a Debian-like image (for example with debootstrap and `docker import`) and name it in {BASE_IMAGE_ENV}."
        )
    } else if message.contains("claude-code") {
        format!(
            "\nClaude Code is installed from the npm registry. Where it cannot be reached, set {CLAUDE_CODE_VERSION_ENV}=none to build without it, or run an image that has it with --image."
        )
    } else {
        String::new()
    };
    let tail: Vec<String> = log.lines().rev().take(15).map(without_escapes).collect();
    let tail: Vec<String> = tail.into_iter().rev().collect();
    SandboxError::Image(format!(
        "building {tag} failed: {message}{hint}\n{}",
        tail.join("\n")
    ))
}

/// A build's output line without its terminal colour codes (`ESC[91m`) or other control
/// characters: it is quoted in an error message, which may not go to a terminal.
fn without_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: `[`, parameters, then a final letter.
            if chars.clone().next() == Some('[') {
                chars.by_ref().find(char::is_ascii_alphabetic);
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_claude_code_install_names_the_way_round_and_quotes_plain_text() {
        let error = build_error(
            "agent-vault/agent:1",
            "debian",
            "The command '/bin/sh -c npm install -g \"@anthropic-ai/claude-code@latest\"' returned a non-zero code: 1",
            "step 7\n\u{1b}[91mnpm error getaddrinfo ENOTFOUND registry.npmjs.org\u{1b}[0m\n",
        )
        .to_string();
        assert!(
            error.contains("AGENT_VAULT_CLAUDE_CODE_VERSION=none"),
            "{error}"
        );
        assert!(
            error.contains("\nnpm error getaddrinfo ENOTFOUND registry.npmjs.org"),
            "{error}"
        );
        assert!(
            !error.contains('\u{1b}') && !error.contains("[91m"),
            "{error}"
        );
    }

    #[test]
    fn tags_follow_content_and_arguments() {
        let mut args = BTreeMap::new();
        args.insert("BASE_IMAGE".to_owned(), "debian:bookworm-slim".to_owned());
        let a = FIREWALL.tag(&args);
        assert!(
            a.starts_with("agent-vault/firewall:") && a.len() == "agent-vault/firewall:".len() + 12
        );
        assert_eq!(a, FIREWALL.tag(&args), "stable");
        args.insert("BASE_IMAGE".to_owned(), "local/base:1".to_owned());
        assert_ne!(
            a,
            FIREWALL.tag(&args),
            "a different base is a different image"
        );
        assert_ne!(AGENT.tag(&args), FIREWALL.tag(&args));
        let firewall = FIREWALL.tag(&args);
        args.insert("CLAUDE_CODE_VERSION".to_owned(), "none".to_owned());
        assert_eq!(
            firewall,
            FIREWALL.tag(&args),
            "an argument the image ignores changes nothing"
        );
    }

    #[test]
    fn context_holds_the_embedded_files() {
        let tar = FIREWALL.context().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("Dockerfile".to_owned(), 0o644),
                ("rules.sh".to_owned(), 0o755)
            ]
        );
    }
}
