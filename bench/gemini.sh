#!/usr/bin/env bash
# Gateway latency overhead on the Gemini API (issue 18), measured as bench/gateway.sh measures
# OpenAI's: the same mock upstream (`goodhart-mock`, the built-in mock on one thread, pinned to
# CPU 0 with the load generator) and open-loop load (oha --latency-correction, through
# ../shared/bench/loadtest.py) straight to the mock ("direct") and through `goodhart serve`
# (release, pinned to CPU 1; metering + spool + SQLite on): `generateContent`, and
# `streamGenerateContent?alt=sse` (SSE).
#
# Usage: bench/gemini.sh   (env: RATES=1000,2000 DURATION=15 WARMUP=3 CONNS=64 BENCH_DIR=../shared/bench)
# Results: bench/results/gemini-<time>/ (JSON per run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATES=${RATES:-1000,2000}
MOCK_PORT=${MOCK_PORT:-18093}
GATEWAY_PORT=${GATEWAY_PORT:-18788}
OUT=${OUT:-$ROOT/bench/results/gemini-$(date -u +%Y%m%d-%H%M%S)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

[ -x "$OHA" ] || CARGO_TARGET_DIR="$BENCH_DIR/.cache/oha-target" cargo install oha --locked --root "$BENCH_DIR/.cache/cargo-root"
cargo build --release -p goodhart -p goodhart-sim --bin goodhart --bin goodhart-mock

taskset -c 0 "$TARGET/release/goodhart-mock" --addr "127.0.0.1:$MOCK_PORT" >"$OUT/mock.log" 2>&1 &
MOCK_PID=$!; PIDS+=("$MOCK_PID")
wait_http "http://127.0.0.1:$MOCK_PORT/health"
cat >"$WORK/goodhart.toml" <<TOML
database_url = "sqlite://$WORK/goodhart.db"
[[providers]]
name = "google"
protocol = "gemini"
base_url = "http://127.0.0.1:$MOCK_PORT"
TOML
RUST_LOG=warn GOODHART_ADMIN_TOKEN=$ADMIN taskset -c 1 "$TARGET/release/goodhart" --config "$WORK/goodhart.toml" serve \
    --listen "127.0.0.1:$GATEWAY_PORT" >"$OUT/goodhart.log" 2>&1 &
GW_PID=$!; PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$GATEWAY_PORT/healthz"
KEY=$(goodhart_key "$GATEWAY_PORT")
log "commit $(git rev-parse --short HEAD); gateway pid $GW_PID, mock pid $MOCK_PID"

for method in "generateContent" "streamGenerateContent?alt=sse"; do
    for target in direct goodhart; do
        if [ "$target" = direct ]; then
            base="http://127.0.0.1:$MOCK_PORT"; extra=(--cpu-pid "$MOCK_PID")
        else
            base="http://127.0.0.1:$GATEWAY_PORT"; extra=(--auth "$KEY" --cpu-pid "$GW_PID")
        fi
        name="${method%%\?*}"
        log "$target, $name, rates $RATES"
        loadtest "$target" "$base/v1beta/models/gemini-2.5-flash:$method" bench/bodies/gemini.json \
            "$OUT/$target--$name.json" "${extra[@]}"
    done
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for method in ["generateContent", "streamGenerateContent"]:
    direct = json.loads((out / f"direct--{method}.json").read_text())
    gateway = json.loads((out / f"goodhart--{method}.json").read_text())
    for d, g in zip(direct["results"], gateway["results"]):
        print(f"{method:24} {d['rate']:>6} rps: direct p50 {d['p50_ms']:.2f} p99 {d['p99_ms']:.2f} ms | "
              f"gateway p50 {g['p50_ms']:.2f} p99 {g['p99_ms']:.2f} ms, {g['achieved_rps']:.0f} rps, "
              f"CPU {g.get('target_cpu_pct', 0):.0f} % | added p50 {g['p50_ms'] - d['p50_ms']:.2f} p99 {g['p99_ms'] - d['p99_ms']:.2f} ms")
PY
