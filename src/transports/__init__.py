"""Drivers that carry the chat core over real sockets: trio-websocket or our own wsproto loop."""
