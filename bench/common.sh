# What the bench scripts share; sourced once OUT is set. Makes OUT and a scratch WORK directory,
# and gives log, wait_http URL [SECONDS] and the PIDS array, whose processes are killed (and
# WORK removed) when the script exits.
mkdir -p "$OUT"
WORK=$(mktemp -d)

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
wait_http() {
    for _ in $(seq 1 $((${2:-10} * 10))); do
        curl -fsS -o /dev/null -m 1 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
