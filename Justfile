# Developer tasks. `just` lists them; every recipe is a plain cargo command underneath.

default:
    @just --list

# Build the release binary (target/release/agent-vault)
build:
    cargo build --release --locked

# Install agent-vault into ~/.cargo/bin and start the server in the foreground
serve:
    cargo install --locked --path . && agent-vault server

# The whole test suite (unit + end-to-end through the real binary)
test:
    cargo test --locked

# Only the end-to-end suite
e2e:
    cargo test --locked --test e2e

# Formatting and lints, as CI runs them
lint:
    cargo fmt --check
    cargo clippy --locked --all-targets -- -D warnings

# Benchmarks: prints latency and throughput figures (release build). The proxy table
# compares agent-vault with a direct connection, nginx as a reverse proxy and mitmproxy on
# a local nginx.
bench:
    scripts/bench-setup.sh
    cargo bench --locked --bench api
    cargo bench --locked --bench proxy
    cargo bench --locked --bench ratelimit
    cargo bench --locked --bench store

# The data path under a profiler: `just profile-proxy ab OLD NEW` (two release builds under
# interleaved load, CPU per request), `callgrind BIN`, `perf BIN` or `syscalls BIN`
profile-proxy *ARGS:
    scripts/bench-setup.sh
    scripts/profile-proxy.sh {{ARGS}}

# Start-up cost of the container sandbox against a plain `docker run` (needs Docker)
bench-sandbox:
    scripts/bench-sandbox.sh

# Coverage-guided fuzzing of the parsers that read untrusted input (fuzz/; libFuzzer through
# cargo-fuzz, without a sanitizer, so the stable toolchain builds it): each target for SECS
# seconds, or `just fuzz 600 scrub` for one. Findings land in fuzz/artifacts/<target>/.
fuzz SECS="120" *TARGETS="authority services scrub rewrite proxy_auth settings":
    cargo install --locked cargo-fuzz
    for t in {{TARGETS}}; do cargo fuzz run -s none --fuzz-dir fuzz "$t" -- -max_total_time={{SECS}} || exit 1; done

# Everything CI does, from a fresh machine
ci:
    .ci/run
