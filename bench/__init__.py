"""Benchmarks (`make bench`): the speed claims of issue 8, measured, never asserted in tests."""
