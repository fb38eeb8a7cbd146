"""The room log on disk: one worker thread for any backend, the SQLite backend, and its backup tool."""
