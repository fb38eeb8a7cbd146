"""What every TLS connection shares: the context, its settings, and when it is replaced."""

from __future__ import annotations

import ssl
from pathlib import Path

from certificates import make_certificate
from transports.net.tls import TlsServer, load_context


def test_the_context_refuses_renegotiation_and_tls_before_1_2_and_speaks_http_1_1(tmp_path: Path) -> None:
    context = load_context(make_certificate(tmp_path).files)
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.num_tickets == 2  # TLS 1.3 resumption stays on (tickets cost no memory per connection)


def test_every_connection_is_served_with_one_shared_context_until_a_reload(tmp_path: Path) -> None:
    server = TlsServer.load(make_certificate(tmp_path).files)
    first = server.context
    assert server.context is first
    server.reload()
    assert server.context is not first
