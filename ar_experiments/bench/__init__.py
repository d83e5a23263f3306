"""Throughput and overhead measurements, each a ratio against a baseline with a goal.

    python -m ar_experiments.bench                 # everything on the CPU, writes bench.json
    python -m ar_experiments.bench --quick --parts data
    python -m ar_experiments.bench --device cuda   # the GPU figures (needs CUDA)

docs/benchmarks.md explains every figure, its baseline and what limits it.
"""
