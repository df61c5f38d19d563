"""The benchmarks (not shipped with the package): run each as `python benchmarks/bench_NAME.py`."""
