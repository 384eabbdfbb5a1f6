"""Benchmarks of ntk_lab (not installed): run from the repository root, e.g.
``python -m benchmarks.bench_empirical_ntk --out results``."""
