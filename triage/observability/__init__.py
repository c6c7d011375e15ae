"""Metrics, logs and redaction."""
