"""End-to-end engine tests: the real lightkube Client against the fake API server."""
