#!/usr/bin/env bash
# Instructions per gateway call: a figure that holds on a noisy machine. `goodhart serve` runs
# under valgrind's callgrind (instrumentation off until warmed up), in front of the shared mock
# upstream, with metering, the spool and SQLite on; for each body, CALLS calls are sent one after
# another on one keep-alive connection while instrumentation is on, and the instructions the
# gateway spends in its HTTP connections — request handling, the upstream client, metering and
# recording, but not background work such as spool flushes — are divided by CALLS.
#
# Usage: bench/instructions.sh   (env: CALLS=300 WARMUP=30 BODIES="chat.json chat-stream.json"
#        BENCH_DIR=../shared/bench)
# Prints one line per body; results also in bench/results/instructions-<time>/summary.md, with
# each body's callgrind profile (`callgrind_annotate callgrind.chat.out` shows where they go).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CALLS=${CALLS:-300}
WARMUP=${WARMUP:-30}
BODIES=${BODIES:-chat.json chat-stream.json}
MOCK_PORT=${MOCK_PORT:-18191}
GATEWAY_PORT=${GATEWAY_PORT:-18887}
OUT=${OUT:-$ROOT/bench/results/instructions-$(date -u +%Y%m%d-%H%M%S)}
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$MOCK" ] || CARGO_TARGET_DIR="$BENCH_DIR/.cache/mock-upstream-target" cargo build --release \
    --manifest-path "$BENCH_DIR/mock-upstream/Cargo.toml"
cargo build --release -p goodhart

"$MOCK" --addr "127.0.0.1:$MOCK_PORT" --threads 1 >"$OUT/mock.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/health"

goodhart_toml "$MOCK_PORT" >"$WORK/goodhart.toml"
# Only what runs inside an HTTP/1 connection's poll is counted — the server's connections and the
# upstream client's — not the background tasks (spool flushes, detection), whose share of the
# measured window would depend on wall time.
RUST_LOG=warn GOODHART_ADMIN_TOKEN=$ADMIN valgrind --tool=callgrind --instr-atstart=no \
    --toggle-collect='<hyper::server::conn::http1::UpgradeableConnection<*> as core::future::future::Future>::poll' \
    --toggle-collect='<hyper::client::conn::http1::upgrades::UpgradeableConnection<*> as core::future::future::Future>::poll' \
    --callgrind-out-file="$WORK/callgrind.out" "$GOODHART" --config "$WORK/goodhart.toml" serve \
    --listen "127.0.0.1:$GATEWAY_PORT" >"$OUT/goodhart.log" 2>&1 &
GW_PID=$!; PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$GATEWAY_PORT/healthz" 120
KEY=$(goodhart_key "$GATEWAY_PORT")

# Sends N calls of BODY on one keep-alive connection, reading each answer to its end.
calls() {
    python3 - "$GATEWAY_PORT" "$KEY" "$BENCH_DIR/loadgen/$1" "$2" <<'PY'
import http.client, sys
port, key, body, n = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read(), int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body,
                 {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
PY
}

COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo "+dirty")
{
    echo "# Instructions per gateway call, $(date -u +%Y-%m-%dT%H:%MZ), commit $COMMIT"
    echo
    echo "callgrind, $CALLS calls per body after $WARMUP warm-up calls, one keep-alive connection;"
    echo "metering, spool and SQLite on. machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo
} >"$OUT/summary.md"
for body in $BODIES; do
    calls "$body" "$WARMUP"
    callgrind_control -z "$GW_PID" >/dev/null
    callgrind_control -i on "$GW_PID" >/dev/null
    calls "$body" "$CALLS"
    callgrind_control -i off "$GW_PID" >/dev/null
    rm -f "$WORK"/callgrind.out.*
    callgrind_control -d "$body" "$GW_PID" >/dev/null
    dump=""
    for _ in $(seq 1 100); do
        dump=$(ls "$WORK"/callgrind.out.* 2>/dev/null | head -1) && [ -n "$dump" ] && grep -q '^totals:' "$dump" && break
        sleep 0.1
    done
    total=$(awk '/^totals:/ {print $2}' "$dump")
    cp "$dump" "$OUT/callgrind.${body%.json}.out"
    line=$(printf '%-18s %12d instructions per call (%d calls, %d instructions)' "$body" $((total / CALLS)) "$CALLS" "$total")
    echo "$line" | tee -a "$OUT/summary.md"
done
log "results in $OUT"
