#!/usr/bin/env bash
# End-to-end cost of Cloakroom per call (issue 19; docs/performance.md, "Cost per call").
# Runs in one go, on 127.0.0.1 only, with bounded durations; stops by itself and ends every
# process it started.
#
#   benches/load/run.sh            # the cost report: ~15 minutes after the builds
#   DURATION=5 benches/load/run.sh # shorter runs, for trying the script out
#   SCALE_SECRETS="10000" SCALE_RULES="500" ...  # fewer scaling rows
#   PROFILE=1 QUICK=1 ...          # perf record cloakroomd during (c)'s saturating run
#   QUICK=1 ...                    # only (c)'s saturating run and its CPU per call
#                                  # (for trying an optimisation; no table is written)
#   STAT=1 QUICK=1 ...             # perf stat cloakroomd during (c) (task-clock, and
#                                  # instructions where the CPU exposes counters)
#   GW_THREADS=N ...               # cloakroomd's serving threads, server.workers (default: cores)
#   QUICK=1 QUICK_RATE=R ...       # only fixed-rate runs of (a) and (c) at R req/s (oha,
#                                  # installed from crates.io when missing)
#   ... OHA_DB=1                   # with QUICK_RATE: keep every request's times (oha --db-url)
#                                  # and split the latency into waiting and service
#                                  # (benches/load/oha_tail.py)
#   QUICK=1 QUICK_C1=1 ...         # only (a) and (c) with one connection (wrk -c1)
#   QUICK=1 QUICK_STREAM=1 ...     # only the 64/256 MiB streams through cloakroomd (MB/s, peak RSS)
#   QUICK=1 CALLGRIND=1 ...        # cloakroomd (one serving thread) under valgrind's callgrind for
#                                  # CALLS calls (default 3000) on one connection: instructions
#                                  # per call, repeatable whatever else the machine is doing
#   CLOAKROOMD_BIN=path ...        # run this cloakroomd binary (A/B runs) instead of the build
#                                  # (builds before server.workers: leave GW_THREADS unset)
#   LAYERS_BIN=path ...            # this bench-layers build for the waterfall (skips building it)
#
# The cost report measures, with wrk (Debian) as the load generator and the upstream in a
# process of its own (a fixed JSON answer over hyper, load/load.rs; 1 KiB unless
# ?bytes=65536 or ?bytes=1048576):
#   - CPU per call of nginx (Debian) as a plain reverse proxy, the bare hyper proxy
#     (load/load.rs: the floor of hyper proxying) and cloakroomd as a waterfall: routing and
#     forwarding only, + identity (API key), + call naming and policy (50 rules),
#     + detokenize (one placeholder in X-Api-Key), + mask (1,000 secrets, six encodings),
#     + audit without bodies, + audit with bodies (the bench-layers build, cargo feature
#     `bench-layers`, CLOAKROOM_BENCH_LAYERS), then cloakroomd as shipped;
#   - p50/p99 added on one connection (wrk -c1) by nginx, the bare proxy and cloakroomd;
#   - CPU per call, start-up time and RSS at 10,000 and 100,000 secrets, 500 and 5,000
#     rules, 64 KiB and 1 MiB answers;
#   - instructions per call of nginx and cloakroomd under callgrind;
#   - peak RSS across a 64 MiB and a 256 MiB streamed answer.
# Results go to stdout and to $OUT (default: target/load-bench/results.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${DURATION:-10}"
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
if [ -z "$OHA" ] && [ "${SKIP_OHA:-0}" != 1 ] && [ -n "${QUICK_RATE:-}" ]; then
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
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$WORK"
if [ "${QUICK:-0}" != 1 ] && [ -z "${LAYERS_BIN:-}" ]; then
    # The cost waterfall's build: the same cloakroomd with the cargo feature `bench-layers`,
    # which lets CLOAKROOM_BENCH_LAYERS cut the data path short. Built first and copied
    # aside, so that target/release/cloakroomd is the shipped build.
    (cd "$ROOT" && cargo build --release -q -p cloakroomd --features bench-layers)
    cp "$TARGET_DIR/release/cloakroomd" "$WORK/cloakroomd-layers"
    LAYERS_BIN="$WORK/cloakroomd-layers"
fi
if [ -z "${CLOAKROOMD_BIN:-}" ]; then (cd "$ROOT" && cargo build --release -q -p cloakroomd); fi
(cd "$ROOT" && cargo build --release -q -p cloakroom-benches --example load)
if [ "${QUICK:-0}" != 1 ]; then (cd "$ROOT" && cargo build --release -q -p cloakroom-testkit --bin otlp-sink); fi
OTLP_SINK="$TARGET_DIR/release/otlp-sink"
OTLP_PORT="${OTLP_PORT:-19106}"
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
# write_config FILE DATA_DIR RULES RECORD_BODIES: cloakroomd's configuration for one run.
write_config() {
local file="$1" data="$2" rules="$3" bodies="$4"
{
    cat <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
data_dir = "$data"
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
record_bodies = $bodies
EOF
    # RULES-1 rules about the same function for other groups (so none matches the
    # caller; rules may only name configured functions), then the one that allows it.
    for i in $(seq 1 $((rules - 1))); do
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
} >"$file"
}
write_config "$WORK/cloakroom.toml" "$WORK/data" "$RULES" "$RECORD_BODIES"

GW_WRAP=()
if [ "${CALLGRIND:-0}" = 1 ]; then
    command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }
    # Counting starts only when the calls start (callgrind_control -i on below), so start-up
    # (the vault, 1,000 secrets into the masker's automaton) is not in the figures.
    GW_WRAP=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out")
fi
# start_gateway [CONFIG [BINARY [LAYERS]]]: LAYERS is CLOAKROOM_BENCH_LAYERS of the
# waterfall build (see the cost report below).
start_gateway() {
    local config="${1:-$WORK/cloakroom.toml}" bin="${2:-$CLOAKROOMD}" layers="${3:-}"
    GW_STARTED="$(date +%s.%N)"
    # warn: no per-call log line, as nginx runs with access_log off; GW_LOG=info for the
    # row that measures cloakroomd's default log.
    env CLOAKROOM_LOG="${GW_LOG:-warn}" ${layers:+CLOAKROOM_BENCH_LAYERS=$layers} "${GW_WRAP[@]}" "$bin" --config "$config" 2>>"$WORK/cloakroomd.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    WAIT_TRIES=30000 wait_http "http://127.0.0.1:$ADMIN_PORT/readyz" "$GW_PID" || { tail -5 "$WORK/cloakroomd.log" >&2; exit 1; }
    GW_READY_S="$(awk -v a="$GW_STARTED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
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

# --- the cost report (docs/performance.md, "Cost per call") ----------------------------
# What a call costs in CPU (user + system time of the whole process, all threads, per
# completed call) for nginx, the bare hyper proxy and cloakroomd with the layers of the
# data path added one at a time; the latency each adds on one connection; instructions
# per call under callgrind; and how the cost grows with secrets, rules and body size.
HZ="$(getconf CLK_TCK)"
ticks_of() { # pids... -> CPU ticks used so far by all of them
    local t=0 p
    for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}
# cost NAME URL "PIDS" [HEADERS...] -> "req/s cpu_us_per_call" over one saturating wrk run.
cost() {
    local name="$1" url="$2" pids="$3" t0 t1 rps calls
    shift 3
    t0="$(ticks_of $pids)"
    run_wrk "$name" "$url" "$@" >/dev/null
    t1="$(ticks_of $pids)"
    rps="$(awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' "$WORK/wrk-$name.txt")"
    calls="$(awk '$2 == "requests" && $3 == "in" { print $1 }' "$WORK/wrk-$name.txt")"
    echo "$rps $(awk -v d="$((t1 - t0))" -v hz="$HZ" -v n="$calls" 'BEGIN { printf "%.1f", d / hz / n * 1e6 }')"
}
rss_mib() { awk -v k="$2" '$1 == k":" { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
H_AUTH="Authorization: Bearer $API_KEY"
H_PH="X-Api-Key: $PLACEHOLDER"
NGINX_PIDS="$(cat "$WORK/nginx/nginx.pid") $(pgrep -P "$(cat "$WORK/nginx/nginx.pid")" | tr '\n' ' ')"
BARE_PID="$(pgrep -o -f "load proxy 127.0.0.1:$BARE_PORT")"
stop_gateway

LOADAVG_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
ROWS=()
row() { ROWS+=("$1"); }
read -r N_RPS N_CPU < <(cost nginx "http://127.0.0.1:$NGINX_PORT/items" "$NGINX_PIDS")
row "| nginx reverse proxy | $N_RPS | $N_CPU | 1.00 |"
read -r H_RPS H_CPU < <(cost bare-hyper "http://127.0.0.1:$BARE_PORT/items" "$BARE_PID")
row "| bare hyper proxy (load proxy), no layer | $H_RPS | $H_CPU | $(ratio "$H_CPU" "$N_CPU") |"

# The waterfall: the bench-layers build, one layer more per row.
for step in forward identity policy detokenize mask; do
    start_gateway "$WORK/cloakroom.toml" "$LAYERS_BIN" "$step"
    read -r rps cpu < <(cost "layers-$step" "$GW_URL" "$GW_PID" "$H_AUTH" "$H_PH")
    case "$step" in
    forward) label="cloakroomd: routing and forwarding only" ;;
    identity) label="+ identity (API key)" ;;
    policy) label="+ call naming and policy ($RULES rules)" ;;
    detokenize) label="+ detokenize (one placeholder)" ;;
    mask) label="+ mask ($SECRETS secrets, every encoding)" ;;
    esac
    row "| $label | $rps | $cpu | $(ratio "$cpu" "$N_CPU") |"
    [ "$step" = forward ] && FWD_CPU="$cpu"
    stop_gateway
done
write_config "$WORK/cloakroom-nobodies.toml" "$WORK/data" "$RULES" false
start_gateway "$WORK/cloakroom-nobodies.toml" "$LAYERS_BIN"
read -r rps cpu < <(cost layers-audit "$GW_URL" "$GW_PID" "$H_AUTH" "$H_PH")
row "| + audit, batched, without bodies | $rps | $cpu | $(ratio "$cpu" "$N_CPU") |"
stop_gateway
start_gateway "$WORK/cloakroom.toml" "$LAYERS_BIN"
read -r rps cpu < <(cost layers-all "$GW_URL" "$GW_PID" "$H_AUTH" "$H_PH")
row "| + audit with bodies: every layer (bench-layers build) | $rps | $cpu | $(ratio "$cpu" "$N_CPU") |"
stop_gateway
start_gateway "$WORK/cloakroom.toml" "$CLOAKROOMD"
READY_1K="$GW_READY_S"
RSS_1K="$(rss_mib "$GW_PID" VmRSS)"
read -r C_RPS C_CPU < <(cost cloakroomd "$GW_URL" "$GW_PID" "$H_AUTH" "$H_PH")
row "| **cloakroomd as shipped, every layer** | $C_RPS | **$C_CPU** | **$(ratio "$C_CPU" "$N_CPU")** |"
RSS_1K_RUN="$(rss_mib "$GW_PID" VmHWM)"
stop_gateway
# The same with cloakroomd's default log: a `call finished` line per call.
GW_LOG=info start_gateway "$WORK/cloakroom.toml" "$CLOAKROOMD"
read -r rps cpu < <(cost cloakroomd-log "$GW_URL" "$GW_PID" "$H_AUTH" "$H_PH")
row "| as shipped, with its default log (\`CLOAKROOM_LOG=info\`: a \`call finished\` line per call, to a file) | $rps | $cpu | $(ratio "$cpu" "$N_CPU") |"
stop_gateway
# nginx again: how far the machine drifted between the first row and these.
read -r rps N2_CPU < <(cost nginx-again "http://127.0.0.1:$NGINX_PORT/items" "$NGINX_PIDS")
row "| nginx again, after the rows above (drift) | $rps | $N2_CPU | $(ratio "$N2_CPU" "$N_CPU") |"
# The same with OpenTelemetry traces on (every call sampled) to a local OTLP receiver.
"$OTLP_SINK" --listen "127.0.0.1:$OTLP_PORT" >"$WORK/otlp-sink.log" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
{ cat "$WORK/cloakroom.toml"; printf '\n[telemetry]\notlp_endpoint = "http://127.0.0.1:%s"\nsample_ratio = 1.0\n' "$OTLP_PORT"; } >"$WORK/cloakroom-traces.toml"
start_gateway "$WORK/cloakroom-traces.toml" "$CLOAKROOMD"
read -r rps T_CPU < <(cost cloakroomd-traces "$GW_URL" "$GW_PID" "$H_AUTH" "$H_PH")
row "| cloakroomd as shipped, every layer, traces on (sample_ratio 1, OTLP/HTTP to a local receiver) | $rps | $T_CPU | $(ratio "$T_CPU" "$N_CPU") |"
stop_gateway
kill "$SINK_PID" 2>/dev/null || true
wait "$SINK_PID" 2>/dev/null || true
LOADAVG_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- added latency on one connection (no queueing) --------------------------------------
latency_c1() { # name url [headers...] -> "p50 p99"
    local name="$1" url="$2" hdr=() h
    shift 2
    for h in "$@"; do hdr+=(-H "$h"); done
    log "wrk -c1: $name (${DURATION}s)"
    wrk -t1 -c1 -d"${DURATION}s" --latency "${hdr[@]}" "$url" >"$WORK/wrk-c1-$name.txt"
    parse_wrk <"$WORK/wrk-c1-$name.txt" | awk '{ print $2, $3 }'
}
start_gateway "$WORK/cloakroom.toml" "$CLOAKROOMD"
read -r L_D50 L_D99 < <(latency_c1 direct "http://127.0.0.1:$UP_PORT/items")
read -r L_N50 L_N99 < <(latency_c1 nginx "http://127.0.0.1:$NGINX_PORT/items")
read -r L_H50 L_H99 < <(latency_c1 bare-hyper "http://127.0.0.1:$BARE_PORT/items")
read -r L_C50 L_C99 < <(latency_c1 cloakroomd "$GW_URL" "$H_AUTH" "$H_PH")
stop_gateway

# --- how the cost grows -----------------------------------------------------------------
SCALE=()
scale_run() { # label config url -> a table row (CPU per call, ratio to the 1,000-secret row, start-up, RSS)
    local label="$1" config="$2" url="$3" rps cpu
    start_gateway "$config" "$CLOAKROOMD"
    local ready="$GW_READY_S" rss_start
    rss_start="$(rss_mib "$GW_PID" VmRSS)"
    read -r rps cpu < <(cost "scale-$(echo "$label" | tr -c 'a-z0-9' '-')" "$url" "$GW_PID" "$H_AUTH" "$H_PH")
    SCALE+=("| $label | $rps | $cpu | $(ratio "$cpu" "$C_CPU") | ${ready} s | $rss_start | $(rss_mib "$GW_PID" VmHWM) |")
    stop_gateway
}
SCALE+=("| $SECRETS secrets, $RULES rules, 1 KiB (the shipped row above) | $C_RPS | $C_CPU | 1.00 | ${READY_1K} s | $RSS_1K | $RSS_1K_RUN |")
for n in ${SCALE_SECRETS:-10000 100000}; do
    log "seeding $n secrets"
    rm -rf "$WORK/data-$n"
    mkdir -p "$WORK/data-$n"
    p="$("$LOAD" seed "$WORK/data-$n" "$n")"
    [ "$p" = "$PLACEHOLDER" ] || { echo "seeding $n secrets gave another placeholder" >&2; exit 1; }
    write_config "$WORK/cloakroom-$n.toml" "$WORK/data-$n" "$RULES" true
    scale_run "$n secrets" "$WORK/cloakroom-$n.toml" "$GW_URL"
done
for r in ${SCALE_RULES:-500 5000}; do
    write_config "$WORK/cloakroom-rules-$r.toml" "$WORK/data" "$r" true
    scale_run "$r rules" "$WORK/cloakroom-rules-$r.toml" "$GW_URL"
done
for b in 65536 1048576; do
    scale_run "$([ "$b" = 65536 ] && echo "64 KiB" || echo "1 MiB") answers" "$WORK/cloakroom.toml" "$GW_URL?bytes=$b"
    eval "BODY_CPU_$b=\"\$(echo \"\${SCALE[-1]}\" | awk -F'|' '{ gsub(/ /, \"\", \$4); print \$4 }')\""
done
MBS_1M="$(awk -v c="$BODY_CPU_1048576" 'BEGIN { printf "%.0f", 1048576 / c }')"

# --- instructions per call (callgrind) --------------------------------------------------
CALLS="${CALLS:-2000}"
callgrind_count() { # port path out [headers...] -> instructions per call of the process under callgrind
    local port="$1" path="$2" out="$3"
    shift 3
    python3 - "$port" "$path" "$CALLS" "$@" <<'PY'
import http.client, sys
port, path, calls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
headers = dict(h.split(": ", 1) for h in sys.argv[4:])
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(calls):
    conn.request("GET", path, headers=headers)
    res = conn.getresponse()
    body = res.read()
    if res.status != 200 or len(body) < 1024:
        sys.exit("call answered %d with %d bytes" % (res.status, len(body)))
PY
}
callgrind_total() { # out-file prefix -> total instructions
    # (awk reads to the end: an early exit would stop callgrind_annotate with SIGPIPE)
    callgrind_annotate "$1"* 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }
warm() { for _ in 1 2 3 4 5 6 7 8 9 10; do curl -fsS -o /dev/null "$@"; done; }
# nginx: one worker, no master, under callgrind.
NGINX_CG_PORT=$((NGINX_PORT + 10))
sed -e "s/^worker_processes auto;/worker_processes 1; master_process off;/" \
    -e "s/listen 127.0.0.1:$NGINX_PORT;/listen 127.0.0.1:$NGINX_CG_PORT;/" \
    -e "s#pid $WORK/nginx/nginx.pid;#pid $WORK/nginx/nginx-cg.pid;#" "$WORK/nginx/nginx.conf" >"$WORK/nginx/nginx-cg.conf"
rm -f "$WORK"/callgrind-nginx.out*
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind-nginx.out" \
    "$NGINX" -c "$WORK/nginx/nginx-cg.conf" -p "$WORK/nginx" -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
NG_CG_PID=$!
PIDS+=("$NG_CG_PID")
WAIT_TRIES=3000 wait_http "http://127.0.0.1:$NGINX_CG_PORT/items" "$NG_CG_PID"
warm "http://127.0.0.1:$NGINX_CG_PORT/items"
callgrind_control -i on "$NG_CG_PID" >/dev/null
callgrind_count "$NGINX_CG_PORT" /items nginx
callgrind_control -i off "$NG_CG_PID" >/dev/null
kill "$NG_CG_PID"; wait "$NG_CG_PID" 2>/dev/null || true
I_NGINX=$(($(callgrind_total "$WORK/callgrind-nginx.out") / CALLS))
# cloakroomd as shipped, one serving thread.
write_config "$WORK/cloakroom-cg.toml" "$WORK/data" "$RULES" true
sed -i "s/^\[server\]$/[server]\nworkers = 1/" "$WORK/cloakroom-cg.toml"
rm -f "$WORK"/callgrind-cloakroomd.out*
GW_WRAP=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind-cloakroomd.out")
start_gateway "$WORK/cloakroom-cg.toml" "$CLOAKROOMD"
warm -H "$H_AUTH" -H "$H_PH" "$GW_URL"
callgrind_control -i on "$GW_PID" >/dev/null
callgrind_count "$GW_PORT" /fn/bench/items cloakroomd "$H_AUTH" "$H_PH"
callgrind_control -i off "$GW_PID" >/dev/null
stop_gateway
GW_WRAP=()
I_GW=$(($(callgrind_total "$WORK/callgrind-cloakroomd.out") / CALLS))
callgrind_annotate "$WORK"/callgrind-cloakroomd.out* >"$WORK/callgrind-self.txt" 2>/dev/null || true
callgrind_annotate --inclusive=yes "$WORK"/callgrind-cloakroomd.out* >"$WORK/callgrind-inclusive.txt" 2>/dev/null || true

# --- 64 MiB stream ---------------------------------------------------------------------
stream() { # url [header] -> MB/s bytes
    curl -fsS -o /dev/null ${2:+-H "$2"} -w '%{size_download} %{time_total}\n' "$1" |
        awk '{ printf "%.0f %d\n", $1 / $2 / 1e6, $1 }'
}
log "64 and 256 MiB streams through a freshly started cloakroomd"
start_gateway "$WORK/cloakroom.toml" "$CLOAKROOMD"
RSS_START="$(rss_mib "$GW_PID" VmHWM)"
read -r S_GW S_BYTES_GW < <(stream "http://127.0.0.1:$GW_PORT/fn/bench/stream" "$H_AUTH")
[ "$S_BYTES_GW" = $((64 << 20)) ] || { echo "stream through cloakroomd delivered $S_BYTES_GW bytes" >&2; exit 1; }
RSS_PEAK64="$(rss_mib "$GW_PID" VmHWM)"
read -r S_GW256 S_BYTES_GW256 < <(stream "http://127.0.0.1:$GW_PORT/fn/bench/stream?mib=256" "$H_AUTH")
[ "$S_BYTES_GW256" = $((256 << 20)) ] || { echo "256 MiB stream through cloakroomd delivered $S_BYTES_GW256 bytes" >&2; exit 1; }
RSS_PEAK256="$(rss_mib "$GW_PID" VmHWM)"
stop_gateway

# --- report ------------------------------------------------------------------------------
{
    echo "Run at $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores; load average before/after the CPU runs: $LOADAVG_BEFORE / $LOADAVG_AFTER."
    echo "CPU per call: wrk -t1 -c$CONNECTIONS -d${DURATION}s against each target in turn, the process's user + system time (all threads) over completed calls."
    echo "cloakroomd: API-key identity, $RULES policy rules, one placeholder substituted (X-Api-Key), $SECRETS masked secrets in six encodings, audit batched on the embedded store; a 1 KiB JSON answer."
    echo
    echo "| target | req/s | CPU µs per call | × nginx |"
    echo "|---|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Targets: forwarding only ≤ 1.25 × nginx (here $(ratio "$FWD_CPU" "$N_CPU")); every layer ≤ 2.0 × nginx (here $(ratio "$C_CPU" "$N_CPU"))."
    echo
    echo "Instructions per call (callgrind, $CALLS calls one at a time on one connection; valgrind hides SHA-NI, so SHA-256 runs portable code): nginx $I_NGINX, cloakroomd $I_GW ($(ratio "$I_GW" "$I_NGINX") ×)."
    echo
    echo "Added latency on one connection (wrk -t1 -c1, ${DURATION}s; µs):"
    echo
    echo "| target | p50 | p99 | added p50 | added p99 |"
    echo "|---|---:|---:|---:|---:|"
    echo "| upstream directly | $L_D50 | $L_D99 | | |"
    echo "| nginx | $L_N50 | $L_N99 | $((L_N50 - L_D50)) | $((L_N99 - L_D99)) |"
    echo "| bare hyper proxy | $L_H50 | $L_H99 | $((L_H50 - L_D50)) | $((L_H99 - L_D99)) |"
    echo "| cloakroomd, every layer | $L_C50 | $L_C99 | $((L_C50 - L_D50)) | $((L_C99 - L_D99)) |"
    echo
    echo "Targets: added p50 ≤ 1.5 × nginx's (here $(ratio $((L_C50 - L_D50)) $((L_N50 - L_D50)))), added p99 ≤ 2 × (here $(ratio $((L_C99 - L_D99)) $((L_N99 - L_D99))))."
    echo
    echo "How the cost grows (cloakroomd as shipped, every layer; start-up = process start to /readyz, masker built; RSS in MiB):"
    echo
    echo "| run | req/s | CPU µs per call | × the first row | start-up | RSS after start | peak RSS |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${SCALE[@]}"
    echo
    echo "1 MiB answers: $MBS_1M MB of answer per CPU-second of cloakroomd (masking, recording the first bytes and hashing the record, forwarding)."
    echo
    echo "Streams: 64 MiB through a fresh cloakroomd at $S_GW MB/s, 256 MiB at $S_GW256 MB/s; peak RSS $RSS_START MiB after start, $RSS_PEAK64 MiB after 64 MiB, $RSS_PEAK256 MiB after 256 MiB."
} | tee "$OUT"
