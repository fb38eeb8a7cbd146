"""WebSocket connections: the handshake, one connection's lifecycle, its write path, and the two drivers.

`lifecycle.serve_connection` takes every connection from its first byte to
its close; `trio_driver` (trio-websocket) and `wsproto_driver` (wsproto on
raw sockets) differ only in how they read and write frames.
"""
