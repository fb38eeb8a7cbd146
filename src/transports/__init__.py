"""Everything that touches the outside world for the chat core: sockets, HTTP, storage, the process.

The tree, from the top down; a module imports only from lines below its own
(tests/transports/test_architecture.py checks that no import goes round in
a circle, between modules or between packages)::

    cli.py, settings.py, supervisor.py
                    the command line, its settings from the environment, ``--workers``
    process.py      one server process: binds the listeners, wires hub, storage, ops and ports together
    ops/            running it in production: health, metrics, the SIGTERM drain, the event loop's watchdog
    pageport.py     the page's port: routes each connection to the page (http) or to the WebSocket side
    apps/           applications besides the chat core (echo)
    runtime/        the hub: the table of open connections, the actions it performs, its counters, keepalive
    websocket/      one WebSocket connection from first byte to close; sees the hub only as `websocket.host.Host`
    http/           HTTP on both ports: error answers, trusted proxies, origin policy, admission, the static page
    storage/        the room log on disk or in Redis: one worker thread for any backend
    net/            listening sockets, the raw non-blocking socket loop, TLS in front of them
    config.py, logs.py
                    leaves: the settings' types and defaults; logging (what log lines may say)
"""
