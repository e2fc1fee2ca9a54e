"""Benchmarks (`make bench`): side-by-side ratios, written to docs/BENCHMARKS.md."""
