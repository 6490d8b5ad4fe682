#!/usr/bin/env bash
# Start-up cost of the container sandbox: median wall time of N runs each of
#   docker run --rm IMAGE true                                   (the yardstick)
#   agent-vault vault run --sandbox=container --image IMAGE -- true   (firewall on: the default)
#   ... --no-firewall                                            (debugging only)
#   agent-vault vault run -- true                                (process mode)
# with warm images, in one run. Sandbox runs follow each other after a short pause (as an
# agent's commands would), so the ready slots the background maintainer keeps are in play;
# SANDBOX_PAUSE_MS sets the pause (default 1000). Uses a throw-away HOME and its own ports,
# so it never touches your ~/.agent-vault.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-10}"
image="${IMAGE:-agent-vault-test/base:latest}"
cargo build --release --locked -q
bin="$PWD/target/release/agent-vault"
if [ -z "${AGENT_VAULT_SANDBOX_BASE_IMAGE:-}" ]; then
  # No registry here: the firewall helper image builds on the local Debian image.
  scripts/build-test-image.sh >/dev/null
  export AGENT_VAULT_SANDBOX_BASE_IMAGE=agent-vault-test/base:latest
fi

home="$(mktemp -d)"
workspace="$(mktemp -d)" # mounted at /workspace; must not contain the store
export HOME="$home" AGENT_VAULT_ADDR=http://127.0.0.1:24321
cleanup() { "$bin" server stop >/dev/null 2>&1 || true; rm -rf "$home" "$workspace"; }
trap cleanup EXIT
"$bin" server -d --port 24321 --mitm-port 24322 </dev/null >/dev/null 2>&1
echo bench-password | "$bin" auth register --email bench@example.com --password-stdin >/dev/null

pause_ms="${SANDBOX_PAUSE_MS:-1000}"
# Median wall time in milliseconds of N runs of a command.
median_ms() {
  local times=()
  for _ in $(seq "$runs"); do
    sleep "$(awk "BEGIN {print $pause_ms / 1000}")"
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 </dev/null
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

cd "$workspace"
# Warm both paths once (image build, firewall image, CA).
"$bin" vault run --sandbox=container --image "$image" -- true </dev/null >/dev/null 2>&1
docker run --rm "$image" true

plain=$(median_ms docker run --rm "$image" true)
sandbox=$(median_ms "$bin" vault run --sandbox=container --image "$image" -- true)
open=$(median_ms "$bin" vault run --sandbox=container --no-firewall --image "$image" -- true)
process=$(median_ms "$bin" vault run -- true)
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $plain}"; }
echo "median of $runs runs, image $image, ${pause_ms} ms between runs:"
echo "  docker run --rm IMAGE true                              ${plain} ms"
echo "  vault run --sandbox=container -- true (firewall)        ${sandbox} ms  ($(ratio "$sandbox")x)"
echo "  vault run --sandbox=container --no-firewall -- true     ${open} ms  ($(ratio "$open")x)"
echo "  vault run -- true (process mode)                        ${process} ms"
