# Sourced by run.sh and test.sh: makes .venv with the project installed (editable).
# run.sh installs what the server needs; test.sh sets EXTRAS=test for the test tools as well.
# Re-installs only when pyproject.toml or the extras change, so repeated runs start at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
target="$ROOT"
[ -z "$EXTRAS" ] || target="$ROOT[$EXTRAS]"
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" - <<<"$EXTRAS" | sha256sum | cut -c1-16)"
# A venv made for the tests also serves the server: the extras only add packages.
tested="$VENV/.installed-$(cat "$ROOT/pyproject.toml" - <<<"test" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] && [ ! -f "$tested" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
