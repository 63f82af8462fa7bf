#!/usr/bin/env bash
# Goodhart and LiteLLM side by side (issue 21, item 5): one mock upstream process, the same
# request bodies, rates, connection count and pinning (oha and the mock on CPU 0, the gateway
# under test on CPU 1) straight to the mock ("direct"), through `goodhart serve` (release;
# metering, spool and SQLite on) and through the LiteLLM proxy (one worker, no database,
# callbacks off: ../shared/bench/litellm/config.nodb.yaml). One table: achieved rps, latency and
# latency added over direct, and each target's CPU (% of a core, and ms of CPU per call).
#
# Both gateways stay up for the whole run, each idle while the other is measured; their idle CPU
# is measured first and printed with the table. Per body the targets run in turn (direct,
# goodhart, litellm), each at every rate, so the baseline is never far in time from its peers.
#
# Usage: bench/compare.sh   (env: RATES=100,500,1000 DURATION=15 WARMUP=3 CONNS=64
#        BODIES="chat.json chat-stream.json" TARGETS="direct goodhart litellm"
#        LITELLM_SPEC='litellm[proxy]==1.108.7' (installed into BENCH_DIR/.cache/litellm-venv if
#        that has no LiteLLM yet; an existing install is used as it is and its version printed)
#        BENCH_DIR=../shared/bench MOCK_PORT=18291 GATEWAY_PORT=18987 LITELLM_PORT=14101)
# Results: bench/results/compare-<time>/ (JSON per target and body, logs, summary.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATES=${RATES:-100,500,1000}
BODIES=${BODIES:-chat.json chat-stream.json}
TARGETS=${TARGETS:-direct goodhart litellm}
LITELLM_SPEC=${LITELLM_SPEC:-'litellm[proxy]==1.108.7'}
MOCK_PORT=${MOCK_PORT:-18291}
GATEWAY_PORT=${GATEWAY_PORT:-18987}
LITELLM_PORT=${LITELLM_PORT:-14101}
OUT=${OUT:-$ROOT/bench/results/compare-$(date -u +%Y%m%d-%H%M%S)}
LITELLM_KEY=sk-bench-master # the master key in config.nodb.yaml
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
VENV="$BENCH_DIR/.cache/litellm-venv"

wants() { [[ " $TARGETS " == *" $1 "* ]]; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$MOCK_PORT" "$GATEWAY_PORT" "$LITELLM_PORT"; do
    port_free "$port" || { log "port $port is in use; set MOCK_PORT, GATEWAY_PORT or LITELLM_PORT"; exit 1; }
done
# cpu_ticks PID: utime + stime of PID and its descendants in clock ticks, as loadtest.py counts them.
cpu_ticks() {
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import loadtest as l; print(l.cpu_ticks(l.proc_tree(int(sys.argv[2]))))' \
        "$BENCH_DIR" "$1"
}
# reaches_mock NAME URL KEY: one call through a gateway must reach the mock (no cache, no stub).
reaches_mock() {
    local before
    before=$(mock_requests "$MOCK_PORT")
    curl -fsS -m 10 -o /dev/null "$2" -H "Authorization: Bearer $3" -H 'content-type: application/json' \
        -d @"$BENCH_DIR/loadgen/chat.json" || { log "$1: the test call failed"; exit 1; }
    [ "$(mock_requests "$MOCK_PORT")" -gt "$before" ] || { log "$1 did not reach the mock"; exit 1; }
}

bench_tools
if wants goodhart; then build_goodhart; fi
if wants litellm && [ ! -x "$VENV/bin/litellm" ]; then
    log "installing $LITELLM_SPEC into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$LITELLM_SPEC"
fi

start_mock mock "$MOCK_PORT"
MOCK_PID=$LAST_PID
declare -A URL=([direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions") CPU_PID=([direct]=$MOCK_PID) AUTH=()
VERSIONS="oha $("$OHA" --version | awk '{print $2}')"
if wants goodhart; then
    goodhart_toml "$MOCK_PORT" >"$WORK/goodhart.toml"
    start_goodhart "$WORK/goodhart.toml" "$GATEWAY_PORT"
    URL[goodhart]="http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" CPU_PID[goodhart]=$GW_PID
    AUTH[goodhart]=$(goodhart_key "$GATEWAY_PORT")
    VERSIONS+=", goodhart $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty)"
fi
if wants litellm; then
    start_bg "$OUT/litellm.log" env MOCK_OPENAI_BASE="http://127.0.0.1:$MOCK_PORT/v1" \
        MOCK_ANTHROPIC_BASE="http://127.0.0.1:$MOCK_PORT" LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
        NO_DOCS=True taskset -c 1 "$VENV/bin/litellm" --config "$BENCH_DIR/litellm/config.nodb.yaml" \
        --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1
    CPU_PID[litellm]=$LAST_PID
    wait_http "http://127.0.0.1:$LITELLM_PORT/health/readiness" 120 ||
        { log "litellm did not become ready:"; tail -20 "$OUT/litellm.log" >&2; exit 1; }
    URL[litellm]="http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" AUTH[litellm]=$LITELLM_KEY
    VERSIONS+=", litellm $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
fi
for target in $TARGETS; do
    [ -n "${URL[$target]:-}" ] || { log "unknown target $target (direct, goodhart, litellm)"; exit 1; }
    [ "$target" = direct ] || reaches_mock "$target" "${URL[$target]}" "${AUTH[$target]}"
done
log "$VERSIONS; pids: ${CPU_PID[*]}"

# What the gateways burn while nobody calls them (each is idle while the other is measured).
IDLE=""
declare -A T0
for target in $TARGETS; do T0[$target]=$(cpu_ticks "${CPU_PID[$target]}"); done
sleep 5
for target in $TARGETS; do
    IDLE+="$target $(python3 -c "print(round(($(cpu_ticks "${CPU_PID[$target]}") - ${T0[$target]}) / $(getconf CLK_TCK) / 5 * 100, 1))") %, "
done
log "idle CPU: ${IDLE%, }"

for body in $BODIES; do
    for target in $TARGETS; do
        log "$target, body $body, rates $RATES"
        extra=(--cpu-pid "${CPU_PID[$target]}")
        [ -z "${AUTH[$target]:-}" ] || extra+=(--auth "${AUTH[$target]}")
        loadtest "$target" "${URL[$target]}" "$BENCH_DIR/loadgen/$body" "$OUT/$target--${body%.json}.json" "${extra[@]}"
    done
done

{
    echo "# Goodhart and LiteLLM vs direct, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "$VERSIONS; rates $RATES rps, ${DURATION}s each after ${WARMUP}s warm-up, $CONNS connections,"
    echo "oha --latency-correction; oha + mock on CPU 0, each gateway on CPU 1 (one LiteLLM worker, no DB)."
    echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)"
    echo "CPU while idle (5 s): ${IDLE%, }"
    echo
    # shellcheck disable=SC2086
    python3 "$ROOT/bench/compare_table.py" "$OUT" "$BODIES" $TARGETS
} | tee "$OUT/summary.md"
log "results in $OUT"
