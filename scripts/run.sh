#!/usr/bin/env bash
# Run the chat server (page and socket, one process). Flags go to chat-server: see --help.
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
exec "$VENV/bin/chat-server" "$@"
