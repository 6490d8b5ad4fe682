#!/usr/bin/env bash
# Builds the Debian image the sandbox tests run on, from Debian packages only (no container
# registry is needed): debootstrap a minimal bookworm and `docker import` it. Tagged by the
# package list and reused; `agent-vault-test/base:latest` always points at it.
set -euo pipefail

PACKAGES="curl,ca-certificates,python3,python3-requests,iptables,iproute2,procps,git,nodejs"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TAG="agent-vault-test/base:$(printf 'bookworm %s' "$PACKAGES" | sha256sum | cut -c1-12)"

if ! docker image inspect "$TAG" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "building $TAG with debootstrap (about a minute)" >&2
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >/dev/null
  tar -C "$root" -c . | docker import - "$TAG" >/dev/null
fi
docker tag "$TAG" agent-vault-test/base:latest
echo "$TAG"
