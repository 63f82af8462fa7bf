#!/usr/bin/env bash
# `goodhart import claude-code` against ccusage on the same generated corpus, back to back. Each
# round runs every goodhart binary given (a first import into a fresh SQLite database, then the
# same import again, which must add 0), then `ccusage daily --json --offline`; rounds alternate
# so a binary's runs are spread over the session. Wall time, user+system CPU and peak RSS come
# from /usr/bin/time -v, and the script stops if any run counts other tokens than ccusage.
#
# Usage: bench/import.sh BINARY... (env: ROUNDS=2 FILES=1000 CORPUS_HOME=/tmp/cchome
#        CCUSAGE=/tmp/ccusage/node_modules/.bin/ccusage; npm install --prefix /tmp/ccusage
#        ccusage@17.2.1 installs it)
# Prints one table row per run; the rows also go to bench/results/import-<time>/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-2}
FILES=${FILES:-1000}
CORPUS_HOME=${CORPUS_HOME:-/tmp/cchome}
CCUSAGE=${CCUSAGE:-/tmp/ccusage/node_modules/.bin/ccusage}
OUT=${OUT:-$ROOT/bench/results/import-$(date -u +%Y%m%d-%H%M%S)}
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

[ $# -gt 0 ] || { echo "usage: bench/import.sh BINARY..." >&2; exit 2; }
[ -x "$CCUSAGE" ] || { echo "no ccusage at $CCUSAGE (npm install --prefix /tmp/ccusage ccusage@17.2.1)" >&2; exit 1; }
LOGS=$CORPUS_HOME/.claude/projects
[ -d "$LOGS" ] || { log "generating the corpus in $LOGS"; python3 scripts/gen-claude-logs.py "$LOGS" "$FILES" >&2; }

# time -v's fields of one run: wall seconds, CPU seconds, peak RSS in MB.
measure() {
    awk -F': ' '
        /Elapsed/ { n = split($2, p, ":"); wall = (n == 3) ? p[1] * 3600 + p[2] * 60 + p[3] : p[1] * 60 + p[2] }
        /User time/ { cpu += $2 } /System time/ { cpu += $2 }
        /Maximum resident/ { rss = $2 / 1024 }
        END { printf "%.2f s | %.2f s | %.0f MB", wall, cpu, rss }' "$1"
}

row() { echo "| $1 | $2 | $(measure "$3") | $4 |" | tee -a "$OUT/summary.md"; }

echo "| run | what | wall | CPU (user+sys) | peak RSS | result |" | tee "$OUT/summary.md"
echo "| --- | --- | ---: | ---: | ---: | --- |" | tee -a "$OUT/summary.md"
for round in $(seq 1 "$ROUNDS"); do
    for binary in "$@"; do
        name=$(basename "$(dirname "$binary")")
        for pass in first again; do
            [ "$pass" = first ] && rm -f "$WORK"/import.db*
            /usr/bin/time -v "$binary" --database-url "sqlite://$WORK/import.db" \
                import claude-code "$LOGS" --user bench >"$WORK/out" 2>"$WORK/time"
            tokens=$(grep -o '[0-9]* tokens' "$WORK/out" | cut -d' ' -f1)
            imported=$(grep -o '[0-9]* new, [0-9]* already there' "$WORK/out")
            row "$round" "$name, $pass import" "$WORK/time" "$tokens tokens; $imported"
            [ "$pass" = first ] && sqlite3 "$WORK/import.db" "SELECT sum(input_tokens), sum(output_tokens),
                sum(cache_write_5m_tokens) + sum(cache_write_1h_tokens), sum(cache_read_tokens), $tokens
                FROM usage_events" >"$WORK/tokens.$name"
        done
    done
    HOME=$CORPUS_HOME /usr/bin/time -v "$CCUSAGE" daily --json --offline >"$WORK/ccusage.json" 2>"$WORK/time"
    # input|output|cache writes|cache reads|total, as the databases' sums are printed.
    ccusage_tokens=$(python3 -c 'import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print("|".join(str(t[k]) for k in ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")))' \
        "$WORK/ccusage.json")
    row "$round" "ccusage daily --json --offline" "$WORK/time" "${ccusage_tokens##*|} tokens"
    for binary in "$@"; do
        name=$(basename "$(dirname "$binary")")
        [ "$(cat "$WORK/tokens.$name")" = "$ccusage_tokens" ] ||
            { echo "$name counted $(cat "$WORK/tokens.$name"), ccusage $ccusage_tokens (input|output|cache writes|cache reads|total)" >&2; exit 1; }
    done
done
echo "Every kind of token the same in all runs (input|output|cache writes|cache reads|total): $ccusage_tokens" |
    tee -a "$OUT/summary.md"
