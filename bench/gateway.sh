#!/usr/bin/env bash
# Gateway latency overhead and memory, measured like its peers (see ../shared/bench/README.md):
# the same mock upstream and open-loop load (oha --latency-correction) straight to the mock
# ("direct") and through `goodhart serve` with metering, the spool and SQLite on; the
# difference is what the gateway adds. oha and the mock are pinned to CPU 0, the gateway to
# CPU 1. Also samples the gateway's RSS idle and with OPEN_STREAMS streams held open.
#
# Usage: bench/gateway.sh   (env: RATES=500,1000,2000 DURATION=15 WARMUP=3 CONNS=64
#        BODIES="chat.json chat-stream.json" OPEN_STREAMS=1000 BENCH_DIR=../shared/bench
#        BUDGETS=0: with 5, five hard-capped budgets apply to every call (key, user, team,
#        org twice), with limits far above what the run spends; GOODHART=path: that binary
#        instead of building this tree's)
# Results: bench/results/gateway-<time>/ (JSON per run, summary.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATES=${RATES:-500,1000,2000}
BODIES=${BODIES:-chat.json chat-stream.json}
OPEN_STREAMS=${OPEN_STREAMS:-1000}
BUDGETS=${BUDGETS:-0}
MOCK_PORT=${MOCK_PORT:-18091}
SLOW_MOCK_PORT=${SLOW_MOCK_PORT:-18092}
GATEWAY_PORT=${GATEWAY_PORT:-18787}
OUT=${OUT:-$ROOT/bench/results/gateway-$(date -u +%Y%m%d-%H%M%S)}
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

bench_tools
build_goodhart

start_mock mock "$MOCK_PORT"
MOCK_PID=$LAST_PID
start_mock slow-mock "$SLOW_MOCK_PORT" --chunk-delay-ms 1000

{
    goodhart_toml "$MOCK_PORT"
    cat <<TOML
[limits]
max_body_bytes = 1048576
[[providers]]
name = "slow-mock"
protocol = "openai"
base_url = "http://127.0.0.1:$SLOW_MOCK_PORT/v1"
models = ["slow-gpt"]
[providers.model_map]
slow-gpt = "mock-gpt"
TOML
} >"$WORK/goodhart.toml"
start_goodhart "$WORK/goodhart.toml" "$GATEWAY_PORT"
KEY=$(goodhart_key "$GATEWAY_PORT")
if [ "$BUDGETS" -gt 0 ]; then
    KEY_ID=$(echo "$KEY" | cut -d- -f2)
    for scope in "key $KEY_ID" "user bench" "team perf" "org" "org"; do
        set -- $scope
        name=${2:+\"name\": \"$2\",}
        curl -fsS -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/api/v1/budgets" -H "Authorization: Bearer $ADMIN" \
            -H 'content-type: application/json' \
            -d "{\"scope\": \"$1\", $name \"period\": \"month\", \"limit_usd\": \"1000000\", \"action\": \"block\"}"
    done
    log "$BUDGETS budgets apply to every call"
fi
curl -fsS "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" -H "Authorization: Bearer $KEY" \
    -d @"$BENCH_DIR/loadgen/chat.json" >/dev/null
sleep 1
IDLE_RSS=$(rss_kib "$GW_PID")
log "gateway pid $GW_PID, idle RSS $((IDLE_RSS / 1024)) MiB"

for body in $BODIES; do
    for target in direct goodhart; do
        if [ "$target" = direct ]; then
            url="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"; extra=(--cpu-pid "$MOCK_PID")
        else
            url="http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions"; extra=(--auth "$KEY" --cpu-pid "$GW_PID")
        fi
        log "$target, body $body, rates $RATES"
        scrape="$OUT/metrics--${body%.json}"
        [ "$target" = goodhart ] && curl -fsS "http://127.0.0.1:$GATEWAY_PORT/metrics" >"$scrape-before.txt"
        loadtest "$target" "$url" "$BENCH_DIR/loadgen/$body" "$OUT/$target--${body%.json}.json" "${extra[@]}"
        [ "$target" = goodhart ] && curl -fsS "http://127.0.0.1:$GATEWAY_PORT/metrics" >"$scrape-after.txt"
    done
done
LOADED_RSS=$(rss_kib "$GW_PID")

# Streams held open: the slow mock sends one event a second, so every stream stays open.
python3 - "$GATEWAY_PORT" "$KEY" "$OPEN_STREAMS" "$GW_PID" >"$OUT/open-streams.txt" <<'PY'
import socket, sys, time
port, key, n, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
body = b'{"model":"slow-gpt","stream":true,"messages":[{"role":"user","content":"hold the line"}],"max_tokens":32}'
head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(head + body); conns.append(s)
time.sleep(3)
opened = 0
for s in conns:
    s.settimeout(5)
    try:
        opened += s.recv(65536).startswith(b"HTTP/1.1 200")
    except OSError:
        pass
def rss():
    fields = {l.split(":")[0]: int(l.split()[1]) // 1024 for l in open(f"/proc/{pid}/status") if l.startswith("Rss")}
    return f"RSS {fields['RssAnon'] + fields['RssFile'] + fields['RssShmem']} MiB (anonymous {fields['RssAnon']}, file-backed {fields['RssFile']})"
def file_backed():
    # Which files the file-backed pages are: the database's memory map, the binary, libraries.
    by_file, path = {}, None
    for line in open(f"/proc/{pid}/smaps"):
        head = line.split()
        if "-" in head[0] and ":" not in head[0]:
            path = head[5] if len(head) > 5 and head[5].startswith("/") else None
        elif head[0] == "Rss:" and path:
            by_file[path] = by_file.get(path, 0) + int(head[1])
    top = sorted(by_file.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{p.rsplit('/', 1)[-1]} {kib // 1024} MiB" for p, kib in top)
print(f"{opened} of {n} streams open, gateway {rss()} [file-backed: {file_backed()}]", end="")
for s in conns:
    s.close()
time.sleep(3)
print(f"; 3 s after they closed, {rss()}")
PY
{
    echo "# Goodhart gateway vs direct, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "rates $RATES rps, ${DURATION}s each after ${WARMUP}s warm-up, $CONNS connections, oha --latency-correction;"
    echo "oha + mock on CPU 0, goodhart on CPU 1; metering, spool and SQLite on; $BUDGETS hard-capped budgets per call."
    echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)"
    echo
    echo "RSS: idle $((IDLE_RSS / 1024)) MiB; after the runs $((LOADED_RSS / 1024)) MiB; $(cat "$OUT/open-streams.txt")"
    for body in $BODIES; do
        echo; echo "## body: $body"; echo
        python3 "$BENCH_DIR/compare.py" "$OUT/direct--${body%.json}.json" "$OUT/goodhart--${body%.json}.json"
        echo; echo "Where the gateway's time went during these runs (its /metrics):"; echo
        python3 bench/metrics_summary.py "$OUT/metrics--${body%.json}-after.txt" "$OUT/metrics--${body%.json}-before.txt"
    done
} | tee "$OUT/summary.md"
log "results in $OUT"
