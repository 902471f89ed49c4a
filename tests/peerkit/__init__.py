"""Helpers that drive the box from outside, shared by the tests and the benchmarks (bench/ puts tests/ on sys.path)."""
