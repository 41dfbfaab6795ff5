"""Benchmarks: each bench/bench_<name>.py measures a module side by side with the raw tool."""
