"""Sockets below any protocol: TCP listeners, the raw non-blocking socket loop, TLS in front of both, and the task
groups their connections run in."""
