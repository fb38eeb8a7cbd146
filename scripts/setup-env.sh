# Sourced by run.sh and test.sh: makes .venv, installs the locked packages, then the project (editable).
# run.sh installs the server's lock (requirements/server.txt); test.sh sets LOCK=test for requirements/test.txt.
# Re-installs only when the lock or pyproject.toml change, so repeated runs start at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
LOCK="${LOCK:-server}"

# The locks are resolved for CPython 3.11 (scripts/lock.sh): another Python would install packages not made for it.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || {
    echo "scripts/setup-env.sh: $PYTHON is not Python 3.11; the lock files are for 3.11: PYTHON=python3.11 $0" >&2
    exit 2
}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
inputs() { cat "$ROOT/requirements/$1.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16; }
stamp="$VENV/.installed-$LOCK-$(inputs "$LOCK")"
# A venv made for the tests also serves the server: the test lock holds the server's packages at the same versions.
tested="$VENV/.installed-test-$(inputs test)"
if [ ! -f "$stamp" ] && [ ! -f "$tested" ]; then
    # PyICU (the names signed-in members hold) comes as source only: it builds against the system's ICU.
    # Its Debian build dependencies, installed only when missing (the server's, so the run command needs them too).
    missing=()
    pkg-config --exists icu-i18n 2>/dev/null || missing+=(libicu-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v g++ >/dev/null || missing+=(g++)
    "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_path("include") + "/Python.h"))' \
        || missing+=(python3-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Every package at its locked version, each file checked against the lock's hashes; pip as the venv has it.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$ROOT/requirements/$LOCK.txt"
    # The project alone, built by the locked hatchling: nothing unpinned is fetched.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
