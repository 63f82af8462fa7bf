#!/usr/bin/env bash
# Installs the real clients Goodhart is tested with, once, under .cache/clients (or
# $GOODHART_CLIENTS_DIR): the official openai, anthropic and google-genai Python SDKs, boto3 (its
# bedrock-runtime client) and Selenium in a virtualenv; schemathesis (which fuzzes the API from
# its OpenAPI document) in a virtualenv of its own, so its pins never move the SDKs'; Claude
# Code, Codex CLI, Gemini CLI, ccusage and oidc-provider (the single sign-on tests' identity
# provider) from npm; Debian's chromium and chromium-driver for the dashboard's browser tests
# (never a browser Selenium downloads). Versions are pinned so a test
# run means the same thing every time; re-running is a no-op when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENAI_SDK=openai==3.54.0
ANTHROPIC_SDK=anthropic==2.12.0
GOOGLE_GENAI_SDK=google-genai==3.6.1
BOTO3=boto3==1.44.8
SELENIUM=selenium==4.51.0
SCHEMATHESIS=schemathesis==4.32.5
CLAUDE_CODE=@anthropic-ai/claude-code@2.1.197
CODEX=@openai/codex@0.171.0
GEMINI_CLI=@google/gemini-cli@0.61.0
# The last ccusage in plain JavaScript: later versions need a native package per platform.
CCUSAGE=ccusage@17.2.1
# A certified OpenID Connect provider: the single sign-on tests start one on loopback.
OIDC_PROVIDER=oidc-provider@9.13.3

dir=${GOODHART_CLIENTS_DIR:-$PWD/.cache/clients}
mkdir -p "$dir"

installed=$("$dir/venv/bin/python" -c \
    'import importlib.metadata as m; print(*(m.version(p) for p in ("openai", "anthropic", "google-genai", "boto3", "selenium")))' \
    2>/dev/null || true)
if [ "$installed" != "${OPENAI_SDK#*==} ${ANTHROPIC_SDK#*==} ${GOOGLE_GENAI_SDK#*==} ${BOTO3#*==} ${SELENIUM#*==}" ]; then
    echo "installing $OPENAI_SDK $ANTHROPIC_SDK $GOOGLE_GENAI_SDK $BOTO3 $SELENIUM into $dir/venv" >&2
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "$OPENAI_SDK" "$ANTHROPIC_SDK" "$GOOGLE_GENAI_SDK" "$BOTO3" "$SELENIUM"
fi

if [ "$("$dir/schemathesis/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "${SCHEMATHESIS#*==}" ]; then
    echo "installing $SCHEMATHESIS into $dir/schemathesis" >&2
    python3 -m venv "$dir/schemathesis"
    "$dir/schemathesis/bin/pip" install --quiet --disable-pip-version-check "$SCHEMATHESIS"
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "installing Debian's chromium and chromium-driver" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ "$("$dir/node_modules/.bin/claude" --version 2>/dev/null | awk '{print $1}')" != "${CLAUDE_CODE##*@}" ] ||
    [ "$("$dir/node_modules/.bin/codex" --version 2>/dev/null | awk '{print $2}')" != "${CODEX##*@}" ] ||
    [ "$("$dir/node_modules/.bin/gemini" --version 2>/dev/null)" != "${GEMINI_CLI##*@}" ] ||
    [ "$("$dir/node_modules/.bin/ccusage" --version 2>/dev/null)" != "${CCUSAGE##*@}" ] ||
    [ "$(node -p 'require(process.argv[1]).version' "$dir/node_modules/oidc-provider/package.json" 2>/dev/null)" != "${OIDC_PROVIDER##*@}" ]; then
    echo "installing $CLAUDE_CODE $CODEX $GEMINI_CLI $CCUSAGE $OIDC_PROVIDER into $dir" >&2
    # All in one command: an npm install without a package.json prunes what it was not given.
    (cd "$dir" && npm install --silent --no-fund --no-audit --no-save "$CLAUDE_CODE" "$CODEX" "$GEMINI_CLI" "$CCUSAGE" "$OIDC_PROVIDER")
fi
