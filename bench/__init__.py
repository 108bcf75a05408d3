"""`make bench`: every `bench/bench_*.py` module's `run()` results in one table and file."""
