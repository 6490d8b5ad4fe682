//! Reaching the Docker engine through its API (the local socket, or `DOCKER_HOST`).

use bollard::Docker;

use super::SandboxError;

/// Connects and agrees on an API version the engine speaks; a clear error otherwise.
pub async fn connect() -> Result<Docker, SandboxError> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let unavailable = |reason: String| SandboxError::DockerUnavailable {
        host: host.clone(),
        reason,
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unavailable(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(docker)
}

/// Wraps an engine error with what was being done.
pub fn failed(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
    let action = action.into();
    move |source| SandboxError::Docker {
        action,
        message: match source {
            bollard::errors::Error::DockerResponseServerError { message, .. } => message,
            other => other.to_string(),
        },
    }
}
