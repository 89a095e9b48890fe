"""The bench engine: HTTP client, recorder, cycles and virtual users, worker processes."""
