"""Benchmarks: each script runs alone (``python bench/<name>.py``); ``python -m bench`` runs the suite."""
