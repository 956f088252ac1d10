#!/usr/bin/env bash
# The quickstart: installs and builds everything (scripts/setup.sh), fetches SmolLM2-135M-Instruct,
# serves it with configs/quickstart.yaml (one prefill and one decode worker on the CPU, KV over UCX)
# and sends a sample chat request. Each stage that the build does not have yet is reported and
# skipped, so the script always shows what exists.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${TANDEM_BUILD_DIR:-$ROOT/build}"
CONFIG="${1:-$ROOT/configs/quickstart.yaml}"
"$ROOT/scripts/setup.sh"
TANDEM="$BUILD_DIR/bin/tandem"
MODEL="$("$ROOT/scripts/fetch_model.sh")"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
has_command() { "$TANDEM" --help | grep -qE "^  $1 "; }

say "tandem version"
"$TANDEM" version
say "resolved deployment ($CONFIG)"
"$TANDEM" config check -c "$CONFIG"

if has_command serve; then
  port=$("$TANDEM" config check -c "$CONFIG" | sed -n 's/.*http: {host: [^,]*, port: \([0-9]*\)}.*/\1/p')
  if has_command worker; then
    say "serving $MODEL disaggregated (the pools of $CONFIG as worker processes) on port $port"
  else
    say "serving $MODEL on port $port (worker pools not in this build: one engine in the frontend process)"
  fi
  "$TANDEM" serve -c "$CONFIG" &
  server=$!
  trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { echo "tandem serve exited" >&2; exit 1; }
    sleep 1
  done
  model_id=$(curl -sf "http://127.0.0.1:$port/v1/models" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p' | head -1)
  say "POST /v1/chat/completions (model $model_id)"
  curl -sS "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' -d '{
    "model": "'"$model_id"'",
    "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    "max_tokens": 48, "temperature": 0}'
  echo
elif has_command generate; then
  say "'tandem serve' is not in this build; running the model locally with 'tandem generate'"
  "$TANDEM" generate --model "$MODEL" --max-tokens 32 --prompt "The capital of France is"
else
  say "'tandem serve' and 'tandem generate' are not in this build: only configuration is available"
fi
