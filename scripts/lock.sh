#!/usr/bin/env bash
# Refresh the lock files in requirements/ from pyproject.toml (docs/architecture.md: "Dependencies and the lock files"):
#   scripts/lock.sh             keep every pin that still fits pyproject.toml, pin what is new
#   scripts/lock.sh --upgrade   the newest versions pyproject.toml allows (other pip-compile options pass too: -P redis)
# Then run scripts/test.sh: after a refresh, the suite decides.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The locks are for CPython 3.11 on Linux. Markers are evaluated while resolving and the locks' lines carry none
# (pip installs every line), so resolve on the oldest 3.11 they serve, Debian 12's 3.11.2 (redis needs async-timeout
# before 3.11.3): a newer 3.11 then installs a package or two it does without. tests/server/test_locks.py checks it.
PYTHON="${PYTHON:-/usr/bin/python3.11}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:3] != (3, 11, 2))' \
    || { echo "lock.sh: PYTHON must be a CPython 3.11.2 (Debian 12's /usr/bin/python3.11)" >&2; exit 2; }

# PyPI alone, whatever this machine's pip configuration adds (mirrors, local wheels): the hashes must be PyPI's.
for variable in $(compgen -e | grep '^PIP_' || true); do
    unset "$variable"
done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
INDEX=https://pypi.org/simple

TOOLS="$(mktemp -d)"
trap 'rm -rf "$TOOLS"' EXIT
"$PYTHON" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install --quiet --index-url "$INDEX" --require-hashes -r "$ROOT/requirements/pip-tools.txt"

cd "$ROOT"
# --strip-extras: server.txt is test.txt's constraint file, and constraints cannot name extras.
# --allow-unsafe: pins setuptools or pip when something needs them; hash checking refuses anything unpinned.
# --build-deps-for editable: hatchling and what it needs, for `pip install --no-build-isolation`.
compile=(env CUSTOM_COMPILE_COMMAND=scripts/lock.sh "$TOOLS/bin/pip-compile" --quiet --no-config
         --index-url "$INDEX" --no-emit-index-url --no-emit-find-links
         --generate-hashes --strip-extras --allow-unsafe "$@")
"${compile[@]}" --output-file requirements/pip-tools.txt requirements/pip-tools.in
"${compile[@]}" --build-deps-for editable --output-file requirements/server.txt pyproject.toml
"${compile[@]}" --build-deps-for editable --extra test --constraint requirements/server.txt \
    --output-file requirements/test.txt pyproject.toml
