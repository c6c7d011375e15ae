"""Benchmarks: throughput and latency figures, printed as JSON (never timed tests)."""
