"""Benchmarks for Agent Network nodes: `python -m bench.run` (see bench/README.md)."""
