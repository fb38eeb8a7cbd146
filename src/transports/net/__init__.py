"""Sockets below any protocol: TCP listeners, the raw non-blocking socket loop, and TLS in front of both."""
