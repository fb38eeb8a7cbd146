"""Which web pages may open a WebSocket to us (cross-site WebSocket hijacking protection)."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default port dropped, as browsers send it."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return origin.strip().lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme]
    suffix = "" if port == DEFAULT_PORTS[parts.scheme] else f":{port}"
    return f"{parts.scheme}://{host}{suffix}"


class OriginPolicy:
    """Browsers send ``Origin``; we accept our own page, listed origins, and non-browser clients.

    "Our own page" is the one this server serves: same host name as the
    WebSocket request's ``Host`` (the page connects to the host it came from)
    and the port of our HTTP server.
    """

    def __init__(self, allowed: frozenset[str] = frozenset()) -> None:
        self.allowed = frozenset(normalize_origin(origin) for origin in allowed)
        self.page_ports: set[int] = set()

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser: no ambient credentials to abuse
        if normalize_origin(origin) in self.allowed:
            return True
        parts = urlsplit(origin.strip().lower())
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or host is None:
            return False
        try:
            port = parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme]
        except ValueError:
            return False
        return parts.hostname == _hostname(host) and port in self.page_ports


def _hostname(host_header: str) -> str:
    """The host part of a ``Host`` header, without port or IPv6 brackets."""
    return urlsplit(f"//{host_header.strip().lower()}").hostname or ""
