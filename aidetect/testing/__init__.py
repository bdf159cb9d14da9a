"""Helpers for tests and benchmarks that start real services."""
