"""The hub: the table of open connections and the performer of the application's actions; its counters; keepalive."""
