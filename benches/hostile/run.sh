#!/usr/bin/env bash
# Hostile-client load (issue 18): a short, bounded run of slowloris heads, slow bodies,
# idle-connection floods, header floods, connection churn and HTTP/2 rapid reset against
# `cloakroomd --dev` (default [server] limits), on 127.0.0.1 only. Reports cloakroomd's
# RSS and open files, and the latency of one well-behaved caller, without the attack and
# during it. Ends every process it started.
#
#   benches/hostile/run.sh                 # 20 s baseline + 20 s under attack
#   DURATION=5 benches/hostile/run.sh      # shorter
#   CLOAKROOMD_BIN=path benches/hostile/run.sh   # another build (default: release, built if missing)
#   ATTACKERS=... see hostile.py --help (connection counts per attack)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-20}"
BIN="${CLOAKROOMD_BIN:-$ROOT/target/release/cloakroomd}"
if [[ -z "${CLOAKROOMD_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release -p cloakroomd >&2)
fi

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT="$(pick_port)"
ADMIN_PORT="$(pick_port)"
WORK="$(mktemp -d)"
BANNER="$WORK/banner.txt"

"$BIN" --dev --listen "127.0.0.1:$GW_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" >"$BANNER" 2>"$WORK/stderr.log" &
GW_PID=$!
cleanup() {
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
    grep -q CLOAKROOM_AGENT_TOKEN "$BANNER" 2>/dev/null && break
    sleep 0.1
done
TOKEN="$(sed -n "s/.*CLOAKROOM_AGENT_TOKEN='\(.*\)'.*/\1/p" "$BANNER")"
[[ -n "$TOKEN" ]] || { echo "cloakroomd did not start:"; cat "$WORK/stderr.log"; exit 1; }

python3 "$ROOT/benches/hostile/hostile.py" \
    --gateway "127.0.0.1:$GW_PORT" --pid "$GW_PID" --token "$TOKEN" --duration "$DURATION" "$@"
