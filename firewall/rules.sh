#!/bin/bash
# agent-vault egress firewall for one sandbox run.
#
# Runs as root in the helper container that owns the run's network namespace. The agent's
# container joins this namespace with every capability dropped, so it can neither read nor
# change these rules. Policy: IPv4 and IPv6 default DROP; allowed are loopback (except
# Docker's embedded DNS at 127.0.0.11: no name resolution at all), replies to established
# connections, and TCP to the broker relay's two ports on the network gateway. Nothing else.
#
# Usage: rules.sh GATEWAY API_PORT PROXY_PORT CANARY_PORT
# CANARY_PORT is a listener on the gateway that must NOT be reachable: the self-test proves
# one allowed and one denied destination before the agent starts.
set -euo pipefail

GW=$1 API=$2 PROXY=$3 CANARY=$4
say() { echo "agent-vault-firewall: $*" >&2; }

# iptables-nft where the kernel has nf_tables, iptables-legacy otherwise.
pick() {
  for tool in "$1" "$1-legacy"; do
    if command -v "$tool" >/dev/null 2>&1 && "$tool" -S >/dev/null 2>&1; then echo "$tool"; return 0; fi
  done
  return 1
}

IPT=$(pick iptables) || { say "iptables does not work in this namespace"; exit 1; }

# One atomic iptables-restore per family (fast: one process, one commit). REJECT refuses the
# rest at once, so a blocked connection fails immediately instead of hanging the agent; where
# the kernel lacks it, the DROP policies alone still hold.
rules4() {
  cat <<EOF
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -d 127.0.0.11 -j DROP
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -p tcp -d $GW --dport $API -j ACCEPT
-A OUTPUT -p tcp -d $GW --dport $PROXY -j ACCEPT
$1
COMMIT
EOF
}
rules6() {
  cat <<EOF
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
$1
COMMIT
EOF
}
REJECT4=$'-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset\n-A OUTPUT -j REJECT'
rules4 "$REJECT4" | "$IPT-restore" 2>/dev/null || rules4 "" | "$IPT-restore" \
  || { say "installing the IPv4 rules failed"; exit 1; }

if IP6T=$(pick ip6tables); then
  rules6 "-A OUTPUT -j REJECT" | "$IP6T-restore" 2>/dev/null || rules6 "" | "$IP6T-restore" \
    || { say "installing the IPv6 rules failed"; exit 1; }
elif [ "$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo 1)" != 1 ]; then
  say "ip6tables does not work but IPv6 is enabled: refusing to run without IPv6 rules"
  exit 1
fi

# Agent home volume (mounted here only to hand it to the agent's user).
if [ -n "${AGENT_UID:-}" ] && [ -d /agent-home ]; then
  chown "$AGENT_UID:${AGENT_GID:-$AGENT_UID}" /agent-home
fi

probe() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
if ! probe "$GW" "$API"; then
  say "self-test failed: the broker relay at $GW:$API is unreachable"
  exit 1
fi
if probe "$GW" "$CANARY"; then
  say "self-test failed: $GW:$CANARY is reachable although it is not allowed"
  exit 1
fi
say "ready"
exec sleep infinity
