"""The room log's backends, each performing the core's log actions and returning their results: in memory,
in SQLite (on one worker thread, with its backup tool) or in Redis (shared by several processes)."""
