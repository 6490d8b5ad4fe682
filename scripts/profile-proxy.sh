#!/usr/bin/env bash
# A/B and instruction counts for the data path, between two release binaries: the harness
# behind the throughput work on issue 12. Timing on a shared 2-core VM drifts by ±8% within
# minutes, so compare only interleaved runs (`ab`), or count instructions (`callgrind`), which
# repeats to within ~1% whatever else the machine does.
#
#   scripts/profile-proxy.sh ab BIN_A BIN_B [ROUNDS]   oha through each in turn (16 conns, 5 s,
#       1 KiB, scrubbed): req/s and CPU µs per request of the broker, nginx and oha, and the
#       broker's over nginx's + oha's (steady when the VM's speed is not: compare that)
#   scripts/profile-proxy.sh ratio BIN [BIN...] [ROUNDS]   oha direct to nginx, then through
#       each broker in turn: each one's throughput ratio to that direct round, and each
#       process's CPU per request (the ratio the CPU alone would allow is
#       (nginx + oha direct) / (nginx + oha + broker brokered))
#   scripts/profile-proxy.sh perf BIN [SECONDS]        where the broker's time goes under oha,
#       kernel included (Debian's linux-perf; cpu-clock samples with call graphs)
#   scripts/profile-proxy.sh syscalls BIN              system calls and context switches per
#       request under oha (perf tracepoints)
#   scripts/profile-proxy.sh latency BIN [ROUNDS]      oha paced at 500 req/s (6 s, the first
#       left out: connection set-up), direct and through the broker in turn: p50, p99, p99.9
#       and the slowest request of each
#   scripts/profile-proxy.sh callgrind BIN             user-space instructions per request
#       (python requests on one keep-alive tunnel, 2,000 requests after a warm-up), without
#       the request log's SQLite work (it depends on the rate, hence on valgrind); a large
#       memcpy counts one instruction per byte there (`rep movsb`), far above its real cost
#
# Copy the binaries out of target/ first (a rebuild replaces them). Needs what
# scripts/bench-setup.sh installs, plus valgrind for `callgrind`. Files go to
# target/profile-proxy; the callgrind output stays there for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/target/profile-proxy
mkdir -p "$dir/www"
oha=$(command -v oha || echo "$HOME/.cargo/bin/oha")
declare -a servers=()
nginx_pid=""

cleanup() {
  for pid in "${servers[@]}" $nginx_pid; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# ticks PID: user and kernel CPU ticks of a process, as "USER,KERNEL".
ticks() { awk '{print $14 "," $15}' "/proc/$1/stat"; }

start_nginx() {
  head -c 1024 /dev/zero | tr '\0' a >"$dir/www/1k"
  if [ ! -f "$dir/leaf.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 30 -subj /CN=profile-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout "$dir/leaf.key" -out "$dir/leaf.csr" -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -out "$dir/leaf.pem" -days 30 -extfile "$dir/ext.cnf" 2>/dev/null
  fi
  upstream_port=$(free_port)
  chmod 755 "$dir" "$dir/www"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$upstream_port ssl http2;
    ssl_certificate $dir/leaf.pem;
    ssl_certificate_key $dir/leaf.key;
    location / { root $dir/www; }
  }
}
EOF
  /usr/sbin/nginx -c "$dir/nginx.conf" -e "$dir/nginx-error.log" &
  nginx_pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null --cacert "$dir/ca.pem" "https://127.0.0.1:$upstream_port/1k" && break; sleep 0.1; done
  cat /etc/ssl/certs/ca-certificates.crt "$dir/ca.pem" >"$dir/roots.pem"
}

# start_server NAME COMMAND...: a server with one bearer service on nginx; sets $mitm_port.
start_server() {
  local name=$1 home="$dir/home-$1"
  shift
  rm -rf "$home" && mkdir -p "$home"
  local api_port
  api_port=$(free_port)
  mitm_port=$(free_port)
  # The load comes from one token: the rate limits are raised far above it (they still run).
  env -i HOME="$home" PATH=/usr/bin:/bin SSL_CERT_FILE="$dir/roots.pem" \
    AGENT_VAULT_NETWORK_ALLOWLIST=127.0.0.0/8 \
    AGENT_VAULT_RATELIMIT_PROXY_RATE=1000000 AGENT_VAULT_RATELIMIT_PROXY_BURST=1000000 \
    AGENT_VAULT_RATELIMIT_PROXY_CONCURRENCY=10000 AGENT_VAULT_RATELIMIT_GLOBAL_CONCURRENCY=10000 \
    "$@" server --port "$api_port" --mitm-port "$mitm_port" >"$home/log" 2>&1 &
  servers+=($!)
  echo $! >"$home/pid"
  local api=http://127.0.0.1:$api_port
  for _ in $(seq 300); do curl -s -o /dev/null "$api/health" && break; sleep 0.1; done
  local json='python3 -c "import json,sys; print(json.load(sys.stdin)[\"token\"])"'
  local owner token
  owner=$(curl -s "$api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"profile@example.com","password":"profile-password"}' | eval "$json")
  curl -s -o /dev/null "$api/v1/vaults/default/credentials" -H "authorization: Bearer $owner" \
    -H 'content-type: application/json' -d '{"credentials":{"TOKEN":"profile-secret-0123456789"}}'
  curl -s -o /dev/null "$api/v1/vaults/default/services" -H "authorization: Bearer $owner" \
    -H 'content-type: application/json' \
    -d "{\"services\":[{\"host\":\"127.0.0.1\",\"port\":$upstream_port,\"auth\":{\"type\":\"bearer\",\"token\":\"TOKEN\"}}]}"
  token=$(curl -s "$api/v1/sessions" -H "authorization: Bearer $owner" \
    -H 'content-type: application/json' -d '{"vault":"default"}' | eval "$json")
  curl -s "$api/v1/mitm/ca.pem" >"$home/ca.pem"
  echo "$token" >"$home/token"
  echo "$mitm_port" >"$home/mitm_port"
}

# load NAME [SECONDS]: one oha round through server NAME.
load() {
  local home="$dir/home-$1" pid mitm
  pid=$(cat "$home/pid")
  mitm=$(cat "$home/mitm_port")
  local auth
  auth=$(printf '%s:default' "$(cat "$home/token")" | base64 -w0)
  local b0 n0 b1 n1 cpu
  b0=$(ticks "$pid")
  n0=$(ticks "$(pgrep -P "$nginx_pid" | head -1)")
  cpu=$({ /usr/bin/time -f '%U %S' "$oha" --no-tui --output-format json -c 16 -z "${2:-5}s" \
    --cacert "$home/ca.pem" -x "http://127.0.0.1:$mitm" --proxy-header "Proxy-Authorization: Basic $auth" \
    "https://127.0.0.1:$upstream_port/1k" >"$dir/oha.json"; } 2>&1 | tail -1)
  b1=$(ticks "$pid")
  n1=$(ticks "$(pgrep -P "$nginx_pid" | head -1)")
  python3 - "$1" "$cpu" "$b0" "$b1" "$n0" "$n1" "$(getconf CLK_TCK)" "$dir/oha.json" <<'EOF'
import json, sys
name, cpu, b0, b1, n0, n1, hz, report = sys.argv[1:]
summary = json.load(open(report))["summary"]
done = summary["requestsPerSec"] * summary["total"]
per = lambda ticks: ticks * 1e6 / int(hz) / done
delta = lambda a, b: [int(y) - int(x) for x, y in zip(a.split(","), b.split(","))]
user, system = map(float, cpu.split())
broker_user, broker_kernel = map(per, delta(b0, b1))
broker, nginx, oha = broker_user + broker_kernel, per(sum(delta(n0, n1))), (user + system) * 1e6 / done
# The VM's speed swings between rounds; broker CPU over nginx + oha CPU in the same round
# does not, and it is what the throughput ratio depends on.
print(f"{name:>12}: {summary['requestsPerSec']:8.0f} req/s   CPU µs per request: broker "
      f"{broker:5.1f} (user {broker_user:4.1f})  nginx {nginx:5.1f}  oha {oha:5.1f}   "
      f"broker/(nginx+oha) {broker / (nginx + oha):.3f}")
EOF
}

# under_perf BIN SECONDS PERF_ARGS...: `perf PERF_ARGS` on a server running BIN for SECONDS of
# oha load, after a short warm-up.
under_perf() {
  command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
  local bin=$1 seconds=$2 recorder
  shift 2
  start_nginx
  start_server perf "$(realpath "$bin")"
  load perf 2 >/dev/null
  perf "$@" -p "$(cat "$dir/home-perf/pid")" -- sleep "$seconds" &
  recorder=$!
  load perf "$seconds"
  wait "$recorder"
}

# direct [SECONDS]: one oha round straight to nginx: req/s and nginx's and oha's CPU per request.
direct() {
  local n0 n1 cpu
  n0=$(ticks "$(pgrep -P "$nginx_pid" | head -1)")
  cpu=$({ /usr/bin/time -f '%U %S' "$oha" --no-tui --output-format json -c 16 -z "${1:-5}s" \
    --cacert "$dir/ca.pem" "https://127.0.0.1:$upstream_port/1k" >"$dir/direct.json"; } 2>&1 | tail -1)
  n1=$(ticks "$(pgrep -P "$nginx_pid" | head -1)")
  python3 - "$cpu" "$n0" "$n1" "$(getconf CLK_TCK)" "$dir/direct.json" <<'EOF'
import json, sys
cpu, n0, n1, hz, report = sys.argv[1:]
summary = json.load(open(report))["summary"]
done = summary["requestsPerSec"] * summary["total"]
nginx = sum(int(b) - int(a) for a, b in zip(n0.split(","), n1.split(","))) * 1e6 / int(hz) / done
oha = sum(map(float, cpu.split())) * 1e6 / done
print(f"{'direct':>12}: {summary['requestsPerSec']:8.0f} req/s   CPU µs per request: "
      f"{'':22}nginx {nginx:5.1f}  oha {oha:5.1f}")
EOF
}

case "${1:-}" in
ab)
  [ $# -ge 3 ] || { echo "usage: $0 ab BIN_A BIN_B [ROUNDS]" >&2; exit 2; }
  start_nginx
  start_server A "$(realpath "$2")"
  start_server B "$(realpath "$3")"
  for _ in $(seq "${4:-3}"); do load A; load B; done
  ;;
ratio)
  [ $# -ge 2 ] || { echo "usage: $0 ratio BIN [BIN...] [ROUNDS]" >&2; exit 2; }
  shift
  rounds=3
  if [ $# -ge 2 ] && [[ ${!#} =~ ^[0-9]+$ ]]; then rounds=${!#}; set -- "${@:1:$#-1}"; fi
  start_nginx
  names=()
  for bin in "$@"; do
    name=$(basename "$bin")
    # Two builds of one name (target/release of two checkouts) each get their own server.
    [[ " ${names[*]} " == *" $name "* ]] && name="$name-${#names[@]}"
    start_server "$name" "$(realpath "$bin")"
    load "$name" 2 >/dev/null
    names+=("$name")
  done
  for _ in $(seq "$rounds"); do
    direct
    for name in "${names[@]}"; do
      load "$name"
      python3 -c 'import json, sys; d, b = (json.load(open(f))["summary"]["requestsPerSec"] for f in sys.argv[2:]); print("%12s: %.2f" % ("ratio " + sys.argv[1], b / d))' \
        "$name" "$dir/direct.json" "$dir/oha.json"
    done
  done
  ;;
perf)
  [ $# -ge 2 ] || { echo "usage: $0 perf BIN [SECONDS]" >&2; exit 2; }
  under_perf "$2" "${3:-10}" record -q -e cpu-clock -F 2000 -g -o "$dir/perf.data"
  perf report -i "$dir/perf.data" --no-children --sort dso,sym --percent-limit 0.7 --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -60
  echo "profile: $dir/perf.data (perf report -i …)"
  ;;
syscalls)
  [ $# -ge 2 ] || { echo "usage: $0 syscalls BIN" >&2; exit 2; }
  under_perf "$2" 5 stat -x, -o "$dir/stat.csv" -e context-switches,cpu-migrations,$(
    printf 'syscalls:sys_enter_%s,' writev write recvfrom read epoll_wait futex sched_yield | sed 's/,$//')
  python3 - "$dir/stat.csv" "$dir/oha.json" <<'PY'
import csv, json, sys
summary = json.load(open(sys.argv[2]))["summary"]
done = summary["requestsPerSec"] * summary["total"]
for row in csv.reader(line for line in open(sys.argv[1]) if line.strip() and not line.startswith("#")):
    print(f"{row[2]:>32}: {float(row[0]) / done:6.2f} per request")
PY
  ;;
latency)
  [ $# -ge 2 ] || { echo "usage: $0 latency BIN [ROUNDS]" >&2; exit 2; }
  start_nginx
  start_server L "$(realpath "$2")"
  home="$dir/home-L"
  auth=$(printf '%s:default' "$(cat "$home/token")" | base64 -w0)
  # Each request is stored (oha --db-url) and those started in the first second are left
  # out: the 16 connections' TLS handshakes queue behind one another there (tens of ms), and
  # in a 5 s run they alone would set the p99 of what is meant to be keep-alive latency.
  paced() {
    rm -f "$dir/latency.db"
    "$oha" --no-tui --output-format quiet -c 16 -z 6s -q 500 --latency-correction \
      --db-url "$dir/latency.db" "$@" "https://127.0.0.1:$upstream_port/1k" >/dev/null 2>"$dir/oha.err" ||
      { cat "$dir/oha.err" >&2; exit 1; }
    python3 - "$dir/latency.db" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT duration FROM oha WHERE start >= 1 ORDER BY duration")
d = [r[0] * 1e3 for r in rows]
at = lambda q: d[min(len(d) - 1, int(len(d) * q))]
print(" ".join(f"{k} {at(q):6.3f}" for k, q in (("p50", .5), ("p99", .99), ("p99.9", .999))) + f"  max {d[-1]:6.3f} ms")
PY
  }
  for _ in $(seq "${3:-3}"); do
    printf '%12s: ' direct; paced --cacert "$dir/ca.pem"
    printf '%12s: ' broker
    paced --cacert "$home/ca.pem" -x "http://127.0.0.1:$(cat "$home/mitm_port")" \
      --proxy-header "Proxy-Authorization: Basic $auth"
  done
  ;;
callgrind)
  [ $# -ge 2 ] || { echo "usage: $0 callgrind BIN" >&2; exit 2; }
  command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
  start_nginx
  out="$dir/callgrind.$(basename "$2").out"
  start_server cg valgrind --tool=callgrind --callgrind-out-file="$out" "$(realpath "$2")"
  home="$dir/home-cg"
  requests() {
    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE python3 - "$1" "$(cat "$home/token")" "$(cat "$home/mitm_port")" \
      "$home/ca.pem" "https://127.0.0.1:$upstream_port/1k" <<'EOF'
import sys, requests
count, token, port, ca, url = sys.argv[1:]
session = requests.Session()
session.proxies = {"https": f"http://{token}:default@127.0.0.1:{port}"}
session.verify = ca
for _ in range(int(count)):
    assert session.get(url).status_code == 200
EOF
  }
  requests 300
  callgrind_control -z "$(cat "$home/pid")" >/dev/null
  requests 2000
  callgrind_control -d "$(cat "$home/pid")" >/dev/null
  callgrind_annotate --inclusive=yes --threshold=100 "$out".* 2>/dev/null | python3 -c '
import re, sys
total = log = 0
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+)\s", line)
    if not m:
        continue
    value = int(m.group(1).replace(",", ""))
    if "PROGRAM TOTALS" in line:
        total = value
    elif "request_log::insert_all [" in line or "rusqlite::Connection::execute_batch [" in line:
        log += value
print(f"{(total - log) / 2000:.0f} instructions per request (the request log aside: {log / 2000:.0f})")'
  echo "profile: $(ls "$out".*)"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
