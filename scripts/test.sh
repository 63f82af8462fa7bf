#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this after fmt and clippy).
# Needs the local PostgreSQL on 127.0.0.1:5432 (GOODHART_TEST_POSTGRES_URL overrides it);
# starts the machine's cluster if it is installed but stopped. Installs the real clients the
# gateway is tested with (cached under .cache/clients).
set -euo pipefail
cd "$(dirname "$0")/.."

# core holds pure logic: it must never gain IO, a database or an async runtime.
forbidden='^(tokio|tokio-util|mio|axum|hyper|hyper-util|reqwest|rusqlite|libsqlite3-sys|tokio-postgres|postgres|deadpool-postgres|sqlx) '
if cargo tree -p goodhart-core -e normal --prefix none | grep -E "$forbidden"; then
    echo "error: goodhart-core depends on an IO or async crate (above); keep it pure" >&2
    exit 1
fi

# No crate's files may import each other in a circle.
python3 scripts/import_cycles.py crates/core/src crates/sim/src crates/store/src crates/gateway/src crates/server/src crates/cli/src

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
fi

# The real clients (OpenAI and Anthropic Python SDKs, Claude Code, Codex CLI) the gateway tests drive.
bash scripts/setup-clients.sh

cargo test --workspace --locked
