"""One module of routes per domain."""
