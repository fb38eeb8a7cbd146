"""One process: the page over HTTP and the chat over WebSocket, until a signal stops it."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import anyio
import anyio.abc
from redis.exceptions import RedisError

from chatcore import ChatCore, LogAction, LogResult
from chatcore.identity import Identity, SignIn
from chatcore.problems import Problem

from . import pageport
from .apps.echo import EchoApp
from .config import MIN_TIMER_PERIOD, AppKind, AuthMode, ServerConfig, StartupError, Transport
from .http import static
from .http.origin import OriginPolicy
from .http.proxies import TrustedProxies
from .identity import AuthKeyError, AuthRefused, Verifier
from .names import name_key
from .net.listener import Listener
from .net.tls import CertificateError, TlsServer
from .ops.drain import drain
from .ops.health import Health, StoreCheck, redis_check, sqlite_check
from .ops.metrics import Metrics
from .ops.watchdog import Watchdog
from .runtime.hub import App, Hub
from .storage.memory import MemoryBackend
from .storage.redisbroker import RedisBroker
from .storage.sqlite import Database
from .storage.worker import LogWorker, StorageWorker
from .websocket import trio_driver, wsproto_driver

logger = logging.getLogger(__name__)

JOIN_KEY_BYTES = 12
TOKEN_BYTES = 24
"""A version-2 resume token: 32 URL-safe characters, 192 random bits."""

NOTHING_TO_RELOAD = "nothing to reload: settings are read at start; restart the server to change them"
"""What SIGHUP (``systemctl reload``) says without a TLS certificate or sign-in keys to reload."""


class SignInKeys:
    """The sign-in verifier in use (``--auth-key``): `verify` for the core, `reload` on SIGHUP."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    def verify(self, token: str) -> Identity | Problem:
        """The identity ``token`` names now, or what the client is told (why not goes to the log, never quoting
        the token: an integrator reads it there, a forger learns nothing from the refusal).

        On the event loop, as measured: a check takes 35 to 95 µs (HS256, RS256, ES256, EdDSA, in that order),
        once per init, less than a hop to a thread and back (about 80 µs), during much of which the GIL is held."""
        try:
            return self.verifier.verify(token, time.time())
        except AuthRefused as error:
            logger.info("sign-in refused: %s", error)
            return error.problem

    async def reload(self) -> None:
        """Read the key files again: later inits are checked with them. On a file that cannot be used, the keys
        in use stay, and one line says why."""
        try:
            self.verifier = await anyio.to_thread.run_sync(self.verifier.reload)
        except AuthKeyError as error:
            logger.warning("SIGHUP: the sign-in keys were not reloaded, the current ones stay: %s", error)
        else:
            logger.info("SIGHUP: sign-in keys reloaded (%s)", ", ".join(self.verifier.algorithms))


@dataclass(frozen=True, slots=True)
class Running:
    """A started server: its hub, the ports it actually bound, and its off switch."""

    hub: Hub
    http_port: int
    ws_port: int
    stopping: anyio.Event
    listeners: tuple[Listener, ...]
    """The process's listening sockets (WebSocket, page): it stops accepting on them, not the transports."""
    health: Health
    metrics: Metrics
    draining: anyio.Event
    """Set when the stop asked for is a drain."""
    tls: TlsServer | None = None
    """The certificate the listeners serve (``--tls-cert``), reloaded on SIGHUP (`reload_tls`)."""
    sign_in: SignInKeys | None = None
    """The keys sign-in tokens are verified with (``--auth-key``), reloaded on SIGHUP."""

    async def reload(self) -> None:
        """SIGHUP: read the TLS certificate and the sign-in keys again, or say there is nothing to reload."""
        if self.tls is None and self.sign_in is None:
            logger.warning("SIGHUP: %s", NOTHING_TO_RELOAD)
        if self.tls is not None:
            await self.reload_tls()
        if self.sign_in is not None:
            await self.sign_in.reload()

    async def reload_tls(self) -> None:
        """Read the certificate and key again: new connections get them, open ones keep theirs. A file that
        cannot be used is logged, and the current certificate stays."""
        if self.tls is None:
            return
        try:
            await anyio.to_thread.run_sync(self.tls.reload)
        except CertificateError as error:
            logger.error("SIGHUP: the TLS certificate was not reloaded, the current one stays: %s", error)
        else:
            logger.info("SIGHUP: TLS certificate reloaded from %s", self.tls.files.certificate)

    def stop(self) -> None:
        """Begin a quick shutdown (SIGINT): every client gets close 1001 at once, then `run` returns."""
        self.health.stop("shutting down")
        self.stopping.set()

    def drain(self) -> None:
        """Begin draining (SIGTERM): readiness 503 at once, every client closed with 1012 in batches, pending
        writes stored, and `run` returns within ``drain_timeout`` (see `ops.drain`)."""
        if not self.stopping.is_set():
            self.health.stop("draining")
            self.draining.set()
            self.stopping.set()


def make_app(config: ServerConfig, sign_in: SignInKeys | None = None) -> App:
    """The application: echo, or the chat core (whatever backend keeps its room log), taking sign-in tokens
    if ``sign_in`` has keys for them."""
    if config.app is AppKind.ECHO:
        return EchoApp()
    return ChatCore(
        clock=time.time,
        new_join_key=lambda: secrets.token_urlsafe(JOIN_KEY_BYTES),
        new_token=lambda: secrets.token_urlsafe(TOKEN_BYTES),
        limits=config.core_limits,
        sign_in=None if sign_in is None else SignIn(sign_in.verify, config.auth.mode is AuthMode.REQUIRED),
        name_key=name_key,
    )


RETENTION_SWEEP = 3600.0
"""Longest pause between two retention sweeps (seconds); a short ``--retention`` sweeps every 24th of it."""


async def _retaining(hub: Hub, core: ChatCore, retention: float) -> None:
    """Have the log erase what retention no longer keeps, now and then (`ChatCore.expire`)."""
    period = min(max(retention / 24, MIN_TIMER_PERIOD), RETENTION_SWEEP)
    while True:
        hub.perform(core.expire(time.time() - retention))
        await anyio.sleep(period)


class LogBackend(Protocol):
    """What keeps the chat's room log: memory, SQLite or Redis (the hub cannot tell them apart)."""

    def submit(self, action: LogAction) -> None: ...
    async def run(self, deliver: Callable[[LogResult], None]) -> None: ...
    async def flush(self) -> None: ...


async def open_storage(config: ServerConfig) -> LogWorker | None:
    """The chat's database, opened and migrated on a worker thread; None when rooms live in memory."""
    if config.app is not AppKind.CHAT:
        return None
    if config.database is None:
        logger.info("rooms kept in memory only: they end with the process")
        return None
    path = config.database
    database = await anyio.to_thread.run_sync(
        lambda: Database.open(path, busy_timeout=config.database_timeout, synchronous=config.database_sync)
    )
    logger.info("rooms stored in %s (%d so far)", database.path, database.rooms_at_start)
    return LogWorker(database)


async def open_broker(config: ServerConfig) -> RedisBroker | None:
    """The shared log's broker, with Redis checked (a Redis down at start is logged, not fatal); None without one."""
    if config.app is not AppKind.CHAT or config.redis is None:
        return None
    broker = RedisBroker(config.redis)
    try:
        await anyio.to_thread.run_sync(broker.log.open)
    except (RedisError, OSError) as error:
        logger.error("Redis %s does not answer (%s): joins and messages get an error event until it does",
                     broker.log.name, error)
    logger.info("rooms shared through Redis %s", broker.log.name)
    return broker


async def run(
    config: ServerConfig,
    *,
    task_status: anyio.abc.TaskStatus[Running] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `Running.stop` is called; then close every connection with 1001 and return."""
    sign_in = await _load_sign_in(config)  # (first: a key file that cannot be used is then the only line)
    broker = await open_broker(config)
    storage = None if broker is not None else await open_storage(config)
    try:
        await _serve(config, storage, broker, sign_in, task_status)
    finally:
        with anyio.CancelScope(shield=True):
            if storage is not None:
                await anyio.to_thread.run_sync(storage.backend.close)
            if broker is not None:
                await anyio.to_thread.run_sync(broker.log.close)


async def _serve(
    config: ServerConfig,
    storage: LogWorker | None,
    broker: RedisBroker | None,
    sign_in: SignInKeys | None,
    task_status: anyio.abc.TaskStatus[Running],
) -> None:
    tls = None if config.tls is None else await anyio.to_thread.run_sync(_load_tls, config)
    origins = OriginPolicy(config.allow_origins, "http" if tls is None else "https")
    proxies = _trusted_proxies(config)
    app = make_app(config, sign_in)
    backend: LogBackend | None = None
    if config.app is AppKind.CHAT:
        backend = broker or storage or MemoryBackend(config.core_limits)
    hub = Hub(app, config.limits, origins, None if backend is None else backend.submit, proxies)
    driver = trio_driver if config.transport is Transport.TRIO_WEBSOCKET else wsproto_driver
    with contextlib.ExitStack() as unused:  # listeners are closed here only if serving never starts
        ws = _bind(config.host, config.ws_port, "--ws-port", config.reuse_port)
        unused.callback(ws.close)
        site = await anyio.to_thread.run_sync(static.StaticSite.load, config.web_dir, config.public_ws_port)
        page = _bind(config.host, config.http_port, "--http-port", config.reuse_port)
        unused.callback(page.close)
        unused.pop_all()
    ws.tls = page.tls = tls
    origins.page_ports.add(page.port)
    store_kind, check = _store_check(config, storage, broker)
    health = Health(hub, config.limits.max_connections, check)
    watchdog = Watchdog()
    metrics = Metrics(hub, app, health, transport=config.transport.value, store=store_kind, broker=broker,
                      watchdog=watchdog)
    health.observe = metrics.observe_check
    worker: StorageWorker[Any, Any] | None = broker.worker if broker is not None else storage
    if worker is not None and metrics.observe_batch is not None:
        worker.observe = metrics.observe_batch
    site.routes.update({"/healthz": health.healthz, "/readyz": health.readyz, "/metrics": metrics.page})
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watchdog.run)
        if backend is not None:
            tasks.start_soon(backend.run, hub.log_result)
        tasks.start_soon(hub.keepalive)
        tasks.start_soon(hub.settling)
        tasks.start_soon(health.run)
        if config.retention is not None and isinstance(app, ChatCore):
            tasks.start_soon(_retaining, hub, app, config.retention)
        websocket = await tasks.start(driver.serve, hub, ws, config.limits)
        tasks.start_soon(pageport.serve, site, page, config.limits, websocket, proxies)
        secure = "" if tls is None else "s"
        logger.info("%s %s on ws%s://%s:%d/", config.transport.value, config.app.value, secure, _url_host(config.host),
                    ws.port)
        logger.info("page from %s on http%s://%s:%d/ (and the WebSocket at /ws there)", site.root, secure,
                    _url_host(config.host), page.port)
        if proxies:
            logger.info("%s (--proxy-header) believed from %s (--trusted-proxy)", proxies.header.value,
                        ", ".join(str(network) for network in proxies.networks))
        running = Running(hub, page.port, ws.port, anyio.Event(), (ws, page), health, metrics, anyio.Event(), tls,
                          sign_in)
        task_status.started(running)
        await running.stopping.wait()
        if running.draining.is_set():
            await drain(hub, health, ws, config.drain_timeout, None if backend is None else backend.flush)
            page.stop_accepting()
        else:
            for listener in running.listeners:
                listener.stop_accepting()
            await _flush_store(backend, config.shutdown_grace)  # what members sent so far reaches them before 1001
            await hub.shutdown(config.shutdown_grace)
            await _flush_store(backend, config.shutdown_grace)
        tasks.cancel_scope.cancel()


def _load_tls(config: ServerConfig) -> TlsServer:
    """The certificate of ``--tls-cert`` and ``--tls-key``, or `StartupError` saying what is wrong with them."""
    assert config.tls is not None
    try:
        return TlsServer.load(config.tls)
    except CertificateError as error:
        raise StartupError(f"cannot use the TLS certificate (--tls-cert, --tls-key): {error}") from None


async def _load_sign_in(config: ServerConfig) -> SignInKeys | None:
    """The keys of ``--auth-key`` (read on a thread), or `StartupError` naming the file that cannot be used; None
    when tokens are not taken."""
    auth = config.auth
    if config.app is not AppKind.CHAT or auth.mode is AuthMode.OFF:
        if auth.keys and config.app is AppKind.CHAT:
            logger.warning("--auth off: sign-in tokens are not read, and the --auth-key files are not used")
        return None
    try:
        verifier = await anyio.to_thread.run_sync(Verifier.load, auth)
    except AuthKeyError as error:
        raise StartupError(f"cannot use the sign-in key (--auth-key): {error}") from None
    checks = "".join(f", {name} {value!r} checked" for name, value in (("iss", auth.issuer), ("aud", auth.audience))
                     if value is not None)
    logger.info("sign-in tokens %s: %s%s", auth.mode.value, ", ".join(verifier.algorithms), checks)
    return SignInKeys(verifier)


def _trusted_proxies(config: ServerConfig) -> TrustedProxies:
    try:
        return TrustedProxies(config.trusted_proxies, config.proxy_header)
    except ValueError as error:
        raise StartupError(f"--trusted-proxy: {error}") from None


def _store_check(
    config: ServerConfig, storage: LogWorker | None, broker: RedisBroker | None
) -> tuple[str | None, StoreCheck | None]:
    """The store's kind (a metrics label) and how readiness asks it; (None, None) without a store."""
    if broker is not None and config.redis is not None:
        return "redis", redis_check(broker, config.redis.timeout)
    if storage is not None and isinstance(storage.backend, Database):
        return "sqlite", sqlite_check(storage, storage.backend.check, config.database_timeout)
    return None, None


def _bind(host: str, port: int, flag: str, reuse_port: bool) -> Listener:
    """A listener on ``host:port``, or `StartupError` saying what to change."""
    try:
        return Listener.bind(host, port, reuse_port=reuse_port)
    except OSError as error:
        raise StartupError(_listen_error(error, host, port, flag)) from None


_NAME_ERRORS = {socket.EAI_NONAME, socket.EAI_AGAIN, socket.EAI_FAIL, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _listen_error(error: OSError, host: str, port: int, flag: str) -> str:
    if isinstance(error, socket.gaierror) or error.errno in _NAME_ERRORS:  # (socket.create_server drops the type)
        return f"cannot listen on {host}: no such host name or address (--host)"
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host} ({flag}): stop what uses it, or pick another port " \
            f"({flag} 0 takes any free one)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: not an address of this machine (--host; 0.0.0.0 means every interface)"
    if error.errno == errno.EACCES:
        return f"no permission to listen on port {port} ({flag}): ports below 1024 need root"
    return f"cannot listen on {host}:{port} ({flag}): {error.strerror or error}"


async def _flush_store(backend: LogBackend | None, grace: float) -> None:
    """Wait, up to ``grace`` seconds, until the backend answered everything asked of it."""
    if backend is not None:
        with anyio.move_on_after(grace):
            await backend.flush()


async def run_until_signal(config: ServerConfig, supervisor: int | None = None) -> None:
    """Serve until a signal: SIGTERM drains (see `ops.drain`), SIGINT (Ctrl-C) stops at once with 1001.

    A second SIGTERM or SIGINT while stopping (either way) ends the process at once, exit status 1. A worker
    (``supervisor``: its supervisor's pid) drains as on SIGTERM once its supervisor is gone, however it went.
    """
    # SIGHUP reloads the TLS certificate and the sign-in keys, or says there is nothing to reload: taken here, on the
    # event loop, so that the line is written by the loop, never by a signal handler interrupting another write.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with anyio.create_task_group() as tasks:
            running: Running = await tasks.start(_run_then_stop_listening, config, tasks.cancel_scope)
            if supervisor is not None:
                tasks.start_soon(_drain_when_orphaned, supervisor)
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    await running.reload()
                elif running.stopping.is_set():
                    during = "during the drain" if running.draining.is_set() else "while stopping"
                    _exit_now(f"second {name} {during}")
                elif signum == signal.SIGTERM:
                    logger.info("%s: draining: readiness 503, connections closed with 1012 within %g s", name,
                                config.drain_timeout)
                    running.drain()
                else:
                    logger.info("%s: closing connections with 1001", name)
                    running.stop()


ORPHAN_CHECK_EVERY = 1.0
"""Seconds between a worker's looks at whether its supervisor is still its parent."""


async def _drain_when_orphaned(supervisor: int) -> None:
    """Drain once the process that started this worker is gone (killed with SIGKILL, say): a worker in a session of
    its own would otherwise serve on, alone, on the shared port."""
    while True:  # (polled: nothing wakes a process when its parent dies, short of prctl, which trio's threads defeat)
        await anyio.sleep(ORPHAN_CHECK_EVERY)
        if os.getppid() != supervisor:
            break
    logger.warning("the supervisor (pid %d) is gone: this worker drains and exits", supervisor)
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_now(why: str) -> NoReturn:
    """End the process at once, exit status 1: what is not stored yet is lost, clients are cut."""
    logger.warning("%s: exiting now", why)
    # Not SystemExit: the way out would wait for the storage thread and the stop under way.
    os._exit(1)


async def _run_then_stop_listening(
    config: ServerConfig, signals: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[Running]
) -> None:
    await run(config, task_status=task_status)
    signals.cancel()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
