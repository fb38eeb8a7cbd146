#!/usr/bin/env bash
# Run everything CI runs: lint, type check, the whole test suite.
EXTRAS=test source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"

# Debian packages the tests start: Chromium for the browser tests (Playwright's own browser download does
# not work here), redis-server for rooms shared by several processes.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    # The package starts a system-wide redis-server on port 6379; the tests start their own on free ports.
    if [[ " ${missing[*]} " == *" redis-server "* ]]; then
        $sudo systemctl disable --now redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
    fi
fi

"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/pytest" "$@"
