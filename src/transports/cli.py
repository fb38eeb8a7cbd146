"""The ``chat-server`` command line."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import anyio

from .config import AppKind, ServerConfig, Transport, bundled_web_dir
from .limits import Limits
from .server import run_until_signal


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0-65535 (0: any free port)")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _web_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def build_parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    limits = Limits()
    parser = argparse.ArgumentParser(
        prog="chat-server",
        description="Real-time chat: serves the page over HTTP and the chat over WebSocket, in one process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--transport", choices=[t.value for t in Transport], default=defaults.transport.value,
                        help="WebSocket implementation")
    parser.add_argument("--app", choices=[a.value for a in AppKind], default=defaults.app.value,
                        help="chat, or a plain WebSocket echo for conformance testing")
    parser.add_argument("--host", default=defaults.host, help="address to listen on; 0.0.0.0 for every IPv4 interface")
    parser.add_argument("--http-port", type=_port, default=defaults.http_port, help="port of the page")
    parser.add_argument("--ws-port", type=_port, default=defaults.ws_port, help="port of the WebSocket server")
    parser.add_argument("--public-ws-port", type=_port, default=None, metavar="N",
                        help="WebSocket port the page is told to use, if a proxy forwards it to --ws-port "
                        "(default: --ws-port)")
    parser.add_argument("--web", type=_web_dir, default=None, metavar="DIR",
                        help=f"serve this static client folder instead of the bundled page ({bundled_web_dir()})")
    parser.add_argument("--max-message-size", type=_positive_int, default=limits.max_message_size,
                        help="largest incoming message in characters (text) or bytes (binary); above it: close 1009")
    parser.add_argument("--outbox-bytes", type=_positive_int, default=limits.outbox_bytes,
                        help="outgoing bytes queued per connection; a client falling further behind is closed (1008)")
    parser.add_argument("--handshake-timeout", type=_seconds, default=limits.handshake_timeout,
                        help="seconds a new connection has to complete the WebSocket handshake")
    parser.add_argument("--close-timeout", type=_seconds, default=limits.close_timeout,
                        help="seconds a closing connection has before it is dropped")
    parser.add_argument("--history-limit", type=_non_negative_int, default=limits.history_limit,
                        help="messages kept per room and replayed to joiners")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    limits = Limits(
        max_message_size=args.max_message_size,
        outbox_bytes=args.outbox_bytes,
        handshake_timeout=args.handshake_timeout,
        close_timeout=args.close_timeout,
        history_limit=args.history_limit,
    )
    return ServerConfig(
        transport=Transport(args.transport),
        app=AppKind(args.app),
        host=args.host,
        http_port=args.http_port,
        ws_port=args.ws_port,
        public_ws_port=args.public_ws_port,
        web_dir=args.web or bundled_web_dir(),
        limits=limits,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # trio-websocket only runs on trio; the wsproto loop runs on it as well.
    anyio.run(run_until_signal, config_from_args(args), backend="trio")
