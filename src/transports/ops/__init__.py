"""Running it in production: health and readiness, metrics, draining on SIGTERM, the event loop's watchdog."""
