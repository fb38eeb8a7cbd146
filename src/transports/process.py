"""One process: the page over HTTP and the chat over WebSocket, until a signal stops it."""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import signal
import socket
import time
from dataclasses import dataclass

import anyio
import anyio.abc
from redis.exceptions import RedisError

from chatcore import ChatCore
from chatcore.shared import SharedChat

from .config import AppKind, ServerConfig, StartupError, Transport
from .http import static
from .net.listener import Listener
from .runtime.hub import App, Hub
from .runtime.origin import OriginPolicy
from .storage.redislog import RedisBroker
from .storage.sqlite import Database
from .storage.worker import LogWorker
from .websocket import trio_driver, wsproto_driver
from .websocket.echo import EchoApp

log = logging.getLogger(__name__)

JOIN_KEY_BYTES = 12
TOKEN_BYTES = 24
"""A version-2 resume token: 32 URL-safe characters, 192 random bits."""


@dataclass(frozen=True, slots=True)
class Running:
    """A started server: its hub, the ports it actually bound, and its off switch."""

    hub: Hub
    http_port: int
    ws_port: int
    stopping: anyio.Event
    listeners: tuple[Listener, ...]
    """The process's listening sockets (WebSocket, page): it stops accepting on them, not the transports."""

    def stop(self) -> None:
        """Begin a clean shutdown: every client gets close 1001, then `run` returns."""
        self.stopping.set()


def make_app(config: ServerConfig, *, external_log: bool, broker: RedisBroker | None = None) -> App:
    """The application: echo, or the chat core (with its log in memory, in a store, or shared through ``broker``)."""
    if config.app is AppKind.ECHO:
        return EchoApp()
    core = ChatCore(
        clock=time.time,
        new_join_key=lambda: secrets.token_urlsafe(JOIN_KEY_BYTES),
        new_token=lambda: secrets.token_urlsafe(TOKEN_BYTES),
        limits=config.core_limits,
        external_log=external_log or broker is not None,
        shared_log=broker is not None,
    )
    return core if broker is None else SharedChat(core, broker)


async def open_storage(config: ServerConfig) -> LogWorker | None:
    """The chat's database, opened and migrated on a worker thread; None when rooms live in memory."""
    if config.app is not AppKind.CHAT:
        return None
    if config.database is None:
        log.info("rooms kept in memory only: they end with the process")
        return None
    path = config.database
    database = await anyio.to_thread.run_sync(
        lambda: Database.open(path, busy_timeout=config.database_timeout, synchronous=config.database_sync)
    )
    log.info("rooms stored in %s (%d so far)", database.path, database.rooms_at_start)
    return LogWorker(database)


async def open_broker(config: ServerConfig) -> RedisBroker | None:
    """The shared log's broker, with Redis checked (a Redis down at start is logged, not fatal); None without one."""
    if config.app is not AppKind.CHAT or config.redis is None:
        return None
    broker = RedisBroker(config.redis)
    try:
        await anyio.to_thread.run_sync(broker.log.open)
    except (RedisError, OSError) as error:
        log.error("Redis %s does not answer (%s): joins and messages get an error event until it does",
                  broker.log.name, error)
    log.info("rooms shared through Redis %s", broker.log.name)
    return broker


async def run(
    config: ServerConfig,
    *,
    task_status: anyio.abc.TaskStatus[Running] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `Running.stop` is called; then close every connection with 1001 and return."""
    broker = await open_broker(config)
    storage = None if broker is not None else await open_storage(config)
    try:
        await _serve(config, storage, broker, task_status)
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
    task_status: anyio.abc.TaskStatus[Running],
) -> None:
    origins = OriginPolicy(config.allow_origins)
    app = make_app(config, external_log=storage is not None, broker=broker)
    hub = Hub(app, config.limits, origins, storage)
    driver = trio_driver if config.transport is Transport.TRIO_WEBSOCKET else wsproto_driver
    with contextlib.ExitStack() as unused:  # listeners are closed here only if serving never starts
        ws = _bind(config.host, config.ws_port, "--ws-port", config.reuse_port)
        unused.callback(ws.close)
        site = await anyio.to_thread.run_sync(static.StaticSite.load, config.web_dir, config.public_ws_port or ws.port)
        page = _bind(config.host, config.http_port, "--http-port", config.reuse_port)
        unused.callback(page.close)
        unused.pop_all()
    origins.page_ports.add(page.port)
    async with anyio.create_task_group() as tasks:
        if storage is not None:
            tasks.start_soon(storage.run, hub.log_result)
        if broker is not None:
            assert isinstance(app, SharedChat)
            tasks.start_soon(broker.run, app, hub.perform)
        tasks.start_soon(hub.keepalive)
        tasks.start_soon(driver.serve, hub, ws, config.limits)
        tasks.start_soon(static.serve, site, page, config.limits)
        log.info("%s %s on ws://%s:%d/", config.transport.value, config.app.value, _url_host(config.host), ws.port)
        log.info("page from %s on http://%s:%d/", site.root, _url_host(config.host), page.port)
        running = Running(hub, page.port, ws.port, anyio.Event(), (ws, page))
        task_status.started(running)
        await running.stopping.wait()
        for listener in running.listeners:
            listener.stop_accepting()
        await _drain(storage or broker, config.shutdown_grace)  # what members sent so far reaches them before 1001
        await hub.shutdown(config.shutdown_grace)
        await _drain(storage or broker, config.shutdown_grace)
        tasks.cancel_scope.cancel()


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


async def _drain(storage: LogWorker | RedisBroker | None, grace: float) -> None:
    if storage is not None:
        with anyio.move_on_after(grace):
            await storage.drain()


async def run_until_signal(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    async with anyio.create_task_group() as tasks:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            running: Running = await tasks.start(run, config)
            async for signum in signals:
                log.info("%s: closing connections with 1001", signal.Signals(signum).name)
                running.stop()
                break


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
