"""Benchmark suite configuration (pytest-benchmark)."""
