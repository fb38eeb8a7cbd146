#!/usr/bin/env bash
# Run everything CI runs: lint, type check, the documentation site's build, the whole test suite.
LOCK=test source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"

# Debian packages the tests start: Chromium for the browser tests (Playwright's own browser download does
# not work here), redis-server for rooms shared by several processes, nginx (with its stream module) for
# the docs' load-balancer example, systemd's systemd-analyze for the service file.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
[ -x /usr/bin/systemd-analyze ] || missing+=(systemd)  # verifies deploy/chat-server.service
command -v curl >/dev/null || missing+=(curl)  # real clients of the rude-client matrix, with openssl s_client
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    # The packages start system-wide services (Redis on 6379, nginx on 80); the tests start their own.
    for service in redis-server nginx; do
        if [[ " ${missing[*]} " == *" $service "* ]]; then
            $sudo systemctl disable --now "$service" >/dev/null 2>&1 || $sudo service "$service" stop >/dev/null 2>&1 || true
        fi
    done
fi

"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
# The documentation site (mkdocs.yml): a broken link or anchor, or a page left out of the navigation, fails.
site="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --site-dir "$site"
rm -rf "$site"
exec "$VENV/bin/pytest" "$@"
