#!/usr/bin/env bash
# Run everything CI runs: lint, type check, the whole test suite.
EXTRAS=test source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/pytest" "$@"
