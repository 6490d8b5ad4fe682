#!/usr/bin/env bash
# Tools the proxy benchmark drives: Debian's nginx (the upstream), oha (the load generator,
# from crates.io) and mitmproxy (the comparison, from PyPI, in a venv under target/).
# Idempotent: quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/nginx ] || ! command -v curl >/dev/null || ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  echo "bench-setup: installing nginx-light, curl, python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx-light curl python3-venv ca-certificates
fi
if ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  echo "bench-setup: cargo install oha"
  cargo install --locked oha
fi
venv=target/bench-venv
if [ ! -x "$venv/bin/mitmdump" ]; then
  echo "bench-setup: installing mitmproxy into $venv"
  python3 -m venv "$venv"
  # zstandard from a wheel: its source build fails with recent compilers.
  "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=zstandard mitmproxy
fi
