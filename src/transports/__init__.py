"""Everything that touches the outside world for the chat core: sockets, HTTP, storage, the process.

The tree reads as the architecture does::

    cli.py, config.py   the command line and the settings it makes
    process.py          one server process: owns the listeners, the hub and the storage worker
    net/                listening sockets (owned by the process) and the raw socket loop
    websocket/          one WebSocket connection from first byte to close: handshake, lifecycle,
                        write path (peer, outbox, framing), and the two drivers (trio-websocket, wsproto)
    http/               the page (a static site); later health and metrics
    runtime/            the hub (peers and the actions of the application), admission, origin policy
    storage/            the room log on disk: one worker thread for any backend, SQLite, backup
"""
