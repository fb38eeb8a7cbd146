"""Running it in production: health and readiness, metrics, the SIGTERM drain, the event loop's watchdog."""
