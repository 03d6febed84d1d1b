"""What every benchmark shares: arguments, publishing, timing a consumer, rounds and
medians, run metadata, report tables, plots and JSON results.

A benchmark module declares its baselines, its project path and its targets, and leaves
the rest to these modules.
"""
