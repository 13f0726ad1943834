#!/usr/bin/env bash
# The whole test suite, from a fresh machine: sets up what the tests need
# (scripts/test-env.sh), then builds once and runs every test in the workspace.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/test-env.sh
source "$ROOT/scripts/test-env.sh"
cargo test --workspace --locked "$@"
