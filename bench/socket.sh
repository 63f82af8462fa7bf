#!/usr/bin/env bash
# What the gateway adds to a turn of the Responses API's WebSocket mode (bench/socket_turns.py):
# `goodhart serve` (release, metering + spool + SQLite on) in front of its built-in mock
# provider, the client straight to the mock's socket and through the gateway's, alternated in
# blocks of BLOCK chained turns; plus streamed POSTs through the gateway for comparison. The
# server is pinned to CPU 1, the client to CPU 0.
#
# Usage: bench/socket.sh   (env: TURNS=2000 BLOCK=100 PORT=18797)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TURNS=${TURNS:-2000}
BLOCK=${BLOCK:-100}
PORT=${PORT:-18797}
VENV=$ROOT/.cache/bench-venv
WORK=$(mktemp -d)
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import websockets' 2>/dev/null ||
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'websockets==15.0.1'
cargo build --release -p goodhart

(cd "$WORK" && exec env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GEMINI_API_KEY GOODHART_ADMIN_TOKEN=bench-admin \
    taskset -c 1 "${CARGO_TARGET_DIR:-$ROOT/target}/release/goodhart" serve --listen "127.0.0.1:$PORT" >serve.log 2>&1) &
SERVER=$!
for _ in $(seq 1 100); do grep -q "openai protocol -> mock" "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
MOCK=$(grep -o 'openai protocol -> mock (http://[^)]*' "$WORK/serve.log" | sed 's/.*(//' || true)
[ -n "$MOCK" ] || { echo "the server did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
KEY=$(curl -fsS -X POST -H 'authorization: Bearer bench-admin' -H 'content-type: application/json' \
    "http://127.0.0.1:$PORT/api/v1/keys" -d '{"user":"bench","team":"bench"}' |
    "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["key"])')
echo "commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), $TURNS turns per path in blocks of $BLOCK" >&2
taskset -c 0 "$VENV/bin/python" bench/socket_turns.py "$MOCK" "http://127.0.0.1:$PORT/v1" "$KEY" "$TURNS" "$BLOCK"
