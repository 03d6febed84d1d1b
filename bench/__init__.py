"""Benchmarks: each figure the project is judged by, against its baseline in the same run.

``python -m bench tableinator`` measures the PostgreSQL consumer; ``python -m bench plot``
draws a saved sweep. docs/benchmarks.md has the method and the latest results.
"""
