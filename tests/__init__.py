"""The triage test suite: unit (pure core) and integration (real broker)."""
