"""The ``chat-server`` command line."""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import logging
import math
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import anyio

from chatcore import CoreLimits

from . import logs, settings
from .config import (
    PRESENCE_GRACE,
    AppKind,
    AuthMode,
    AuthSettings,
    Limits,
    ProxyHeader,
    RedisSettings,
    ServerConfig,
    StartupError,
    Synchronous,
    TlsFiles,
    Transport,
    bundled_web_dir,
    default_database,
)
from .http.origin import parse_origin
from .http.proxies import parse_network
from .process import NOTHING_TO_RELOAD, run_until_signal
from .storage.redisurl import check_url as check_redis_url
from .storage.sqlfile import DatabaseError
from .storage.sqlite import MEMORY
from .supervisor import reserve_port, supervise

logger = logging.getLogger(__name__)


def _number(kind: Callable[[str], float], accepts: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """The parser of every numeric flag (and its variable): a finite ``kind`` that ``accepts``, else ``rule``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid value: {text!r}: must be a {'whole ' if kind is int else ''}number") from None
        if isinstance(value, float) and not math.isfinite(value):  # float() takes nan, inf, -infinity ...
            raise argparse.ArgumentTypeError(f"invalid value: {text!r}: must be a finite number")
        if not accepts(value):
            raise argparse.ArgumentTypeError(rule)
        return value

    return parse


_positive_int = _number(int, lambda n: n >= 1, "must be at least 1")
_non_negative_int = _number(int, lambda n: n >= 0, "must be 0 or more")
_port = _number(int, lambda n: 0 <= n <= 65535, "must be 0-65535 (0: any free port)")
MAX_SECONDS = 1e6
"""Longest duration a flag takes (11.6 days): beyond it, the clocks and sockets under a timeout overflow."""
_seconds = _number(float, lambda s: 0 < s <= MAX_SECONDS, f"must be more than 0, at most {MAX_SECONDS:.0f}")
DAY = 24 * 3600.0
_days = _number(float, lambda d: 0 < d <= 100_000, "must be more than 0, at most 100000")
_non_negative_seconds = _number(float, lambda s: 0 <= s <= MAX_SECONDS, f"must be 0 to {MAX_SECONDS:.0f}")
_rate = _number(float, lambda r: r >= 0.001, "must be at least 0.001")
_header_bytes = _number(int, lambda n: n >= 1024, "must be at least 1024")


def _web_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def _origin(text: str) -> str:
    origin = parse_origin(text)
    if origin is None:
        raise argparse.ArgumentTypeError("must be an origin as browsers send it: http://host:port or https://host, "
                                         "no path, no wildcard")
    return str(origin)


def _network(text: str) -> str:
    network = parse_network(text)
    if network is None:
        raise argparse.ArgumentTypeError("must be an IP address (10.0.0.5, ::1) or a network (10.0.0.0/8)")
    return str(network)


def _redis_url(text: str) -> str:
    try:
        check_redis_url(text)
    except ValueError as error:  # (its message alone: argparse would quote the URL, password and all)
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _version() -> str:
    try:
        return importlib.metadata.version("trio-chat")
    except importlib.metadata.PackageNotFoundError:  # (run from a source tree that was never installed)
        return "unknown version"


class _Parser(argparse.ArgumentParser):
    """Errors in one line, as the server's other start errors, not after the usage (that is ``--help``'s)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    config, limits, core, redis_defaults = ServerConfig(), Limits(), CoreLimits(), RedisSettings("")
    parser = _Parser(
        prog="chat-server",
        description="Real-time chat: serves the page over HTTP and the chat over WebSocket, in one process.",
        formatter_class=settings.HelpFormatter,  # each flag's default and its CHAT_SERVER_ variable
        epilog=settings.EPILOG,
    )
    add = parser.add_argument
    add("--version", action="version", version=f"%(prog)s {_version()}")
    add("--transport", choices=[t.value for t in Transport], default=config.transport.value,
        help="WebSocket implementation")
    add("--app", choices=[a.value for a in AppKind], default=config.app.value,
        help="chat, or a plain WebSocket echo for conformance testing")
    add("--host", default=config.host, help="address to listen on; 0.0.0.0 for every IPv4 interface")
    add("--http-port", type=_port, default=config.http_port, help="port of the page")
    add("--ws-port", type=_port, default=config.ws_port, help="port of the WebSocket server")
    add("--public-ws-port", type=_port, default=None, metavar="N",
        help="WebSocket port the page is told to use, e.g. if a proxy forwards it to --ws-port "
        "(default: the page's own origin, at /ws: the page's port takes WebSocket upgrades too)")
    add("--web", type=_web_dir, default=None, metavar="DIR",
        help=f"serve this static client folder instead of the bundled page ({bundled_web_dir()})")
    add("--allow-origin", type=_origin, action="append", default=[], metavar="ORIGIN",
        help="also accept WebSocket handshakes from pages of this origin, e.g. https://chat.example.org "
        "(repeatable; our own page and clients sending no Origin are always accepted)")
    add("--tls-cert", type=Path, default=None, metavar="FILE",
        help="serve the page over https and the chat over wss, on the same ports, with this PEM certificate "
        "(and its chain); reloaded on SIGHUP")
    add("--tls-key", type=Path, default=None, metavar="FILE",
        help="the PEM private key of --tls-cert (default: in the --tls-cert file)")
    add("--trusted-proxy", type=_network, action="append", default=[], metavar="ADDR_OR_CIDR",
        help="a reverse proxy whose --proxy-header names the client, for the per-address limit, the log and the "
        "origin check (repeatable; from other peers it is ignored)")
    add("--proxy-header", choices=[h.value for h in ProxyHeader], default=config.proxy_header.value,
        help="the one header a --trusted-proxy's word is read from, which the proxy must set: x-forwarded-for "
        "(with X-Forwarded-Proto; the host from Host) or forwarded (RFC 7239: for, proto, host); "
        "the other is ignored")
    add("--event-loop", choices=["trio", "asyncio", "uvloop"], default="trio",
        help="event loop under --transport wsproto (trio-websocket needs trio); uvloop needs the uvloop package")
    add("--log-level", type=str.upper, default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least important lines logged")
    add("--log-format", choices=logs.FORMATS, default="text",
        help="json: each line one JSON object (time, level, logger, message, and the line's fields)")
    add("--workers", type=_positive_int, default=1, metavar="N",
        help="run N server processes sharing the same ports (SO_REUSEPORT), each restarted if it dies; "
        "needs --redis, where they share rooms")
    add("--drain-timeout", type=_seconds, default=config.drain_timeout, metavar="SECONDS",
        help="on SIGTERM: readiness 503, clients closed with 1012 in batches, pending writes stored, exit 0 within "
        "this many seconds in all (clients that do not answer their close are cut)")
    add("--worker-id", type=_positive_int, default=None, help=argparse.SUPPRESS)  # set by the supervisor

    group = parser.add_argument_group("sign-in (tokens the embedding site signs)")
    add = group.add_argument
    add("--auth", choices=[m.value for m in AuthMode], default=None,
        help="off: names are what clients say; optional: a valid token in an init makes a verified user; required: "
        "every connection needs one, and only users whose token says create start rooms "
        "(default: optional with --auth-key, else off)")
    add("--auth-key", type=Path, action="append", default=[], metavar="FILE",
        help="a key that verifies sign-in tokens (JWT): a PEM public key (RSA: RS256, EC P-256: ES256, Ed25519: "
        "EdDSA) or a file holding an HS256 secret of at least 32 bytes; repeatable (a token any of them verifies "
        "is good: key rotation); read again on SIGHUP")
    add("--auth-issuer", default=None, metavar="ISS",
        help="the iss a token must carry (default: not checked)")
    add("--auth-audience", default=None, metavar="AUD",
        help="the aud a token must name (default: not checked)")

    group = parser.add_argument_group("storage")
    add = group.add_argument
    add("--db", default=None, metavar="PATH",
        help="SQLite file that keeps rooms and messages across restarts, created on first run; "
        f"{MEMORY} keeps them in memory only (default: {default_database()})")
    add("--db-timeout", type=_seconds, default=config.database_timeout, metavar="SECONDS",
        help="how long a write waits for a database locked by another process before the client gets an error")
    add("--db-sync", choices=[s.value for s in Synchronous], default=config.database_sync.value,
        help="normal: commits survive the server being killed; full: also the OS or power failing (fsync)")
    add("--retention", type=_days, default=None, metavar="DAYS",
        help="erase messages older than this many days (fractions allowed) and end rooms with no message for that "
        "long, on every store, while serving (default: keep everything)")
    add("--redis", type=_redis_url, default=None, metavar="URL",
        help="keep rooms in this Redis instead of --db, shared by every chat-server using it (any number of "
        "processes and hosts): redis://[user:password@]host[:port][/db], rediss:// (TLS), unix:///path")
    add("--redis-timeout", type=_seconds, default=redis_defaults.timeout, metavar="SECONDS",
        help="longest a message or a join waits for Redis before the client gets an error event")
    add("--redis-retention", type=_positive_int, default=redis_defaults.retention, metavar="N",
        help="talks kept per room in Redis (at least; also at least --history-limit): what a process can "
        "read back after missing some, e.g. while its connection to Redis was down")
    add("--presence-ttl", type=_seconds, default=redis_defaults.presence_ttl, metavar="SECONDS",
        help="how long a process that dies keeps its users listed in its rooms on the other processes; "
        "their left is sent within ttl + ttl/3 (each process renews its users every ttl/3)")
    add("--presence-grace", type=_non_negative_seconds, default=PRESENCE_GRACE, metavar="SECONDS",
        help="how long a user whose last connection to a room closed stays listed before the others are told it "
        "left (0: at once); one that comes back meanwhile, on any process, shows nothing (a reconnect, a drain)")

    group = parser.add_argument_group("limits")
    add = group.add_argument
    add("--max-message-size", type=_positive_int, default=limits.max_message_size,
        help="largest incoming message in characters (text) or bytes (binary); above it: close 1009")
    add("--max-payload-chars", type=_positive_int, default=core.max_payload_chars,
        help="longest talk payload; longer ones get an error event")
    add("--max-json-depth", type=_positive_int, default=core.max_json_depth,
        help="deepest JSON nesting in one event; deeper ones get an error event")
    add("--rate", type=_rate, default=core.messages_per_second,
        help="messages per second one connection may send, sustained; faster ones get error events")
    add("--burst", type=_positive_int, default=core.message_burst,
        help="messages one connection may send at once before --rate applies")
    add("--rate-strikes", type=_positive_int, default=core.max_rate_strikes,
        help="messages refused in a row for rate before the connection is closed with 1008")
    add("--history-limit", type=_non_negative_int, default=core.history_limit,
        help="most recent messages of a room replayed to each joiner (and kept in memory while the room is open)")
    add("--remembered-users", type=_non_negative_int, default=core.remembered_users,
        help="with --db :memory: only: users who left whose name and resume token a room keeps; beyond it, the "
        "one that left longest ago can no longer resume and joins as a new user")
    add("--outbox-bytes", type=_positive_int, default=limits.outbox_bytes,
        help="outgoing bytes queued per connection; a client falling further behind is closed (1008)")
    add("--max-connections", type=_positive_int, default=limits.max_connections,
        help="open WebSocket connections in total; more are refused with HTTP 503")
    add("--max-connections-per-address", type=_positive_int, default=limits.max_connections_per_address,
        help="open WebSocket connections from one IP address; more are refused with HTTP 429")
    add("--max-header-bytes", type=_header_bytes, default=limits.max_header_bytes,
        help="largest request head (request line and headers) of a WebSocket handshake or a page request; "
        "above it: HTTP 431")
    add("--max-headers", type=_positive_int, default=limits.max_headers,
        help="most header fields in a WebSocket handshake or a page request; above it: HTTP 431")
    add("--handshake-timeout", type=_seconds, default=limits.handshake_timeout, metavar="SECONDS",
        help="seconds a new connection has to complete the WebSocket handshake")
    add("--close-timeout", type=_seconds, default=limits.close_timeout, metavar="SECONDS",
        help="seconds a closing connection has before it is dropped")
    add("--ping-interval", type=_non_negative_seconds, default=limits.ping_interval, metavar="SECONDS",
        help="seconds between keepalive pings (0: none)")
    add("--ping-timeout", type=_seconds, default=limits.ping_timeout, metavar="SECONDS",
        help="seconds a peer has to answer a ping before it is dropped as dead")
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        transport=Transport(args.transport),
        app=AppKind(args.app),
        host=args.host,
        http_port=args.http_port,
        ws_port=args.ws_port,
        public_ws_port=args.public_ws_port,
        web_dir=args.web or bundled_web_dir(),
        allow_origins=frozenset(args.allow_origin),
        tls=None if args.tls_cert is None else TlsFiles(args.tls_cert, args.tls_key or args.tls_cert),
        trusted_proxies=tuple(args.trusted_proxy),
        proxy_header=ProxyHeader(args.proxy_header),
        database=None if args.db == MEMORY or args.redis else Path(args.db or default_database()),
        redis=None if args.redis is None else RedisSettings(
            args.redis, args.redis_timeout, max(args.redis_retention, args.history_limit), args.presence_ttl
        ),
        database_timeout=args.db_timeout,
        database_sync=Synchronous(args.db_sync),
        reuse_port=args.worker_id is not None,
        drain_timeout=args.drain_timeout,
        retention=None if args.retention is None else args.retention * DAY,
        auth=auth_settings(args),
        limits=Limits(
            max_message_size=args.max_message_size,
            outbox_bytes=args.outbox_bytes,
            max_header_bytes=args.max_header_bytes,
            max_headers=args.max_headers,
            handshake_timeout=args.handshake_timeout,
            close_timeout=args.close_timeout,
            max_connections=args.max_connections,
            max_connections_per_address=args.max_connections_per_address,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
        ),
        core_limits=CoreLimits(
            history_limit=args.history_limit,
            max_payload_chars=args.max_payload_chars,
            max_json_depth=args.max_json_depth,
            messages_per_second=args.rate,
            message_burst=args.burst,
            max_rate_strikes=args.rate_strikes,
            remembered_users=args.remembered_users,
            presence_grace=args.presence_grace,
        ),
    )


def auth_settings(args: argparse.Namespace) -> AuthSettings:
    """``--auth`` and its keys; the mode is optional when keys are given and ``--auth`` is not."""
    keys = tuple(args.auth_key)
    mode = AuthMode(args.auth) if args.auth is not None else AuthMode.OPTIONAL if keys else AuthMode.OFF
    return AuthSettings(keys, args.auth_issuer, args.auth_audience, mode)


def _auth_error(args: argparse.Namespace) -> str | None:
    """Why the sign-in flags cannot work together, or None."""
    if args.auth_key:
        return None
    if args.auth in (AuthMode.OPTIONAL.value, AuthMode.REQUIRED.value):
        return f"--auth {args.auth} needs --auth-key: the key that verifies the sign-in tokens"
    for flag, value in (("--auth-issuer", args.auth_issuer), ("--auth-audience", args.auth_audience)):
        if value is not None:
            return f"{flag} needs --auth-key: the key that verifies the sign-in tokens"
    return None


def _raise_file_limit(connections: int) -> None:
    """Each connection is a file descriptor (with TLS too): lift the soft limit toward what --max-connections
    needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # WebSocket and page connections (each limited to this), listeners, logs
    wanted = 2 * connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if new_soft < connections + 256:  # page connections may run short first, not WebSocket
            logger.warning("open-file limit %d allows fewer than --max-connections %d", new_soft, connections)


COLLECTOR_THRESHOLDS = (10_000, 20, 20)
"""The garbage collector's thresholds in a serving process (`gc.set_threshold`; Python's are 700, 10, 10).

Under load a message's short-lived objects (frames, coroutines' states, log
requests in flight) outlive 700 allocations: Python's young generation
promotes them, they die old, and what was promoted still counts towards the
next full collection, which walks every connection's objects. A young
generation of 10,000 lets them die young. Measured with bench/ab.py (wsproto,
rooms of 10), user CPU per delivery: 2.55 -> 2.13 µs at 1000 connections,
3.91 -> 3.23 µs at 10,000 (docs/benchmarks-default-transport.md)."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args, unknown_settings = settings.parse_args(parser, argv, os.environ)
    if args.event_loop != "trio" and args.transport != Transport.WSPROTO.value:
        parser.error("--event-loop asyncio and uvloop need --transport wsproto")
    if args.redis and args.db:
        parser.error("--redis and --db are two places to keep rooms: choose one")
    if args.workers > 1 and not args.redis:
        parser.error("--workers needs --redis: separate processes share rooms only through Redis")
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key needs --tls-cert: the certificate it belongs to")
    if (auth_error := _auth_error(args)) is not None:
        parser.error(auth_error)
    if args.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.exit(2, f"{parser.prog}: error: --event-loop uvloop needs the uvloop package: "
                    "pip install 'trio-chat[uvloop]' (or .venv/bin/pip install uvloop)\n")
    logs.configure(args.log_level, args.log_format, args.worker_id)
    for name in unknown_settings:
        logger.warning("ignored %s: no flag has it (chat-server --help lists every CHAT_SERVER_ variable)", name)
    _keep_running_on_sighup()
    if args.workers > 1 and args.worker_id is None:
        sys.exit(_supervise(args, parser, list(sys.argv[1:] if argv is None else argv)))
    config = config_from_args(args)
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    _raise_file_limit(config.limits.max_connections)
    supervisor = os.getppid() if args.worker_id is not None else None
    try:
        if args.event_loop == "trio":
            anyio.run(run_until_signal, config, supervisor, backend="trio")
        else:
            options = {"use_uvloop": args.event_loop == "uvloop"}
            anyio.run(run_until_signal, config, supervisor, backend="asyncio", backend_options=options)
    except* (DatabaseError, StartupError) as errors:
        _exit_error(parser, args, *(str(error) for error in _leaves(errors)))


def _exit_error(parser: argparse.ArgumentParser, args: argparse.Namespace, *errors: str) -> NoReturn:
    """Stop at start, exit status 2: one line per error, a JSON object each with ``--log-format json``."""
    lines = [f"{parser.prog}: error: {error}" for error in errors]
    if args.log_format == "json":
        for line in lines:
            logger.error("%s", line)
        parser.exit(2)
    parser.exit(2, "".join(f"{line}\n" for line in lines))


def _keep_running_on_sighup() -> None:
    """SIGHUP (``systemctl reload``) must not end the server, as it would by default: it says what to do.

    Settings are read once, at start; changing them takes a restart. (A part of the server that has
    something to reload on SIGHUP takes the signal over while it runs, with ``open_signal_receiver``.)
    """
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _nothing_to_reload)


def _nothing_to_reload(signum: int, frame: object) -> None:
    # A Python signal handler may run inside another write to stderr (a C write interrupted by the signal),
    # where a second write fails as reentrant and the line is lost: the line is written by a thread of its own.
    threading.Thread(target=logger.warning, args=("SIGHUP: %s", NOTHING_TO_RELOAD), daemon=True).start()


def _supervise(args: argparse.Namespace, parser: argparse.ArgumentParser, given: list[str]) -> int:
    """``--workers N``: reserve the ports, then run the workers on them until a signal."""
    try:
        reserved = [reserve_port(args.host, args.http_port), reserve_port(args.host, args.ws_port)]
    except OSError as error:
        _exit_error(parser, args, f"cannot listen on {args.host}: {error.strerror or error}")
    http_port, ws_port = (sock.getsockname()[1] for sock in reserved)

    def command(number: int) -> list[str]:
        return [sys.executable, "-m", "transports", *given, "--http-port", str(http_port), "--ws-port", str(ws_port),
                "--worker-id", str(number)]

    logger.info("%d workers sharing ports %d (page) and %d (WebSocket)", args.workers, http_port, ws_port)
    try:
        # Each worker's drain (SIGTERM) or quick stop (SIGINT) may take this long before it is SIGKILLed.
        stop_timeout = max(args.drain_timeout, args.close_timeout + 10.0) + 5.0
        return anyio.run(supervise, command, args.workers, stop_timeout, backend="trio")
    finally:
        for sock in reserved:
            sock.close()


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    """The exceptions of a group, however deeply the task groups they went through have nested it."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
