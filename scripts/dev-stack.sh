#!/usr/bin/env bash
# One command for the development stack (docker-compose.yml): builds the release binary and
# the local Debian base image when needed, then starts the server and the sandboxed demo
# agent. Extra arguments go to `docker-compose up` (e.g. -d).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
if [ -z "${AGENT_VAULT_BASE_IMAGE:-}" ]; then
  scripts/build-test-image.sh >/dev/null
  export AGENT_VAULT_BASE_IMAGE=agent-vault-test/base:latest
fi
if docker compose version >/dev/null 2>&1; then
  exec docker compose up --build "$@"
elif command -v docker-compose >/dev/null; then
  exec docker-compose up --build "$@"
else
  echo "error: needs Docker Compose: install the docker-compose-plugin (or docker-compose) package" >&2
  exit 1
fi
