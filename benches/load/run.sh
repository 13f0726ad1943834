#!/usr/bin/env bash
# End-to-end load benchmark of Cloakroom (issue 8). Runs in one go, on 127.0.0.1 only,
# with bounded durations; stops by itself and ends every process it started.
#
#   benches/load/run.sh            # full run: 20 s per measurement (~4 minutes)
#   DURATION=5 benches/load/run.sh # shorter, for trying the script out
#   SKIP_OHA=1 ...                 # do not build oha when it is missing (no fixed-rate run)
#   PROFILE=1 ...                  # perf record cloakroomd during its saturating run
#   QUICK=1 ...                    # only (c)'s saturating run and its CPU per call
#                                  # (for trying an optimisation; no table is written)
#   STAT=1 ...                     # perf stat cloakroomd during (c) (task-clock, and
#                                  # instructions where the CPU exposes counters)
#   GW_THREADS=N ...               # cloakroomd's serving threads, server.workers (default: cores)
#   QUICK=1 QUICK_RATE=R ...       # only fixed-rate runs of (a) and (c) at R req/s (oha)
#   ... OHA_DB=1                   # with QUICK_RATE: keep every request's times (oha --db-url)
#                                  # and split the latency into waiting and service
#                                  # (benches/load/oha_tail.py)
#   QUICK=1 QUICK_C1=1 ...         # only (a) and (c) with one connection (wrk -c1)
#   QUICK=1 QUICK_STREAM=1 ...     # only the 64/256 MiB streams through cloakroomd (MB/s, peak RSS)
#   CALLGRIND=1 ...                # cloakroomd (one serving thread) under valgrind's callgrind for
#                                  # CALLS calls (default 3000) on one connection: instructions
#                                  # per call, repeatable whatever else the machine is doing
#   CLOAKROOMD_BIN=path ...        # run this cloakroomd binary (A/B runs) instead of the build
#                                  # (builds before server.workers: leave GW_THREADS unset)
#
# Measures, with wrk (Debian) as the load generator:
#   (a) the upstream directly (a fixed 1 KiB JSON answer over hyper, load/load.rs),
#   (b) nginx (Debian) as a plain reverse proxy with keepalive to the upstream,
#   (reference) a bare hyper reverse proxy (load/load.rs), the floor of hyper proxying,
#   (c) cloakroomd with every layer on: API-key identity, 50 policy rules, one
#       placeholder substituted per call (X-Api-Key header), masking with 1,000 secrets,
#       audit in batched mode (embedded segment store, bodies recorded);
# then a fixed-rate run (oha -q, from crates.io) at half of (c)'s saturating rate against
# (a), (b) and (c) for the latency cloakroomd adds at p50/p99; then a 64 MiB streamed
# response through a freshly started cloakroomd: MB/s and peak RSS (VmHWM).
# Results go to stdout and to $OUT (default: target/load-bench/results.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-20}"
[ "${CALLGRIND:-0}" = 1 ] && GW_THREADS="${GW_THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-32}"
SECRETS="${SECRETS:-1000}"
RULES="${RULES:-50}"
RECORD_BODIES="${RECORD_BODIES:-true}"   # false: audit records without bodies (for comparison only)
WORK="${WORK:-$ROOT/target/load-bench}"
OUT="${OUT:-$WORK/results.md}"
UP_PORT="${UP_PORT:-19101}"
NGINX_PORT="${NGINX_PORT:-19102}"
GW_PORT="${GW_PORT:-19103}"
ADMIN_PORT="${ADMIN_PORT:-19104}"
BARE_PORT="${BARE_PORT:-19105}"
API_KEY="ck_load_bench_agent_key_0123456789"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    if [ -f "$WORK/nginx/nginx.pid" ]; then
        kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# --- tools -------------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v curl >/dev/null || need_apt+=(curl)
if [ "${#need_apt[@]}" -gt 0 ]; then
    log "installing ${need_apt[*]} from Debian"
    apt-get install -y "${need_apt[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${need_apt[@]}" >/dev/null; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
OHA="$(command -v oha || true)"
[ -z "$OHA" ] && [ -x "$HOME/.cargo/bin/oha" ] && OHA="$HOME/.cargo/bin/oha"
if [ -z "$OHA" ] && [ "${SKIP_OHA:-0}" != 1 ] && [ "${QUICK:-0}" != 1 ]; then
    log "installing oha from crates.io (cargo install oha --locked)"
    mkdir -p "$WORK"
    if timeout 1200 cargo install oha --locked >"$WORK/oha-install.log" 2>&1; then
        OHA="$HOME/.cargo/bin/oha"
    else
        log "oha did not build here (see $WORK/oha-install.log): the fixed-rate run is skipped"
    fi
fi

# --- build -------------------------------------------------------------------------
log "building release binaries (cloakroomd, load helper)"
(cd "$ROOT" && cargo build --release -q -p cloakroomd && cargo build --release -q -p cloakroom-benches --example load)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CLOAKROOMD="${CLOAKROOMD_BIN:-$TARGET_DIR/release/cloakroomd}"
LOAD="$TARGET_DIR/release/examples/load"

rm -rf "$WORK/data" "$WORK/nginx"
mkdir -p "$WORK/data" "$WORK/nginx/tmp"

wait_http() { # url [pid]
    for _ in $(seq 1 "${WAIT_TRIES:-300}"); do
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
            echo "process $2 exited while waiting for $1" >&2
            return 1
        fi
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}

# --- upstream ------------------------------------------------------------------------
"$LOAD" upstream "127.0.0.1:$UP_PORT" 2>"$WORK/upstream.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

# --- nginx -------------------------------------------------------------------------
if [ "${QUICK:-0}" != 1 ]; then
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    upstream fn { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://fn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/"

# --- a bare hyper proxy (reference: proxying without any layer) ---------------------
"$LOAD" proxy "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UP_PORT" 2>"$WORK/bare-proxy.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$BARE_PORT/"
fi

# --- cloakroomd --------------------------------------------------------------------
export CLOAKROOM_PLACEHOLDER_KEY CLOAKROOM_VAULT_KEY
CLOAKROOM_PLACEHOLDER_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CLOAKROOM_VAULT_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
log "seeding $SECRETS masked secrets + bench_key into the embedded vault"
PLACEHOLDER="$("$LOAD" seed "$WORK/data" "$SECRETS")"
KEY_SHA="$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)"
{
    cat <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
data_dir = "$WORK/data"
${GW_THREADS:+workers = $GW_THREADS}

[identity]
admin_groups = ["admins"]

[[identity.api_keys]]
subject = "bench-agent"
groups = ["agents"]
sha256 = "$KEY_SHA"

[[functions]]
name = "bench"
protocol = "http"
upstream = "http://127.0.0.1:$UP_PORT"
route = "/fn/bench"

[masking]
replacement = "placeholder"
encodings = ["raw", "json", "url", "base64", "base64url", "hex"]
detectors = "default"

[audit]
sink = "embedded"
durability = "batched"
record_bodies = $RECORD_BODIES
EOF
    # RULES-1 rules about the same function for other groups (so none matches the
    # caller; rules may only name configured functions), then the one that allows it.
    for i in $(seq 1 $((RULES - 1))); do
        cat <<EOF

[[policy.rules]]
name = "rule $i"
effect = "$([ $((i % 3)) -eq 0 ] && echo deny || echo allow)"
functions = ["bench", "bench/**"]
groups = ["team$i"]
EOF
    done
    cat <<EOF

[[policy.rules]]
name = "agents may call bench"
effect = "allow"
functions = ["bench", "bench/**"]
groups = ["agents"]
source_cidrs = ["127.0.0.0/8"]
EOF
} >"$WORK/cloakroom.toml"

GW_WRAP=()
if [ "${CALLGRIND:-0}" = 1 ]; then
    command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }
    # Counting starts only when the calls start (callgrind_control -i on below), so start-up
    # (the vault, 1,000 secrets into the masker's automaton) is not in the figures.
    GW_WRAP=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out")
fi
start_gateway() {
    env CLOAKROOM_LOG=warn "${GW_WRAP[@]}" "$CLOAKROOMD" --config "$WORK/cloakroom.toml" 2>>"$WORK/cloakroomd.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    WAIT_TRIES=3000 wait_http "http://127.0.0.1:$ADMIN_PORT/readyz" "$GW_PID" || { tail -5 "$WORK/cloakroomd.log" >&2; exit 1; }
}
stop_gateway() {
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}
start_gateway

GW_URL="http://127.0.0.1:$GW_PORT/fn/bench/items"
# Sanity: the call is allowed, the placeholder substituted, the body 1 KiB.
status="$(curl -s -o "$WORK/probe.json" -w '%{http_code}' -H "Authorization: Bearer $API_KEY" -H "X-Api-Key: $PLACEHOLDER" "$GW_URL")"
[ "$status" = 200 ] || { echo "probe through cloakroomd answered $status: $(cat "$WORK/probe.json")" >&2; exit 1; }
denied="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "$GW_URL")"
[ "$denied" = 401 ] || { echo "a wrong key was not refused ($denied)" >&2; exit 1; }

# --- saturating runs (wrk) -----------------------------------------------------------
# Prints "rps p50_us p99_us" from wrk --latency output.
parse_wrk() {
    awk '
    function us(v) {
        if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
        if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
        if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000000 }
        return v + 0
    }
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    $1 == "Requests/sec:" { rps = $2 }
    END { printf "%.0f %.0f %.0f\n", rps, p50, p99 }'
}
run_wrk() { # name url [headers...]
    local name="$1" url="$2"
    shift 2
    local hdr=()
    for h in "$@"; do hdr+=(-H "$h"); done
    log "wrk: $name (${DURATION}s, $CONNECTIONS connections)"
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${hdr[@]}" "$url" >"$WORK/wrk-$name.txt"
    if grep -q "Non-2xx" "$WORK/wrk-$name.txt"; then
        echo "$name: non-2xx answers during the run:" >&2
        cat "$WORK/wrk-$name.txt" >&2
        exit 1
    fi
    parse_wrk <"$WORK/wrk-$name.txt"
}

# CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cloakroomd's CPU per answered call in µs during a saturating run: a figure that
# depends far less on what else the machine is doing than requests/s does.
gateway_run() { # prints "rps p50 p99 cpu_us_per_call"
    local t0 t1 hz rps p50 p99 perf_pid=""
    hz="$(getconf CLK_TCK)"
    if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null; then
        # Samples cloakroomd (call graphs from DWARF line tables) during the run.
        perf record -F 499 --call-graph dwarf,16384 -p "$GW_PID" -o "$WORK/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    local stat_pid=""
    if [ "${STAT:-0}" = 1 ] && command -v perf >/dev/null; then
        # Instructions per call: steadier than CPU time on a shared machine.
        perf stat -x, -e instructions,task-clock -p "$GW_PID" -o "$WORK/perf-stat.txt" -- sleep "$DURATION" >/dev/null 2>&1 &
        stat_pid=$!
    fi
    t0="$(cpu_ticks "$GW_PID")"
    read -r rps p50 p99 < <(run_wrk cloakroomd "$GW_URL" "Authorization: Bearer $API_KEY" "X-Api-Key: $PLACEHOLDER")
    t1="$(cpu_ticks "$GW_PID")"
    if [ -n "$stat_pid" ]; then
        wait "$stat_pid" || true
        awk -F, -v r="$rps" -v s="$DURATION" '$3 == "instructions" || $3 ~ /^instructions/ { printf "cloakroomd: %.0f instructions per call\n", $1 / (r * s) }' "$WORK/perf-stat.txt" >&2
    fi
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^$' | head -150 >"$WORK/perf-self.txt" || true
        perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -150 >"$WORK/perf-children.txt" || true
        log "profile: $WORK/perf-self.txt, $WORK/perf-children.txt"
    fi
    echo "$rps $p50 $p99 $(awk -v d="$((t1 - t0))" -v hz="$hz" -v r="$rps" -v s="$DURATION" 'BEGIN { printf "%.0f", d / hz / (r * s) * 1e6 }')"
}
if [ "${CALLGRIND:-0}" = 1 ]; then
    # A fixed number of calls, one at a time, each through every layer; counted by callgrind.
    CALLS="${CALLS:-3000}"
    for _ in 1 2 3 4 5 6 7 8 9 10; do curl -fsS -o /dev/null -H "Authorization: Bearer $API_KEY" -H "X-Api-Key: $PLACEHOLDER" "$GW_URL"; done
    callgrind_control -i on "$GW_PID" >&2
    python3 - "$GW_PORT" "$CALLS" "$API_KEY" "$PLACEHOLDER" <<'PY'
import http.client, sys
port, calls, key, placeholder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(calls):
    conn.request("GET", "/fn/bench/items", headers={"Authorization": "Bearer " + key, "X-Api-Key": placeholder})
    res = conn.getresponse()
    body = res.read()
    if res.status != 200 or len(body) < 1024:
        sys.exit("call answered %d with %d bytes" % (res.status, len(body)))
PY
    callgrind_control -i off "$GW_PID" >&2
    stop_gateway
    callgrind_annotate --inclusive=yes "$WORK"/callgrind.out* >"$WORK/callgrind-inclusive.txt" 2>/dev/null || true
    callgrind_annotate "$WORK"/callgrind.out* >"$WORK/callgrind-self.txt" 2>/dev/null || true
    total="$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$WORK/callgrind-self.txt")"
    case "$total" in ''|*[!0-9]*) echo "callgrind counted nothing (see $WORK/cloakroomd.log)" >&2; exit 1 ;; esac
    echo "(c) cloakroomd under callgrind: $CALLS calls, $((total / CALLS)) instructions per call (all threads)"
    echo "per function: $WORK/callgrind-self.txt, $WORK/callgrind-inclusive.txt"
    exit 0
fi
if [ "${QUICK:-0}" = 1 ] && [ "${QUICK_C1:-0}" = 1 ]; then
    # Only one connection, one call at a time: the latency each call pays, without queueing.
    for target in "direct http://127.0.0.1:$UP_PORT/items" "cloakroomd $GW_URL"; do
        set -- $target
        wrk -t1 -c1 -d"${DURATION}s" --latency -H "Authorization: Bearer $API_KEY" -H "X-Api-Key: $PLACEHOLDER" "$2" >"$WORK/wrk-c1-$1.txt"
        echo "$1, one connection: $(parse_wrk <"$WORK/wrk-c1-$1.txt" | awk '{ printf "%s req/s, p50 %s µs, p99 %s µs", $1, $2, $3 }')"
    done
    exit 0
fi
if [ "${QUICK:-0}" = 1 ] && [ "${QUICK_STREAM:-0}" = 1 ]; then
    # Only the streamed responses through the freshly started cloakroomd: MB/s and peak RSS.
    rss_hwm() { awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$GW_PID/status"; }
    start_mib="$(rss_hwm)"
    for mib in 64 256; do
        read -r mbs bytes < <(curl -fsS -o /dev/null -H "Authorization: Bearer $API_KEY" -w '%{size_download} %{time_total}\n' \
            "http://127.0.0.1:$GW_PORT/fn/bench/stream?mib=$mib" | awk '{ printf "%.0f %d\n", $1 / $2 / 1e6, $1 }')
        [ "$bytes" = $((mib << 20)) ] || { echo "stream of $mib MiB delivered $bytes bytes" >&2; exit 1; }
        echo "(c) cloakroomd: $mib MiB stream at $mbs MB/s, peak RSS $(rss_hwm) MiB (after start: $start_mib MiB)"
    done
    exit 0
fi
if [ "${QUICK:-0}" = 1 ] && [ -n "${QUICK_RATE:-}" ]; then
    # Only fixed-rate runs of (a) and (c): the latency cloakroomd adds at a given rate (oha -q).
    for target in "direct http://127.0.0.1:$UP_PORT/items" "cloakroomd $GW_URL"; do
        set -- $target
        log "oha: $1 at $QUICK_RATE req/s (${DURATION}s)"
        rm -f "$WORK/oha-quick-$1.db"
        "$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$QUICK_RATE" -c "$CONNECTIONS" --latency-correction ${OHA_DB:+--db-url "$WORK/oha-quick-$1.db"} \
            -H "Authorization: Bearer $API_KEY" -H "X-Api-Key: $PLACEHOLDER" "$2" >"$WORK/oha-quick-$1.json"
        python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
print("%s at %.0f req/s: p50 %.0f µs, p99 %.0f µs" % (sys.argv[2], d["summary"]["requestsPerSec"], p["p50"] * 1e6, p["p99"] * 1e6))
' "$WORK/oha-quick-$1.json" "$1"
        if [ -n "${OHA_DB:-}" ]; then python3 "$ROOT/benches/load/oha_tail.py" "$WORK/oha-quick-$1.db" "$1"; fi
    done
    exit 0
fi
if [ "${QUICK:-0}" = 1 ]; then
    read -r C_RPS C_P50 C_P99 C_CPU < <(gateway_run)
    echo "(c) cloakroomd: $C_RPS req/s, p50 $C_P50 µs, p99 $C_P99 µs, $C_CPU µs of CPU per call, peak RSS $(awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$GW_PID/status") MiB"
    exit 0
fi

LOADAVG_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
read -r A_RPS A_P50 A_P99 < <(run_wrk direct "http://127.0.0.1:$UP_PORT/items")
read -r B_RPS B_P50 B_P99 < <(run_wrk nginx "http://127.0.0.1:$NGINX_PORT/items")
read -r H_RPS H_P50 H_P99 < <(run_wrk bare-hyper "http://127.0.0.1:$BARE_PORT/items")
read -r C_RPS C_P50 C_P99 C_CPU < <(gateway_run)
LOADAVG_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
CA="$(awk -v c="$C_RPS" -v a="$A_RPS" 'BEGIN { printf "%.2f", c / a }')"
CB="$(awk -v c="$C_RPS" -v b="$B_RPS" 'BEGIN { printf "%.2f", c / b }')"

# --- fixed rate (oha -q) -------------------------------------------------------------
FIXED=""
if [ -n "$OHA" ]; then
    RATE=$((C_RPS / 2))
    # Prints "rps p50_us p99_us" from oha's JSON output.
    run_oha() { # name url [headers...]
        local name="$1" url="$2"
        shift 2
        local hdr=()
        for h in "$@"; do hdr+=(-H "$h"); done
        log "oha: $name at $RATE req/s (${DURATION}s)"
        "$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$RATE" -c "$CONNECTIONS" --latency-correction "${hdr[@]}" "$url" >"$WORK/oha-$name.json"
        python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
bad = {k: v for k, v in codes.items() if k != "200"}
if bad:
    sys.exit("non-200 answers: %s" % bad)
print("%.0f %.0f %.0f" % (d["summary"]["requestsPerSec"], p["p50"] * 1e6, p["p99"] * 1e6))
' "$WORK/oha-$name.json"
    }
    read -r FA_RPS FA_P50 FA_P99 < <(run_oha direct "http://127.0.0.1:$UP_PORT/items")
    # nginx at the same rate: what a proxy doing nothing but forwarding adds here.
    read -r FB_RPS FB_P50 FB_P99 < <(run_oha nginx "http://127.0.0.1:$NGINX_PORT/items")
    read -r FC_RPS FC_P50 FC_P99 < <(run_oha cloakroomd "$GW_URL" "Authorization: Bearer $API_KEY" "X-Api-Key: $PLACEHOLDER")
    FIXED="| fixed rate $RATE req/s, oha -q | $FA_RPS / $FA_P50 / $FA_P99 | $FB_RPS / $FB_P50 / $FB_P99 (+$((FB_P50 - FA_P50)) / +$((FB_P99 - FA_P99))) | $FC_RPS / $FC_P50 / $FC_P99 | **+$((FC_P50 - FA_P50)) µs** at p50, **+$((FC_P99 - FA_P99)) µs** at p99 |"
fi

# --- 64 MiB stream ---------------------------------------------------------------------
stream() { # url [header] -> MB/s
    curl -fsS -o /dev/null ${2:+-H "$2"} -w '%{size_download} %{time_total}\n' "$1" |
        awk '{ printf "%.0f %d\n", $1 / $2 / 1e6, $1 }'
}
log "64 MiB stream: direct"
read -r S_DIRECT S_BYTES_DIRECT < <(stream "http://127.0.0.1:$UP_PORT/stream")
log "64 MiB stream: through a freshly started cloakroomd"
stop_gateway
start_gateway
RSS_START_KB="$(awk '/^VmHWM/ { print $2 }' "/proc/$GW_PID/status")"
read -r S_GW S_BYTES_GW < <(stream "http://127.0.0.1:$GW_PORT/fn/bench/stream" "Authorization: Bearer $API_KEY")
RSS_PEAK_KB="$(awk '/^VmHWM/ { print $2 }' "/proc/$GW_PID/status")"
[ "$S_BYTES_GW" = $((64 << 20)) ] || { echo "stream through cloakroomd delivered $S_BYTES_GW bytes" >&2; exit 1; }
# Four times the size: the peak must not grow with the response.
log "256 MiB stream through the same cloakroomd"
read -r S_GW256 S_BYTES_GW256 < <(stream "http://127.0.0.1:$GW_PORT/fn/bench/stream?mib=256" "Authorization: Bearer $API_KEY")
RSS_PEAK256_KB="$(awk '/^VmHWM/ { print $2 }' "/proc/$GW_PID/status")"
RSS_NOW_KB="$(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status")"
[ "$S_BYTES_GW256" = $((256 << 20)) ] || { echo "256 MiB stream through cloakroomd delivered $S_BYTES_GW256 bytes" >&2; exit 1; }
stop_gateway

# --- report ------------------------------------------------------------------------------
{
    echo "Run at $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores; load average before/after the saturating runs: $LOADAVG_BEFORE / $LOADAVG_AFTER."
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency; $SECRETS masked secrets, $RULES policy rules, audit batched (record_bodies = $RECORD_BODIES)."
    echo
    echo "| target | requests/s | p50 µs | p99 µs |"
    echo "|---|---:|---:|---:|"
    echo "| (a) upstream directly | $A_RPS | $A_P50 | $A_P99 |"
    echo "| (b) nginx reverse proxy | $B_RPS | $B_P50 | $B_P99 |"
    echo "| (c) cloakroomd, every layer on | $C_RPS | $C_P50 | $C_P99 |"
    echo "| reference: bare hyper proxy, no layers | $H_RPS | $H_P50 | $H_P99 |"
    echo
    echo "cloakroomd used $C_CPU µs of CPU per call during (c)."
    echo
    echo "(c)/(a) = **$CA**, (c)/(b) = **$CB** (target: (c)/(b) >= 1.0)."
    echo
    if [ -n "$FIXED" ]; then
        echo "| fixed-rate run | (a) direct: req/s / p50 µs / p99 µs | (b) nginx: req/s / p50 / p99 (added) | (c) cloakroomd: req/s / p50 µs / p99 µs | added by cloakroomd |"
        echo "|---|---|---|---|---|"
        echo "$FIXED"
    else
        echo "Fixed-rate run skipped: oha is not installed and did not build."
    fi
    echo
    echo "64 MiB streamed response: upstream directly $S_DIRECT MB/s; through cloakroomd $S_GW MB/s."
    echo "cloakroomd peak RSS (VmHWM): $((RSS_START_KB / 1024)) MiB after start (1,000-secret masker built), $((RSS_PEAK_KB / 1024)) MiB after the 64 MiB stream, $((RSS_PEAK256_KB / 1024)) MiB after a further 256 MiB stream ($S_GW256 MB/s; VmRSS then $((RSS_NOW_KB / 1024)) MiB)."
} | tee "$OUT"
