"""``python -m chatclient``: the same as ``chat-client``."""

from .cli import main

raise SystemExit(main())
