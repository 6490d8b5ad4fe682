#!/bin/sh
# Installs the agent-vault binary.
#
#   sh install.sh [--dry-run]                      # from a checkout: builds it with cargo
#   curl -fsSL <url>/install.sh | sh               # from a published release archive
#
# Where the binary comes from, in order:
#   1. a release archive: AGENT_VAULT_ARCHIVE_URL, or, when AGENT_VAULT_RELEASES names where
#      releases are published, <releases>/v<version>/agent-vault-<version>-<os>-<arch>.tar.gz.
#      The archive must come with <archive URL>.sha256; a mismatch installs nothing.
#   2. otherwise it is built from source with cargo: this checkout when the script runs from
#      one, else the git repository AGENT_VAULT_SOURCE names.
#
# Settings: AGENT_VAULT_INSTALL_DIR (default /usr/local/bin as root, else ~/.local/bin),
# AGENT_VAULT_VERSION (release to fetch; default: latest).
#
# Telemetry: none. This script sends no install or upgrade beacon and never did; it reads
# AGENT_VAULT_NO_TELEMETRY (the reference installer's opt-out) only to confirm that. The only
# network requests it makes are the archive and its checksum, or cargo's own downloads.
set -eu

dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h | --help)
      sed -n '2,22p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install.sh: unknown argument \"$arg\" (try --help)" >&2
      exit 2
      ;;
  esac
done

say() { echo "install.sh: $*" >&2; }
fail() {
  say "$*"
  exit 1
}
run() {
  if [ "$dry_run" = 1 ]; then say "would run: $*"; else "$@"; fi
}

if [ -n "${AGENT_VAULT_NO_TELEMETRY:-}" ]; then
  say "AGENT_VAULT_NO_TELEMETRY is set; agent-vault's installer sends no telemetry in any case"
else
  say "no telemetry is sent (this installer has no install beacon)"
fi

if [ -n "${AGENT_VAULT_INSTALL_DIR:-}" ]; then
  bindir=$AGENT_VAULT_INSTALL_DIR
elif [ "$(id -u)" = 0 ]; then
  bindir=/usr/local/bin
else
  bindir="${HOME:?HOME is not set; set AGENT_VAULT_INSTALL_DIR}/.local/bin"
fi

os=$(uname -s | tr '[:upper:]' '[:lower:]')
arch=$(uname -m)
case "$arch" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
esac

archive_url=${AGENT_VAULT_ARCHIVE_URL:-}
if [ -z "$archive_url" ] && [ -n "${AGENT_VAULT_RELEASES:-}" ]; then
  version=${AGENT_VAULT_VERSION:-latest}
  archive_url="${AGENT_VAULT_RELEASES%/}/v$version/agent-vault-$version-$os-$arch.tar.gz"
fi

fetch() { # URL FILE
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --proto '=https,http' -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    fail "neither curl nor wget is installed; install one of them"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    fail "no sha256sum or shasum to check the archive with"
  fi
}

install_binary() { # FILE
  run mkdir -p "$bindir"
  run install -m 0755 "$1" "$bindir/agent-vault"
  if [ "$dry_run" = 1 ]; then
    say "would install $bindir/agent-vault"
  else
    say "installed $bindir/agent-vault"
  fi
  case ":${PATH:-}:" in
    *":$bindir:"*) ;;
    *) say "note: $bindir is not on your PATH; add it, e.g. export PATH=\"$bindir:\$PATH\"" ;;
  esac
}

if [ -n "$archive_url" ]; then
  say "installing from the release archive $archive_url"
  if [ "$dry_run" = 1 ]; then
    say "would download it and $archive_url.sha256, check it, and install agent-vault into $bindir"
    exit 0
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  fetch "$archive_url" "$work/archive.tar.gz" || fail "cannot download $archive_url"
  fetch "$archive_url.sha256" "$work/archive.sha256" || fail "cannot download $archive_url.sha256 (every archive is published with one)"
  expected=$(cut -d' ' -f1 <"$work/archive.sha256" | tr -d '[:space:]')
  actual=$(sha256_of "$work/archive.tar.gz")
  [ "$expected" = "$actual" ] || fail "checksum mismatch for $archive_url (expected $expected, got $actual); nothing was installed"
  mkdir "$work/unpacked"
  tar -xzf "$work/archive.tar.gz" -C "$work/unpacked"
  binary=$(find "$work/unpacked" -type f -name agent-vault | head -n 1)
  [ -n "$binary" ] || fail "the archive holds no agent-vault binary; nothing was installed"
  install_binary "$binary"
  "$bindir/agent-vault" version
  exit 0
fi

command -v cargo >/dev/null 2>&1 || fail "no release archive to install from and no cargo to build with: install Rust (https://rustup.rs), or set AGENT_VAULT_ARCHIVE_URL"
for tool in cc make; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "building needs a C compiler and make (SQLite, ring and jemalloc are built from source) and $tool is missing: install them (Debian: apt-get install gcc make), or set AGENT_VAULT_ARCHIVE_URL"
done

script_dir=$(cd "$(dirname "$0")" 2>/dev/null && pwd || true)
if [ -n "$script_dir" ] && grep -qs '^name = "agent-vault"' "$script_dir/Cargo.toml"; then
  say "building from this checkout ($script_dir) with cargo (about 15-20 minutes on two cores)"
  # From inside the checkout, so cargo reads its .cargo/config.toml (SQLite's build flags).
  cd "$script_dir"
  run cargo build --release --locked --manifest-path "$script_dir/Cargo.toml"
  install_binary "$script_dir/target/release/agent-vault"
elif [ -n "${AGENT_VAULT_SOURCE:-}" ]; then
  say "building from $AGENT_VAULT_SOURCE with cargo (about 15-20 minutes on two cores)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  run cargo install --locked --git "$AGENT_VAULT_SOURCE" --root "$work" agent-vault
  install_binary "$work/bin/agent-vault"
else
  fail "no release archive is published for $os/$arch yet and this script is not in a checkout: clone the repository and run ./install.sh there, or set AGENT_VAULT_SOURCE to its git URL (or AGENT_VAULT_ARCHIVE_URL to an archive)"
fi
if [ "$dry_run" = 0 ]; then
  "$bindir/agent-vault" version
fi
