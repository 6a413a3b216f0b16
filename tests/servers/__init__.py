"""Real local servers that tests and benchmarks talk to over HTTP (no mocking)."""
