"""Benchmarks behind ``ndyn bench`` (DESIGN.md §10)."""
