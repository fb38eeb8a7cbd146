#!/usr/bin/env bash
# Run everything CI runs: lint, type check, the whole test suite.
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/pytest" "$@"
