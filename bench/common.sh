# What the bench scripts share; sourced once ROOT (the repository) and OUT are set. Makes OUT and a
# scratch WORK directory, and gives log, wait_http URL [SECONDS], start_bg, the PIDS array (whose
# processes are stopped, and WORK removed, when the script exits), and the pieces of a run against
# the shared harness (../shared/bench): its tools, the mock upstream, `goodhart serve` with a key,
# and loadtest.py. Pinning is the harness's: oha and the mock on CPU 0, the gateway on CPU 1.
mkdir -p "$OUT"
BENCH_DIR=$(cd "${BENCH_DIR:-$ROOT/../shared/bench}" && pwd) # the shared harness
# loadtest's settings, unless the caller set them: seconds per measured rate, seconds of warm-up
# before each, connections.
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
WORK=$(mktemp -d)
OHA="$BENCH_DIR/.cache/cargo-root/bin/oha"
MOCK="$BENCH_DIR/.cache/mock-upstream-target/release/mock-upstream"
# GOODHART=path runs that binary (say, an earlier commit's, for an A/B run) instead of building.
GOODHART_GIVEN=${GOODHART:+1}
GOODHART=${GOODHART:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/goodhart"}
ADMIN=bench-admin-token

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
PIDS=()
# stop_pid PID: TERM to its process group (start_bg makes one) or else to it alone; KILL after 5 s.
stop_pid() {
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && stop_pid "$pid"; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() {
    for _ in $(seq 1 $((${2:-10} * 10))); do
        curl -fsS -o /dev/null -m 1 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# start_bg LOGFILE CMD...: CMD in the background as its own process group, so that stopping it
# stops its children too (LiteLLM's workers); sets LAST_PID and adds it to PIDS.
start_bg() {
    local logf=$1
    shift
    setsid "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# Builds the shared harness's mock upstream and oha if they are missing.
bench_tools() {
    [ -x "$MOCK" ] || (cd "$BENCH_DIR/mock-upstream" && cargo build --release)
    [ -x "$OHA" ] || CARGO_TARGET_DIR="$BENCH_DIR/.cache/oha-target" cargo install oha --locked --root "$BENCH_DIR/.cache/cargo-root"
}
# Builds this tree's `goodhart` unless GOODHART named a binary.
build_goodhart() {
    [ -n "$GOODHART_GIVEN" ] || cargo build --release -p goodhart
}
# start_mock NAME PORT [ARGS...]: the shared mock upstream, one thread on CPU 0; sets LAST_PID.
start_mock() {
    local name=$1 port=$2
    shift 2
    start_bg "$OUT/$name.log" taskset -c 0 "$MOCK" --addr "127.0.0.1:$port" --threads 1 "$@"
    wait_http "http://127.0.0.1:$port/health" || { log "$name did not start"; cat "$OUT/$name.log" >&2; exit 1; }
}
# mock_requests PORT: how many requests the mock has answered.
mock_requests() {
    curl -fsS "http://127.0.0.1:$1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'
}
# goodhart_toml MOCK_PORT: a config with SQLite in WORK and the mock as provider `mock`
# (OpenAI protocol, model mock-gpt, priced); scripts append what else they need.
goodhart_toml() {
    cat <<TOML
database_url = "sqlite://$WORK/goodhart.db"
[[providers]]
name = "mock"
protocol = "openai"
base_url = "http://127.0.0.1:$1/v1"
models = ["mock-gpt"]
[[prices.model]]
provider = "mock"
model = "mock-gpt"
input = 0.15
output = 0.60
TOML
}
# start_goodhart CONFIG PORT: `goodhart serve` (metering, spool and the configured store on) on
# CPU 1; sets GW_PID once it answers.
start_goodhart() {
    start_bg "$OUT/goodhart.log" env RUST_LOG=warn GOODHART_ADMIN_TOKEN=$ADMIN taskset -c 1 \
        "$GOODHART" --config "$1" serve --listen "127.0.0.1:$2"
    GW_PID=$LAST_PID
    wait_http "http://127.0.0.1:$2/healthz" 60 || { log "goodhart did not start"; cat "$OUT/goodhart.log" >&2; exit 1; }
}
# goodhart_key PORT: a new virtual key (user bench, team perf) from the gateway on PORT.
goodhart_key() {
    curl -fsS "http://127.0.0.1:$1/api/v1/keys" -H "Authorization: Bearer $ADMIN" \
        -H 'content-type: application/json' -d '{"user": "bench", "team": "perf"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}
# loadtest NAME URL BODY OUTFILE [ARGS...]: loadtest.py at RATES for DURATION after WARMUP, CONNS
# connections, oha on CPU 0; ARGS go to loadtest.py (--auth, --cpu-pid).
loadtest() {
    local name=$1 url=$2 body=$3 outf=$4
    shift 4
    python3 "$BENCH_DIR/loadtest.py" --oha "$OHA" --loadgen-cpus 0 --name "$name" --url "$url" \
        --body "$body" --rates "$RATES" --duration "$DURATION" --warmup "$WARMUP" \
        --connections "$CONNS" --out "$outf" "$@"
}
