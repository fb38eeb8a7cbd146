"""One WebSocket connection from its first byte to its close: handshake, read and write paths, the two drivers.

`lifecycle.serve_connection` takes every connection from its first byte to
its close; `trio_driver` (trio-websocket) and `wsproto_driver` (wsproto on
raw sockets) differ only in how they read and write frames. What runs the
connections (the hub) is seen only through `host.Host`: nothing here
imports `runtime`.
"""
