"""What every TLS connection shares, and what a connection that has sent nothing costs (no OpenSSL state yet)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import anyio

from certificates import make_certificate
from transports.net.tls import TlsServer, _Relay, load_context


def test_the_context_refuses_renegotiation_and_tls_before_1_2_and_speaks_http_1_1(tmp_path: Path) -> None:
    context = load_context(make_certificate(tmp_path).files)
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.num_tickets == 2  # TLS 1.3 resumption stays on (tickets cost no memory per connection)


def test_every_connection_is_served_with_one_shared_context_until_a_reload(tmp_path: Path) -> None:
    server = TlsServer.load(make_certificate(tmp_path).files, close_timeout=1.0)
    first = server.context
    assert server.context is first
    server.reload()
    assert server.context is not first


def test_a_relay_makes_its_tls_state_only_when_the_client_sends_something(tmp_path: Path) -> None:
    context = load_context(make_certificate(tmp_path).files)
    client, sock = socket.socketpair()
    inner, outer = socket.socketpair()
    async def made() -> _Relay:
        return _Relay(sock, outer, context, "test", anyio.wait_readable)

    try:
        assert anyio.run(made, backend="trio")._tls is None
    finally:
        for each in (client, sock, inner, outer):
            each.close()
