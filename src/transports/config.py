"""What one server process runs: which transport, which application, where.

A leaf: every setting's type (the small enums and records below) is defined
here, so the packages that use a setting import it from here and this
module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import platformdirs

from chatcore import CoreLimits

MIN_TIMER_PERIOD = 0.05
"""Shortest pause of a periodic task (keepalive rounds, presence refreshes), however small the settings it
derives from: a busy loop costs more than any such setting could gain."""
MAX_HEADER_BYTES = 16 * 1024
"""Largest request head by default (``--max-header-bytes``)."""
MAX_HEADERS = 64
"""Most header fields by default (``--max-headers``)."""


class StartupError(Exception):
    """A setting that cannot work, found at start; ``chat-server`` prints it as one line and exits 2."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one connection may cost the server."""

    max_message_size: int = 64 * 1024
    """Largest incoming message, in characters (text) or bytes (binary); above it: close 1009."""
    outbox_bytes: int = 1024 * 1024
    """Outgoing data queued per connection; above it the connection is closed with 1008."""
    max_header_bytes: int = MAX_HEADER_BYTES
    """Largest request head (request line and headers) of a handshake or a page request; above it: HTTP 431."""
    max_headers: int = MAX_HEADERS
    """Most header fields in a handshake or a page request; above it: HTTP 431."""
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to complete the WebSocket handshake."""
    close_timeout: float = 5.0
    """Seconds a closing connection has to finish the closing handshake before it is dropped."""
    max_connections: int = 10_000
    """Open WebSocket connections in total; more are refused with HTTP 503."""
    max_connections_per_address: int = 256
    """Open WebSocket connections from one client IP address; more are refused with HTTP 429."""
    ping_interval: float = 20.0
    """Seconds between keepalive pings on an idle or busy connection (0: no pings)."""
    ping_timeout: float = 20.0
    """Seconds a peer has to answer a ping before it is considered dead and dropped."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate: Path
    """PEM: the certificate, then its chain (intermediates); the key may follow if ``key`` is the same file."""
    key: Path
    """PEM: the private key (unencrypted)."""


class ProxyHeader(StrEnum):
    """The one header a trusted proxy's word is read from (``--proxy-header``)."""

    X_FORWARDED_FOR = "x-forwarded-for"
    """``X-Forwarded-For`` and ``X-Forwarded-Proto``; the host from ``Host``."""
    FORWARDED = "forwarded"
    """RFC 7239 ``Forwarded``: ``for``, ``proto``, ``host``."""


class Synchronous(StrEnum):
    """How hard a commit waits for the disk (SQLite's ``synchronous`` pragma, in WAL mode)."""

    NORMAL = "normal"
    """Commits survive the server being killed; the OS or power failing may lose the last ones."""
    FULL = "full"
    """Commits also survive the OS or power failing: one fsync per commit (per batch)."""


class Transport(StrEnum):
    TRIO_WEBSOCKET = "trio-websocket"
    WSPROTO = "wsproto"


class AppKind(StrEnum):
    CHAT = "chat"
    ECHO = "echo"


def bundled_web_dir() -> Path:
    """The page shipped with the package, or ``web/`` of a source checkout."""
    installed = Path(__file__).resolve().parent / "web"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "web"


def default_database() -> Path:
    """Where rooms live unless ``--db`` says otherwise: the user's data folder (``~/.local/share`` on Linux)."""
    return platformdirs.user_data_path("chat-server") / "chat.db"


PRESENCE_GRACE = 10.0
"""``--presence-grace``'s default: seconds a user whose last connection to a room closed stays in it before the others
are told it left (`chatcore.graces`); a `ServerConfig` made in code has its ``core_limits``' (0 unless set)."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the shared room log is, and how long to wait for it."""

    url: str
    """``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS) or ``unix:///path/to/socket``."""
    timeout: float = 3.0
    """Seconds a client's request may wait for Redis before it gets an error event."""
    retention: int = 10_000
    """Talks kept per room in its stream (at least; XADD MAXLEN ~): what a process can read back after a gap."""
    presence_ttl: float = 15.0
    """Seconds a process's users stay listed in a room's presence unless it renews them (every third of it):
    how long a process that dies without a word keeps its users listed."""

    def __post_init__(self) -> None:
        if not self.presence_ttl > 0:
            raise ValueError("presence_ttl must be more than 0")


class AuthMode(StrEnum):
    """Whether connections sign in with a token from the embedding site (``--auth``)."""

    OFF = "off"
    """Tokens are not read: every name is what the client says."""
    OPTIONAL = "optional"
    """A valid token makes a verified user; a connection without one joins as today."""
    REQUIRED = "required"
    """Every connection must present a valid token."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How sign-in tokens (JWT) are verified: `transports.identity.Verifier` reads the key files."""

    keys: tuple[Path, ...] = ()
    """Key files (``--auth-key``, repeatable for rotation): a PEM public key (RSA, EC P-256, Ed25519) each, or an
    HS256 secret of at least 32 bytes; a token verifies if one of them signed it."""
    issuer: str | None = None
    """The ``iss`` a token must carry; None: not checked."""
    audience: str | None = None
    """The ``aud`` a token must name; None: not checked."""
    mode: AuthMode = AuthMode.OFF


@dataclass(frozen=True, slots=True)
class ServerConfig:
    transport: Transport = Transport.TRIO_WEBSOCKET
    app: AppKind = AppKind.CHAT
    host: str = "127.0.0.1"
    http_port: int = 8000
    ws_port: int = 8001
    public_ws_port: int | None = None
    """The WebSocket port pages are told to use (when a proxy forwards it to ``ws_port``); None: the page's own
    origin, at /ws."""
    web_dir: Path = field(default_factory=bundled_web_dir)
    allow_origins: frozenset[str] = frozenset()
    """Origins (``scheme://host:port``) besides our own page allowed to open WebSockets."""
    tls: TlsFiles | None = None
    """Serve the page over https and the chat over wss (on the same ports) with this certificate."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses and networks (``10.0.0.0/8``) of reverse proxies whose forwarding header counts."""
    proxy_header: ProxyHeader = ProxyHeader.X_FORWARDED_FOR
    """The one header the trusted proxies' word is read from."""
    limits: Limits = field(default_factory=Limits)
    core_limits: CoreLimits = field(default_factory=CoreLimits)
    database: Path | None = None
    """The SQLite file rooms and messages are kept in; None keeps them in memory only."""
    database_timeout: float = 5.0
    """Seconds a write waits for a database another process has locked before it fails."""
    database_sync: Synchronous = Synchronous.NORMAL
    redis: RedisSettings | None = None
    """Rooms in Redis, shared with every process using the same one, instead of ``database``."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT: one of ``--workers``, sharing the ports with the others."""
    shutdown_grace: float = 5.0
    """Seconds connections get to finish their closing handshake on a quick shutdown (SIGINT)."""
    drain_timeout: float = 30.0
    """Seconds a drain (SIGTERM) takes at most, from the signal to the end: clients that do not answer are cut."""
    retention: float | None = None
    """Seconds talks are kept (``--retention`` DAYS): older ones erased, rooms quiet that long ended; None: forever."""
    auth: AuthSettings = field(default_factory=AuthSettings)
    """Sign-in tokens: off unless key files are given."""
