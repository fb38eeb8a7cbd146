"""WebSocket close codes the server uses (RFC 6455, section 7.4.1)."""

NORMAL = 1000
GOING_AWAY = 1001
"""The server is shutting down at once (SIGINT)."""
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
"""Used for a client that reads too slowly: its outgoing buffer overflowed."""
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
"""Reconnect: the server cannot go on with this connection as it is (a room's shared log lost talks), or it is
draining (SIGTERM). Unlike 1001 (going away: this endpoint leaves), it says the service restarts and the client
should come back, here or elsewhere."""
REMOVED = 4403
"""The user was removed from the room by its owner or a moderator: do not reconnect (a private-use code, 4000-4999)."""
ENDED = 4410
"""The room was ended by its owner (or by retention), and erased: do not reconnect."""
