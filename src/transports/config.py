"""What one server process runs: which transport, which application, where."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from chatcore import CoreLimits

from .limits import Limits


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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    transport: Transport = Transport.TRIO_WEBSOCKET
    app: AppKind = AppKind.CHAT
    host: str = "127.0.0.1"
    http_port: int = 8000
    ws_port: int = 8001
    public_ws_port: int | None = None
    """The WebSocket port pages are told to use, when a proxy forwards another port to ``ws_port``."""
    web_dir: Path = field(default_factory=bundled_web_dir)
    allow_origins: frozenset[str] = frozenset()
    """Origins (``scheme://host:port``) besides our own page allowed to open WebSockets."""
    limits: Limits = field(default_factory=Limits)
    core_limits: CoreLimits = field(default_factory=CoreLimits)
    shutdown_grace: float = 5.0
    """Seconds connections get to finish their closing handshake on shutdown."""
