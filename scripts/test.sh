#!/usr/bin/env bash
# The whole test suite: set-up (packages, venv, model, build) then every ctest label
# (unit, golden, e2e, gpu — GPU tests skip cleanly without a GPU). `.ci/run` runs exactly this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${TANDEM_BUILD_DIR:-$ROOT/build}"
start=$(date +%s)
"$ROOT/scripts/setup.sh"
built=$(date +%s)
export PATH="$ROOT/.venv/bin:$PATH"
export TANDEM_SMOLLM2_GGUF="${TANDEM_SMOLLM2_GGUF:-$("$ROOT/scripts/fetch_model.sh")}"
cd "$BUILD_DIR"
status=0
ctest --output-on-failure -j"$(nproc)" "$@" || status=$?
end=$(date +%s)
echo "[test] setup+build: $((built - start)) s, tests: $((end - built)) s"
exit $status
