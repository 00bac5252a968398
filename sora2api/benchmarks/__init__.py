"""Helpers for `make bench` (sora2api/bench.py): child processes, /proc readings, the load tools."""
