#!/usr/bin/env bash
# The Python packages the end-to-end tests drive as real clients (the official Anthropic and
# OpenAI SDKs, websockets, h2 for WebSockets over HTTP/2), installed from PyPI into a venv under target/. Idempotent: quick
# when the venv already has them. Needs python3 with venv (Debian: python3-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/e2e-venv
packages=(anthropic openai websockets h2)
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c "import anthropic, openai, websockets, h2" 2>/dev/null; then
  exit 0
fi
echo "e2e-python: installing ${packages[*]} into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}"
