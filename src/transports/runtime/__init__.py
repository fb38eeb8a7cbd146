"""The hub: the table of open connections, the actions of the application it performs, its counters, keepalive."""
